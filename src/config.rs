//! Configuration: a TOML file, `STRANGLER_*` environment variables and command-line flags,
//! merged in that order (later wins), checked, and turned into [`Settings`] once at start.
//!
//! Every key of the file has an environment variable: the path in upper case with `_` for `.`
//! (`legacy.url` → `STRANGLER_LEGACY_URL`, `limits.max_body_bytes` →
//! `STRANGLER_LIMITS_MAX_BODY_BYTES`). A list is written comma-separated.
//!
//! A bad value is reported with where it came from — `file:line:column`, the variable's name
//! or the flag — and what to write instead.

mod env;
mod values;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use strangler_facade::{FacadeConfig, ForwardingConfig, HostHeader, LimitsConfig};
use strangler_services::UpstreamConfig;

pub use env::{Env, ProcessEnv};
pub use values::LogFormat;
use values::{Addr, Delay, Dur, Filter, HostMode, Net, OptDur, Ranged, Retention, Token, Url};

/// The file, as written. Every key is optional; defaults fill the rest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<Addr>,
    admin: Option<Addr>,
    workers: Option<Ranged<1, 1024>>,
    #[serde(default)]
    legacy: LegacySection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    forwarding: ForwardingSection,
    #[serde(default)]
    paths: PathsSection,
    #[serde(default)]
    log: LogSection,
    #[serde(default)]
    shutdown: ShutdownSection,
    #[serde(default)]
    catalog: CatalogSection,
    #[serde(default)]
    shadow: ShadowSection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    identity: IdentitySection,
    #[serde(default)]
    dashboard: DashboardSection,
    #[serde(default)]
    events: EventsSection,
    /// The catalog itself, declared in the file (imported with `strangler import`).
    #[serde(default)]
    services: Vec<strangler_catalog::Service>,
    #[serde(default)]
    contexts: Vec<FileContext>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogSection {
    url: Option<String>,
    poll_interval: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShadowSection {
    max_in_flight: Option<Ranged<1, 100_000>>,
    max_per_second: Option<Ranged<0, 10_000_000>>,
    max_body_bytes: Option<Ranged<1024, 104_857_600>>,
    timeout: Option<Dur>,
    outbox_queue: Option<Ranged<1, 1_000_000>>,
    mirror_attempts: Option<Ranged<1, 1000>>,
    retention: Option<Retention>,
}

/// Where events (CloudEvents) go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsSection {
    /// `http://…` URLs each event is POSTed to.
    webhooks: Option<Vec<String>>,
    /// Signs each webhook delivery: `X-Strangler-Signature: sha256=<HMAC of the body>`.
    webhook_secret: Option<String>,
    /// `nats://host:port`: each event is also published there.
    nats_url: Option<String>,
    /// The subject prefix; the context is appended (`strangler.events.orders`).
    nats_subject: Option<String>,
    /// How long a failing delivery is retried before it is given up.
    retry_horizon: Option<Retention>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DashboardSection {
    /// How long legacy must not have served a retired route before the ledger marks it safe
    /// to delete from the monolith.
    quiet_period: Option<Retention>,
}

/// The identity bridge: on when `resolve_path` is set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentitySection {
    /// The legacy session cookie's name.
    cookie: Option<String>,
    /// The legacy path that answers a session with its claims.
    resolve_path: Option<String>,
    cache_ttl: Option<Dur>,
    token_ttl: Option<Dur>,
    issuer: Option<String>,
    /// The Ed25519 key's 32-byte seed (64 hex digits or base64), inline or in a file.
    key: Option<String>,
    key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    operator_token: Option<String>,
    operator_token_file: Option<String>,
    viewer_token: Option<String>,
    viewer_token_file: Option<String>,
}

