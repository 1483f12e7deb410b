//! A connection's deadlines (`src/streams/deadlines.rs`): the frame, send and idle timeouts,
//! the soft cap's grace period, and no timer left behind by a closed connection — over real
//! socket pairs.

mod common;

use common::conn::{
    connection, fill_a_peer_that_never_reads, pattern, queued, read_to_eof_or_reset,
    timed_connection, Events_, Seen, Watched, WatchedConn,
};
use common::{expect_eof, logged, run_until, socketpair, Stream, TIMEOUT};
use selectloop::{
    Bytes, ConnEvent, Connection, DefaultSelector, Limits, LineCodec, SelectorKey, Timeouts,
};
use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

// --- Frame timeout ------------------------------------------------------------------------------

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
    let (mut sel, peer, key, seen) = line_connection_with_frame_timeout(FRAME)?;
    (&peer).write_all(b"begun")?;
    let pipeliner = sel.call_repeating(Duration::from_millis(100), move |_| {
        let _ = (&peer).write_all(b" ended\nbegun");
    });
    run_for(&mut sel, FRAME * 4)?;
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
fn a_frame_timeout_does_not_run_between_frames() -> io::Result<()> {
    // Whole lines, then silence: nothing is undecoded, so no frame has begun, and the frame
    // timeout (unlike an idle timeout, off here) must not close the connection however long
    // the silence lasts.
    const FRAME: Duration = Duration::from_millis(100);
    let (mut sel, peer, key, seen) = line_connection_with_frame_timeout(FRAME)?;
    (&peer).write_all(b"one\ntwo\n")?;
    run_until(&mut sel, "the two lines", || seen.borrow().len() == 2)?;
    run_for(&mut sel, FRAME * 4)?;
    assert!(
        sel.get_key(&key).is_ok(),
        "closed between frames: {:?}",
        seen.borrow().last()
    );
    assert_eq!(
        *seen.borrow(),
        [Seen::Frame(b"one".to_vec()), Seen::Frame(b"two".to_vec())]
    );
    drop(peer);
    Ok(())
}

/// A `LineCodec` connection with only a frame timeout, recording its events, and its peer.
fn line_connection_with_frame_timeout(
    frame: Duration,
) -> io::Result<(DefaultSelector, Stream, SelectorKey, Events_)> {
    let timeouts = Timeouts {
        frame: Some(frame),
        ..Timeouts::default()
    };
    let mut sel = DefaultSelector::new()?;
    let (a, peer) = socketpair()?;
    let codec = LineCodec::new(64);
    let (key, seen) = timed_connection(&mut sel, a, codec, Limits::default(), timeouts, false)?;
    Ok((sel, peer, key, seen))
}

/// Runs the loop for `time`, in iterations of at most 20 ms.
fn run_for(sel: &mut DefaultSelector, time: Duration) -> io::Result<()> {
    let start = Instant::now();
    while start.elapsed() < time {
        sel.run_once(Some(Duration::from_millis(20)))?;
    }
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

// --- Send timeout -------------------------------------------------------------------------------

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

// --- Idle timeout -------------------------------------------------------------------------------

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

// --- The soft cap -------------------------------------------------------------------------------

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

// --- Timers -------------------------------------------------------------------------------------

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
