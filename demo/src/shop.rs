//! The legacy shop's routes and its in-memory data.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Product {
    product_id: u32,
    title: String,
    /// Decimal string, as the old app always did.
    unit_price: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    order_id: u32,
    customer_id: u32,
    /// `N` new, `P` paid, `S` shipped, `C` cancelled.
    status: String,
    lines: Vec<OrderLine>,
    total_amount: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderLine {
    product_id: u32,
    quantity: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewOrder {
    customer_id: u32,
    lines: Vec<OrderLine>,
}

/// The shop's data and its public origin (used in the absolute redirects old apps like).
#[derive(Debug)]
pub struct Shop {
    origin: String,
    products: BTreeMap<u32, Product>,
    orders: Mutex<BTreeMap<u32, Order>>,
}

impl Shop {
    /// A few products and orders, for the demo.
    pub fn sample(origin: String) -> Arc<Self> {
        let products = [
            (1, "Espresso beans 1kg", "24.90"),
            (2, "Milk jug", "12.50"),
            (3, "Grinder", "149.00"),
        ]
        .into_iter()
        .map(|(id, title, price)| {
            (
                id,
                Product {
                    product_id: id,
                    title: title.to_owned(),
                    unit_price: price.to_owned(),
                },
            )
        })
        .collect();
        let shop = Self {
            origin,
            products,
            orders: Mutex::new(BTreeMap::new()),
        };
        let _ = shop.place(&NewOrder {
            customer_id: 7,
            lines: vec![OrderLine {
                product_id: 1,
                quantity: 2,
            }],
        });
        Arc::new(shop)
    }

    fn place(&self, new: &NewOrder) -> Result<Order, String> {
        if new.lines.is_empty() {
            return Err("an order needs at least one line".into());
        }
        let mut cents: u64 = 0;
        for line in &new.lines {
            let product = self
                .products
                .get(&line.product_id)
                .ok_or_else(|| format!("unknown product {}", line.product_id))?;
            cents += price_cents(&product.unit_price) * u64::from(line.quantity);
        }
        let mut orders = self
            .orders
            .lock()
            .map_err(|_| "order book unavailable".to_owned())?;
        let id = orders.keys().next_back().map_or(1000, |k| k + 1);
        let order = Order {
            order_id: id,
            customer_id: new.customer_id,
            status: "N".into(),
            lines: new.lines.clone(),
            total_amount: format!("{}.{:02}", cents / 100, cents % 100),
        };
        orders.insert(id, order.clone());
        Ok(order)
    }
}

fn price_cents(decimal: &str) -> u64 {
    let (whole, frac) = decimal.split_once('.').unwrap_or((decimal, "0"));
    whole.parse::<u64>().unwrap_or(0) * 100 + format!("{frac:0<2}")[..2].parse::<u64>().unwrap_or(0)
}

/// The legacy error envelope: `{"error": {"code": …, "message": …}}`.
fn legacy_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// The legacy shop's router.
pub fn legacy_shop(shop: Arc<Shop>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/api/products", get(list_products))
        .route("/api/products/{id}", get(get_product))
        .route("/api/orders", get(list_orders).post(create_order))
        .route("/api/orders/{id}", get(get_order))
        .fallback(|| async { legacy_error(StatusCode::NOT_FOUND, "E404", "no such page") })
        .with_state(shop)
}

async fn home(State(shop): State<Arc<Shop>>) -> Html<String> {
    let mut rows = String::new();
    for p in shop.products.values() {
        rows.push_str(&format!("<li>{} — {} EUR</li>", p.title, p.unit_price));
    }
    Html(format!(
        "<!doctype html><html><head><title>Legacy Shop</title></head><body><h1>Legacy Shop</h1><ul>{rows}</ul><a href=\"/login\">Log in</a></body></html>"
    ))
}

/// Old apps redirect with their own absolute origin; the facade rewrites it.
async fn login(State(shop): State<Arc<Shop>>) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, format!("{}/", shop.origin))],
    )
        .into_response()
}

async fn list_products(State(shop): State<Arc<Shop>>) -> Json<Vec<Product>> {
    Json(shop.products.values().cloned().collect())
}

async fn get_product(State(shop): State<Arc<Shop>>, Path(id): Path<String>) -> Response {
    match id.parse::<u32>().ok().and_then(|id| shop.products.get(&id)) {
        Some(p) => Json(p.clone()).into_response(),
        None => legacy_error(StatusCode::NOT_FOUND, "E404", "product not found"),
    }
}

async fn list_orders(State(shop): State<Arc<Shop>>) -> Response {
    match shop.orders.lock() {
        Ok(orders) => Json(orders.values().cloned().collect::<Vec<_>>()).into_response(),
        Err(_) => legacy_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "E500",
            "order book unavailable",
        ),
    }
}

async fn get_order(State(shop): State<Arc<Shop>>, Path(id): Path<String>) -> Response {
    let found = shop
        .orders
        .lock()
        .ok()
        .and_then(|o| id.parse::<u32>().ok().and_then(|id| o.get(&id).cloned()));
    match found {
        Some(o) => Json(o).into_response(),
        None => legacy_error(StatusCode::NOT_FOUND, "E404", "order not found"),
    }
}

async fn create_order(State(shop): State<Arc<Shop>>, body: axum::body::Bytes) -> Response {
    let new: NewOrder = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => return legacy_error(StatusCode::BAD_REQUEST, "E400", &e.to_string()),
    };
    match shop.place(&new) {
        Ok(order) => (
            StatusCode::CREATED,
            [(
                header::LOCATION,
                format!("{}/api/orders/{}", shop.origin, order.order_id),
            )],
            Json(order),
        )
            .into_response(),
        Err(e) => legacy_error(StatusCode::UNPROCESSABLE_ENTITY, "E422", &e),
    }
}

#[cfg(test)]
mod tests;
