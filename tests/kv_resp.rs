//! Property tests of the key-value server's RESP parser (`examples/kv_server/resp.rs`, included
//! as is): no input panics it, requests come out the same whatever pieces they arrive in, and
//! no declared length or count makes it allocate more than the bytes that arrived justify —
//! counted by a global allocator that tracks the live bytes of the thread that asks.

mod common;

#[path = "../examples/kv_server/resp.rs"]
#[allow(dead_code)]
mod resp;

use common::resp_request;
use proptest::prelude::*;
use resp::{Batch, ProtocolError, RespCodec, RespLimits};
use selectloop::Codec;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(grow: usize, shrink: usize) {
    let live = LIVE.with(|l| {
        let n = (l.get() + grow).saturating_sub(shrink);
        l.set(n);
        n
    });
    PEAK.with(|p| p.set(p.get().max(live)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are
// thread-local `Cell`s with const initialisers, which neither allocate nor re-enter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 0);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(0, layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size, layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Small limits, so that the generated inputs reach them.
const LIMITS: RespLimits = RespLimits {
    max_bulk: 200,
    max_args: 20,
    max_inline: 300,
    max_request: 1000,
};

/// What a run of the parser gave: each request's arguments, then the error if any.
type Decoded = (Vec<Vec<Vec<u8>>>, Option<ProtocolError>);

fn collect(batch: &Batch, out: &mut Decoded) {
    for cmd in batch.commands() {
        out.0.push(cmd.iter(0).map(<[u8]>::to_vec).collect());
    }
    if batch.error.is_some() {
        out.1 = batch.error;
    }
}

/// Feeds `input` to a codec in the pieces `cuts` makes (as a connection does: append, decode
/// every complete batch, drop what was used), then end of file.
fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> Decoded {
    let mut codec = RespCodec::new(LIMITS);
    let (mut buf, mut out) = (Vec::new(), Decoded::default());
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    let mut from = 0;
    for cut in cuts {
        buf.extend_from_slice(&input[from..cut]);
        from = cut;
        while let Some((batch, used)) = codec.decode(&buf).expect("decode never fails") {
            assert!(
                used > 0 && used <= buf.len(),
                "used {used} of {}",
                buf.len()
            );
            collect(&batch, &mut out);
            buf.drain(..used);
        }
    }
    while !buf.is_empty() {
        match codec.decode_eof(&buf).expect("decode_eof never fails") {
            Some((batch, used)) => {
                collect(&batch, &mut out);
                buf.drain(..used);
            }
            None => break,
        }
    }
    out
}

/// Requests: arrays of 1 to 5 arguments, or inline words (no quotes, no white space inside).
fn requests() -> impl Strategy<Value = Vec<(bool, Vec<Vec<u8>>)>> {
    let arg = proptest::collection::vec(any::<u8>(), 0..40);
    let word = "[a-zA-Z0-9:_-]{1,10}".prop_map(String::into_bytes);
    let request = prop_oneof![
        proptest::collection::vec(arg, 1..5).prop_map(|args| (true, args)),
        proptest::collection::vec(word, 1..5).prop_map(|args| (false, args)),
    ];
    proptest::collection::vec(request, 0..12)
}

/// Inputs that look like requests often enough to get far into the parser.
fn protocolish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"*".to_vec()),
        Just(b"$".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\\x4".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"3".to_vec()),
        Just(b"99999999999999999999".to_vec()),
        Just(b"PING".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes, in any pieces: requests and maybe an error, never a panic, never a codec
    /// that claims bytes it was not given.
    #[test]
    fn no_input_panics_the_parser(
        input in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        decode_in_pieces(&input, &cuts);
    }

    /// Whatever pieces it arrives in, an input gives the same requests and the same error as
    /// in one piece.
    #[test]
    fn pieces_decode_as_the_whole(
        input in protocolish(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        prop_assert_eq!(decode_in_pieces(&input, &cuts), decode_in_pieces(&input, &[]));
    }

    /// Valid requests come out as they went in, whole or in pieces.
    #[test]
    fn requests_round_trip(
        requests in requests(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut input = Vec::new();
        for (is_multibulk, args) in &requests {
            if *is_multibulk {
                input.extend(resp_request(&args.iter().map(Vec::as_slice).collect::<Vec<_>>()));
            } else {
                input.extend(args.join(&b' '));
                input.extend_from_slice(b"\r\n");
            }
        }
        let expected: Vec<Vec<Vec<u8>>> = requests.into_iter().map(|(_, args)| args).collect();
        let got = decode_in_pieces(&input, &cuts);
        prop_assert_eq!(got.1, None);
        prop_assert_eq!(got.0, expected);
    }

    /// A header declaring any bulk length or count, followed by a few bytes: the parser's
    /// memory stays within a small multiple of the bytes given, never near what is declared.
    #[test]
    fn no_declared_length_is_allocated(
        count in any::<u64>(),
        len in any::<u64>(),
        tail in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let limits = RespLimits {
            max_bulk: usize::MAX / 2,
            max_args: usize::MAX / 2,
            max_inline: 64 << 10,
            max_request: usize::MAX,
        };
        let mut input = format!("*{count}\r\n$3\r\nSET\r\n${len}\r\n").into_bytes();
        input.extend(tail);
        let mut codec = RespCodec::new(limits);
        let before = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(before));
        let decoded = codec.decode(&input).expect("decode never fails");
        let peak = PEAK.with(Cell::get) - before;
        let held = codec.memory() + decoded.as_ref().map_or(0, |(batch, _)| batch.memory());
        let bound = 8 * input.len() + 1024;
        prop_assert!(peak <= bound, "allocated {} bytes at the peak for {} bytes", peak, input.len());
        prop_assert!(held <= bound, "holds {} bytes for {} bytes", held, input.len());
    }
}

/// The errors, in Redis's words, for what Redis refuses (and the one limit Redis has not).
#[test]
fn protocol_errors_are_redis_s() {
    let cases: &[(&[u8], &str)] = &[
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*21\r\n", "invalid multibulk length"), // over max_args
        (b"*1\r\n$-5\r\n", "invalid bulk length"),
        (b"*1\r\n$201\r\n", "invalid bulk length"), // over max_bulk
        (b"*1\r\n$04\r\nPING\r\n", "invalid bulk length"),
        (b"*1\r\nxyz\r\n", "expected '$', got 'x'"),
        (b"*1\r\n\r\n", "expected '$', got ' '"),
        (b"GET \"unbalanced\r\n", "unbalanced quotes in request"),
        (b"ECHO \"a\"b\r\n", "unbalanced quotes in request"),
        (&[b'x'; 301], "too big inline request"),
        (&[b'*'; 70], "too big mbulk count string"),
        (b"*5\r\n$200\r\n", "too big request"), // fine alone, but 5 of them are over 1000
    ];
    for (input, expected) in cases {
        let mut input = input.to_vec();
        if input.ends_with(b"$200\r\n") {
            for _ in 0..4 {
                input.extend_from_slice(&[b'a'; 200]);
                input.extend_from_slice(b"\r\n$200\r\n");
            }
        }
        let error = decode_in_pieces(&input, &[]).1;
        let mut reply = Vec::new();
        error
            .unwrap_or_else(|| panic!("no error for {input:?}"))
            .write(&mut reply);
        let want = format!("-ERR Protocol error: {expected}\r\n");
        assert_eq!(
            String::from_utf8_lossy(&reply),
            want,
            "for {:?}",
            String::from_utf8_lossy(&input)
        );
    }
}

/// Inline requests are split as Redis splits them, quotes and escapes included.
#[test]
fn inline_requests_split_as_redis_does() {
    let input = b"  SET \"a b\" 'it\\'s' \"\\x41\\n\\q\"\r\n\r\nPING\n*0\r\n*-1\r\nPING\rX\n";
    let (requests, error) = decode_in_pieces(input, &[]);
    assert_eq!(error, None);
    let expected: Vec<Vec<&[u8]>> = vec![
        vec![b"SET", b"a b", b"it's", b"A\nq"],
        vec![b"PING"],
        vec![b"PING", b"X"],
    ];
    assert_eq!(requests, expected);
}

/// Requests before an error are delivered, and nothing after it.
#[test]
fn requests_before_an_error_come_first() {
    let input = b"PING\r\n*1\r\n$4\r\nECHO\r\n*x\r\nPING\r\n";
    let (requests, error) = decode_in_pieces(input, &[3, 17]);
    assert_eq!(
        requests,
        vec![vec![b"PING".to_vec()], vec![b"ECHO".to_vec()]]
    );
    assert_eq!(error, Some(ProtocolError::InvalidMultibulkLength));
}

/// An incomplete last request is dropped at end of file, after the complete ones.
#[test]
fn an_incomplete_last_request_is_dropped_at_eof() {
    let (requests, error) = decode_in_pieces(b"PING\r\n*2\r\n$3\r\nGET\r\n$5\r\nab", &[]);
    assert_eq!(requests, vec![vec![b"PING".to_vec()]]);
    assert_eq!(error, None);
}

/// Integers are parsed as Redis's `string2ll` does.
#[test]
fn integers_are_strict() {
    for (text, value) in [
        ("0", Some(0)),
        ("-1", Some(-1)),
        ("9223372036854775807", Some(i64::MAX)),
        ("-9223372036854775808", Some(i64::MIN)),
        ("9223372036854775808", None),
        ("-0", None),
        ("007", None),
        ("+7", None),
        (" 7", None),
        ("", None),
        ("-", None),
        ("1.5", None),
    ] {
        assert_eq!(resp::parse_i64(text.as_bytes()), value, "{text:?}");
    }
    let mut buf = [0; 20];
    assert_eq!(resp::itoa(i64::MIN, &mut buf), b"-9223372036854775808");
    assert_eq!(resp::itoa(0, &mut buf), b"0");
}

/// The reply sizes MGET and CONFIG GET check against the output limit before writing are
/// exactly what the encoders write (at each change in the number of digits, and around them).
#[test]
fn reply_sizes_are_what_is_written() {
    let mut lengths: Vec<usize> = (0..=200).collect();
    for digits in 2..=7 {
        let power = 10usize.pow(digits);
        lengths.extend([power - 1, power, power + 1]);
    }
    lengths.push(1 << 20);
    for len in lengths {
        let mut out = Vec::new();
        resp::bulk(&mut out, &vec![b'v'; len]);
        assert_eq!(resp::bulk_size(len), out.len(), "a bulk of {len} bytes");
        out.clear();
        resp::array(&mut out, len);
        assert_eq!(resp::array_size(len), out.len(), "an array of {len}");
    }
    let mut out = Vec::new();
    resp::null(&mut out);
    assert_eq!(resp::NULL_SIZE, out.len());
    for n in [u32::MAX as usize, i64::MAX as usize] {
        out.clear();
        resp::array(&mut out, n);
        assert_eq!(resp::array_size(n), out.len(), "an array of {n}");
    }
}
