//! Property tests: codecs and `Limits` with arbitrary values.
//!
//! - No panic: constructing a codec with any limit, encoding any frame, decoding any bytes.
//! - Encoding then decoding gives the frame back, or encoding refuses it and appends nothing.
//! - Decoding a stream split at random points gives the same frames, the same error (if any)
//!   and the same bytes left over as decoding it whole. The decode loop is the one
//!   `Connection` runs: append the next piece to a buffer, decode every complete frame, drop
//!   the bytes used, and keep the codec (and so its state, such as `LineCodec`'s search
//!   cursor) from one piece to the next.
//! - `Connection::with_limits` accepts exactly the consistent limits (the caps take any
//!   value), lowers a huge `read_chunk`, and a connection works with any limits it accepted.
//!
//! 256 cases per property (48 for the one that opens sockets) keep the file fast.

mod common;

use common::{run_until, socketpair};
use proptest::prelude::*;
use selectloop::LineCodec;
use selectloop::{Bytes, Codec, ConnEvent, Connection, DefaultSelector, LengthPrefixed, Limits};
use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::rc::Rc;

/// What decoding a stream produced: the frames, then the error that stopped it (its kind and
/// message) or the bytes left over, incomplete.
#[derive(Debug, PartialEq)]
struct Decoded {
    frames: Vec<Vec<u8>>,
    error: Option<(ErrorKind, String)>,
    left: Vec<u8>,
}

/// Decodes `input` delivered in pieces cut at `cuts`, as `Connection` drives a codec.
fn decode_pieces<C: for<'a> Codec<Incoming<'a> = &'a [u8]>>(
    mut codec: C,
    input: &[u8],
    cuts: &[usize],
) -> Decoded {
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
    bounds.push(input.len());
    bounds.sort_unstable();
    let (mut buf, mut frames, mut start) = (Vec::new(), Vec::new(), 0);
    for end in bounds {
        buf.extend_from_slice(&input[start..end]);
        start = end;
        loop {
            match codec.decode(&buf) {
                Ok(Some((frame, used))) => {
                    assert!(used > 0, "a frame that used no bytes: the loop would spin");
                    assert!(used <= buf.len(), "used {used} of {} bytes", buf.len());
                    frames.push(frame.to_vec());
                    buf.drain(..used);
                }
                Ok(None) => break,
                Err(e) => {
                    let error = Some((e.kind(), e.to_string()));
                    return Decoded {
                        frames,
                        error,
                        left: Vec::new(),
                    };
                }
            }
        }
    }
    Decoded {
        frames,
        error: None,
        left: buf,
    }
}

/// What decoding `input` with a line limit of `max` must give, written independently of the
/// codec: whole lines while they fit, then an error if a line cannot, else what is left.
fn reference_lines(input: &[u8], max: usize) -> Decoded {
    let (mut rest, mut frames) = (input, Vec::new());
    loop {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) if i <= max => {
                frames.push(rest[..i].to_vec());
                rest = &rest[i + 1..];
            }
            // No newline among the first `max + 1` bytes, and more than `max` arrived.
            _ if rest.len() > max => {
                let msg = format!(
                    "protocol error: line with no newline exceeds the limit of {max} bytes"
                );
                let error = Some((ErrorKind::InvalidData, msg));
                return Decoded {
                    frames,
                    error,
                    left: Vec::new(),
                };
            }
            _ => {
                return Decoded {
                    frames,
                    error: None,
                    left: rest.to_vec(),
                }
            }
        }
    }
}

/// What decoding `input` as length-prefixed frames of at most `max` bytes must give.
fn reference_length_prefixed(input: &[u8], max: usize) -> Decoded {
    let (mut rest, mut frames) = (input, Vec::new());
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as u64;
        if len > max.min(u32::MAX as usize) as u64 {
            let error = Some((ErrorKind::InvalidData, String::new())); // message not compared
            return Decoded {
                frames,
                error,
                left: Vec::new(),
            };
        }
        let Some(frame) = rest.get(4..4 + len as usize) else {
            break;
        };
        frames.push(frame.to_vec());
        rest = &rest[4 + len as usize..];
    }
    Decoded {
        frames,
        error: None,
        left: rest.to_vec(),
    }
}