/// A context as the config file declares it, with its routes inside.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileContext {
    name: String,
    target: String,
    #[serde(default = "legacy_state")]
    state: strangler_catalog::MigrationState,
    #[serde(default)]
    weight: u16,
    #[serde(default)]
    sticky: Option<strangler_catalog::StickyKey>,
    #[serde(default)]
    description: String,
    #[serde(default = "yes")]
    fallback: bool,
    #[serde(default)]
    fallback_after_ms: Option<u64>,
    #[serde(default)]
    shadow: strangler_catalog::ShadowPolicy,
    #[serde(default)]
    routes: Vec<strangler_catalog::RouteSpec>,
    /// The translator's spec, inline (TOML text).
    #[serde(default)]
    translator: Option<String>,
    /// Or the file that holds it, relative to the configuration file.
    #[serde(default)]
    translator_file: Option<String>,
    /// The operational objective (availability and p99) the dashboard holds both sides to.
    #[serde(default)]
    objective: Option<strangler_catalog::Objective>,
    /// The autopilot's policy for the context.
    #[serde(default)]
    rollout: Option<strangler_catalog::rollout::RolloutPolicy>,
}

fn yes() -> bool {
    true
}

fn legacy_state() -> strangler_catalog::MigrationState {
    strangler_catalog::MigrationState::Legacy
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacySection {
    url: Option<Url>,
    connect_timeout: Option<Dur>,
    response_timeout: Option<OptDur>,
    pool_idle_timeout: Option<Dur>,
    host_header: Option<HostMode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_header_bytes: Option<Ranged<1024, 1_048_576>>,
    max_headers: Option<Ranged<8, 10_000>>,
    /// 0 or absent: no limit.
    max_body_bytes: Option<Ranged<0, { u64::MAX >> 1 }>>,
    header_read_timeout: Option<Dur>,
    body_idle_timeout: Option<Dur>,
    client_idle_timeout: Option<Dur>,
    max_connections: Option<Ranged<1, 1_000_000>>,
    admin_max_connections: Option<Ranged<1, 100_000>>,
    admin_request_timeout: Option<Dur>,
    /// Bytes of bodies held in memory at once (0 or absent: a quarter of the memory limit).
    buffer_budget: Option<Ranged<0, { u64::MAX >> 1 }>>,
    /// CPU-heavy jobs at once (0 or absent: one per core).
    cpu_jobs: Option<Ranged<0, 1024>>,
    transform_budget: Option<Dur>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardingSection {
    trusted_proxies: Option<Vec<Net>>,
    rewrite_redirects: Option<bool>,
    via_name: Option<Token>,
    debug_header: Option<bool>,
}

/// How request paths are normalised before routes match them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PathsSection {
    /// `//a///b` is `/a/b` (default true).
    merge_slashes: Option<bool>,
    /// Routes match without regard to ASCII case (default false).
    case_insensitive: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    format: Option<LogFormat>,
    level: Option<Filter>,
    access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShutdownSection {
    drain_delay: Option<Delay>,
    grace: Option<Dur>,
}

/// How each key is written in the environment.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    List,
}

/// Every key that has an environment variable.
const KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Str),
    ("admin", Kind::Str),
    ("workers", Kind::Int),
    ("legacy.url", Kind::Str),
    ("legacy.connect_timeout", Kind::Str),
    ("legacy.response_timeout", Kind::Str),
    ("legacy.pool_idle_timeout", Kind::Str),
    ("legacy.host_header", Kind::Str),
    ("limits.max_header_bytes", Kind::Int),
    ("limits.max_headers", Kind::Int),
    ("limits.max_body_bytes", Kind::Int),
    ("limits.header_read_timeout", Kind::Str),
    ("limits.body_idle_timeout", Kind::Str),
    ("limits.max_connections", Kind::Int),
    ("limits.client_idle_timeout", Kind::Str),
    ("limits.admin_max_connections", Kind::Int),
    ("limits.admin_request_timeout", Kind::Str),
    ("limits.buffer_budget", Kind::Int),
    ("limits.cpu_jobs", Kind::Int),
    ("limits.transform_budget", Kind::Str),
    ("forwarding.trusted_proxies", Kind::List),
    ("forwarding.rewrite_redirects", Kind::Bool),
    ("forwarding.via_name", Kind::Str),
    ("paths.merge_slashes", Kind::Bool),
    ("paths.case_insensitive", Kind::Bool),
    ("log.format", Kind::Str),
    ("log.level", Kind::Str),
    ("log.access_log", Kind::Bool),
    ("shutdown.grace", Kind::Str),
    ("shutdown.drain_delay", Kind::Str),
    ("catalog.url", Kind::Str),
    ("catalog.poll_interval", Kind::Str),
    ("auth.operator_token", Kind::Str),
    ("auth.operator_token_file", Kind::Str),
    ("auth.viewer_token", Kind::Str),
    ("auth.viewer_token_file", Kind::Str),
    ("forwarding.debug_header", Kind::Bool),
    ("shadow.max_in_flight", Kind::Int),
    ("shadow.max_per_second", Kind::Int),
    ("shadow.max_body_bytes", Kind::Int),
    ("shadow.timeout", Kind::Str),
    ("shadow.outbox_queue", Kind::Int),
    ("shadow.mirror_attempts", Kind::Int),
    ("shadow.retention", Kind::Str),
    ("identity.cookie", Kind::Str),
    ("identity.resolve_path", Kind::Str),
    ("identity.cache_ttl", Kind::Str),
    ("identity.token_ttl", Kind::Str),
    ("identity.issuer", Kind::Str),
    ("identity.key", Kind::Str),
    ("identity.key_file", Kind::Str),
    ("dashboard.quiet_period", Kind::Str),
    ("events.webhooks", Kind::List),
    ("events.webhook_secret", Kind::Str),
    ("events.nats_url", Kind::Str),
    ("events.nats_subject", Kind::Str),
    ("events.retry_horizon", Kind::Str),
];

