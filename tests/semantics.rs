//! The selector's semantics, one test per rule, written once for every backend.
//!
//! Each test is a function generic over the [`Backend`]; the `instantiate!` macro at the bottom
//! runs the whole list against each backend, so a new backend is one line there.

#[macro_use]
mod common;

use common::{expect_eof, is_open, logged, run_until, select_some, selector, socketpair, Stream};
use selectloop::{
    Backend, ErrorAction, Events, FileObj, Selector, SelectorKey, EVENT_READ, EVENT_WRITE,
};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::{self, ErrorKind, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

type Count = Rc<Cell<u32>>;

fn count() -> Count {
    Rc::new(Cell::new(0))
}

/// A callback that counts its calls and does nothing else.
fn counting<B: Backend>(
    count: &Count,
) -> impl FnMut(&mut Selector<B>, &mut Stream, Events) -> io::Result<()> + 'static {
    let count = count.clone();
    move |_, _, _| {
        count.set(count.get() + 1);
        Ok(())
    }
}

// 1. Level-triggered like Python: unread data is reported again on the next select.
fn level_triggered<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer) = socketpair()?;
    let key = sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    peer.write_all(b"x")?;
    for round in 0..3 {
        let ready = select_some(&mut sel, "unread data to be reported")?;
        assert_eq!(ready, [(key, EVENT_READ)], "round {round}");
    }
    Ok(())
}

// 2. The mask is a subset of the registered events; a connected socket is writable at once.
fn write_ready_and_mask_subset<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (w, _peer_w) = socketpair()?;
    let (r, mut peer_r) = socketpair()?;
    let wkey = sel.register(w, EVENT_WRITE, |_, _, _| Ok(()))?;
    let rkey = sel.register(r, EVENT_READ, |_, _, _| Ok(()))?;
    assert_eq!(
        select_some(&mut sel, "WRITE readiness")?,
        [(wkey, EVENT_WRITE)]
    );
    peer_r.write_all(b"x")?; // r is now readable and writable, but registered for READ only
    let mut ready = select_some(&mut sel, "READ readiness")?;
    ready.sort_by_key(|(key, _)| key.fd());
    let mut expected = vec![(wkey, EVENT_WRITE), (rkey, EVENT_READ)];
    expected.sort_by_key(|(key, _)| key.fd());
    assert_eq!(ready, expected);
    Ok(())
}

// 3. Peer close: READ becomes ready and read returns 0.
fn peer_close_makes_read_ready_with_eof<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, peer) = socketpair()?;
    let eof = Rc::new(Cell::new(false));
    let seen = eof.clone();
    let key = sel.register(a, EVENT_READ, move |_, s, mask| {
        assert_eq!(mask, EVENT_READ);
        seen.set(s.read(&mut [0u8; 16])? == 0);
        Ok(())
    })?;
    drop(peer);
    assert_eq!(
        select_some(&mut sel, "hang-up as READ")?,
        [(key, EVENT_READ)]
    );
    run_until(&mut sel, "read() == 0 after peer close", || eof.get())
}

// 3. HUP/ERR reach a WRITE-only registration as WRITE, never as READ.
fn peer_close_reaches_write_only_registration<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, peer) = socketpair()?;
    let key = sel.register(a, EVENT_WRITE, |_, _, _| Ok(()))?;
    drop(peer);
    for _ in 0..2 {
        assert_eq!(
            select_some(&mut sel, "hang-up as WRITE")?,
            [(key, EVENT_WRITE)]
        );
    }
    Ok(())
}

// 4. A callback may register new sources; they are served from the next select on.
fn register_from_callback<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer) = socketpair()?;
    let (b, mut peer_b) = socketpair()?;
    let served = count();
    let mut pending = Some(b);
    let inner = served.clone();
    sel.register(a, EVENT_READ, move |sel, s, _| {
        s.read_exact(&mut [0u8; 1])?;
        if let Some(b) = pending.take() {
            sel.register(b, EVENT_READ, counting(&inner))?;
        }
        Ok(())
    })?;
    peer.write_all(b"x")?;
    let deadline = Instant::now() + common::TIMEOUT;
    while sel.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "callback never registered the new source"
        );
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    peer_b.write_all(b"y")?;
    run_until(&mut sel, "the new source's callback", || served.get() > 0)
}

