//! Property tests of the key-value server's RESP parser (`examples/kv_server/resp.rs`, included
//! as is): no input panics it, requests come out the same whatever pieces they arrive in, and
//! no declared length or count makes it allocate more than the bytes that arrived justify —
//! counted by a global allocator that tracks the live bytes of the thread that asks — and a
//! request refused for its size is read to its end, holding nothing, before its error comes.

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
    max_discard: 5000,
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
            max_discard: usize::MAX,
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

// --- Requests refused for their size: read to their end, then the error ---------------------

/// What feeding an input piece by piece gave.
#[derive(Debug, Default)]
struct Fed {
    decoded: Decoded,
    /// The bytes fed when the error came, and whether it came from `decode_eof`.
    fed_at_error: Option<usize>,
    at_eof: bool,
    /// The most bytes left undecoded after a piece, and the codec's and its batches' largest
    /// memory.
    most_undecoded: usize,
    most_memory: usize,
    /// The bytes fed when all were decoded, before the error (a connection does not call
    /// `decode_eof` when none are left).
    none_left_at: Vec<usize>,
}

/// Feeds `input` in pieces of `size` bytes as a connection does (append, decode while it
/// gives batches, drop what they used), then end of file if bytes are left; checks each
/// count.
fn feed(limits: RespLimits, input: &[u8], size: usize) -> Fed {
    let mut codec = RespCodec::new(limits);
    let (mut fed, mut buf, mut given) = (Fed::default(), Vec::new(), 0);
    for piece in input.chunks(size.max(1)) {
        buf.extend_from_slice(piece);
        given += piece.len();
        while let Some((batch, used)) = codec.decode(&buf).expect("decode never fails") {
            assert!(
                used > 0 && used <= buf.len(),
                "used {used} of {}",
                buf.len()
            );
            fed.most_memory = fed.most_memory.max(batch.memory());
            collect(&batch, &mut fed.decoded);
            buf.drain(..used);
            if batch.error.is_some() {
                assert!(fed.fed_at_error.is_none(), "two errors");
                fed.fed_at_error = Some(given);
            }
        }
        fed.most_memory = fed.most_memory.max(codec.memory());
        fed.most_undecoded = fed.most_undecoded.max(buf.len());
        if fed.fed_at_error.is_none() && buf.is_empty() {
            fed.none_left_at.push(given);
        }
    }
    while !buf.is_empty() {
        match codec.decode_eof(&buf).expect("decode_eof never fails") {
            Some((batch, used)) => {
                assert!(used <= buf.len(), "used {used} of {}", buf.len());
                collect(&batch, &mut fed.decoded);
                if batch.error.is_some() && fed.fed_at_error.is_none() {
                    (fed.fed_at_error, fed.at_eof) = (Some(input.len()), true);
                }
                match used {
                    0 => buf.clear(),
                    _ => _ = buf.drain(..used),
                }
            }
            None => break,
        }
    }
    fed
}

/// The piece sizes tried: one byte, odd ones, and all at once.
const SIZES: &[usize] = &[1, 2, 3, 5, 7, 13, 64, 101, 257, usize::MAX];

/// A multibulk request of these arguments.
fn request(args: &[&[u8]]) -> Vec<u8> {
    resp_request(args)
}

fn cmds(list: &[&[&str]]) -> Vec<Vec<Vec<u8>>> {
    let cmd = |args: &&[&str]| args.iter().map(|a| a.as_bytes().to_vec()).collect();
    list.iter().map(cmd).collect()
}