/// The environment variable of a key.
pub fn env_name(key: &str) -> String {
    format!("STRANGLER_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Values given on the command line; they win over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub legacy: Option<String>,
    pub listen: Option<String>,
    pub admin: Option<String>,
    pub workers: Option<usize>,
}

/// A configuration error: where, what, and (inside the message) how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `path:line:column`, `environment STRANGLER_X`, `--flag` or `configuration`.
    pub location: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `warn,strangler=debug` …).
    pub level: String,
}

/// Where the catalog lives and how it is followed.
#[derive(Debug, Clone)]
pub struct CatalogSettings {
    /// `sqlite://FILE` (default `sqlite://strangler.db`) or `postgres://…`.
    pub url: String,
    /// How often the version is polled, as a safety net for missed notifications.
    pub poll_interval: std::time::Duration,
    /// The catalog the file declares, if it declares one (for `strangler import`).
    pub declared: Option<strangler_catalog::Catalog>,
}

/// The admin API's tokens (never printed).
#[derive(Clone, Default)]
pub struct AuthSettings {
    pub operator_token: Option<String>,
    pub viewer_token: Option<String>,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field(
                "operator_token",
                &self.operator_token.as_ref().map(|_| "<set>"),
            )
            .field("viewer_token", &self.viewer_token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// Runtime worker threads; `None`: one per core.
    pub workers: Option<usize>,
    pub facade: FacadeConfig,
    pub log: LogSettings,
    pub catalog: CatalogSettings,
    pub auth: AuthSettings,
    /// A retired route is safe to delete from the monolith after legacy has not served it
    /// for this long (default 30 days).
    pub quiet_period: std::time::Duration,
    pub events: strangler_control::events::EventsSettings,
    /// The admin listener's connection cap and timers.
    pub admin_limits: strangler_dashboard::AdminLimits,
}

/// Checks the `[events]` section.
fn events(s: EventsSection) -> Result<strangler_control::events::EventsSettings, ConfigError> {
    let err = |key: &str, message: String| ConfigError {
        location: format!("events.{key}"),
        message,
    };
    let mut webhooks = Vec::new();
    for url in s.webhooks.unwrap_or_default() {
        let uri: http::Uri = url.parse().map_err(|_| {
            err(
                "webhooks",
                format!(
                    "`{url}` is not a URL; write it like \"http://hooks.example:8080/strangler\""
                ),
            )
        })?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(err(
                "webhooks",
                format!("`{url}` must be an http:// URL with a host (for https, put a TLS-terminating proxy in between)"),
            ));
        }
        webhooks.push(url);
    }
    let nats = match s.nats_url {
        None => None,
        Some(url) => {
            let hostport = url.strip_prefix("nats://").unwrap_or("");
            let valid = hostport
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !valid {
                return Err(err(
                    "nats_url",
                    format!(
                        "`{url}` is not a NATS server; write it like \"nats://127.0.0.1:4222\""
                    ),
                ));
            }
            Some(hostport.to_owned())
        }
    };
    let subject = s
        .nats_subject
        .unwrap_or_else(|| "strangler.events".to_owned());
    if subject.is_empty()
        || subject
            .split('.')
            .any(|t| t.is_empty() || t.contains(['*', '>', ' ']))
    {
        return Err(err(
            "nats_subject",
            format!("`{subject}` is not a NATS subject prefix; use dot-separated words like \"strangler.events\""),
        ));
    }
    if s.webhook_secret.as_ref().is_some_and(|k| k.len() < 16) {
        return Err(err(
            "webhook_secret",
            "the secret is shorter than 16 characters; use a long random one".into(),
        ));
    }
    Ok(strangler_control::events::EventsSettings {
        webhooks,
        webhook_secret: s.webhook_secret,
        nats,
        nats_subject: subject,
        retry_horizon: s
            .retry_horizon
            .map_or(std::time::Duration::from_secs(3600), |r| r.0),
    })
}

