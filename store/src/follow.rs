//! Following the catalog: every process that serves traffic keeps the latest catalog in memory
//! and learns of changes three ways — an in-process notification for changes made here,
//! PostgreSQL `LISTEN/NOTIFY` for changes made by other replicas, and polling the version as a
//! safety net. When the store cannot be reached the last catalog stays in force and the
//! problem is reported until the store returns.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use strangler_catalog::Catalog;

use crate::{Backend, CatalogStore, Registrations, SqlStore, StoreError, NOTIFY_CHANNEL};

/// The store's health as the follower last saw it.
#[derive(Debug, Default)]
pub struct StoreHealth {
    problem: Mutex<Option<String>>,
}

impl StoreHealth {
    /// `None` when the last contact with the store worked.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn set(&self, problem: Option<String>) {
        let mut p = self.problem.lock().unwrap_or_else(|e| e.into_inner());
        if *p != problem {
            match &problem {
                Some(why) => {
                    tracing::warn!(%why, "catalog store unavailable; serving the last catalog")
                }
                None => tracing::info!("catalog store reachable again"),
            }
            *p = problem;
        }
    }
}

/// A running follower: the latest catalog and the store's health.
#[derive(Debug, Clone)]
pub struct Follower {
    pub catalog: watch::Receiver<Arc<Catalog>>,
    pub health: Arc<StoreHealth>,
}

/// Loads the catalog once (failing if the store cannot be read) and follows it from then on.
pub async fn follow(store: SqlStore, poll: Duration) -> Result<Follower, StoreError> {
    let first = store.load().await?;
    let (tx, rx) = watch::channel(Arc::new(first));
    let health = Arc::new(StoreHealth::default());
    let (wake_tx, wake_rx) = mpsc::channel::<()>(16);
    if store.backend() == Backend::Postgres {
        tokio::spawn(listen(store.url().to_owned(), wake_tx.clone()));
    }
    let mut local = store.subscribe();
    let local_wake = wake_tx;
    tokio::spawn(async move {
        while local.changed().await.is_ok() {
            if local_wake.send(()).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(run(store, tx, Arc::clone(&health), wake_rx, poll));
    Ok(Follower {
        catalog: rx,
        health,
    })
}

async fn run(
    store: SqlStore,
    tx: watch::Sender<Arc<Catalog>>,
    health: Arc<StoreHealth>,
    mut wake: mpsc::Receiver<()>,
    poll: Duration,
) {
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A store that hangs (a stalled connection, a server that stopped answering) must show as
    // a problem within the poll interval, not when its connection finally times out.
    let limit = (poll / 2).max(Duration::from_millis(200));
    let slow = || format!("the catalog store did not answer within {limit:?}");
    loop {
        let notified = tokio::select! {
            w = wake.recv() => {
                if w.is_none() && tx.is_closed() {
                    return;
                }
                true
            }
            _ = tick.tick() => false,
            () = tx.closed() => return,
        };
        let (current, registered) = {
            let c = tx.borrow();
            (c.version, c.registered.clone())
        };
        // A poll reads the version and the live registrations (which expire with time); a
        // notification or a new version loads everything.
        let load = if notified {
            true
        } else {
            let polled = tokio::time::timeout(limit, async {
                (store.version().await, store.registered().await)
            })
            .await;
            match polled {
                Err(_) => {
                    health.set(Some(slow()));
                    false
                }
                Ok((Ok(v), Ok(live))) => {
                    health.set(None);
                    if v == current && live != registered {
                        let mut next = (**tx.borrow()).clone();
                        next.registered = live;
                        tracing::info!("registered instances changed");
                        tx.send_replace(Arc::new(next));
                    }
                    v != current
                }
                Ok((Err(e), _) | (_, Err(e))) => {
                    health.set(Some(e.to_string()));
                    false
                }
            }
        };
        if !load {
            continue;
        }
        match tokio::time::timeout(limit.max(Duration::from_secs(2)), store.load())
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable(slow())))
        {
            Ok(catalog) => {
                health.set(None);
                if catalog.version != current || catalog.registered != registered {
                    tracing::info!(version = catalog.version, "catalog changed");
                    tx.send_replace(Arc::new(catalog));
                }
            }
            Err(e) => health.set(Some(e.to_string())),
        }
    }
}

/// Forwards PostgreSQL notifications as wake-ups, reconnecting after failures.
async fn listen(url: String, wake: mpsc::Sender<()>) {
    loop {
        match sqlx::postgres::PgListener::connect(&url).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(NOTIFY_CHANNEL).await {
                    tracing::warn!(error = %e, "cannot LISTEN for catalog changes");
                } else {
                    // A reconnect may have missed notifications: load once to catch up.
                    let _ = wake.try_send(());
                    loop {
                        match listener.recv().await {
                            Ok(_) => {
                                if wake.send(()).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "catalog notifications interrupted");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "catalog listener cannot connect yet"),
        }
        if wake.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
