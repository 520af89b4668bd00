//! [`SqlStore`]: the store on SQLite or PostgreSQL through sqlx's `Any` driver. Each role's
//! queries live in the file of its role; this one opens, migrates and configures the database.

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use strangler_catalog::TranslatorCheck;
use tokio::sync::watch;

use crate::StoreError;

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store on a SQL database.
#[derive(Clone)]
pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) url: String,
    /// The version after each change made through this process.
    pub(crate) changed: Arc<watch::Sender<i64>>,
    /// Compiles the translators of every catalog a change makes.
    pub(crate) translators: Arc<dyn TranslatorCheck>,
    /// How long after a change that moves a write owner the move takes effect (writes wait
    /// meanwhile, so that every replica learns of it first); 0: at once.
    pub(crate) owner_fence_ms: i64,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a write owner's move settles by default: past two polls of the default interval
/// (PostgreSQL's notifications reach replicas in milliseconds; polling is the safety net).
pub const DEFAULT_OWNER_FENCE_MS: i64 = 5_000;

/// The channel PostgreSQL notifies on after each change (its payload is the new version).
pub const NOTIFY_CHANNEL: &str = "strangler_catalog";

impl SqlStore {
    /// Opens (and migrates) the store at `url`: `sqlite://path/to/file.db` (created if missing)
    /// or `postgres://user@host/db`. Every change is validated with `translators` checking
    /// the catalog's translators.
    pub async fn connect(
        url: &str,
        translators: Arc<dyn TranslatorCheck>,
    ) -> Result<Self, StoreError> {
        Self::connect_with(url, translators, None).await
    }

    /// [`SqlStore::connect`], with at most `pool_size` connections (default: 8 for PostgreSQL,
    /// 4 for SQLite). Every replica holds its pool, plus one connection listening for changes,
    /// against PostgreSQL's `max_connections`.
    pub async fn connect_with(
        url: &str,
        translators: Arc<dyn TranslatorCheck>,
        pool_size: Option<u32>,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = if path.contains("mode=") {
                url.to_owned()
            } else {
                format!("{url}{sep}mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::Unavailable(format!(
                "`{url}` is not a store URL; use sqlite://FILE or postgres://USER@HOST/DB"
            )));
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(pool_size.unwrap_or(if backend == Backend::Sqlite { 4 } else { 8 }))
            .acquire_timeout(Duration::from_secs(3));
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets the dashboard read while a change is written; the busy timeout
                    // makes concurrent writers wait instead of failing.
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(&url).await?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migrating the catalog store: {e}")))?;
        let (changed, _) = watch::channel(0);
        Ok(Self {
            pool,
            backend,
            url,
            changed: Arc::new(changed),
            translators,
            owner_fence_ms: DEFAULT_OWNER_FENCE_MS,
        })
    }

    /// Sets how long a write owner's move settles before it takes effect (see
    /// [`strangler_catalog::OwnerMove`]): longer than any replica takes to learn of a change.
    pub fn with_owner_fence(mut self, fence: Duration) -> Self {
        self.owner_fence_ms = i64::try_from(fence.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Changes made through this process, as they commit (the in-process notification).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.changed.subscribe()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL the store was opened with (for a PostgreSQL listener).
    pub fn url(&self) -> &str {
        &self.url
    }
}
