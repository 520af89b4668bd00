//! Turning the merged file into [`Settings`](super::Settings): every value checked, defaults
//! filled in, and the identity bridge, tokens, event sinks and the declared catalog built.

use super::file::{EventsSection, File, FileContext, IdentitySection};
use super::values::{Dur, HostMode, UpstreamProtocol, Url};
use super::{AuthSettings, CatalogSettings, ConfigError, LogSettings, Settings};
use std::net::SocketAddr;
use strangler_facade::{FacadeConfig, ForwardingConfig, HostHeader, LimitsConfig};
use strangler_services::UpstreamConfig;

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

pub(super) fn build(file: File) -> Result<Settings, ConfigError> {
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
    if let Some(p) = l.protocol {
        upstream.protocol = match p {
            UpstreamProtocol::H1 => strangler_services::Protocol::Http1,
            UpstreamProtocol::H2c => strangler_services::Protocol::H2c,
            UpstreamProtocol::H2 => strangler_services::Protocol::H2,
            UpstreamProtocol::Auto => strangler_services::Protocol::Auto,
        };
    }
    upstream
        .protocol
        .check(&upstream.origin)
        .map_err(|m| ConfigError {
            location: "legacy.protocol".into(),
            message: m,
        })?;
    upstream.tls = super::tls::upstream_tls(file.upstream_tls)?;
    let tls = super::tls::edge_tls(file.tls)?;

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
    if let Some(v) = file.shadow.cpu_ceiling {
        facade.shadow.cpu_ceiling = v.0 as f64 / 100.0;
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
    if let Some(v) = file.shadow.id_map_pairs {
        facade.shadow.id_map_pairs = usize::try_from(v.0).unwrap_or(usize::MAX);
    }
    let catalog_url = file
        .catalog
        .url
        .clone()
        .unwrap_or_else(|| "sqlite://strangler.db".to_owned());
    facade.shadow.wal_dir = match file.shadow.wal_dir {
        Some(dir) if dir.as_os_str().is_empty() => {
            return Err(ConfigError {
                location: "shadow.wal_dir".into(),
                message:
                    "is empty; name a directory on local disk for the mirror's write-ahead log"
                        .into(),
            })
        }
        Some(dir) => dir,
        None => default_wal_dir(&catalog_url),
    };
    if let Some(v) = file.shadow.mirror_attempts {
        facade.shadow.mirror_attempts = u32::try_from(v.0).unwrap_or(u32::MAX);
    }
    if let Some(d) = file.shadow.mirror_retry {
        facade.shadow.mirror_retry = d.0;
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
        users: Vec::new(),
    };
    let auth = AuthSettings {
        users: users(file.auth.users, &auth)?,
        ..auth
    };
    // Without a token the admin listener answers anyone (catalog, audit, shadow results): only
    // this machine may reach it then.
    if !admin.ip().is_loopback()
        && auth.operator_token.is_none()
        && auth.viewer_token.is_none()
        && auth.users.is_empty()
    {
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
        tls,
        workers: file.workers.map(|w| usize::try_from(w.0).unwrap_or(1)),
        catalog: CatalogSettings {
            url: catalog_url,
            poll_interval: file
                .catalog
                .poll_interval
                .map_or(std::time::Duration::from_secs(2), |d| d.0),
            owner_fence: file.catalog.owner_fence.map_or(
                std::time::Duration::from_millis(
                    u64::try_from(strangler_store::DEFAULT_OWNER_FENCE_MS).unwrap_or(5_000),
                ),
                |d| d.0,
            ),
            declared,
            pool_size: file
                .catalog
                .pool_size
                .map(|n| u32::try_from(n.0).unwrap_or(64)),
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

/// Names the audit log already uses for the shared tokens and the control loops.
const RESERVED_NAMES: [&str; 5] = ["operator", "viewer", "autopilot", "reconcile", "system"];

/// The named users, checked: a name of letters, digits, `.`, `_`, `-` and `@` (at most 64),
/// not reserved and not repeated; a role; one token each (inline or in a file, at least 16
/// characters) that no one else has.
fn users(
    file: Vec<super::file::FileUser>,
    shared: &AuthSettings,
) -> Result<Vec<strangler_dashboard::api::User>, ConfigError> {
    use strangler_dashboard::api::{Role, User};
    let mut out: Vec<User> = Vec::new();
    for (i, u) in file.into_iter().enumerate() {
        let at = |field: &str| format!("auth.users[{i}].{field}");
        let err = |field: &str, message: String| ConfigError {
            location: at(field),
            message,
        };
        let name = u.name.trim().to_owned();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
        if !valid {
            return Err(err(
                "name",
                format!("`{name}` is not a user name: use 1-64 letters, digits, `.`, `_`, `-` or `@` (for example `alice` or `alice@example.com`)"),
            ));
        }
        if RESERVED_NAMES.contains(&name.as_str()) {
            return Err(err(
                "name",
                format!("`{name}` is what the audit log calls the shared tokens and the control loops; give the person their own name"),
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(err(
                "name",
                format!("`{name}` is named twice; each person once, with one role"),
            ));
        }
        let role = match u.role.trim() {
            "operator" => Role::Operator,
            "viewer" => Role::Viewer,
            other => {
                return Err(err(
                    "role",
                    format!(
                    "`{other}` is not a role: `operator` (reads and changes) or `viewer` (reads)"
                ),
                ))
            }
        };
        let key = at("token_file");
        let token = match (u.token.is_some(), u.token_file.is_some()) {
            (true, true) => {
                return Err(err(
                    "token",
                    "set `token` or `token_file`, not both".into(),
                ))
            }
            (false, false) => {
                return Err(err(
                    "token",
                    "set `token_file` (a file holding the token) or `token`; generate one with `openssl rand -hex 24`".into(),
                ))
            }
            _ => token(u.token, u.token_file, &key)?,
        };
        let Some(token) = token else {
            return Err(err("token", "is empty".into()));
        };
        let taken = out.iter().any(|o| o.token == token)
            || shared.operator_token.as_deref() == Some(token.as_str())
            || shared.viewer_token.as_deref() == Some(token.as_str());
        if taken {
            return Err(err(
                "token",
                format!("`{name}` has the same token as another user or a shared token; every person needs a token of their own, or the audit log cannot tell them apart"),
            ));
        }
        out.push(User { name, role, token });
    }
    Ok(out)
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
                cut_over: fc.cut_over,
                owner_move: None,
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

/// Where the mirror's log lives unless configured: beside a SQLite catalog's file (so that a
/// restart on the same catalog finds it), else `strangler-mirror-wal` in the working directory.
fn default_wal_dir(catalog_url: &str) -> std::path::PathBuf {
    let file = catalog_url
        .strip_prefix("sqlite://")
        .or_else(|| catalog_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|f| !f.is_empty() && *f != ":memory:");
    match file {
        Some(f) => std::path::PathBuf::from(format!("{f}.mirror-wal")),
        None => std::path::PathBuf::from("strangler-mirror-wal"),
    }
}
