//! HTTP/2 to an upstream: one multiplexed connection shared by every request (h2c with prior
//! knowledge, or h2 agreed by ALPN over TLS), opened by one request at a time and opened again
//! once it closes or ages out.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response, Uri};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::{lock, within, BoxError, Opened, SendFailure, Upstream, UpstreamBody, UNSENT_RETRIES};
use crate::error::{FailureKind, UpstreamError};

impl<B> Upstream<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    /// One exchange on the shared HTTP/2 connection (opened if there is none usable).
    pub(super) async fn exchange_h2(
        &self,
        mut req: Request<B>,
    ) -> Result<Response<UpstreamBody<B>>, SendFailure<B>> {
        // HTTP/2 names the target in `:scheme` and `:authority`: the Host the request carries
        // (as the facade set it for this upstream), else the origin's.
        let authority = req
            .headers_mut()
            .remove(http::header::HOST)
            .and_then(|h| Authority::try_from(h.as_bytes()).ok())
            .unwrap_or_else(|| self.inner.origin.authority.clone());
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(self.inner.origin.scheme.clone());
        parts.authority = Some(authority);
        *req.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
        // HTTP/2 has no other version; the client's may have been 1.0 or 1.1.
        *req.version_mut() = http::Version::HTTP_2;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut sender = match self.shared_h2() {
                Some(s) => s,
                None => match self.connect_h2_once().await {
                    Ok(s) => s,
                    Err(error) => {
                        return Err(SendFailure {
                            error,
                            unsent: Some(req),
                        })
                    }
                },
            };
            if sender.ready().await.is_err() {
                self.forget_h2(&sender);
                if attempt < UNSENT_RETRIES {
                    continue;
                }
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let body = UpstreamBody::hyper(body, None);
                    return Ok(Response::from_parts(parts, body));
                }
                Err(mut e) => {
                    self.forget_h2(&sender);
                    match e.take_message() {
                        Some(unsent) if attempt < UNSENT_RETRIES => req = unsent,
                        unsent => {
                            return Err(SendFailure {
                                error: UpstreamError::classify(e.into_error()),
                                unsent,
                            })
                        }
                    }
                }
            }
        }
    }

    /// The shared HTTP/2 connection, if it is open and young enough.
    fn shared_h2(&self) -> Option<http2::SendRequest<B>> {
        let h2 = lock(&self.inner.pool.h2);
        let (sender, born) = h2.as_ref()?;
        (!sender.is_closed() && born.elapsed() <= self.inner.config.max_connection_age)
            .then(|| sender.clone())
    }

    /// Forgets the shared connection if it is still `sender`'s.
    fn forget_h2(&self, sender: &http2::SendRequest<B>) {
        let mut h2 = lock(&self.inner.pool.h2);
        if h2
            .as_ref()
            .is_some_and(|(s, _)| s.is_closed() || sender.is_closed())
        {
            *h2 = None;
        }
    }

    /// The shared connection, connecting unless another request is connecting already (then
    /// its connection is used).
    async fn connect_h2_once(&self) -> Result<http2::SendRequest<B>, UpstreamError> {
        let _turn = self.inner.pool.h2_connecting.acquire().await;
        match self.shared_h2() {
            Some(sender) => Ok(sender),
            None => self.connect_h2().await,
        }
    }

    async fn connect_h2(&self) -> Result<http2::SendRequest<B>, UpstreamError> {
        let inner = &*self.inner;
        let connecting = async {
            match self.open().await? {
                Opened::Tcp(stream) => self.handshake_h2(stream).await,
                Opened::Tls(stream) => {
                    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
                        return Err(UpstreamError::new(
                            FailureKind::Connect,
                            Some("the upstream did not agree to HTTP/2 (ALPN); give the service protocol h1 or auto".into()),
                        ));
                    }
                    self.handshake_h2(stream).await
                }
            }
        };
        let sender = within(inner.config.connect_timeout, connecting).await?;
        *lock(&inner.pool.h2) = Some((sender.clone(), Instant::now()));
        Ok(sender)
    }

    pub(super) async fn handshake_h2<IO>(
        &self,
        io: IO,
    ) -> Result<http2::SendRequest<B>, UpstreamError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_header_list_size(64 * 1024)
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(false);
        let (sender, conn) = builder
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| UpstreamError::new(FailureKind::Connect, Some(Box::new(e))))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended with an error");
            }
        });
        Ok(sender)
    }
}
