// The README's walkthrough on `strangler demo`, in Chromium: sign in, read the planted bug on
// the orders context (its signature and a marked example pair), start the next context from
// unclaimed traffic, promote orders to canary, read the ledger. Screenshots go to $ARTIFACTS
// as demo-*.png.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const admin = process.env.ADMIN_URL;
const operator = process.env.OPERATOR_TOKEN;
const out = process.env.ARTIFACTS || "tests/browser/artifacts";
if (!admin || !operator) throw new Error("set ADMIN_URL and OPERATOR_TOKEN");
mkdirSync(out, { recursive: true });

function check(ok, what) {
  if (!ok) throw new Error(`demo browser test failed: ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 860 } })).newPage();
  await page.goto(`${admin}/login`);
  await page.fill("input[name=token]", operator);
  await page.click("button[type=submit]");
  await page.waitForURL(`${admin}/`);
  if (process.env.PHASE === "fixed") await fixed(page);
  else await buggy(page);
} finally {
  await browser.close();
}

// First run: the planted bug, and the next context claimed.
async function buggy(page) {
  check(await page.isVisible("a[href='/contexts/orders']"), "no orders context on the overview");
  await page.screenshot({ path: `${out}/demo-overview.png`, fullPage: true });

  // Shadow: the orders service answers like the monolith but for discounted totals.
  await page.click("a[href='/contexts/orders']");
  check((await page.textContent("h1")).includes("shadow"), "orders is not in shadow");
  check(await page.isVisible("code:has-text('value $.total')"), "the planted bug's signature is not shown");
  check((await page.locator("pre mark").count()) > 0, "no marked difference in the example pairs");
  await page.screenshot({ path: `${out}/demo-orders-shadow.png`, fullPage: true });

  // The next extraction, from unclaimed traffic.
  await page.goto(`${admin}/unclaimed`);
  const customers = "input[value='GET /api/customers/{id}']";
  check(await page.isVisible(customers), "the customers template is not among the unclaimed routes");
  await page.check(customers);
  await page.fill("input[name=name]", "customers");
  await page.selectOption("select[name=target]", "customers-svc");
  await page.fill("input[name=reason]", "next extraction: the customer profile");
  await page.screenshot({ path: `${out}/demo-unclaimed.png`, fullPage: true });
  page.once("dialog", (d) => d.accept());
  await page.click("button:has-text('Start the context')");
  await page.waitForURL(/done=context\+customers\+started/);
  console.log(`demo browser test (the bug) passed; screenshots in ${out}`);
}

// Second run, --fixed on the same data: the canary, and the ledger.
async function fixed(page) {
  // Canary for orders, with a reason.
  await page.goto(`${admin}/contexts/orders`);
  await page.selectOption("select[name=action]", "promote");
  await page.fill("input[name=reason]", "totals fixed and repaired; start the canary");
  page.once("dialog", (d) => d.accept());
  await page.click("button:has-text('Apply')");
  await page.waitForURL(/done=promoted/);
  check((await page.textContent("h1")).includes("canary"), "orders did not move to canary");
  await page.selectOption("select[name=action]", "set-weight");
  await page.fill("input[name=weight]", "5000");
  await page.fill("input[name=reason]", "half of the customers");
  page.once("dialog", (d) => d.accept());
  await page.click("button:has-text('Apply')");
  await page.waitForURL(/done=canary\+weight\+set/);
  await page.waitForTimeout(6000); // the shoppers' requests answered by the service show up
  await page.screenshot({ path: `${out}/demo-orders-canary.png`, fullPage: true });

  await page.goto(`${admin}/ledger`);
  check(await page.isVisible("td:has-text('totals fixed and repaired; start the canary')"), "the ledger lacks the promotion");
  await page.screenshot({ path: `${out}/demo-ledger.png`, fullPage: true });
  console.log(`demo browser test (the fix, the canary) passed; screenshots in ${out}`);
}
