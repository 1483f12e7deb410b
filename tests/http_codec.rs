//! Property tests of the HTTP example's request codec (`examples/http_server/request.rs`,
//! included as is): no bytes panic it or make it hold more than its limit; a pipeline of valid
//! requests decodes to the same requests however it is cut into reads. And the `Date`
//! formatter of `response.rs` against dates worked out independently.

#[path = "../examples/http_server/request.rs"]
mod request;
#[allow(dead_code)] // only the date formatter is tested here
#[path = "../examples/http_server/response.rs"]
mod response;

use proptest::prelude::*;
use request::{Body, Method, Parsed, Request, RequestCodec, Target};
use selectloop::Codec;

const MAX: usize = 1024;

/// Feeds `input` to a fresh codec in pieces cut at `cuts`, as a connection does (appending to
/// a buffer, decoding every complete item after each piece), until a refusal. Checks on the
/// way that the codec never claims more than it was given, and never waits on more than `MAX`
/// bytes. Returns the items and the bytes left undecoded.
fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> (Vec<Parsed>, usize) {
    let mut codec = RequestCodec::new(MAX);
    let (mut buf, mut items) = (Vec::new(), Vec::new());
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    bounds.push(input.len());
    bounds.sort_unstable();
    let mut at = 0;
    for end in bounds {
        buf.extend_from_slice(&input[at..end]);
        at = end;
        loop {
            match codec
                .decode(&buf)
                .expect("the codec never fails: it refuses")
            {
                Some((item, used)) => {
                    assert!(used <= buf.len(), "used {used} of {} bytes", buf.len());
                    assert!(used > 0, "an item from no bytes");
                    buf.drain(..used);
                    let refused = matches!(item, Parsed::Refused(_));
                    items.push(item);
                    if refused {
                        return (items, buf.len()); // the server closes here
                    }
                }
                None => {
                    assert!(buf.len() <= MAX, "waiting on {} bytes", buf.len());
                    break;
                }
            }
        }
    }
    (items, buf.len())
}

