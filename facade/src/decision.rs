//! Who answers a request: the matched context's side (sticky canary buckets, fallback), the
//! shadow copy it may get, and the counters it counts in.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::Request;
use strangler_catalog::{MigrationState, Side};
use strangler_services::cluster::{Cluster, Replay};

use crate::body::{ClientBody, RequestBody};
use crate::conn::ConnInfo;
use crate::facade::{Facade, Shared};
use crate::routes::{decide_side, sticky_identity};
use crate::shadow;
use crate::traffic::{ContextTraffic, PathCounters};
use crate::translate::Translation;

/// Who a request goes to.
pub(crate) enum Target {
    Legacy,
    New {
        cluster: Cluster<RequestBody>,
        /// Whether legacy answers when the new side fails.
        fallback: bool,
        /// How long a safe request waits for the new side (`None`: the service's own figure).
        fallback_after: Option<std::time::Duration>,
    },
}

/// Where one request goes, and where it ended up.
pub(crate) struct Routing {
    pub(crate) target: Target,
    pub(crate) side: Side,
    /// The matched context, if any.
    pub(crate) context: Option<Arc<str>>,
    /// Why legacy answered instead of the new side, if it did.
    pub(crate) fell_back: Option<String>,
    /// In `shadow` state (or reverse shadow in canary and migrated): where a copy may go.
    pub(crate) shadow: Option<Box<shadow::Wanted>>,
    /// The context's translator, applied when the new side answers.
    pub(crate) translation: Option<Translation>,
    /// The matched context's traffic counters (taken by `forward`).
    pub(crate) traffic: Option<Served>,
    /// The request as the client sent it (head, and body when it was buffered), for a
    /// fallback to legacy after it was translated for the new side. (Boxed: ~250 bytes that
    /// only translated requests use, in the state of every request.)
    pub(crate) untranslated: Option<Box<(Replay, Option<bytes::Bytes>)>>,
    /// Where the matched route's requests name a resource, for the id map.
    pub(crate) ids: Option<Arc<crate::ids::RouteIds>>,
    /// The target as the client sent it, when the id map changed it for the side it went to
    /// (a fallback maps it again for legacy). Boxed, as `untranslated`.
    pub(crate) client_uri: Option<Box<http::Uri>>,
    /// The id the map changed, for the bodies: the client's in the request's, the side's in
    /// the answer's.
    pub(crate) swap: Option<crate::ids::Swap>,
    /// A write that must wait: the context's write owner is moving (answered 503).
    pub(crate) owner_moving: bool,
    /// A write: its method changes something and its route does not say it only reads.
    pub(crate) write: bool,
}

/// The traffic counters a request counts in, and who answered it.
pub(crate) struct Served {
    /// None: no context claimed it.
    pub(crate) context: Option<Arc<ContextTraffic>>,
    pub(crate) route: Option<Arc<PathCounters>>,
    pub(crate) side: Side,
    pub(crate) fell_back: bool,
}

impl Routing {
    /// No context claimed the request: legacy answers, and it is counted by path template.
    fn legacy(s: &Shared, req: &Request<ClientBody>) -> Self {
        let counters = s
            .telemetry
            .traffic
            .unclaimed_path(req.method().as_str(), req.uri().path());
        Self {
            target: Target::Legacy,
            side: Side::Legacy,
            context: None,
            fell_back: None,
            shadow: None,
            translation: None,
            untranslated: None,
            ids: None,
            client_uri: None,
            swap: None,
            owner_moving: false,
            write: is_write(req.method()),
            traffic: Some(Served {
                context: None,
                route: Some(counters),
                side: Side::Legacy,
                fell_back: false,
            }),
        }
    }

    pub(crate) fn debug_header(&self, headers: &mut http::HeaderMap) {
        let mut value = match &self.context {
            Some(ctx) => format!("context={ctx}; side={}", self.side.as_str()),
            None => "context=-; side=legacy".to_owned(),
        };
        if let Some(why) = &self.fell_back {
            value.push_str(&format!("; fallback={why}"));
        }
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static("x-strangler-route"), v);
        }
    }
}

