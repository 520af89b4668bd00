//! The facade's mirror outbox on the store: mirrored writes are stored, claimed with a lease,
//! delivered and retried through the store's [`MirrorOutbox`]; the id map is kept through its
//! [`IdMaps`].

use strangler_catalog::{IdPair, OutboxItem};
use strangler_facade::OutboxStore;
use strangler_store::{IdMaps, MirrorOutbox};

/// The facade's mirror outbox, kept in the store.
pub struct StoreOutbox<S>(pub S);

#[async_trait::async_trait]
impl<S: MirrorOutbox + IdMaps> OutboxStore for StoreOutbox<S> {
    async fn put(&self, items: &[OutboxItem]) -> Result<(), String> {
        self.0
            .outbox_put(items)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn claim(&self, limit: i64, lease_ms: i64) -> Result<Vec<OutboxItem>, String> {
        self.0
            .outbox_claim(limit, lease_ms)
            .await
            .map_err(|e| e.to_string())
    }

    async fn done(&self, ids: &[i64]) -> Result<(), String> {
        self.0.outbox_done(ids).await.map_err(|e| e.to_string())
    }

    async fn waiting_since(&self) -> Result<Vec<(String, strangler_catalog::Side, i64)>, String> {
        self.0
            .outbox_waiting_since()
            .await
            .map_err(|e| e.to_string())
    }

    async fn ids_put(&self, pair: &IdPair) -> Result<(), String> {
        self.0
            .ids_put(pair)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn ids_since(&self, after: i64, limit: i64) -> Result<Vec<IdPair>, String> {
        self.0
            .ids_since(after, limit)
            .await
            .map_err(|e| e.to_string())
    }

    async fn retry(
        &self,
        id: i64,
        next_at_ms: i64,
        error: Option<&str>,
        dead: bool,
    ) -> Result<(), String> {
        self.0
            .outbox_retry(id, next_at_ms, error, dead)
            .await
            .map_err(|e| e.to_string())
    }
}