/// A valid request, its bytes, and what it must decode to.
fn requests() -> impl Strategy<Value = (Vec<u8>, Method, Target, bool)> {
    let method = prop_oneof![Just("GET"), Just("HEAD"), Just("POST"), Just("OPTIONS")];
    let path = prop_oneof![
        Just("/".to_string()),
        "/[a-z0-9%./]{1,30}",
        "/static/[a-zA-Z0-9._-]{1,20}(\\?[a-z=&]{0,10})?",
    ];
    let connection = prop_oneof![
        Just(None),
        Just(Some("close")),
        Just(Some("keep-alive")),
        Just(Some("Keep-Alive, Upgrade")),
    ];
    let extra = proptest::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,20}"), 0..5);
    let newline = prop_oneof![Just("\r\n"), Just("\n")];
    (
        method,
        path,
        any::<bool>(),
        connection,
        extra,
        newline,
        0..3usize,
    )
        .prop_map(
            |(method, path, http11, connection, extra, nl, blank_lines)| {
                let mut text = nl.repeat(blank_lines); // tolerated before a request line
                let version = if http11 { "1.1" } else { "1.0" };
                text.push_str(&format!("{method} {path} HTTP/{version}{nl}"));
                if http11 {
                    text.push_str(&format!("Host: example{nl}"));
                }
                if let Some(value) = connection {
                    text.push_str(&format!("Connection: {value}{nl}"));
                }
                for (name, value) in extra {
                    let name = format!("X-{name}"); // not one the codec reads
                    text.push_str(&format!("{name}: {}{nl}", value.trim()));
                }
                text.push_str(nl);
                let method = match method {
                    "GET" => Method::Get,
                    "HEAD" => Method::Head,
                    _ => Method::Other,
                };
                let bare = path.split('?').next().unwrap();
                let target = match bare {
                    "/" => Target::Root,
                    _ => Target::Path(bare.to_string()),
                };
                let keep_alive = match connection {
                    Some("close") => false,
                    Some(_) => true,
                    None => http11,
                };
                (text.into_bytes(), method, target, keep_alive)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes, in any pieces: requests or a refusal, never a panic, never more than the
    /// limit held.
    #[test]
    fn no_bytes_panic_the_codec(
        input in proptest::collection::vec(any::<u8>(), 0..3000),
        cuts in proptest::collection::vec(0..3000usize, 0..6),
    ) {
        decode_in_pieces(&input, &cuts);
        let mut codec = RequestCodec::new(MAX);
        if !input.is_empty() {
            let _ = codec.decode_eof(&input);
        }
    }

    /// Bytes that look like HTTP (a request line, then anything) reach `httparse` more often.
    #[test]
    fn no_near_request_panics_the_codec(
        rest in proptest::collection::vec(prop_oneof![
            Just(b'\r'), Just(b'\n'), Just(b':'), Just(b' '), any::<u8>()
        ], 0..400),
        cuts in proptest::collection::vec(0..450usize, 0..4),
    ) {
        let mut input = b"GET / HTTP/1.1\r\n".to_vec();
        input.extend(rest);
        decode_in_pieces(&input, &cuts);
    }

    /// A pipeline of valid requests: the same requests, with the right fields, wherever it
    /// is cut.
    #[test]
    fn a_pipeline_decodes_the_same_however_it_is_cut(
        pipeline in proptest::collection::vec(requests(), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let input: Vec<u8> = pipeline.iter().flat_map(|(bytes, ..)| bytes.clone()).collect();
        let (whole, left) = decode_in_pieces(&input, &[]);
        prop_assert_eq!(left, 0);
        prop_assert_eq!(whole.len(), pipeline.len());
        for (item, (bytes, method, target, keep_alive)) in whole.iter().zip(&pipeline) {
            let expected = Parsed::Request(Request {
                method: *method,
                target: target.clone(),
                keep_alive: *keep_alive,
                body: Body::None,
                len: bytes.len(),
            });
            prop_assert_eq!(item, &expected);
        }
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        let (pieces, left) = decode_in_pieces(&input, &cuts);
        prop_assert_eq!(left, 0);
        prop_assert_eq!(pieces, whole);
    }

    /// Byte by byte too (the codec's search resumes where it stopped).
    #[test]
    fn a_request_decodes_the_same_byte_by_byte(request in requests()) {
        let input = request.0;
        let cuts: Vec<usize> = (1..input.len()).collect();
        prop_assert_eq!(decode_in_pieces(&input, &cuts), decode_in_pieces(&input, &[]));
    }
}

#[test]
fn heads_over_the_limit_are_refused_with_431() {
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    head.extend(std::iter::repeat_n(b'x', MAX));
    let (items, _) = decode_in_pieces(&head, &[10, 500]);
    assert_eq!(items, [Parsed::Refused(431)], "no end within the limit");
    head.extend_from_slice(b"\r\n\r\n");
    let (items, _) = decode_in_pieces(&head, &[]);
    assert_eq!(items, [Parsed::Refused(431)], "an end past the limit");
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..request::MAX_HEADERS {
        many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(decode_in_pieces(&many, &[]).0, [Parsed::Refused(431)]);
}

#[test]
fn bodies_and_bad_lengths_are_flagged() {
    let decode = |text: &str| decode_in_pieces(text.as_bytes(), &[]).0;
    let body = |items: Vec<Parsed>| match &items[..] {
        [Parsed::Request(request)] => request.body,
        other => panic!("{other:?}"),
    };
    let head = "GET / HTTP/1.1\r\nHost: a\r\n";
    assert_eq!(
        body(decode(&format!("{head}Content-Length: 0\r\n\r\n"))),
        Body::None
    );
    assert_eq!(
        body(decode(&format!("{head}Content-Length: 12\r\n\r\n"))),
        Body::Length(12)
    );
    assert_eq!(
        body(decode(&format!("{head}Transfer-Encoding: chunked\r\n\r\n"))),
        Body::Encoded
    );
    for bad in ["-1", "1 2", "0x10", "", "99999999999999999999999"] {
        let items = decode(&format!("{head}Content-Length: {bad}\r\n\r\n"));
        assert_eq!(items, [Parsed::Refused(400)], "Content-Length: {bad:?}");
    }
    assert_eq!(
        decode("GET / HTTP/1.1\r\n\r\n"),
        [Parsed::Refused(400)],
        "no Host"
    );
}

#[test]
fn a_head_cut_short_by_end_of_file_is_dropped() {
    let mut codec = RequestCodec::new(MAX);
    assert_eq!(codec.decode_eof(b"GET / HTTP/1.1\r\nHost:").unwrap(), None);
    let complete = b"GET / HTTP/1.0\r\n\r\n";
    let (item, used) = codec
        .decode_eof(complete)
        .unwrap()
        .expect("a whole request");
    assert_eq!(used, complete.len());
    assert!(matches!(item, Parsed::Request(_)));
}

#[test]
fn dates_are_imf_fixdates() {
    // Worked out with Python's email.utils.formatdate(t, usegmt=True).
    for (secs, text) in [
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
        (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
        (1_709_164_800, "Thu, 29 Feb 2024 00:00:00 GMT"),
        (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 GMT"),
        (253_402_300_799, "Fri, 31 Dec 9999 23:59:59 GMT"),
    ] {
        assert_eq!(response::http_date(secs), text, "{secs}");
    }
}
