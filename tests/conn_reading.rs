//! A connection's reading side (`src/streams/read_buffer.rs`, and the codec it drives): frames
//! arrive whole whatever pieces the bytes come in, a codec's protocol errors close only that
//! connection, what a codec makes of the last bytes at end of file, reads only on a READ
//! report, and read buffers held only while a frame is incomplete — over real socket pairs.

mod common;

use common::conn::{connection, pattern, Seen, Watched};
use common::{expect_eof, logged, run_until, socketpair, Stream, TIMEOUT};
use selectloop::{
    Bytes, ConnEvent, Connection, DefaultSelector, LengthPrefixed, Limits, LineCodec, SelectorKey,
    EVENT_READ,
};
use std::cell::Cell;
use std::io::{self, ErrorKind, Read, Write};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

// --- Framing ------------------------------------------------------------------------------------

#[test]
fn frames_arrive_whole_whatever_the_pieces() -> io::Result<()> {
    let frames: Vec<&[u8]> = vec![b"one", b"", b"three\r", b"a longer fourth frame"];
    for length_prefixed in [false, true] {
        let mut sel = DefaultSelector::new()?;
        let (a, mut peer) = socketpair()?;
        let mut wire = Vec::new();
        let seen = if length_prefixed {
            let mut codec = LengthPrefixed::new(64);
            for f in &frames {
                selectloop::Codec::encode(&mut codec, f, &mut wire)?;
            }
            connection(&mut sel, a, codec, Limits::default(), false)?.1
        } else {
            let mut codec = LineCodec::new(64);
            for f in &frames {
                selectloop::Codec::encode(&mut codec, f, &mut wire)?;
            }
            connection(&mut sel, a, codec, Limits::default(), false)?.1
        };
        // First one byte per write, each read by the loop before the next is sent...
        for byte in &wire {
            peer.write_all(std::slice::from_ref(byte))?;
            sel.run_once(Some(Duration::ZERO))?;
        }
        // ...then all frames in one write.
        peer.write_all(&wire)?;
        let want = 2 * frames.len();
        run_until(&mut sel, "every frame", || seen.borrow().len() >= want)?;
        let expected: Vec<Seen> = frames
            .iter()
            .chain(&frames)
            .map(|f| Seen::Frame(f.to_vec()))
            .collect();
        assert_eq!(
            *seen.borrow(),
            expected,
            "length_prefixed: {length_prefixed}"
        );
    }
    Ok(())
}

#[test]
fn oversize_line_closes_only_that_connection() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (bad, mut bad_peer) = socketpair()?;
    let (good, mut good_peer) = socketpair()?;
    let (_, bad_seen) = connection(&mut sel, bad, LineCodec::new(16), Limits::default(), true)?;
    let (_, good_seen) = connection(&mut sel, good, LineCodec::new(16), Limits::default(), true)?;
    bad_peer.write_all(b"this line is far longer than sixteen bytes\n")?;
    run_until(&mut sel, "the protocol error", || {
        !bad_seen.borrow().is_empty()
    })?;
    assert_eq!(
        *bad_seen.borrow(),
        [Seen::Closed(Some(ErrorKind::InvalidData))]
    );
    assert!(
        logged(&[
            "WARN",
            "protocol error: line with no newline exceeds the limit of 16"
        ]),
        "the protocol error was not logged"
    );
    expect_eof(&mut bad_peer);
    good_peer.write_all(b"still fine\n")?;
    let mut echo = [0u8; 11];
    run_until(&mut sel, "the good connection's echo", || {
        !good_seen.borrow().is_empty()
    })?;
    good_peer.read_exact(&mut echo)?;
    assert_eq!(&echo, b"still fine\n");
    assert_eq!(sel.len(), 1);
    Ok(())
}

#[test]
fn oversize_frame_header_closes_the_connection() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (_, seen) = connection(
        &mut sel,
        a,
        LengthPrefixed::new(1024),
        Limits::default(),
        false,
    )?;
    peer.write_all(&(1u32 << 30).to_be_bytes())?; // announces 1 GiB: refused before buffering
    run_until(&mut sel, "the protocol error", || !seen.borrow().is_empty())?;
    assert_eq!(*seen.borrow(), [Seen::Closed(Some(ErrorKind::InvalidData))]);
    assert!(sel.is_empty());
    Ok(())
}