/// Any limit, with the extremes and the small values (where frames hit it) likely.
fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(usize::MAX),
        Just(usize::MAX - 1),
        Just(u32::MAX as usize),
        Just((u32::MAX as usize).saturating_add(1)),
        0..64usize,
        any::<usize>(),
    ]
}

/// Bytes that make lines: mostly letters, with newlines and carriage returns.
fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![6 => Just(b'a'), 2 => Just(b'\n'), 1 => Just(b'\r'), 1 => any::<u8>()];
    prop::collection::vec(byte, 0..300)
}

/// A stream of length-prefixed frames (headers honest about lengths up to 80), possibly
/// followed by arbitrary bytes (an incomplete frame, or a header announcing anything).
fn length_prefixed_stream() -> impl Strategy<Value = Vec<u8>> {
    let frames = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..8);
    let tail = prop::collection::vec(any::<u8>(), 0..12);
    (frames, tail).prop_map(|(frames, tail)| {
        let mut out = Vec::new();
        for frame in frames {
            out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            out.extend_from_slice(&frame);
        }
        out.extend_from_slice(&tail);
        out
    })
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<usize>(), 0..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn line_codec_decodes_the_same_whatever_the_pieces(
        max in limit(), input in line_bytes(), cuts in cuts(),
    ) {
        let whole = decode_pieces(LineCodec::new(max), &input, &[]);
        let split = decode_pieces(LineCodec::new(max), &input, &cuts);
        prop_assert_eq!(&split, &whole);
        // And what came out is right.
        prop_assert_eq!(&whole, &reference_lines(&input, max));
    }

    #[test]
    fn length_prefixed_decodes_the_same_whatever_the_pieces(
        max in limit(),
        input in prop_oneof![length_prefixed_stream(), prop::collection::vec(any::<u8>(), 0..64)],
        cuts in cuts(),
    ) {
        let whole = decode_pieces(LengthPrefixed::new(max), &input, &[]);
        let split = decode_pieces(LengthPrefixed::new(max), &input, &cuts);
        prop_assert_eq!(&split, &whole);
        // And what came out is right (the error's message aside).
        let mut whole = whole;
        if let Some((_, msg)) = &mut whole.error {
            msg.clear();
        }
        prop_assert_eq!(&whole, &reference_length_prefixed(&input, max));
    }

    // `Bytes` has no frames to keep: each read is a frame, so the pieces differ with the
    // splits. What must not differ: the bytes, in order, none lost or repeated, no empty
    // frame, no error, nothing left over.
    #[test]
    fn bytes_deliver_the_same_bytes_whatever_the_pieces(
        input in prop::collection::vec(any::<u8>(), 0..300), cuts in cuts(),
    ) {
        let split = decode_pieces(Bytes, &input, &cuts);
        prop_assert_eq!(split.error, None);
        prop_assert!(split.left.is_empty());
        prop_assert!(split.frames.iter().all(|f| !f.is_empty()));
        prop_assert_eq!(split.frames.concat(), input);
    }

    #[test]
    fn line_codec_encodes_what_it_decodes_or_refuses_it(
        max in limit(), line in line_bytes(),
    ) {
        let mut codec = LineCodec::new(max);
        let mut out = b"before".to_vec();
        match codec.encode(&line, &mut out) {
            Ok(()) => {
                prop_assert!(line.len() <= max && !line.contains(&b'\n'));
                let decoded = LineCodec::new(max).decode(&out[6..]).expect("decodes");
                prop_assert_eq!(decoded, Some((&line[..], line.len() + 1)));
            }
            Err(e) => {
                prop_assert!(line.len() > max || line.contains(&b'\n'), "{}", e);
                let kind = if line.len() > max {
                    ErrorKind::InvalidData
                } else {
                    ErrorKind::InvalidInput
                };
                prop_assert_eq!(e.kind(), kind);
                prop_assert_eq!(&out, b"before", "a refused line was partly written");
            }
        }
        prop_assert_eq!(codec.max_len(), max);
    }

    #[test]
    fn length_prefixed_encodes_what_it_decodes_or_refuses_it(
        max in limit(), frame in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let mut codec = LengthPrefixed::new(max);
        prop_assert_eq!(codec.max_len(), max.min(u32::MAX as usize));
        let mut out = b"before".to_vec();
        match codec.encode(&frame, &mut out) {
            Ok(()) => {
                prop_assert!(frame.len() <= max);
                let decoded = LengthPrefixed::new(max).decode(&out[6..]).expect("decodes");
                prop_assert_eq!(decoded, Some((&frame[..], frame.len() + 4)));
            }
            Err(e) => {
                prop_assert!(frame.len() > max);
                prop_assert_eq!(e.kind(), ErrorKind::InvalidData);
                prop_assert_eq!(&out, b"before", "a refused frame was partly written");
            }
        }
    }
}

