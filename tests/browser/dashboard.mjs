// The dashboard in a real browser (Debian's Chromium driven by playwright-core): sign in as a
// viewer (no actions, and a forged action refused by the server), sign in as the operator,
// open a context, promote it with a reason, see the audit row and the new state; a
// screenshot of each page goes to $ARTIFACTS.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const admin = process.env.ADMIN_URL;
const operator = process.env.OPERATOR_TOKEN;
const viewer = process.env.VIEWER_TOKEN;
const out = process.env.ARTIFACTS || "tests/browser/artifacts";
if (!admin || !operator || !viewer) throw new Error("set ADMIN_URL, OPERATOR_TOKEN and VIEWER_TOKEN");
mkdirSync(out, { recursive: true });

function check(ok, what) {
  if (!ok) throw new Error(`browser test failed: ${what}`);
}

async function signIn(page, token) {
  await page.goto(`${admin}/`);
  check(page.url().endsWith("/login"), `not sent to sign in (at ${page.url()})`);
  await page.fill("input[name=token]", token);
  await page.click("button[type=submit]");
  await page.waitForURL(`${admin}/`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const laptop = { viewport: { width: 1280, height: 860 } };

  // A viewer sees everything and can change nothing.
  const v = await browser.newContext(laptop);
  const vp = await v.newPage();
  await vp.goto(`${admin}/login`);
  await vp.screenshot({ path: `${out}/login.png`, fullPage: true });
  await signIn(vp, viewer);
  check(await vp.isVisible("text=How far the strangling has come"), "no overview");
  check(await vp.isVisible("a[href='/contexts/orders']"), "the orders context is not listed");
  await vp.screenshot({ path: `${out}/overview.png`, fullPage: true });
  await vp.click("a[href='/contexts/orders']");
  check(await vp.isVisible("text=changes need the operator token"), "no viewer notice");
  check((await vp.locator("select[name=action]").count()) === 0, "a viewer was offered actions");
  await vp.screenshot({ path: `${out}/context-viewer.png`, fullPage: true });
  // With the viewer's own valid CSRF token (its sign-out form's): the role check refuses it.
  const viewerCsrf = await vp.locator("input[name=csrf]").first().getAttribute("value");
  const forged = await vp.request.post(`${admin}/contexts/orders/actions`, {
    form: { csrf: viewerCsrf, base_version: "1", action: "promote", reason: "from a viewer" },
    maxRedirects: 0,
  });
  check(forged.status() === 403, `a viewer's action answered ${forged.status()}, not 403`);
  check((await forged.text()).includes("changes need the operator token"), "the viewer was refused by the CSRF check, not the role check");
  await vp.goto(`${admin}/unclaimed`);
  check(await vp.isVisible("code:has-text('GET /accounts/{id}')"), "the unclaimed template is not listed");
  check((await vp.locator("input[type=checkbox]").count()) === 0, "a viewer was offered to start a context");
  await v.close();

  // The operator promotes the context with a reason.
  const o = await browser.newContext(laptop);
  const op = await o.newPage();
  await signIn(op, operator);
  await op.click("a[href='/contexts/orders']");
  check((await op.textContent("h1")).includes("legacy"), "the context does not start in legacy");
  await op.selectOption("select[name=action]", "promote");
  await op.fill("input[name=reason]", "start shadowing, from the browser test");
  op.once("dialog", (d) => d.accept());
  await op.click("button:has-text('Apply')");
  await op.waitForURL(/done=promoted/);
  check(await op.isVisible("text=Done: promoted"), "no confirmation");
  check((await op.textContent("h1")).includes("shadow"), "the state did not change to shadow");
  check(
    await op.isVisible("td:has-text('start shadowing, from the browser test')"),
    "the audit row with the reason is missing",
  );
  await op.screenshot({ path: `${out}/context-operator.png`, fullPage: true });

  // The next extraction, picked from the unclaimed routes.
  await op.goto(`${admin}/unclaimed`);
  await op.screenshot({ path: `${out}/unclaimed.png`, fullPage: true });
  await op.check("input[value='GET /accounts/{id}']");
  await op.fill("input[name=name]", "accounts");
  await op.fill("input[name=reason]", "busiest unclaimed template, from the browser test");
  op.once("dialog", (d) => d.accept());
  await op.click("button:has-text('Start the context')");
  await op.waitForURL(/done=context\+accounts\+started/);
  check(await op.isVisible("text=Done: context accounts started"), "no confirmation of the new context");
  await op.goto(`${admin}/contexts/accounts`);
  check(await op.isVisible("code:has-text('/accounts/{id}')"), "the new context lacks its route");

  // The ledger: the orders context's step into shadow, with its reason.
  await op.goto(`${admin}/ledger`);
  check(
    await op.isVisible("td:has-text('start shadowing, from the browser test')"),
    "the ledger lacks the promotion",
  );
  await op.screenshot({ path: `${out}/ledger.png`, fullPage: true });

  // Health in colour: the target's instance answers its checks, so it is green.
  await op.goto(`${admin}/contexts/orders`);
  const health = op.locator("td:has-text('healthy')").first();
  check((await health.getAttribute("class")) === "good", "a healthy instance is not shown in green");
  check(
    (await health.evaluate((el) => getComputedStyle(el).color)) !== (await op.evaluate(() => getComputedStyle(document.body).color)),
    "the health colour is not applied",
  );

  // Charts whose labels read at the size they are drawn: no axis label under 10 px.
  async function smallestLabel(page) {
    return page.evaluate(() => {
      let smallest = Infinity;
      for (const svg of document.querySelectorAll("svg.chart")) {
        const box = svg.getBoundingClientRect();
        if (box.width === 0) continue; // the chart for the other width, hidden
        const scale = box.width / svg.viewBox.baseVal.width;
        for (const t of svg.querySelectorAll("text")) {
          smallest = Math.min(smallest, Number(t.getAttribute("font-size")) * scale);
        }
      }
      return smallest;
    });
  }
  const laptopLabels = await smallestLabel(op);
  check(laptopLabels >= 10 && laptopLabels < 30, `chart labels drawn at ${laptopLabels} px on a laptop`);

  // The overview's table fits a 1280 px window without scrolling sideways.
  await op.goto(`${admin}/`);
  const overflow = await op.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the overview is ${overflow} px wider than a 1280 px window`);
  const overviewLabels = await smallestLabel(op);
  check(overviewLabels >= 10 && overviewLabels < 30, `the overview's chart labels drawn at ${overviewLabels} px`);

  // The context page's figures cover the window chosen, named on each figure.
  await op.goto(`${admin}/contexts/orders`);
  check(await op.isVisible("text=/Match rate, since the last change, /"), "the default window is not the last change");
  await op.click("nav.windows a:has-text('5 minutes')");
  await op.waitForURL(/window=5m/);
  check(await op.isVisible("text=Match rate, last 5 minutes"), "the match rate is not labelled with the window chosen");
  check(await op.isVisible("text=Requests, last 5 minutes"), "the requests are not labelled with the window chosen");
  check(await op.isVisible("nav.windows [aria-current=true]:has-text('5 minutes')"), "the selector does not show the choice");
  await op.screenshot({ path: `${out}/context-window.png`, fullPage: true });

  // Live figures: new traffic shows up on the open overview without a reload, by the page's
  // own timer (asked to tick every 300 ms instead of 15 s).
  const live = await browser.newContext({ ...laptop, storageState: await o.storageState() });
  await live.addInitScript(() => localStorage.setItem("strangler-refresh-ms", "300"));
  const lp = await live.newPage();
  await lp.goto(`${admin}/`);
  const before = await lp.textContent("#unclaimed");
  const marker = await lp.evaluate(() => (window.__notReloaded = true));
  for (let i = 0; i < 7; i++) await fetch(`${process.env.PUBLIC_URL}/live-check/${i}`);
  let after = before;
  for (let tries = 0; tries < 80 && after === before; tries++) {
    await lp.waitForTimeout(250);
    after = await lp.textContent("#unclaimed");
  }
  check(after !== before && after.includes("GET /live-check/{id}"), "the overview's figures did not refresh by themselves");
  check(await lp.evaluate(() => window.__notReloaded === true) && marker, "the page reloaded instead of refreshing");
  await live.close();

  // The overview on a phone.
  const phone = await browser.newContext({
    viewport: { width: 390, height: 844 },
    storageState: await o.storageState(),
  });
  const pp = await phone.newPage();
  await pp.goto(`${admin}/`);
  check(await pp.isVisible("text=How far the strangling has come"), "no overview on a phone");
  const phoneLabels = await smallestLabel(pp);
  check(phoneLabels >= 10, `the overview's chart labels drawn at ${phoneLabels} px on a phone`);
  await pp.goto(`${admin}/contexts/orders`);
  const phoneContext = await smallestLabel(pp);
  check(phoneContext >= 9, `the context page's chart labels drawn at ${phoneContext} px on a phone`);
  await pp.screenshot({ path: `${out}/context-phone.png`, fullPage: true });
  await pp.goto(`${admin}/`);
  await pp.screenshot({ path: `${out}/overview-phone.png`, fullPage: true });
  console.log(`browser test passed; screenshots in ${out}`);
} finally {
  await browser.close();
}
