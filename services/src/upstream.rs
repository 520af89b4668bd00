//! One upstream service: its origin, a keep-alive connection pool and its timeouts.

use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::{BoxError, FailureKind, UpstreamError};

/// Where an upstream lives: scheme and authority, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: Scheme,
    pub authority: Authority,
}

impl Origin {
    /// Parses `http://host:port` (a path, if any, must be `/`). Only `http` is accepted until
    /// TLS to upstreams exists.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL ({e}); write it as http://host:port"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| format!("`{url}` has no scheme; write it as http://host:port"))?;
        if scheme != Scheme::HTTP {
            return Err(format!(
                "`{url}` uses the scheme `{scheme}`; only http:// upstreams are supported"
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("`{url}` has no host; write it as http://host:port"))?;
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(format!(
                "`{url}` has a path; an upstream is an origin only (http://host:port)"
            ));
        }
        if uri.query().is_some() {
            return Err(format!(
                "`{url}` has a query; an upstream is an origin only"
            ));
        }
        Ok(Self { scheme, authority })
    }

    /// `scheme://authority`, as it appears at the start of absolute URLs.
    pub fn to_prefix(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

/// Per-service client settings.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub origin: Origin,
    /// Time allowed to open a TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed from sending the request to receiving the response head. `None` waits
    /// forever (long polls).
    pub response_timeout: Option<Duration>,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host.
    pub pool_max_idle: usize,
    /// Most header fields accepted in an upstream response.
    pub max_response_headers: usize,
}

impl UpstreamConfig {
    pub fn new(origin: Origin) -> Self {
        Self {
            origin,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Some(Duration::from_secs(60)),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle: 1024,
            max_response_headers: 512,
        }
    }
}

/// A pooled client bound to one origin. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Upstream<B> {
    client: Client<HttpConnector, B>,
    origin: Origin,
    response_timeout: Option<Duration>,
}

impl<B> std::fmt::Debug for Upstream<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("origin", &self.origin)
            .finish()
    }
}

impl<B> Upstream<B>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    pub fn new(config: &UpstreamConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle)
            .http1_max_headers(config.max_response_headers)
            // The Host header is always set by the caller; never invent one.
            .set_host(false)
            .build(connector);
        Self {
            client,
            origin: config.origin.clone(),
            response_timeout: config.response_timeout,
        }
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Sends `req` to this upstream. Only the path and query of the request's URI are used;
    /// the scheme and authority are the upstream's own.
    pub async fn send(&self, mut req: Request<B>) -> Result<Response<Incoming>, UpstreamError> {
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(self.origin.scheme.clone());
        parts.authority = Some(self.origin.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        *req.uri_mut() = Uri::from_parts(parts)
            .map_err(|e| UpstreamError::new(FailureKind::Protocol, Some(Box::new(e))))?;
        let call = self.client.request(req);
        let result = match self.response_timeout {
            Some(limit) => match tokio::time::timeout(limit, call).await {
                Ok(result) => result,
                Err(_) => return Err(UpstreamError::timeout()),
            },
            None => call.await,
        };
        result.map_err(UpstreamError::classify)
    }
}

#[cfg(test)]
mod tests;
