//! The identity bridge: new services should not have to understand the legacy session. For a
//! context whose translator asks for it, the facade resolves the client's legacy session
//! cookie to claims by calling a legacy endpoint (cached for a while), and hands the new
//! service those claims as a short-lived JWT signed by the facade (`X-Strangler-Identity`).
//! The session cookie itself stays with legacy unless the translator says to forward it.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, COOKIE, HOST};
use http::{HeaderMap, Method, Request, StatusCode};
use strangler_anti_corruption::identity::Signer;
use strangler_anti_corruption::json::Value;
use strangler_anti_corruption::IdentitySpec;
use strangler_services::Upstream;

use crate::body::RequestBody;
use crate::problem::Problem;
use crate::telemetry::Answer;

/// The header that carries the token to new services.
pub const IDENTITY_HEADER: HeaderName = HeaderName::from_static("x-strangler-identity");

/// Entries kept before the cache is swept.
const MAX_CACHED: usize = 100_000;

/// How the bridge resolves sessions and signs tokens.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// The legacy session cookie's name.
    pub cookie: String,
    /// The legacy path that answers a session cookie with its claims (200 and a JSON object;
    /// 401, 403 or 404 when there is no session).
    pub resolve_path: String,
    /// How long a resolved session (or its absence) is remembered.
    pub cache_ttl: Duration,
    /// How long a token is valid.
    pub token_ttl: Duration,
    /// The tokens' `iss`.
    pub issuer: String,
    /// The Ed25519 key's seed. Replicas must share it for services to verify one key.
    pub seed: [u8; 32],
}

/// A resolved session (or its absence) and until when it holds.
type Cached = (Option<Value>, Instant);

/// The bridge's signer and session cache.
pub struct Bridge {
    config: IdentityConfig,
    signer: Signer,
    /// Resolved sessions by a keyed 128-bit hash of the cookie's value (the value itself is
    /// not kept): two independent keys, so that two sessions meeting in one entry — one user
    /// handed another's claims — is out of reach, by chance or by design.
    cache: Mutex<HashMap<(u64, u64), Cached>>,
    hashers: [std::collections::hash_map::RandomState; 2],
    /// The process's buffer budget, for the session endpoint's answers.
    buffers: std::sync::Arc<crate::buffers::Buffers>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("cookie", &self.config.cookie)
            .finish()
    }
}

impl Bridge {
    pub fn new(config: IdentityConfig, buffers: std::sync::Arc<crate::buffers::Buffers>) -> Self {
        Self {
            buffers,
            signer: Signer::from_seed(config.seed),
            config,
            cache: Mutex::new(HashMap::new()),
            hashers: [
                std::collections::hash_map::RandomState::new(),
                std::collections::hash_map::RandomState::new(),
            ],
        }
    }

    /// The public key as a JWKS, for services to verify tokens.
    pub fn jwks(&self) -> String {
        self.signer.jwks()
    }

    /// Applies the bridge to a request going to a new service (`audience`, the token's `aud`):
    /// sets (or leaves out) the identity token and removes the session cookie unless `spec`
    /// forwards it. The live request, its shadow copies and composed parts all go through
    /// here.
    pub async fn apply(
        &self,
        spec: &IdentitySpec,
        legacy: &Upstream<RequestBody>,
        headers: &mut HeaderMap,
        context: &str,
        audience: &str,
    ) -> Result<(), Problem> {
        let session = session_cookie(headers, &self.config.cookie);
        let claims = match session {
            None => None,
            Some(value) => self.claims(legacy, headers, &value).await.map_err(|why| {
                Problem::new(
                    Answer::UpstreamBroken,
                    format!("context `{context}`: the legacy session could not be resolved: {why}"),
                )
            })?,
        };
        match claims {
            Some(claims) => {
                let now = strangler_catalog::clock::now_secs();
                let ttl = i64::try_from(self.config.token_ttl.as_secs()).unwrap_or(300);
                let token = self
                    .signer
                    .token(&claims, &self.config.issuer, audience, now, ttl)
                    .map_err(|why| {
                        Problem::new(
                            Answer::UpstreamBroken,
                            format!("context `{context}`: the legacy session endpoint answered claims that cannot be signed: {why}"),
                        )
                    })?;
                if let Ok(v) = HeaderValue::from_str(&token) {
                    headers.insert(IDENTITY_HEADER, v);
                }
            }
            None if spec.required => {
                return Err(Problem::new(
                    Answer::Unauthenticated,
                    format!("context `{context}` needs a signed-in legacy session; sign in first"),
                ))
            }
            None => {}
        }
        if !spec.forward_cookie {
            remove_cookie(headers, &self.config.cookie);
        }
        Ok(())
    }