#[test]
fn a_codec_that_claims_more_bytes_than_it_was_given_closes_the_connection() -> io::Result<()> {
    struct Overclaiming;
    impl selectloop::Codec for Overclaiming {
        type Incoming<'a> = &'a [u8];
        type Outgoing = [u8];
        fn decode<'a>(&mut self, buf: &'a [u8]) -> io::Result<Option<(&'a [u8], usize)>> {
            Ok((!buf.is_empty()).then_some((buf, buf.len() + 1)))
        }
        fn encode(&mut self, frame: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
            out.extend_from_slice(frame);
            Ok(())
        }
    }
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (_, seen) = connection(&mut sel, a, Overclaiming, Limits::default(), false)?;
    peer.write_all(b"abc")?;
    run_until(&mut sel, "the close", || seen.borrow().len() >= 2)?;
    assert_eq!(
        *seen.borrow(),
        [
            Seen::Frame(b"abc".to_vec()),
            Seen::Closed(Some(ErrorKind::InvalidData))
        ]
    );
    assert!(logged(&["WARN", "used more bytes than it was given"]));
    Ok(())
}

// --- Reads --------------------------------------------------------------------------------------

#[test]
fn a_read_report_with_nothing_to_read_leaves_the_connection_open() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (key, seen) = connection(&mut sel, a, LineCodec::new(64), Limits::default(), true)?;
    sel.dispatch(&key, EVENT_READ)?; // as a spurious readiness report would: the read blocks
    assert_eq!(*seen.borrow(), [], "a spurious READ ended the connection");
    peer.write_all(b"still here\n")?;
    run_until(&mut sel, "the line", || !seen.borrow().is_empty())?;
    assert_eq!(*seen.borrow(), [Seen::Frame(b"still here".to_vec())]);
    Ok(())
}

#[test]
fn a_connection_reads_only_when_told_it_can() -> io::Result<()> {
    // 4 MiB out to a reader, nothing in: the many WRITE reports make no read call.
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let stream = Watched::new(a);
    let reads = stream.reads.clone();
    let key = Connection::new(stream, Bytes).register(&mut sel, |_, _, _| Ok(()))?;
    Connection::<Watched, Bytes>::with(&mut sel, &key, |conn| conn.send(&pattern(4 << 20)))??;
    let reader = thread::spawn(move || -> io::Result<Stream> {
        let mut got = vec![0u8; 4 << 20];
        peer.read_exact(&mut got)?;
        Ok(peer)
    });
    let deadline = Instant::now() + TIMEOUT;
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "the 4 MiB never arrived");
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    let mut peer = reader.join().expect("the reader")?;
    assert_eq!(reads.get(), 0, "read calls with nothing reported readable");
    // Then a byte in: one read.
    peer.write_all(b"x")?;
    run_until(&mut sel, "the read", || reads.get() > 0)?;
    Ok(())
}

// --- End of file --------------------------------------------------------------------------------

/// A codec whose `decode_eof` does what its function says with what is left at end of file:
/// for testing what the connection does with each answer. Its `decode` finds one frame, a
/// leading `<`, but only when asked a second time (the pass that meets the end of file), so
/// that the rest starts past a frame decoded in the same pass.
struct AtEof(Decoded, usize);

/// What a codec's `decode` or `decode_eof` returns.
type Decoded = fn(&[u8]) -> io::Result<Option<(&[u8], usize)>>;

impl selectloop::Codec for AtEof {
    type Incoming<'a> = &'a [u8];
    type Outgoing = [u8];
    fn decode<'a>(&mut self, buf: &'a [u8]) -> io::Result<Option<(&'a [u8], usize)>> {
        self.1 += 1;
        Ok((self.1 == 2 && buf.starts_with(b"<")).then_some((&buf[..1], 1)))
    }
    fn decode_eof<'a>(&mut self, buf: &'a [u8]) -> io::Result<Option<(&'a [u8], usize)>> {
        (self.0)(buf)
    }
    fn encode(&mut self, frame: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(frame);
        Ok(())
    }
}

/// The events of a connection with `codec` whose peer sends `<abc` then closes.
fn events_at_eof(codec: AtEof) -> io::Result<Vec<Seen>> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (_, seen) = connection(&mut sel, a, codec, Limits::default(), false)?;
    peer.write_all(b"<abc")?;
    peer.shutdown(std::net::Shutdown::Write)?;
    run_until(&mut sel, "the close", || {
        matches!(seen.borrow().last(), Some(Seen::Closed(_)))
    })?;
    Ok(seen.take())
}