/// A bulk over `max_bulk` in the middle of a request: the rest of it and the arguments after
/// it are dropped, and the error comes with the request's last byte, after the requests
/// before it, whatever pieces it arrives in; nothing after it is decoded.
#[test]
fn a_bulk_over_the_limit_is_read_to_the_end_of_its_request() {
    let mut input = b"PING\r\n".to_vec();
    input.extend(request(&[b"ECHO", b"hi"]));
    let refused = request(&[b"SET", &[b'v'; 300], b"x"]);
    let header_end = input.len() + 21; // `*3 $3 SET $300`
    input.extend(&refused);
    let end = input.len();
    input.extend(b"PING\r\n"); // after the error: never decoded
    for &size in SIZES {
        let fed = feed(LIMITS, &input, size);
        let size = size.min(input.len());
        assert_eq!(
            fed.decoded.0,
            cmds(&[&["PING"], &["ECHO", "hi"]]),
            "size {size}"
        );
        assert_eq!(
            fed.decoded.1,
            Some(ProtocolError::InvalidBulkLength),
            "size {size}"
        );
        // The error comes with the piece that holds the request's last byte.
        let at = fed.fed_at_error.expect("an error");
        assert!(
            at >= end && at < end + size,
            "size {size}: error at {at}, end {end}"
        );
        assert!(!fed.at_eof);
        let none_left = fed.none_left_at.iter().find(|&&at| at >= header_end);
        assert_eq!(none_left, None, "size {size}: all decoded before the end");
        // Some bytes of an unfinished header and the last byte: nothing piles up.
        assert!(fed.most_undecoded <= size.max(70), "size {size}: {fed:?}");
    }
}

/// The counts, exactly: what is dropped is consumed with an empty batch, but the last byte
/// received; the requests before come at once; the error comes with the last byte, all the
/// bytes given consumed.
#[test]
fn dropped_bytes_are_consumed_with_empty_batches() {
    let mut codec = RespCodec::new(LIMITS);
    let mut input = b"PING\r\n*3\r\n$3\r\nSET\r\n$300\r\n".to_vec();
    let (batch, used) = codec.decode(&input).unwrap().expect("PING");
    assert_eq!(batch.len(), 1);
    assert_eq!(batch.error, None);
    assert_eq!(used, input.len() - 1, "all but the header's last byte");
    input.drain(..used);
    assert!(
        codec.decode(&input).unwrap().is_none(),
        "one byte: nothing to use"
    );
    input.extend([b'v'; 100]);
    let (batch, used) = codec.decode(&input).unwrap().expect("dropped bytes");
    assert!(batch.is_empty() && batch.error.is_none());
    assert_eq!(batch.memory(), 0);
    assert_eq!((used, codec.memory()), (100, 0));
    input.drain(..used);
    input.extend([b'v'; 200]);
    input.extend(b"\r\n$1"); // the last bulk's header, incomplete
    let (batch, used) = codec.decode(&input).unwrap().expect("dropped bytes");
    assert!(batch.is_empty() && batch.error.is_none());
    assert_eq!(
        used,
        201 + 2,
        "the bulk, its CRLF; its first byte was left last time"
    );
    input.drain(..used);
    assert_eq!(input, b"$1");
    assert!(
        codec.decode(&input).unwrap().is_none(),
        "a header's start waits"
    );
    input.extend(b"\r\nx\r");
    let (batch, used) = codec.decode(&input).unwrap().expect("dropped bytes");
    assert!(batch.error.is_none(), "one byte is still to come");
    assert_eq!(
        used, 5,
        "all but the last byte (`x\\r` of `x\\r\\n` dropped)"
    );
    input.drain(..used);
    input.extend(b"\nPING\r\n");
    let (batch, used) = codec.decode(&input).unwrap().expect("the error");
    assert!(batch.is_empty());
    assert_eq!(batch.error, Some(ProtocolError::InvalidBulkLength));
    assert_eq!(used, input.len(), "nothing after the error is decoded");
    assert!(codec.decode(b"PING\r\n").unwrap().is_none());
}

/// A request passing `max_request` is dropped to its end as well, its error `too big request`.
#[test]
fn a_request_over_max_request_is_read_to_its_end() {
    let value = [b'v'; 200];
    // 5 values of 200 pass 1000 bytes at the fifth; the sixth argument is dropped too.
    let refused = request(&[b"MSET", &value, &value, &value, &value, &value, b"x"]);
    let mut input = request(&[b"PING"]);
    input.extend(&refused);
    for &size in SIZES {
        let fed = feed(LIMITS, &input, size);
        assert_eq!(fed.decoded.0, cmds(&[&["PING"]]), "size {size}");
        assert_eq!(
            fed.decoded.1,
            Some(ProtocolError::TooBigRequest),
            "size {size}"
        );
        // Once it passed `max_request`, bytes are left undecoded till the end.
        let passed = input.len() - refused.len() + 4 * 206 + 25;
        assert_eq!(fed.fed_at_error, Some(input.len()), "size {size}: {fed:?}");
        assert!(!fed.at_eof, "size {size}");
        let none_left = fed.none_left_at.iter().find(|&&at| at >= passed);
        assert_eq!(none_left, None, "size {size}: all decoded before the end");
    }
}

