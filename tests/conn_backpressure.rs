//! Back-pressure: a connection stops reading, and frames wait, while more than its high-water
//! mark is queued, until the queue is down to the low-water mark; and the limits that set the
//! marks (`Limits`), refused when contradictory — over real socket pairs.

mod common;

use common::conn::{
    connection, events_of, frame_limits, frames_and_closed_last, pattern, pipelining,
    read_all_on_a_thread, reply_to, until_closed, Events_, OnFrame, Seen, Watched, REPLY,
};
use common::{run_until, socketpair, Stream, TIMEOUT};
use selectloop::{
    Bytes, ConnEvent, Connection, DefaultSelector, Limits, LineCodec, Timeouts, EVENT_READ,
    EVENT_WRITE,
};
use std::io::{self, ErrorKind, Read, Write};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

// --- Limits -------------------------------------------------------------------------------------

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

// --- Reading paused over the high-water mark ----------------------------------------------------

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

// --- Frames that wait over the high-water mark --------------------------------------------------

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