/// Selects until exactly `n` keys are ready in one batch.
fn select_n<B: Backend>(sel: &mut Selector<B>, n: usize) -> io::Result<selectloop::Ready> {
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let ready = sel.select(Some(Duration::from_millis(50)))?;
        if ready.len() == n {
            return Ok(ready);
        }
        assert!(
            Instant::now() < deadline,
            "waited for {n} ready keys, last batch {ready:?}"
        );
    }
}

// 4. A source unregistered during a batch gets no further callback in that batch.
fn unregister_other_within_batch<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer_a) = socketpair()?;
    let (b, mut peer_b) = socketpair()?;
    let calls = count();
    let keys = Rc::new(RefCell::new(Vec::new()));
    for s in [a, b] {
        let (calls, all) = (calls.clone(), keys.clone());
        let key = sel.register(s, EVENT_READ, move |sel, s, _| {
            calls.set(calls.get() + 1);
            let me = s.fileno();
            for other in all.borrow().iter().filter(|k: &&SelectorKey| k.fd() != me) {
                if sel.get_map().contains(other) {
                    sel.unregister(other)?;
                }
            }
            Ok(())
        })?;
        keys.borrow_mut().push(key);
    }
    peer_a.write_all(b"x")?;
    peer_b.write_all(b"x")?;
    for (key, mask) in select_n(&mut sel, 2)? {
        sel.dispatch(&key, mask)?;
    }
    assert_eq!(calls.get(), 1, "the unregistered source was still called");
    assert_eq!(sel.len(), 1);
    let (mut closed, open) = if is_open(&peer_a) {
        (peer_b, peer_a)
    } else {
        (peer_a, peer_b)
    };
    expect_eof(&mut closed);
    assert!(is_open(&open), "the surviving source was closed");
    Ok(())
}

// 4. A registration that reuses the slab slot (and usually the fd number) of one unregistered
// in the same batch never receives the old registration's stale event.
fn reused_slot_gets_no_stale_event<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer_a) = socketpair()?;
    let (b, mut peer_b) = socketpair()?;
    let keys = Rc::new(RefCell::new(Vec::new()));
    let replaced = Rc::new(RefCell::new(Vec::new()));
    let peers = Rc::new(RefCell::new(Vec::new()));
    let fresh_calls = count();
    for s in [a, b] {
        let (all, replaced, peers) = (keys.clone(), replaced.clone(), peers.clone());
        let fresh_calls = fresh_calls.clone();
        let key = sel.register(s, EVENT_READ, move |sel: &mut Selector<B>, s, _| {
            if !replaced.borrow().is_empty() {
                return Ok(());
            }
            let me = s.fileno();
            let other = *all
                .borrow()
                .iter()
                .find(|k: &&SelectorKey| k.fd() != me)
                .unwrap();
            sel.unregister(&other)?; // closed now: its fd number and slot are free
            let (fresh, peer) = socketpair()?;
            peers.borrow_mut().push(peer);
            let new = sel.register(fresh, EVENT_READ | EVENT_WRITE, counting(&fresh_calls))?;
            replaced.borrow_mut().push((other, new));
            Ok(())
        })?;
        keys.borrow_mut().push(key);
    }
    peer_a.write_all(b"x")?;
    peer_b.write_all(b"x")?;
    for (key, mask) in select_n(&mut sel, 2)? {
        sel.dispatch(&key, mask)?;
    }
    assert_eq!(replaced.borrow().len(), 1);
    assert_eq!(
        fresh_calls.get(),
        0,
        "the new registration got the old one's event"
    );
    // It is served normally from the next select on (it is writable).
    run_until(&mut sel, "the new registration's own event", || {
        fresh_calls.get() > 0
    })
}

