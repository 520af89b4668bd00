//! What several modules' tests share.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use strangler_catalog::{IdPair, OutboxItem, Side};

use crate::shadow::outbox::OutboxStore;

/// An empty outbox that counts how often it is polled.
#[derive(Default)]
pub struct Counted {
    /// Reads of the read-your-writes watermarks.
    pub watermark_reads: AtomicUsize,
    /// Reads of new id pairs.
    pub id_reads: AtomicUsize,
}

#[async_trait::async_trait]
impl OutboxStore for Counted {
    async fn put(&self, _: &[OutboxItem]) -> Result<(), String> {
        Ok(())
    }
    async fn claim(&self, _: i64, _: i64) -> Result<Vec<OutboxItem>, String> {
        Ok(Vec::new())
    }
    async fn done(&self, _: &[i64]) -> Result<(), String> {
        Ok(())
    }
    async fn waiting_since(&self) -> Result<Vec<(String, Side, i64)>, String> {
        self.watermark_reads.fetch_add(1, Relaxed);
        Ok(Vec::new())
    }
    async fn retry(&self, _: i64, _: i64, _: Option<&str>, _: bool) -> Result<(), String> {
        Ok(())
    }
    async fn ids_put(&self, _: &IdPair) -> Result<(), String> {
        Ok(())
    }
    async fn ids_since(&self, _: i64, _: i64) -> Result<Vec<IdPair>, String> {
        self.id_reads.fetch_add(1, Relaxed);
        Ok(Vec::new())
    }
}
