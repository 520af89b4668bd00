//! The extracted `orders` service: its own SQLite database and its own model — snake_case,
//! integer cents, status words, RFC 3339 timestamps, `problem+json` errors, `/v2` paths, 201
//! for a new order. The anti-corruption translator (`translators/orders.toml`) keeps the
//! legacy contract for the monolith's clients.
//!
//! It carries a planted, realistic bug unless started `fixed`: a discounted total is cut to
//! the cent instead of rounded (12.75 EUR less 10 % is 11.475: the monolith says 11.48, the
//! service 11.47). The shadow comparison shows it as the signature `value $.total` on orders of
//! discounted customers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::{Row, SqlitePool};

use crate::data;

/// The orders service.
#[derive(Debug, Clone)]
pub struct Orders {
    db: SqlitePool,
    origin: String,
    /// Discounts rounded correctly (the planted bug removed).
    fixed: bool,
}

impl Orders {
    /// Opens (and on first use seeds) the service's database.
    pub async fn open(db: SqlitePool, origin: String, fixed: bool) -> Result<Self, sqlx::Error> {
        for ddl in [
            "CREATE TABLE IF NOT EXISTS prices (sku TEXT PRIMARY KEY, unit_price_cents INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS loyalty (customer_id INTEGER PRIMARY KEY, discount_percent INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, \
             status TEXT NOT NULL, total_cents INTEGER NOT NULL, placed_at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS lines (order_id INTEGER NOT NULL, n INTEGER NOT NULL, sku TEXT NOT NULL, \
             qty INTEGER NOT NULL, unit_price_cents INTEGER NOT NULL, PRIMARY KEY (order_id, n))",
        ] {
            sqlx::query(ddl).execute(&db).await?;
        }
        let svc = Self { db, origin, fixed };
        let seeded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM prices")
            .fetch_one(&svc.db)
            .await?;
        if seeded == 0 {
            let mut tx = svc.db.begin().await?;
            for (sku, _, cents) in data::PRODUCTS {
                sqlx::query("INSERT INTO prices VALUES ($1, $2)")
                    .bind(sku)
                    .bind(cents)
                    .execute(&mut *tx)
                    .await?;
            }
            for (id, _, _, pct) in data::CUSTOMERS {
                sqlx::query("INSERT INTO loyalty VALUES ($1, $2)")
                    .bind(id)
                    .bind(pct)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            for (customer, letter, days_ago, lines) in data::ORDERS {
                let status = match *letter {
                    "P" => "paid",
                    "S" => "shipped",
                    "C" => "cancelled",
                    _ => "new",
                };
                let lines: Vec<Line> = lines
                    .iter()
                    .map(|(sku, qty)| Line {
                        sku: (*sku).to_owned(),
                        qty: *qty,
                    })
                    .collect();
                svc.place(*customer, &lines, status, data::seeded_at(*days_ago), None)
                    .await
                    .map_err(|e| sqlx::Error::Protocol(e.detail))?;
            }
        }
        if fixed {
            // The fix ships with its data repair: totals the bug cut are computed again.
            let repaired = sqlx::query(
                "UPDATE orders SET total_cents = \
                 ((SELECT SUM(qty * unit_price_cents) FROM lines WHERE lines.order_id = orders.order_id) \
                  * (100 - (SELECT discount_percent FROM loyalty WHERE loyalty.customer_id = orders.customer_id)) \
                  + 50) / 100",
            )
            .execute(&svc.db)
            .await?;
            let _ = repaired.rows_affected();
        }
        Ok(svc)
    }

    /// The discounted total: rounded half up when fixed, cut (the planted bug) otherwise.
    fn total(&self, subtotal: i64, percent: i64) -> i64 {
        let scaled = subtotal * (100 - percent);
        if self.fixed {
            (scaled + 50) / 100
        } else {
            scaled / 100
        }
    }

    async fn place(
        &self,
        customer: i64,
        lines: &[Line],
        status: &str,
        at: i64,
        given: Option<i64>,
    ) -> Result<Value, Problem> {
        if lines.is_empty() || lines.len() > 20 {
            return Err(Problem::invalid("an order has 1 to 20 lines".into()));
        }
        // IMMEDIATE: take the write lock now (waiting up to the busy timeout), not on the
        // first write, where two concurrent orders would fail with "database is locked".
        let mut tx = self
            .db
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(Problem::db)?;
        let percent: Option<i64> =
            sqlx::query_scalar("SELECT discount_percent FROM loyalty WHERE customer_id = $1")
                .bind(customer)
                .fetch_optional(&mut *tx)
                .await
                .map_err(Problem::db)?;
        let Some(percent) = percent else {
            return Err(Problem::invalid(format!("unknown customer {customer}")));
        };
        let mut priced = Vec::new();
        let mut subtotal = 0;
        for l in lines {
            if !(1..=99).contains(&l.qty) {
                return Err(Problem::invalid(format!(
                    "quantity {} of {} is not 1-99",
                    l.qty, l.sku
                )));
            }
            let price: Option<i64> =
                sqlx::query_scalar("SELECT unit_price_cents FROM prices WHERE sku = $1")
                    .bind(&l.sku)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(Problem::db)?;
            let Some(price) = price else {
                return Err(Problem::invalid(format!("unknown product {}", l.sku)));
            };
            subtotal += price * l.qty;
            priced.push((l, price));
        }
        // A mirrored create carries the id legacy gave the order: the service takes it, so
        // that both name the order alike; its own creates number on from the highest.
        let id: i64 = match given {
            Some(id) => {
                let taken: Option<i64> =
                    sqlx::query_scalar("SELECT order_id FROM orders WHERE order_id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(Problem::db)?;
                if taken.is_some() {
                    return Err(Problem {
                        status: StatusCode::CONFLICT,
                        title: "order-exists",
                        detail: format!("order {id} exists already"),
                    });
                }
                id
            }
            None => sqlx::query_scalar("SELECT COALESCE(MAX(order_id) + 1, $1) FROM orders")
                .bind(data::FIRST_ORDER)
                .fetch_one(&mut *tx)
                .await
                .map_err(Problem::db)?,
        };
        sqlx::query("INSERT INTO orders VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(customer)
            .bind(status)
            .bind(self.total(subtotal, percent))
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(Problem::db)?;
        for (n, (l, price)) in priced.iter().enumerate() {
            sqlx::query("INSERT INTO lines VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(i64::try_from(n).unwrap_or(0))
                .bind(&l.sku)
                .bind(l.qty)
                .bind(price)
                .execute(&mut *tx)
                .await
                .map_err(Problem::db)?;
        }
        tx.commit().await.map_err(Problem::db)?;
        match self.order(id).await.map_err(Problem::db)? {
            Some(o) => Ok(o),
            None => Err(Problem::db(sqlx::Error::RowNotFound)),
        }
    }

    async fn order(&self, id: i64) -> Result<Option<Value>, sqlx::Error> {
        let Some(row) = sqlx::query(
            "SELECT order_id, customer_id, status, total_cents, placed_at FROM orders WHERE order_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        else {
            return Ok(None);
        };
        let lines = sqlx::query(
            "SELECT sku, qty, unit_price_cents FROM lines WHERE order_id = $1 ORDER BY n",
        )
        .bind(id)
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(|l| {
            Ok(json!({
                "sku": l.try_get::<String, _>(0)?,
                "qty": l.try_get::<i64, _>(1)?,
                "unit_price_cents": l.try_get::<i64, _>(2)?,
            }))
        })
        .collect::<Result<Vec<Value>, sqlx::Error>>()?;
        let at: i64 = row.try_get(4)?;
        let (y, m, d) = data::civil(at.div_euclid(86_400));
        let secs = at.rem_euclid(86_400);
        Ok(Some(json!({
            "order_id": row.try_get::<i64, _>(0)?,
            "customer_id": row.try_get::<i64, _>(1)?,
            "status": row.try_get::<String, _>(2)?,
            "total_cents": row.try_get::<i64, _>(3)?,
            "placed_at": format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
                secs / 3600,
                secs % 3600 / 60,
                secs % 60
            ),
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
struct NewOrder {
    /// Given by the facade for a create mirrored from legacy: legacy's id of the order.
    #[serde(default)]
    order_id: Option<i64>,
    customer_id: i64,
    lines: Vec<Line>,
}

/// An RFC 9457 problem.
#[derive(Debug)]
struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

impl Problem {
    fn invalid(detail: String) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            title: "invalid-order",
            detail,
        }
    }

    fn db(e: sqlx::Error) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "internal",
            detail: e.to_string(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            Json(json!({
                "type": format!("https://orders.example/problems/{}", self.title),
                "title": self.title,
                "status": self.status.as_u16(),
                "detail": self.detail,
            })),
        )
            .into_response()
    }
}

fn not_found(id: &str) -> Response {
    Problem {
        status: StatusCode::NOT_FOUND,
        title: "order-not-found",
        detail: format!("no order {id}"),
    }
    .into_response()
}

/// The orders service's router.
pub fn orders_service(svc: Arc<Orders>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v2/orders", get(list).post(create))
        .route("/v2/orders/{id}", get(one))
        .fallback(|| async {
            Problem {
                status: StatusCode::NOT_FOUND,
                title: "not-found",
                detail: "no such resource".into(),
            }
        })
        .with_state(svc)
}

async fn one(State(svc): State<Arc<Orders>>, Path(id): Path<String>) -> Response {
    let Ok(n) = id.parse::<i64>() else {
        return not_found(&id);
    };
    match svc.order(n).await {
        Ok(Some(o)) => Json(o).into_response(),
        Ok(None) => not_found(&id),
        Err(e) => Problem::db(e).into_response(),
    }
}

async fn list(
    State(svc): State<Arc<Orders>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let customer = q.get("customer_id").and_then(|c| c.parse::<i64>().ok());
    let limit = q
        .get("limit")
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let ids: Vec<i64> = match sqlx::query_scalar(
        "SELECT order_id FROM orders WHERE ($1 IS NULL OR customer_id = $1) ORDER BY order_id DESC LIMIT $2",
    )
    .bind(customer)
    .bind(limit)
    .fetch_all(&svc.db)
    .await
    {
        Ok(ids) => ids,
        Err(e) => return Problem::db(e).into_response(),
    };
    let mut orders = Vec::new();
    for id in ids {
        match svc.order(id).await {
            Ok(Some(o)) => orders.push(o),
            Ok(None) => {}
            Err(e) => return Problem::db(e).into_response(),
        }
    }
    Json(json!({ "orders": orders })).into_response()
}

async fn create(State(svc): State<Arc<Orders>>, body: axum::body::Bytes) -> Response {
    let new: NewOrder = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => {
            return Problem {
                status: StatusCode::BAD_REQUEST,
                title: "bad-request",
                detail: e.to_string(),
            }
            .into_response()
        }
    };
    match svc
        .place(
            new.customer_id,
            &new.lines,
            "new",
            data::now_secs(),
            new.order_id,
        )
        .await
    {
        Ok(order) => {
            let id = order["order_id"].as_i64().unwrap_or_default();
            (
                StatusCode::CREATED,
                [(header::LOCATION, format!("{}/v2/orders/{id}", svc.origin))],
                Json(order),
            )
                .into_response()
        }
        Err(p) => p.into_response(),
    }
}
