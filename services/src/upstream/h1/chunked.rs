//! The chunked transfer coding (RFC 9112 §7.1), decoded from a connection's read buffer.
//!
//! Strict where smuggling lives: every line ends in CRLF, a chunk's size is 1 to 16 hex
//! digits, and a chunk's data is followed by CRLF and nothing else. Extensions are skipped.
//! Each byte is looked at a bounded number of times however the answer is cut into reads.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::H1Error;

/// The longest chunk-size line, extensions included.
const MAX_SIZE_LINE: usize = 4096;
/// The largest trailer section, and the most fields in it.
const MAX_TRAILERS: usize = 64 * 1024;
const MAX_TRAILER_FIELDS: usize = 64;

/// What the decoder made of the buffer.
#[derive(Debug, PartialEq)]
pub(super) enum Step {
    Data(Bytes),
    /// The last chunk's trailer fields; the body has ended.
    Trailers(HeaderMap),
    /// The body has ended.
    End,
    /// The buffer holds nothing more to decode: read.
    More,
}

#[derive(Default)]
pub(super) struct Decoder {
    state: State,
    /// How far the buffer was searched for the end of the line or section being read.
    searched: usize,
}

#[derive(Default, Clone, Copy)]
enum State {
    #[default]
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
}

impl Decoder {
    /// Decodes what it can from the front of `buf`, taking out what it used.
    pub(super) fn step(&mut self, buf: &mut BytesMut) -> Result<Step, H1Error> {
        loop {
            match self.state {
                State::Size => {
                    let Some(lf) =
                        memchr::memchr(b'\n', &buf[self.searched..]).map(|i| i + self.searched)
                    else {
                        if buf.len() > MAX_SIZE_LINE {
                            return Err(H1Error::Invalid("a chunk-size line is too long"));
                        }
                        self.searched = buf.len();
                        return Ok(Step::More);
                    };
                    if lf >= MAX_SIZE_LINE {
                        return Err(H1Error::Invalid("a chunk-size line is too long"));
                    }
                    let size = size_line(&buf[..lf])?;
                    buf.advance(lf + 1);
                    self.searched = 0;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let data = buf.split_to(take).freeze();
                    self.state = match left - take as u64 {
                        0 => State::DataEnd,
                        rest => State::Data(rest),
                    };
                    return Ok(Step::Data(data));
                }
                State::DataEnd => match buf.get(..2) {
                    Some(b"\r\n") => {
                        buf.advance(2);
                        self.state = State::Size;
                    }
                    Some(_) => {
                        return Err(H1Error::Invalid("a chunk's data does not end with CRLF"))
                    }
                    None if buf.first().is_some_and(|b| *b != b'\r') => {
                        return Err(H1Error::Invalid("a chunk's data does not end with CRLF"))
                    }
                    None => return Ok(Step::More),
                },
                State::Trailers => {
                    match buf.get(..2) {
                        Some(b"\r\n") => {
                            buf.advance(2);
                            return Ok(Step::End);
                        }
                        None => return Ok(Step::More),
                        Some(_) => {}
                    }
                    let from = self.searched.saturating_sub(3);
                    let Some(end) =
                        memchr::memmem::find(&buf[from..], b"\r\n\r\n").map(|i| from + i + 4)
                    else {
                        if buf.len() > MAX_TRAILERS {
                            return Err(H1Error::Invalid("the trailer section is too large"));
                        }
                        self.searched = buf.len();
                        return Ok(Step::More);
                    };
                    let trailers = trailers(&buf[..end])?;
                    buf.advance(end);
                    return Ok(Step::Trailers(trailers));
                }
            }
        }
    }
}

/// A chunk-size line without its LF: the size in hex, optional whitespace and extensions,
/// then CR.
fn size_line(line: &[u8]) -> Result<u64, H1Error> {
    let line = line
        .strip_suffix(b"\r")
        .ok_or(H1Error::Invalid("a chunk-size line does not end with CRLF"))?;
    let digits = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits == 0 || digits > 16 {
        return Err(H1Error::Invalid("a chunk size is not 1 to 16 hex digits"));
    }
    let size = line[..digits].iter().fold(0u64, |n, d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        };
        (n << 4) | u64::from(v)
    });
    let rest = &line[digits..];
    let rest = &rest[rest
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count()..];
    if !(rest.is_empty() || rest[0] == b';') || rest.contains(&b'\r') {
        return Err(H1Error::Invalid(
            "a chunk-size line has something after the size",
        ));
    }
    Ok(size)
}

