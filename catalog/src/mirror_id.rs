//! How a mirrored create carries the owner's id of the new resource to the other side: where
//! the owner's answer names it, and where the mirror puts it; and, for a side that insists on
//! its own ids, where a route's requests name a resource, so that the id map can translate them.

use serde::{Deserialize, Serialize};

use crate::model::http_token;

/// How a mirrored create carries the owner's id for the new resource.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct MirrorId {
    /// Where the owner's answer names the id: `location` (the last segment of its `Location`
    /// header) or a JSON path of its body (`$.id`, `$.order.id`).
    pub from: String,
    /// Where the mirror carries it, in the client's contract: a JSON path of the request body
    /// (`$.id`; a translator renders it for the new service), or a method and path with
    /// `{id}` (`PUT /orders/{id}`) that the mirror is sent as instead.
    pub to: String,
}

/// Where a [`MirrorId`] is read from, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdFrom {
    Location,
    /// Object keys from the root of the answer's body.
    Body(Vec<String>),
}

/// Where a [`MirrorId`] is put, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdTo {
    /// Object keys from the root of the request's body.
    Body(Vec<String>),
    /// The method and the path (with `{id}`) the mirror is sent as.
    Target { method: String, path: String },
}

fn key_path(text: &str) -> Option<Vec<String>> {
    let path = crate::json_path::JsonPath::parse(text).ok()?;
    let keys: Option<Vec<String>> = path
        .steps()
        .iter()
        .map(|s| match s {
            crate::json_path::Step::Key(k) => Some(k.clone()),
            _ => None,
        })
        .collect();
    keys.filter(|k| !k.is_empty())
}

impl MirrorId {
    /// The source, or what to write instead.
    pub fn parse_from(&self) -> Result<IdFrom, String> {
        if self.from == "location" {
            return Ok(IdFrom::Location);
        }
        key_path(&self.from).map(IdFrom::Body).ok_or_else(|| {
            format!(
                "`{}` is neither `location` nor a JSON path of object keys (`$.id`, `$.order.id`)",
                self.from
            )
        })
    }

    /// The destination, or what to write instead.
    pub fn parse_to(&self) -> Result<IdTo, String> {
        if let Some((method, path)) = self.to.split_once(' ') {
            let ok = http_token(method)
                && method.bytes().all(|b| !b.is_ascii_lowercase())
                && path.starts_with('/')
                && path.matches("{id}").count() == 1
                && !path.contains(char::is_whitespace);
            return if ok {
                Ok(IdTo::Target {
                    method: method.to_owned(),
                    path: path.to_owned(),
                })
            } else {
                Err(format!(
                    "`{}` is not a method and a path with one `{{id}}`; write e.g. `PUT /orders/{{id}}`",
                    self.to
                ))
            };
        }
        key_path(&self.to).map(IdTo::Body).ok_or_else(|| {
            format!(
                "`{}` is neither a JSON path of object keys (`$.id`) nor a method and path (`PUT /orders/{{id}}`)",
                self.to
            )
        })
    }
}

/// Where a route's requests name one resource by id, for a context whose two sides may give
/// the same resource different ids. With it, the facade keeps an id map (legacy id ↔ new id)
/// from the answers to mirrored creates, and a request that goes to a side other than the one
/// that gave the id it carries has the id replaced by that side's (in the path, and in the
/// body of a mirrored write).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct IdRefs {
    /// The resource's name (`orders`): ids are mapped per context and resource.
    pub resource: String,
    /// The route's path parameter that holds the id (`id` in `/orders/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// JSON paths of object keys in request bodies that hold the id (`$.orderId`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

impl IdRefs {
    /// Checks the rule against the route's path pattern; returns the index of the path
    /// segment that holds the id (after the leading `/`), if a parameter is named.
    pub fn check(&self, pattern: &crate::pattern::PathPattern) -> Result<Option<usize>, String> {
        let named = !self.resource.is_empty()
            && self.resource.len() <= 64
            && self
                .resource
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !named {
            return Err(format!(
                "resource `{}` is not a name; use letters, digits, `-`, `_` and `.` (e.g. `orders`)",
                self.resource
            ));
        }
        for field in &self.fields {
            if key_path(field).is_none() {
                return Err(format!(
                    "field `{field}` is not a JSON path of object keys; write e.g. `$.orderId`"
                ));
            }
        }
        if self.param.is_none() && self.fields.is_empty() {
            return Err(
                "name the path parameter (`param`) or the body fields (`fields`) that hold the id"
                    .to_owned(),
            );
        }
        let Some(param) = &self.param else {
            return Ok(None);
        };
        pattern
            .segments()
            .iter()
            .position(|s| matches!(s, crate::pattern::Segment::Param(n) if n == param))
            .map(Some)
            .ok_or_else(|| {
                format!("the route's path has no parameter `{{{param}}}`; name one of its `{{…}}` segments")
            })
    }

    /// The body fields as object keys from the root (checked by [`IdRefs::check`]).
    pub fn field_keys(&self) -> Vec<Vec<String>> {
        self.fields.iter().filter_map(|f| key_path(f)).collect()
    }
}
