use super::*;

fn read(head: &[u8], max_fields: usize) -> Read {
    let mut spans = [[0u32; 4]; MAX_FIELDS];
    read_head(head, max_fields, &mut spans)
}

fn is_ours(head: &[u8]) -> bool {
    matches!(read(head, MAX_FIELDS), Read::Head(_))
}

fn length_of(head: &[u8]) -> Option<u64> {
    match read(head, MAX_FIELDS) {
        Read::Head(h) => Some(h.length),
        _ => None,
    }
}

#[test]
fn takes_http_1_1_requests_with_one_plain_length_or_none() {
    assert!(is_ours(b"GET /a?b=c HTTP/1.1\r\nHost: t\r\n\r\n"));
    assert!(is_ours(
        b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: Keep-Alive\r\n\r\n"
    ));
    for (head, length) in [
        (&b"POST /a HTTP/1.1\r\nHost: t\r\n\r\n"[..], 0),
        (b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 5),
        (b"PUT /a HTTP/1.1\r\ncontent-length: 0012\r\n\r\n", 12),
        (b"PATCH /a HTTP/1.1\r\nContent-Length:  7 \r\n\r\n", 7),
        (b"DELETE /a HTTP/1.1\r\n\r\n", 0),
        (b"OPTIONS /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 0),
        (b"GET /a HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello", 5),
        (
            b"POST /a HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\n",
            999_999_999_999_999_999,
        ),
    ] {
        assert_eq!(
            length_of(head),
            Some(length),
            "{:?}",
            String::from_utf8_lossy(head)
        );
    }
    for other in [
        &b"get /a HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        b"PROPFIND /a HTTP/1.1\r\nHost: t\r\n\r\n",
        b"CONNECT t:80 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET http://t/a HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /a HTTP/1.0\r\nHost: t\r\n\r\n",
        b"POST /a HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        // Lengths that are not one plain number: hyper's server judges them.
        b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /a HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"POST /a HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
        b"POST /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST /a HTTP/1.1\r\nContent-Length: 0x5\r\n\r\nhello",
        b"POST /a HTTP/1.1\r\nContent-Length:\r\n\r\n",
        b"POST /a HTTP/1.1\r\nContent-Length: 1000000000000000000\r\n\r\n",
        b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        b"GET /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /a HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /a HTTP/1.1\r\nConnection: keep-alive, x-other\r\n\r\n",
        // Bytes httparse refuses: hyper's server answers them.
        b"GET /a HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n",
        b"GET /a HTTP/1.1\r\nBad Name: t\r\n\r\n",
        b"POST /a HTTP/1.1\r\nContent Length: 5\r\n\r\nhello",
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"\x00\x01\x02\x03 garbage\r\n\r\n",
    ] {
        assert!(
            matches!(read(other, MAX_FIELDS), Read::NotOurs),
            "{:?} was taken",
            String::from_utf8_lossy(other)
        );
    }
}

#[test]
fn a_head_not_yet_whole_is_waited_for() {
    assert!(matches!(read(b"", MAX_FIELDS), Read::Partial));
    assert!(matches!(read(b"GET /a HTT", MAX_FIELDS), Read::Partial));
    assert!(matches!(
        read(b"GET /a HTTP/1.1\r\nHost: t\r\n", MAX_FIELDS),
        Read::Partial
    ));
}

/// More fields than the configured limit (or than this reader's 64): hyper's server reads it
/// and applies the limit.
#[test]
fn more_fields_than_the_limit_are_hypers() {
    let mut head = b"GET /a HTTP/1.1\r\n".to_vec();
    for i in 0..10 {
        head.extend_from_slice(format!("x-f{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    assert!(matches!(read(&head, 10), Read::Head(_)));
    assert!(matches!(read(&head, 9), Read::NotOurs));
    let mut many = b"GET /a HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_FIELDS {
        many.extend_from_slice(format!("x-f{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert!(matches!(read(&many, MAX_FIELDS), Read::NotOurs));
}

/// The request keeps the fields' order, repeats and bytes, and the bytes after the head stay
/// in the buffer for the next request.
#[test]
fn the_request_is_the_head_as_sent() {
    let mut buf = BytesMut::from(
        &b"GET /p?q=%20 HTTP/1.1\r\nHost: t\r\nX-A: 1\r\nx-a: \xff2\r\nAccept: */*\r\n\r\nGET /next"[..],
    );
    let mut spans = [[0u32; 4]; MAX_FIELDS];
    let Read::Head(head) = read_head(&buf, MAX_FIELDS, &mut spans) else {
        panic!("not taken");
    };
    let req = head.request(&mut buf, &spans).expect("a request");
    assert_eq!(req.method(), Method::GET);
    assert_eq!(req.uri().path(), "/p");
    assert_eq!(req.uri().query(), Some("q=%20"));
    assert_eq!(req.version(), Version::HTTP_11);
    let a: Vec<&[u8]> = req
        .headers()
        .get_all("x-a")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    assert_eq!(a, [&b"1"[..], b"\xff2"]);
    assert_eq!(req.headers().len(), 4);
    assert_eq!(&buf[..], b"GET /next");
}

/// A target httparse takes but the URI parser refuses is handed over whole: the buffer is as
/// it was, so hyper's server reads the same bytes and answers 400.
#[test]
fn a_refused_target_leaves_the_buffer_whole() {
    let bytes = &b"GET /a<b> HTTP/1.1\r\nHost: t\r\n\r\nGET /next"[..];
    let mut buf = BytesMut::from(bytes);
    let mut spans = [[0u32; 4]; MAX_FIELDS];
    let Read::Head(head) = read_head(&buf, MAX_FIELDS, &mut spans) else {
        panic!("httparse takes `<`");
    };
    assert!(head.request(&mut buf, &spans).is_none());
    assert_eq!(&buf[..], bytes);
}

/// Feeds `head` one byte at a time; returns whether a whole head was read and how many times
/// httparse ran.
fn byte_by_byte(head: &[u8]) -> (bool, usize) {
    let mut heads = Heads::new(MAX_FIELDS);
    for end in 1..=head.len() {
        match heads.read(&head[..end]) {
            Read::Head(h) => {
                assert_eq!(end, head.len());
                assert_eq!(h.len, head.len());
                return (true, heads.parses);
            }
            Read::Partial => {}
            Read::NotOurs => panic!("refused at byte {end}"),
        }
    }
    (false, heads.parses)
}

/// A client that sends its head a byte at a time does not make the reader parse it once per
/// byte (quadratic in the head): it is parsed again only when the new bytes could end it.
#[test]
fn a_head_sent_a_byte_at_a_time_is_parsed_a_few_times() {
    let mut head = b"GET /slow HTTP/1.1\r\n".to_vec();
    for i in 0..60 {
        head.extend_from_slice(format!("x-field-{i}: {}\r\n", "v".repeat(100)).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    assert!(head.len() > 6_000);
    let (whole, parses) = byte_by_byte(&head);
    assert!(whole);
    assert!(
        parses <= 3,
        "{parses} parses for a {}-byte head",
        head.len()
    );
    // Heads ended by bare line feeds (which httparse, like hyper's server, accepts) too.
    let (whole, parses) = byte_by_byte(b"GET / HTTP/1.1\nHost: t\nX-A: b\n\n");
    assert!(whole);
    assert!(parses <= 3, "{parses}");
}

#[test]
fn an_empty_line_split_between_reads_is_seen() {
    let head = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    for cut in 1..head.len() {
        let mut heads = Heads::new(MAX_FIELDS);
        assert!(matches!(heads.read(&head[..cut]), Read::Partial));
        assert!(
            matches!(heads.read(head), Read::Head(_)),
            "not seen when cut at {cut}"
        );
    }
}

/// Counts the wakes it gets.
#[derive(Default)]
struct Wakes(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The lazy head timer ends each wait at that wait's own due time, never at an earlier wait's,
/// and wakes the task when it fires though it was polled once only.
#[tokio::test(start_paused = true)]
async fn the_head_timer_ends_each_wait_at_its_due_time_never_before() {
    use std::time::Duration;
    use tokio::time::{advance, Instant};
    let timeout = Duration::from_secs(10);
    let sleep = tokio::time::sleep(timeout);
    tokio::pin!(sleep);
    let mut timer = HeadTimer {
        sleep,
        due: Instant::now(),
        polled: false,
    };
    let wakes = Arc::new(Wakes::default());
    let waker = std::task::Waker::from(Arc::clone(&wakes));
    let mut cx = Context::from_waker(&waker);
    let woken = || wakes.0.load(std::sync::atomic::Ordering::SeqCst);

    // A wait from 0 s, due at 10 s.
    timer.due = Instant::now() + timeout;
    assert!(timer.poll(&mut cx).is_pending());
    // A request came at 4 s; the next wait is due at 14 s. The timer is not touched.
    advance(Duration::from_secs(4)).await;
    timer.due = Instant::now() + timeout;
    assert!(timer.poll(&mut cx).is_pending());
    assert_eq!(woken(), 0);
    // At 11 s the timer set for the first wait has fired: the task is woken, and the wait
    // goes on to its own due time.
    advance(Duration::from_secs(7)).await;
    assert_eq!(woken(), 1);
    assert!(timer.poll(&mut cx).is_pending());
    advance(Duration::from_millis(2_900)).await;
    assert!(timer.poll(&mut cx).is_pending());
    // Past 14 s: over, and the task was woken for it.
    advance(Duration::from_millis(200)).await;
    assert_eq!(woken(), 2);
    assert!(timer.poll(&mut cx).is_ready());
}