impl Facade {
    /// Decides who answers: the matched context's side, or legacy.
    pub(crate) fn route(
        &self,
        req: &Request<ClientBody>,
        host: Option<&HeaderValue>,
        conn: &ConnInfo,
    ) -> Routing {
        let s = &*self.shared;
        let snapshot = s.snapshot.load();
        if snapshot.routes.is_empty() {
            return Routing::legacy(s, req);
        }
        let host = host.and_then(|h| h.to_str().ok());
        let folded;
        let path = if s.config.paths.fold_case {
            folded = req.uri().path().to_ascii_lowercase();
            folded.as_str()
        } else {
            req.uri().path()
        };
        let Some(matched) =
            snapshot
                .routes
                .lookup(req.method(), host, path, req.uri().query(), req.headers())
        else {
            return Routing::legacy(s, req);
        };
        // One index each: the context and the route as the snapshot compiled them.
        let (Some(ctx), Some(route)) = (
            snapshot.contexts.get(matched.context.index),
            snapshot.route_extras.get(matched.rank),
        ) else {
            return Routing::legacy(s, req);
        };
        // Reads follow the state and the sticky split; a write goes to the context's owner, so
        // that only one side ever takes a context's writes (the other gets them as mirrors).
        let write = is_write(req.method()) && !route.reads;
        // A write waits while the owner's move settles, so that no replica hands one to the
        // old owner after the new one has taken any.
        let owner_moving = write
            && ctx.entry.owner_move.is_some_and(|m| {
                !s.ryw.owner_settled(
                    &ctx.entry.name,
                    ctx.entry.owner,
                    m.at_ms,
                    m.from_ms,
                    strangler_catalog::clock::now_ms(),
                )
            });
        let mut side = if write {
            ctx.entry.owner
        } else {
            decide_side(&ctx.entry, req.headers(), conn.peer.ip())
        };
        // Read-your-writes: in canary a client that wrote reads from the owner until the other
        // side has its write.
        let canary = ctx.entry.state == MigrationState::Canary;
        if canary && !write && side != ctx.entry.owner {
            // What this process remembers of the client, or what the client says of its last
            // write (a cookie any replica set): forged, it only sends the client's own reads
            // to the owner.
            let remembered = sticky_identity(&ctx.entry, req.headers(), conn.peer.ip())
                .is_some_and(|who| s.ryw.waiting(&ctx.entry.name, who, side));
            let told = || {
                crate::ryw::wrote_at(req.headers(), &ctx.entry.name)
                    .is_some_and(|at| s.ryw.pending(&ctx.entry.name, side, at))
            };
            if remembered || told() {
                side = ctx.entry.owner;
            }
        }
        let context = Some(Arc::clone(&ctx.entry.name));
        let translation = ctx.translation.as_ref().map(|(_, t)| t.clone());
        let traffic = Some(Served {
            context: Some(Arc::clone(&ctx.traffic)),
            route: Some(Arc::clone(&route.traffic)),
            side,
            fell_back: false,
        });
        let state = ctx.entry.state;
        // A write the route mirrors goes to the side that does not own it, through the outbox:
        // toward the new service while legacy owns the writes, back to legacy after cutover.
        let mirror = write && route.shadow.mirrors_writes(state);
        let forward = state == MigrationState::Shadow || (mirror && side == Side::Legacy);
        let reverse = side == Side::New
            && matches!(state, MigrationState::Canary | MigrationState::Migrated)
            && (ctx.rules.reverse_percent > 0 || mirror);
        let shadow = match &ctx.cluster {
            Some(cluster) if forward || reverse => Some(Box::new(shadow::Wanted {
                context: Arc::clone(&ctx.entry.name),
                route: Arc::clone(&route.id),
                route_shadow: route.shadow.clone(),
                rules: Arc::clone(&ctx.rules),
                peer: if reverse {
                    shadow::Peer::Legacy(s.legacy.clone())
                } else {
                    shadow::Peer::New(cluster.clone())
                },
                reverse,
                mirror,
                reads: route.reads,
                // Whose write it is, remembered once durable for read-your-writes (canary).
                writer: (mirror && canary)
                    .then(|| sticky_identity(&ctx.entry, req.headers(), conn.peer.ip()))
                    .flatten(),
                remember: mirror && canary,
                legacy: s.legacy.clone(),
                // In reverse the copy goes to legacy untranslated; the primary's answer is
                // translated on the live path.
                translation: if reverse { None } else { translation.clone() },
                ids: route.ids.clone().map(|r| (r, Arc::clone(&s.ids))),
            })),
            _ => None,
        };
        match (side, &ctx.cluster) {
            (Side::New, Some(cluster)) => Routing {
                target: Target::New {
                    cluster: cluster.clone(),
                    fallback: ctx.entry.fallback,
                    fallback_after: ctx.entry.fallback_after,
                },
                side,
                context,
                fell_back: None,
                shadow,
                translation,
                untranslated: None,
                ids: route.ids.clone(),
                client_uri: None,
                swap: None,
                owner_moving,
                write,
                traffic,
            },
            // Legacy, or (validation makes it impossible) a target that is not in the catalog.
            _ => Routing {
                target: Target::Legacy,
                side: Side::Legacy,
                context,
                fell_back: None,
                shadow,
                translation: None,
                untranslated: None,
                ids: route.ids.clone(),
                client_uri: None,
                swap: None,
                owner_moving,
                write,
                traffic,
            },
        }
    }
}

/// Whether a request changes state: any method but the safe ones (RFC 9110 §9.2.1).
pub(crate) fn is_write(method: &http::Method) -> bool {
    !matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
    )
}
