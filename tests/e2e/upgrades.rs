//! `Upgrade` passes end to end: a WebSocket echo through the facade, both directions, until
//! either side closes.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite;

use crate::harness::*;

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            // The server closes first.
            Message::Text(t) if t.as_str() == "bye" => Message::Close(None),
            Message::Text(_) | Message::Binary(_) => msg,
            Message::Close(_) => return,
            _ => continue,
        };
        let closing = matches!(reply, Message::Close(_));
        if socket.send(reply).await.is_err() || closing {
            return;
        }
    }
}

async fn ws_facade() -> FacadeHandle {
    let app = Router::new().route(
        "/ws",
        get(|ws: WebSocketUpgrade| async move { ws.on_upgrade(echo) }),
    );
    let (up, _) = axum_upstream(app).await;
    facade(up, |_| {}).await
}

#[tokio::test]
async fn websocket_echo_both_directions_client_closes() {
    let f = ws_facade().await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", f.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..50 {
        ws.send(tungstenite::Message::text(format!("msg {i}")))
            .await
            .unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), format!("msg {i}"));
    }
    let blob = vec![0xABu8; 256 * 1024];
    ws.send(tungstenite::Message::binary(blob.clone()))
        .await
        .unwrap();
    let back = ws.next().await.unwrap().unwrap();
    assert_eq!(back.into_data().as_ref(), &blob[..]);
    ws.close(None).await.unwrap();
    assert!(f.metrics().contains("strangler_upgrades_total 1\n"));
}

#[tokio::test]
async fn websocket_server_close_reaches_the_client() {
    let f = ws_facade().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", f.addr))
        .await
        .unwrap();
    ws.send(tungstenite::Message::text("bye")).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(3), ws.next())
        .await
        .expect("close never arrived");
    match next {
        Some(Ok(tungstenite::Message::Close(_))) | None => {}
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test]
async fn other_upgrades_are_tunnelled_as_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An upstream speaking a made-up protocol after 101: it echoes bytes upper-cased.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let head = read_head(&mut s).await;
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.contains("upgrade: shout/1"), "{head}");
        assert!(head.contains("connection: upgrade"), "{head}");
        s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: shout/1\r\nConnection: Upgrade\r\n\r\n",
        )
        .await
        .unwrap();
        let mut buf = [0u8; 64];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            s.write_all(&buf[..n].to_ascii_uppercase()).await.unwrap();
        }
    });
    let f = facade(addr, |_| {}).await;
    let mut c = tokio::net::TcpStream::connect(f.addr).await.unwrap();
    c.write_all(
        b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: shout/1\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut c).await;
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: shout/1"), "{head}");
    c.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(3), c.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"HELLO");
}

/// A WebSocket on a shadowed context: the tunnel works, and the shadow the request was
/// planned for is counted as skipped (`upgraded`: nothing to compare), not lost.
#[tokio::test]
async fn an_upgrade_in_a_shadowed_context_is_counted_as_a_skipped_shadow() {
    let f = ws_facade().await;
    let mut catalog =
        crate::shadow::catalog(dead_port(), strangler_catalog::MigrationState::Shadow);
    for route in catalog.routes.values_mut() {
        route.spec.path = "/ws".into();
    }
    f.facade.apply_catalog(&catalog).unwrap();
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", f.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(tungstenite::Message::text("hello")).await.unwrap();
    let back = ws.next().await.unwrap().unwrap();
    assert_eq!(back.into_text().unwrap().as_str(), "hello");
    // The plan is settled before the 101 reaches the client.
    let m = f.metrics();
    assert_eq!(
        crate::shadow::metric(
            &m,
            "strangler_shadow_skipped_total{context=\"orders\",reason=\"upgraded\"}"
        ),
        Some(1),
        "{m}"
    );
    ws.close(None).await.unwrap();
}
