//! One upstream service: its origin, a keep-alive connection pool and its timeouts.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{Either, FutureExt, TryFutureExt};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::client::conn::http2;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::{BoxError, FailureKind, UpstreamError};

/// Why an upstream URL is not an origin Strangler can send to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{url}` {problem}")]
pub struct OriginError {
    pub url: String,
    pub problem: OriginProblem,
}

/// What is wrong with an upstream URL; the message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginProblem {
    #[error("is not a URL ({0}); write it as http://host:port")]
    NotUrl(String),
    #[error("has no scheme; write it as http://host:port")]
    NoScheme,
    #[error("uses the scheme `{0}`; write http:// or https://")]
    Scheme(String),
    #[error("has no host; write it as http://host:port")]
    NoHost,
    #[error("has a path; an upstream is an origin only (http://host:port)")]
    Path,
    #[error("has a query; an upstream is an origin only")]
    Query,
}

/// Where an upstream lives: scheme and authority, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: Scheme,
    pub authority: Authority,
}

impl Origin {
    /// Parses `http://host:port` or `https://host:port` (a path, if any, must be `/`).
    pub fn parse(url: &str) -> Result<Self, OriginError> {
        let fail = |problem| OriginError {
            url: url.to_owned(),
            problem,
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| fail(OriginProblem::NotUrl(e.to_string())))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| fail(OriginProblem::NoScheme))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(fail(OriginProblem::Scheme(scheme.to_string())));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| fail(OriginProblem::NoHost))?;
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(fail(OriginProblem::Path));
        }
        if uri.query().is_some() {
            return Err(fail(OriginProblem::Query));
        }
        Ok(Self { scheme, authority })
    }

    /// `scheme://authority`, as it appears at the start of absolute URLs.
    pub fn to_prefix(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

/// How an upstream is spoken to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1, a pool of keep-alive connections.
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge: one multiplexed connection, opened again
    /// when it closes or ages out.
    H2c,
    /// HTTP/2 over TLS, agreed by ALPN (an upstream that does not agree is a connect failure).
    H2,
    /// Over TLS, what the upstream chooses by ALPN: HTTP/2 if it offers it, else HTTP/1.1.
    Auto,
}

impl Protocol {
    /// Whether the protocol fits the origin's scheme; the error says what to write.
    pub fn check(self, origin: &Origin) -> Result<(), String> {
        let tls = origin.scheme == Scheme::HTTPS;
        match (self, tls) {
            (Protocol::H2c, true) => Err(format!("{} is https://: h2c is HTTP/2 without TLS; use h2 or auto", origin.to_prefix())),
            (Protocol::H2 | Protocol::Auto, false) => Err(format!("{} is http://: h2 and auto are agreed over TLS; use h2c for HTTP/2 without TLS, or an https:// URL", origin.to_prefix())),
            _ => Ok(()),
        }
    }
}

/// Per-service client settings.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub origin: Origin,
    pub protocol: Protocol,
    /// Time allowed to open a TCP connection and complete the HTTP handshake.
    pub connect_timeout: Duration,
    /// Time allowed from sending the request to receiving the response head. `None` waits
    /// forever (long polls).
    pub response_timeout: Option<Duration>,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept.
    pub pool_max_idle: usize,
    /// Most header fields accepted in an upstream response.
    pub max_response_headers: usize,
    /// Connections older than this are not reused (host names are resolved on every connect).
    pub max_connection_age: Duration,
    /// TLS for `https://` origins (`None`: the system's CAs, no client certificate).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl UpstreamConfig {
    pub fn new(origin: Origin) -> Self {
        Self {
            origin,
            protocol: Protocol::Http1,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Some(Duration::from_secs(60)),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle: 256,
            max_response_headers: 512,
            max_connection_age: Duration::from_secs(60),
            tls: None,
        }
    }
}

/// A keep-alive HTTP/1.1 client bound to one origin. Cheap to clone; clones share the pool.
///
/// The pool is our own rather than hyper-util's: a connection goes back to the pool the moment
/// its response body ends (no task per request to watch for that), the idle list is a stack so
/// the warmest connection is reused first, and later issues need to see per-connection state
/// (in-flight counts for balancing, health for ejection) that a closed pool hides.
pub struct Upstream<B> {
    inner: Arc<Inner<B>>,
}

impl<B> Clone for Upstream<B> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<B> {
    origin: Origin,
    /// `host:port` to connect to (port 80 when the origin names none).
    connect_to: String,
    config: UpstreamConfig,
    handshake: http1::Builder,
    /// For an `https://` origin: the connector (ALPN set for the protocol) and the name the
    /// certificate must carry; or why TLS cannot be used (every connect fails with it).
    tls: Option<
        Result<
            (
                tokio_rustls::TlsConnector,
                rustls::pki_types::ServerName<'static>,
            ),
            String,
        >,
    >,
    /// Shared with the upstreams built from this one with another configuration, so that a
    /// policy change (a shorter timeout during an incident) keeps the warm connections.
    pool: Arc<Pool<B>>,
}

