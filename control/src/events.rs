//! Delivers the catalog's events to the configured sinks, as CloudEvents 1.0 (structured JSON):
//! POSTed to each webhook (signed with `X-Strangler-Signature: sha256=<HMAC-SHA256 of the
//! body>` when a secret is set) and published to NATS (`<subject>.<context>`). The replica that
//! holds the autopilot's lease delivers, so each sink sees one sender; a delivery that fails is
//! retried with exponential backoff (0.5 s doubling up to a minute) until the retry horizon,
//! and a context's next event waits for the one before it: at least once, in order per context.
//! The facade never waits for any of it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sha2::Sha256;
use strangler_catalog::{clock, Delivery, Event};
use strangler_store::{EventOutbox, SqlStore};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::autopilot::Status;

/// Where events go and how failing deliveries are retried.
#[derive(Clone, Default)]
pub struct EventsSettings {
    pub webhooks: Vec<String>,
    pub webhook_secret: Option<String>,
    /// `host:port` of a NATS server.
    pub nats: Option<String>,
    pub nats_subject: String,
    pub retry_horizon: std::time::Duration,
}

impl std::fmt::Debug for EventsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsSettings")
            .field("webhooks", &self.webhooks)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<set>"),
            )
            .field("nats", &self.nats)
            .field("nats_subject", &self.nats_subject)
            .field("retry_horizon", &self.retry_horizon)
            .finish()
    }
}

const TICK: Duration = Duration::from_millis(500);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// The event as a structured-mode CloudEvent.
pub fn cloud_event(e: &Event) -> Value {
    let mut ce = json!({
        "specversion": "1.0",
        "id": e.id.to_string(),
        "source": "urn:strangler:catalog",
        "type": e.kind,
        "time": clock::rfc3339(e.created_ms, true),
        "datacontenttype": "application/json",
        "data": e.data,
    });
    if !e.context.is_empty() {
        ce["subject"] = e.context.clone().into();
    }
    ce
}

/// `sha256=<hex>` of the body under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Runs the deliveries until `stop` turns true.
pub async fn run(
    store: SqlStore,
    settings: EventsSettings,
    status: Arc<Status>,
    mut stop: watch::Receiver<bool>,
) {
    if settings.webhooks.is_empty() && settings.nats.is_none() {
        return;
    }
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let horizon_ms = i64::try_from(settings.retry_horizon.as_millis()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        if !status.is_leader() {
            continue;
        }
        for url in &settings.webhooks {
            let sink = format!("webhook:{url}");
            let due = match store.events_due(&sink, 100, horizon_ms).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(sink, error = %e, "events: cannot read the outbox");
                    continue;
                }
            };
            for d in &due {
                let result = webhook(&client, url, settings.webhook_secret.as_deref(), d).await;
                settle(&store, &sink, horizon_ms, d, result).await;
            }
        }
        if let Some(server) = &settings.nats {
            let sink = format!("nats:{server}");
            let due = match store.events_due(&sink, 100, horizon_ms).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(sink, error = %e, "events: cannot read the outbox");
                    continue;
                }
            };
            if due.is_empty() {
                continue;
            }
            let result = nats_publish(server, &settings.nats_subject, &due).await;
            for d in &due {
                settle(
                    &store,
                    &sink,
                    horizon_ms,
                    d,
                    result.as_ref().map(|_| ()).map_err(Clone::clone),
                )
                .await;
            }
        }
    }
}

async fn settle(
    store: &SqlStore,
    sink: &str,
    horizon_ms: i64,
    d: &Delivery,
    result: Result<(), String>,
) {
    let now = clock::now_ms();
    let outcome = match result {
        Ok(()) => store.event_delivered(sink, d.event.id).await,
        Err(error) => {
            let backoff = 500i64
                .saturating_mul(1i64 << d.attempts.clamp(0, 7))
                .min(60_000);
            let dead = now - d.event.created_ms > horizon_ms;
            if dead {
                tracing::warn!(
                    sink,
                    event = d.event.id,
                    error,
                    "events: given up after the retry horizon"
                );
            }
            store
                .event_failed(sink, d.event.id, now + backoff, &error, dead)
                .await
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(sink, error = %e, "events: the delivery's outcome was not recorded; it will be sent again");
    }
}

async fn webhook(
    client: &HttpClient,
    url: &str,
    secret: Option<&str>,
    d: &Delivery,
) -> Result<(), String> {
    let body = cloud_event(&d.event).to_string();
    let mut req = hyper::Request::post(url)
        .header("content-type", "application/cloudevents+json")
        .header("user-agent", "strangler-events");
    if let Some(secret) = secret {
        req = req.header("x-strangler-signature", signature(secret, body.as_bytes()));
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(SEND_TIMEOUT, client.request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("cannot reach the webhook: {e}"))?;
    let status = resp.status();
    // Read the answer so that the connection can be reused.
    let _ = tokio::time::timeout(SEND_TIMEOUT, resp.into_body().collect()).await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered {status}"))
    }
}

/// Publishes the events to NATS over its text protocol: CONNECT, one PUB each, then PING; the
/// server's PONG says it has processed every PUB before it.
async fn nats_publish(server: &str, prefix: &str, due: &[Delivery]) -> Result<(), String> {
    let work = async {
        let stream = TcpStream::connect(server)
            .await
            .map_err(|e| format!("cannot reach NATS at {server}: {e}"))?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let info = lines
            .next_line()
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        if !info.starts_with("INFO") {
            return Err(format!("not a NATS server at {server}: {info}"));
        }
        let mut out = String::from(
            "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"strangler\"}\r\n",
        );
        for d in due {
            let subject = if d.event.context.is_empty() {
                format!("{prefix}._")
            } else {
                format!("{prefix}.{}", d.event.context)
            };
            let body = cloud_event(&d.event).to_string();
            out.push_str(&format!("PUB {subject} {}\r\n{body}\r\n", body.len()));
        }
        out.push_str("PING\r\n");
        write
            .write_all(out.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
            if line.starts_with("PONG") {
                return Ok(());
            }
            if line.starts_with("-ERR") {
                return Err(format!("NATS refused: {line}"));
            }
        }
        Err("NATS closed the connection".to_owned())
    };
    tokio::time::timeout(SEND_TIMEOUT, work)
        .await
        .map_err(|_| "NATS timed out".to_owned())?
}

#[cfg(test)]
mod tests;
