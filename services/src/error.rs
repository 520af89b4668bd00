//! Typed failures of an upstream call.

use std::error::Error as StdError;
use std::fmt;

/// Boxed error, the currency between body wrappers and the client.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// What went wrong talking to an upstream, reduced to what decides the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No connection could be made: refused, unreachable, DNS failure or connect timeout.
    /// The request was certainly not sent.
    Connect,
    /// The upstream did not answer within the request timeout.
    Timeout,
    /// The connection broke (reset, closed early) after the request was handed over.
    Reset,
    /// The upstream answered something that is not valid HTTP.
    Protocol,
    /// The request body failed while it was being sent (the client side of the request went
    /// wrong). The caller looks at [`UpstreamError::source`] for the cause it put there.
    RequestBody,
}

impl FailureKind {
    /// All kinds, in a fixed order (for metrics).
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Connect,
        FailureKind::Timeout,
        FailureKind::Reset,
        FailureKind::Protocol,
        FailureKind::RequestBody,
    ];

    /// A stable, lowercase label.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Reset => "reset",
            FailureKind::Protocol => "protocol",
            FailureKind::RequestBody => "request_body",
        }
    }

    /// Index into [`FailureKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A failed upstream call: its kind and, where there is one, the underlying cause.
#[derive(Debug)]
pub struct UpstreamError {
    kind: FailureKind,
    source: Option<BoxError>,
}

impl UpstreamError {
    pub(crate) fn new(kind: FailureKind, source: Option<BoxError>) -> Self {
        Self { kind, source }
    }

    /// The timeout kind, with no cause beyond the clock.
    pub fn timeout() -> Self {
        Self::new(FailureKind::Timeout, None)
    }

    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// Walks the cause chain for an error of type `E` (used by callers to find the failures of
    /// their own request-body wrappers).
    pub fn find_cause<E: StdError + 'static>(&self) -> Option<&E> {
        let mut next: Option<&(dyn StdError + 'static)> = self
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static));
        while let Some(err) = next {
            if let Some(found) = err.downcast_ref::<E>() {
                return Some(found);
            }
            next = err.source();
        }
        None
    }

    /// Sorts a failed exchange into a kind. Causes from the request body win, because when
    /// the client's own body failed it is not the upstream's fault.
    pub(crate) fn classify(err: hyper::Error) -> Self {
        let kind = if err.is_user() || err.is_body_write_aborted() {
            // hyper reports a failing request body as a user error.
            FailureKind::RequestBody
        } else if err.is_parse() || err.is_parse_status() {
            FailureKind::Protocol
        } else if err.is_timeout() {
            FailureKind::Timeout
        } else {
            FailureKind::Reset
        };
        Self::new(kind, Some(Box::new(err)))
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FailureKind::Connect => f.write_str("could not connect to the upstream")?,
            FailureKind::Timeout => f.write_str("the upstream did not answer in time")?,
            FailureKind::Reset => f.write_str("the upstream connection broke")?,
            FailureKind::Protocol => f.write_str("the upstream answered invalid HTTP")?,
            FailureKind::RequestBody => f.write_str("the request body failed while sending")?,
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
            let mut next = source.source();
            while let Some(cause) = next {
                write!(f, ": {cause}")?;
                next = cause.source();
            }
        }
        Ok(())
    }
}

impl StdError for UpstreamError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}