#[test]
fn what_a_codec_makes_of_the_last_bytes_at_end_of_file() -> io::Result<()> {
    // Several frames out of the rest, one byte each: all of them, in order.
    let one_byte = AtEof(|buf| Ok(Some((&buf[..1], 1))), 0);
    assert_eq!(
        events_at_eof(one_byte)?,
        [
            Seen::Frame(b"<".to_vec()),
            Seen::Frame(b"a".to_vec()),
            Seen::Frame(b"b".to_vec()),
            Seen::Frame(b"c".to_vec()),
            Seen::PeerClosed,
            Seen::Closed(None)
        ]
    );
    // A frame that uses no bytes: delivered once, not asked for again and again.
    let empty = AtEof(|_| Ok(Some((b"x", 0))), 0);
    assert_eq!(
        events_at_eof(empty)?,
        [
            Seen::Frame(b"<".to_vec()),
            Seen::Frame(b"x".to_vec()),
            Seen::PeerClosed,
            Seen::Closed(None)
        ]
    );
    // No frame: the bytes are dropped, said at debug level.
    let none = AtEof(|_| Ok(None), 0);
    assert_eq!(
        events_at_eof(none)?,
        [
            Seen::Frame(b"<".to_vec()),
            Seen::PeerClosed,
            Seen::Closed(None)
        ]
    );
    assert!(logged(&[
        "DEBUG",
        "the codec dropped 3 bytes at end of file"
    ]));
    // More bytes claimed than there are: a protocol error, not a panic.
    let overclaiming = AtEof(|buf| Ok(Some((buf, buf.len() + 1))), 0);
    assert_eq!(
        events_at_eof(overclaiming)?,
        [
            Seen::Frame(b"<".to_vec()),
            Seen::Closed(Some(ErrorKind::InvalidData))
        ]
    );
    Ok(())
}

#[test]
fn a_last_line_without_newline_is_delivered_at_end_of_file() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (_, seen) = connection(&mut sel, a, LineCodec::new(64), Limits::default(), false)?;
    peer.write_all(b"one\nabc")?;
    peer.shutdown(std::net::Shutdown::Write)?;
    run_until(&mut sel, "the close", || seen.borrow().len() >= 4)?;
    let expected = [
        Seen::Frame(b"one".to_vec()),
        Seen::Frame(b"abc".to_vec()),
        Seen::PeerClosed,
        Seen::Closed(None),
    ];
    assert_eq!(*seen.borrow(), expected);
    Ok(())
}

#[test]
fn a_truncated_length_prefixed_frame_ends_with_unexpected_eof() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (_, seen) = connection(
        &mut sel,
        a,
        LengthPrefixed::new(64),
        Limits::default(),
        false,
    )?;
    peer.write_all(&[0, 0, 0, 2, b'o', b'k'])?; // a whole frame...
    peer.write_all(&[0, 0, 0, 10, b'a', b'b', b'c'])?; // ...and 3 bytes of a 10-byte one
    peer.shutdown(std::net::Shutdown::Write)?;
    run_until(&mut sel, "the close", || seen.borrow().len() >= 2)?;
    assert_eq!(
        *seen.borrow(),
        [
            Seen::Frame(b"ok".to_vec()),
            Seen::Closed(Some(ErrorKind::UnexpectedEof))
        ]
    );
    let what = "end of file in the middle of a frame (7 bytes of it received)";
    assert!(
        logged(&["WARN", what]),
        "the truncated frame was not logged"
    );
    assert!(sel.is_empty());
    Ok(())
}

// --- Memory -------------------------------------------------------------------------------------

/// What every connection of `keys` holds in buffers, read without touching the connections.
fn buffer_memory(sel: &mut DefaultSelector, keys: &[SelectorKey]) -> Vec<usize> {
    keys.iter()
        .map(|key| {
            let conn: &mut Connection<Stream, LineCodec> = sel.source_mut(key).expect("open");
            conn.buffer_memory()
        })
        .collect()
}

