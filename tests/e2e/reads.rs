//! Routes whose `POST`s only read (gRPC query methods, GraphQL queries, search forms): they follow
//! the canary split like GETs, where other `POST`s go to the write owner.

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use serde_json::json;

use crate::harness::*;
use crate::migration::shop;

async fn post(facade: &str, path: &str) -> String {
    let req = http::Request::post(format!("http://{facade}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"q\":1}")))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test]
async fn posts_on_a_reads_route_follow_the_canary_and_other_posts_the_owner() {
    let (_, new, s, admin) = shop().await;
    admin
        .change(
            Method::POST,
            "/api/v1/services",
            json!({ "name": "search-svc", "urls": [format!("http://{new}")] }),
        )
        .await;
    admin
        .change(
            Method::POST,
            "/api/v1/contexts",
            json!({ "name": "search", "target": "search-svc", "state": "legacy" }),
        )
        .await;
    for (path, reads) in [("/search", true), ("/orders", false)] {
        admin
            .change(
                Method::POST,
                "/api/v1/routes",
                json!({ "context": "search", "methods": ["POST"], "path": path, "reads": reads }),
            )
            .await;
    }
    // The flag is stored with the route.
    let (_, _, routes) = admin.call(Method::GET, "/api/v1/routes", None).await;
    let text = routes.to_string();
    assert!(text.contains("\"reads\":true"), "{text}");
    admin.promote_to_canary("search", 10_000).await;
    let f = s.listen.as_str();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while post(f, "/search").await != "new" {
        assert!(
            std::time::Instant::now() < deadline,
            "the reads route never went to the canary"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for _ in 0..10 {
        assert_eq!(
            post(f, "/search").await,
            "new",
            "a read POST follows the canary"
        );
        assert_eq!(
            post(f, "/orders").await,
            "legacy",
            "a write POST goes to the owner"
        );
    }
    s.stop().await;
}
