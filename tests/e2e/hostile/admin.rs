//! Admin safety: what the admin listener tells needs a token once tokens exist, and without any
//! token it is never reachable from another machine.

use http::Method;

use crate::admin::{token_env, Admin, VIEWER};
use crate::binary;
use crate::harness::*;

/// The services' runtime view names internal addresses: a viewer may see it, nobody else.
#[tokio::test]
async fn the_runtime_view_needs_a_token() {
    let up = named("legacy").await;
    let s = binary::start(&format!("http://{up}"), &token_env()).await;
    let (status, _, _) = Admin::new(&s.admin, None)
        .call(Method::GET, "/api/v1/runtime/services", None)
        .await;
    assert_eq!(status, 401);
    let (status, _, v) = Admin::new(&s.admin, Some(VIEWER))
        .call(Method::GET, "/api/v1/runtime/services", None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v.is_object(), "{v}");
    s.stop().await;
}

/// Binding the admin listener off this machine without a token is refused at start, with the
/// fix named.
#[tokio::test]
async fn an_open_admin_listener_off_this_machine_does_not_start() {
    let up = named("legacy").await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_strangler"))
        .args([
            "serve",
            "--legacy",
            &format!("http://{up}"),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--admin", "0.0.0.0:0"])
        .env("STRANGLER_CATALOG_URL", binary::temp_catalog())
        .env_remove("STRANGLER_AUTH_OPERATOR_TOKEN")
        .env_remove("STRANGLER_AUTH_VIEWER_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no token is configured") && err.contains("--admin 127.0.0.1"),
        "{err}"
    );
}
