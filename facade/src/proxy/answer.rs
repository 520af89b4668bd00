//! The answer's way back to the client: its head as the client gets it, and the steps that
//! wait on its body (gathering a small chunked answer, translation, ids, a mirror's persist),
//! kept in a boxed step of their own so that an answer passed through does not carry their
//! state.

use std::future::Future;
use std::sync::Arc;

use http::header::{HeaderValue, CONTENT_LENGTH, VIA};
use http::{Response, Version};

use super::COALESCE_BYTES;
use crate::admission::Refusal;
use crate::body::ResponseBody;
use crate::decision::Routing;
use crate::facade::Facade;
use crate::headers::rewrite_redirects;
use crate::ryw;
use crate::shadow;

/// What the answer's steps need to know of its request.
pub(super) struct Answering<'a> {
    pub(super) routing: &'a Routing,
    pub(super) client_host: Option<&'a HeaderValue>,
    pub(super) head_request: bool,
    /// A small answer of unknown length is gathered, to go out with its length.
    pub(super) coalesce: bool,
}

impl Facade {
    /// The answer's steps that wait on its body: gathering a small chunked one, translating
    /// it, mapping ids in it, and keeping a mirrored write durable before it is released.
    #[allow(clippy::manual_async_fn)] // on purpose: see `forward` (proxy.rs)
    pub(super) fn answer_with_body<'a>(
        &'a self,
        answer: Answering<'a>,
        mut parts: http::response::Parts,
        mut body: ResponseBody,
        shadow_plan: Option<Box<shadow::Pending>>,
    ) -> impl Future<Output = Result<Response<ResponseBody>, Refusal>> + 'a {
        async move {
            let s = &*self.shared;
            let routing = answer.routing;
            if answer.coalesce {
                let len;
                (body, len) = body.coalesce(COALESCE_BYTES, &s.buffers).await;
                if let Some(len) = len {
                    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
                }
            }
            if routing.translation.is_some() {
                body = self
                    .translate_incoming(
                        routing,
                        &mut parts,
                        body,
                        answer.client_host,
                        answer.head_request,
                    )
                    .await?;
            }
            // The answer names the resource as the side that answered knows it: back to the
            // client's id in the fields the route names.
            if routing.ids.is_some() {
                body = self
                    .ids_in_answer(routing, &mut parts, body, answer.head_request)
                    .await?;
            }
            self.finish_head(routing, &mut parts, answer.client_host);
            if let Some(plan) = shadow_plan {
                let sinks = self.sinks();
                if plan.is_mirror() {
                    // Durable before the answer is released.
                    let kept;
                    // Boxed: its state (~3 KiB) stays out of the translated and chunked answers'.
                    (body, kept) =
                        Box::pin(plan.persist(&s.config.shadow, &sinks, &parts, body)).await;
                    let remember = routing.shadow.as_ref().filter(|w| w.remember);
                    if let (Some(w), Some(at)) = (remember, kept) {
                        if let Ok(v) = HeaderValue::from_str(&ryw::set_cookie(&w.context, at)) {
                            parts.headers.append(http::header::SET_COOKIE, v);
                        }
                    }
                } else {
                    body = body.with_tee(plan.launch(&s.config.shadow, sinks, &parts));
                }
            }
            Ok(Response::from_parts(parts, body))
        }
    }

    /// The answer's head as the client gets it: redirects to the public origin, `Via`, the
    /// route's debug field.
    pub(super) fn finish_head(
        &self,
        routing: &Routing,
        parts: &mut http::response::Parts,
        client_host: Option<&HeaderValue>,
    ) {
        self.finish_fields(routing, &mut parts.headers, client_host);
        parts.version = Version::HTTP_11;
        parts.extensions = http::Extensions::new();
    }

    /// [`Facade::finish_head`] on a whole answer, changed in place (an answer taken apart and
    /// put together again is moved twice).
    pub(super) fn finish_answer(
        &self,
        routing: &Routing,
        resp: &mut Response<ResponseBody>,
        client_host: Option<&HeaderValue>,
    ) {
        self.finish_fields(routing, resp.headers_mut(), client_host);
        *resp.version_mut() = Version::HTTP_11;
        *resp.extensions_mut() = http::Extensions::new();
    }

    /// The answer's fields as the client gets them: redirects to the upstream rewritten to
    /// the public origin, `Via`, the debug field.
    fn finish_fields(
        &self,
        routing: &Routing,
        headers: &mut http::HeaderMap,
        client_host: Option<&HeaderValue>,
    ) {
        let s = &*self.shared;
        if s.config.forwarding.rewrite_redirects {
            if let Some(host) = client_host {
                rewrite_redirects(headers, self.origin_of(routing), host);
            }
        }
        headers.append(VIA, s.via_11.clone());
        if s.config.forwarding.debug_header {
            routing.debug_header(headers);
        }
    }

    /// Where a shadow's results go.
    pub(super) fn sinks(&self) -> shadow::Sinks {
        let s = &*self.shared;
        shadow::Sinks {
            telemetry: Arc::clone(&s.telemetry),
            outbox: s.outbox.get().cloned(),
            ryw: Arc::clone(&s.ryw),
            work: self.work(),
        }
    }
}
