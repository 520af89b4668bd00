//! The request's steps between its head's edits and its send that only some routes take —
//! composition, id mapping, translation — in one future of their own, boxed by the caller, so
//! that a request passed through does not carry their state; and the shadow's plan, which
//! every request's way takes.

use http::header::VIA;
use http::request::Parts;
use http::{Request, Response};
use strangler_catalog::Side;

use crate::admission::Refusal;
use crate::body::{ClientBody, RequestBody, ResponseBody};
use crate::compose;
use crate::decision::{Routing, Served, Target};
use crate::facade::Facade;
use crate::problem::Problem;
use crate::shadow;
use crate::telemetry::Answer;

/// What the rare steps leave: an answer already made (a composed route), or the request to
/// send with its shadow's plan.
pub(super) enum Prepared {
    Answer(Box<Response<ResponseBody>>),
    Send(Request<RequestBody>, Option<Box<shadow::Pending>>),
}

impl Facade {
    /// Composition (several calls, one assembled answer, safe methods only), then the shadow's
    /// plan, then the id mapping and the translation of a request whose route has them.
    pub(super) async fn rare_steps(
        &self,
        routing: &mut Routing,
        served: &mut Option<Served>,
        parts: Parts,
        body: ClientBody,
    ) -> Result<Prepared, Refusal> {
        let s = &*self.shared;
        if let Some((t, cluster, composition)) = self.composition(routing, &parts) {
            let composed = compose::answer(
                &t,
                composition,
                &parts,
                &s.legacy,
                &cluster,
                &s.telemetry,
                &self.work(),
            )
            .await?;
            match composed {
                compose::Composed::Answer(mut resp) => {
                    resp.headers_mut().append(VIA, s.via_11.clone());
                    if s.config.forwarding.debug_header {
                        routing.debug_header(resp.headers_mut());
                    }
                    return Ok(Prepared::Answer(resp));
                }
                compose::Composed::ToLegacy => {
                    if let Some(served) = served.as_mut() {
                        served.side = Side::Legacy;
                        served.fell_back = true;
                    }
                    s.telemetry
                        .record_fallback(&t.context, "composed_part_failed");
                    routing.fell_back = Some("composed_part_failed".to_owned());
                    routing.side = Side::Legacy;
                    routing.target = Target::Legacy;
                    routing.shadow = None;
                }
            }
        }
        let body = RequestBody::new(
            body,
            s.config.limits.max_body_bytes,
            s.config.limits.body_idle_timeout,
        );
        let mut outgoing = Request::from_parts(parts, body);
        let plan = self.plan_shadow(routing, &mut outgoing)?;
        // Named as the side it goes to knows the resource (after the shadow's copy was taken:
        // a copy is mapped for its own side).
        if let Some(rule) = routing.ids.clone() {
            outgoing = self.map_ids(&rule, routing, outgoing).await?;
        }
        if routing.translation.is_some() {
            outgoing = self.translate_outgoing(routing, outgoing).await?;
        }
        Ok(Prepared::Send(outgoing, plan))
    }

    /// The shadow's plan for a request its route shadows (boxed: ~570 bytes that only shadowed
    /// requests use); a mirrored write the mirror cannot take now is refused, sent nowhere.
    pub(super) fn plan_shadow(
        &self,
        routing: &Routing,
        outgoing: &mut Request<RequestBody>,
    ) -> Result<Option<Box<shadow::Pending>>, Problem> {
        let Some(wanted) = &routing.shadow else {
            return Ok(None);
        };
        let s = &*self.shared;
        let plan = shadow::plan(
            &s.config.shadow,
            wanted,
            &s.shadow_budget,
            &s.buffers,
            s.outbox.get().map(|w| &**w),
            &s.telemetry,
            outgoing,
        )
        .map_err(|refused| {
            let why = match refused {
                shadow::MirrorRefused::Budget => {
                    "the facade's buffer budget has no room for its copy now".to_owned()
                }
                shadow::MirrorRefused::NoLog => "the mirror's log is not running".to_owned(),
                shadow::MirrorRefused::Log(shadow::wal::Refusal::Backlog(n)) => {
                    format!("{n} mirrored writes wait to reach the catalog (the bound)")
                }
                shadow::MirrorRefused::Log(shadow::wal::Refusal::Broken) => {
                    "the mirror's log could not write to disk a moment ago".to_owned()
                }
            };
            Problem::new(
                Answer::Overloaded,
                format!(
                    "context `{}` mirrors this write, and {why}; it was not sent anywhere, try \
                     again shortly",
                    wanted.context
                ),
            )
        })?;
        Ok(plan.map(Box::new))
    }
}
