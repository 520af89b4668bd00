//! Tunnels for upgraded connections (`Upgrade: websocket` and others): once both sides have
//! switched protocols, bytes are copied both ways until either side closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::request_id::RequestId;

/// Joins the client's and the upstream's upgraded connections in a background task.
pub fn spawn_tunnel(client: OnUpgrade, upstream: OnUpgrade, id: RequestId) {
    tokio::spawn(async move {
        let (client, upstream) = tokio::join!(client, upstream);
        match (client, upstream) {
            (Ok(client), Ok(upstream)) => {
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    Ok((up, down)) => tracing::debug!(
                        request_id = %id, bytes_to_upstream = up, bytes_to_client = down,
                        "tunnel closed"
                    ),
                    Err(e) => tracing::debug!(request_id = %id, error = %e, "tunnel broke"),
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(request_id = %id, error = %e, "upgrade failed on one side");
            }
        }
    });
}