// 4. A callback may modify and unregister itself; its source stays usable until it returns.
fn callback_modifies_and_unregisters_itself<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer) = socketpair()?;
    let masks = Rc::new(RefCell::new(Vec::new()));
    let seen = masks.clone();
    sel.register(a, EVENT_READ, move |sel, s, mask| {
        seen.borrow_mut().push(mask);
        if mask == EVENT_READ {
            s.read_exact(&mut [0u8; 1])?;
            sel.modify(s, EVENT_WRITE)?;
        } else {
            sel.unregister(s)?;
            s.write_all(b"bye")?; // still open until this callback returns
        }
        Ok(())
    })?;
    peer.write_all(b"x")?;
    run_until(&mut sel, "READ then WRITE", || masks.borrow().len() == 2)?;
    assert_eq!(*masks.borrow(), [EVENT_READ, EVENT_WRITE]);
    assert!(sel.is_empty());
    let mut got = [0u8; 3];
    peer.read_exact(&mut got)?;
    assert_eq!(&got, b"bye");
    expect_eof(&mut peer);
    Ok(())
}

// 5. modify READ -> WRITE takes effect on the next select.
fn modify_takes_effect_on_next_select<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer) = socketpair()?;
    let key = sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    assert!(sel.select(Some(Duration::ZERO))?.is_empty());
    let key = {
        let modified = sel.modify(&key, EVENT_WRITE)?;
        assert_eq!(modified.events(), EVENT_WRITE);
        assert_eq!(sel.get_key(&key)?.events(), EVENT_WRITE);
        modified
    };
    peer.write_all(b"x")?; // readable too now, but READ is no longer registered
    assert_eq!(
        select_some(&mut sel, "WRITE after modify")?,
        [(key, EVENT_WRITE)]
    );
    let key = sel.modify(&key, EVENT_READ)?;
    assert_eq!(
        select_some(&mut sel, "READ after modify")?,
        [(key, EVENT_READ)]
    );
    Ok(())
}

// 5. A replaced callback runs from the next dispatch; replacing oneself finishes the current call.
fn set_callback_takes_effect_on_next_dispatch<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    let calls = Rc::new(RefCell::new(Vec::new()));
    let log = calls.clone();
    let key = sel.register(a, EVENT_WRITE, move |_, _, _| {
        log.borrow_mut().push("first");
        Ok(())
    })?;
    sel.run_once(Some(common::TIMEOUT))?;
    let log = calls.clone();
    sel.set_callback(&key, move |sel: &mut Selector<B>, s: &mut Stream, _| {
        log.borrow_mut().push("second");
        let third = log.clone();
        sel.set_callback(s, move |_, _: &mut Stream, _| {
            third.borrow_mut().push("third");
            Ok(())
        })?;
        log.borrow_mut().push("second, after replacing itself");
        Ok(())
    })?;
    for _ in 0..3 {
        sel.run_once(Some(common::TIMEOUT))?;
    }
    let expected = [
        "first",
        "second",
        "second, after replacing itself",
        "third",
        "third",
    ];
    assert_eq!(*calls.borrow(), expected);
    Ok(())
}

// 6. Some(ZERO) polls: it returns at once, with nothing ready.
fn zero_timeout_polls<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    let start = Instant::now();
    assert!(sel.select(Some(Duration::ZERO))?.is_empty());
    assert!(start.elapsed() < common::TIMEOUT, "Some(ZERO) blocked");
    Ok(())
}

// 6. Some(d) with nothing ready returns an empty list, after at least d.
fn timeout_is_never_early<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    for d in [1, 15, 50].map(Duration::from_millis) {
        let start = Instant::now();
        assert!(sel.select(Some(d))?.is_empty());
        let took = start.elapsed();
        assert!(took >= d, "select(Some({d:?})) returned after {took:?}");
    }
    // Also with nothing registered, and for a sub-millisecond timeout.
    let mut empty = selector::<B>()?;
    let d = Duration::from_micros(300);
    let start = Instant::now();
    assert!(empty.select(Some(d))?.is_empty());
    assert!(start.elapsed() >= d);
    Ok(())
}

// 6. None blocks until an event arrives (here from another thread).
fn none_blocks_until_event<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer) = socketpair()?;
    let key = sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    let (go, started) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || -> io::Result<()> {
        started.recv().expect("main thread gone");
        std::thread::sleep(Duration::from_millis(20)); // let select(None) start blocking
        peer.write_all(b"x")
    });
    go.send(()).expect("writer thread gone");
    assert_eq!(sel.select(None)?, [(key, EVENT_READ)]);
    writer.join().expect("writer panicked")
}