/// The trailer fields of a section that ends with its blank line.
fn trailers(section: &[u8]) -> Result<HeaderMap, H1Error> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
    let fields = match httparse::parse_headers(section, &mut slots) {
        Ok(httparse::Status::Complete((_, fields))) => fields,
        _ => return Err(H1Error::Invalid("the trailer section does not parse")),
    };
    let mut map = HeaderMap::with_capacity(fields.len());
    for f in fields {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| H1Error::Invalid("a trailer name is not one"))?;
        let value = HeaderValue::from_bytes(f.value)
            .map_err(|_| H1Error::Invalid("a trailer value is not one"))?;
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data, the trailers, and what is left in the buffer.
    type Decoded = (Vec<u8>, Option<HeaderMap>, Vec<u8>);

    /// Decodes `input` handed over in pieces of `piece` bytes.
    fn decode(input: &[u8], piece: usize) -> Result<Decoded, H1Error> {
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut pieces = input.chunks(piece);
        loop {
            match d.step(&mut buf)? {
                Step::Data(b) => data.extend_from_slice(&b),
                Step::Trailers(t) => return Ok((data, Some(t), buf.to_vec())),
                Step::End => return Ok((data, None, buf.to_vec())),
                Step::More => match pieces.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => return Err(H1Error::Incomplete),
                },
            }
        }
    }

    #[test]
    fn decodes_however_the_input_is_cut() {
        let input = b"5\r\nhello\r\n1;ext=\"a b\"\r\n \r\nA  \r\n0123456789\r\n0\r\n\r\nNEXT";
        for piece in [1, 2, 3, 7, input.len()] {
            let (data, trailers, rest) = decode(input, piece).unwrap();
            assert_eq!(data, b"hello 0123456789", "piece {piece}");
            assert!(trailers.is_none());
            assert!(b"NEXT".starts_with(&rest), "piece {piece}: {rest:?}");
        }
    }

    #[test]
    fn trailers_are_handed_over() {
        let input = b"3\r\nabc\r\n0\r\nChecksum: 900150983cd24fb0\r\nX-Two: 2\r\n\r\n";
        for piece in [1, 5, input.len()] {
            let (data, trailers, rest) = decode(input, piece).unwrap();
            assert_eq!(data, b"abc");
            let t = trailers.unwrap();
            assert_eq!(t["checksum"], "900150983cd24fb0");
            assert_eq!(t["x-two"], "2");
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn malformed_framing_is_refused() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],         // bare LF after the size
            b"5\r\nhelloX\r\n0\r\n\r\n",           // data longer than its size
            b"-5\r\nhello\r\n0\r\n\r\n",           // not hex
            b"0x5\r\nhello\r\n0\r\n\r\n",          // prefix
            b"11111111111111111\r\n",              // 17 digits
            b"5 5\r\nhello\r\n0\r\n\r\n",          // two numbers
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",       // a bare CR in an extension
            b"3\r\nabc\r\n0\r\nbad field\r\n\r\n", // a trailer that is no field
        ] {
            assert!(
                matches!(decode(bad, 1), Err(H1Error::Invalid(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn endless_lines_are_cut_off_at_their_bound() {
        let mut line = b"5;".to_vec();
        line.resize(MAX_SIZE_LINE + 10, b'x');
        assert!(matches!(decode(&line, 100), Err(H1Error::Invalid(_))));
        let mut trailer = b"0\r\nX: ".to_vec();
        trailer.resize(MAX_TRAILERS + 10, b'y');
        assert!(matches!(decode(&trailer, 4096), Err(H1Error::Invalid(_))));
    }

    #[test]
    fn the_largest_size_does_not_overflow() {
        let (mut d, mut buf) = (
            Decoder::default(),
            BytesMut::from(&b"ffffffffffffffff\r\nab"[..]),
        );
        assert_eq!(
            d.step(&mut buf).unwrap(),
            Step::Data(Bytes::from_static(b"ab"))
        );
        assert!(matches!(d.state, State::Data(n) if n == u64::MAX - 2));
    }
}
