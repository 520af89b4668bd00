//! The anti-corruption layer on the request path: a context's compiled translator applied to
//! the heads (and, when its rules need them, the buffered bodies) of requests going to the new
//! service and of the answers coming back. The translating itself is the anti-corruption
//! crate's; this module moves messages in and out of it, and `glue.rs` applies it to one
//! request's way through the facade.

mod glue;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderValue, StatusCode, Uri};
use http_body::Body;
use strangler_anti_corruption::{Compiled, Failure, Links};

use crate::buffers::{Buffers, Held};
use crate::cpu::{Cpu, Overrun, INLINE_BYTES};
use crate::problem::Problem;
use crate::telemetry::{Answer, Telemetry};

/// Largest body a translator buffers; a larger one is refused (413 for a request, 502 for an
/// answer) rather than passed on untranslated.
pub const MAX_TRANSLATED_BODY: usize = 16 * 1024 * 1024;

/// A context's translator with what link rewriting needs.
#[derive(Debug, Clone)]
pub struct Translation {
    pub context: Arc<str>,
    pub compiled: Arc<Compiled>,
    /// The target service's origins (`http://host:port`), whose links are rewritten.
    pub upstreams: Arc<[String]>,
}

/// Reading a body whole failed.
#[derive(Debug)]
pub enum Collect<E> {
    TooLarge,
    /// The process's buffer budget has no room for it.
    Budget,
    Broken(E),
}

/// Reads `body` whole, up to `cap` bytes, holding its bytes in the process's buffer budget
/// as they arrive (the hold goes with the body).
pub async fn collect<B>(
    mut body: B,
    cap: usize,
    buffers: &Arc<Buffers>,
) -> Result<(Bytes, Held), Collect<B::Error>>
where
    B: Body<Data = Bytes> + Unpin,
{
    if body.size_hint().lower() > cap as u64 {
        return Err(Collect::TooLarge);
    }
    let mut held = buffers.hold(0).ok_or(Collect::Budget)?;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        let frame = frame.map_err(Collect::Broken)?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > cap {
                return Err(Collect::TooLarge);
            }
            if !held.grow(data.len()) {
                return Err(Collect::Budget);
            }
            buf.extend_from_slice(data);
        }
    }
    Ok((buf.freeze(), held))
}

/// Why a translation off the request path did not produce a message.
#[derive(Debug)]
pub enum Failed {
    /// A rule failed: the translator's or the client's fault.
    Rule(Failure),
    /// No memory in the budget to parse the body.
    Budget,
    /// No CPU within the time budget.
    Overrun(Overrun),
}

impl Failed {
    /// The answer for a failed translation of `context`'s `direction`, counted.
    pub fn problem(self, telemetry: &Telemetry, context: &str, direction: &'static str) -> Problem {
        match self {
            Failed::Rule(f) => failed(telemetry, context, direction, &f),
            Failed::Budget => Problem::new(
                Answer::Overloaded,
                format!(
                    "context `{context}`: the facade's buffer budget has no room to translate this body now; try again shortly"
                ),
            ),
            Failed::Overrun(why) => Problem::new(
                Answer::Overloaded,
                format!("context `{context}`: translating the {direction} failed: {why}"),
            ),
        }
    }
}

/// What parsing `body` takes from the buffer budget, held while the work runs.
fn hold_for_parsing(buffers: &Arc<Buffers>, body: Option<&Bytes>) -> Result<Option<Held>, Failed> {
    match body {
        Some(b) if !b.is_empty() => buffers
            .hold(b.len() * strangler_anti_corruption::json::PARSED_BYTES_PER_BYTE + 1024)
            .map(Some)
            .ok_or(Failed::Budget),
        _ => Ok(None),
    }
}

/// Whether the work is small enough to run inline on the async worker.
fn inline(t: &Compiled, body: Option<&Bytes>) -> bool {
    !t.unbounded() && body.is_none_or(|b| b.len() <= INLINE_BYTES)
}

/// [`request`], on the CPU pool when the body is large or the translator runs jq or Rust code.
pub async fn request_off(
    cpu: &Cpu,
    buffers: &Arc<Buffers>,
    t: &Arc<Compiled>,
    mut parts: http::request::Parts,
    body: Option<Bytes>,
) -> Result<(http::request::Parts, Option<Bytes>), Failed> {
    let _parsing = hold_for_parsing(buffers, body.as_ref())?;
    if inline(t, body.as_ref()) {
        let out = request(t, &mut parts, body).map_err(Failed::Rule)?;
        return Ok((parts, out));
    }
    let t = Arc::clone(t);
    let (parts, out) = cpu
        .run(move || {
            let out = request(&t, &mut parts, body);
            (parts, out)
        })
        .await
        .map_err(Failed::Overrun)?;
    Ok((parts, out.map_err(Failed::Rule)?))
}

