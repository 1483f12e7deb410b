//! Property tests of the file server's protocol module (`examples/file_server/protocol.rs`,
//! included as is): no input panics the request parser, the reply parser or the blocking frame
//! reader; requests survive a round trip through their text; an accepted name can only mean a
//! file directly in the root, on Unix and on Windows alike.

#[path = "../examples/file_server/protocol.rs"]
mod protocol;

use proptest::prelude::*;
use protocol::{check_name, parse_crc, parse_reply, parse_request, read_body, read_frame_into};
use protocol::{Code, Request, MAX_HEADER, MAX_NAME};
use std::path::{Component, Path};

/// Names a request may carry: mostly plausible, with every character that matters.
fn names() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ._-]{1,40}",
        "[a-z.]{0,5}(\\.\\.|/|\\\\|:|\\x00|\\n|CON|nul|com1|LPT9)[a-z.]{0,5}",
        any::<String>(),
    ]
}

fn requests() -> impl Strategy<Value = Request> {
    prop_oneof![
        Just(Request::List),
        Just(Request::Quit),
        (names(), any::<u64>()).prop_map(|(name, offset)| Request::Get { name, offset }),
        (names(), any::<u64>()).prop_map(|(name, size)| Request::Put { name, size }),
        names().prop_map(|name| Request::Delete { name }),
    ]
}

/// Prefixes that make the parser look further than its first word.
fn headers() -> impl Strategy<Value = Vec<u8>> {
    let verb = prop_oneof![
        Just("GET "),
        Just("PUT "),
        Just("DELETE "),
        Just("LIST"),
        Just("QUIT"),
        Just("")
    ];
    (verb, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(verb, rest)| {
        let mut header = verb.as_bytes().to_vec();
        header.extend(rest);
        header
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes: a request or a refusal, never a panic.
    #[test]
    fn no_header_panics_the_parser(frame in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_request(&frame);
        let _ = parse_reply(&frame);
        let _ = parse_crc(&frame);
    }

    #[test]
    fn no_plausible_header_panics_the_parser(frame in headers()) {
        if let Err(refusal) = parse_request(&frame) {
            prop_assert!(matches!(refusal.code, Code::BadRequest | Code::BadName));
            prop_assert!(refusal.header().len() <= MAX_HEADER);
        }
    }

    /// A request's text parses back to it, or its name is refused.
    #[test]
    fn requests_round_trip(request in requests()) {
        let text = request.to_string();
        match parse_request(text.as_bytes()) {
            Ok(parsed) => prop_assert_eq!(parsed, request),
            Err(refusal) => {
                prop_assert_eq!(refusal.code, Code::BadName, "{:?}: {}", text, refusal);
            }
        }
    }

    /// An accepted name is one plain path component on both platforms' rules, that no
    /// Windows quirk (separators, drive letters, trailing dots, device names) changes.
    #[test]
    fn accepted_names_stay_in_the_root(name in names()) {
        if check_name(&name).is_ok() {
            prop_assert!(!name.is_empty() && name.len() <= MAX_NAME);
            let components: Vec<_> = Path::new(&name).components().collect();
            prop_assert_eq!(components, vec![Component::Normal(name.as_ref())]);
            prop_assert!(!name.contains(['/', '\\', ':', '\0']));
            prop_assert!(!name.starts_with('.') && !name.ends_with(['.', ' ']));
            let stem = name.split('.').next().unwrap().trim_end().to_ascii_uppercase();
            prop_assert!(!["CON", "PRN", "AUX", "NUL"].contains(&stem.as_str()));
        }
    }

    /// The blocking reader: any bytes give a frame, an error, or the end; never a panic, and
    /// never a buffer larger than the limit, whatever a header claims.
    #[test]
    fn no_stream_panics_the_frame_reader(input in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut reader = &input[..];
        let mut buf = Vec::new();
        while read_frame_into(&mut reader, 64, &mut buf).is_ok() {
            prop_assert!(buf.len() <= 64);
        }
        prop_assert!(buf.capacity() <= 2 * 64, "{} bytes allocated", buf.capacity());
        let mut reader = &input[..];
        let _ = read_body(&mut reader, u64::MAX, |chunk| {
            assert!(chunk.len() <= protocol::CHUNK);
            Ok(())
        });
    }
}

/// The names the end-to-end tests send, refused here already (the server refuses them again
/// against its root).
#[test]
fn traversal_forms_are_refused() {
    for name in [
        "..",
        "../x",
        "/etc/passwd",
        "..\\x",
        "C:x",
        "C:\\x",
        "\\\\host\\share",
        "a\0b",
        "CON",
        "con.txt",
        "Com1",
        "lpt9.log",
        "x.",
        "x ",
        ".x",
        "",
    ] {
        assert!(check_name(name).is_err(), "{name:?} accepted");
    }
    assert!(check_name(&"x".repeat(MAX_NAME)).is_ok());
    assert!(check_name(&"x".repeat(MAX_NAME + 1)).is_err());
    for name in ["a b", "CONSOLE", "com", "COM10", "x.tar.gz", "é"] {
        assert!(check_name(name).is_ok(), "{name:?} refused");
    }
}

/// Numbers are digits only, up to 2^64 - 1.
#[test]
fn numbers_are_digits_only() {
    let get = |text: &str| parse_request(text.as_bytes());
    assert_eq!(
        get("GET 18446744073709551615 a"),
        Ok(Request::Get {
            name: "a".into(),
            offset: u64::MAX
        })
    );
    for bad in [
        "GET 18446744073709551616 a",
        "GET -1 a",
        "GET +1 a",
        "GET  a",
        "GET 1e3 a",
    ] {
        assert_eq!(get(bad).unwrap_err().code, Code::BadRequest, "{bad}");
    }
}
