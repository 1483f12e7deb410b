//! Buffered connections, by behaviour: writing and write interest, back-pressure and limits,
//! framing, end of file, closing (graceful, abort, resets), memory, output caps, drain
//! notification, timeouts, and the accessors — over real socket pairs.

mod common;

use common::{expect_eof, logged, run_until, socketpair, Stream, TIMEOUT};
use selectloop::{
    Bytes, ConnEvent, ConnKey, Connection, DefaultSelector, Events, LengthPrefixed, Limits,
    LineCodec, SelectorKey, Timeouts, EVENT_READ, EVENT_WRITE,
};
use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, Read, Write};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

/// What a connection's callback saw, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    Frame(Vec<u8>),
    Drained,
    PeerClosed,
    Closed(Option<ErrorKind>),
}

type Events_ = Rc<RefCell<Vec<Seen>>>;

impl From<ConnEvent<&[u8]>> for Seen {
    fn from(event: ConnEvent<&[u8]>) -> Seen {
        match event {
            ConnEvent::Frame(frame) => Seen::Frame(frame.to_vec()),
            ConnEvent::Drained => Seen::Drained,
            ConnEvent::PeerClosed => Seen::PeerClosed,
            ConnEvent::Closed(e) => Seen::Closed(e.map(|e| e.kind())),
            other => panic!("an event this test does not know: {other:?}"),
        }
    }
}

/// Registers `stream` as a connection with `codec` that records its events and, if `echo`,
/// sends every frame back.
fn connection<S, C>(
    sel: &mut DefaultSelector,
    stream: S,
    codec: C,
    limits: Limits,
    echo: bool,
) -> io::Result<(SelectorKey, Events_)>
where
    S: selectloop::ByteStream,
    C: for<'a> selectloop::Codec<Incoming<'a> = &'a [u8], Outgoing = [u8]>,
{
    timed_connection(sel, stream, codec, limits, Timeouts::default(), echo)
}

/// As [`connection`], with timeouts.
fn timed_connection<S, C>(
    sel: &mut DefaultSelector,
    stream: S,
    codec: C,
    limits: Limits,
    timeouts: Timeouts,
    echo: bool,
) -> io::Result<(SelectorKey, Events_)>
where
    S: selectloop::ByteStream,
    C: for<'a> selectloop::Codec<Incoming<'a> = &'a [u8], Outgoing = [u8]>,
{
    common::init_logging();
    let seen: Events_ = Rc::default();
    let log = seen.clone();
    let mut conn = Connection::new(stream, codec).with_limits(limits)?;
    if timeouts != Timeouts::default() {
        // Only then: each setting must work alone (a soft cap without timeouts arms a timer).
        conn = conn.with_timeouts(timeouts);
        assert_eq!(conn.timeouts(), timeouts);
    }
    let key = conn.register(sel, move |_, conn, event| {
        if let (true, ConnEvent::Frame(frame)) = (echo, &event) {
            conn.send_frame(frame)?;
        }
        log.borrow_mut().push(Seen::from(event));
        Ok(())
    })?;
    Ok((key.key(), seen))
}

fn events_of(sel: &DefaultSelector, key: &impl selectloop::FileObj) -> Option<Events> {
    sel.get_key(key).ok().map(|k| k.events())
}

/// A pattern that shows reordering or loss: byte i is a function of i.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

/// Reads from a blocking peer until end of file (or a reset), whatever data comes first:
/// what a connection that was closed with data on the way looks like.
#[track_caller]
fn read_to_eof_or_reset(peer: &mut Stream) {
    peer.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match peer.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!("expected end of file on the peer (its end was not closed): {e}"),
        }
    }
}

/// `Connection` keeps `Send` (its timer lives in its registration, not in it): a program may
/// build one on a thread and register it on another's selector.
#[test]
fn a_connection_is_send() {
    fn is_send<T: Send>() {}
    is_send::<Connection<Stream, LineCodec>>();
    is_send::<Connection<std::net::TcpStream, Bytes>>();
}

// --- Writing and write interest -----------------------------------------------------------------

#[test]
fn large_write_to_a_slow_reader_arrives_intact_then_write_interest_goes_off() -> io::Result<()> {
    const LEN: usize = 64 << 20;
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (key, seen) = connection(&mut sel, a, Bytes, Limits::default(), false)?;
    let data = pattern(LEN);
    let reader = thread::spawn(move || -> io::Result<bool> {
        let (mut got, mut buf) = (Vec::with_capacity(LEN), [0u8; 1024]); // small reads: slow
        while got.len() < LEN {
            match peer.read(&mut buf)? {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        Ok(got == pattern(LEN))
    });
    Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| conn.send(&data))??;
    // 64 MiB is over the high-water mark: WRITE on, and reading paused meanwhile.
    assert_eq!(
        events_of(&sel, &key),
        Some(EVENT_WRITE),
        "WRITE not on while queued"
    );
    let queued = |sel: &mut DefaultSelector| {
        Connection::<Stream, Bytes>::with(sel, &key, |conn| conn.queued()).expect("registered")
    };
    let deadline = std::time::Instant::now() + TIMEOUT * 3;
    while queued(&mut sel) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "64 MiB not written in time"
        );
        sel.run_once(Some(std::time::Duration::from_millis(50)))?;
    }
    assert!(
        reader.join().expect("reader panicked")?,
        "the data arrived changed"
    );
    // The queue fell to the low-water mark once: one `Drained` (perhaps still to come, if the
    // last `with` wrote the rest at once).
    run_until(&mut sel, "Drained", || !seen.borrow().is_empty())?;
    assert_eq!(
        events_of(&sel, &key),
        Some(EVENT_READ),
        "WRITE still on after draining"
    );
    assert_eq!(*seen.borrow(), [Seen::Drained]);
    let sent = Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| conn.bytes_sent())?;
    assert_eq!(sent, LEN as u64);
    Ok(())
}

/// A connection detached from one selector and registered in another must find its own
/// registration there, not the one that holds its old token (the first registration of each
/// fresh selector gets the same one): its write interest must follow what it has queued, or
/// a queue larger than the socket's buffer stalls.
#[test]
fn a_connection_moved_to_another_selector_follows_its_own_registration() -> io::Result<()> {
    const LEN: usize = 8 << 20;
    let mut first = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (key, seen) = connection(&mut first, a, LineCodec::new(64), Limits::default(), true)?;
    peer.write_all(b"one\n")?;
    run_until(&mut first, "the first line", || seen.borrow().len() == 1)?;
    let conn: Connection<Stream, LineCodec> = first.detach(&key)?;

    let mut second = DefaultSelector::new()?;
    let (other, _other_peer) = socketpair()?;
    let other_key = second.register(other, EVENT_WRITE, |_, _, _| Ok(()))?;
    let (data, sent) = (pattern(LEN), Rc::new(Cell::new(false)));
    let (d, s) = (data.clone(), sent.clone());
    let key = conn.register(&mut second, move |_, conn, event| match event {
        ConnEvent::Frame(_) => {
            s.set(true);
            conn.send(&d)
        }
        _ => Ok(()),
    })?;
    peer.write_all(b"two\n")?;
    run_until(&mut second, "the second line", || sent.get())?;
    // More is queued than the socket took (over the high-water mark: reading paused), and
    // the peer reads nothing yet.
    assert_eq!(events_of(&second, &key), Some(EVENT_WRITE));
    // The peer comes back with the bytes: closing it here would end the connection.
    let reader = thread::spawn(move || -> io::Result<(Vec<u8>, Stream)> {
        let mut got = Vec::with_capacity(4 + LEN);
        let mut buf = vec![0u8; 64 << 10];
        while got.len() < 4 + LEN {
            match peer.read(&mut buf)? {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        Ok((got, peer))
    });
    run_until(&mut second, "8 MiB from the moved connection", || {
        reader.is_finished()
    })?;
    let (got, _peer) = reader.join().expect("reader panicked")?;
    assert!(
        got[..4] == *b"one\n" && got[4..] == data[..],
        "the bytes arrived changed"
    );
    assert_eq!(
        events_of(&second, &key),
        Some(EVENT_READ),
        "write interest left on"
    );
    assert_eq!(events_of(&second, &other_key), Some(EVENT_WRITE));
    Ok(())
}

// --- Back-pressure and limits --------------------------------------------------------------------

#[test]
fn high_water_mark_stops_reading_from_a_peer_that_never_reads() -> io::Result<()> {
    const SENT: usize = 8 << 20;
    let limits = Limits {
        high_water: 256 << 10,
        low_water: 64 << 10,
        read_chunk: 16 << 10,
        ..Limits::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, peer) = socketpair()?;
    let (key, _seen) = connection(&mut sel, a, Bytes, limits, true)?; // an echo
    let mut writer_end = peer.try_clone()?;
    let writer = thread::spawn(move || writer_end.write_all(&pattern(SENT)));
    let queued = |sel: &mut DefaultSelector| {
        Connection::<Stream, Bytes>::with(sel, &key, |conn| conn.queued()).expect("registered")
    };
    // (paused?, received, sent), read without touching the connection.
    let state = |sel: &mut DefaultSelector| {
        let conn: &mut Connection<Stream, Bytes> = sel.source_mut(&key).expect("registered");
        (
            conn.is_reading_paused(),
            conn.bytes_received(),
            conn.bytes_sent(),
        )
    };
    // The peer writes but does not read: replies pile up until the connection stops reading.
    let deadline = Instant::now() + TIMEOUT;
    let mut peak = 0;
    while events_of(&sel, &key)
        .expect("registered")
        .contains(EVENT_READ)
    {
        assert!(
            Instant::now() < deadline,
            "reading never paused (queued {peak})"
        );
        sel.run_once(Some(Duration::from_millis(50)))?;
        peak = peak.max(queued(&mut sel));
    }
    // Paused: nothing more is read, so the queue cannot grow, however long we wait.
    for _ in 0..20 {
        sel.run_once(Some(Duration::from_millis(5)))?;
        peak = peak.max(queued(&mut sel));
        assert!(!events_of(&sel, &key)
            .expect("registered")
            .contains(EVENT_READ));
        assert!(
            state(&mut sel).0,
            "READ off, but is_reading_paused() says no"
        );
    }
    let bound = limits.high_water + limits.read_chunk;
    assert!(peak <= bound, "queued {peak} bytes, more than {bound}");
    // The peer starts reading: the queue drains, reading resumes, everything is echoed.
    let mut reader_end = peer;
    let reader = thread::spawn(move || -> io::Result<(bool, Stream)> {
        let mut got = vec![0u8; SENT];
        reader_end.read_exact(&mut got)?;
        Ok((got == pattern(SENT), reader_end)) // the peer stays open
    });
    let deadline = Instant::now() + TIMEOUT * 2;
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "the echo never completed");
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    let (intact, _peer) = reader.join().expect("reader panicked")?;
    assert!(intact, "echoed bytes changed");
    writer.join().expect("writer panicked")?;
    assert_eq!(
        events_of(&sel, &key),
        Some(EVENT_READ),
        "reading did not resume"
    );
    assert_eq!(state(&mut sel), (false, SENT as u64, SENT as u64));
    Ok(())
}

#[test]
fn contradictory_limits_are_refused_with_invalid_input() -> io::Result<()> {
    let cases = [
        (
            Limits {
                high_water: 10,
                low_water: 11,
                read_chunk: 1,
                ..Limits::default()
            },
            "low_water (11) is above high_water (10)",
        ),
        (
            Limits {
                high_water: 0,
                low_water: usize::MAX,
                read_chunk: 1,
                ..Limits::default()
            },
            "low_water",
        ),
        (
            Limits {
                read_chunk: 0,
                ..Limits::default()
            },
            "read_chunk of 0",
        ),
    ];
    for (limits, what) in cases {
        let (a, _peer) = socketpair()?;
        let err = Connection::new(a, Bytes).with_limits(limits).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{limits:?}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("Connection::with_limits") && msg.contains(what),
            "{limits:?}: {msg}"
        );
    }
    Ok(())
}

