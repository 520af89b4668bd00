//! What both apps start with: the same products, customers and order history, so that the
//! shadow comparison has something to agree on from the first request.

/// A product: its SKU, title and unit price in cents.
pub const PRODUCTS: &[(&str, &str, i64)] = &[
    ("BEANS-1", "Espresso beans 1kg", 2490),
    ("TEA-1", "Green tea 250g", 1275),
    ("MUG-3", "Stoneware mug", 600),
    ("JUG-2", "Milk jug", 1250),
    ("GRIND-1", "Burr grinder", 14900),
    ("FILT-9", "Paper filters x100", 345),
];

/// A customer: id, name, e-mail (the password is `demo`), loyalty discount in percent.
pub const CUSTOMERS: &[(i64, &str, &str, i64)] = &[
    (1, "Ada Byron", "ada@example.com", 0),
    (2, "Brian Kernighan", "brian@example.com", 10),
    (3, "Chen Wei", "chen@example.com", 15),
    (4, "Dana Scully", "dana@example.com", 0),
    (5, "Emil Nolde", "emil@example.com", 5),
    (6, "Fatima Mernissi", "fatima@example.com", 10),
    (7, "Gus Grissom", "gus@example.com", 0),
    (8, "Hana Sato", "hana@example.com", 20),
];

/// A seeded order: customer, status letter, days ago, lines (SKU, quantity).
pub type SeedOrder = (i64, &'static str, i64, &'static [(&'static str, i64)]);

/// Orders placed before the demo started: customer, status letter, days ago, lines (SKU,
/// quantity). They get ids from 1000 up, in this order, in both apps.
pub const ORDERS: &[SeedOrder] = &[
    (1, "S", 20, &[("BEANS-1", 2)]),
    (2, "S", 18, &[("TEA-1", 1), ("MUG-3", 2)]),
    (3, "P", 15, &[("GRIND-1", 1)]),
    (5, "S", 12, &[("TEA-1", 3)]),
    (6, "C", 10, &[("JUG-2", 1), ("FILT-9", 3)]),
    (8, "P", 7, &[("TEA-1", 1)]),
    (2, "N", 4, &[("BEANS-1", 1), ("FILT-9", 1)]),
    (7, "N", 2, &[("MUG-3", 4)]),
    (3, "N", 1, &[("TEA-1", 2), ("JUG-2", 1)]),
    (8, "N", 1, &[("FILT-9", 5)]),
];

/// The first order id.
pub const FIRST_ORDER: i64 = 1000;

/// `1275` → `"12.75"`.
pub fn decimal(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
pub fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// When a seeded order was placed: `days_ago` days before today, at noon UTC (the same in
/// both apps whenever each starts that day).
pub fn seeded_at(days_ago: i64) -> i64 {
    (now_secs().div_euclid(86_400) - days_ago) * 86_400 + 12 * 3600
}

#[cfg(test)]
mod tests;
