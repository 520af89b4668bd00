//! The services' breaker, ejection and health changes into the catalog's log (and breaker
//! changes into the event outbox), from a bounded queue: the request path never waits for the
//! store, and a full queue drops (and logs).
//!
//! The audit log is for people, so a flapping service writes **episodes**, not every
//! transition: a breaker writes one row when it opens and one when it closes again (with how
//! long it was open and how often it went between open and half-open meanwhile); an instance
//! one row when its health checks fail and one when they pass again; an ejection one row per
//! instance per ten minutes, with how many more ejections came in between. Subscribers to the
//! event outbox still get every breaker transition.

use std::collections::HashMap;
use std::sync::Arc;

use strangler_catalog::clock::now_ms;
use strangler_catalog::ChangeMeta;
use strangler_services::cluster::{BreakerState, EventSink, ServiceEvent};
use strangler_store::{CatalogStore, EventOutbox};

/// Ejections of one instance closer together than this are one episode.
const EJECTION_EPISODE_MS: i64 = 10 * 60 * 1000;
/// Open episodes kept at most (services and instances come and go with the catalog and
/// registrations); beyond, the oldest are forgotten (their closing row then stands alone).
const MAX_EPISODES: usize = 10_000;

/// One audit row: action, target, detail, reason.
pub type Row = (String, String, serde_json::Value, String);

/// What is going on, per service and per instance, between two rows.
#[derive(Debug, Default)]
pub struct Episodes {
    /// By service: when the breaker opened, and its transitions since.
    breakers: HashMap<String, (i64, u32)>,
    /// By (service, instance): when the checks failed, and flaps since.
    unhealthy: HashMap<(String, String), i64>,
    /// By (service, instance): the first and last ejection of the episode, and how many.
    ejections: HashMap<(String, String), (i64, i64, u32)>,
}

impl Episodes {
    /// The rows `event` writes at `now` (none while an episode goes on).
    pub fn rows(&mut self, event: &ServiceEvent, now: i64) -> Vec<Row> {
        if self.breakers.len() + self.unhealthy.len() + self.ejections.len() > MAX_EPISODES {
            // Bounded: forget what is open (its close is then written without its start).
            *self = Episodes::default();
        }
        match event {
            ServiceEvent::Breaker { service, state } => {
                let target = format!("service:{service}");
                match (state, self.breakers.get_mut(service)) {
                    (BreakerState::Closed, _) => {
                        let Some((since, transitions)) = self.breakers.remove(service) else {
                            return vec![(
                                "breaker-closed".into(),
                                target,
                                serde_json::json!({ "breaker": "closed" }),
                                format!("the circuit breaker of {service} is closed"),
                            )];
                        };
                        let open_ms = (now - since).max(0);
                        vec![(
                            "breaker-closed".into(),
                            target,
                            serde_json::json!({
                                "breaker": "closed",
                                "open_ms": open_ms,
                                "transitions": transitions,
                            }),
                            format!(
                                "the circuit breaker of {service} closed after {:.1} s open \
                                 ({transitions} transitions between open and half-open meanwhile)",
                                open_ms as f64 / 1000.0
                            ),
                        )]
                    }
                    (_, Some((_, transitions))) => {
                        *transitions += 1;
                        Vec::new()
                    }
                    (state, None) => {
                        self.breakers.insert(service.clone(), (now, 0));
                        vec![(
                            "breaker-open".into(),
                            target,
                            serde_json::json!({ "breaker": state.as_str() }),
                            format!(
                                "the circuit breaker of {service} opened ({}); the closing \
                                 row says how long it stayed open",
                                state.as_str()
                            ),
                        )]
                    }
                }
            }
            ServiceEvent::Health {
                service,
                instance,
                healthy,
            } => {
                let key = (service.clone(), instance.clone());
                let target = format!("service:{service}");
                match (healthy, self.unhealthy.remove(&key)) {
                    (false, Some(since)) => {
                        self.unhealthy.insert(key, since);
                        Vec::new()
                    }
                    (false, None) => {
                        self.unhealthy.insert(key, now);
                        vec![(
                            "instance-unhealthy".into(),
                            target,
                            serde_json::json!({ "instance": instance, "healthy": false }),
                            format!("health checks mark {instance} unhealthy"),
                        )]
                    }
                    (true, since) => {
                        let down_ms = since.map(|s| (now - s).max(0));
                        vec![(
                            "instance-healthy".into(),
                            target,
                            serde_json::json!({
                                "instance": instance,
                                "healthy": true,
                                "unhealthy_ms": down_ms,
                            }),
                            match down_ms {
                                Some(ms) => format!(
                                    "health checks mark {instance} healthy again after {:.1} s",
                                    ms as f64 / 1000.0
                                ),
                                None => format!("health checks mark {instance} healthy"),
                            },
                        )]
                    }
                }
            }
            ServiceEvent::Ejected {
                service,
                instance,
                for_ms,
            } => {
                let key = (service.clone(), instance.clone());
                let target = format!("service:{service}");
                match self.ejections.get_mut(&key) {
                    Some((_, last, more)) if now - *last < EJECTION_EPISODE_MS => {
                        *last = now;
                        *more += 1;
                        Vec::new()
                    }
                    previous => {
                        let before = previous.map(|(first, last, more)| (*first, *last, *more));
                        self.ejections.insert(key, (now, now, 0));
                        let mut reason =
                            format!("{instance} failed repeatedly and is ejected for {for_ms} ms");
                        if let Some((first, last, more)) = before.filter(|b| b.2 > 0) {
                            reason.push_str(&format!(
                                "; its previous episode had {more} more ejections over {:.0} s",
                                (last - first) as f64 / 1000.0
                            ));
                        }
                        vec![(
                            "instance-ejected".into(),
                            target,
                            serde_json::json!({
                                "instance": instance,
                                "for_ms": for_ms,
                                "previous_episode_more": before.map(|b| b.2),
                            }),
                            reason,
                        )]
                    }
                }
            }
        }
    }
}

/// A sink for service events that writes them to the store.
pub fn service_log(store: impl CatalogStore + EventOutbox + 'static) -> EventSink {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ServiceEvent>(1024);
    tokio::spawn(async move {
        let mut episodes = Episodes::default();
        while let Some(event) = rx.recv().await {
            if let ServiceEvent::Breaker { service, state } = &event {
                let kind = format!("io.strangler.breaker.{}", state.as_str().replace('-', "_"));
                let data = serde_json::json!({ "service": service, "breaker": state.as_str() });
                if let Err(e) = store.add_event("", &kind, &data).await {
                    tracing::warn!(error = %e, "breaker event not written to the event outbox");
                }
            }
            for (action, target, detail, reason) in episodes.rows(&event, now_ms()) {
                let meta = ChangeMeta {
                    force: false,
                    actor: "facade".into(),
                    reason,
                };
                if let Err(e) = store
                    .record(&meta, &action, &target, None, Some(detail))
                    .await
                {
                    tracing::warn!(error = %e, action, "service event not recorded");
                }
            }
        }
    });
    Arc::new(move |event| {
        if tx.try_send(event).is_err() {
            tracing::warn!("service event queue full; event dropped");
        }
    })
}

#[cfg(test)]
mod tests;