// 7. unregister closes the source; detach hands it back open.
fn unregister_closes_detach_keeps_open<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer_a) = socketpair()?;
    let (b, mut peer_b) = socketpair()?;
    let key_a = sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    let key_b = sel.register(b, EVENT_READ, |_, _, _| Ok(()))?;
    assert_eq!(sel.unregister(&key_a)?, key_a);
    expect_eof(&mut peer_a);
    let mut b: Stream = sel.detach(&key_b)?;
    assert!(sel.is_empty());
    assert!(is_open(&peer_b), "detach closed the source");
    b.write_all(b"still open")?;
    let mut got = [0u8; 10];
    peer_b.read_exact(&mut got)?;
    assert_eq!(&got, b"still open");
    // A detached source can be registered again.
    let key = sel.register(b, EVENT_WRITE, |_, _, _| Ok(()))?;
    assert_eq!(
        select_some(&mut sel, "the re-registered source")?,
        [(key, EVENT_WRITE)]
    );
    Ok(())
}

// 7. Dropping the selector closes every source; so does close().
fn drop_and_close_close_all_sources<B: Backend>() -> io::Result<()> {
    for explicit_close in [false, true] {
        let mut sel = selector::<B>()?;
        let mut peers = Vec::new();
        for _ in 0..5 {
            let (a, peer) = socketpair()?;
            sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
            peers.push(peer);
        }
        if explicit_close {
            sel.close()?;
        } else {
            drop(sel);
        }
        for peer in &mut peers {
            expect_eof(peer);
        }
    }
    Ok(())
}

// 8. Error kinds: Python's KeyError and ValueError as AlreadyExists, NotFound, InvalidInput.
fn error_kinds<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    let (stranger, _peer2) = socketpair()?;
    let fd = a.fileno();
    let kind = |r: io::Result<SelectorKey>| r.map(|_| ()).unwrap_err().kind();

    // Registering the same fd twice: a 'static borrow of one leaked socket lets safe code try.
    let leaked: &'static Stream = Box::leak(Box::new(a));
    #[cfg(unix)]
    let borrowed = std::os::fd::AsFd::as_fd(leaked);
    #[cfg(windows)]
    let borrowed = std::os::windows::io::AsSocket::as_socket(leaked);
    let key = sel.register(borrowed, EVENT_READ, |_, _, _| Ok(()))?;
    let err = sel
        .register(borrowed, EVENT_WRITE, |_, _, _| Ok(()))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(
        err.to_string().contains(&format!("register: fd {fd}")),
        "{err}"
    );
    assert_eq!(
        sel.get_key(&key)?.events(),
        EVENT_READ,
        "the failed register changed the key"
    );

    // Empty events.
    let (c, _peer3) = socketpair()?;
    assert_eq!(
        kind(sel.register(c, Events::NONE, |_, _, _| Ok(()))),
        ErrorKind::InvalidInput
    );
    let err = sel.modify(&key, Events::NONE).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains(&format!("modify: fd {fd}")),
        "{err}"
    );

    // Unknown fileobj.
    let sfd = stranger.fileno();
    for (op, err) in [
        (
            "unregister",
            sel.unregister(&stranger).map(|_| ()).unwrap_err(),
        ),
        (
            "modify",
            sel.modify(&stranger, EVENT_READ).map(|_| ()).unwrap_err(),
        ),
        ("get_key", sel.get_key(&stranger).map(|_| ()).unwrap_err()),
        (
            "detach",
            sel.detach::<Stream, _>(&stranger).map(|_| ()).unwrap_err(),
        ),
        (
            "set_callback",
            sel.set_callback(&stranger, counting::<B>(&count()))
                .map(|_| ())
                .unwrap_err(),
        ),
    ] {
        assert_eq!(err.kind(), ErrorKind::NotFound, "{op}");
        assert!(
            err.to_string().contains(&format!("{op}: fd {sfd}")),
            "{op}: {err}"
        );
    }

    // The wrong source type for detach and set_callback: refused, registration kept.
    let err = sel.detach::<Stream, _>(&key).map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(
        kind(sel.set_callback(&key, counting::<B>(&count()))),
        ErrorKind::InvalidInput
    );
    assert_eq!(sel.get_key(&key)?, key);
    Ok(())
}

