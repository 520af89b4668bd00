//! Ids across the split in the outbox: a mirrored create carries the owner's id (and keeps it,
//! to pair it with the id the target answers), and a mirrored write that names a resource is
//! mapped to the target's id for it when it is delivered (see [`crate::ids`]).

use strangler_catalog::{IdFrom, IdPair, IdTo, MirrorId, OutboxItem, Side};

use super::super::Read;
use crate::ids::{IdMap, Mapped, RouteIds};

/// The id an answer names where `from` says: the last segment of its `Location` (as written
/// for a path), or a string or number at a JSON path of its body.
fn read_id(
    from: &IdFrom,
    shown: &str,
    location: Option<&str>,
    answer: Option<&[u8]>,
) -> Result<serde_json::Value, String> {
    match from {
        IdFrom::Location => {
            let location = location.ok_or("the answer has no Location")?;
            let path = location.split(['?', '#']).next().unwrap_or(location);
            let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            if last.is_empty() {
                return Err(format!("Location `{location}` names no id"));
            }
            Ok(serde_json::Value::String(last.to_owned()))
        }
        IdFrom::Body(keys) => {
            let body: serde_json::Value = answer
                .and_then(|b| serde_json::from_slice(b).ok())
                .ok_or("the answer's body is not JSON (or was over the cap)")?;
            let mut at = &body;
            for k in keys {
                at = at
                    .get(k)
                    .ok_or_else(|| format!("the answer has no {shown}"))?;
            }
            match at {
                serde_json::Value::String(_) | serde_json::Value::Number(_) => Ok(at.clone()),
                _ => Err(format!("{shown} is not a string or a number")),
            }
        }
    }
}

/// Where a mirrored create keeps the owner's id, among the owner's answer's fields (a name no
/// rule compares: internal names are never forwarded).
const OWNER_ID: &str = "x-strangler-owner-id";

/// An id as text (a string's content, a number as written).
fn id_text(id: &serde_json::Value) -> String {
    match id {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Puts the id the owner's answer gave the new resource into its mirror, where the route says
/// the other side expects it; the error says why it could not. The id is kept with the owner's
/// answer, to pair it with the other side's once that has answered.
pub fn carry_id(
    item: &mut OutboxItem,
    rule: &MirrorId,
    head: &http::response::Parts,
    answer: Option<&[u8]>,
) -> Result<(), String> {
    // A Location's segment is already written for a path; an id from a body is not.
    let from = rule.parse_from()?;
    let in_path_form = from == IdFrom::Location;
    let location = head
        .headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok());
    let id = read_id(&from, &rule.from, location, answer)?;
    // Kept with the owner's answer (which may not be stored: not JSON, or over the cap), to
    // pair it with the id the other side answers.
    item.legacy_headers.retain(|(n, _)| n != OWNER_ID);
    item.legacy_headers
        .push((OWNER_ID.to_owned(), id_text(&id)));
    match rule.parse_to()? {
        IdTo::Body(keys) => {
            let mut body: serde_json::Value = serde_json::from_slice(&item.body)
                .map_err(|_| "the request's body is not JSON".to_owned())?;
            let mut at = &mut body;
            for k in &keys {
                let serde_json::Value::Object(map) = at else {
                    return Err(format!("the request's body has no object at {}", rule.to));
                };
                at = map
                    .entry(k.clone())
                    .or_insert(serde_json::Value::Object(serde_json::Map::new()));
            }
            *at = id;
            item.body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        }
        IdTo::Target { method, path } => {
            let text = id_text(&id);
            let encoded = if in_path_form {
                text
            } else {
                let mut out = String::with_capacity(text.len());
                crate::ids::push_segment(&mut out, &text);
                out
            };
            let query = item.uri.split_once('?').map(|(_, q)| q.to_owned());
            item.method = method;
            item.uri = match query {
                Some(q) => format!("{}?{q}", path.replace("{id}", &encoded)),
                None => path.replace("{id}", &encoded),
            };
        }
    }
    Ok(())
}

/// The owner's id and the target's for a delivered create, when they differ.
pub(super) fn pair_of(
    item: &OutboxItem,
    carry: &MirrorId,
    from: &IdFrom,
    rule: &RouteIds,
    target: &Read,
) -> Option<IdPair> {
    let owner = item
        .legacy_headers
        .iter()
        .find(|(n, _)| n == OWNER_ID)
        .map(|(_, v)| v.clone())
        .ok_or("the owner's id was not kept");
    let theirs = read_id(
        from,
        &carry.from,
        target.headers.last().and_then(|h| h.as_deref()),
        target.body.as_deref(),
    );
    let (owner, theirs) = match (owner, theirs) {
        (Ok(o), Ok(t)) => (o, id_text(&t)),
        (o, t) => {
            tracing::debug!(context = %item.context, route = %item.route, owner = ?o.err(), target = ?t.err(), "a mirrored create's ids could not both be read; not paired");
            return None;
        }
    };
    if owner == theirs {
        return None;
    }
    let (legacy, new) = match item.toward {
        Side::New => (owner, theirs),
        Side::Legacy => (theirs, owner),
    };
    Some(IdPair {
        seq: 0,
        context: item.context.clone(),
        resource: rule.resource.to_string(),
        legacy,
        new,
        origin: item.toward.other(),
    })
}

/// The write with the ids it names (in its path and body fields) as the target knows them;
/// `None` when nothing changes. An id that names two resources, or a full map, stops it.
pub(super) fn map_item(
    item: &OutboxItem,
    rule: &RouteIds,
    ids: &IdMap,
) -> Result<Option<OutboxItem>, String> {
    let look = |id: &str| match ids.lookup(&item.context, &rule.resource, item.toward, id) {
        Mapped::Same => Ok(None),
        Mapped::To(v) => Ok(Some(v)),
        Mapped::Ambiguous => Err(format!(
            "id `{id}` of {} names two resources (one from each side); rename one",
            rule.resource
        )),
        Mapped::Full => Err("the id map is full; raise `[shadow] id_map_pairs`".to_owned()),
    };
    let mut out: Option<OutboxItem> = None;
    let (path, query) = match item.uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (item.uri.as_str(), None),
    };
    if let Some((index, id)) = rule.in_path(path) {
        if let Some(v) = look(&id)? {
            let mut uri = crate::ids::with_segment(path, index, &v);
            if let Some(q) = query {
                uri.push('?');
                uri.push_str(q);
            }
            out.get_or_insert_with(|| item.clone()).uri = uri;
        }
    }
    if !rule.fields.is_empty() {
        // The translators' value: every number the write carries keeps its text.
        use strangler_anti_corruption::json::{is_number, Value};
        if let Ok(mut body) = Value::parse(&item.body) {
            let mut changed = false;
            for keys in &rule.fields {
                let mut at = Some(&mut body);
                for k in keys {
                    at = at.and_then(|v| v.get_mut(k));
                }
                let Some(at) = at else { continue };
                let text = match &*at {
                    Value::Str(t) | Value::Num(t) => t.to_string(),
                    _ => continue,
                };
                if let Some(v) = look(&text)? {
                    // A number stays a number where the mapped id is one.
                    *at = match (&*at, is_number(&v)) {
                        (Value::Num(_), true) => Value::Num(v.as_ref().into()),
                        _ => Value::str(v.as_ref()),
                    };
                    changed = true;
                }
            }
            if changed {
                out.get_or_insert_with(|| item.clone()).body = body.to_json().into_bytes();
            }
        }
    }
    Ok(out)
}
