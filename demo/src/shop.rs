//! The legacy monolith: a small shop on SQLite with the habits of old apps — camelCase JSON,
//! money as decimal strings, one-letter statuses, dates as `dd/mm/yyyy`, its own error
//! envelope `{"error": {"code", "message"}}`, a session cookie, server-rendered pages, and
//! redirects and `Location`s that name its own origin in full.
//!
//! Size: over 600 lines on purpose: a whole small legacy app (pages, API, sessions, errors) in
//! one file, as such apps are; it is the demo's fixture, not a room of the product.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::{Row, SqlitePool};

use crate::data::{self, decimal};

/// The shop: its database and its public origin.
#[derive(Debug, Clone)]
pub struct Shop {
    db: SqlitePool,
    origin: String,
}

impl Shop {
    /// Opens (and on first use seeds) the shop's database.
    pub async fn open(db: SqlitePool, origin: String) -> Result<Self, sqlx::Error> {
        for ddl in [
            "CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
             email TEXT NOT NULL UNIQUE, password TEXT NOT NULL, discount_pct INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS products (sku TEXT PRIMARY KEY, title TEXT NOT NULL, \
             price_cents INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, \
             status TEXT NOT NULL, total_cents INTEGER NOT NULL, placed_at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS order_lines (order_id INTEGER NOT NULL, line_no INTEGER NOT NULL, \
             sku TEXT NOT NULL, qty INTEGER NOT NULL, unit_price_cents INTEGER NOT NULL, \
             PRIMARY KEY (order_id, line_no))",
            "CREATE TABLE IF NOT EXISTS sessions (sid TEXT PRIMARY KEY, customer_id INTEGER NOT NULL)",
        ] {
            sqlx::query(ddl).execute(&db).await?;
        }
        let shop = Self { db, origin };
        let seeded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customers")
            .fetch_one(&shop.db)
            .await?;
        if seeded == 0 {
            shop.seed().await?;
        }
        Ok(shop)
    }

    async fn seed(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        for (id, name, email, pct) in data::CUSTOMERS {
            sqlx::query("INSERT INTO customers VALUES ($1, $2, $3, 'demo', $4)")
                .bind(id)
                .bind(name)
                .bind(email)
                .bind(pct)
                .execute(&mut *tx)
                .await?;
        }
        for (sku, title, cents) in data::PRODUCTS {
            sqlx::query("INSERT INTO products VALUES ($1, $2, $3)")
                .bind(sku)
                .bind(title)
                .bind(cents)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        for (customer, status, days_ago, lines) in data::ORDERS {
            let lines: Vec<Line> = lines
                .iter()
                .map(|(sku, qty)| Line {
                    sku: (*sku).to_owned(),
                    qty: *qty,
                })
                .collect();
            self.place(*customer, &lines, status, data::seeded_at(*days_ago), None)
                .await
                .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        }
        Ok(())
    }

    /// Places an order; the total has the customer's discount, rounded half up to the cent.
    async fn place(
        &self,
        customer: i64,
        lines: &[Line],
        status: &str,
        at: i64,
        given: Option<i64>,
    ) -> Result<Value, Refused> {
        if lines.is_empty() || lines.len() > 20 {
            return Err(Refused::Invalid("an order has 1 to 20 lines".into()));
        }
        // IMMEDIATE: take the write lock now (waiting up to the busy timeout), not on the
        // first write, where two concurrent orders would fail with "database is locked".
        let mut tx = self.db.begin_with("BEGIN IMMEDIATE").await?;
        let pct: Option<i64> =
            sqlx::query_scalar("SELECT discount_pct FROM customers WHERE id = $1")
                .bind(customer)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(pct) = pct else {
            return Err(Refused::Invalid(format!("unknown customer {customer}")));
        };
        let mut priced = Vec::new();
        let mut subtotal = 0i64;
        for l in lines {
            if !(1..=99).contains(&l.qty) {
                return Err(Refused::Invalid(format!(
                    "quantity {} of {} is not 1-99",
                    l.qty, l.sku
                )));
            }
            let price: Option<i64> =
                sqlx::query_scalar("SELECT price_cents FROM products WHERE sku = $1")
                    .bind(&l.sku)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(price) = price else {
                return Err(Refused::Invalid(format!("unknown product {}", l.sku)));
            };
            subtotal += price * l.qty;
            priced.push((l, price));
        }
        let total = (subtotal * (100 - pct) + 50) / 100;
        // An order mirrored back from the orders service (after the cutover) keeps the
        // service's id; the shop numbers its own from the highest.
        let id: i64 = match given {
            Some(id) => {
                let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM orders WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if taken.is_some() {
                    return Err(Refused::Invalid(format!("order {id} exists already")));
                }
                id
            }
            None => {
                sqlx::query_scalar("SELECT COALESCE(MAX(id) + 1, $1) FROM orders")
                    .bind(data::FIRST_ORDER)
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        sqlx::query("INSERT INTO orders VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(customer)
            .bind(status)
            .bind(total)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        for (n, (l, price)) in priced.iter().enumerate() {
            sqlx::query("INSERT INTO order_lines VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(i64::try_from(n).unwrap_or(0))
                .bind(&l.sku)
                .bind(l.qty)
                .bind(price)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.order(id).await?.ok_or(Refused::Gone)
    }

    /// One order as the legacy API shows it.
    async fn order(&self, id: i64) -> Result<Option<Value>, sqlx::Error> {
        let Some(row) = sqlx::query(
            "SELECT id, customer_id, status, total_cents, placed_at FROM orders WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        else {
            return Ok(None);
        };
        let lines = sqlx::query(
            "SELECT sku, qty, unit_price_cents FROM order_lines WHERE order_id = $1 ORDER BY line_no",
        )
        .bind(id)
        .fetch_all(&self.db)
        .await?;
        let lines = lines
            .iter()
            .map(|l| {
                Ok(json!({
                    "sku": l.try_get::<String, _>(0)?,
                    "qty": l.try_get::<i64, _>(1)?,
                    "unitPrice": decimal(l.try_get::<i64, _>(2)?),
                }))
            })
            .collect::<Result<Vec<Value>, sqlx::Error>>()?;
        let (y, m, d) = data::civil(row.try_get::<i64, _>(4)?.div_euclid(86_400));
        Ok(Some(json!({
            "orderId": row.try_get::<i64, _>(0)?,
            "customerId": row.try_get::<i64, _>(1)?,
            "status": row.try_get::<String, _>(2)?,
            "total": decimal(row.try_get::<i64, _>(3)?),
            "placedOn": format!("{d:02}/{m:02}/{y:04}"),
            "lines": lines,
        })))
    }
}

#[derive(Debug, Deserialize)]
struct Line {
    sku: String,
    qty: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewOrder {
    /// Given by the facade for an order mirrored back from the orders service.
    #[serde(default)]
    order_id: Option<i64>,
    customer_id: i64,
    lines: Vec<Line>,
}

#[derive(Debug)]
enum Refused {
    Invalid(String),
    Gone,
    Db(sqlx::Error),
}

impl From<sqlx::Error> for Refused {
    fn from(e: sqlx::Error) -> Self {
        Refused::Db(e)
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Invalid(m) => f.write_str(m),
            Refused::Gone => f.write_str("the order vanished"),
            Refused::Db(e) => write!(f, "database: {e}"),
        }
    }
}

/// The legacy error envelope.
fn legacy_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

fn db_error(e: &sqlx::Error) -> Response {
    legacy_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        &e.to_string(),
    )
}

/// The legacy shop's router.
pub fn legacy_shop(shop: Arc<Shop>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/account", get(account))
        .route("/api/session", get(session))
        .route("/api/products", get(list_products))
        .route("/api/products/{sku}", get(get_product))
        .route("/api/customers/{id}", get(get_customer))
        .route("/api/orders", get(list_orders).post(create_order))
        .route("/api/orders/{id}", get(get_order))
        .fallback(|| async { legacy_error(StatusCode::NOT_FOUND, "not-found", "no such page") })
        .with_state(shop)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} · Legacy Shop</title></head>\
         <body><h1>{t}</h1>{body}<p><a href=\"/\">Shop</a> · <a href=\"/account\">My account</a></p></body></html>",
        t = escape(title)
    ))
}

async fn home(State(shop): State<Arc<Shop>>) -> Response {
    let rows = match sqlx::query("SELECT sku, title, price_cents FROM products ORDER BY sku")
        .fetch_all(&shop.db)
        .await
    {
        Ok(r) => r,
        Err(e) => return db_error(&e),
    };
    let items = rows
        .iter()
        .map(|r| {
            Ok(format!(
                "<li>{} — {} EUR <small>({})</small></li>",
                escape(&r.try_get::<String, _>(1)?),
                decimal(r.try_get::<i64, _>(2)?),
                escape(&r.try_get::<String, _>(0)?)
            ))
        })
        .collect::<Result<String, sqlx::Error>>();
    let items = match items {
        Ok(i) => i,
        Err(e) => return db_error(&e),
    };
    page("Legacy Shop", &format!("<ul>{items}</ul>")).into_response()
}

async fn login_form() -> Html<String> {
    page(
        "Log in",
        "<form method=\"post\" action=\"/login\"><label>E-mail <input name=\"email\"></label> \
         <label>Password <input name=\"password\" type=\"password\"></label> <button>Log in</button></form>",
    )
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

/// Checks the password and gives a session cookie; old apps redirect with their own origin.
async fn login(State(shop): State<Arc<Shop>>, Form(f): Form<LoginForm>) -> Response {
    let found: Result<Option<i64>, _> =
        sqlx::query_scalar("SELECT id FROM customers WHERE email = $1 AND password = $2")
            .bind(&f.email)
            .bind(&f.password)
            .fetch_optional(&shop.db)
            .await;
    let id = match found {
        Ok(Some(id)) => id,
        Ok(None) => {
            return (
                StatusCode::UNAUTHORIZED,
                page("Log in", "<p>Wrong e-mail or password.</p>"),
            )
                .into_response()
        }
        Err(e) => return db_error(&e),
    };
    let sid = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    if let Err(e) = sqlx::query("INSERT INTO sessions VALUES ($1, $2)")
        .bind(&sid)
        .bind(id)
        .execute(&shop.db)
        .await
    {
        return db_error(&e);
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, format!("{}/account", shop.origin)),
            (header::SET_COOKIE, format!("SID={sid}; Path=/; HttpOnly")),
        ],
    )
        .into_response()
}

/// The signed-in customer, from the `SID` cookie.
async fn customer_of(
    shop: &Shop,
    headers: &HeaderMap,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    let sid = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == "SID")
        .map(|(_, v)| v.to_owned());
    let Some(sid) = sid else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT c.id, c.name FROM sessions s JOIN customers c ON c.id = s.customer_id WHERE s.sid = $1",
    )
    .bind(sid)
    .fetch_optional(&shop.db)
    .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

async fn account(State(shop): State<Arc<Shop>>, headers: HeaderMap) -> Response {
    let (id, name) = match customer_of(&shop, &headers).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return (
                StatusCode::FOUND,
                [(header::LOCATION, format!("{}/login", shop.origin))],
            )
                .into_response()
        }
        Err(e) => return db_error(&e),
    };
    let orders = match sqlx::query(
        "SELECT id, status, total_cents FROM orders WHERE customer_id = $1 ORDER BY id DESC LIMIT 20",
    )
    .bind(id)
    .fetch_all(&shop.db)
    .await
    {
        Ok(o) => o,
        Err(e) => return db_error(&e),
    };
    let rows = orders
        .iter()
        .map(|o| {
            Ok(format!(
                "<tr><td>{}</td><td>{}</td><td>{} EUR</td></tr>",
                o.try_get::<i64, _>(0)?,
                escape(&o.try_get::<String, _>(1)?),
                decimal(o.try_get::<i64, _>(2)?)
            ))
        })
        .collect::<Result<String, sqlx::Error>>();
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return db_error(&e),
    };
    page(
        &format!("Hello, {name}"),
        &format!("<table><tr><th>Order</th><th>Status</th><th>Total</th></tr>{rows}</table>"),
    )
    .into_response()
}

