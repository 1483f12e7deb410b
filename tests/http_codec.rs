//! Property tests of the HTTP example's request codec (`examples/http_server/request.rs`,
//! included as is): no bytes panic it or make it hold more than its limit; a pipeline of valid
//! requests decodes to the same requests however it is cut into reads; what cannot be a request
//! (an HTTP/0.9 line, a TLS ClientHello) is refused before any empty line. And the `Date`
//! formatter of `response.rs` against dates worked out independently, and `conditional.rs`
//! (dates read back, validators, ranges).

#[path = "../examples/http_server/conditional.rs"]
mod conditional;
#[path = "../examples/http_server/request.rs"]
mod request;
#[allow(dead_code)] // only the date formatter is tested here
#[path = "../examples/http_server/response.rs"]
mod response;

use conditional::Part;
use proptest::prelude::*;
use request::{Body, Conditions, Method, Parsed, Request, RequestCodec, Target};
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
                conditions: Conditions::default(),
            });
            prop_assert_eq!(item, &expected);
        }
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        let (pieces, left) = decode_in_pieces(&input, &cuts);
        prop_assert_eq!(left, 0);
        prop_assert_eq!(pieces, whole);
    }

    /// A request line without a version (HTTP/0.9), whatever follows it short of an empty
    /// line, is refused with 400 as soon as the line ends, however it is cut.
    #[test]
    fn a_line_without_a_version_is_refused_at_once(
        method in "[A-Z]{1,8}",
        path in "/[a-zA-Z0-9./%]{0,30}",
        nl in prop_oneof![Just("\r\n"), Just("\n")],
        blank_lines in 0..3usize,
        after in "[A-Za-z-]{1,10}(: [ -~]{0,10})?",
        cuts in proptest::collection::vec(0..80usize, 0..4),
    ) {
        let input = format!("{}{method} {path}{nl}{after}", nl.repeat(blank_lines));
        let (items, _) = decode_in_pieces(input.as_bytes(), &cuts);
        prop_assert_eq!(items, [Parsed::Refused(400)], "{:?}", input);
    }

    /// A first byte no method begins with (0x16 starts a TLS record) is refused at once.
    #[test]
    fn a_first_byte_that_begins_no_method_is_refused_at_once(
        first in any::<u8>().prop_filter("not a token character nor CR/LF", |&b| {
            !(b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~\r\n".contains(&b))
        }),
        rest in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let mut input = vec![first];
        input.extend(rest);
        let mut codec = RequestCodec::new(MAX);
        let decoded = codec.decode(&input[..1]).expect("the codec never fails");
        prop_assert_eq!(decoded, Some((Parsed::Refused(400), 1)));
        let decoded = codec.decode(&input).expect("the codec never fails");
        prop_assert_eq!(decoded, Some((Parsed::Refused(400), input.len())));
    }

    /// Every date `http_date` writes reads back as the same second.
    #[test]
    fn dates_read_back(secs in 0..253_402_300_800u64) {
        let text = response::http_date(secs);
        prop_assert_eq!(conditional::parse_http_date(&text), Some(secs), "{}", text);
    }

    /// A `bytes=a-b`, `a-` or `-n` range of a file of `len` bytes: a part inside the file
    /// (what `Content-Range` says and what is sent), 416 only when no byte of it is there.
    #[test]
    fn single_ranges_stay_inside_the_file(
        len in 0..1000u64,
        first in proptest::option::of(0..1100u64),
        last in proptest::option::of(0..1100u64),
    ) {
        let spec = format!(
            "bytes={}-{}",
            first.map_or(String::new(), |n| n.to_string()),
            last.map_or(String::new(), |n| n.to_string())
        );
        let part = conditional::range(Some(&spec), None, len, None, None);
        match (first, last) {
            (None, None) => prop_assert_eq!(part, Part::Whole, "{}", spec),
            (Some(a), Some(b)) if b < a => prop_assert_eq!(part, Part::Whole, "{}", spec),
            // An empty file has no part to send: the whole (nothing), as from nginx.
            (Some(0), _) | (None, Some(1..)) if len == 0 => {
                prop_assert_eq!(part, Part::Whole, "{}", spec)
            }
            (Some(a), _) if a >= len => prop_assert_eq!(part, Part::Unsatisfiable, "{}", spec),
            (None, Some(0)) => prop_assert_eq!(part, Part::Unsatisfiable, "{}", spec),
            (None, Some(n)) => {
                prop_assert_eq!(part, Part::Bytes { first: len - n.min(len), last: len - 1 })
            }
            (Some(a), b) => {
                let last = b.unwrap_or(u64::MAX).min(len - 1);
                prop_assert_eq!(part, Part::Bytes { first: a, last }, "{}", spec)
            }
        }
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

#[test]
fn a_tls_client_hello_is_refused_at_its_first_byte() {
    // The start of a real ClientHello: handshake record, TLS 1.0 record version, length.
    let hello = [
        0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
    ];
    let (items, left) = decode_in_pieces(&hello, &[1]);
    assert_eq!(items, [Parsed::Refused(400)]);
    assert_eq!(left, 0, "the refusal takes every byte");
}

#[test]
fn duplicate_content_lengths_are_refused_even_when_equal() {
    for lengths in [["0", "0"], ["3", "3"], ["1", "2"]] {
        let head = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nContent-Length: {}\r\n\r\n",
            lengths[0], lengths[1]
        );
        let (items, _) = decode_in_pieces(head.as_bytes(), &[]);
        assert_eq!(items, [Parsed::Refused(400)], "{lengths:?}");
    }
}

#[test]
fn a_hundred_fields_are_accepted_and_one_more_is_431() {
    assert_eq!(request::MAX_HEADERS, 100);
    let head = |fields: usize| {
        let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 1..fields {
            head.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let mut codec = RequestCodec::new(8 << 10);
        codec.decode(&head).unwrap().map(|(item, _)| item)
    };
    assert!(
        matches!(head(100), Some(Parsed::Request(_))),
        "{:?}",
        head(100)
    );
    assert_eq!(head(101), Some(Parsed::Refused(431)));
}

#[test]
fn conditional_fields_are_kept() {
    let head = "GET /static/a HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"a\"\r\n\
                if-none-match:  W/\"b\" \r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
                RANGE: bytes=1-2\r\nRange: bytes=3-4\r\nIf-Range: \"a\"\r\n\r\n";
    let (items, _) = decode_in_pieces(head.as_bytes(), &[]);
    let [Parsed::Request(request)] = &items[..] else {
        panic!("{items:?}");
    };
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        request.conditions,
        Conditions {
            if_none_match: some("\"a\", W/\"b\""),
            if_modified_since: some("Sun, 06 Nov 1994 08:49:37 GMT"),
            range: some("bytes=1-2"),
            if_range: some("\"a\""),
        }
    );
}

#[test]
fn validators_are_nginx_s_and_compared_as_rfc_9110_says() {
    let etag = conditional::etag(0x6593_7d25, 20);
    assert_eq!(etag, "\"65937d25-14\"");
    let mtime = Some(0x6593_7d25);
    let date = response::http_date(0x6593_7d25);
    let inm = |value: &str| conditional::not_modified(Some(value), None, mtime, Some(&etag));
    assert!(inm(&etag));
    assert!(inm("*"));
    assert!(inm(&format!("\"x\", W/{etag}")), "a list, weak comparison");
    assert!(inm(&format!("\"a,b\",{etag}")), "a comma inside a tag");
    assert!(!inm("\"65937d25-15\""));
    assert!(!inm("65937d25-14"), "not quoted: no tag");
    let ims = |value: &str| conditional::not_modified(None, Some(value), mtime, Some(&etag));
    assert!(ims(&date));
    assert!(ims(&response::http_date(0x6593_7d26)), "later");
    assert!(!ims(&response::http_date(0x6593_7d24)), "earlier");
    assert!(!ims("yesterday"));
    assert!(ims("Tuesday, 02-Jan-24 03:04:05 GMT"), "RFC 850");
    assert!(ims("Tue Jan  2 03:04:05 2024"), "asctime");
    // With If-None-Match, If-Modified-Since is not looked at.
    assert!(!conditional::not_modified(
        Some("\"x\""),
        Some(&date),
        mtime,
        Some(&etag)
    ));
    // No modification time: no validators, never 304.
    assert!(!conditional::not_modified(
        Some("*"),
        Some(&date),
        None,
        None
    ));
    // If-Range: the strong tag, or the very date.
    let range = |if_range: &str| {
        conditional::range(Some("bytes=2-5"), Some(if_range), 20, mtime, Some(&etag))
    };
    let part = Part::Bytes { first: 2, last: 5 };
    assert_eq!(range(&etag), part);
    assert_eq!(range(&date), part);
    assert_eq!(range(&format!("W/{etag}")), Part::Whole, "a weak tag");
    assert_eq!(range("\"other\""), Part::Whole);
    assert_eq!(
        range(&response::http_date(0x6593_7d26)),
        Part::Whole,
        "another date"
    );
    let ranges = |spec: &str| conditional::range(Some(spec), None, 20, mtime, Some(&etag));
    assert_eq!(
        ranges("bytes=0-1,3-4"),
        Part::Whole,
        "several ranges: the whole file"
    );
    assert_eq!(ranges("items=0-1"), Part::Whole);
    assert_eq!(ranges("Bytes = 2-5"), part);
    assert_eq!(ranges("bytes=x-5"), Part::Whole);
    assert_eq!(
        ranges("bytes=99999999999999999999999-"),
        Part::Unsatisfiable
    );
}

#[test]
fn invalid_dates_are_not_read() {
    for text in [
        "Sun, 06 Nov 1994 08:49:37 GMT ",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 29 Feb 2023 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 Nov 1969 08:49:37 GMT",
        "Sun Nov 06 08:49:37 1994 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun, 06-Nov-94 08:49:37 GMT",
        "Sunday, 6-Nov-94 08:49:37 GMT",
        "Sun Nov 6  08:49:37 1994",
        "Sun Nov   6 08:49:37 1994",
        "Sun Nov  6 8:49:37 1994",
        "Sun, 0x Nov 1994 08:49:37 GMT",
        "",
    ] {
        assert_eq!(conditional::parse_http_date(text), None, "{text:?}");
    }
    assert_eq!(
        conditional::parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
        Some(1_709_164_800)
    );
    // The obsolete forms RFC 9110 5.6.7 says a recipient must read too.
    for text in [
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
        "Sun Nov 06 08:49:37 1994",
    ] {
        assert_eq!(
            conditional::parse_http_date(text),
            Some(784_111_777),
            "{text:?}"
        );
    }
    assert_eq!(
        conditional::parse_http_date("Thursday, 29-Feb-24 00:00:00 GMT"),
        Some(1_709_164_800),
        "a two-digit year under 70 is 20xx"
    );
}