#[test]
fn extreme_limits_are_accepted_and_a_huge_read_chunk_is_lowered() -> io::Result<()> {
    for limits in [
        Limits {
            high_water: usize::MAX,
            low_water: usize::MAX,
            read_chunk: usize::MAX,
            ..Limits::default()
        },
        Limits {
            high_water: 0,
            low_water: 0,
            read_chunk: 1,
            ..Limits::default()
        },
        Limits {
            high_water: usize::MAX,
            low_water: 0,
            read_chunk: Limits::MAX_READ_CHUNK + 1,
            ..Limits::default()
        },
    ] {
        let (a, mut peer) = socketpair()?;
        let conn = Connection::new(a, LineCodec::new(usize::MAX)).with_limits(limits)?;
        let expected = Limits {
            read_chunk: limits.read_chunk.min(Limits::MAX_READ_CHUNK),
            ..limits
        };
        assert_eq!(conn.limits(), expected);
        // And the connection works with them: a line goes round.
        let mut sel = DefaultSelector::new()?;
        let seen: Events_ = Rc::default();
        let log = seen.clone();
        conn.register(&mut sel, move |_, conn, event| {
            if let ConnEvent::Frame(line) = event {
                conn.send_frame(line)?;
                log.borrow_mut().push(Seen::Frame(line.to_vec()));
            }
            Ok(())
        })?;
        peer.write_all(b"ping\n")?;
        run_until(&mut sel, "the line", || !seen.borrow().is_empty())?;
        let mut echo = [0u8; 5];
        peer.read_exact(&mut echo)?;
        assert_eq!(&echo, b"ping\n", "{limits:?}");
    }
    Ok(())
}

#[test]
fn high_water_of_usize_max_never_stops_reading() -> io::Result<()> {
    // With the default limits this peer, which writes and never reads, would be paused at
    // 1 MiB queued and its writes would block: here everything is read (and queued).
    const SENT: usize = 16 << 20; // more than the socket buffers hold, Wine's too
    let limits = Limits {
        high_water: usize::MAX,
        ..Limits::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, peer) = socketpair()?;
    let (key, seen) = connection(&mut sel, a, Bytes, limits, true)?; // an echo
    let mut writer_end = peer.try_clone()?;
    let writer = thread::spawn(move || writer_end.write_all(&pattern(SENT)));
    let received = || -> usize {
        let seen = seen.borrow();
        seen.iter()
            .map(|s| match s {
                Seen::Frame(f) => f.len(),
                _ => 0,
            })
            .sum()
    };
    let deadline = Instant::now() + TIMEOUT;
    while received() < SENT {
        assert!(Instant::now() < deadline, "read only {} bytes", received());
        assert!(
            events_of(&sel, &key)
                .expect("registered")
                .contains(EVENT_READ),
            "reading stopped"
        );
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    writer.join().expect("writer panicked")?;
    let queued = Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| conn.queued())
        .expect("registered");
    assert!(
        queued > Limits::default().high_water,
        "queued only {queued}"
    );
    drop(peer);
    Ok(())
}

#[test]
fn high_water_of_zero_reads_only_while_nothing_is_queued() -> io::Result<()> {
    const SENT: usize = 16 << 20; // more than the socket buffers hold, Wine's too
    let limits = Limits {
        high_water: 0,
        low_water: 0,
        read_chunk: 16 << 10,
        ..Limits::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, peer) = socketpair()?;
    let (key, _seen) = connection(&mut sel, a, Bytes, limits, true)?; // an echo
    let mut writer_end = peer.try_clone()?;
    let writer = thread::spawn(move || writer_end.write_all(&pattern(SENT)));
    // Both read at the same moment, between two iterations, without touching the connection
    // (`Connection::with` would flush first, and could empty the queue after reading it).
    let state = |sel: &mut DefaultSelector| {
        let conn: &mut Connection<Stream, Bytes> = sel.source_mut(&key).expect("registered");
        let queued = conn.queued();
        (queued, events_of(sel, &key).expect("registered"))
    };
    // The peer does not read yet: once the socket is full, the first reply that stays queued
    // stops reading.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (queued, events) = state(&mut sel);
        if !events.contains(EVENT_READ) {
            assert!(queued > 0, "paused with nothing queued");
            break;
        }
        assert_eq!(queued, 0, "reading on with {queued} bytes queued");
        assert!(Instant::now() < deadline, "reading never paused");
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    // The peer reads: the echo completes, reading only ever on with an empty queue.
    let mut reader_end = peer;
    let reader = thread::spawn(move || -> io::Result<(bool, Stream)> {
        let mut got = vec![0u8; SENT];
        reader_end.read_exact(&mut got)?;
        Ok((got == pattern(SENT), reader_end))
    });
    let deadline = Instant::now() + TIMEOUT * 2;
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "the echo never completed");
        sel.run_once(Some(Duration::from_millis(50)))?;
        let (queued, events) = state(&mut sel);
        assert!(
            queued == 0 || !events.contains(EVENT_READ),
            "reading on with {queued} bytes queued"
        );
    }
    let (intact, _peer) = reader.join().expect("reader panicked")?;
    assert!(intact, "echoed bytes changed");
    writer.join().expect("writer panicked")?;
    Ok(())
}

// --- Framing -------------------------------------------------------------------------------------

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

// --- Closing: graceful, abort, resets ------------------------------------------------------------

#[test]
fn close_flushes_then_the_peer_reads_eof() -> io::Result<()> {
    const LEN: usize = 4 << 20; // more than the socket buffers hold
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (key, seen) = connection(&mut sel, a, Bytes, Limits::default(), false)?;
    Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| -> io::Result<()> {
        conn.send(&pattern(LEN))?;
        conn.close();
        assert_eq!(
            conn.send(b"late").unwrap_err().kind(),
            ErrorKind::NotConnected
        );
        Ok(())
    })??;
    let reader = thread::spawn(move || -> io::Result<bool> {
        let mut got = Vec::new();
        peer.read_to_end(&mut got)?; // returns at EOF: after everything queued
        Ok(got == pattern(LEN))
    });
    run_until(&mut sel, "the close to complete", || {
        !seen.borrow().is_empty()
    })?;
    assert!(
        reader.join().expect("reader panicked")?,
        "data lost or changed before EOF"
    );
    assert_eq!(*seen.borrow(), [Seen::Closed(None)]);
    assert!(sel.is_empty());
    Ok(())
}

/// Closes a connection on `a`, whose socket has a second descriptor (as after `fork`, or a
/// clone kept elsewhere), and expects `peer` to read what was sent, then end of file: closing
/// the connection's descriptor does not end the stream, its `shutdown(SHUT_WR)` does.
fn close_half_closes_a_shared_socket<S>(a: S, mut peer: impl Read) -> io::Result<()>
where
    S: selectloop::ByteStream + 'static,
{
    let mut sel = DefaultSelector::new()?;
    let closed = Rc::new(Cell::new(false));
    let seen = closed.clone();
    let key = Connection::new(a, Bytes).register(&mut sel, move |_sel, _conn, event| {
        assert!(matches!(event, ConnEvent::Closed(None)), "{event:?}");
        seen.set(true);
        Ok(())
    })?;
    Connection::<S, Bytes>::with(&mut sel, &key, |conn| -> io::Result<()> {
        conn.send(b"bye")?;
        conn.close();
        Ok(())
    })??;
    run_until(&mut sel, "the close to complete", || closed.get())?;
    let mut got = Vec::new();
    peer.read_to_end(&mut got)?; // times out (an error) if the stream did not end
    assert_eq!(got, b"bye");
    Ok(())
}

#[test]
fn close_half_closes_a_socket_shared_with_another_descriptor() -> io::Result<()> {
    let (a, peer) = socketpair()?;
    let _shared = a.try_clone()?;
    peer.set_read_timeout(Some(TIMEOUT))?;
    close_half_closes_a_shared_socket(a, peer)?;

    let (a, peer) = common::tcp_pair()?;
    a.set_nonblocking(true)?;
    let _shared = a.try_clone()?;
    peer.set_read_timeout(Some(TIMEOUT))?;
    close_half_closes_a_shared_socket(a, peer)
}

/// A close with bytes from the peer still unread: they are read and dropped first. TCP
/// answers a close with unread input with a reset, which throws away what the kernel still
/// holds of the last reply for a peer that has not read it all yet.
#[test]
fn close_with_unread_input_still_delivers_the_last_reply() -> io::Result<()> {
    close_with_unread_input(true)
}

/// The same on a blocking socket (registered by mistake, or on purpose): only the bytes
/// already there are read, so the close never waits for the peer.
#[test]
fn close_with_unread_input_never_blocks_on_a_blocking_socket() -> io::Result<()> {
    close_with_unread_input(false)
}

fn close_with_unread_input(nonblocking: bool) -> io::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const LEN: usize = 4 << 20;
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = common::tcp_pair()?;
    a.set_nonblocking(nonblocking)?;
    let closed = Arc::new(AtomicBool::new(false));
    let c = closed.clone();
    let key = Connection::new(a, LineCodec::new(64)).register(&mut sel, move |_, _, event| {
        if let ConnEvent::Closed(_) = event {
            c.store(true, Ordering::SeqCst);
        }
        Ok(())
    })?;
    // Requests the server never reads (more than one read of the discarding takes): it
    // answers and closes before its next read.
    peer.write_all(&b"ignored\n".repeat(2000))?;
    // A slow reader: the reply's tail is still in the server's kernel buffers at the close.
    // After the end of file it keeps its socket open until the server has closed (at most
    // TIMEOUT): a close that waited for the peer to close first would wait that long.
    let c = closed.clone();
    let reader = thread::spawn(move || -> (Vec<u8>, io::Result<usize>, bool) {
        let mut got = Vec::new();
        let mut chunk = [0u8; 16 << 10];
        peer.set_read_timeout(Some(TIMEOUT)).unwrap();
        let end = loop {
            thread::sleep(Duration::from_micros(200)); // pacing, not synchronisation
            match peer.read(&mut chunk) {
                Ok(0) => break Ok(0),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) => break Err(e),
            }
        };
        let deadline = Instant::now() + TIMEOUT;
        while !c.load(Ordering::SeqCst) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1)); // a bounded wait for the server's close
        }
        (got, end, c.load(Ordering::SeqCst))
    });
    Connection::<std::net::TcpStream, LineCodec>::with(&mut sel, &key, |conn| {
        conn.send(&pattern(LEN))?;
        conn.close();
        io::Result::Ok(())
    })??;
    run_until(&mut sel, "the connection to close", || {
        closed.load(Ordering::SeqCst)
    })?;
    let (got, end, closed_first) = reader.join().expect("reader panicked");
    assert!(
        end.is_ok() && got.len() == LEN,
        "the peer read {} of {LEN} bytes, then {end:?}: the close reset the connection",
        got.len()
    );
    assert!(got == pattern(LEN), "the reply arrived changed");
    assert!(
        closed_first,
        "the server closed only after the peer did: its close waited for the peer"
    );
    Ok(())
}

#[test]
fn abort_closes_at_once() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (key, seen) = connection(&mut sel, a, Bytes, Limits::default(), false)?;
    Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| {
        conn.send(b"never sent")?;
        conn.abort();
        Ok::<_, io::Error>(conn.queued())
    })
    .and_then(|r| r)
    .map(|queued| assert_eq!(queued, 0))?;
    run_until(&mut sel, "the abort", || !seen.borrow().is_empty())?;
    assert_eq!(
        *seen.borrow(),
        [Seen::Closed(Some(ErrorKind::ConnectionAborted))]
    );
    expect_eof(&mut peer);
    Ok(())
}