/// Any `Limits` field: extremes, small values, anything.
fn limit_field() -> impl Strategy<Value = usize> {
    // Weighted towards the small values: each huge `read_chunk` allocates (and, in a debug
    // build, slowly zeroes) 16 MiB.
    prop_oneof![
        1 => Just(0),
        1 => Just(1),
        1 => Just(usize::MAX),
        1 => Just(Limits::MAX_READ_CHUNK),
        1 => Just(Limits::MAX_READ_CHUNK + 1),
        4 => 0..(1usize << 20),
        1 => any::<usize>(),
    ]
}

proptest! {
    // Each case opens a socket pair and a selector, and sends a line round.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn with_limits_accepts_exactly_the_consistent_limits(
        high_water in limit_field(), low_water in limit_field(), read_chunk in limit_field(),
        hard_cap in limit_field(), soft_cap in limit_field(), soft_cap_ms in 0u64..1000,
    ) {
        // The caps accept every value: a line round trip never queues anything for long.
        let soft_cap_for = std::time::Duration::from_millis(soft_cap_ms);
        let limits = Limits { high_water, low_water, read_chunk, hard_cap, soft_cap, soft_cap_for };
        let (a, mut peer) = socketpair().expect("socket pair");
        let result = Connection::new(a, LineCodec::new(64)).with_limits(limits);
        let conn = match result {
            Err(e) => {
                prop_assert!(low_water > high_water || read_chunk == 0, "{:?}: {}", limits, e);
                prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
                prop_assert!(e.to_string().contains("Connection::with_limits"), "{}", e);
                return Ok(());
            }
            Ok(conn) => conn,
        };
        prop_assert!(low_water <= high_water && read_chunk > 0);
        let lowered = Limits { read_chunk: read_chunk.min(Limits::MAX_READ_CHUNK), ..limits };
        prop_assert_eq!(conn.limits(), lowered);
        // The connection works with them: a line goes round.
        let mut sel = DefaultSelector::new().expect("selector");
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        conn.register(&mut sel, move |_, conn, event| {
            if let ConnEvent::Frame(line) = event {
                conn.send_frame(line)?;
                g.borrow_mut().push(line.to_vec());
            }
            Ok(())
        })
        .expect("register");
        peer.write_all(b"ping\n").expect("write");
        run_until(&mut sel, "the line", || !got.borrow().is_empty()).expect("run");
        let mut echo = [0u8; 5];
        peer.read_exact(&mut echo).expect("echo");
        prop_assert_eq!(&echo, b"ping\n");
    }
}

#[test]
fn the_decode_model_sees_a_split_that_loses_state() {
    // The model above must be able to fail: a codec that forgets how far it searched after
    // every call, but trusts a cursor anyway, decodes differently in pieces.
    struct Forgetful {
        scanned: usize,
    }
    impl Codec for Forgetful {
        type Incoming<'a> = &'a [u8];
        type Outgoing = [u8];
        fn decode<'a>(&mut self, buf: &'a [u8]) -> io::Result<Option<(&'a [u8], usize)>> {
            let start = self.scanned.min(buf.len());
            // The bug: the cursor also moves on a frame, past bytes that are dropped.
            match buf[start..].iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.scanned = start + i + 1;
                    Ok(Some((&buf[..start + i], start + i + 1)))
                }
                None => {
                    self.scanned = buf.len();
                    Ok(None)
                }
            }
        }
        fn encode(&mut self, _: &[u8], _: &mut Vec<u8>) -> io::Result<()> {
            Ok(())
        }
    }
    let input = b"ab\ncd\nef\n";
    let whole = decode_pieces(Forgetful { scanned: 0 }, input, &[]);
    let split = decode_pieces(Forgetful { scanned: 0 }, input, &[4]);
    assert_ne!(whole, split);
    // And the real codec, on the same input and cut, agrees with itself.
    assert_eq!(
        decode_pieces(LineCodec::new(8), input, &[]),
        decode_pieces(LineCodec::new(8), input, &[4])
    );
}