    /// The claims of a session: from the cache, or from legacy.
    async fn claims(
        &self,
        legacy: &Upstream<RequestBody>,
        headers: &HeaderMap,
        value: &str,
    ) -> Result<Option<Value>, String> {
        let hash = |state: &std::collections::hash_map::RandomState| {
            let mut h = state.build_hasher();
            h.write(value.as_bytes());
            h.finish()
        };
        let key = (hash(&self.hashers[0]), hash(&self.hashers[1]));
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((claims, until)) = cache.get(&key) {
                if *until > Instant::now() {
                    return Ok(claims.clone());
                }
            }
        }
        let claims = self.resolve(legacy, headers, value).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(
            key,
            (claims.clone(), Instant::now() + self.config.cache_ttl),
        );
        Ok(claims)
    }

    /// Asks legacy who the session is.
    async fn resolve(
        &self,
        legacy: &Upstream<RequestBody>,
        headers: &HeaderMap,
        value: &str,
    ) -> Result<Option<Value>, String> {
        let mut req = Request::new(RequestBody::full(Bytes::new()));
        *req.method_mut() = Method::GET;
        *req.uri_mut() = self
            .config
            .resolve_path
            .parse()
            .map_err(|_| "the resolve path is not a request target".to_owned())?;
        if let Some(host) = headers.get(HOST) {
            req.headers_mut().insert(HOST, host.clone());
        }
        req.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        let cookie = HeaderValue::from_str(&format!("{}={value}", self.config.cookie))
            .map_err(|_| "the session cookie is not a valid header value".to_owned())?;
        req.headers_mut().insert(COOKIE, cookie);
        let call = async {
            let resp = legacy.send(req).await.map_err(|e| {
                tracing::warn!(error = %e, "the legacy session endpoint failed");
                format!("legacy {}", crate::problem::public_failure(e.kind()))
            })?;
            let status = resp.status();
            let (body, _held) =
                crate::translate::collect(resp.into_body(), 64 * 1024, &self.buffers)
                    .await
                    .map_err(|_| {
                        "its answer broke off, is over 64 KiB, or the buffer budget is spent"
                            .to_owned()
                    })?;
            match status {
                StatusCode::OK => {
                    let v =
                        Value::parse(&body).map_err(|e| format!("its answer is not JSON: {e}"))?;
                    match v {
                        Value::Obj(_) => Ok(Some(v)),
                        other => Err(format!("it answered a {}, not claims", other.type_name())),
                    }
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                    Ok(None)
                }
                other => Err(format!("it answered {other}")),
            }
        };
        tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .map_err(|_| "no answer within 5 s".to_owned())?
    }
}

/// The value of cookie `name` in the request's Cookie fields.
fn session_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    let fields = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes);
    let value = strangler_catalog::cookie::find(fields, name)?;
    std::str::from_utf8(value)
        .ok()
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Removes cookie `name`, keeping the others.
fn remove_cookie(headers: &mut HeaderMap, name: &str) {
    let fields = headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes);
    let kept = strangler_catalog::cookie::without(fields, name).join(&b"; "[..]);
    let kept = (!kept.is_empty())
        .then(|| HeaderValue::from_bytes(&kept).ok())
        .flatten();
    headers.remove(COOKIE);
    if let Some(v) = kept {
        headers.insert(COOKIE, v);
    }
}

#[cfg(test)]
mod tests;
