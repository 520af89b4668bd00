use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use super::*;

/// A self-signed certificate for `localhost` and its key, PEM.
fn self_signed() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    (c.cert.pem(), c.key_pair.serialize_pem())
}

fn file(text: &str) -> tempfile_like::TempFile {
    tempfile_like::TempFile::new(text)
}

/// A tiny temporary file helper, to avoid a dependency for four tests.
mod tempfile_like {
    use std::path::{Path, PathBuf};

    pub struct TempFile(PathBuf);

    impl TempFile {
        pub fn new(text: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "strangler-config-test-{}-{}.toml",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let mut f = std::fs::File::create(&path).unwrap();
            super::Write::write_all(&mut f, text.as_bytes()).unwrap();
            Self(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

fn legacy_flag() -> Overrides {
    Overrides {
        legacy: Some("http://127.0.0.1:8000".into()),
        ..Overrides::default()
    }
}

#[test]
fn defaults_need_only_the_legacy_url() {
    let s = load(None, &no_env(), &legacy_flag()).unwrap();
    assert_eq!(s.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(s.admin, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(s.workers, None);
    assert_eq!(s.facade.legacy.origin.to_prefix(), "http://127.0.0.1:8000");
    assert_eq!(s.facade.limits.max_body_bytes, None);
    assert!(s.facade.forwarding.rewrite_redirects);
    assert_eq!(s.log.level, "info");
}

#[test]
fn missing_legacy_says_how_to_set_it() {
    let err = load(None, &no_env(), &Overrides::default()).unwrap_err();
    assert!(err.message.contains("--legacy"), "{err}");
    assert!(err.message.contains("STRANGLER_LEGACY_URL"), "{err}");
}

#[test]
fn file_then_env_then_flags() {
    let f = file(
        "listen = \"127.0.0.1:7000\"\nadmin = \"127.0.0.1:7001\"\n\n[legacy]\nurl = \"http://127.0.0.1:1\"\nresponse_timeout = \"off\"\n\n[limits]\nmax_body_bytes = 1000\nbody_idle_timeout = \"250ms\"\n\n[forwarding]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\n",
    );
    let mut env = no_env();
    env.insert("STRANGLER_LISTEN".into(), "127.0.0.1:7100".into());
    env.insert("STRANGLER_LIMITS_MAX_BODY_BYTES".into(), "2000".into());
    env.insert("STRANGLER_LOG_ACCESS_LOG".into(), "true".into());
    let flags = Overrides {
        listen: Some("127.0.0.1:7200".into()),
        workers: Some(3),
        ..Overrides::default()
    };
    let s = load(Some(f.path()), &env, &flags).unwrap();
    assert_eq!(s.listen, "127.0.0.1:7200".parse().unwrap(), "flag wins");
    assert_eq!(s.admin, "127.0.0.1:7001".parse().unwrap(), "file kept");
    assert_eq!(
        s.facade.limits.max_body_bytes,
        Some(2000),
        "env wins over file"
    );
    assert_eq!(
        s.facade.limits.body_idle_timeout,
        Duration::from_millis(250)
    );
    assert_eq!(s.facade.legacy.response_timeout, None);
    assert_eq!(s.facade.forwarding.trusted_proxies.len(), 2);
    assert!(s.facade.access_log);
    assert_eq!(s.workers, Some(3));
}

#[test]
fn bad_file_values_name_the_line_and_the_fix() {
    let cases = [
        (
            "[legacy]\nurl = \"http://127.0.0.1:1\"\nconnect_timeout = \"soon\"\n",
            ":3:",
            "500ms",
        ),
        (
            "listen = \"8080\"\n[legacy]\nurl = \"http://x:1\"\n",
            ":1:",
            "IP:PORT",
        ),
        (
            "[legacy]\nurl = \"ftp://x\"\n",
            ":2:",
            "write http:// or https://",
        ),
        (
            "[legacy]\nurl = \"http://x:1\"\n[limits]\nmax_headers = 3\n",
            ":4:",
            "from 8 to 10000",
        ),
        (
            "[legacy]\nurl = \"http://x:1\"\nretries = 3\n",
            ":3:",
            "expected one of",
        ),
        ("[legacy\nurl = 1\n", ":1:", ""),
        (
            "[legacy]\nurl = \"http://x:1\"\n[forwarding]\ntrusted_proxies = [\"everyone\"]\n",
            ":4:",
            "CIDR",
        ),
    ];
    for (text, line, fix) in cases {
        let f = file(text);
        let err = load(Some(f.path()), &no_env(), &Overrides::default()).unwrap_err();
        assert!(err.location.contains(line), "{text:?} → {err}");
        assert!(
            err.location.starts_with(&f.path().display().to_string()),
            "{err}"
        );
        assert!(err.message.contains(fix), "{text:?} → {err}");
    }
}

#[test]
fn bad_environment_values_name_the_variable() {
    let mut env = no_env();
    env.insert("STRANGLER_LIMITS_MAX_HEADERS".into(), "many".into());
    let err = load(None, &env, &legacy_flag()).unwrap_err();
    assert_eq!(err.location, "environment STRANGLER_LIMITS_MAX_HEADERS");
    assert!(err.message.contains("whole number"), "{err}");

    let mut env = no_env();
    env.insert("STRANGLER_SHUTDOWN_GRACE".into(), "0s".into());
    let err = load(None, &env, &legacy_flag()).unwrap_err();
    assert_eq!(err.location, "environment STRANGLER_SHUTDOWN_GRACE");
    assert!(err.message.contains("zero"), "{err}");
}

#[test]
fn bad_flags_name_the_flag() {
    let flags = Overrides {
        legacy: Some("localhost:8000".into()),
        ..Overrides::default()
    };
    let err = load(None, &no_env(), &flags).unwrap_err();
    assert_eq!(err.location, "--legacy");
    assert!(err.message.contains("http://host:port"), "{err}");
}

#[test]
fn same_listen_and_admin_is_refused() {
    let flags = Overrides {
        listen: Some("127.0.0.1:9000".into()),
        admin: Some("127.0.0.1:9000".into()),
        ..legacy_flag()
    };
    let err = load(None, &no_env(), &flags).unwrap_err();
    assert!(err.message.contains("different ports"), "{err}");
}

#[test]
fn every_key_has_a_working_variable() {
    // Each KEYS entry must reach a real field: a wrong path would be an unknown field.
    let token_file = file("  0123456789abcdef0123\n");
    let key_file = file(&"ab".repeat(32));
    let (cert_pem, key_pem) = self_signed();
    let (cert_pem, key_pem) = (file(&cert_pem), file(&key_pem));
    let (pem_cert, pem_key) = (
        cert_pem.path().to_str().unwrap(),
        key_pem.path().to_str().unwrap(),
    );
    for (key, kind) in KEYS {
        let value = match kind {
            Kind::Str => match *key {
                "listen" => "127.0.0.1:1",
                "admin" => "127.0.0.1:2",
                "legacy.url" => "http://127.0.0.1:3",
                "legacy.host_header" => "upstream",
                "legacy.protocol" => "h2c",
                "log.format" => "json",
                "log.level" => "debug",
                "forwarding.via_name" => "edge",
                "catalog.url" => "sqlite://x.db",
                "shadow.retention" | "dashboard.quiet_period" | "events.retry_horizon" => "7d",
                "events.nats_url" => "nats://127.0.0.1:4222",
                "events.nats_subject" => "strangler.events",
                "events.webhook_secret" => "0123456789abcdef0123",
                "auth.operator_token" | "auth.viewer_token" => "0123456789abcdef0123",
                "auth.operator_token_file" | "auth.viewer_token_file" => {
                    token_file.path().to_str().unwrap()
                }
                "identity.cookie" => "SID",
                "identity.resolve_path" => "/api/session",
                "identity.issuer" => "shop",
                "identity.key" => {
                    "0101010101010101010101010101010101010101010101010101010101010101"
                }
                "identity.key_file" => key_file.path().to_str().unwrap(),
                "tls.cert_file" | "upstream_tls.client_cert_file" | "upstream_tls.ca_file" => {
                    pem_cert
                }
                "tls.key_file" | "upstream_tls.client_key_file" => pem_key,
                "tls.hsts" => "max-age=31536000",
                _ => "5s",
            },
            Kind::Int => match *key {
                "shadow.max_body_bytes" => "4096",
                _ => "64",
            },
            Kind::Bool => "false",
            Kind::List if *key == "events.webhooks" => "http://127.0.0.1:9999/hook",
            Kind::List => "10.0.0.0/8",
        };
        let mut env = no_env();
        env.insert(env_name(key), value.into());
        if *key != "legacy.url" {
            env.insert("STRANGLER_LEGACY_URL".into(), "http://127.0.0.1:3".into());
        }
        if key.starts_with("identity.") && *key != "identity.resolve_path" {
            env.insert(
                "STRANGLER_IDENTITY_RESOLVE_PATH".into(),
                "/api/session".into(),
            );
        }
        // A certificate and its key come together.
        if key.starts_with("tls.") {
            env.insert("STRANGLER_TLS_CERT_FILE".into(), pem_cert.into());
            env.insert("STRANGLER_TLS_KEY_FILE".into(), pem_key.into());
        }
        if key.starts_with("upstream_tls.client_") {
            env.insert(
                "STRANGLER_UPSTREAM_TLS_CLIENT_CERT_FILE".into(),
                pem_cert.into(),
            );
            env.insert(
                "STRANGLER_UPSTREAM_TLS_CLIENT_KEY_FILE".into(),
                pem_key.into(),
            );
        }
        if *key == "limits.max_header_bytes" {
            env.insert(env_name(key), "2048".into());
        }
        load(None, &env, &Overrides::default()).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
}

#[test]
fn tokens_come_inline_or_from_a_file_and_must_be_long() {
    let f = file("  s3cr3t-operator-token-0001\n");
    let mut env = no_env();
    env.insert(
        "STRANGLER_AUTH_OPERATOR_TOKEN_FILE".into(),
        f.path().display().to_string(),
    );
    env.insert(
        "STRANGLER_AUTH_VIEWER_TOKEN".into(),
        "viewer-token-0000000001".into(),
    );
    let s = load(None, &env, &legacy_flag()).unwrap();
    assert_eq!(
        s.auth.operator_token.as_deref(),
        Some("s3cr3t-operator-token-0001")
    );
    assert_eq!(
        s.auth.viewer_token.as_deref(),
        Some("viewer-token-0000000001")
    );
    assert!(
        !format!("{:?}", s.auth).contains("s3cr3t"),
        "tokens must never be printed"
    );

    let mut env = no_env();
    env.insert("STRANGLER_AUTH_OPERATOR_TOKEN".into(), "short".into());
    let err = load(None, &env, &legacy_flag()).unwrap_err();
    assert!(err.message.contains("at least 16"), "{err}");
}

#[test]
fn the_file_can_declare_the_catalog() {
    let f = file(
        "[legacy]\nurl = \"http://127.0.0.1:1\"\n\n[[services]]\nname = \"orders-svc\"\nurls = [\"http://127.0.0.1:2\"]\n\n[[contexts]]\nname = \"orders\"\ntarget = \"orders-svc\"\nstate = \"shadow\"\nsticky = \"cookie:sid\"\n\n[[contexts.routes]]\nmethods = [\"GET\"]\npath = \"/orders/{id}\"\n",
    );
    let s = load(Some(f.path()), &no_env(), &Overrides::default()).unwrap();
    let c = s.catalog.declared.unwrap();
    assert_eq!(
        c.contexts["orders"].state,
        strangler_catalog::MigrationState::Shadow
    );
    assert_eq!(c.routes.len(), 1);

    let bad = file("[legacy]\nurl = \"http://127.0.0.1:1\"\n\n[[contexts]]\nname = \"orders\"\ntarget = \"ghost\"\n");
    let err = load(Some(bad.path()), &no_env(), &Overrides::default()).unwrap_err();
    assert!(
        err.to_string().contains("contexts.orders.target") && err.message.contains("ghost"),
        "{err}"
    );
}

#[test]
fn shadow_settings_load_and_retention_is_checked() {
    let f = file(
        "[legacy]\nurl = \"http://127.0.0.1:1\"\n\n[shadow]\nmax_per_second = 500\ncpu_ceiling = 45\nmirror_attempts = 3\nretention = \"30d\"\n",
    );
    let s = load(Some(f.path()), &no_env(), &Overrides::default()).unwrap();
    assert_eq!(s.facade.shadow.max_per_second, 500);
    assert_eq!(s.facade.shadow.cpu_ceiling, 0.45);
    assert_eq!(
        load(
            None,
            &no_env(),
            &Overrides {
                legacy: Some("http://127.0.0.1:1".into()),
                ..Overrides::default()
            }
        )
        .map(|s| s.facade.shadow.cpu_ceiling)
        .ok(),
        Some(0.6),
        "60 % unless set"
    );
    let f = file("[legacy]\nurl = \"http://127.0.0.1:1\"\n\n[shadow]\ncpu_ceiling = 100\n");
    let err = load(Some(f.path()), &no_env(), &Overrides::default()).unwrap_err();
    assert!(err.message.contains("10"), "says the range: {err}");
    assert_eq!(s.facade.shadow.mirror_attempts, 3);
    assert_eq!(s.facade.shadow.retention, Duration::from_secs(30 * 86_400));
    let f = file("[legacy]\nurl = \"http://127.0.0.1:1\"\n\n[shadow]\nretention = \"5s\"\n");
    let err = load(Some(f.path()), &no_env(), &Overrides::default()).unwrap_err();
    assert!(err.message.contains("out of range"), "{err}");
    assert!(err.to_string().contains(":5:"), "names the line: {err}");
}

#[test]
fn bad_event_sinks_are_refused_with_the_key() {
    for (key, value, says) in [
        ("STRANGLER_EVENTS_WEBHOOKS", "ftp://x/hook", "http://"),
        ("STRANGLER_EVENTS_WEBHOOKS", "not a url", "not a URL"),
        ("STRANGLER_EVENTS_NATS_URL", "127.0.0.1:4222", "nats://"),
        ("STRANGLER_EVENTS_NATS_SUBJECT", "a..b", "subject"),
        ("STRANGLER_EVENTS_WEBHOOK_SECRET", "short", "16"),
    ] {
        let mut env = no_env();
        env.insert("STRANGLER_LEGACY_URL".into(), "http://127.0.0.1:3".into());
        env.insert(key.into(), value.into());
        let e = load(None, &env, &Overrides::default()).unwrap_err();
        assert!(e.location.starts_with("events."), "{key}: {e}");
        assert!(e.to_string().contains(says), "{key}: {e}");
    }
}

/// An admin listener anyone on the network could reach, with no token to ask for: refused,
/// with the two ways out named.
#[test]
fn an_open_admin_listener_off_this_machine_is_refused() {
    let flags = Overrides {
        admin: Some("0.0.0.0:9090".into()),
        ..legacy_flag()
    };
    let err = load(None, &no_env(), &flags).unwrap_err();
    assert_eq!(err.location, "admin");
    assert!(
        err.message.contains("127.0.0.1") && err.message.contains("STRANGLER_AUTH_VIEWER_TOKEN"),
        "{err}"
    );
    let env: HashMap<String, String> = [(
        "STRANGLER_AUTH_VIEWER_TOKEN".to_owned(),
        "a-viewer-token-0123456789".to_owned(),
    )]
    .into();
    assert!(load(None, &env, &flags).is_ok());
    let local = Overrides {
        admin: Some("[::1]:9090".into()),
        ..legacy_flag()
    };
    assert!(load(None, &no_env(), &local).is_ok());
}

#[test]
fn named_users_are_checked_one_by_one() {
    let head = "[legacy]\nurl = \"http://127.0.0.1:1\"\n\n[auth]\noperator_token = \"shared-token-0123456789\"\n";
    let with = |users: &str| file(&format!("{head}{users}"));
    let f = with(
        "[[auth.users]]\nname = \"alice@example.com\"\nrole = \"operator\"\ntoken = \"alice-token-0123456789\"\n\
         [[auth.users]]\nname = \"bob\"\nrole = \"viewer\"\ntoken = \"bob-token-0123456789ab\"\n",
    );
    let s = load(Some(f.path()), &no_env(), &Overrides::default()).unwrap();
    let users: Vec<_> = s
        .auth
        .users
        .iter()
        .map(|u| (u.name.as_str(), u.role))
        .collect();
    use strangler_dashboard::api::Role;
    assert_eq!(
        users,
        [("alice@example.com", Role::Operator), ("bob", Role::Viewer)]
    );
    assert!(
        !format!("{:?}", s.auth).contains("alice-token"),
        "never printed"
    );
    for (users, at, says) in [
        (
            "[[auth.users]]\nname = \"al ice\"\nrole = \"operator\"\ntoken = \"alice-token-0123456789\"\n",
            "auth.users[0].name",
            "not a user name",
        ),
        (
            "[[auth.users]]\nname = \"operator\"\nrole = \"operator\"\ntoken = \"alice-token-0123456789\"\n",
            "auth.users[0].name",
            "shared tokens",
        ),
        (
            "[[auth.users]]\nname = \"a\"\nrole = \"admin\"\ntoken = \"alice-token-0123456789\"\n",
            "auth.users[0].role",
            "`operator` (reads and changes) or `viewer`",
        ),
        (
            "[[auth.users]]\nname = \"a\"\nrole = \"viewer\"\n",
            "auth.users[0].token",
            "token_file",
        ),
        (
            "[[auth.users]]\nname = \"a\"\nrole = \"viewer\"\ntoken = \"short\"\n",
            "auth.users[0].token",
            "at least 16",
        ),
        (
            "[[auth.users]]\nname = \"a\"\nrole = \"viewer\"\ntoken = \"shared-token-0123456789\"\n",
            "auth.users[0].token",
            "token of their own",
        ),
        (
            "[[auth.users]]\nname = \"a\"\nrole = \"viewer\"\ntoken = \"aaaa-token-0123456789\"\n\
             [[auth.users]]\nname = \"a\"\nrole = \"operator\"\ntoken = \"bbbb-token-0123456789\"\n",
            "auth.users[1].name",
            "named twice",
        ),
        (
            "[[auth.users]]\nname = \"a\"\nrole = \"viewer\"\ntoken_file = \"/nonexistent/a.token\"\n",
            "auth.users[0].token_file",
            "cannot read the token file",
        ),
    ] {
        let f = with(users);
        let err = load(Some(f.path()), &no_env(), &Overrides::default()).unwrap_err();
        assert_eq!(err.location, at, "{err}");
        assert!(err.message.contains(says), "{err}");
    }
}
