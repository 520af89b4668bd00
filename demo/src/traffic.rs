//! Simulated shoppers: each browses products, reads orders, places some, looks at its account
//! — through the facade, so the dashboard fills within seconds. Customers 1–4 place orders;
//! 5–8 only read, so that their order lists stay the same on both sides while the mirrored
//! writes catch up.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::data;

/// What the shoppers did.
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub failed: AtomicU64,
    pub orders_placed: AtomicU64,
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Runs `users` shoppers against `facade` until `stop` resolves. Each waits `pause` on
/// average between requests.
pub async fn run(
    facade: SocketAddr,
    users: usize,
    pause: Duration,
    counts: Arc<Counts>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    // One order in flight at a time: the mirrored copies then reach the orders service in the
    // order legacy numbered the orders, and both give the same ids. (Two writes racing each
    // other could be mirrored in the other order; a real migration keys records by legacy's
    // id rather than counting on that.)
    let ordering = Arc::new(tokio::sync::Semaphore::new(1));
    let mut tasks = tokio::task::JoinSet::new();
    for user in 0..users {
        let (client, counts, ordering) =
            (client.clone(), Arc::clone(&counts), Arc::clone(&ordering));
        tasks.spawn(async move {
            // The orders this shopper placed, read back once their mirrored copy has surely
            // arrived (a shopper reads its own orders: in canary it stays on one side).
            let placed: Mutex<Vec<(i64, Instant)>> = Mutex::default();
            let customer = i64::try_from(user % data::CUSTOMERS.len()).unwrap_or(0) + 1;
            let mut sid: Option<String> = None;
            loop {
                let wait = pause.mul_f64(0.5 + fastrand::f64());
                tokio::time::sleep(wait).await;
                let (method, path, body) = next_request(customer, &placed);
                let cookie = sid.clone();
                let started = Instant::now();
                let turn = if method == Method::POST && path == "/api/orders" {
                    ordering.acquire().await.ok()
                } else {
                    None
                };
                let result = send(
                    &client,
                    facade,
                    customer,
                    method,
                    &path,
                    body,
                    cookie.as_deref(),
                )
                .await;
                drop(turn);
                counts.requests.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok((status, set_cookie, json)) => {
                        if status >= 500 {
                            counts.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Some(c) = set_cookie {
                            sid = Some(c);
                        }
                        if path == "/api/orders" && status == 200 {
                            if let Some(id) = json.and_then(|v| v["orderId"].as_i64()) {
                                counts.orders_placed.fetch_add(1, Ordering::Relaxed);
                                if let Ok(mut p) = placed.lock() {
                                    p.push((id, started));
                                    let excess = p.len().saturating_sub(200);
                                    p.drain(..excess);
                                }
                            }
                        }
                    }
                    Err(_) => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    stop.await;
    tasks.abort_all();
}

fn next_request(
    customer: i64,
    placed: &Mutex<Vec<(i64, Instant)>>,
) -> (Method, String, Option<String>) {
    let seeded =
        || data::FIRST_ORDER + i64::try_from(fastrand::usize(..data::ORDERS.len())).unwrap_or(0);
    let sku = || data::PRODUCTS[fastrand::usize(..data::PRODUCTS.len())].0;
    match fastrand::u32(..100) {
        0..=29 => {
            // An order: a seeded one, or one placed more than 5 s ago.
            let recent = placed.lock().ok().and_then(|p| {
                let ready: Vec<i64> = p
                    .iter()
                    .filter(|(_, at)| at.elapsed() > Duration::from_secs(5))
                    .map(|(id, _)| *id)
                    .collect();
                (!ready.is_empty()).then(|| ready[fastrand::usize(..ready.len())])
            });
            let id = match recent {
                Some(id) if fastrand::bool() => id,
                _ => seeded(),
            };
            (Method::GET, format!("/api/orders/{id}"), None)
        }
        30..=37 if customer > 4 => (Method::GET, format!("/api/orders?custId={customer}"), None),
        30..=37 => {
            let lines: Vec<String> = (0..fastrand::usize(1..=3))
                .map(|_| format!(r#"{{"sku": "{}", "qty": {}}}"#, sku(), fastrand::u32(1..=4)))
                .collect();
            (
                Method::POST,
                "/api/orders".to_owned(),
                Some(format!(
                    r#"{{"customerId": {customer}, "lines": [{}]}}"#,
                    lines.join(", ")
                )),
            )
        }
        38..=54 => (Method::GET, "/api/products".to_owned(), None),
        55..=69 => (Method::GET, format!("/api/products/{}", sku()), None),
        70..=79 => (Method::GET, format!("/api/customers/{customer}"), None),
        80..=86 => (Method::GET, "/".to_owned(), None),
        87..=92 => (Method::GET, "/account".to_owned(), None),
        93..=95 => (
            Method::POST,
            "/login".to_owned(),
            Some(format!(
                "email={}&password=demo",
                data::CUSTOMERS[usize::try_from(customer - 1).unwrap_or(0)].2
            )),
        ),
        96..=97 => (Method::GET, "/api/session".to_owned(), None),
        _ => (
            Method::GET,
            format!("/api/orders/{}", 90_000 + fastrand::u32(..1000)),
            None,
        ),
    }
}

async fn send(
    client: &HttpClient,
    facade: SocketAddr,
    customer: i64,
    method: Method,
    path: &str,
    body: Option<String>,
    sid: Option<&str>,
) -> Result<
    (u16, Option<String>, Option<serde_json::Value>),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let form = path == "/login";
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{facade}{path}"))
        .header("user-agent", "strangler-demo-shopper")
        .header("x-customer", customer.to_string());
    if let Some(sid) = sid {
        req = req.header("cookie", format!("SID={sid}"));
    }
    if body.is_some() {
        req = req.header(
            "content-type",
            if form {
                "application/x-www-form-urlencoded"
            } else {
                "application/json"
            },
        );
    }
    let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req)).await??;
    let status = resp.status().as_u16();
    let set_cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("SID="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, set_cookie, serde_json::from_slice(&bytes).ok()))
}
