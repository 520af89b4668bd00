//! How a mirrored create carries the owner's id of the new resource to the other side: where
//! the owner's answer names it, and where the mirror puts it.

use serde::{Deserialize, Serialize};

use crate::model::http_token;

/// How a mirrored create carries the owner's id for the new resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