/// Reads the file (if any), the environment and the overrides, and checks the result.
pub fn load(
    file: Option<&Path>,
    env: &dyn Env,
    overrides: &Overrides,
) -> Result<Settings, ConfigError> {
    let mut table = match file {
        Some(path) => read_file(path)?,
        None => toml::Table::new(),
    };
    apply_env(&mut table, env)?;
    apply_overrides(&mut table, overrides)?;
    let merged: File = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError {
            location: "configuration".into(),
            message: e.message().to_owned(),
        })?;
    build(merged)
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        location: path.display().to_string(),
        message: format!(
            "cannot read the configuration file: {e}; check the path given to --config"
        ),
    })?;
    // Deserialize from the text first: only then do errors carry a position.
    if let Err(e) = toml::from_str::<File>(&text) {
        return Err(located(path, &text, &e));
    }
    let mut table = toml::from_str::<toml::Table>(&text).map_err(|e| located(path, &text, &e))?;
    read_translators(path, &mut table)?;
    Ok(table)
}

/// Replaces each context's `translator_file` with the file's text (`translator`), checking it
/// so that an error names the translator's own file and line.
fn read_translators(config: &Path, table: &mut toml::Table) -> Result<(), ConfigError> {
    let dir = config.parent().unwrap_or(Path::new("."));
    let Some(toml::Value::Array(contexts)) = table.get_mut("contexts") else {
        return Ok(());
    };
    for ctx in contexts.iter_mut() {
        let Some(ctx) = ctx.as_table_mut() else {
            continue;
        };
        let Some(toml::Value::String(file)) = ctx.remove("translator_file") else {
            continue;
        };
        let name = ctx
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("?")
            .to_owned();
        if ctx.contains_key("translator") {
            return Err(ConfigError {
                location: format!("{} [contexts.{name}]", config.display()),
                message: "give translator (inline) or translator_file, not both".into(),
            });
        }
        let full = dir.join(&file);
        let text = std::fs::read_to_string(&full).map_err(|e| ConfigError {
            location: format!("{} [contexts.{name}.translator_file]", config.display()),
            message: format!(
                "cannot read `{}`: {e}; the path is relative to the configuration file",
                full.display()
            ),
        })?;
        if let Err(e) = crate::translators::check(&text) {
            return Err(ConfigError {
                location: format!("{}:{}", full.display(), e.line),
                message: e.message,
            });
        }
        ctx.insert("translator".into(), toml::Value::String(text));
    }
    Ok(())
}