// 8. A source cannot be detached from its own callback, which holds it.
fn detach_from_own_callback_is_busy<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    let result = Rc::new(RefCell::new(None));
    let out = result.clone();
    sel.register(a, EVENT_WRITE, move |sel, s, _| {
        *out.borrow_mut() = Some(sel.detach::<Stream, _>(s).map(|_| ()).unwrap_err().kind());
        Ok(())
    })?;
    run_until(&mut sel, "the callback", || result.borrow().is_some())?;
    assert_eq!(*result.borrow(), Some(ErrorKind::ResourceBusy));
    assert_eq!(sel.len(), 1, "the failed detach unregistered the source");
    Ok(())
}

// 8. A callback's error is logged with its fd and closes that registration only.
fn callback_error_closes_only_its_registration<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (bad, mut bad_peer) = socketpair()?;
    let (good, mut good_peer) = socketpair()?;
    let bad_fd = bad.fileno();
    sel.register(bad, EVENT_READ, |_, _, _| {
        Err(io::Error::other("semantics-test-failure"))
    })?;
    let served = count();
    let inner = served.clone();
    sel.register(good, EVENT_READ, move |_, s, _| {
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf)?;
        s.write_all(&buf)?;
        inner.set(inner.get() + 1);
        Ok(())
    })?;
    bad_peer.write_all(b"x")?;
    good_peer.write_all(b"1")?;
    run_until(&mut sel, "the good callback", || served.get() > 0)?;
    let deadline = Instant::now() + common::TIMEOUT;
    while sel.len() != 1 {
        assert!(
            Instant::now() < deadline,
            "the failing registration was not closed"
        );
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    expect_eof(&mut bad_peer);
    assert!(
        logged(&[&format!("fd {bad_fd}"), "semantics-test-failure"]),
        "error not logged"
    );
    good_peer.write_all(b"2")?;
    run_until(&mut sel, "the other connection", || served.get() == 2)?;
    Ok(())
}

// 8. WouldBlock from a callback is spurious readiness, not an error: the registration stays.
fn would_block_is_not_an_error<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer) = socketpair()?;
    let calls = count();
    let inner = calls.clone();
    sel.register(a, EVENT_READ, move |_, s, _| {
        inner.set(inner.get() + 1);
        // Read the one byte the peer sent, then read again: nothing left, so WouldBlock.
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf)?;
        let n = s.read(&mut buf)?;
        Err(io::Error::other(format!(
            "read {n} more bytes, expected WouldBlock"
        )))
    })?;
    peer.write_all(b"x")?;
    run_until(&mut sel, "the first call", || calls.get() == 1)?;
    assert_eq!(sel.len(), 1, "WouldBlock closed the registration");
    assert!(is_open(&peer));
    peer.write_all(b"y")?;
    run_until(&mut sel, "a second call", || calls.get() == 2)
}

// 8. A callback that unregisters its own source and then fails: the error still reaches the
// error handler (with the key it had), unless it is spurious readiness (`WouldBlock`).
fn error_after_self_unregister_reaches_the_handler<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let seen = Rc::new(RefCell::new(Vec::new()));
    let out = seen.clone();
    sel.set_error_handler(move |key, err| {
        out.borrow_mut().push((key.fd(), err.kind()));
        ErrorAction::Close
    });
    let (a, _pa) = socketpair()?;
    let (b, _pb) = socketpair()?;
    let spurious = sel.register(a, EVENT_WRITE, |sel, s, _| {
        sel.unregister(s)?;
        Err(ErrorKind::WouldBlock.into())
    })?;
    let failing = sel.register(b, EVENT_WRITE, |sel, s, _| {
        sel.unregister(s)?;
        Err(ErrorKind::InvalidData.into())
    })?;
    run_until(&mut sel, "the failing callback", || {
        !seen.borrow().is_empty()
    })?;
    sel.run_once(Some(Duration::ZERO))?; // both are writable at once: both have run by now
    assert_eq!(*seen.borrow(), [(failing.fd(), ErrorKind::InvalidData)]);
    assert!(
        sel.is_empty(),
        "{spurious:?} or {failing:?} still registered"
    );
    Ok(())
}

