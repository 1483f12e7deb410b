//! A connection's sending side (`src/streams/write_queue.rs`): large writes to slow readers,
//! write interest that follows what is queued (after a move to another selector, and for what
//! is sent before `register`, too), `Drained`, the hard cap, and the memory of emptied queues
//! — over real socket pairs.

mod common;

use common::conn::{
    connection, events_of, pattern, queued, read_to_eof_or_reset, Events_, Seen, Watched,
    WatchedConn,
};
use common::{run_until, socketpair, Stream, TIMEOUT};
use selectloop::{
    Bytes, ConnEvent, Connection, DefaultSelector, Limits, LineCodec, SelectorKey, EVENT_READ,
    EVENT_WRITE,
};
use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, Read, Write};
use std::rc::Rc;
use std::thread;
use std::time::{Duration, Instant};

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

// --- Before `register` --------------------------------------------------------------------------

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

// --- Drain notification -------------------------------------------------------------------------

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

// --- The hard cap -------------------------------------------------------------------------------

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

// --- Memory -------------------------------------------------------------------------------------

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