fn located(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let location = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("{}:{line}:{column}", path.display())
        }
        None => path.display().to_string(),
    };
    ConfigError {
        location,
        message: e.message().trim().to_owned(),
    }
}

/// Puts `value` at a dotted `key` in `table`, creating sections as needed.
fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts = key.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), value);
            return;
        }
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry {
            toml::Value::Table(t) => current = t,
            _ => return,
        }
    }
}

fn apply_env(table: &mut toml::Table, env: &dyn Env) -> Result<(), ConfigError> {
    for (key, kind) in KEYS {
        let name = env_name(key);
        let Some(raw) = env.var(&name) else { continue };
        let err = |message: String| ConfigError {
            location: format!("environment {name}"),
            message,
        };
        let value = match kind {
            Kind::Str => toml::Value::String(raw.clone()),
            Kind::Int => toml::Value::Integer(raw.trim().parse().map_err(|_| {
                err(format!(
                    "`{raw}` is not a whole number; write digits only, e.g. {name}=1024"
                ))
            })?),
            Kind::Bool => toml::Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    return Err(err(format!(
                        "`{raw}` is not a boolean; write true or false"
                    )))
                }
            }),
            Kind::List => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            ),
        };
        // Check this one value on its own, so that an error names the variable.
        let mut single = toml::Table::new();
        set_path(&mut single, key, value.clone());
        if let Err(e) = toml::Value::Table(single).try_into::<File>() {
            return Err(err(e.message().trim().to_owned()));
        }
        set_path(table, key, value);
    }
    Ok(())
}

fn apply_overrides(table: &mut toml::Table, o: &Overrides) -> Result<(), ConfigError> {
    let flags = [
        (
            "--legacy",
            "legacy.url",
            o.legacy.clone().map(toml::Value::String),
        ),
        (
            "--listen",
            "listen",
            o.listen.clone().map(toml::Value::String),
        ),
        ("--admin", "admin", o.admin.clone().map(toml::Value::String)),
        (
            "--workers",
            "workers",
            o.workers
                .map(|w| toml::Value::Integer(i64::try_from(w).unwrap_or(i64::MAX))),
        ),
    ];
    for (flag, key, value) in flags {
        let Some(value) = value else { continue };
        let mut single = toml::Table::new();
        set_path(&mut single, key, value.clone());
        if let Err(e) = toml::Value::Table(single).try_into::<File>() {
            return Err(ConfigError {
                location: flag.to_owned(),
                message: e.message().trim().to_owned(),
            });
        }
        set_path(table, key, value);
    }
    Ok(())
}

