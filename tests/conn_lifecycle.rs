//! Ending a connection (`src/streams/lifecycle.rs`): `close` (graceful), `abort`, the peer's
//! half-close and resets, what the callback may still receive after each ending, and errors
//! returned by the callback — over real socket pairs.

mod common;

use common::conn::{
    connection, fill_a_peer_that_never_reads, frame_limits, frames_and_closed_last, pattern,
    pipelining, read_all_on_a_thread, read_to_eof_or_reset, reply_to, until_closed, Events_,
    OnFrame, Seen, Watched,
};
use common::{expect_eof, logged, run_until, socketpair, Stream, TIMEOUT};
use selectloop::{Bytes, ConnEvent, Connection, DefaultSelector, Limits, LineCodec, Timeouts};
use std::cell::Cell;
#[cfg(unix)] // only peer_reset_of_an_idle_connection_is_reported_as_a_reset uses it
use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

// --- Closing: graceful, abort, resets -----------------------------------------------------------

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

// --- Ending a connection whose peer does not read -----------------------------------------------

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

// --- What the callback may still receive after each ending --------------------------------------

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

// --- Errors from the callback -------------------------------------------------------------------

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

#[test]
fn at_closed_the_connection_holds_no_buffer() -> io::Result<()> {
    // The peer sends the start of a frame and its end of file: the frame is cut short (an
    // error for `LengthPrefixed`), and at `Closed` the bytes that waited are gone — nothing
    // buffered, no memory held — whatever the connection held before.
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    let ended = Rc::new(Cell::new(None));
    let e = ended.clone();
    let conn = Connection::new(a, selectloop::LengthPrefixed::new(1 << 20));
    conn.register(&mut sel, move |_, conn, event| {
        if let ConnEvent::Closed(reason) = event {
            let kind = reason.map(|e| e.kind());
            e.set(Some((kind, conn.buffered(), conn.buffer_memory())));
        }
        Ok(())
    })?;
    peer.write_all(&[0, 0, 0x10, 0])?; // announces 4 KiB
    peer.write_all(&pattern(3000))?; // sends 3000 bytes of it
    peer.shutdown(std::net::Shutdown::Write)?;
    run_until(&mut sel, "the close", || ended.get().is_some())?;
    assert_eq!(
        ended.get(),
        Some((Some(ErrorKind::UnexpectedEof), 0, 0)),
        "(the error, buffered(), buffer_memory()) at Closed"
    );
    Ok(())
}