#[test]
fn idle_connections_hold_no_buffers_whatever_their_traffic() -> io::Result<()> {
    // 1,000 connections exchange a line each and go idle; 10 first exchange 2 MiB each,
    // with a line longer than a read, which is gathered in the connection's own buffer.
    const N: usize = 1000;
    const BUSY: usize = 10;
    let mut sel = DefaultSelector::new()?;
    let (mut keys, mut peers, mut seens) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..N {
        let (a, peer) = socketpair()?;
        let codec = LineCodec::new(4 << 20);
        let (key, seen) = connection(&mut sel, a, codec, Limits::default(), true)?;
        keys.push(key);
        peers.push(peer);
        seens.push(seen);
    }
    let mut heavy = vec![b'x'; 300 << 10]; // a line longer than a read chunk
    heavy.push(b'\n');
    heavy.extend_from_slice(&pattern(2 << 20).iter().map(|b| b | 1).collect::<Vec<_>>());
    heavy.push(b'\n');
    let readers: Vec<_> = peers
        .drain(..BUSY)
        .map(|mut peer| {
            let mut writer = peer.try_clone().expect("clone");
            let (heavy, sent) = (heavy.clone(), heavy.clone());
            let w = thread::spawn(move || writer.write_all(&sent));
            thread::spawn(move || -> io::Result<Stream> {
                let mut echo = vec![0u8; heavy.len()];
                peer.read_exact(&mut echo)?;
                assert!(echo == heavy, "the heavy echo changed");
                w.join().expect("writer")?;
                Ok(peer)
            })
        })
        .collect();
    let deadline = Instant::now() + TIMEOUT * 2;
    while readers.iter().any(|r| !r.is_finished()) {
        assert!(Instant::now() < deadline, "the heavy echoes took too long");
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    let mut busy = Vec::new();
    for reader in readers {
        busy.push(reader.join().expect("reader")?);
    }
    // Right after their long lines, before any other read: their buffers are gone already.
    let memory = buffer_memory(&mut sel, &keys[..BUSY]);
    assert!(
        memory.iter().all(|&m| m == 0),
        "after long lines: {memory:?}"
    );
    busy.append(&mut peers);
    let mut peers = busy; // in the order of `keys` again
    for peer in &mut peers {
        peer.write_all(b"hello\n")?;
    }
    let all_echoed = || {
        seens
            .iter()
            .all(|seen| seen.borrow().last() == Some(&Seen::Frame(b"hello".to_vec())))
    };
    run_until(&mut sel, "every echo", all_echoed)?;
    for peer in &mut peers {
        let mut echo = [0u8; 6];
        peer.read_exact(&mut echo)?;
        assert_eq!(&echo, b"hello\n");
    }
    let memory = buffer_memory(&mut sel, &keys);
    let holding: Vec<_> = memory.iter().enumerate().filter(|(_, &m)| m > 0).collect();
    assert!(
        holding.is_empty(),
        "idle connections hold buffers: {holding:?}"
    );

    // A connection with the start of a line holds exactly that, up to 4 KiB.
    for (i, peer) in peers.iter_mut().enumerate().take(20) {
        peer.write_all(&vec![b'y'; 1 + i * 200])?;
    }
    let started = |sel: &mut DefaultSelector| {
        let conns = buffer_memory(sel, &keys[..20]);
        conns.iter().enumerate().all(|(i, &m)| m == 1 + i * 200)
    };
    let deadline = Instant::now() + TIMEOUT;
    while !started(&mut sel) {
        let memory = buffer_memory(&mut sel, &keys[..20]);
        assert!(Instant::now() < deadline, "holding {memory:?}");
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    // The start of a line longer than the thread's shared buffer takes (10 KiB, in one read):
    // held in a buffer of its own, counted.
    peers[20].write_all(&[b'w'; 10 << 10])?;
    let deadline = Instant::now() + TIMEOUT;
    while buffer_memory(&mut sel, &keys[20..21]) != [10 << 10] {
        let memory = buffer_memory(&mut sel, &keys[20..21]);
        assert!(Instant::now() < deadline, "holding {memory:?} for 10 KiB");
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    // More of the same lines, read onto what is held: still exactly the bytes, not a read
    // buffer.
    for peer in peers.iter_mut().take(20) {
        peer.write_all(&[b'z'; 100])?;
    }
    let grown = |sel: &mut DefaultSelector| {
        let conns = buffer_memory(sel, &keys[..20]);
        conns.iter().enumerate().all(|(i, &m)| m == 101 + i * 200)
    };
    let deadline = Instant::now() + TIMEOUT;
    while !grown(&mut sel) {
        let memory = buffer_memory(&mut sel, &keys[..20]);
        assert!(Instant::now() < deadline, "holding {memory:?}");
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    Ok(())
}

#[test]
fn a_long_frame_lent_to_the_callback_counts_in_buffer_memory() -> io::Result<()> {
    // A 64 KiB frame in two pieces: the first half waits in the connection's own buffer, the
    // second is read into it, and the frame is lent from it to the callback, which must still
    // see that buffer's memory counted (the frame's bytes are in it).
    const LEN: usize = 64 << 10;
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let conn = Connection::new(a, LengthPrefixed::new(LEN));
    let key = conn.register(&mut sel, move |_, conn, event| {
        if let ConnEvent::Frame(frame) = event {
            s.set(Some((frame.len(), conn.buffer_memory())));
        }
        Ok(())
    })?;
    let data = pattern(LEN);
    peer.write_all(&(LEN as u32).to_be_bytes())?;
    peer.write_all(&data[..LEN / 2])?;
    let half = 4 + LEN / 2;
    let deadline = Instant::now() + TIMEOUT;
    while key.with(&mut sel, |conn| conn.buffered())? < half {
        assert!(Instant::now() < deadline, "the first half was never read");
        sel.run_once(Some(Duration::from_millis(10)))?;
    }
    peer.write_all(&data[LEN / 2..])?;
    run_until(&mut sel, "the frame", || seen.get().is_some())?;
    let (len, memory) = seen.get().expect("the frame");
    assert_eq!(len, LEN);
    assert!(
        memory >= LEN,
        "buffer_memory() was {memory} during the callback of a {LEN}-byte frame lent from the \
         connection's own buffer"
    );
    Ok(())
}