fn build(file: File) -> Result<Settings, ConfigError> {
    let general = |message: String| ConfigError {
        location: "configuration".into(),
        message,
    };
    let l = file.legacy;
    let Some(Url(origin)) = l.url else {
        return Err(general(
            "no legacy app is configured; pass --legacy http://HOST:PORT, set STRANGLER_LEGACY_URL, \
             or write `url = \"http://HOST:PORT\"` under [legacy] in the config file"
                .into(),
        ));
    };
    let listen = file
        .listen
        .map_or(SocketAddr::from(([0, 0, 0, 0], 8080)), |a| a.0);
    let admin = file
        .admin
        .map_or(SocketAddr::from(([127, 0, 0, 1], 9090)), |a| a.0);
    if listen == admin && listen.port() != 0 {
        return Err(general(format!(
            "the public listener and the admin listener are both {listen}; give them different ports"
        )));
    }

    let mut upstream = UpstreamConfig::new(origin);
    if let Some(d) = l.connect_timeout {
        upstream.connect_timeout = d.0;
    }
    if let Some(d) = l.response_timeout {
        upstream.response_timeout = d.0;
    }
    if let Some(d) = l.pool_idle_timeout {
        upstream.pool_idle_timeout = d.0;
    }

    let mut limits = LimitsConfig::default();
    let s = file.limits;
    if let Some(v) = s.max_header_bytes {
        limits.max_header_bytes = usize::try_from(v.0).unwrap_or(usize::MAX);
    }
    if let Some(v) = s.max_headers {
        limits.max_headers = usize::try_from(v.0).unwrap_or(usize::MAX);
    }
    if let Some(v) = s.max_body_bytes {
        limits.max_body_bytes = (v.0 > 0).then_some(v.0);
    }
    if let Some(d) = s.header_read_timeout {
        limits.header_read_timeout = d.0;
    }
    if let Some(d) = s.body_idle_timeout {
        limits.body_idle_timeout = d.0;
    }
    if let Some(v) = s.max_connections {
        limits.max_connections = usize::try_from(v.0).unwrap_or(usize::MAX);
    }
    if let Some(d) = s.client_idle_timeout {
        limits.client_idle_timeout = d.0;
    }
    if let Some(v) = s.buffer_budget.filter(|v| v.0 > 0) {
        limits.buffer_budget = usize::try_from(v.0).unwrap_or(usize::MAX);
    }
    if let Some(v) = s.cpu_jobs {
        limits.cpu_jobs = usize::try_from(v.0).unwrap_or(0);
    }
    if let Some(d) = s.transform_budget {
        limits.transform_budget = d.0;
    }
    let mut admin_limits = strangler_dashboard::AdminLimits::default();
    if let Some(v) = s.admin_max_connections {
        admin_limits.max_connections = usize::try_from(v.0).unwrap_or(usize::MAX);
    }
    if let Some(d) = s.admin_request_timeout {
        admin_limits.request_timeout = d.0;
    }
    admin_limits.header_read_timeout = limits.header_read_timeout;

    let mut forwarding = ForwardingConfig::default();
    let f = file.forwarding;
    if let Some(mode) = l.host_header {
        forwarding.host = match mode {
            HostMode::Preserve => HostHeader::Preserve,
            HostMode::Upstream => HostHeader::Upstream,
        };
    }
    if let Some(nets) = f.trusted_proxies {
        forwarding.trusted_proxies = nets.into_iter().map(|n| n.0).collect();
    }
    if let Some(b) = f.rewrite_redirects {
        forwarding.rewrite_redirects = b;
    }
    if let Some(t) = f.via_name {
        forwarding.via_name = t.0;
    }
    if let Some(b) = f.debug_header {
        forwarding.debug_header = b;
    }

    let mut facade = FacadeConfig::new(upstream);
    facade.translators = crate::translators::registry();
    facade.limits = limits;
    facade.forwarding = forwarding;
    if let Some(b) = file.paths.merge_slashes {
        facade.paths.merge_slashes = b;
    }
    if let Some(b) = file.paths.case_insensitive {
        facade.paths.fold_case = b;
    }
    facade.access_log = file.log.access_log.unwrap_or(false);
    if let Some(d) = file.shutdown.grace {
        facade.shutdown_grace = d.0;
    }
    // Long enough for a balancer that polls /readyz every few seconds to move clients away.
    facade.drain_delay = file
        .shutdown
        .drain_delay
        .map_or(std::time::Duration::from_secs(5), |d| d.0);

    if let Some(v) = file.shadow.max_in_flight {
        facade.shadow.max_in_flight = usize::try_from(v.0).unwrap_or(usize::MAX);
    }
    if let Some(v) = file.shadow.max_per_second {
        facade.shadow.max_per_second = u32::try_from(v.0).unwrap_or(u32::MAX);
    }
    if let Some(v) = file.shadow.max_body_bytes {
        facade.shadow.max_body_bytes = usize::try_from(v.0).unwrap_or(usize::MAX);
    }
    if let Some(d) = file.shadow.timeout {
        facade.shadow.timeout = d.0;
    }
    if let Some(v) = file.shadow.outbox_queue {
        facade.shadow.outbox_queue = usize::try_from(v.0).unwrap_or(usize::MAX);
    }
    if let Some(v) = file.shadow.mirror_attempts {
        facade.shadow.mirror_attempts = u32::try_from(v.0).unwrap_or(u32::MAX);
    }
    if let Some(d) = file.shadow.retention {
        facade.shadow.retention = d.0;
    }
    facade.identity = identity(file.identity)?;
    let declared = declared_catalog(&file.services, &file.contexts)?;
    let auth = AuthSettings {
        operator_token: token(
            file.auth.operator_token,
            file.auth.operator_token_file,
            "auth.operator_token_file",
        )?,
        viewer_token: token(
            file.auth.viewer_token,
            file.auth.viewer_token_file,
            "auth.viewer_token_file",
        )?,
    };
    // Without a token the admin listener answers anyone (catalog, audit, shadow results): only
    // this machine may reach it then.
    if !admin.ip().is_loopback() && auth.operator_token.is_none() && auth.viewer_token.is_none() {
        return Err(ConfigError {
            location: "admin".into(),
            message: format!(
                "the admin listener would answer anyone who reaches {admin}, and no token is configured; bind it to 127.0.0.1 (--admin 127.0.0.1:{}) or set a token (STRANGLER_AUTH_VIEWER_TOKEN and STRANGLER_AUTH_OPERATOR_TOKEN, or [auth] viewer_token_file)",
                admin.port()
            ),
        });
    }
    Ok(Settings {
        listen,
        admin,
        workers: file.workers.map(|w| usize::try_from(w.0).unwrap_or(1)),
        catalog: CatalogSettings {
            url: file
                .catalog
                .url
                .unwrap_or_else(|| "sqlite://strangler.db".to_owned()),
            poll_interval: file
                .catalog
                .poll_interval
                .map_or(std::time::Duration::from_secs(2), |d| d.0),
            declared,
        },
        auth,
        admin_limits,
        events: events(file.events)?,
        quiet_period: file
            .dashboard
            .quiet_period
            .map_or(std::time::Duration::from_secs(30 * 86_400), |d| d.0),
        facade,
        log: LogSettings {
            format: file.log.format.unwrap_or_default(),
            level: file.log.level.map_or_else(|| "info".to_owned(), |f| f.0),
        },
    })
}

