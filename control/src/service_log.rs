//! The services' breaker, ejection and health changes into the catalog's log (and breaker
//! changes into the event outbox), from a bounded queue: the request path never waits for the
//! store, and a full queue drops (and logs).

use std::sync::Arc;

use strangler_catalog::ChangeMeta;
use strangler_services::cluster::{EventSink, ServiceEvent};
use strangler_store::{CatalogStore, EventOutbox};

/// A sink for service events that writes them to the store.
pub fn service_log(store: impl CatalogStore + EventOutbox + 'static) -> EventSink {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ServiceEvent>(1024);
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            let (action, target, detail, reason) = match &event {
                ServiceEvent::Breaker { service, state } => (
                    format!("breaker-{}", state.as_str()),
                    format!("service:{service}"),
                    serde_json::json!({ "breaker": state.as_str() }),
                    format!("the circuit breaker of {service} is now {}", state.as_str()),
                ),
                ServiceEvent::Ejected {
                    service,
                    instance,
                    for_ms,
                } => (
                    "instance-ejected".to_owned(),
                    format!("service:{service}"),
                    serde_json::json!({ "instance": instance, "for_ms": for_ms }),
                    format!("{instance} failed repeatedly and is ejected for {for_ms} ms"),
                ),
                ServiceEvent::Health {
                    service,
                    instance,
                    healthy,
                } => (
                    if *healthy {
                        "instance-healthy"
                    } else {
                        "instance-unhealthy"
                    }
                    .to_owned(),
                    format!("service:{service}"),
                    serde_json::json!({ "instance": instance, "healthy": healthy }),
                    format!(
                        "health checks mark {instance} {}",
                        if *healthy { "healthy" } else { "unhealthy" }
                    ),
                ),
            };
            let meta = ChangeMeta {
                force: false,
                actor: "facade".into(),
                reason,
            };
            if let ServiceEvent::Breaker { service, state } = &event {
                let kind = format!("io.strangler.breaker.{}", state.as_str().replace('-', "_"));
                let data = serde_json::json!({ "service": service, "breaker": state.as_str() });
                if let Err(e) = store.add_event("", &kind, &data).await {
                    tracing::warn!(error = %e, "breaker event not written to the event outbox");
                }
            }
            if let Err(e) = store
                .record(&meta, &action, &target, None, Some(detail))
                .await
            {
                tracing::warn!(error = %e, action, "service event not recorded");
            }
        }
    });
    Arc::new(move |event| {
        if tx.try_send(event).is_err() {
            tracing::warn!("service event queue full; event dropped");
        }
    })
}