/// Over `max_discard` in all, declared so far, a refused request is refused at once: at the
/// header of the bulk refused, or at a later header that passes it, its bytes not yet sent.
#[test]
fn a_request_declaring_too_much_is_refused_at_once() {
    let limits = RespLimits {
        max_discard: 3000,
        ..LIMITS
    };
    let cases: &[(&[u8], ProtocolError)] = &[
        (b"*1\r\n$3000\r\n", ProtocolError::InvalidBulkLength),
        (
            b"*1\r\n$9223372036854775807\r\n",
            ProtocolError::InvalidBulkLength,
        ),
        // 4 + 10 + 2502 bytes, then a header and 480 + 2: 3004 declared, over 3000.
        (b"*2\r\n$2500\r\n", ProtocolError::InvalidBulkLength),
        // 5 + 208 per argument: over 1000 at the fifth, over 3000 at the 15th's header.
        (b"*20\r\n", ProtocolError::TooBigRequest),
    ];
    for (header, error) in cases {
        let mut input = header.to_vec();
        if input.starts_with(b"*2\r") {
            input.extend([b'v'; 2500]);
            input.extend(b"\r\n$480\r\n");
        }
        if input.starts_with(b"*20") {
            for _ in 0..14 {
                input.extend(b"$200\r\n");
                input.extend([b'v'; 200]);
                input.extend(b"\r\n");
            }
            input.extend(b"$200\r\n");
        }
        let mut codec = RespCodec::new(limits);
        let mut used_all = 0;
        let mut got = None;
        while let Some((batch, used)) = codec.decode(&input[used_all..]).unwrap() {
            used_all += used;
            if batch.error.is_some() {
                got = batch.error;
                break;
            }
        }
        let text = String::from_utf8_lossy(header);
        assert_eq!(got, Some(*error), "{text}");
        assert_eq!(used_all, input.len(), "{text}");
    }
}

/// A malformed header met while dropping: its own error, at once, as the parser gives it.
#[test]
fn a_malformed_header_while_dropping_is_refused_at_once() {
    let cases: &[(&[u8], ProtocolError)] = &[
        (b":5\r\n", ProtocolError::ExpectedDollar(b':')),
        (b"\r\n", ProtocolError::ExpectedDollar(b'\r')),
        (b"$-5\r\n", ProtocolError::InvalidBulkLength),
        (b"$x\r\n", ProtocolError::InvalidBulkLength),
        (b"$04\r\n", ProtocolError::InvalidBulkLength),
        (
            b"$99999999999999999999\r\n",
            ProtocolError::InvalidBulkLength,
        ),
        (&[b'$'; 70], ProtocolError::TooBigBulkCount),
    ];
    for (header, error) in cases {
        let mut input = b"*3\r\n$300\r\n".to_vec();
        input.extend([b'v'; 300]);
        input.extend(b"\r\n");
        input.extend(*header);
        let text = String::from_utf8_lossy(header);
        for &size in SIZES {
            let fed = feed(LIMITS, &input, size);
            assert_eq!(fed.decoded.1, Some(*error), "{text}, size {size}");
            // At once: with the piece that completes the header (or its 65th byte, for a
            // header too long), not at end of file.
            assert!(!fed.at_eof, "{text}, size {size}: {fed:?}");
        }
        // No end of file needed: the error comes from `decode`.
        let mut codec = RespCodec::new(LIMITS);
        let (first, used) = codec.decode(&input).unwrap().expect("dropped");
        let got = match first.error {
            Some(e) => Some(e),
            None => codec
                .decode(&input[used..])
                .unwrap()
                .and_then(|(b, _)| b.error),
        };
        assert_eq!(got, Some(*error), "{text}");
    }
}

/// An invalid length (negative, not a number) is refused at once, as Redis does, even if the
/// bytes after it would make a request.
#[test]
fn invalid_lengths_are_refused_at_once() {
    for input in [
        &b"*1\r\n$-5\r\n"[..],
        b"*1\r\n$x\r\n",
        b"*2\r\n$3\r\nGET\r\n$-1\r\nPING\r\n",
        b"*1\r\n$1x\r\nPING\r\n",
    ] {
        let mut codec = RespCodec::new(LIMITS);
        let (batch, used) = codec.decode(input).unwrap().expect("the error");
        assert_eq!(batch.error, Some(ProtocolError::InvalidBulkLength));
        assert_eq!((batch.len(), used), (0, input.len()));
    }
}