/// The identity bridge's settings; `None` when it is off.
fn identity(s: IdentitySection) -> Result<Option<strangler_facade::IdentityConfig>, ConfigError> {
    let err = |key: &str, message: String| ConfigError {
        location: format!("identity.{key}"),
        message,
    };
    let Some(resolve_path) = s.resolve_path else {
        if s.cookie.is_some() || s.key.is_some() || s.key_file.is_some() {
            return Err(err(
                "resolve_path",
                "the identity bridge needs the legacy path that resolves a session, e.g. \
                 resolve_path = \"/api/session\""
                    .into(),
            ));
        }
        return Ok(None);
    };
    if !resolve_path.starts_with('/') || resolve_path.parse::<http::Uri>().is_err() {
        return Err(err(
            "resolve_path",
            format!("`{resolve_path}` is not a path; write it like /api/session"),
        ));
    }
    let cookie = s.cookie.unwrap_or_else(|| "SESSIONID".to_owned());
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if cookie.is_empty() || !cookie.bytes().all(token_char) {
        return Err(err(
            "cookie",
            format!("`{cookie}` is not a cookie name; use letters, digits, - and _"),
        ));
    }
    let key = match (s.key, s.key_file) {
        (Some(k), _) => Some(k),
        (None, Some(path)) => Some(std::fs::read_to_string(&path).map_err(|e| {
            err(
                "key_file",
                format!("cannot read `{path}`: {e}; check the path and its permissions"),
            )
        })?),
        (None, None) => None,
    };
    let seed = match key {
        Some(k) => strangler_anti_corruption::identity::Signer::parse_seed(&k)
            .map_err(|m| err("key", m))?,
        None => {
            // One process alone can make its own key; replicas must share one (key_file).
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| {
                err(
                    "key",
                    format!("no key given and none could be generated: {e}"),
                )
            })?;
            seed
        }
    };
    let ttl =
        |d: Option<Dur>, default: u64, key: &str| -> Result<std::time::Duration, ConfigError> {
            let d = d.map_or(std::time::Duration::from_secs(default), |d| d.0);
            if d < std::time::Duration::from_secs(1) || d > std::time::Duration::from_secs(86_400) {
                return Err(err(key, format!("{d:?} is out of range; choose 1s to 24h")));
            }
            Ok(d)
        };
    Ok(Some(strangler_facade::IdentityConfig {
        cookie,
        resolve_path,
        cache_ttl: ttl(s.cache_ttl, 60, "cache_ttl")?,
        token_ttl: ttl(s.token_ttl, 300, "token_ttl")?,
        issuer: s.issuer.unwrap_or_else(|| "strangler".to_owned()),
        seed,
    }))
}

