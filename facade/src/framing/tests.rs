use super::*;

/// Feeds `msg` split at every possible point (and whole), returning whether each split found
/// an ambiguous head.
fn verdicts(msg: &[u8]) -> Vec<bool> {
    let mut out = Vec::new();
    for cut in 0..=msg.len() {
        let mut s = HeadScanner::default();
        let a = s.feed(&msg[..cut]);
        let b = s.feed(&msg[cut..]);
        out.push(a || b);
    }
    // Byte by byte, the worst segmentation an attacker can choose.
    let mut s = HeadScanner::default();
    let mut found = false;
    for b in msg {
        found |= s.feed(std::slice::from_ref(b));
    }
    out.push(found);
    out
}

#[test]
fn plain_heads_are_not_ambiguous() {
    for msg in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Content-Length: 1\r\nContent-Length: 0\r\n\r\n",
    ] {
        assert!(
            verdicts(msg).iter().all(|v| !v),
            "{}",
            String::from_utf8_lossy(msg)
        );
    }
}

#[test]
fn both_framing_fields_are_ambiguous_at_every_split() {
    let msg =
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\ntransfer-ENCODING: chunked\r\n\r\n";
    assert!(verdicts(msg).iter().all(|v| *v));
}

#[test]
fn repeated_content_length_is_ambiguous() {
    let msg = b"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd";
    assert!(verdicts(msg).iter().all(|v| *v));
}

#[test]
fn counts_reset_between_keep_alive_requests() {
    let msg = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nokPOST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok";
    assert!(verdicts(msg).iter().all(|v| !v));
}

#[test]
fn bare_lf_line_endings_are_seen() {
    let msg = b"POST / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n";
    assert!(verdicts(msg).iter().all(|v| *v));
}
