//! Buffered connections: large writes, write interest, back-pressure, framing over a real
//! socket, protocol errors, graceful close, half-close, abort and resets.

mod common;

use common::{expect_eof, logged, run_until, socketpair, Stream, TIMEOUT};
use selectloop::{
    Bytes, ConnEvent, Connection, DefaultSelector, Events, LengthPrefixed, Limits, LineCodec,
    SelectorKey, EVENT_READ, EVENT_WRITE,
};
use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

/// What a connection's callback saw, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    Frame(Vec<u8>),
    PeerClosed,
    Closed(Option<ErrorKind>),
}

type Events_ = Rc<RefCell<Vec<Seen>>>;

/// Registers `stream` as a connection with `codec` that records its events and, if `echo`,
/// sends every frame back.
fn connection<C>(
    sel: &mut DefaultSelector,
    stream: Stream,
    codec: C,
    limits: Limits,
    echo: bool,
) -> io::Result<(SelectorKey, Events_)>
where
    C: selectloop::Codec<Item = Vec<u8>, Frame = [u8]>,
{
    common::init_logging();
    let seen: Events_ = Rc::default();
    let log = seen.clone();
    let key = Connection::new(stream, codec)
        .with_limits(limits)?
        .register(sel, move |_, conn, event| {
            match event {
                ConnEvent::Frame(frame) => {
                    if echo {
                        conn.send_frame(&frame)?;
                    }
                    log.borrow_mut().push(Seen::Frame(frame));
                }
                ConnEvent::PeerClosed => log.borrow_mut().push(Seen::PeerClosed),
                ConnEvent::Closed(e) => log.borrow_mut().push(Seen::Closed(e.map(|e| e.kind()))),
            }
            Ok(())
        })?;
    Ok((key, seen))
}

fn events_of(sel: &DefaultSelector, key: &SelectorKey) -> Option<Events> {
    sel.get_key(key).ok().map(|k| k.events())
}

/// A pattern that shows reordering or loss: byte i is a function of i.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

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
    assert_eq!(
        events_of(&sel, &key),
        Some(EVENT_READ),
        "WRITE still on after draining"
    );
    assert!(seen.borrow().is_empty());
    Ok(())
}

#[test]
fn high_water_mark_stops_reading_from_a_peer_that_never_reads() -> io::Result<()> {
    const SENT: usize = 8 << 20;
    let limits = Limits {
        high_water: 256 << 10,
        low_water: 64 << 10,
        read_chunk: 16 << 10,
    };
    let mut sel = DefaultSelector::new()?;
    let (a, peer) = socketpair()?;
    let (key, _seen) = connection(&mut sel, a, Bytes, limits, true)?; // an echo
    let mut writer_end = peer.try_clone()?;
    let writer = thread::spawn(move || writer_end.write_all(&pattern(SENT)));
    let queued = |sel: &mut DefaultSelector| {
        Connection::<Stream, Bytes>::with(sel, &key, |conn| conn.queued()).expect("registered")
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
            },
            "low_water (11) is above high_water (10)",
        ),
        (
            Limits {
                high_water: 0,
                low_water: usize::MAX,
                read_chunk: 1,
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
        },
        Limits {
            high_water: 0,
            low_water: 0,
            read_chunk: 1,
        },
        Limits {
            high_water: usize::MAX,
            low_water: 0,
            read_chunk: Limits::MAX_READ_CHUNK + 1,
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
                conn.send_frame(&line)?;
                log.borrow_mut().push(Seen::Frame(line));
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