// 8. The error handler can keep, close, or stop run() with the error.
fn error_handler_actions<B: Backend>() -> io::Result<()> {
    for action in [
        ErrorAction::Keep,
        ErrorAction::Pause,
        ErrorAction::Close,
        ErrorAction::Stop,
    ] {
        let mut sel = selector::<B>()?;
        let (a, mut peer) = socketpair()?;
        let seen = Rc::new(RefCell::new(Vec::new()));
        let out = seen.clone();
        sel.set_error_handler(move |key, err| {
            out.borrow_mut().push((key.fd(), err.to_string()));
            action
        });
        let key = sel.register(a, EVENT_WRITE, |_, _, _| Err(io::Error::other("handled")))?;
        let result = sel.run_once(Some(common::TIMEOUT));
        assert_eq!(
            *seen.borrow(),
            [(key.fd(), "handled".to_string())],
            "{action:?}"
        );
        match action {
            ErrorAction::Keep => {
                result?;
                assert_eq!(sel.get_key(&key)?, key);
                assert!(!sel.is_paused(&key)?, "kept, but paused after one failure");
            }
            ErrorAction::Pause => {
                result?;
                assert_eq!(sel.get_key(&key)?, key);
                assert!(sel.is_paused(&key)?, "not paused");
                assert_eq!(sel.pauses(), 1);
            }
            ErrorAction::Close => {
                result?;
                assert!(sel.is_empty());
                expect_eof(&mut peer);
            }
            ErrorAction::Stop => {
                assert_eq!(result.unwrap_err().to_string(), "handled");
                assert_eq!(sel.run().unwrap_err().to_string(), "handled");
                assert_eq!(sel.len(), 1);
            }
            other => panic!("an action this test does not know: {other:?}"),
        }
    }
    Ok(())
}

// 8. A panicking callback propagates, but its registration is removed and its source closed,
// and the selector keeps serving the others.
fn panic_leaves_selector_consistent<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (bad, mut bad_peer) = socketpair()?;
    let (good, mut good_peer) = socketpair()?;
    sel.register(bad, EVENT_READ, |_, _, _| {
        panic!("callback panic (expected by the test)")
    })?;
    let served = count();
    let inner = served.clone();
    sel.register(good, EVENT_READ, move |sel, s, _| {
        let mut buf = [0u8; 1];
        if s.read(&mut buf)? == 0 {
            sel.unregister(s)?;
        } else {
            inner.set(inner.get() + 1);
        }
        Ok(())
    })?;
    bad_peer.write_all(b"x")?;
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        assert!(
            Instant::now() < deadline,
            "the panicking callback never ran"
        );
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            sel.run_once(Some(Duration::from_millis(50)))
        }));
        if result.is_err() {
            break;
        }
    }
    assert_eq!(
        sel.len(),
        1,
        "the panicking registration is still registered"
    );
    expect_eof(&mut bad_peer);
    good_peer.write_all(b"1")?;
    run_until(&mut sel, "the other connection after the panic", || {
        served.get() == 1
    })?;
    drop(good_peer);
    sel.run()?; // returns once the last source is unregistered
    assert!(sel.is_empty());
    Ok(())
}

// 9. 1,000 registrations all ready at once: each dispatched exactly once per select.
// (select(2) cannot hold 2,000 descriptors: FD_SETSIZE is 1024 on Unix, 512 sockets on
// Windows, so SelectSelector gets 250 pairs; `select_refuses_past_fd_setsize` tests the limit.)
fn thousand_ready_at_once<B: Backend>() -> io::Result<()> {
    let is_select = std::any::type_name::<B>().ends_with("SelectBackend");
    let n = if is_select { 250 } else { 1000 };
    let _many = (!is_select).then(common::many_descriptors);
    let mut sel = selector::<B>()?;
    let mut peers = Vec::with_capacity(n);
    let counts: Vec<Count> = (0..n).map(|_| count()).collect();
    for c in &counts {
        let (a, peer) = socketpair()?;
        sel.register(a, EVENT_READ, counting(c))?;
        peers.push(peer);
    }
    for peer in &mut peers {
        peer.write_all(b"x")?;
    }
    let ready = select_n(&mut sel, n)?;
    let distinct: HashSet<_> = ready.iter().map(|(key, _)| key.fd()).collect();
    assert_eq!(distinct.len(), n, "a key appeared twice");
    assert!(ready.iter().all(|&(_, mask)| mask == EVENT_READ));
    for round in 1..=2 {
        // Level-triggered and nothing read: all ready again, each called once more.
        assert_eq!(sel.run_once(Some(common::TIMEOUT))?, n, "round {round}");
        for (i, c) in counts.iter().enumerate() {
            assert_eq!(c.get(), round, "registration {i} in round {round}");
        }
    }
    Ok(())
}