/// The session's claims, for the facade's identity bridge.
async fn session(State(shop): State<Arc<Shop>>, headers: HeaderMap) -> Response {
    match customer_of(&shop, &headers).await {
        Ok(Some((id, name))) => {
            Json(json!({ "sub": id.to_string(), "name": name })).into_response()
        }
        Ok(None) => legacy_error(StatusCode::UNAUTHORIZED, "no-session", "log in first"),
        Err(e) => db_error(&e),
    }
}

async fn list_products(State(shop): State<Arc<Shop>>) -> Response {
    match sqlx::query("SELECT sku, title, price_cents FROM products ORDER BY sku")
        .fetch_all(&shop.db)
        .await
    {
        Ok(rows) => match rows.iter().map(product_json).collect::<Result<Vec<_>, _>>() {
            Ok(products) => Json(json!({ "products": products })).into_response(),
            Err(e) => db_error(&e),
        },
        Err(e) => db_error(&e),
    }
}

fn product_json(r: &sqlx::sqlite::SqliteRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "sku": r.try_get::<String, _>(0)?,
        "title": r.try_get::<String, _>(1)?,
        "unitPrice": decimal(r.try_get::<i64, _>(2)?),
    }))
}

async fn get_product(State(shop): State<Arc<Shop>>, Path(sku): Path<String>) -> Response {
    match sqlx::query("SELECT sku, title, price_cents FROM products WHERE sku = $1")
        .bind(&sku)
        .fetch_optional(&shop.db)
        .await
    {
        Ok(Some(r)) => match product_json(&r) {
            Ok(p) => Json(p).into_response(),
            Err(e) => db_error(&e),
        },
        Ok(None) => legacy_error(
            StatusCode::NOT_FOUND,
            "product-not-found",
            &format!("no product {sku}"),
        ),
        Err(e) => db_error(&e),
    }
}