#[test]
fn peer_half_close_is_reported_and_pending_writes_still_arrive() -> io::Result<()> {
    const LEN: usize = 2 << 20;
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let seen: Events_ = Rc::default();
    let log = seen.clone();
    Connection::new(a, LineCodec::new(64)).register(&mut sel, move |_, conn, event| {
        match event {
            // A request: answer with more than the socket buffers hold.
            ConnEvent::Frame(_) => conn.send(&pattern(LEN))?,
            ConnEvent::PeerClosed => {
                conn.send(b"bye")?; // the peer only half-closed: it still reads
                log.borrow_mut().push(Seen::PeerClosed);
            }
            ConnEvent::Closed(e) => log.borrow_mut().push(Seen::Closed(e.map(|e| e.kind()))),
            _ => {}
        }
        Ok(())
    })?;
    peer.write_all(b"send me a lot\n")?;
    peer.shutdown(std::net::Shutdown::Write)?; // half-close: no more requests, still reading
    let reader = thread::spawn(move || -> io::Result<bool> {
        let mut got = Vec::new();
        peer.read_to_end(&mut got)?;
        Ok(got.strip_suffix(b"bye") == Some(&pattern(LEN)[..]))
    });
    run_until(&mut sel, "the connection to close", || {
        seen.borrow().len() == 2
    })?;
    assert_eq!(*seen.borrow(), [Seen::PeerClosed, Seen::Closed(None)]);
    assert!(
        reader.join().expect("reader panicked")?,
        "the answer did not arrive whole"
    );
    Ok(())
}

/// A program streaming on `Drained` to a peer that half-closed after its request: the peer's
/// end of file must not end the connection while a `Drained` is owed, even when a flush
/// emptied the queue at once (a fast reader), or the stream is cut short.
#[test]
fn a_half_closed_peer_gets_a_whole_stream_sent_on_drained() -> io::Result<()> {
    const TOTAL: usize = 16 << 20;
    const CHUNK: usize = 16 << 10;
    // A queue small enough for one flush to write it all into the socket's buffer.
    let limits = Limits {
        high_water: 32 << 10,
        low_water: 8 << 10,
        ..Limits::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    peer.write_all(b"stream\n")?;
    peer.shutdown(std::net::Shutdown::Write)?;
    let reader = thread::spawn(move || -> io::Result<Vec<u8>> {
        let mut got = Vec::with_capacity(TOTAL);
        peer.read_to_end(&mut got)?;
        Ok(got)
    });
    let data = Rc::new(pattern(TOTAL));
    let handed = Rc::new(Cell::new(0));
    let seen: Events_ = Rc::default();
    let (log, h) = (seen.clone(), handed.clone());
    let conn = Connection::new(a, LineCodec::new(64)).with_limits(limits)?;
    conn.register(&mut sel, move |_, conn, event| {
        match event {
            ConnEvent::Frame(_) | ConnEvent::Drained => {
                while conn.queued() < limits.high_water && h.get() < TOTAL {
                    conn.send(&data[h.get()..h.get() + CHUNK])?;
                    h.set(h.get() + CHUNK);
                }
            }
            ConnEvent::PeerClosed => log.borrow_mut().push(Seen::PeerClosed),
            ConnEvent::Closed(e) => log.borrow_mut().push(Seen::Closed(e.map(|e| e.kind()))),
            _ => {}
        }
        Ok(())
    })?;
    run_until(&mut sel, "the connection to close", || {
        seen.borrow().contains(&Seen::Closed(None)) || seen.borrow().len() > 2
    })?;
    let got = reader.join().expect("reader panicked")?;
    assert_eq!(
        (handed.get(), got.len()),
        (TOTAL, TOTAL),
        "(bytes handed over, bytes received): the stream was cut short"
    );
    assert!(got == *pattern(TOTAL), "the bytes arrived changed");
    assert_eq!(*seen.borrow(), [Seen::PeerClosed, Seen::Closed(None)]);
    Ok(())
}

#[test]
fn peer_reset_mid_write_is_reported_once() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (key, seen) = connection(&mut sel, a, Bytes, Limits::default(), false)?;
    Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| conn.send(&pattern(8 << 20)))??;
    let mut some = [0u8; 1000];
    peer.read_exact(&mut some)?; // the transfer is under way...
    drop(peer); // ...and the peer goes away with unread data: a reset
    run_until(&mut sel, "the reset", || !seen.borrow().is_empty())?;
    for _ in 0..5 {
        sel.run_once(Some(Duration::from_millis(5)))?; // nothing more is reported
    }
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        matches!(
            seen[0],
            Seen::Closed(Some(
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ))
        ),
        "{seen:?}"
    );
    assert!(sel.is_empty(), "the registration was not removed");
    Ok(())
}

// Unix only: under Wine (the Windows leg of CI) a close with SO_LINGER 0 reaches the peer as
// an end of file, not a reset.
#[cfg(unix)]
#[test]
fn peer_reset_of_an_idle_connection_is_reported_as_a_reset() -> io::Result<()> {
    // Nothing queued: the reset is met by a read, which must end the connection with it (not
    // take it for a spurious wake-up, nor for an end of file).
    let mut sel = DefaultSelector::new()?;
    let (a, peer) = common::tcp_pair()?;
    a.set_nonblocking(true)?;
    let closed = Rc::new(RefCell::new(Vec::new()));
    let seen = closed.clone();
    Connection::new(a, Bytes).register(&mut sel, move |_, _, event| {
        seen.borrow_mut().push(format!("{event:?}"));
        Ok(())
    })?;
    socket2::SockRef::from(&peer).set_linger(Some(Duration::ZERO))?;
    drop(peer); // SO_LINGER 0: the peer's close sends a reset
    run_until(&mut sel, "the reset", || !closed.borrow().is_empty())?;
    let closed = closed.borrow();
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(
        closed[0].starts_with("Closed(Some(") && closed[0].contains("ConnectionReset"),
        "{closed:?}"
    );
    assert!(sel.is_empty());
    Ok(())
}

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

// --- End of file ---------------------------------------------------------------------------------

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

// --- Ending a connection whose peer does not read ------------------------------------------------

/// Queues more than the socket holds for a peer that never reads, and runs the loop until the
/// socket is full: the connection then waits for a WRITE readiness that never comes.
fn fill_a_peer_that_never_reads(sel: &mut DefaultSelector, key: &SelectorKey) -> io::Result<()> {
    Connection::<Stream, Bytes>::with(sel, key, |conn| conn.send(&pattern(16 << 20)))??;
    for _ in 0..3 {
        sel.run_once(Some(Duration::from_millis(5)))?;
    }
    assert_eq!(
        events_of(sel, key),
        Some(EVENT_WRITE),
        "not waiting to write"
    );
    Ok(())
}

#[test]
fn abort_ends_a_connection_whose_peer_never_reads_exactly_once() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (key, seen) = connection(&mut sel, a, Bytes, Limits::default(), false)?;
    fill_a_peer_that_never_reads(&mut sel, &key)?;
    Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| conn.abort())?;
    assert!(seen.borrow().is_empty(), "the callback ran inside `with`");
    sel.run_once(Some(Duration::ZERO))?; // this very iteration: not after a timeout
    for _ in 0..5 {
        sel.run_once(Some(Duration::from_millis(5)))?; // nothing more is reported
    }
    assert_eq!(
        *seen.borrow(),
        [Seen::Closed(Some(ErrorKind::ConnectionAborted))]
    );
    assert!(sel.is_empty(), "the registration was not removed");
    read_to_eof_or_reset(&mut peer); // what the socket took arrives, then the end
    Ok(())
}

// --- What the callback may still receive after each ending ---------------------------------------

/// What [`scripted`]'s callback does with frame number `n`: its sends, and how it ends things.
type OnFrame = Box<dyn FnMut(&mut Connection<Stream, LineCodec>, usize) -> io::Result<()>>;

/// Registers `stream` as a line connection whose callback records every event and runs
/// `on_frame` for each frame, numbered from 0 — as a server's callback does, with `?` on its
/// sends.
fn scripted(
    sel: &mut DefaultSelector,
    stream: Stream,
    limits: Limits,
    timeouts: Timeouts,
    mut on_frame: OnFrame,
) -> io::Result<(SelectorKey, Events_)> {
    common::init_logging();
    let seen: Events_ = Rc::default();
    let log = seen.clone();
    let conn = Connection::new(stream, LineCodec::new(64))
        .with_limits(limits)?
        .with_timeouts(timeouts);
    let mut frames = 0;
    let key = conn.register(sel, move |_, conn, event| {
        let frame = matches!(event, ConnEvent::Frame(_));
        log.borrow_mut().push(Seen::from(event));
        if frame {
            frames += 1;
            on_frame(conn, frames - 1)?;
        }
        Ok(())
    })?;
    Ok((key.key(), seen))
}

/// `n` numbered lines, `0\n` to `n-1\n`, as one write: a pipelining peer.
fn numbered_lines(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| format!("{i}\n").into_bytes()).collect()
}

/// Reads from `peer` on a thread until end of file; the thread returns what it read, or the
/// error (a reset) that ended it.
fn read_all_on_a_thread(mut peer: Stream) -> thread::JoinHandle<Result<Vec<u8>, io::Error>> {
    thread::spawn(move || {
        peer.set_read_timeout(Some(TIMEOUT))?;
        let mut got = Vec::new();
        peer.read_to_end(&mut got)?;
        Ok(got)
    })
}

/// The frames of `seen`, and whether `Closed` came exactly once, last.
fn frames_and_closed_last(seen: &[Seen]) -> (usize, bool) {
    let frames = seen.iter().filter(|s| matches!(s, Seen::Frame(_))).count();
    let closed = seen.iter().filter(|s| matches!(s, Seen::Closed(_))).count();
    (
        frames,
        closed == 1 && matches!(seen.last(), Some(Seen::Closed(_))),
    )
}

/// A selector with one [`scripted`] connection whose peer has sent `lines` numbered lines in
/// one write, as a pipelining client does: the selector, the key, what the callback saw, and
/// the peer.
fn pipelining(
    lines: usize,
    limits: Limits,
    timeouts: Timeouts,
    on_frame: OnFrame,
) -> io::Result<(DefaultSelector, SelectorKey, Events_, Stream)> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    peer.write_all(&numbered_lines(lines))?;
    let (key, seen) = scripted(&mut sel, a, limits, timeouts, on_frame)?;
    Ok((sel, key, seen, peer))
}

/// Runs the loop until the callback got `Closed`.
#[track_caller]
fn until_closed(sel: &mut DefaultSelector, seen: &Events_) -> io::Result<()> {
    run_until(sel, "Closed", || frames_and_closed_last(&seen.borrow()).1)
}

/// `close()` on one frame of many received in one read: no frame after it, the reply sent
/// before it arrives whole, then end of file, and the callback gets `Closed(None)`. (Every
/// frame of the read used to be delivered, and the first `send_frame(..)?` after the close
/// failed, so the selector closed the socket with the reply queued, and `Closed` never came.)
#[test]
fn after_close_no_frame_comes_the_queue_is_flushed_then_closed() -> io::Result<()> {
    const REPLY: usize = 1 << 20; // more than the socket buffers hold
    let on_frame: OnFrame = Box::new(|conn, n| {
        if n == 0 {
            conn.send(&pattern(REPLY))?;
            conn.close();
            return Ok(());
        }
        conn.send_frame(b"a reply to a request after the close")
    });
    let (mut sel, _, seen, peer) =
        pipelining(2000, Limits::default(), Timeouts::default(), on_frame)?;
    let reader = read_all_on_a_thread(peer);
    until_closed(&mut sel, &seen)?;
    assert_eq!(
        *seen.borrow(),
        [Seen::Frame(b"0".to_vec()), Seen::Closed(None)]
    );
    let got = reader.join().expect("reader")?; // a reset would be an error here
    assert!(got == pattern(REPLY), "the reply did not arrive whole");
    assert!(sel.is_empty());
    Ok(())
}