/// [`response`], on the CPU pool when the body is large or the translator runs jq or Rust
/// code.
pub async fn response_off(
    cpu: &Cpu,
    buffers: &Arc<Buffers>,
    t: &Arc<Compiled>,
    mut parts: http::response::Parts,
    body: Option<Bytes>,
    upstreams: &Arc<[String]>,
    public: Option<String>,
) -> Result<(http::response::Parts, Option<Bytes>), Failed> {
    let _parsing = hold_for_parsing(buffers, body.as_ref())?;
    if inline(t, body.as_ref()) {
        let links = Links {
            upstreams,
            public: public.as_deref(),
        };
        let out = response(t, &mut parts, body, &links).map_err(Failed::Rule)?;
        return Ok((parts, out));
    }
    let t = Arc::clone(t);
    let upstreams = Arc::clone(upstreams);
    let (parts, out) = cpu
        .run(move || {
            let links = Links {
                upstreams: &upstreams,
                public: public.as_deref(),
            };
            let out = response(&t, &mut parts, body, &links);
            (parts, out)
        })
        .await
        .map_err(Failed::Overrun)?;
    Ok((parts, out.map_err(Failed::Rule)?))
}

/// Translates a request head (and its body, when given) in place; returns the new body.
pub fn request(
    t: &Compiled,
    parts: &mut http::request::Parts,
    body: Option<Bytes>,
) -> Result<Option<Bytes>, Failure> {
    let mut req = strangler_anti_corruption::Request {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: std::mem::take(&mut parts.headers),
        body,
    };
    let result = t.request(&mut req);
    parts.headers = std::mem::take(&mut req.headers);
    result?;
    let unchanged = req.path == parts.uri.path() && req.query.as_deref() == parts.uri.query();
    if !unchanged {
        let mut target = req.path.clone();
        if let Some(q) = &req.query {
            target.push('?');
            target.push_str(q);
        }
        parts.uri = Uri::try_from(target).map_err(|e| Failure {
            rule: "paths".into(),
            path: "$".into(),
            reason: format!("the translated target is not a valid request target: {e}"),
            client: true,
        })?;
    }
    parts.method = req.method;
    if let Some(b) = &req.body {
        // A request that had no body (a GET) gets no framing fields for its empty one.
        let framed = parts.headers.contains_key(CONTENT_LENGTH)
            || parts.headers.contains_key(TRANSFER_ENCODING);
        if framed || !b.is_empty() {
            set_length(&mut parts.headers, b.len());
        }
    }
    Ok(req.body)
}

/// Translates an answer head (and its body, when given) in place; returns the new body.
pub fn response(
    t: &Compiled,
    parts: &mut http::response::Parts,
    body: Option<Bytes>,
    links: &Links<'_>,
) -> Result<Option<Bytes>, Failure> {
    let mut resp = strangler_anti_corruption::Response {
        status: parts.status,
        headers: std::mem::take(&mut parts.headers),
        body,
    };
    let result = t.response(&mut resp, links);
    parts.headers = std::mem::take(&mut resp.headers);
    result?;
    parts.status = resp.status;
    if let Some(b) = &resp.body {
        // 1xx and 204 carry no Content-Length (RFC 9110 §8.6); a 304's describes the
        // representation, not this empty body.
        let s = parts.status;
        if s.is_informational() || s == StatusCode::NO_CONTENT {
            parts.headers.remove(CONTENT_LENGTH);
            parts.headers.remove(TRANSFER_ENCODING);
        } else if s != StatusCode::NOT_MODIFIED {
            set_length(&mut parts.headers, b.len());
        }
    }
    Ok(resp.body)
}

fn set_length(headers: &mut http::HeaderMap, len: usize) {
    headers.remove(TRANSFER_ENCODING);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
}

/// The answer for a failed translation, counted per context and direction.
pub fn failed(
    telemetry: &Telemetry,
    context: &str,
    direction: &'static str,
    f: &Failure,
) -> Problem {
    telemetry.record_translation_failure(context, direction);
    let answer = if f.client {
        Answer::Untranslatable
    } else {
        Answer::TranslationFailed
    };
    Problem::new(
        answer,
        format!("the translator of context `{context}` failed: {f}"),
    )
    .with("rule", f.rule.clone())
    .with("path", f.path.clone())
}
