//! Reading the `Cookie` request field (RFC 6265 §5.4): `name=value` pairs separated by `;`,
//! possibly over several fields. The one parser for everything that keys on a cookie: sticky
//! keys and the identity bridge in the facade, sessions in the dashboard. It works on the raw
//! bytes of each field, so it needs no HTTP crate and never fails: a pair without `=` is skipped
//! and a value is everything after the first `=`.

/// The pieces of one `Cookie` field, trimmed, empty ones left out: `a=1; b; c=3` gives `a=1`,
/// `b`, `c=3`.
pub fn pieces(field: &[u8]) -> impl Iterator<Item = &[u8]> {
    field
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
}

/// A piece as `(name, value)`, both trimmed; `None` without `=`.
pub fn pair(piece: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = piece.iter().position(|&b| b == b'=')?;
    Some((piece[..eq].trim_ascii(), piece[eq + 1..].trim_ascii()))
}

/// The value of the first cookie called `name` (names are case-sensitive) over all `fields`.
pub fn find<'a>(fields: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Option<&'a [u8]> {
    fields.into_iter().find_map(|field| {
        pieces(field)
            .filter_map(pair)
            .find_map(|(k, v)| (k == name.as_bytes()).then_some(v))
    })
}

/// The pieces of `fields` that are not the cookie `name`, to send on without it.
pub fn without<'a>(fields: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Vec<&'a [u8]> {
    fields
        .into_iter()
        .flat_map(pieces)
        .filter(|p| pair(p).is_none_or(|(k, _)| k != name.as_bytes()))
        .collect()
}

#[cfg(test)]
mod tests;
