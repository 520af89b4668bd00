//! Route path patterns, and how two routes compare: which is more specific, and whether they can
//! match the same request.
//!
//! (Interim implementation; the full rules and their documentation are being written.)

use crate::model::{RouteSpec, VersionMatch};

/// One segment of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches exactly this text.
    Literal(String),
    /// `{name}`: any one non-empty segment.
    Param(String),
    /// `{*name}`, last only: the rest of the path (zero or more segments).
    Wildcard(String),
}

/// A parsed path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPattern {
    segments: Vec<Segment>,
}

impl PathPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some(rest) = s.strip_prefix('/') else {
            return Err(format!("path `{s}` must start with `/`"));
        };
        let mut segments = Vec::new();
        let parts: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
        for (i, part) in parts.iter().enumerate() {
            if let Some(name) = part.strip_prefix("{*").and_then(|p| p.strip_suffix('}')) {
                if i + 1 != parts.len() {
                    return Err(format!("path `{s}`: `{{*{name}}}` must be the last segment"));
                }
                segments.push(Segment::Wildcard(name.to_owned()));
            } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                segments.push(Segment::Param(name.to_owned()));
            } else {
                segments.push(Segment::Literal((*part).to_owned()));
            }
        }
        Ok(Self { segments })
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

/// The path a spec matches, with a URI-prefix version put in front.
pub fn effective_path(spec: &RouteSpec) -> String {
    match &spec.version {
        Some(VersionMatch::Prefix { version }) => format!("/{version}{}", spec.path.trim_end_matches('/')),
        _ => spec.path.clone(),
    }
}

/// Checks a spec on its own.
pub fn check_spec(spec: &RouteSpec) -> Result<(), String> {
    PathPattern::parse(&effective_path(spec)).map(|_| ())
}

/// An ordering key: a greater value is more specific.
pub type Specificity = Vec<u32>;

/// How specific a spec is.
pub fn specificity(spec: &RouteSpec) -> Specificity {
    vec![u32::from(spec.host.is_some()), u32::from(!spec.methods.is_empty())]
}

/// Whether some request could match both specs.
pub fn may_overlap(a: &RouteSpec, b: &RouteSpec) -> bool {
    effective_path(a) == effective_path(b)
}