/// `abort()` on one frame of many: no frame after it, `Closed(ConnectionAborted)`.
#[test]
fn after_abort_no_frame_comes() -> io::Result<()> {
    let on_frame: OnFrame = Box::new(|conn, n| {
        if n == 3 {
            conn.abort();
            return Ok(());
        }
        conn.send_frame(b"ok")
    });
    let (mut sel, _, seen, mut peer) =
        pipelining(2000, Limits::default(), Timeouts::default(), on_frame)?;
    until_closed(&mut sel, &seen)?;
    let seen = seen.borrow();
    assert_eq!(frames_and_closed_last(&seen), (4, true), "{:?}", &seen[..5]);
    assert_eq!(seen[4], Seen::Closed(Some(ErrorKind::ConnectionAborted)));
    read_to_eof_or_reset(&mut peer);
    Ok(())
}

/// A frame whose reply passes the hard cap ends the connection before the next frame.
#[test]
fn after_the_hard_cap_is_passed_no_frame_comes() -> io::Result<()> {
    let limits = Limits {
        hard_cap: 64 << 10,
        ..Limits::default()
    };
    // The peer never reads: a 16 MiB reply is over the cap whatever the socket takes.
    let on_frame: OnFrame = Box::new(|conn, n| match n {
        0 => conn.send(&pattern(16 << 20)),
        _ => conn.send_frame(b"ok"),
    });
    let (mut sel, _, seen, mut peer) = pipelining(2000, limits, Timeouts::default(), on_frame)?;
    until_closed(&mut sel, &seen)?;
    let seen = seen.borrow();
    assert_eq!(
        frames_and_closed_last(&seen),
        (1, true),
        "frames after the cap"
    );
    assert_eq!(seen[1], Seen::Closed(Some(ErrorKind::OutOfMemory)));
    read_to_eof_or_reset(&mut peer);
    Ok(())
}

/// A connection over a `Watched` socket with `room`, whose peer sent `0\n1\n` and whose
/// callback answers frame `n` with `replies[n]` bytes and records every event.
fn watched_replies(
    sel: &mut DefaultSelector,
    limits: Limits,
    room: usize,
    replies: &'static [usize],
) -> io::Result<(Events_, Stream)> {
    let (a, gate, mut peer) = Watched::full()?;
    gate.set(room);
    peer.write_all(b"0\n1\n")?;
    let seen: Events_ = Rc::default();
    let log = seen.clone();
    let conn = Connection::new(a, LineCodec::new(64)).with_limits(limits)?;
    let mut frames = 0;
    conn.register(sel, move |_, conn, event| {
        let frame = matches!(event, ConnEvent::Frame(_));
        log.borrow_mut().push(Seen::from(event));
        if frame {
            conn.send(&vec![0; replies[frames]])?;
            frames += 1;
        }
        Ok(())
    })?;
    Ok((seen, peer))
}

/// A reply over the hard cap but under the high-water mark ends the frames too: the cap alone
/// is checked before the next frame.
#[test]
fn a_reply_over_the_hard_cap_under_the_high_water_mark_is_the_last() -> io::Result<()> {
    let limits = Limits {
        hard_cap: 64 << 10,
        ..frame_limits()
    };
    let mut sel = DefaultSelector::new()?;
    let (seen, _peer) = watched_replies(&mut sel, limits, 0, &[128 << 10, 1])?;
    until_closed(&mut sel, &seen)?;
    assert_eq!(
        *seen.borrow(),
        [
            Seen::Frame(b"0".to_vec()),
            Seen::Closed(Some(ErrorKind::OutOfMemory))
        ]
    );
    Ok(())
}

/// Exactly the high-water mark queued is not over it: the next frame comes at once. (The cap,
/// below the mark here, has the socket take what it will first: 48 KiB, leaving 16 KiB, under
/// the cap; frame 1's reply then passes both.)
#[test]
fn exactly_the_high_water_mark_queued_is_not_over_it() -> io::Result<()> {
    let limits = Limits {
        high_water: 64 << 10,
        low_water: 16 << 10,
        hard_cap: 32 << 10,
        ..Limits::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (seen, _peer) = watched_replies(&mut sel, limits, 48 << 10, &[64 << 10, 64 << 10])?;
    until_closed(&mut sel, &seen)?;
    assert_eq!(
        *seen.borrow(),
        [
            Seen::Frame(b"0".to_vec()),
            Seen::Frame(b"1".to_vec()),
            Seen::Closed(Some(ErrorKind::OutOfMemory))
        ]
    );
    Ok(())
}

/// An error returned by the callback ends that connection as a failure: no frame after it,
/// then `Closed` with that error, logged; the loop and other connections go on.
#[test]
fn after_the_callback_fails_no_frame_comes_and_closed_carries_the_error() -> io::Result<()> {
    let on_frame: OnFrame = Box::new(|conn, n| match n {
        1 => Err(io::Error::new(
            ErrorKind::InvalidData,
            "request 1 is refused",
        )),
        _ => conn.send_frame(b"ok"),
    });
    let (mut sel, _, seen, mut peer) =
        pipelining(2000, Limits::default(), Timeouts::default(), on_frame)?;
    let (other, mut other_peer) = socketpair()?;
    let (_, other_seen) = connection(&mut sel, other, LineCodec::new(64), Limits::default(), true)?;
    until_closed(&mut sel, &seen)?;
    assert_eq!(
        *seen.borrow(),
        [
            Seen::Frame(b"0".to_vec()),
            Seen::Frame(b"1".to_vec()),
            Seen::Closed(Some(ErrorKind::InvalidData))
        ]
    );
    assert!(logged(&[
        "WARN",
        "request 1 is refused",
        "closing the connection"
    ]));
    read_to_eof_or_reset(&mut peer);
    other_peer.write_all(b"still served\n")?;
    run_until(&mut sel, "the other's echo", || {
        !other_seen.borrow().is_empty()
    })?;
    let mut echo = [0u8; 13];
    other_peer.read_exact(&mut echo)?;
    assert_eq!(&echo, b"still served\n");
    Ok(())
}

/// `WouldBlock` (or `Interrupted`) from the callback means "not ready after all", as for
/// `dispatch`: the connection goes on, and the frames after it come.
#[test]
fn would_block_from_the_callback_does_not_end_the_connection() -> io::Result<()> {
    let on_frame: OnFrame = Box::new(|conn, n| match n {
        0 => Err(ErrorKind::WouldBlock.into()),
        1 => Err(ErrorKind::Interrupted.into()),
        _ => conn.send_frame(b"ok"),
    });
    let (mut sel, _, seen, mut peer) =
        pipelining(3, Limits::default(), Timeouts::default(), on_frame)?;
    run_until(&mut sel, "three frames", || seen.borrow().len() >= 3)?;
    for _ in 0..3 {
        sel.run_once(Some(Duration::from_millis(5)))?;
    }
    let frames: Vec<Seen> = (0..3)
        .map(|n| Seen::Frame(n.to_string().into_bytes()))
        .collect();
    assert_eq!(*seen.borrow(), frames);
    let mut ok = [0u8; 3];
    peer.read_exact(&mut ok)?;
    assert_eq!(&ok, b"ok\n");
    assert_eq!(sel.len(), 1);
    Ok(())
}

/// Limits for the back-pressure tests below: replies of `REPLY` bytes pass the high-water
/// mark after four frames.
const REPLY: usize = 256 << 10;
fn frame_limits() -> Limits {
    Limits {
        high_water: 1 << 20,
        low_water: 256 << 10,
        ..Limits::default()
    }
}

/// Frame `n`'s reply: `REPLY` bytes, each `n`.
fn reply_to(n: usize) -> Vec<u8> {
    vec![n as u8; REPLY]
}

/// While more than the high-water mark is queued, no frame is handed over (they wait in the
/// read buffer): a peer that pipelines requests and reads slowly costs at most the high-water
/// mark plus one reply. Once it reads, every frame comes, in order, then `PeerClosed` (after the
/// frames the peer sent before its end of file), then `Closed(None)`; nothing is lost.
#[test]
fn past_the_high_water_mark_frames_wait_then_all_come_in_order() -> io::Result<()> {
    const N: usize = 64; // 16 MiB of replies: far more than the socket buffers hold
    let on_frame: OnFrame = Box::new(|conn, n| conn.send(&reply_to(n)));
    let (mut sel, key, seen, peer) = pipelining(N, frame_limits(), Timeouts::default(), on_frame)?;
    peer.shutdown(std::net::Shutdown::Write)?; // a half-close right after the requests
    for _ in 0..5 {
        sel.run_once(Some(Duration::from_millis(10)))?;
    }
    let frames = frames_and_closed_last(&seen.borrow()).0;
    assert!(
        frames < N,
        "all {N} frames handed over to a peer that reads nothing"
    );
    let conn: &mut Connection<Stream, LineCodec> = sel.source_mut(&key)?;
    let queued = conn.queued();
    assert!(
        queued <= frame_limits().high_water + REPLY,
        "{queued} bytes queued after {frames} frames"
    );
    let reader = read_all_on_a_thread(peer);
    until_closed(&mut sel, &seen)?;
    let got = reader.join().expect("reader")?;
    let want: Vec<u8> = (0..N).flat_map(reply_to).collect();
    assert!(got == want, "the replies arrived changed or out of order");
    // `Drained` comes between frames, each time the queue crossed the low-water mark.
    let seen = seen.borrow();
    assert!(seen.contains(&Seen::Drained));
    let mut want: Vec<Seen> = (0..N)
        .map(|n| Seen::Frame(n.to_string().into_bytes()))
        .collect();
    want.extend([Seen::PeerClosed, Seen::Closed(None)]);
    let events: Vec<&Seen> = seen.iter().filter(|s| **s != Seen::Drained).collect();
    assert!(
        events.iter().copied().eq(want.iter()),
        "every frame in order, then PeerClosed, then Closed: {events:?}"
    );
    Ok(())
}

/// A timeout that ends a connection whose frames wait: `Closed(TimedOut)`, and none of the
/// waiting frames after it.
#[test]
fn a_timeout_ends_a_connection_whose_frames_wait_and_none_comes_after() -> io::Result<()> {
    let timeouts = Timeouts {
        send: Some(Duration::from_millis(200)),
        ..Timeouts::default()
    };
    let on_frame: OnFrame = Box::new(|conn, n| conn.send(&reply_to(n)));
    let (mut sel, _, seen, mut peer) = pipelining(64, frame_limits(), timeouts, on_frame)?;
    until_closed(&mut sel, &seen)?;
    let seen = seen.borrow();
    let (frames, closed_last) = frames_and_closed_last(&seen);
    assert!(closed_last && frames < 64, "{frames} frames");
    assert_eq!(seen.last(), Some(&Seen::Closed(Some(ErrorKind::TimedOut))));
    read_to_eof_or_reset(&mut peer);
    Ok(())
}

/// Once more than the high-water mark was queued, frames (and reads) wait until the queue is
/// down to the low-water mark, not merely under the high one again: a program that keeps
/// requests of its own while over the mark, to run them on `Drained` (as `kv_server` does),
/// is not handed more meanwhile.
#[test]
fn frames_wait_for_the_low_water_mark_not_just_under_the_high_one() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, room, mut peer) = Watched::full()?;
    room.set(1 << 20); // of frame 0's reply of 1.5 MiB, the socket takes 1 MiB at once
    peer.write_all(b"0\n1\n")?;
    let seen: Events_ = Rc::default();
    let log = seen.clone();
    let conn = Connection::new(a, LineCodec::new(64)).with_limits(frame_limits())?;
    let key = conn.register(&mut sel, move |_, conn, event| {
        match event {
            ConnEvent::Frame(frame) => {
                conn.send(&vec![0; 3 * (1 << 20) / 2])?;
                log.borrow_mut().push(Seen::Frame(frame.to_vec()));
            }
            ConnEvent::Drained => log.borrow_mut().push(Seen::Drained),
            other => panic!("{other:?}"),
        }
        Ok(())
    })?;
    for _ in 0..5 {
        sel.run_once(Some(Duration::from_millis(10)))?;
    }
    // 512 KiB queued: under the high-water mark, over the low one.
    let conn: &mut Connection<Watched, LineCodec> = sel.source_mut(&key)?;
    assert_eq!(conn.queued(), 512 << 10);
    assert!(conn.is_reading_paused());
    assert_eq!(*seen.borrow(), [Seen::Frame(b"0".to_vec())]);
    assert_eq!(
        events_of(&sel, &key),
        Some(EVENT_WRITE),
        "reading while over the low mark"
    );
    // The peer reads: down to the low-water mark (the socket must be writable again for the
    // connection to try), then frame 1.
    room.set(64 << 20);
    let reader = read_all_on_a_thread(peer.try_clone()?);
    run_until(&mut sel, "frame 1", || seen.borrow().len() >= 3)?;
    assert_eq!(
        seen.borrow()[..3],
        [
            Seen::Frame(b"0".to_vec()),
            Seen::Drained,
            Seen::Frame(b"1".to_vec())
        ]
    );
    drop(sel); // the reader sees end of file
    reader.join().expect("reader")?;
    Ok(())
}

