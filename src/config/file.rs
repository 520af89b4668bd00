//! The configuration file's shape: one struct per TOML section, every field optional so that
//! the environment and flags can fill what the file leaves out; unknown keys are refused.

use super::values::{
    Addr, Delay, Dur, Filter, HostMode, LogFormat, Net, OptDur, Ranged, Retention, Token,
    UpstreamProtocol, Url,
};
use serde::Deserialize;

/// The file, as written. Every key is optional; defaults fill the rest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) listen: Option<Addr>,
    pub(super) admin: Option<Addr>,
    pub(super) workers: Option<Ranged<1, 1024>>,
    #[serde(default)]
    pub(super) legacy: LegacySection,
    #[serde(default)]
    pub(super) limits: LimitsSection,
    #[serde(default)]
    pub(super) forwarding: ForwardingSection,
    #[serde(default)]
    pub(super) paths: PathsSection,
    #[serde(default)]
    pub(super) log: LogSection,
    #[serde(default)]
    pub(super) shutdown: ShutdownSection,
    #[serde(default)]
    pub(super) catalog: CatalogSection,
    #[serde(default)]
    pub(super) shadow: ShadowSection,
    #[serde(default)]
    pub(super) auth: AuthSection,
    #[serde(default)]
    pub(super) tls: TlsSection,
    #[serde(default)]
    pub(super) upstream_tls: UpstreamTlsSection,
    #[serde(default)]
    pub(super) identity: IdentitySection,
    #[serde(default)]
    pub(super) dashboard: DashboardSection,
    #[serde(default)]
    pub(super) events: EventsSection,
    /// The catalog itself, declared in the file (imported with `strangler import`).
    #[serde(default)]
    pub(super) services: Vec<strangler_catalog::Service>,
    #[serde(default)]
    pub(super) contexts: Vec<FileContext>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CatalogSection {
    pub(super) url: Option<String>,
    pub(super) poll_interval: Option<Dur>,
    pub(super) owner_fence: Option<Delay>,
    pub(super) pool_size: Option<Ranged<1, 64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ShadowSection {
    pub(super) max_in_flight: Option<Ranged<1, 100_000>>,
    pub(super) max_per_second: Option<Ranged<0, 10_000_000>>,
    pub(super) cpu_ceiling: Option<Ranged<10, 70>>,
    pub(super) max_body_bytes: Option<Ranged<1024, 104_857_600>>,
    pub(super) timeout: Option<Dur>,
    pub(super) outbox_queue: Option<Ranged<1, 10_000_000>>,
    pub(super) id_map_pairs: Option<Ranged<1, 100_000_000>>,
    pub(super) wal_dir: Option<std::path::PathBuf>,
    pub(super) mirror_attempts: Option<Ranged<1, 1000>>,
    pub(super) mirror_retry: Option<Dur>,
    pub(super) retention: Option<Retention>,
}

/// Where events (CloudEvents) go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsSection {
    /// `http://…` URLs each event is POSTed to.
    pub(super) webhooks: Option<Vec<String>>,
    /// Signs each webhook delivery: `X-Strangler-Signature: sha256=<HMAC of the body>`.
    pub(super) webhook_secret: Option<String>,
    /// `nats://host:port`: each event is also published there.
    pub(super) nats_url: Option<String>,
    /// The subject prefix; the context is appended (`strangler.events.orders`).
    pub(super) nats_subject: Option<String>,
    /// How long a failing delivery is retried before it is given up.
    pub(super) retry_horizon: Option<Retention>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DashboardSection {
    /// How long legacy must not have served a retired route before the ledger marks it safe
    /// to delete from the monolith.
    pub(super) quiet_period: Option<Retention>,
}

/// The identity bridge: on when `resolve_path` is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IdentitySection {
    /// The legacy session cookie's name.
    pub(super) cookie: Option<String>,
    /// The legacy path that answers a session with its claims.
    pub(super) resolve_path: Option<String>,
    pub(super) cache_ttl: Option<Dur>,
    pub(super) token_ttl: Option<Dur>,
    pub(super) issuer: Option<String>,
    /// The Ed25519 key's 32-byte seed (64 hex digits or base64), inline or in a file.
    pub(super) key: Option<String>,
    pub(super) key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthSection {
    pub(super) operator_token: Option<String>,
    pub(super) operator_token_file: Option<String>,
    pub(super) viewer_token: Option<String>,
    pub(super) viewer_token_file: Option<String>,
    #[serde(default)]
    pub(super) users: Vec<FileUser>,
}

/// TLS at the edge: the default certificate, more chosen by SNI, HSTS.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsSection {
    pub(super) cert_file: Option<String>,
    pub(super) key_file: Option<String>,
    pub(super) hsts: Option<String>,
    #[serde(default)]
    pub(super) sni: Vec<FileCert>,
}