/// Dropping a request of 100 MB declared (10 MB of it sent, in 64 KiB reads) holds nothing:
/// the codec's memory and its batches' stay at 0, and the bytes left undecoded at 1.
#[test]
fn dropping_holds_no_memory() {
    let limits = RespLimits {
        max_discard: 1 << 30,
        ..LIMITS
    };
    let mut input = b"*2\r\n$3\r\nSET\r\n$100000000\r\n".to_vec();
    input.extend(vec![b'v'; 10 << 20]);
    let fed = feed(limits, &input, 64 << 10);
    // The first batch held SET a moment (72 bytes); the others are empty: no capacity.
    assert!(fed.most_memory <= 128, "{fed:?}");
    assert!(fed.most_undecoded <= 1, "{fed:?}");
    // At end of file, the error.
    assert_eq!(fed.decoded.1, Some(ProtocolError::InvalidBulkLength));
    assert_eq!(fed.fed_at_error, Some(input.len()));
    assert!(fed.at_eof);
}

/// At end of file in the middle of a dropped request, the error goes out (after the requests
/// before it): the client half-closed. Wherever the input stops, a byte is left for
/// `decode_eof` to be called with.
#[test]
fn end_of_file_while_dropping_gives_the_error() {
    let mut full = b"PING\r\n".to_vec();
    full.extend(request(&[b"SET", &[b'v'; 300], b"xyz"]));
    // Every place the request could stop at, from just after the refused header (at 24).
    let header_end = full.windows(6).position(|w| w == b"$300\r\n").unwrap() + 6;
    for stop in header_end..full.len() {
        for size in [1, 7, usize::MAX] {
            let fed = feed(LIMITS, &full[..stop], size);
            assert_eq!(
                fed.decoded.0,
                cmds(&[&["PING"]]),
                "stop {stop}, size {size}"
            );
            assert_eq!(
                fed.decoded.1,
                Some(ProtocolError::InvalidBulkLength),
                "stop {stop}, size {size}"
            );
        }
    }
    // A header cut short at the end: the error all the same.
    let mut codec = RespCodec::new(LIMITS);
    let mut input = b"*2\r\n$300\r\n".to_vec();
    input.extend([b'v'; 300]);
    input.extend(b"\r\n$1");
    let (_, used) = codec.decode(&input).unwrap().expect("dropped");
    let (batch, used_eof) = codec
        .decode_eof(&input[used..])
        .unwrap()
        .expect("the error");
    assert_eq!(batch.error, Some(ProtocolError::InvalidBulkLength));
    assert_eq!(used + used_eof, input.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A request with a bulk over the limit, other arguments around it, in any pieces: the
    /// requests before it, then its error once all of it is in, never before; nothing piles up.
    #[test]
    fn refused_requests_are_dropped_in_any_pieces(
        before in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 0..3),
        big in 201usize..3000,
        after in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 0..4),
        size in 1usize..600,
    ) {
        let mut input = request(&[b"PING"]);
        let big = vec![b'v'; big];
        let mut args: Vec<&[u8]> = before.iter().map(Vec::as_slice).collect();
        args.push(&big);
        args.extend(after.iter().map(Vec::as_slice));
        input.extend(request(&args));
        let fed = feed(LIMITS, &input, size);
        prop_assert_eq!(fed.decoded.0, cmds(&[&["PING"]]));
        prop_assert_eq!(fed.decoded.1, Some(ProtocolError::InvalidBulkLength));
        prop_assert_eq!(fed.fed_at_error, Some(input.len()));
        prop_assert!(!fed.at_eof);
        // From the refused bulk's header on, bytes are left undecoded till the end, and no
        // more than a piece (or a header and a byte).
        let refused_from = input.len() - request(&args).len();
        let none_left = fed.none_left_at.iter().find(|&&at| at > refused_from + 4);
        prop_assert_eq!(none_left, None);
        prop_assert!(fed.most_undecoded <= size.max(70) + 64);
    }
}