/// Idle connections, and how many may wait; or, for HTTP/2, the one shared connection.
struct Pool<B> {
    idle: Mutex<Vec<Idle<B>>>,
    max_idle: std::sync::atomic::AtomicUsize,
    h2: Mutex<Option<(http2::SendRequest<B>, Instant)>>,
    /// One HTTP/2 connect at a time, so that a burst of first requests shares one connection.
    h2_connecting: tokio::sync::Semaphore,
    /// With `auto`: the upstream chose HTTP/2, so requests take the shared connection.
    auto_h2: std::sync::atomic::AtomicBool,
    /// The connections of our own HTTP/1.1 path (see `h1`).
    own: Arc<h1::Pool>,
}

struct Idle<B> {
    sender: SendRequest<B>,
    since: Instant,
    /// When the connection was opened.
    born: Instant,
}

impl<B> std::fmt::Debug for Upstream<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("origin", &self.inner.origin)
            .finish()
    }
}

/// How often a request that never left is tried on another connection (a pooled connection
/// that the upstream closed while it sat idle hands the request back unsent).
const UNSENT_RETRIES: usize = 3;

impl<B> Upstream<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    pub fn new(config: &UpstreamConfig) -> Self {
        let mut handshake = http1::Builder::new();
        handshake.max_headers(config.max_response_headers);
        let port = config.origin.authority.port_u16().unwrap_or(
            if config.origin.scheme == Scheme::HTTPS {
                443
            } else {
                80
            },
        );
        let tls = (config.origin.scheme == Scheme::HTTPS).then(|| {
            let base = match &config.tls {
                Some(c) => Arc::clone(c),
                None => tls::ClientTls::system_default()?,
            };
            let mut client = (*base).clone();
            client.alpn_protocols = match config.protocol {
                Protocol::H2 => vec![b"h2".to_vec()],
                Protocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                Protocol::Http1 | Protocol::H2c => vec![b"http/1.1".to_vec()],
            };
            let name = tls::server_name(config.origin.authority.host())?;
            Ok((tokio_rustls::TlsConnector::from(Arc::new(client)), name))
        });
        Self {
            inner: Arc::new(Inner {
                tls,
                connect_to: format!("{}:{port}", config.origin.authority.host()),
                origin: config.origin.clone(),
                config: config.clone(),
                handshake,
                pool: Arc::new(Pool {
                    idle: Mutex::new(Vec::new()),
                    max_idle: std::sync::atomic::AtomicUsize::new(config.pool_max_idle),
                    h2: Mutex::new(None),
                    h2_connecting: tokio::sync::Semaphore::new(1),
                    auto_h2: std::sync::atomic::AtomicBool::new(false),
                    own: Arc::new(h1::Pool::new(config.pool_max_idle)),
                }),
            }),
        }
    }

    /// This upstream with another configuration (timeouts, pool size) for the same origin:
    /// it takes effect for the next request and keeps the pooled connections. Another origin
    /// gets a pool of its own.
    pub fn reconfigured(&self, config: &UpstreamConfig) -> Self {
        let mut next = Self::new(config);
        if config.origin == self.inner.origin && config.protocol == self.inner.config.protocol {
            if let Some(inner) = Arc::get_mut(&mut next.inner) {
                inner.pool = Arc::clone(&self.inner.pool);
            }
            self.inner
                .pool
                .max_idle
                .store(config.pool_max_idle, std::sync::atomic::Ordering::Relaxed);
            self.inner
                .pool
                .own
                .max_idle
                .store(config.pool_max_idle, std::sync::atomic::Ordering::Relaxed);
        }
        next
    }

    pub fn origin(&self) -> &Origin {
        &self.inner.origin
    }

    /// Idle connections in the pool now.
    pub fn idle_connections(&self) -> usize {
        lock(&self.inner.pool.idle).len() + self.inner.pool.own.len()
    }

    /// Sends `req` to this upstream. Only the path and query of the request's URI are used.
    pub fn send(
        &self,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<UpstreamBody<B>>, UpstreamError>> + '_ {
        self.try_send(req).map_err(|f| f.error)
    }

    /// Like [`Upstream::send`], but a request that never left (no connection could be made)
    /// comes back with the error, so that the caller can send it elsewhere.
    //
    // This and the other steps of a request's way out are plain functions returning futures
    // rather than `async fn`s: an `async fn` keeps each argument twice in its state (as
    // passed, and as moved into its body), and a request is 440 bytes; the state of every
    // step is part of each request's future, which is moved whole into the connection's.
    // The failure is large because it hands an unsent request back, as it always did.
    #[allow(clippy::result_large_err)]
    pub fn try_send(
        &self,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<UpstreamBody<B>>, SendFailure<B>>> + '_ {
        self.try_send_appending(req, &[])
    }

    /// [`Upstream::try_send`], the request sent with `appended` after its own fields, in that
    /// order, as if appended to its map (each name's values in the same order; fields of
    /// different names may come out in another, which HTTP gives no meaning to): written
    /// straight into the head on the own HTTP/1.1 path (a map append hashes the name), appended
    /// to the map on hyper's. A request handed back unsent comes back without them from the
    /// own path, with them from hyper's.
    #[allow(clippy::result_large_err)]
    pub fn try_send_appending<'a>(
        &'a self,
        mut req: Request<B>,
        appended: Appended<'a>,
    ) -> impl Future<Output = Result<Response<UpstreamBody<B>>, SendFailure<B>>> + 'a {
        let origin_form = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(origin_form);
        let limit = self.inner.config.response_timeout;
        if self.own_path(&req) {
            // Timed by the connection's own timer, moved only when it fires (see `h1::timer`):
            // a timer made and dropped per request costs two trips to the timer wheel's lock.
            let deadline = limit.map(|l| tokio::time::Instant::now() + l);
            return Either::Left(self.exchange_own(req, deadline, appended));
        }
        for (name, value) in appended {
            req.headers_mut().append(*name, (*value).clone());
        }
        // Boxed: hyper's exchange (≈1 KiB of state) stays out of the own path's future, which
        // every step up the request path moves at least once.
        Either::Right(crate::boxing::in_box(|| match limit {
            Some(limit) => Either::Left(tokio::time::timeout(limit, self.exchange(req)).map(|r| {
                r.unwrap_or_else(|_| {
                    Err(SendFailure {
                        error: UpstreamError::timeout(),
                        unsent: None,
                    })
                })
            })),
            None => Either::Right(self.exchange(req)),
        }))
    }

    /// Whether `req` goes by our own HTTP/1.1 path (see `h1`): the upstream speaks HTTP/1.1
    /// in plain text, and the request is one the path takes.
    fn own_path(&self, req: &Request<B>) -> bool {
        self.inner.tls.is_none() && !self.h2() && h1::applies(req)
    }

    fn h2(&self) -> bool {
        match self.inner.config.protocol {
            Protocol::H2c | Protocol::H2 => true,
            Protocol::Auto => self
                .inner
                .pool
                .auto_h2
                .load(std::sync::atomic::Ordering::Relaxed),
            Protocol::Http1 => false,
        }
    }

    #[allow(clippy::manual_async_fn)] // on purpose: see `try_send`
    fn exchange(
        &self,
        mut req: Request<B>,
    ) -> impl Future<Output = Result<Response<UpstreamBody<B>>, SendFailure<B>>> + '_ {
        // `req` is used where it was captured (see `try_send`).
        async move {
            // The HTTP/2 exchange and the connect (TLS handshake included) are boxed: inline,
            // their state made this future ~3.9 KiB, copied at each await up the request path,
            // while a pooled HTTP/1 request needs neither.
            if self.h2() {
                return crate::boxing::in_box(|| self.exchange_h2(req)).await;
            }
            let mut attempt = 0;
            loop {
                attempt += 1;
                let (mut sender, born) = match self.checkout().await {
                    Some(pooled) => pooled,
                    None => match Box::pin(self.connect()).await {
                        Ok(Fresh::H1(sender)) => (sender, Instant::now()),
                        // `auto`, and the upstream chose HTTP/2: the connection is the shared one.
                        Ok(Fresh::H2) => return Box::pin(self.exchange_h2(req)).await,
                        Err(error) => {
                            return Err(SendFailure {
                                error,
                                unsent: Some(req),
                            })
                        }
                    },
                };
                match sender.try_send_request(req).await {
                    Ok(resp) => return Ok(self.wrap(resp, sender, born)),
                    Err(mut e) => match e.take_message() {
                        Some(unsent) if attempt < UNSENT_RETRIES => req = unsent,
                        unsent => {
                            return Err(SendFailure {
                                error: UpstreamError::classify(e.into_error()),
                                unsent,
                            })
                        }
                    },
                }
            }
        }
    }

    /// A TCP connection to the origin, and TLS over it for `https://`.
    async fn open(&self) -> Result<Opened, UpstreamError> {
        let inner = &*self.inner;
        let stream = TcpStream::connect(&inner.connect_to)
            .await
            .map_err(|e| UpstreamError::new(FailureKind::Connect, Some(Box::new(e))))?;
        let _ = stream.set_nodelay(true);
        match &inner.tls {
            None => Ok(Opened::Tcp(stream)),
            Some(Err(why)) => Err(UpstreamError::new(
                FailureKind::Connect,
                Some(why.clone().into()),
            )),
            Some(Ok((connector, name))) => connector
                .connect(name.clone(), stream)
                .await
                .map(|s| Opened::Tls(Box::new(s)))
                .map_err(|e| UpstreamError::new(FailureKind::Connect, Some(Box::new(e)))),
        }
    }

    async fn handshake_h1<IO>(&self, io: IO) -> Result<SendRequest<B>, UpstreamError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = self
            .inner
            .handshake
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| UpstreamError::new(FailureKind::Connect, Some(Box::new(e))))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// The most recently used idle connection that is still usable, and when it was opened.
    async fn checkout(&self) -> Option<(SendRequest<B>, Instant)> {
        loop {
            let idle = lock(&self.inner.pool.idle).pop()?;
            let config = &self.inner.config;
            // Connections also retire with age, so that a host name is resolved again and a
            // changed DNS answer takes effect within `max_connection_age`.
            if idle.sender.is_closed()
                || idle.since.elapsed() > config.pool_idle_timeout
                || idle.born.elapsed() > config.max_connection_age
            {
                continue;
            }
            let mut sender = idle.sender;
            // Returned connections finish their previous exchange in their own task; wait for
            // it (it is immediate for a healthy idle connection).
            if sender.ready().await.is_ok() {
                return Some((sender, idle.born));
            }
        }
    }

    /// A new HTTP/1.1 connection; with `auto`, one on which the upstream chose HTTP/2 becomes
    /// the shared HTTP/2 connection instead.
    async fn connect(&self) -> Result<Fresh<B>, UpstreamError> {
        let inner = &*self.inner;
        let connecting = async {
            match self.open().await? {
                Opened::Tcp(stream) => self.handshake_h1(stream).await.map(Fresh::H1),
                Opened::Tls(stream) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                    let sender = self.handshake_h2(stream).await?;
                    *lock(&inner.pool.h2) = Some((sender, Instant::now()));
                    inner
                        .pool
                        .auto_h2
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    Ok(Fresh::H2)
                }
                Opened::Tls(stream) => self.handshake_h1(stream).await.map(Fresh::H1),
            }
        };
        within(inner.config.connect_timeout, connecting).await
    }

    fn wrap(
        &self,
        resp: Response<Incoming>,
        sender: SendRequest<B>,
        born: Instant,
    ) -> Response<UpstreamBody<B>> {
        // After 101 the connection belongs to the upgrade; it never returns to the pool.
        let mut reusable = resp.status() != http::StatusCode::SWITCHING_PROTOCOLS;
        let (mut parts, body) = resp.into_parts();
        // Both framings: hyper reads the body by Transfer-Encoding (RFC 9112 §6.3), so the
        // Content-Length is wrong and must not travel on; and an upstream that frames this
        // ambiguously is not trusted with another request on the same connection.
        if parts.headers.contains_key(http::header::TRANSFER_ENCODING)
            && parts.headers.contains_key(http::header::CONTENT_LENGTH)
        {
            parts.headers.remove(http::header::CONTENT_LENGTH);
            reusable = false;
            tracing::debug!(
                origin = %self.inner.origin.to_prefix(),
                "upstream answered with both Content-Length and Transfer-Encoding; the length is dropped and the connection not reused"
            );
        }
        let give_back = reusable.then(|| GiveBack {
            sender,
            born,
            pool: Arc::downgrade(&self.inner.pool),
        });
        Response::from_parts(parts, UpstreamBody::hyper(body, give_back))
    }
}

/// A connection just opened.
enum Fresh<B> {
    H1(SendRequest<B>),
    /// The shared HTTP/2 connection (the upstream chose it by ALPN).
    H2,
}

/// A transport to the origin.
enum Opened {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// `connecting`, or a connect failure once `limit` has passed.
async fn within<T>(
    limit: Duration,
    connecting: impl std::future::Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    match tokio::time::timeout(limit, connecting).await {
        Ok(result) => result,
        Err(_) => Err(UpstreamError::new(
            FailureKind::Connect,
            Some(format!("no connection within {limit:?}").into()),
        )),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding the pool lock; if something did, the list is still valid.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fields to send after a request's own, in this order (see [`Upstream::try_send_appending`]).
pub type Appended<'a> = &'a [(&'static HeaderName, &'a HeaderValue)];

/// A failed send; `unsent` holds the request when it never reached the upstream.
#[derive(Debug)]
pub struct SendFailure<B> {
    pub error: UpstreamError,
    pub unsent: Option<Request<B>>,
}

mod body;
mod h1;
mod h2;
pub mod tls;

use body::GiveBack;
pub use body::UpstreamBody;

#[cfg(test)]
mod tests;