// 10. One entry per key: READ and WRITE together come as one pair with mask READ | WRITE.
fn read_and_write_coalesce<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer) = socketpair()?;
    let key = sel.register(a, EVENT_READ | EVENT_WRITE, |_, _, _| Ok(()))?;
    peer.write_all(b"x")?;
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let ready = select_some(&mut sel, "READ | WRITE")?;
        assert_eq!(ready.len(), 1, "one key reported twice: {ready:?}");
        if ready[0] == (key, EVENT_READ | EVENT_WRITE) {
            return Ok(());
        }
        assert!(Instant::now() < deadline, "never READ | WRITE: {ready:?}");
    }
}

// 10. A hang-up is cut to the registered interest: READ only for a READ registration.
fn hangup_is_cut_to_interest<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, peer) = socketpair()?;
    let key = sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    drop(peer);
    assert_eq!(select_some(&mut sel, "hang-up")?, [(key, EVENT_READ)]);
    Ok(())
}

// run() returns once stop() is called from a callback, and when nothing is registered.
fn run_stops<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    let calls = count();
    let inner = calls.clone();
    sel.register(a, EVENT_WRITE, move |sel, _, _| {
        inner.set(inner.get() + 1);
        if inner.get() == 3 {
            sel.stop();
        }
        Ok(())
    })?;
    sel.run()?;
    assert_eq!(calls.get(), 3);
    sel.stop();
    sel.run()?; // stop() before run(): returns at once
    assert_eq!(calls.get(), 3);
    let mut empty = selector::<B>()?;
    empty.run()?; // nothing registered: returns at once
    Ok(())
}

// select(2) refuses what does not fit its fixed-size sets, with InvalidInput, instead of
// writing past them.
fn select_refuses_past_fd_setsize() -> io::Result<()> {
    let _many = common::many_descriptors();
    let mut sel = selector::<selectloop::SelectBackend>()?;
    let mut kept = Vec::new();
    let err = loop {
        let (a, peer) = socketpair()?;
        kept.push(peer);
        match sel.register(a, EVENT_READ, |_, _, _| Ok(())) {
            Ok(_) => assert!(sel.len() <= 1024, "registered more than FD_SETSIZE"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("FD_SETSIZE"), "{err}");
    #[cfg(unix)]
    assert!(sel.get_map().iter().all(|key| key.fd() < 1024));
    #[cfg(windows)]
    assert_eq!(sel.len(), 512);
    // What was registered still works.
    kept[0].write_all(b"x")?;
    assert_eq!(select_some(&mut sel, "the first registration")?.len(), 1);
    Ok(())
}

#[test]
fn select_selector_refuses_past_fd_setsize() -> io::Result<()> {
    select_refuses_past_fd_setsize()
}

// get_map, len and get_key agree with what is registered; keys serve as lookups.
fn map_and_keys<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _pa) = socketpair()?;
    let (b, _pb) = socketpair()?;
    let a_fd = a.fileno();
    let ka = sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    let kb = sel.register(b, EVENT_READ | EVENT_WRITE, |_, _, _| Ok(()))?;
    assert_eq!(ka.fd(), a_fd);
    assert_eq!(sel.len(), 2);
    let map = sel.get_map();
    assert_eq!(map.len(), 2);
    assert!(map.contains(&ka));
    assert_eq!(map.get(&kb), Some(kb));
    let mut keys: Vec<_> = map.iter().collect();
    keys.sort_by_key(|k| k.fd());
    let mut expected = vec![ka, kb];
    expected.sort_by_key(|k| k.fd());
    assert_eq!(keys, expected);
    sel.unregister(&ka)?;
    assert!(!sel.get_map().contains(&ka));
    assert_eq!(sel.get_map().get(&ka), None);
    Ok(())
}