/// Frames that wait over the high-water mark come once the queue drains, also when it drains
/// in `with`, from outside the callback: the callback is then woken to hand them over (in
/// this loop iteration), never called inside `with`.
#[test]
fn frames_that_wait_come_when_the_queue_drains_in_with() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, room, mut peer) = Watched::full()?; // never writable: only `with` writes
    peer.write_all(b"0\n1\n")?;
    let seen: Events_ = Rc::default();
    let log = seen.clone();
    let conn = Connection::new(a, LineCodec::new(64)).with_limits(frame_limits())?;
    let key = conn.register(&mut sel, move |_, conn, event| {
        if let ConnEvent::Frame(_) = event {
            conn.send(&vec![0; 3 * (1 << 20) / 2])?;
        }
        log.borrow_mut().push(Seen::from(event));
        Ok(())
    })?;
    for _ in 0..3 {
        sel.run_once(Some(Duration::from_millis(10)))?;
    }
    assert_eq!(*seen.borrow(), [Seen::Frame(b"0".to_vec())]);
    room.set(64 << 20);
    Connection::<Watched, LineCodec>::with(&mut sel, &key, |conn| conn.queued())?;
    assert_eq!(seen.borrow().len(), 1, "the callback ran inside `with`");
    sel.run_once(Some(Duration::ZERO))?;
    assert_eq!(
        seen.borrow()[1..3],
        [Seen::Drained, Seen::Frame(b"1".to_vec())]
    );
    Ok(())
}

// --- Memory --------------------------------------------------------------------------------------

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

/// One end of a socket pair the test watches: it counts the connection's `read` and `write`
/// calls, and takes only `room` more bytes (refusing more with `WouldBlock`, as a full socket
/// does): a peer that never reads (`room` 0), or reads exactly so much, for tests that need
/// exactly what was sent to stay queued. The bytes it takes are dropped, but with `room` of
/// `usize::MAX` (the default), which passes every write on to the socket.
///
/// Filling a real socket is not enough to keep what is sent queued: a TCP socket that refused
/// a write takes more later, as the kernel moves its bytes on to the peer's receive buffer —
/// on a busy machine well after the refusal (under Wine, where the tests' socket pairs are
/// loopback TCP, 128 KiB went through after the socket had refused a write, so a queue meant
/// to pass a cap never did). [`Watched::full`] fills the socket too, so that it is not
/// reported writable over and over.
struct Watched {
    stream: Stream,
    room: Rc<Cell<usize>>,
    writes: Rc<Cell<usize>>,
    reads: Rc<Cell<usize>>,
}

impl Watched {
    fn new(stream: Stream) -> Watched {
        Watched {
            stream,
            room: Rc::new(Cell::new(usize::MAX)),
            writes: Rc::default(),
            reads: Rc::default(),
        }
    }

    /// A full socket (its peer never reads): its `room` is 0.
    fn full() -> io::Result<(Watched, Rc<Cell<usize>>, Stream)> {
        let (a, peer) = socketpair()?;
        let chunk = [0u8; 4096];
        while (&a).write(&chunk).is_ok() {} // until WouldBlock
        let stream = Watched::new(a);
        stream.room.set(0);
        let room = stream.room.clone();
        Ok((stream, room, peer))
    }
}

impl Read for Watched {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads.set(self.reads.get() + 1);
        self.stream.read(buf)
    }
}