/// A token given inline or in a file (whose surrounding whitespace is ignored).
fn token(
    inline: Option<String>,
    file: Option<String>,
    key: &str,
) -> Result<Option<String>, ConfigError> {
    let value = match (inline, file) {
        (Some(t), _) => Some(t),
        (None, Some(path)) => Some(std::fs::read_to_string(&path).map_err(|e| ConfigError {
            location: key.to_owned(),
            message: format!(
                "cannot read the token file `{path}`: {e}; check the path and its permissions"
            ),
        })?),
        (None, None) => None,
    };
    match value.map(|t| t.trim().to_owned()) {
        Some(t) if t.len() < 16 => Err(ConfigError {
            location: key.trim_end_matches("_file").to_owned(),
            message:
                "a token must be at least 16 characters; generate one with `openssl rand -hex 24`"
                    .into(),
        }),
        other => Ok(other),
    }
}

/// The catalog the file declares: its services and contexts (with their routes), validated.
fn declared_catalog(
    services: &[strangler_catalog::Service],
    contexts: &[FileContext],
) -> Result<Option<strangler_catalog::Catalog>, ConfigError> {
    if services.is_empty() && contexts.is_empty() {
        return Ok(None);
    }
    let mut c = strangler_catalog::Catalog::default();
    for s in services {
        c.services.insert(s.name.clone(), s.clone());
    }
    for fc in contexts {
        if fc.translator_file.is_some() {
            // read_file replaces it with the text; it can only be left when it did not come
            // from a file.
            return Err(ConfigError {
                location: format!("configuration [contexts.{}.translator_file]", fc.name),
                message: "translator_file is only read from a configuration file; give the spec \
                          inline as translator"
                    .into(),
            });
        }
        c.contexts.insert(
            fc.name.clone(),
            strangler_catalog::Context {
                name: fc.name.clone(),
                target: fc.target.clone(),
                state: fc.state,
                weight: fc.weight,
                sticky: fc.sticky.clone(),
                description: fc.description.clone(),
                fallback: fc.fallback,
                fallback_after_ms: fc.fallback_after_ms,
                shadow: fc.shadow.clone(),
                translator: fc.translator.clone(),
                objective: fc.objective.clone(),
                rollout: fc.rollout.clone(),
            },
        );
        for spec in &fc.routes {
            let id = spec.id();
            c.routes.insert(
                id.clone(),
                strangler_catalog::Route {
                    id,
                    context: fc.name.clone(),
                    spec: spec.clone(),
                },
            );
        }
    }
    strangler_catalog::validate(&c, &crate::translators::Check).map_err(|e| ConfigError {
        location: format!("configuration [{}]", e.field),
        message: e.message,
    })?;
    Ok(Some(c))
}

#[cfg(test)]
mod tests;
