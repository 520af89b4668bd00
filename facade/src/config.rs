//! The facade's settings, parsed and validated before it is built.

use std::time::Duration;

use ipnet::IpNet;
use strangler_services::UpstreamConfig;

/// Which `Host` header the upstream sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostHeader {
    /// The client's own `Host` (or `:authority`), unchanged.
    #[default]
    Preserve,
    /// The upstream's authority, as if the client had called it directly.
    Upstream,
}

/// Limits that protect the facade and the legacy app.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Largest request head (request line and header fields), in bytes → 431.
    pub max_header_bytes: usize,
    /// Most header fields in one request → 431.
    pub max_headers: usize,
    /// Largest request body in bytes → 413. `None`: no limit (pure pass-through).
    pub max_body_bytes: Option<u64>,
    /// Time a client may take to send its request head (the connection is closed after it).
    pub header_read_timeout: Duration,
    /// Longest pause while a client sends its body → 408.
    pub body_idle_timeout: Duration,
    /// HTTP/2 connections without a request in flight are closed (GOAWAY) after this long.
    /// (Idle HTTP/1 connections are closed after `header_read_timeout`.)
    pub client_idle_timeout: Duration,
    /// Most concurrent client connections; further ones wait in the accept queue.
    pub max_connections: usize,
    /// Bytes of bodies held in memory at once, process-wide (translations, shadow copies,
    /// mirrored writes); beyond, 503 with `Retry-After`.
    pub buffer_budget: usize,
    /// CPU-heavy jobs at once (0: one per core).
    pub cpu_jobs: usize,
    /// The time a request's CPU-heavy work (translation, jq) may take, waiting included;
    /// beyond, 503 with `Retry-After`.
    pub transform_budget: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * 1024,
            max_headers: 256,
            max_body_bytes: None,
            header_read_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            client_idle_timeout: Duration::from_secs(75),
            max_connections: 10_000,
            buffer_budget: crate::buffers::default_budget(),
            cpu_jobs: 0,
            transform_budget: Duration::from_secs(5),
        }
    }
}

/// How the facade presents itself to upstreams and clients.
#[derive(Debug, Clone)]
pub struct ForwardingConfig {
    pub host: HostHeader,
    /// Peers whose `X-Forwarded-*` headers are kept and appended to. From anyone else they are
    /// replaced.
    pub trusted_proxies: Vec<IpNet>,
    /// Rewrite `Location`/`Content-Location` that point at the upstream's own origin.
    pub rewrite_redirects: bool,
    /// The pseudonym in `Via` (`1.1 strangler`).
    pub via_name: String,
    /// Add `X-Strangler-Route: context=…; side=…` to responses (for debugging routing).
    pub debug_header: bool,
}

impl Default for ForwardingConfig {
    fn default() -> Self {
        Self {
            host: HostHeader::Preserve,
            trusted_proxies: Vec::new(),
            rewrite_redirects: true,
            via_name: "strangler".to_owned(),
            debug_header: false,
        }
    }
}

/// Everything the facade needs to run.
#[derive(Debug, Clone)]
pub struct FacadeConfig {
    pub legacy: UpstreamConfig,
    pub limits: LimitsConfig,
    pub forwarding: ForwardingConfig,
    /// How request paths are normalised before routes match them (and as forwarded).
    pub paths: crate::path::PathRules,
    /// Log one line per request at `info` on the `strangler::access` target.
    pub access_log: bool,
    /// How long the listener keeps accepting after shutdown begins, with every answer closing
    /// its connection, so that balancers move clients away (0: stop accepting at once).
    pub drain_delay: Duration,
    /// How long in-flight requests may take to finish once the listener has stopped accepting.
    pub shutdown_grace: Duration,
    pub shadow: crate::shadow::ShadowConfig,
    /// The identity bridge, when configured.
    pub identity: Option<crate::identity::IdentityConfig>,
    /// The Rust translators a context's translator may name.
    pub translators: strangler_anti_corruption::Registry,
}

impl FacadeConfig {
    pub fn new(legacy: UpstreamConfig) -> Self {
        Self {
            legacy,
            limits: LimitsConfig::default(),
            forwarding: ForwardingConfig::default(),
            paths: crate::path::PathRules::default(),
            access_log: false,
            drain_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(30),
            shadow: crate::shadow::ShadowConfig::default(),
            translators: strangler_anti_corruption::Registry::new(),
            identity: None,
        }
    }
}