impl Write for Watched {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.writes.set(self.writes.get() + 1);
        match self.room.get() {
            0 => Err(ErrorKind::WouldBlock.into()),
            usize::MAX => self.stream.write(data),
            room => {
                let n = room.min(data.len());
                self.room.set(room - n);
                Ok(n)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl selectloop::ByteStream for Watched {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for Watched {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for Watched {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.stream.as_socket()
    }
}

type WatchedConn = Connection<Watched, Bytes>;

/// The bytes queued on the watched connection `key`.
fn queued(sel: &mut DefaultSelector, key: &SelectorKey) -> usize {
    let conn: &mut WatchedConn = sel.source_mut(key).expect("open");
    conn.queued()
}

#[test]
fn a_large_queue_emptied_is_reused_by_a_large_send_never_by_a_small_one() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let mut conns = Vec::new();
    for _ in 0..5 {
        let (a, room, peer) = Watched::full()?; // sends stay queued
        let (key, _) = connection(&mut sel, a, Bytes, Limits::default(), false)?;
        conns.push((key, room, peer));
    }
    let memory = |sel: &mut DefaultSelector, key: &SelectorKey| {
        let conn: &mut WatchedConn = sel.source_mut(key).expect("open");
        conn.buffer_memory()
    };
    // A 1 MiB queue, written out: the connection holds nothing (the thread keeps it).
    let (big, big_room, big_peer) = &mut conns[0];
    let big = *big;
    WatchedConn::with(&mut sel, &big, |conn| conn.send(&[1; 1 << 20]))??;
    let room = memory(&mut sel, &big);
    assert!(room >= 1 << 20, "{room}");
    big_room.set(usize::MAX); // the peer reads: the socket takes what it sends

    let mut reader = big_peer.try_clone()?;
    let draining = thread::spawn(move || -> io::Result<()> {
        let mut buf = vec![0u8; 64 << 10];
        while reader.read(&mut buf)? > 0 {} // until the connection is closed
        Ok(())
    });
    let deadline = Instant::now() + TIMEOUT;
    while memory(&mut sel, &big) > 0 {
        assert!(Instant::now() < deadline, "the queue never drained");
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    // A small send to a full socket: a small queue, not the 1 MiB one.
    let small = conns[1].0;
    WatchedConn::with(&mut sel, &small, |conn| conn.send(b"small"))??;
    assert_eq!(memory(&mut sel, &small), 4096);
    // A medium one (a large send, but under a sixteenth of it): a queue of its own size.
    let medium = conns[4].0;
    WatchedConn::with(&mut sel, &medium, |conn| conn.send(&[3; 5 << 10]))??;
    assert_eq!(memory(&mut sel, &medium), 5 << 10);
    // A large one (over a sixteenth of it): the 1 MiB one, not a new allocation grown to it.
    let large = conns[2].0;
    WatchedConn::with(&mut sel, &large, |conn| conn.send(&[2; 100 << 10]))??;
    assert_eq!(memory(&mut sel, &large), room);
    // A small frame to a full socket: a small queue too.
    let framed = conns[3].0;
    WatchedConn::with(&mut sel, &framed, |conn| conn.send_frame(b"small"))??;
    assert_eq!(memory(&mut sel, &framed), 4096);
    drop(sel); // closes the connections: the reader sees end of file
    draining.join().expect("reader")?;
    drop(conns);
    Ok(())
}

// --- Output caps ---------------------------------------------------------------------------------

#[test]
fn over_the_hard_cap_a_connection_is_closed_and_its_memory_freed() -> io::Result<()> {
    const CAP: usize = 1 << 20;
    let limits = Limits {
        hard_cap: CAP,
        ..Limits::default()
    };
    let mut sel = DefaultSelector::new()?;
    // At `Closed`: (the error's kind, what is queued, the buffers' memory), per connection.
    type End = (Option<ErrorKind>, usize, usize);
    let ends: Rc<RefCell<Vec<End>>> = Rc::default();
    let mut capped = Vec::new();
    for _ in 0..2 {
        let (a, peer) = socketpair()?;
        let ends = ends.clone();
        let conn = Connection::new(a, LineCodec::new(64)).with_limits(limits)?;
        let key = conn.register(&mut sel, move |_, conn, event| {
            match event {
                // A request: 16 MiB of reply, to a peer that does not read.
                ConnEvent::Frame(_) => conn.send(&pattern(16 << 20))?,
                ConnEvent::Closed(e) => ends.borrow_mut().push((
                    e.map(|e| e.kind()),
                    conn.queued(),
                    conn.buffer_memory(),
                )),
                _ => {}
            }
            Ok(())
        })?;
        capped.push((key, peer));
    }
    let (other, mut other_peer) = socketpair()?;
    let (_, other_seen) = connection(&mut sel, other, LineCodec::new(64), limits, true)?;
    // Over the cap from outside the callback (`with`), and from inside it (a request).
    let key = capped[0].0;
    Connection::<Stream, LineCodec>::with(&mut sel, &key, |conn| conn.send(&pattern(16 << 20)))??;
    capped[1].1.write_all(b"a request\n")?;
    run_until(&mut sel, "both caps", || ends.borrow().len() == 2)?;
    let closed = (Some(ErrorKind::OutOfMemory), 0, 0);
    assert_eq!(*ends.borrow(), [closed, closed]);
    assert_eq!(
        common::logged_count(&["WARN", "output hard cap", "over the cap of 1048576"]),
        2
    );
    // The other connection, with the same cap, is served.
    other_peer.write_all(b"still fine\n")?;
    run_until(&mut sel, "the echo", || !other_seen.borrow().is_empty())?;
    let mut echo = [0u8; 11];
    other_peer.read_exact(&mut echo)?;
    assert_eq!(&echo, b"still fine\n");
    assert_eq!(sel.len(), 1);
    for (_, mut peer) in capped {
        read_to_eof_or_reset(&mut peer);
    }
    Ok(())
}

#[test]
fn over_the_soft_cap_for_too_long_a_connection_is_closed() -> io::Result<()> {
    const FOR: Duration = Duration::from_millis(300);
    let limits = Limits {
        soft_cap: 256 << 10,
        soft_cap_for: FOR,
        ..Limits::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (key, seen) = connection(&mut sel, a, Bytes, limits, false)?;
    let start = Instant::now();
    fill_a_peer_that_never_reads(&mut sel, &key)?;
    run_until(&mut sel, "the soft cap", || !seen.borrow().is_empty())?;
    let took = start.elapsed();
    assert_eq!(*seen.borrow(), [Seen::Closed(Some(ErrorKind::OutOfMemory))]);
    assert!(
        took >= FOR,
        "closed after {took:?}, before {FOR:?} over the soft cap"
    );
    assert!(logged(&[
        "WARN",
        "output soft cap: more than 262144 bytes queued for 0.300 s"
    ]));
    read_to_eof_or_reset(&mut peer);
    Ok(())
}

#[test]
fn exactly_the_hard_cap_queued_is_not_over_it() -> io::Result<()> {
    const CAP: usize = 64 << 10;
    let limits = Limits {
        hard_cap: CAP,
        ..Limits::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, _room, _peer) = Watched::full()?; // the peer never reads: all that is sent stays queued
    let (key, seen) = connection(&mut sel, a, Bytes, limits, false)?;
    WatchedConn::with(&mut sel, &key, |conn| conn.send(&pattern(CAP)))??;
    for _ in 0..3 {
        sel.run_once(Some(Duration::from_millis(20)))?;
    }
    assert_eq!(*seen.borrow(), [], "closed at the cap");
    assert_eq!(queued(&mut sel, &key), CAP);
    // One byte over it: closed.
    WatchedConn::with(&mut sel, &key, |conn| conn.send(b"!"))??;
    run_until(&mut sel, "the hard cap", || !seen.borrow().is_empty())?;
    assert_eq!(*seen.borrow(), [Seen::Closed(Some(ErrorKind::OutOfMemory))]);
    Ok(())
}

#[test]
fn exactly_the_soft_cap_queued_is_not_over_it() -> io::Result<()> {
    const FOR: Duration = Duration::from_millis(200);
    const CAP: usize = 64 << 10;
    let limits = Limits {
        soft_cap: CAP,
        soft_cap_for: FOR,
        ..Limits::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, _room, _peer) = Watched::full()?; // the peer never reads: all that is sent stays queued
    let (key, seen) = connection(&mut sel, a, Bytes, limits, false)?;
    WatchedConn::with(&mut sel, &key, |conn| conn.send(&pattern(CAP)))??;
    // Twice the grace period at the cap, not over it: still open.
    let until = Instant::now() + 2 * FOR;
    while Instant::now() < until {
        sel.run_once(Some(Duration::from_millis(20)))?;
    }
    assert_eq!(*seen.borrow(), [], "closed at the cap");
    assert_eq!(queued(&mut sel, &key), CAP);
    // One byte over it, for the grace period: closed.
    let start = Instant::now();
    WatchedConn::with(&mut sel, &key, |conn| conn.send(b"!"))??;
    run_until(&mut sel, "the soft cap", || !seen.borrow().is_empty())?;
    assert_eq!(*seen.borrow(), [Seen::Closed(Some(ErrorKind::OutOfMemory))]);
    assert!(start.elapsed() >= FOR, "closed before the grace period");
    Ok(())
}

// --- Drain notification --------------------------------------------------------------------------

#[test]
fn a_producer_sending_on_drained_queues_at_most_high_water_plus_a_chunk() -> io::Result<()> {
    const TOTAL: usize = 64 << 20;
    const CHUNK: usize = 64 << 10;
    let limits = Limits::default();
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let reader = thread::spawn(move || -> io::Result<bool> {
        let mut got = Vec::with_capacity(TOTAL);
        peer.read_to_end(&mut got)?; // until the connection closes, after the last byte
        Ok(got == pattern(TOTAL))
    });
    let data = Rc::new(pattern(TOTAL));
    let (handed, peak, drained, memory) = (
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
    );
    // Sends chunks while under the high-water mark; closes once everything is handed over.
    let fill = {
        let (data, handed, peak) = (data.clone(), handed.clone(), peak.clone());
        let memory = memory.clone();
        move |conn: &mut Connection<Stream, Bytes>| -> io::Result<()> {
            while conn.queued() < limits.high_water && handed.get() < TOTAL {
                let at = handed.get();
                conn.send(&data[at..at + CHUNK])?;
                handed.set(at + CHUNK);
                peak.set(peak.get().max(conn.queued()));
                memory.set(memory.get().max(conn.buffer_memory()));
            }
            if handed.get() == TOTAL {
                conn.close();
            }
            Ok(())
        }
    };
    let ended = Rc::new(RefCell::new(None));
    let (on_drained, d, e) = (fill.clone(), drained.clone(), ended.clone());
    let key = Connection::new(a, Bytes).register(&mut sel, move |_, conn, event| {
        match event {
            ConnEvent::Drained => {
                d.set(d.get() + 1);
                on_drained(conn)?;
            }
            ConnEvent::Closed(error) => *e.borrow_mut() = Some(error.map(|e| e.kind())),
            _ => {}
        }
        Ok(())
    })?;
    Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| fill(conn))??;
    let deadline = Instant::now() + TIMEOUT * 3;
    while ended.borrow().is_none() {
        assert!(
            Instant::now() < deadline,
            "only {} bytes handed over",
            handed.get()
        );
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    assert_eq!(*ended.borrow(), Some(None), "closed with an error");
    assert!(
        reader.join().expect("reader panicked")?,
        "the bytes arrived changed"
    );
    let bound = limits.high_water + CHUNK;
    assert!(
        peak.get() <= bound,
        "queued {} bytes, more than {bound}",
        peak.get()
    );
    // The bytes already written are moved out of the queue's buffer as it goes: it stays
    // within a few times the bound, not the 64 MiB that passed through it.
    assert!(
        memory.get() <= 4 * bound,
        "the queue's buffer grew to {} bytes, {} queued at most",
        memory.get(),
        peak.get()
    );
    // Driven by `Drained`: each refill (the first one too) adds less than `bound`.
    let refills = TOTAL / bound - 1;
    assert!(
        drained.get() >= refills,
        "{} Drained for {refills} refills",
        drained.get()
    );
    Ok(())
}

#[test]
fn drained_comes_once_per_crossing_and_not_after_close() -> io::Result<()> {
    let limits = Limits {
        high_water: 64 << 10,
        low_water: 16 << 10,
        ..Limits::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (key, seen) = connection(&mut sel, a, Bytes, limits, false)?;
    // At the low-water mark, not above it: nothing owed.
    Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| conn.send(&[1; 16 << 10]))??;
    let mut got = vec![0u8; 16 << 10];
    peer.read_exact(&mut got)?;
    for _ in 0..3 {
        sel.run_once(Some(Duration::from_millis(5)))?;
    }
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
    // Above it, twice, each drained by the peer: one `Drained` each time.
    for round in 1..=2 {
        Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| conn.send(&[2; 100 << 10]))??;
        let mut got = vec![0u8; 100 << 10];
        let mut reader = peer.try_clone()?;
        let reading = thread::spawn(move || reader.read_exact(&mut got));
        run_until(&mut sel, "Drained", || seen.borrow().len() == round)?;
        reading.join().expect("reader")?;
        for _ in 0..3 {
            sel.run_once(Some(Duration::from_millis(5)))?;
        }
        assert_eq!(seen.borrow().len(), round, "{:?}", seen.borrow());
    }
    // Above it, then closed: no `Drained`, only `Closed`.
    Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| -> io::Result<()> {
        conn.send(&[3; 100 << 10])?;
        conn.close();
        Ok(())
    })??;
    let reading = thread::spawn(move || peer.read_to_end(&mut Vec::new()));
    run_until(&mut sel, "the close", || seen.borrow().len() == 3)?;
    assert_eq!(
        seen.borrow()[..],
        [Seen::Drained, Seen::Drained, Seen::Closed(None)]
    );
    assert_eq!(reading.join().expect("reader")?, 100 << 10);
    Ok(())
}

// --- Timeouts ------------------------------------------------------------------------------------

#[test]
fn a_slowloris_is_closed_after_the_frame_timeout_while_others_are_served() -> io::Result<()> {
    const FRAME: Duration = Duration::from_millis(400);
    // The idle timeout schedules each connection's timer for a minute from now: a frame that
    // begins must bring it forward.
    let timeouts = Timeouts {
        idle: Some(Duration::from_secs(60)),
        frame: Some(FRAME),
        ..Timeouts::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (slow, mut slow_peer) = socketpair()?;
    let (good, mut good_peer) = socketpair()?;
    let codec = || LineCodec::new(4096);
    let (_, slow_seen) =
        timed_connection(&mut sel, slow, codec(), Limits::default(), timeouts, true)?;
    let (_, good_seen) =
        timed_connection(&mut sel, good, codec(), Limits::default(), timeouts, true)?;
    // The slow client trickles one byte every 100 ms, from a timer of the loop, never a
    // newline; the good one sends a line after each of them.
    let trickle = slow_peer.try_clone()?;
    let start = Instant::now();
    let trickler = sel.call_repeating(Duration::from_millis(100), move |_| {
        let _ = (&trickle).write(b"x"); // fails once the connection is closed
    });
    let mut served = 0;
    let deadline = start + TIMEOUT;
    while slow_seen.borrow().is_empty() {
        assert!(Instant::now() < deadline, "the slowloris is still served");
        good_peer.write_all(b"ping\n")?;
        run_until(&mut sel, "the good client's echo", || {
            good_seen.borrow().len() > served
        })?;
        let mut echo = [0u8; 5];
        good_peer.read_exact(&mut echo)?;
        assert_eq!(&echo, b"ping\n");
        served += 1;
        sel.run_once(Some(Duration::from_millis(20)))?;
    }
    let took = start.elapsed();
    trickler.cancel();
    assert_eq!(
        *slow_seen.borrow(),
        [Seen::Closed(Some(ErrorKind::TimedOut))]
    );
    // Its first byte came 100 ms after the start, and a timer never fires early.
    assert!(
        took >= FRAME + Duration::from_millis(100),
        "closed after {took:?}"
    );
    assert!(
        served > 0 && sel.len() == 1,
        "the good client was not served meanwhile"
    );
    assert!(logged(&[
        "frame timeout: a frame begun 0.400 s ago is incomplete"
    ]));
    read_to_eof_or_reset(&mut slow_peer);
    Ok(())
}

#[test]
fn a_frame_timeout_counts_from_each_frame_not_from_the_first() -> io::Result<()> {
    // A pipelining peer: every 100 ms it ends a line and begins the next, so some line is
    // always incomplete, and none for long.
    const FRAME: Duration = Duration::from_millis(300);
    let timeouts = Timeouts {
        frame: Some(FRAME),
        ..Timeouts::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, peer) = socketpair()?;
    let (key, seen) = timed_connection(
        &mut sel,
        a,
        LineCodec::new(64),
        Limits::default(),
        timeouts,
        false,
    )?;
    (&peer).write_all(b"begun")?;
    let pipeliner = sel.call_repeating(Duration::from_millis(100), move |_| {
        let _ = (&peer).write_all(b" ended\nbegun");
    });
    let start = Instant::now();
    while start.elapsed() < FRAME * 4 {
        sel.run_once(Some(Duration::from_millis(20)))?;
    }
    pipeliner.cancel();
    let seen = seen.borrow();
    assert!(sel.get_key(&key).is_ok(), "closed: {:?}", seen.last());
    assert!(seen.len() >= 3, "{} lines", seen.len());
    assert!(seen
        .iter()
        .all(|s| *s == Seen::Frame(b"begun ended".to_vec())));
    Ok(())
}

#[test]
fn a_frame_timeout_stops_while_reading_is_paused() -> io::Result<()> {
    // Lines of 4097 bytes read 4096 at a time: a line is always incomplete. The peer does not
    // read its echoes, so reading pauses, for longer than the frame timeout: not its fault.
    const FRAME: Duration = Duration::from_millis(200);
    let limits = Limits {
        high_water: 64 << 10,
        low_water: 16 << 10,
        read_chunk: 4096,
        ..Limits::default()
    };
    let timeouts = Timeouts {
        frame: Some(FRAME),
        ..Timeouts::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, peer) = socketpair()?;
    let (key, seen) = timed_connection(&mut sel, a, LineCodec::new(8192), limits, timeouts, true)?;
    let mut line = vec![b'x'; 4096];
    line.push(b'\n');
    const LINES: usize = 4096; // 16 MiB: more than the socket buffers hold, Wine's too
    let lines = line.repeat(LINES);
    let mut writer_end = peer.try_clone()?;
    let writer = thread::spawn(move || writer_end.write_all(&lines));
    let state = |sel: &mut DefaultSelector| {
        let conn: &mut Connection<Stream, LineCodec> = sel.source_mut(&key).expect("open");
        (conn.is_reading_paused(), conn.buffered())
    };
    let deadline = Instant::now() + TIMEOUT;
    while !state(&mut sel).0 {
        assert!(Instant::now() < deadline, "reading never paused");
        sel.run_once(Some(Duration::from_millis(20)))?;
    }
    let (_, buffered) = state(&mut sel);
    assert!(
        buffered > 0,
        "paused with no incomplete line: the test needs one"
    );
    let paused = Instant::now();
    while paused.elapsed() < FRAME * 3 {
        sel.run_once(Some(Duration::from_millis(20)))?;
    }
    assert!(
        sel.get_key(&key).is_ok(),
        "closed while paused: {:?}",
        seen.borrow().last()
    );
    // The peer reads: reading resumes, the clock restarts, every line comes back.
    let mut reader_end = peer;
    let reader = thread::spawn(move || {
        let mut got = vec![0u8; LINES * 4097];
        reader_end.read_exact(&mut got).map(|()| reader_end)
    });
    let deadline = Instant::now() + TIMEOUT;
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "the echo never completed");
        sel.run_once(Some(Duration::from_millis(20)))?;
    }
    let _peer = reader.join().expect("reader")?;
    writer.join().expect("writer")?;
    let frames = seen
        .borrow()
        .iter()
        .filter(|s| matches!(s, Seen::Frame(_)))
        .count();
    assert_eq!(frames, LINES);
    Ok(())
}

#[test]
fn a_peer_that_never_reads_is_closed_after_the_send_timeout_a_slow_one_is_not() -> io::Result<()> {
    const SEND: Duration = Duration::from_millis(300);
    // More than the socket buffers hold, Wine's too.
    const LEN: usize = 16 << 20;
    // The idle timeout schedules each connection's timer for a minute from now (in the first
    // iterations below): what `with` sends must bring it forward.
    let timeouts = Timeouts {
        idle: Some(Duration::from_secs(60)),
        send: Some(SEND),
        ..Timeouts::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (never, mut never_peer) = socketpair()?;
    let (slow, slow_peer) = socketpair()?;
    let (never_key, never_seen) =
        timed_connection(&mut sel, never, Bytes, Limits::default(), timeouts, false)?;
    let (slow_key, slow_seen) =
        timed_connection(&mut sel, slow, Bytes, Limits::default(), timeouts, false)?;
    // The slow peer reads up to 256 KiB every 10 ms, from a timer of the loop.
    let got = Rc::new(RefCell::new(Vec::with_capacity(LEN)));
    slow_peer.set_nonblocking(true)?;
    let reader = {
        let got = got.clone();
        sel.call_repeating(Duration::from_millis(10), move |_| {
            let mut buf = vec![0u8; 256 << 10];
            if let Ok(n) = (&slow_peer).read(&mut buf) {
                got.borrow_mut().extend_from_slice(&buf[..n]);
            }
        })
    };
    for _ in 0..3 {
        sel.run_once(Some(Duration::ZERO))?;
    }
    let start = Instant::now();
    for key in [never_key, slow_key] {
        Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| conn.send(&pattern(LEN)))??;
    }
    let deadline = start + TIMEOUT * 2;
    while never_seen.borrow().is_empty() || got.borrow().len() < LEN {
        assert!(
            Instant::now() < deadline,
            "read {} of {LEN} bytes",
            got.borrow().len()
        );
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    reader.cancel();
    let took = start.elapsed();
    assert_eq!(
        *never_seen.borrow(),
        [Seen::Closed(Some(ErrorKind::TimedOut))]
    );
    assert!(took >= SEND, "closed after {took:?}");
    assert!(
        *got.borrow() == pattern(LEN),
        "the slow reader's bytes changed"
    );
    assert_eq!(
        *slow_seen.borrow(),
        [Seen::Drained],
        "the slow reader was closed"
    );
    assert!(logged(&[
        "send timeout: the peer accepted nothing for 0.300 s"
    ]));
    read_to_eof_or_reset(&mut never_peer);
    Ok(())
}

/// A producer that sends on `Drained` to a peer that reads nothing: the socket may take the
/// whole queue, leaving it empty with `Drained` owed until the socket has room again, which it
/// never has. The send timeout counts that wait too (it once counted queued bytes only, and
/// such a connection stayed forever).
#[test]
fn a_peer_that_sends_but_never_reads_is_closed_after_the_send_timeout() -> io::Result<()> {
    // Its bytes keep the connection reading (no high-water mark), and every read is followed
    // by a flush that writes nothing: that must not restart the send clock. A connection
    // with the same timeout and nothing queued is never closed by it, however long it waits.
    const SEND: Duration = Duration::from_millis(300);
    let timeouts = Timeouts {
        send: Some(SEND),
        ..Timeouts::default()
    };
    let limits = Limits {
        high_water: usize::MAX,
        ..Limits::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (talker, talker_peer) = socketpair()?;
    let (quiet, mut quiet_peer) = socketpair()?;
    let (talker_key, talker_seen) =
        timed_connection(&mut sel, talker, Bytes, limits, timeouts, false)?;
    let (quiet_key, quiet_seen) =
        timed_connection(&mut sel, quiet, Bytes, limits, timeouts, false)?;
    Connection::<Stream, Bytes>::with(&mut sel, &quiet_key, |conn| conn.send(b"hello"))??;
    // The talker's send clock starts with its first flush, inside `with`: no earlier than now.
    let start = Instant::now();
    Connection::<Stream, Bytes>::with(&mut sel, &talker_key, |conn| {
        conn.send(&pattern(16 << 20))
    })??;
    let mut hello = [0u8; 5];
    quiet_peer.read_exact(&mut hello)?;
    let trickle = sel.call_repeating(Duration::from_millis(50), move |_| {
        let _ = (&talker_peer).write(b"x"); // fails once the connection is closed
    });
    let deadline = start + TIMEOUT;
    while !talker_seen
        .borrow()
        .contains(&Seen::Closed(Some(ErrorKind::TimedOut)))
    {
        assert!(
            Instant::now() < deadline,
            "a peer that sends but never reads was not closed: {:?}",
            talker_seen.borrow().last()
        );
        sel.run_once(Some(Duration::from_millis(20)))?;
    }
    trickle.cancel();
    assert!(start.elapsed() >= SEND);
    // The quiet connection has waited longer than the send timeout already; it waits as long
    // again, and stays open.
    let until = Instant::now() + SEND;
    while Instant::now() < until {
        sel.run_once(Some(Duration::from_millis(20)))?;
    }
    assert_eq!(*quiet_seen.borrow(), [], "the quiet connection was closed");
    Ok(())
}

#[test]
fn a_producer_waiting_for_drained_is_closed_after_the_send_timeout() -> io::Result<()> {
    const SEND: Duration = Duration::from_millis(300);
    common::init_logging();
    let mut sel = DefaultSelector::new()?;
    let (stream, mut peer) = socketpair()?;
    let ended = Rc::new(RefCell::new(None));
    let e = ended.clone();
    let chunk = vec![7u8; 4 << 10];
    let fill = move |conn: &mut Connection<Stream, Bytes>| -> io::Result<()> {
        while conn.queued() < conn.limits().high_water {
            conn.send(&chunk)?;
        }
        Ok(())
    };
    let fill_more = fill.clone();
    let timeouts = Timeouts {
        send: Some(SEND),
        ..Timeouts::default()
    };
    // A queue smaller than the socket's buffer: each write takes all of it (the case).
    let limits = Limits {
        high_water: 16 << 10,
        low_water: 4 << 10,
        ..Limits::default()
    };
    let key = Connection::new(stream, Bytes)
        .with_limits(limits)?
        .with_timeouts(timeouts)
        .register(&mut sel, move |_, conn, event| {
            match event {
                ConnEvent::Drained => fill_more(conn)?,
                ConnEvent::Closed(reason) => *e.borrow_mut() = Some(reason.map(|r| r.kind())),
                _ => {}
            }
            Ok(())
        })?;
    let start = Instant::now();
    Connection::<Stream, Bytes>::with(&mut sel, &key, fill)??;
    run_until(&mut sel, "the send timeout", || ended.borrow().is_some())?;
    assert_eq!(*ended.borrow(), Some(Some(ErrorKind::TimedOut)));
    assert!(
        start.elapsed() >= SEND,
        "closed after {:?}",
        start.elapsed()
    );
    read_to_eof_or_reset(&mut peer);
    Ok(())
}

#[test]
fn a_silent_peer_is_closed_after_the_idle_timeout_a_talkative_one_is_not() -> io::Result<()> {
    talkative_then_silent(true)
}

#[test]
fn a_peer_that_talks_to_a_connection_that_never_replies_is_not_idle() -> io::Result<()> {
    talkative_then_silent(false) // bytes in count as much as bytes out
}

/// A peer sends a line every 100 ms for three idle timeouts (echoed back, if `echo`), then
/// nothing: the connection stays open, then is closed by the idle timeout.
fn talkative_then_silent(echo: bool) -> io::Result<()> {
    const IDLE: Duration = Duration::from_millis(300);
    let timeouts = Timeouts {
        idle: Some(IDLE),
        ..Timeouts::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (key, seen) = timed_connection(
        &mut sel,
        a,
        LineCodec::new(64),
        Limits::default(),
        timeouts,
        echo,
    )?;
    // Talkative for three idle timeouts: a line every 100 ms.
    let start = Instant::now();
    let mut last = start;
    while start.elapsed() < IDLE * 3 {
        last = Instant::now(); // the connection's last byte moves after this
        peer.write_all(b"hi\n")?;
        let want = seen.borrow().len() + 1;
        run_until(&mut sel, "the line", || seen.borrow().len() >= want)?;
        if echo {
            let mut reply = [0u8; 3];
            peer.read_exact(&mut reply)?;
        }
        let pause = Instant::now() + Duration::from_millis(100);
        while Instant::now() < pause {
            sel.run_once(Some(Duration::from_millis(20)))?;
        }
    }
    assert!(
        sel.get_key(&key).is_ok(),
        "closed while talking: {:?}",
        seen.borrow()
    );
    // Then silent.
    run_until(&mut sel, "the idle timeout", || {
        seen.borrow().last() == Some(&Seen::Closed(Some(ErrorKind::TimedOut)))
    })?;
    assert!(
        last.elapsed() >= IDLE,
        "closed {:?} after the last line was sent",
        last.elapsed()
    );
    // A timeout is routine, logged at debug level; a cap passed is a warning.
    assert!(logged(&[
        "DEBUG",
        "idle timeout: no byte either way for 0.300 s"
    ]));
    assert!(!logged(&["WARN", "idle timeout"]));
    assert!(sel.is_empty());
    expect_eof(&mut peer);
    Ok(())
}

#[test]
fn a_peer_that_connects_and_says_nothing_is_closed_after_the_idle_timeout() -> io::Result<()> {
    let timeouts = Timeouts {
        idle: Some(Duration::from_millis(100)),
        frame: Some(Duration::from_millis(50)), // never starts: no byte of a frame
        ..Timeouts::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (_, seen) = timed_connection(
        &mut sel,
        a,
        LineCodec::new(64),
        Limits::default(),
        timeouts,
        true,
    )?;
    run_until(&mut sel, "the idle timeout", || !seen.borrow().is_empty())?;
    assert_eq!(*seen.borrow(), [Seen::Closed(Some(ErrorKind::TimedOut))]);
    assert!(logged(&["idle timeout: no byte either way for 0.100 s"]));
    expect_eof(&mut peer);
    Ok(())
}

#[test]
fn a_closed_connection_leaves_no_timer_behind() -> io::Result<()> {
    // Deadlines an hour away, the frame's earlier than the idle one: a line begun moves the
    // connection's timer from the idle deadline to the frame's. Once the connection is
    // closed, neither may be left pending: `run()` returns as soon as nothing is registered,
    // instead of waiting out a timer of a connection that is gone.
    let timeouts = Timeouts {
        idle: Some(Duration::from_secs(3600)),
        frame: Some(Duration::from_secs(1800)),
        ..Timeouts::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let (key, seen) = timed_connection(
        &mut sel,
        a,
        LineCodec::new(4096),
        Limits::default(),
        timeouts,
        true,
    )?;
    peer.write_all(b"a line begun")?;
    // Once the start of the line is read, the frame deadline replaces the idle one.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let conn: &mut Connection<Stream, LineCodec> = sel.source_mut(&key).expect("open");
        if conn.buffered() == 12 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the start of the line was not read"
        );
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    peer.shutdown(std::net::Shutdown::Write)?; // the line ends at end of file
    common::run_returns_promptly(&mut sel, "a closed connection's timer is pending")?;
    assert_eq!(
        *seen.borrow(),
        [
            Seen::Frame(b"a line begun".to_vec()),
            Seen::PeerClosed,
            Seen::Closed(None)
        ]
    );

    // A connection the program unregisters itself (no `Closed`) takes its timer along too.
    let (a, _peer) = socketpair()?;
    let (key, _) = timed_connection(&mut sel, a, Bytes, Limits::default(), timeouts, true)?;
    sel.run_once(Some(Duration::ZERO))?; // its timer is armed
    sel.unregister(&key)?;
    common::run_returns_promptly(&mut sel, "an unregistered connection's timer is pending")
}

#[test]
fn debug_shows_the_buffers_counters_and_settings() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let shown = Rc::new(RefCell::new(Vec::new()));
    let log = shown.clone();
    Connection::new(a, LineCodec::new(4096)).register(&mut sel, move |_sel, conn, event| {
        if let ConnEvent::Frame(line) = event {
            if line == b"one" {
                assert_eq!(conn.buffered(), 3, "\"two\" is undecoded during \"one\"");
            }
            log.borrow_mut().push(format!("{conn:?}"));
        }
        Ok(())
    })?;
    peer.write_all(b"one\ntwo")?; // one read: "two" is still undecoded during "one"'s event
    run_until(&mut sel, "the first line", || !shown.borrow().is_empty())?;
    let shown = shown.borrow()[0].clone();
    for field in [
        "Connection {",
        "buffered_in: 3,",
        "queued_out: 0,",
        "received: 7,",
        "sent: 0,",
        "paused: false,",
        "state: Open,",
        "limits: Limits {",
        "timeouts: Timeouts {",
    ] {
        assert!(shown.contains(field), "{field:?} not in {shown}");
    }

    // Part of a large send written at once: what is left is shown queued.
    let (a, _peer) = socketpair()?;
    let key = Connection::new(a, Bytes).register(&mut sel, |_, _, _| Ok(()))?;
    Connection::<Stream, Bytes>::with(&mut sel, &key, |conn| conn.send(&pattern(32 << 20)))??;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let conn: &mut Connection<Stream, Bytes> = sel.source_mut(&key).expect("open");
        let (queued, shown) = (conn.queued(), format!("{conn:?}"));
        if queued < 32 << 20 {
            assert!(queued > 0, "the socket took all 32 MiB");
            assert!(
                shown.contains(&format!("queued_out: {queued},")),
                "{queued} queued, shown: {shown}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "nothing was written");
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    Ok(())
}

#[test]
fn a_connection_writes_only_what_is_queued() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let stream = Watched::new(a);
    let writes = stream.writes.clone();
    let lines = Rc::new(Cell::new(0));
    let seen = lines.clone();
    Connection::new(stream, LineCodec::new(64)).register(&mut sel, move |_, conn, event| {
        if let ConnEvent::Frame(line) = event {
            seen.set(seen.get() + 1);
            if line == b"reply" {
                conn.send(b"ok\n")?;
            }
        }
        Ok(())
    })?;
    // Lines that want no reply: read and decoded, and not one write call (not even of 0 bytes).
    for _ in 0..10 {
        peer.write_all(b"quiet\n")?;
        let before = lines.get();
        run_until(&mut sel, "the line", || lines.get() > before)?;
    }
    assert_eq!(writes.get(), 0, "write calls with nothing queued");
    // One reply: one write call, which the socket takes whole.
    peer.write_all(b"reply\n")?;
    run_until(&mut sel, "the line", || lines.get() == 11)?;
    let mut ok = [0u8; 3];
    peer.read_exact(&mut ok)?;
    assert_eq!(&ok, b"ok\n");
    assert_eq!(writes.get(), 1, "write calls for one reply");
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

// --- before `register` -----------------------------------------------------------------------

/// What is sent before `register` (a greeting) goes out at once, without waiting for the peer
/// to send anything first; a `close()` before `register` flushes it, then closes.
#[test]
fn what_is_sent_before_register_goes_out_at_once() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let mut conn = Connection::new(a, LineCodec::new(64));
    conn.send(b"welcome\n")?;
    conn.send_frame(b"say something")?;
    let seen: Events_ = Rc::default();
    let log = seen.clone();
    let key = conn.register(&mut sel, move |_, _, event| {
        log.borrow_mut().push(Seen::from(event));
        Ok(())
    })?;
    assert_eq!(events_of(&sel, &key), Some(EVENT_READ | EVENT_WRITE));
    sel.run_once(Some(TIMEOUT))?;
    peer.set_read_timeout(Some(TIMEOUT))?;
    let mut got = [0u8; 22];
    peer.read_exact(&mut got)?;
    assert_eq!(&got, b"welcome\nsay something\n");
    assert_eq!(
        events_of(&sel, &key),
        Some(EVENT_READ),
        "write interest off once sent"
    );
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());

    let (b, mut peer) = socketpair()?;
    let mut conn = Connection::new(b, Bytes);
    conn.send(b"busy, try later\n")?;
    conn.close();
    let (key, seen) = {
        let seen: Events_ = Rc::default();
        let log = seen.clone();
        let key = conn.register(&mut sel, move |_, _, event| {
            log.borrow_mut().push(Seen::from(event));
            Ok(())
        })?;
        (key, seen)
    };
    run_until(
        &mut sel,
        "the connection closed before register to end",
        || !seen.borrow().is_empty(),
    )?;
    assert_eq!(*seen.borrow(), [Seen::Closed(None)]);
    assert!(sel.get_key(&key).is_err(), "still registered");
    let mut got = Vec::new();
    peer.read_to_end(&mut got)?;
    assert_eq!(got, b"busy, try later\n");
    Ok(())
}

/// `conn.key()` is the key `register` returned: in every callback, still at `Closed` (when
/// the registration is gone), and the new key once the connection is registered elsewhere;
/// `NotFound` before `register`.
#[test]
fn a_connection_knows_its_key_from_register_to_closed() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let conn = Connection::new(a, LineCodec::new(64));
    assert_eq!(conn.key().unwrap_err().kind(), ErrorKind::NotFound);
    type Seen = Rc<RefCell<Vec<(&'static str, ConnKey<Stream, LineCodec>, bool)>>>;
    let keys: Seen = Rc::default();
    // Records each event with `conn.key()` and whether that key was registered then.
    let recorder = |keys: &Seen| {
        let k = keys.clone();
        move |sel: &mut DefaultSelector,
              conn: &mut Connection<Stream, LineCodec>,
              event: ConnEvent<&[u8]>| {
            let what = match event {
                ConnEvent::Frame(_) => "frame",
                ConnEvent::Closed(_) => "closed",
                _ => "other",
            };
            let key = conn.key()?;
            k.borrow_mut().push((what, key, sel.get_key(&key).is_ok()));
            Ok(())
        }
    };
    let key = conn.register(&mut sel, recorder(&keys))?;
    let known = key.with(&mut sel, |conn| conn.key())??;
    assert_eq!(known, key, "known from register on, before any callback");
    peer.write_all(b"one\n")?;
    run_until(&mut sel, "the first line", || keys.borrow().len() == 1)?;
    assert_eq!(keys.borrow()[0], ("frame", key, true));
    let conn: Connection<Stream, LineCodec> = sel.detach(&key)?;
    assert_eq!(conn.key()?, key, "the key of its last registration");

    let mut second = DefaultSelector::new()?;
    let (other, _other_peer) = socketpair()?;
    let _taken = second.register(other, EVENT_READ, |_, _, _| Ok(()))?; // slot 0 here
    let moved = conn.register(&mut second, recorder(&keys))?;
    assert_ne!(moved, key, "a new registration, a new key");
    peer.write_all(b"two\n")?;
    drop(peer);
    run_until(&mut second, "the connection to close", || {
        keys.borrow()
            .last()
            .is_some_and(|(what, ..)| *what == "closed")
    })?;
    assert_eq!(
        keys.borrow()[1..],
        [
            ("frame", moved, true),
            ("other", moved, true), // PeerClosed
            ("closed", moved, false)
        ]
    );
    Ok(())
}

/// A `ConnKey` reaches its connection from another's callback: `send` and `send_frame` queue
/// and write at once (true); they answer false, and leave the caller alone, when the recipient
/// is closing, gone, refuses the frame, or is the caller itself; a send that takes the
/// recipient over its hard cap ends the recipient (its own `Closed`), not the sender. Keys are
/// `FileObj`s and hash by registration.
#[test]
fn a_conn_key_reaches_its_connection_and_keeps_its_errors() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let limits = Limits {
        hard_cap: 64 << 10,
        soft_cap: 64 << 10,
        high_water: 16 << 10,
        low_water: 4 << 10,
        ..Limits::default()
    };
    let mut recipients = Vec::new();
    let mut peers = Vec::new();
    let mut logs = Vec::new();
    for _ in 0..3 {
        let (a, peer) = socketpair()?;
        let log: Events_ = Rc::default();
        let l = log.clone();
        let conn = Connection::new(a, LineCodec::new(8)).with_limits(limits)?;
        recipients.push(conn.register(&mut sel, move |_, _, event| {
            l.borrow_mut().push(Seen::from(event));
            Ok(())
        })?);
        peers.push(peer);
        logs.push(log);
    }
    let [ok, closing, capped] = [recipients[0], recipients[1], recipients[2]];
    assert_eq!(sel.get_key(&ok)?, ok.key(), "a ConnKey is a file object");
    use selectloop::FileObj;
    assert_eq!(ok.fileno(), ok.key().fd());
    assert_eq!(ok.registration(), ok.key().registration());
    assert_eq!(SelectorKey::from(ok), ok.key());
    assert_eq!(format!("{ok:?}"), format!("ConnKey({:?})", ok.key()));
    let set: std::collections::HashSet<_> = recipients.iter().copied().collect();
    assert!(set.contains(&ok) && set.len() == 3);
    use std::hash::BuildHasher;
    let state = std::hash::RandomState::new();
    assert_ne!(
        state.hash_one(ok),
        state.hash_one(closing),
        "keys hash by registration"
    );
    assert_eq!(
        state.hash_one(ok),
        state.hash_one(ok.key()),
        "as their SelectorKey does"
    );
    assert!(closing.with(&mut sel, |conn| conn.close()).is_ok());

    let (s, mut sender_peer) = socketpair()?;
    let sender_log: Events_ = Rc::default();
    let l = sender_log.clone();
    let answers: Rc<RefCell<Vec<bool>>> = Rc::default();
    let a = answers.clone();
    let sender =
        Connection::new(s, LineCodec::new(8)).register(&mut sel, move |sel, conn, event| {
            if let ConnEvent::Frame(_) = &event {
                let me = conn.key()?;
                a.borrow_mut().extend([
                    ok.send(sel, b"raw\n"),
                    ok.send_frame(sel, b"framed"),
                    ok.send_frame(sel, b"far too long for 8"), // the codec refuses it
                    closing.send(sel, b"late\n"),
                    me.send(sel, b"to myself\n"), // its own callback: conn.send is for that
                ]);
                // Queued each time, until one send leaves more than the hard cap queued (how
                // much the socket takes first depends on the platform): that one is queued
                // too, and ends the recipient; the next is refused.
                let chunk = vec![b'x'; 256 << 10];
                let queued = (0..256).take_while(|_| capped.send(sel, &chunk)).count();
                a.borrow_mut().push(queued > 0 && queued < 256);
                a.borrow_mut().push(capped.send(sel, b"after\n"));
            }
            l.borrow_mut().push(Seen::from(event));
            Ok(())
        })?;
    sender_peer.write_all(b"go\n")?;
    run_until(&mut sel, "the capped recipient to close", || {
        logs[2]
            .borrow()
            .contains(&Seen::Closed(Some(ErrorKind::OutOfMemory)))
    })?;
    assert_eq!(
        *answers.borrow(),
        [true, true, false, false, false, true, false]
    );
    assert_eq!(
        *sender_log.borrow(),
        [Seen::Frame(b"go".to_vec())],
        "the sender goes on"
    );
    assert!(sel.get_key(&sender).is_ok());
    let mut got = [0u8; 11];
    peers[0].set_read_timeout(Some(TIMEOUT))?;
    peers[0].read_exact(&mut got)?;
    assert_eq!(&got, b"raw\nframed\n");
    assert_eq!(*logs[0].borrow(), []);
    Ok(())
}