/// `[[tls.sni]]`: one more certificate, for the names it covers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCert {
    pub(super) cert_file: String,
    pub(super) key_file: String,
}

/// TLS to `https://` upstreams.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpstreamTlsSection {
    pub(super) ca_file: Option<String>,
    pub(super) client_cert_file: Option<String>,
    pub(super) client_key_file: Option<String>,
    pub(super) insecure_skip_verify: Option<bool>,
}

/// A named person: `[[auth.users]]` with `name`, `role` and `token` or `token_file`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileUser {
    pub(super) name: String,
    pub(super) role: String,
    pub(super) token: Option<String>,
    pub(super) token_file: Option<String>,
}

/// A context as the config file declares it, with its routes inside.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileContext {
    pub(super) name: String,
    pub(super) target: String,
    #[serde(default = "legacy_state")]
    pub(super) state: strangler_catalog::MigrationState,
    #[serde(default)]
    pub(super) weight: u16,
    /// In canary: the new service owns the writes (see the README's write ownership).
    #[serde(default)]
    pub(super) cut_over: bool,
    #[serde(default)]
    pub(super) sticky: Option<strangler_catalog::StickyKey>,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default = "yes")]
    pub(super) fallback: bool,
    #[serde(default)]
    pub(super) fallback_after_ms: Option<u64>,
    #[serde(default)]
    pub(super) shadow: strangler_catalog::ShadowPolicy,
    #[serde(default)]
    pub(super) routes: Vec<strangler_catalog::RouteSpec>,
    /// The translator's spec, inline (TOML text).
    #[serde(default)]
    pub(super) translator: Option<String>,
    /// Or the file that holds it, relative to the configuration file.
    #[serde(default)]
    pub(super) translator_file: Option<String>,
    /// The operational objective (availability and p99) the dashboard holds both sides to.
    #[serde(default)]
    pub(super) objective: Option<strangler_catalog::Objective>,
    /// The autopilot's policy for the context.
    #[serde(default)]
    pub(super) rollout: Option<strangler_catalog::rollout::RolloutPolicy>,
}

fn yes() -> bool {
    true
}

fn legacy_state() -> strangler_catalog::MigrationState {
    strangler_catalog::MigrationState::Legacy
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LegacySection {
    pub(super) url: Option<Url>,
    pub(super) connect_timeout: Option<Dur>,
    pub(super) response_timeout: Option<OptDur>,
    pub(super) pool_idle_timeout: Option<Dur>,
    pub(super) host_header: Option<HostMode>,
    pub(super) protocol: Option<UpstreamProtocol>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsSection {
    pub(super) max_header_bytes: Option<Ranged<1024, 1_048_576>>,
    pub(super) max_headers: Option<Ranged<8, 10_000>>,
    /// 0 or absent: no limit.
    pub(super) max_body_bytes: Option<Ranged<0, { u64::MAX >> 1 }>>,
    pub(super) header_read_timeout: Option<Dur>,
    pub(super) body_idle_timeout: Option<Dur>,
    pub(super) client_idle_timeout: Option<Dur>,
    pub(super) max_connections: Option<Ranged<1, 1_000_000>>,
    pub(super) admin_max_connections: Option<Ranged<1, 100_000>>,
    pub(super) admin_request_timeout: Option<Dur>,
    /// Bytes of bodies held in memory at once (0 or absent: a quarter of the memory limit).
    pub(super) buffer_budget: Option<Ranged<0, { u64::MAX >> 1 }>>,
    /// CPU-heavy jobs at once (0 or absent: one per core).
    pub(super) cpu_jobs: Option<Ranged<0, 1024>>,
    pub(super) transform_budget: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ForwardingSection {
    pub(super) trusted_proxies: Option<Vec<Net>>,
    pub(super) rewrite_redirects: Option<bool>,
    pub(super) via_name: Option<Token>,
    pub(super) debug_header: Option<bool>,
}

/// How request paths are normalised before routes match them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PathsSection {
    /// `//a///b` is `/a/b` (default true).
    pub(super) merge_slashes: Option<bool>,
    /// Routes match without regard to ASCII case (default false).
    pub(super) case_insensitive: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogSection {
    pub(super) format: Option<LogFormat>,
    pub(super) level: Option<Filter>,
    pub(super) access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ShutdownSection {
    pub(super) drain_delay: Option<Delay>,
    pub(super) grace: Option<Dur>,
}