async fn get_customer(State(shop): State<Arc<Shop>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return legacy_error(
            StatusCode::NOT_FOUND,
            "customer-not-found",
            "no such customer",
        );
    };
    match sqlx::query("SELECT id, name, email, discount_pct FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(&shop.db)
        .await
    {
        Ok(Some(r)) => {
            let customer = (|| -> Result<Value, sqlx::Error> {
                Ok(json!({
                    "customerId": r.try_get::<i64, _>(0)?,
                    "name": r.try_get::<String, _>(1)?,
                    "email": r.try_get::<String, _>(2)?,
                    "discountPercent": r.try_get::<i64, _>(3)?,
                }))
            })();
            match customer {
                Ok(c) => Json(c).into_response(),
                Err(e) => db_error(&e),
            }
        }
        Ok(None) => legacy_error(
            StatusCode::NOT_FOUND,
            "customer-not-found",
            &format!("no customer {id}"),
        ),
        Err(e) => db_error(&e),
    }
}

async fn list_orders(
    State(shop): State<Arc<Shop>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let customer = q.get("custId").and_then(|c| c.parse::<i64>().ok());
    let limit = q
        .get("pageSize")
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let ids: Result<Vec<i64>, _> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE ($1 IS NULL OR customer_id = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(customer)
    .bind(limit)
    .fetch_all(&shop.db)
    .await;
    let ids = match ids {
        Ok(ids) => ids,
        Err(e) => return db_error(&e),
    };
    let mut orders = Vec::new();
    for id in ids {
        match shop.order(id).await {
            Ok(Some(o)) => orders.push(o),
            Ok(None) => {}
            Err(e) => return db_error(&e),
        }
    }
    Json(json!({ "orders": orders })).into_response()
}

async fn get_order(State(shop): State<Arc<Shop>>, Path(id): Path<String>) -> Response {
    let Ok(n) = id.parse::<i64>() else {
        return legacy_error(
            StatusCode::NOT_FOUND,
            "order-not-found",
            &format!("no order {id}"),
        );
    };
    match shop.order(n).await {
        Ok(Some(o)) => Json(o).into_response(),
        Ok(None) => legacy_error(
            StatusCode::NOT_FOUND,
            "order-not-found",
            &format!("no order {id}"),
        ),
        Err(e) => db_error(&e),
    }
}

/// Places an order. The old app answers 200 (not 201) with the order and its full URL.
async fn create_order(State(shop): State<Arc<Shop>>, body: axum::body::Bytes) -> Response {
    let new: NewOrder = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => return legacy_error(StatusCode::BAD_REQUEST, "bad-request", &e.to_string()),
    };
    match shop
        .place(
            new.customer_id,
            &new.lines,
            "N",
            data::now_secs(),
            new.order_id,
        )
        .await
    {
        Ok(order) => {
            let id = order["orderId"].as_i64().unwrap_or_default();
            (
                StatusCode::OK,
                [(header::LOCATION, format!("{}/api/orders/{id}", shop.origin))],
                Json(order),
            )
                .into_response()
        }
        Err(Refused::Invalid(m)) => {
            legacy_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid-order", &m)
        }
        Err(e) => legacy_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests;
