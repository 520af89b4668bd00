//! Configuration: a TOML file, `STRANGLER_*` environment variables and command-line flags,
//! merged in that order (later wins), checked, and turned into [`Settings`] once at start.
//!
//! Every key of the file has an environment variable: the path in upper case with `_` for `.`
//! (`legacy.url` → `STRANGLER_LEGACY_URL`, `limits.max_body_bytes` →
//! `STRANGLER_LIMITS_MAX_BODY_BYTES`). A list is written comma-separated.
//!
//! A bad value is reported with where it came from — `file:line:column`, the variable's name
//! or the flag — and what to write instead.

mod build;
mod env;
mod file;
mod tls;
mod values;

use build::build;
use file::File;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use strangler_facade::FacadeConfig;

pub use env::{Env, ProcessEnv};
pub use values::LogFormat;

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
    ("legacy.protocol", Kind::Str),
    ("tls.cert_file", Kind::Str),
    ("tls.key_file", Kind::Str),
    ("tls.hsts", Kind::Str),
    ("upstream_tls.ca_file", Kind::Str),
    ("upstream_tls.client_cert_file", Kind::Str),
    ("upstream_tls.client_key_file", Kind::Str),
    ("upstream_tls.insecure_skip_verify", Kind::Bool),
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
    ("catalog.owner_fence", Kind::Str),
    ("catalog.pool_size", Kind::Int),
    ("auth.operator_token", Kind::Str),
    ("auth.operator_token_file", Kind::Str),
    ("auth.viewer_token", Kind::Str),
    ("auth.viewer_token_file", Kind::Str),
    ("forwarding.debug_header", Kind::Bool),
    ("shadow.max_in_flight", Kind::Int),
    ("shadow.max_per_second", Kind::Int),
    ("shadow.cpu_ceiling", Kind::Int),
    ("shadow.max_body_bytes", Kind::Int),
    ("shadow.timeout", Kind::Str),
    ("shadow.outbox_queue", Kind::Int),
    ("shadow.id_map_pairs", Kind::Int),
    ("shadow.wal_dir", Kind::Str),
    ("shadow.mirror_attempts", Kind::Int),
    ("shadow.mirror_retry", Kind::Str),
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
    /// How long a write owner's move settles before it takes effect (writes wait meanwhile):
    /// longer than any replica takes to learn of a change.
    pub owner_fence: std::time::Duration,
    /// The catalog the file declares, if it declares one (for `strangler import`).
    pub declared: Option<strangler_catalog::Catalog>,
    /// Connections to the store at most (`None`: 8 for PostgreSQL, 4 for SQLite).
    pub pool_size: Option<u32>,
}

/// The admin API's tokens (never printed).
#[derive(Clone, Default)]
pub struct AuthSettings {
    pub operator_token: Option<String>,
    pub viewer_token: Option<String>,
    /// Named people with tokens of their own (`[[auth.users]]`).
    pub users: Vec<strangler_dashboard::api::User>,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field(
                "operator_token",
                &self.operator_token.as_ref().map(|_| "<set>"),
            )
            .field("viewer_token", &self.viewer_token.as_ref().map(|_| "<set>"))
            .field(
                "users",
                &self.users.iter().map(|u| &u.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// TLS on the public listener, when configured.
    pub tls: Option<strangler_facade::tls::TlsConfig>,
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

#[cfg(test)]
mod tests;
