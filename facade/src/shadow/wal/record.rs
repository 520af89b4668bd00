//! The mirror log's record format: `length (u32 LE) · CRC-32C (u32 LE) · payload`, the payload
//! a versioned, length-prefixed encoding of an outbox item. A record that is cut short or does
//! not check out reads as the end.

use std::io;

use strangler_catalog::{OutboxItem, Side};

/// A record larger than this is corruption, not a write.
const MAX_RECORD: u32 = 512 << 20;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// `payload` framed as a record; `None` when it is too large for one.
pub(super) fn frame(payload: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|n| *n <= MAX_RECORD)?;
    let mut record = Vec::with_capacity(payload.len() + 8);
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&CRC.checksum(payload).to_le_bytes());
    record.extend_from_slice(payload);
    Some(record)
}

/// The next intact record's payload; `None` at the end or at a torn or corrupt record.
pub(super) fn next(r: &mut impl io::Read) -> io::Result<Option<Vec<u8>>> {
    let mut head = [0u8; 8];
    if !read_full(r, &mut head)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > MAX_RECORD {
        return Ok(None);
    }
    let mut payload = vec![0u8; len as usize];
    if !read_full(r, &mut payload)? || CRC.checksum(&payload) != crc {
        return Ok(None);
    }
    Ok(Some(payload))
}

/// Fills `buf`; `false` when the input ends first.
fn read_full(r: &mut impl io::Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => return Ok(false),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The record format's version.
const FORMAT: u8 = 2;

pub(super) fn encode(item: &OutboxItem) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(256 + item.body.len() + item.legacy_body.as_ref().map_or(0, Vec::len));
    out.push(FORMAT);
    let bytes = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    };
    let pairs = |out: &mut Vec<u8>, p: &[(String, String)]| {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        for (n, v) in p {
            bytes(out, n.as_bytes());
            bytes(out, v.as_bytes());
        }
    };
    bytes(&mut out, item.origin_key.as_bytes());
    out.push(match item.toward {
        Side::New => 0,
        Side::Legacy => 1,
    });
    for text in [
        &item.context,
        &item.route,
        &item.idempotency_key,
        &item.method,
        &item.uri,
    ] {
        bytes(&mut out, text.as_bytes());
    }
    pairs(&mut out, &item.headers);
    bytes(&mut out, &item.body);
    out.extend_from_slice(&item.legacy_status.to_le_bytes());
    pairs(&mut out, &item.legacy_headers);
    match &item.legacy_body {
        Some(b) => {
            out.push(1);
            bytes(&mut out, b);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&item.legacy_us.to_le_bytes());
    out.extend_from_slice(&item.created_ms.to_le_bytes());
    out
}

/// The inverse of [`encode`]; `None` for anything it did not write.
pub(super) fn decode(mut b: &[u8]) -> Option<OutboxItem> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Some(head)
    }
    fn int(b: &mut &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(take(b, 8)?.try_into().ok()?))
    }
    fn bytes(b: &mut &[u8]) -> Option<Vec<u8>> {
        let n = usize::try_from(int(b)?).ok()?;
        Some(take(b, n)?.to_vec())
    }
    fn text(b: &mut &[u8]) -> Option<String> {
        String::from_utf8(bytes(b)?).ok()
    }
    fn pairs(b: &mut &[u8]) -> Option<Vec<(String, String)>> {
        let n = int(b)?;
        let mut out = Vec::new();
        for _ in 0..n {
            out.push((text(b)?, text(b)?));
        }
        Some(out)
    }
    if take(&mut b, 1)? != [FORMAT] {
        return None;
    }
    let origin_key = text(&mut b)?;
    let toward = match take(&mut b, 1)? {
        [0] => Side::New,
        [1] => Side::Legacy,
        _ => return None,
    };
    let item = OutboxItem {
        id: 0,
        origin_key,
        toward,
        context: text(&mut b)?,
        route: text(&mut b)?,
        idempotency_key: text(&mut b)?,
        method: text(&mut b)?,
        uri: text(&mut b)?,
        headers: pairs(&mut b)?,
        body: bytes(&mut b)?,
        legacy_status: int(&mut b)? as i64,
        legacy_headers: pairs(&mut b)?,
        legacy_body: match take(&mut b, 1)? {
            [1] => Some(bytes(&mut b)?),
            _ => None,
        },
        legacy_us: int(&mut b)? as i64,
        created_ms: int(&mut b)? as i64,
        attempts: 0,
    };
    b.is_empty().then_some(item)
}