// A key names its registration: once that is gone, lookups by the key fail, even when the same
// fd is registered again.
fn stale_key_lookups_fail<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    let old = sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    let a: Stream = sel.detach(&old)?;
    let new = sel.register(a, EVENT_WRITE, |_, _, _| Ok(()))?;
    assert_eq!(old.fd(), new.fd());
    assert_eq!(sel.get_key(&old).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        sel.modify(&old, EVENT_READ).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        sel.unregister(&old).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(!sel.get_map().contains(&old));
    assert_eq!(sel.get_key(&new)?, new);
    #[cfg(unix)]
    assert_eq!(
        sel.get_key(&new.fd())?,
        new,
        "a raw fd looks up whatever is registered"
    );
    Ok(())
}

// dispatch() calls a callback only for events its key still waits for: not for WRITE on a
// READ-only key, nor for an event that modify() removed after select() reported it.
fn dispatch_respects_the_registered_events<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer) = socketpair()?;
    let calls = count();
    let key = sel.register(a, EVENT_READ, counting(&calls))?;
    sel.dispatch(&key, EVENT_WRITE)?;
    assert_eq!(calls.get(), 0, "called for WRITE on a READ-only key");
    peer.write_all(b"x")?;
    let ready = select_some(&mut sel, "READ")?;
    assert_eq!(ready, [(key, EVENT_READ)]);
    sel.modify(&key, EVENT_WRITE)?; // READ no longer wanted since the select
    for (key, mask) in ready {
        sel.dispatch(&key, mask)?;
    }
    assert_eq!(calls.get(), 0, "called for an event modify() removed");
    sel.dispatch(&key, EVENT_READ | EVENT_WRITE)?; // the WRITE part still counts
    assert_eq!(calls.get(), 1);
    Ok(())
}

/// Registers `n` sources that are all writable at once and expects one `select` to report all
/// of them: the backend's event buffer must grow past its first size.
fn n_ready_in_one_select<B: Backend>(n: usize) -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let mut peers = Vec::with_capacity(n);
    for _ in 0..n {
        let (a, peer) = socketpair()?;
        sel.register(a, EVENT_WRITE, |_, _, _| Ok(()))?;
        peers.push(peer);
    }
    let ready = select_n(&mut sel, n)?;
    assert_eq!(ready.len(), n);
    Ok(())
}

// Just past each backend's first event-buffer size, one select still reports every ready key:
// EpollSelector starts with room for 64 events; polling's buffer holds 1,024.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn epoll_reports_65_ready_in_one_select() -> io::Result<()> {
    n_ready_in_one_select::<selectloop::EpollBackend>(65)
}

#[test]
fn default_reports_1025_ready_in_one_select() -> io::Result<()> {
    let _many = common::many_descriptors();
    n_ready_in_one_select::<selectloop::PollingBackend>(1025)
}

// Registrations and removals are logged at debug with the fd.
fn registrations_are_logged<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    let key = sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    assert!(logged(&["DEBUG", &format!("register fd {}", key.fd())]));
    sel.unregister(&key)?;
    assert!(logged(&["DEBUG", &format!("unregister fd {}", key.fd())]));
    Ok(())
}

instantiate! {
    backends: [
        default_selector = selectloop::PollingBackend,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        epoll_selector = selectloop::EpollBackend,
        poll_selector = selectloop::PollBackend,
        select_selector = selectloop::SelectBackend,
    ],
    tests: [
        level_triggered,
        write_ready_and_mask_subset,
        peer_close_makes_read_ready_with_eof,
        peer_close_reaches_write_only_registration,
        register_from_callback,
        unregister_other_within_batch,
        reused_slot_gets_no_stale_event,
        callback_modifies_and_unregisters_itself,
        modify_takes_effect_on_next_select,
        set_callback_takes_effect_on_next_dispatch,
        zero_timeout_polls,
        timeout_is_never_early,
        none_blocks_until_event,
        unregister_closes_detach_keeps_open,
        drop_and_close_close_all_sources,
        error_kinds,
        detach_from_own_callback_is_busy,
        callback_error_closes_only_its_registration,
        would_block_is_not_an_error,
        error_handler_actions,
        panic_leaves_selector_consistent,
        thousand_ready_at_once,
        read_and_write_coalesce,
        hangup_is_cut_to_interest,
        run_stops,
        map_and_keys,
        stale_key_lookups_fail,
        registrations_are_logged,
        dispatch_respects_the_registered_events,
        error_after_self_unregister_reaches_the_handler,
    ]
}
