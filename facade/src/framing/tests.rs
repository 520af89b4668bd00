use super::*;
use proptest::prelude::*;

/// Feeds `msg` split at every possible point (and byte by byte, the worst segmentation an
/// attacker can choose), returning what each segmentation reported.
fn verdicts(msg: &[u8]) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for cut in 0..=msg.len() {
        let mut s = HeadScanner::default();
        let a = s.feed(&msg[..cut]);
        let b = s.feed(&msg[cut..]);
        out.push(a.or(b));
    }
    let mut s = HeadScanner::default();
    let mut found = None;
    for b in msg {
        found = found.or(s.feed(std::slice::from_ref(b)));
    }
    out.push(found);
    out
}

fn all(msg: &[u8], want: Option<u64>) {
    for (i, v) in verdicts(msg).into_iter().enumerate() {
        assert_eq!(v, want, "split {i} of {}", String::from_utf8_lossy(msg));
    }
}

#[test]
fn plain_heads_are_not_ambiguous() {
    for msg in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Content-Length: 1\r\nContent-Length: 0\r\n\r\n",
    ] {
        all(msg, None);
    }
}

#[test]
fn both_framing_fields_are_ambiguous_at_every_split() {
    all(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\ntransfer-ENCODING: chunked\r\n\r\n",
        Some(0),
    );
}

#[test]
fn repeated_content_length_is_ambiguous() {
    all(
        b"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
        Some(0),
    );
}

#[test]
fn counts_reset_between_keep_alive_requests() {
    all(
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nokPOST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok",
        None,
    );
}

#[test]
fn bare_lf_line_endings_are_seen() {
    all(
        b"POST / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n",
        Some(0),
    );
}

/// A body is data: header-like lines inside it are not a head, whatever read they arrive in.
#[test]
fn header_lines_inside_a_body_are_data() {
    let body = b"x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
    let mut msg = format!(
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    msg.extend_from_slice(body);
    msg.extend_from_slice(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    all(&msg, None);

    // The same in a chunked body, with an extension and trailers.
    let mut chunked = b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    chunked.extend_from_slice(format!("{:x};name=v\r\n", body.len()).as_bytes());
    chunked.extend_from_slice(body);
    chunked.extend_from_slice(b"\r\n0\r\nX-Trailer: 1\r\n\r\n");
    chunked.extend_from_slice(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
    all(&chunked, None);
}

/// The number of the ambiguous head is its place on the connection, so that an earlier
/// request in the same read is not blamed for a later one.
#[test]
fn the_ambiguous_head_is_named_by_its_place() {
    let msg = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
    all(msg, Some(1));
}

#[test]
fn an_http2_preface_stops_the_scan() {
    let mut msg = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    msg.extend_from_slice(b"\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    all(&msg, None);
}

#[test]
fn leading_empty_lines_are_not_a_head() {
    all(
        b"\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        Some(0),
    );
}

/// Renders a request with the given framing and body, chunked or not.
fn request(body: &[u8], chunks: &[usize], extra: &[(String, String)]) -> Vec<u8> {
    let mut head = b"POST /p HTTP/1.1\r\nHost: h\r\n".to_vec();
    for (k, v) in extra {
        head.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if chunks.is_empty() {
        head.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        head.extend_from_slice(body);
    } else {
        head.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        let mut rest = body;
        for &n in chunks {
            let n = n.min(rest.len());
            if n == 0 {
                continue;
            }
            head.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            head.extend_from_slice(&rest[..n]);
            head.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        if !rest.is_empty() {
            head.extend_from_slice(format!("{:x}\r\n", rest.len()).as_bytes());
            head.extend_from_slice(rest);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"0\r\n\r\n");
    }
    head
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever the bodies hold and however the bytes are cut into reads, well-framed requests
    /// are never ambiguous, and a smuggling head after them is found by its number.
    #[test]
    fn bodies_never_count_and_smuggling_heads_are_found(
        bodies in prop::collection::vec(
            (prop::collection::vec(prop::sample::select(
                b"\r\nContent-Length: 1Transfer-Encoding:chunked0 xyz".to_vec()), 0..120),
             prop::collection::vec(1usize..20, 0..4)),
            1..5),
        fields in prop::collection::vec(("[A-Za-z-]{1,20}", "[ -~]{0,40}"), 0..4),
        cuts in prop::collection::vec(1usize..50, 1..30),
        smuggle in any::<bool>(),
    ) {
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .filter(|(k, _)| {
                let k = k.to_ascii_lowercase();
                k != "content-length" && k != "transfer-encoding"
            })
            .map(|(k, v)| (k, v.trim().to_owned()))
            .collect();
        let mut stream = Vec::new();
        for (body, chunks) in &bodies {
            stream.extend(request(body, chunks, &fields));
        }
        if smuggle {
            stream.extend_from_slice(b"POST /s HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        }
        let mut scanner = HeadScanner::default();
        let mut found = None;
        let mut pos = 0;
        let mut i = 0;
        while pos < stream.len() {
            let n = cuts[i % cuts.len()].min(stream.len() - pos);
            found = found.or(scanner.feed(&stream[pos..pos + n]));
            pos += n;
            i += 1;
        }
        let want = smuggle.then_some(bodies.len() as u64);
        prop_assert_eq!(found, want);
    }

    /// Arbitrary bytes never panic the scanner.
    #[test]
    fn arbitrary_bytes_are_harmless(bytes in prop::collection::vec(any::<u8>(), 0..2000), cut in 1usize..64) {
        let mut scanner = HeadScanner::default();
        for part in bytes.chunks(cut) {
            let _ = scanner.feed(part);
        }
    }
}
