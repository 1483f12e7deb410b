//! CPython's `Lib/test/test_selectors.py`, ported to selectloop.
//!
//! One Rust test per Python test, named after it and generic over the backend; `cpython_tests!`
//! at the bottom instantiates them for each backend, as Python's `DefaultSelectorTestCase`,
//! `EpollSelectorTestCase`, ... instantiate `BaseSelectorTestCase`. Each test's doc comment names
//! the Python test and, where selectloop differs by design, how.
//!
//! Two differences run through the whole file. The selector owns its sources: `unregister`,
//! `close` and dropping the selector close them, and nothing can close a registered descriptor
//! behind the selector's back. And a registration carries a callback instead of `data`, so "the
//! key's data" is checked by dispatching to the callback. Python's int file objects are played by
//! [`Fd`], a bare descriptor number.
//!
//! Not ported:
//! - `BaseSelectorTestCase.test_modify_unregister`: it mocks the OS poller so that `modify` fails;
//!   the OS does not refuse `modify` of an open, registered socket, so the case is a unit test
//!   with the crate's scripted backend instead (`selector::tests::failed_os_modify_unregisters_and_closes`).
//! - `BaseSelectorTestCase.test_fileno`: `Selector` has no `fileno()` (Python's test does
//!   nothing for selectors without one).
//! - `BaseSelectorTestCase.test_select_interrupt_exc`: it needs a signal handler that raises out
//!   of `select()`; Rust has no exceptions, selectloop has no signal handling, and nothing can
//!   abort a blocking `select` from outside.
//! - `KqueueSelectorTestCase.test_register_bad_fd`: a closed descriptor cannot be registered at
//!   all: `register` takes an owned, and so open, source.

mod common;

use common::{Stream, TIMEOUT};
use selectloop::{
    Backend, ErrorAction, Events, FileObj, PollingBackend, Selector, SelectorKey, EVENT_READ,
    EVENT_WRITE,
};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[cfg(unix)]
type RawSource = std::os::fd::RawFd;
#[cfg(windows)]
type RawSource = std::os::windows::io::RawSocket;

/// A bare descriptor number: the int that Python's tests pass as a file object.
struct Fd(RawSource);

#[cfg(unix)]
impl std::os::fd::AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawSource {
        self.0
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsRawSocket for Fd {
    fn as_raw_socket(&self) -> RawSource {
        self.0
    }
}

/// The number Python's tests use for a file object that was never registered.
const UNKNOWN: Fd = Fd(999_999);

/// The callback of registrations whose callback the test does not look at.
fn noop<B: Backend, S>(_: &mut Selector<B>, _: &mut S, _: Events) -> io::Result<()> {
    Ok(())
}

/// A selector whose callback errors are returned by `dispatch`, not logged and closed, so that
/// a failing callback fails the test.
fn strict_selector<B: Backend>() -> io::Result<Selector<B>> {
    let mut sel = common::selector::<B>()?;
    sel.set_error_handler(|_, _| ErrorAction::Stop);
    Ok(sel)
}

#[track_caller]
fn assert_err<T: Debug>(result: io::Result<T>, kind: ErrorKind) {
    match result {
        Ok(value) => panic!("expected a {kind:?} error, got Ok({value:?})"),
        Err(e) => assert_eq!(e.kind(), kind, "{e}"),
    }
}

/// `BaseSelectorTestCase.test_register`: the key names the fd and the events, the callback
/// (Python: `data`) is called with the registered object itself, and empty events or a second
/// registration of the fd are refused. Python's "events 999999" and "fd -10" cannot be built
/// (`Events` holds only READ and WRITE; an owned source is an open fd); a refused source is
/// dropped, which closes it.
fn test_register<B: Backend>() -> io::Result<()> {
    let mut sel = strict_selector::<B>()?;
    let (rd, mut wr) = common::socketpair()?;
    // Shared through `Rc`, so that the same object can be offered again.
    let rd = Rc::new(rd);
    let called = Rc::new(Cell::new(None));
    let key = sel.register(Rc::clone(&rd), EVENT_READ, {
        let (called, rd_ptr) = (Rc::clone(&called), Rc::as_ptr(&rd));
        move |_: &mut Selector<B>, sock: &mut Rc<Stream>, mask| {
            called.set(Some((std::ptr::eq(Rc::as_ptr(sock), rd_ptr), mask)));
            Ok(())
        }
    })?;
    assert_eq!(key.fd(), rd.fileno());
    assert_eq!(key.events(), EVENT_READ);
    sel.dispatch(&key, EVENT_READ)?;
    assert_eq!(
        called.take(),
        Some((true, EVENT_READ)),
        "key.fileobj, key.data"
    );

    // Unknown events: bits outside READ | WRITE do not make an `Events`; empty is refused.
    assert_eq!(Events::from_bits(4), None);
    let (other, mut other_peer) = common::socketpair()?;
    assert_err(
        sel.register(other, Events::NONE, noop),
        ErrorKind::InvalidInput,
    );
    common::expect_eof(&mut other_peer);

    // Register twice, then the same fd through another object.
    assert_err(
        sel.register(Rc::clone(&rd), EVENT_READ, noop),
        ErrorKind::AlreadyExists,
    );
    assert_err(
        sel.register(Box::new(Rc::clone(&rd)), EVENT_READ, noop),
        ErrorKind::AlreadyExists,
    );
    assert_eq!(Rc::strong_count(&rd), 2, "refused sources are dropped");

    // The first registration is untouched.
    assert_eq!(sel.len(), 1);
    assert_eq!(sel.get_key(&*rd)?, key);
    wr.write_all(b"x")?;
    assert_eq!(
        common::select_some(&mut sel, "rd readable")?,
        [(key, EVENT_READ)]
    );
    Ok(())
}

/// `BaseSelectorTestCase.test_unregister`: unregister returns the key; an unknown or already
/// unregistered file object is `NotFound` (Python: `KeyError`). Unlike Python, unregister closes
/// the source.
fn test_unregister<B: Backend>() -> io::Result<()> {
    let mut sel = common::selector::<B>()?;
    let (rd, mut wr) = common::socketpair()?;
    let key = sel.register(rd, EVENT_READ, noop)?;
    assert!(common::is_open(&wr));
    assert_eq!(sel.unregister(&key)?, key);
    assert!(sel.is_empty());
    common::expect_eof(&mut wr);

    assert_err(sel.unregister(&UNKNOWN), ErrorKind::NotFound);
    assert_err(sel.unregister(&key), ErrorKind::NotFound);
    Ok(())
}

/// `BaseSelectorTestCase.test_unregister_after_fd_close`: unregistering by bare fd number works
/// after the sockets were closed. Nothing can close a socket the selector owns, so here their
/// peers close (both hang-ups are seen first) and `unregister` closes ours.
fn test_unregister_after_fd_close<B: Backend>() -> io::Result<()> {
    let mut sel = common::selector::<B>()?;
    let (rd, rd_peer) = common::socketpair()?;
    let (wr, wr_peer) = common::socketpair()?;
    let (r, w) = (rd.fileno(), wr.fileno());
    let seen = [
        Rc::new(Cell::new(Events::NONE)),
        Rc::new(Cell::new(Events::NONE)),
    ];
    let record = |seen: &Rc<Cell<Events>>| {
        let seen = Rc::clone(seen);
        move |_: &mut Selector<B>, _: &mut Stream, mask: Events| {
            seen.set(mask);
            Ok(())
        }
    };
    let rd_key = sel.register(rd, EVENT_READ, record(&seen[0]))?;
    let wr_key = sel.register(wr, EVENT_WRITE, record(&seen[1]))?;
    drop((rd_peer, wr_peer));
    common::run_until(&mut sel, "both hang-ups", || {
        seen[0].get() == EVENT_READ && seen[1].get() == EVENT_WRITE
    })?;
    let mut ready = sel.select(Some(Duration::ZERO))?;
    ready.sort_by_key(|(key, _)| key.fd());
    let mut expected = [(rd_key, EVENT_READ), (wr_key, EVENT_WRITE)];
    expected.sort_by_key(|(key, _)| key.fd());
    assert_eq!(
        ready, expected,
        "each hang-up as the event its key waits for"
    );

    assert_eq!(sel.unregister(&Fd(r))?, rd_key);
    assert_eq!(sel.unregister(&Fd(w))?, wr_key);
    assert!(sel.is_empty());
    assert_err(sel.get_key(&Fd(r)), ErrorKind::NotFound);
    assert_err(sel.get_key(&Fd(w)), ErrorKind::NotFound);
    Ok(())
}

/// `BaseSelectorTestCase.test_unregister_after_fd_close_and_reuse`: fd numbers closed and
/// reused by other sockets. Python lets `dup2` reuse them under the selector; here only
/// `unregister` closes a registered socket, so the numbers are reused after it: stale keys must
/// not reach the new registrations, and unregistering by number finds the new ones.
#[cfg(unix)]
fn test_unregister_after_fd_close_and_reuse<B: Backend>() -> io::Result<()> {
    let mut sel = strict_selector::<B>()?;
    // The OS hands out the lowest free numbers, but tests on other threads of this process may
    // take a freed number first: then try again.
    for _ in 0..100 {
        let (rd, wr) = common::socketpair()?;
        let (r, w) = (rd.fileno(), wr.fileno());
        let old_r = sel.register(rd, EVENT_READ, noop)?;
        let old_w = sel.register(wr, EVENT_WRITE, noop)?;
        // In this order the new `rd` may also reuse the old one's slot, the worst case.
        sel.unregister(&old_w)?;
        sel.unregister(&old_r)?;

        let (a, b) = common::socketpair()?;
        let (rd2, wr2) = if a.fileno() == r { (a, b) } else { (b, a) };
        if (rd2.fileno(), wr2.fileno()) != (r, w) {
            continue;
        }
        assert_err(sel.get_key(&old_r), ErrorKind::NotFound);
        let calls = Rc::new(Cell::new(0));
        let count = || {
            let calls = Rc::clone(&calls);
            move |_: &mut Selector<B>, _: &mut Stream, _: Events| {
                calls.set(calls.get() + 1);
                Ok(())
            }
        };
        let new_r = sel.register(rd2, EVENT_READ, count())?;
        let new_w = sel.register(wr2, EVENT_WRITE, count())?;
        assert_ne!(new_r, old_r, "a new registration gets a new key");
        assert_ne!(new_w, old_w, "a new registration gets a new key");
        sel.dispatch(&old_r, EVENT_READ)?;
        sel.dispatch(&old_w, EVENT_WRITE)?;
        assert_eq!(
            calls.get(),
            0,
            "a stale key reached a socket that reused its fd"
        );
        sel.dispatch(&new_r, EVENT_READ)?;
        sel.dispatch(&new_w, EVENT_WRITE)?;
        assert_eq!(calls.get(), 2);

        assert_eq!(sel.unregister(&Fd(r))?, new_r);
        assert_eq!(sel.unregister(&Fd(w))?, new_w);
        assert!(sel.is_empty());
        return Ok(());
    }
    panic!("the closed fd numbers were never reused");
}

/// `BaseSelectorTestCase.test_unregister_after_socket_close`: unregistering by the socket object
/// itself works after it was closed. We hold a registered socket only in its callback and cannot
/// close it there, so each callback shuts its socket down, then unregisters it by the object; the
/// selector closes it when the callback returns.
fn test_unregister_after_socket_close<B: Backend>() -> io::Result<()> {
    let mut sel = strict_selector::<B>()?;
    let (rd, mut rd_peer) = common::socketpair()?;
    let (wr, mut wr_peer) = common::socketpair()?;
    let unregistered = Rc::new(RefCell::new(Vec::new()));
    let close_then_unregister = || {
        let unregistered = Rc::clone(&unregistered);
        move |sel: &mut Selector<B>, sock: &mut Stream, _: Events| {
            sock.shutdown(Shutdown::Both)?;
            let key = sel.unregister(sock)?;
            unregistered.borrow_mut().push(key);
            Ok(())
        }
    };
    let rd_key = sel.register(rd, EVENT_READ, close_then_unregister())?;
    let wr_key = sel.register(wr, EVENT_WRITE, close_then_unregister())?;
    rd_peer.shutdown(Shutdown::Write)?; // rd reads EOF: readable
    common::run_until(&mut sel, "both callbacks", || {
        unregistered.borrow().len() == 2
    })?;

    let mut keys = unregistered.take();
    keys.sort_by_key(|key| key.fd());
    let mut expected = [rd_key, wr_key];
    expected.sort_by_key(|key| key.fd());
    assert_eq!(keys, expected);
    assert!(sel.is_empty());
    assert_eq!(sel.run_once(Some(Duration::ZERO))?, 0);
    common::expect_eof(&mut rd_peer);
    common::expect_eof(&mut wr_peer);
    Ok(())
}

/// `BaseSelectorTestCase.test_modify`: modifying the events returns the new key, which
/// `get_key` returns too, and the OS watches the new events; modifying the data (here
/// `set_callback`) keeps the events and switches the callback; an unknown file object is
/// `NotFound`; and neither re-registers (Python mocks `register`; here a re-registration would
/// issue a new key). `unregister` closes `rd`, so the data part uses a second pair.
fn test_modify<B: Backend>() -> io::Result<()> {
    let mut sel = strict_selector::<B>()?;
    let (rd, _wr) = common::socketpair()?;
    let key = sel.register(rd, EVENT_READ, noop)?;
    assert!(
        sel.select(Some(Duration::ZERO))?.is_empty(),
        "nothing to read"
    );
    let key2 = sel.modify(&key, EVENT_WRITE)?;
    assert_ne!(key.events(), key2.events());
    assert_eq!(sel.get_key(&key)?, key2); // the same registration...
    assert_eq!(sel.get_key(&key)?.events(), EVENT_WRITE); // ...with its new events
    assert_eq!(sel.select(Some(Duration::ZERO))?, [(key2, EVENT_WRITE)]);
    sel.unregister(&key)?;

    let (rd, _wr2) = common::socketpair()?;
    let calls = Rc::new(RefCell::new(Vec::new()));
    let data = |name: &'static str| {
        let calls = Rc::clone(&calls);
        move |_: &mut Selector<B>, _: &mut Stream, _: Events| {
            calls.borrow_mut().push(name);
            Ok(())
        }
    };
    let key = sel.register(rd, EVENT_READ, data("d1"))?;
    let key2 = sel.set_callback(&key, data("d2"))?;
    assert_eq!(key.events(), key2.events());
    assert_eq!(sel.get_key(&key)?, key2);
    sel.dispatch(&key2, EVENT_READ)?;
    assert_eq!(*calls.borrow(), ["d2"]);

    assert_err(sel.modify(&UNKNOWN, EVENT_READ), ErrorKind::NotFound);

    assert_eq!(sel.set_callback(&key, data("d3"))?, key);
    assert_eq!(sel.modify(&key, EVENT_READ)?, key);
    sel.dispatch(&key, EVENT_READ)?;
    assert_eq!(*calls.borrow(), ["d2", "d3"]);
    Ok(())
}

/// `BaseSelectorTestCase.test_close`: `close` forgets every registration. Python's later
/// `get_key` (`RuntimeError`) and stale mapping (`KeyError`) cannot be written here: `close`
/// consumes the selector and the map borrows it. Unlike Python, `close` closes the sources.
fn test_close<B: Backend>() -> io::Result<()> {
    let mut sel = common::selector::<B>()?;
    let (rd, mut rd_peer) = common::socketpair()?;
    let (wr, mut wr_peer) = common::socketpair()?;
    sel.register(rd, EVENT_READ, noop)?;
    sel.register(wr, EVENT_WRITE, noop)?;
    assert_eq!(sel.get_map().len(), 2);
    assert!(common::is_open(&rd_peer) && common::is_open(&wr_peer));

    sel.close()?;
    common::expect_eof(&mut rd_peer);
    common::expect_eof(&mut wr_peer);
    Ok(())
}

/// `BaseSelectorTestCase.test_context_manager`: leaving the `with` block closes the selector;
/// here dropping it at the end of its scope does, and (unlike Python) closes the sources too.
fn test_context_manager<B: Backend>() -> io::Result<()> {
    let (rd, mut rd_peer) = common::socketpair()?;
    let (wr, mut wr_peer) = common::socketpair()?;
    {
        let mut sel = common::selector::<B>()?;
        sel.register(rd, EVENT_READ, noop)?;
        sel.register(wr, EVENT_WRITE, noop)?;
        assert!(common::is_open(&rd_peer) && common::is_open(&wr_peer));
    }
    common::expect_eof(&mut rd_peer);
    common::expect_eof(&mut wr_peer);
    Ok(())
}

/// `BaseSelectorTestCase.test_get_key`: `get_key` returns the registered key, looked up by key,
/// by fd number, or by the source itself (which only its callback holds); an unknown file object
/// is `NotFound`.
fn test_get_key<B: Backend>() -> io::Result<()> {
    let mut sel = strict_selector::<B>()?;
    let (rd, _wr) = common::socketpair()?;
    let fd = rd.fileno();
    let found = Rc::new(Cell::new(None));
    let key = sel.register(rd, EVENT_READ, {
        let found = Rc::clone(&found);
        move |sel: &mut Selector<B>, sock: &mut Stream, _| {
            found.set(Some(sel.get_key(sock)?));
            Ok(())
        }
    })?;
    assert_eq!(sel.get_key(&key)?, key);
    assert_eq!(sel.get_key(&Fd(fd))?, key);
    sel.dispatch(&key, EVENT_READ)?;
    assert_eq!(found.get(), Some(key));

    assert_err(sel.get_key(&UNKNOWN), ErrorKind::NotFound);
    Ok(())
}

/// `BaseSelectorTestCase.test_get_map`: the map is empty, then holds the one key under its fd.
/// Python's map is a live view; ours borrows the selector, so it is taken again after
/// `register`. Python's `del keys[rd]` (`TypeError`) is a compile error here: `SelectorMap` has
/// no mutating method.
fn test_get_map<B: Backend>() -> io::Result<()> {
    let mut sel = common::selector::<B>()?;
    let (rd, _wr) = common::socketpair()?;
    let fd = rd.fileno();
    let keys = sel.get_map();
    assert!(keys.is_empty());
    assert_eq!(keys.len(), 0);
    assert_eq!(keys.iter().count(), 0);
    assert_eq!(keys.get(&rd), None);
    assert!(!keys.contains(&rd));

    let key = sel.register(rd, EVENT_READ, noop)?;
    let keys = sel.get_map();
    assert!(keys.contains(&Fd(fd)));
    assert_eq!(keys.get(&Fd(fd)), Some(key));
    assert_eq!(keys.get(&key), Some(key));
    assert!(!keys.is_empty());
    assert_eq!(keys.len(), 1);
    assert_eq!(keys.iter().map(|k| k.fd()).collect::<Vec<_>>(), [fd]);
    assert_eq!(keys.iter().collect::<Vec<_>>(), [key]);

    assert_eq!(keys.get(&UNKNOWN), None);
    assert!(!keys.contains(&UNKNOWN));
    Ok(())
}

/// `BaseSelectorTestCase.test_select`: of a pair's two ends, registered for READ and WRITE, only
/// the writer is ready, and `select` returns exactly its key with a mask within its events.
fn test_select<B: Backend>() -> io::Result<()> {
    let mut sel = common::selector::<B>()?;
    let (rd, wr) = common::socketpair()?;
    sel.register(rd, EVENT_READ, noop)?;
    let wr_key = sel.register(wr, EVENT_WRITE, noop)?;

    let result = sel.select(None)?;
    for (key, events) in &result {
        assert!(!events.is_empty());
        assert!(key.events().contains(*events), "{key:?}: {events:?}");
    }
    assert_eq!(result, [(wr_key, EVENT_WRITE)]);
    Ok(())
}

/// `BaseSelectorTestCase.test_select_read_write` (gh-110038): a socket registered for both and
/// ready for both is reported with both in one `select`. Python also accepts two pairs for the
/// key; selectloop promises one pair per key, so exactly one is required.
fn test_select_read_write<B: Backend>() -> io::Result<()> {
    let mut sel = common::selector::<B>()?;
    let (sock1, mut sock2) = common::socketpair()?;
    sock2.write_all(b"foo")?;
    let my_key = sel.register(sock1, EVENT_READ | EVENT_WRITE, noop)?;

    // WRITE is ready at once; over loopback TCP (Windows) the data may take a moment to arrive.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let result = sel.select(None)?;
        assert_eq!(result.len(), 1, "one pair per key: {result:?}");
        assert_eq!(result[0].0, my_key);
        if result[0].1 == Events::READ_WRITE {
            return Ok(());
        }
        assert_eq!(result[0].1, EVENT_WRITE);
        assert!(Instant::now() < deadline, "timed out waiting for READ");
    }
}

/// `BaseSelectorTestCase.test_selector`: twelve pairs, each end registered; each round one ready
/// writer sends a message, exactly its reader becomes ready, reads it and unregisters both. The
/// sends and reads are the callbacks, dispatched from `select`'s results; a fixed stride picks
/// the writer instead of `random.choice`, so that a failure repeats.
fn test_selector<B: Backend>() -> io::Result<()> {
    const NUM_SOCKETS: usize = 12;
    const MSG: &[u8] = b" This is a test.";
    let mut sel = strict_selector::<B>()?;
    let bufs = Rc::new(RefCell::new(Vec::new()));
    let mut w2r = HashMap::new();
    for _ in 0..NUM_SOCKETS {
        let (rd, wr) = common::socketpair()?;
        let (r, w) = (rd.fileno(), wr.fileno());
        let bufs = Rc::clone(&bufs);
        sel.register(
            rd,
            EVENT_READ,
            move |sel: &mut Selector<B>, rd: &mut Stream, _| {
                let mut buf = [0; MSG.len()];
                let n = rd.read(&mut buf)?;
                bufs.borrow_mut().push(buf[..n].to_vec());
                sel.unregister(&Fd(w))?;
                sel.unregister(rd)?;
                Ok(())
            },
        )?;
        sel.register(
            wr,
            EVENT_WRITE,
            |_: &mut Selector<B>, wr: &mut Stream, _| wr.write_all(MSG),
        )?;
        w2r.insert(w, r);
    }

    for round in 0..NUM_SOCKETS {
        let ready_writers: Vec<SelectorKey> = sel
            .select(None)?
            .into_iter()
            .filter(|(_, events)| events.is_writable())
            .map(|(key, _)| key)
            .collect();
        assert!(!ready_writers.is_empty(), "no sockets ready for writing");
        let wr = ready_writers[round * 5 % ready_writers.len()];
        sel.dispatch(&wr, EVENT_WRITE)?;

        let deadline = Instant::now() + TIMEOUT;
        let ready_readers = loop {
            let readers: Vec<SelectorKey> = sel
                .select(Some(Duration::from_millis(50)))?
                .into_iter()
                .filter(|(_, events)| events.is_readable())
                .map(|(key, _)| key)
                .collect();
            if !readers.is_empty() {
                break readers;
            }
            assert!(Instant::now() < deadline, "no sockets ready for reading");
        };
        let reader_fds: Vec<_> = ready_readers.iter().map(|key| key.fd()).collect();
        assert_eq!(reader_fds, [w2r[&wr.fd()]]);
        sel.dispatch(&ready_readers[0], EVENT_READ)?;
        assert_err(sel.get_key(&wr), ErrorKind::NotFound);
        w2r.remove(&wr.fd());
    }

    assert!(w2r.is_empty());
    assert_eq!(*bufs.borrow(), vec![MSG.to_vec(); NUM_SOCKETS]);
    assert!(sel.is_empty());
    Ok(())
}

/// `BaseSelectorTestCase.test_empty_select` (issue #23009): polling a selector with nothing
/// registered returns nothing. Python skips it on Windows (`select.select` with empty sets);
/// the IOCP backend has no such limit, so it runs everywhere.
fn test_empty_select<B: Backend>() -> io::Result<()> {
    let mut sel = common::selector::<B>()?;
    assert!(sel.select(Some(Duration::ZERO))?.is_empty());
    assert_eq!(sel.run_once(Some(Duration::ZERO))?, 0);
    Ok(())
}

/// `BaseSelectorTestCase.test_timeout`: a zero timeout polls (ready or not), and a positive one
/// returns nothing only once it has passed. Python's negative timeouts cannot be written
/// (`Duration`); its `unregister(wr)`, which leaves `wr` open, is `detach` here (`unregister`
/// would close it and make `rd` readable); the upper bounds are loosened to [`TIMEOUT`].
fn test_timeout<B: Backend>() -> io::Result<()> {
    let mut sel = common::selector::<B>()?;
    let (rd, wr) = common::socketpair()?;
    let wr_key = sel.register(wr, EVENT_WRITE, noop)?;
    let t = Instant::now();
    assert_eq!(sel.select(Some(Duration::ZERO))?.len(), 1);
    assert!(t.elapsed() < TIMEOUT);

    let _wr: Stream = sel.detach(&wr_key)?;
    sel.register(rd, EVENT_READ, noop)?;
    let t = Instant::now();
    assert!(sel.select(Some(Duration::ZERO))?.is_empty());
    assert!(t.elapsed() < TIMEOUT);

    let timeout = Duration::from_millis(500);
    let t0 = Instant::now();
    assert!(sel.select(Some(timeout))?.is_empty());
    let dt = t0.elapsed();
    assert!(dt >= timeout && dt < timeout + TIMEOUT, "{dt:?}");
    Ok(())
}

/// `BaseSelectorTestCase.test_select_interrupt_noraise`: a wait interrupted by a signal whose
/// handler returns is retried for the time left, so `select` still returns nothing only after
/// its timeout. Python uses SIGALRM with a no-op handler; std has no handler API, so a child
/// shell stops and continues this process once this thread blocks in epoll_wait, poll or select
/// (its wchan), which on Linux makes epoll_wait fail with EINTR even without handlers
/// (signal(7)); poll and select are restarted by the kernel for the time left.
#[cfg(target_os = "linux")]
fn test_select_interrupt_noraise<B: Backend>() -> io::Result<()> {
    // $1 is this thread's wchan file, $2 this process; gives up (exit 3) after 20,000 looks.
    const SCRIPT: &str = r#"
        i=0
        while [ "$i" -lt 20000 ]; do
            read -r w < "$1"
            case "$w" in *poll* | *select*) kill -STOP "$2"; kill -CONT "$2"; exit 0 ;; esac
            i=$((i + 1))
        done
        exit 3
    "#;
    let mut sel = common::selector::<B>()?;
    let (rd, _wr) = common::socketpair()?;
    sel.register(rd, EVENT_READ, noop)?;
    let wchan = std::path::Path::new("/proc")
        .join(std::fs::read_link("/proc/thread-self")?)
        .join("wchan");
    let mut child = std::process::Command::new("sh")
        .args(["-c", SCRIPT, "sh"])
        .arg(&wchan)
        .arg(std::process::id().to_string())
        .spawn()?;

    let timeout = Duration::from_millis(1500);
    let t0 = Instant::now();
    let result = sel.select(Some(timeout));
    let dt = t0.elapsed();
    let status = child.wait()?;
    assert!(result?.is_empty());
    assert!(dt >= timeout, "{dt:?}");
    assert!(
        status.success(),
        "the child never saw this thread wait in the kernel ({status}, {})",
        wchan.display()
    );
    Ok(())
}

/// `ScalableSelectorMixIn.test_above_fd_setsize`: more descriptors than `FD_SETSIZE` (1024),
/// all registered, and one `select` reports every ready one. Python raises `RLIMIT_NOFILE` to
/// its ceiling; here 1,500 pairs (3,000 descriptors) stay well under the limit, and more ready
/// sources than `polling`'s default event buffer (1,024) holds.
fn test_above_fd_setsize<B: Backend>() -> io::Result<()> {
    const NUM_PAIRS: usize = 1500;
    let _many = common::many_descriptors();
    let mut sel = common::selector::<B>()?;
    let mut writers = HashSet::new();
    for _ in 0..NUM_PAIRS {
        let (rd, wr) = common::socketpair()?;
        sel.register(rd, EVENT_READ, noop)?;
        writers.insert(sel.register(wr, EVENT_WRITE, noop)?);
    }
    #[cfg(unix)]
    assert!(sel.get_map().iter().any(|key| key.fd() >= 1024));

    let ready = sel.select(None)?;
    assert_eq!(ready.len(), NUM_PAIRS);
    assert!(ready.iter().all(|(_, events)| *events == EVENT_WRITE));
    let ready: HashSet<SelectorKey> = ready.into_iter().map(|(key, _)| key).collect();
    assert_eq!(ready, writers);
    Ok(())
}

/// `EpollSelectorTestCase.test_register_file`: epoll refuses a regular file (`EPERM`), and the
/// failed registration leaves no key behind. The refused file is also closed (dropped).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn test_register_file<B: Backend>() -> io::Result<()> {
    let mut sel = common::selector::<B>()?;
    let path = std::env::temp_dir().join(format!(
        "selectloop-test_register_file-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = std::fs::File::create(&path)?;
    std::fs::remove_file(&path)?;
    let fd = file.fileno();
    assert_err(
        sel.register(file, EVENT_READ, noop),
        ErrorKind::PermissionDenied,
    );
    assert_err(sel.get_key(&Fd(fd)), ErrorKind::NotFound);
    assert!(sel.is_empty());
    Ok(())
}

/// `KqueueSelectorTestCase.test_empty_select_timeout` (issues #23009, #29255): with nothing
/// registered, a positive timeout is still waited out. Python runs it for kqueue only; it holds
/// for every backend.
fn test_empty_select_timeout<B: Backend>() -> io::Result<()> {
    let mut sel = common::selector::<B>()?;
    let timeout = Duration::from_millis(500);
    let t0 = Instant::now();
    assert!(sel.select(Some(timeout))?.is_empty());
    let dt = t0.elapsed();
    assert!(dt >= timeout && dt < timeout + TIMEOUT, "{dt:?}");
    Ok(())
}

/// `#[test]` wrappers running the named tests with one backend.
macro_rules! instantiate {
    ($backend:ty; $($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$attr])*
            #[test]
            fn $name() -> io::Result<()> {
                let _numbers = crate::common::low_descriptors::<$backend>();
                super::$name::<$backend>()
            }
        )*
    };
}

/// A module of `#[test]`s for one backend: every `BaseSelectorTestCase` test and
/// `test_empty_select_timeout`, plus the named tests of the backend's other Python classes
/// (`ScalableSelectorMixIn`, `EpollSelectorTestCase`, ...).
macro_rules! cpython_tests {
    ($module:ident: $backend:ty $(; $($(#[$attr:meta])* $extra:ident),* $(,)?)?) => {
        mod $module {
            use super::*;

            instantiate!($backend;
                test_register,
                test_unregister,
                test_unregister_after_fd_close,
                #[cfg(unix)]
                test_unregister_after_fd_close_and_reuse,
                test_unregister_after_socket_close,
                test_modify,
                test_close,
                test_context_manager,
                test_get_key,
                test_get_map,
                test_select,
                test_select_read_write,
                test_selector,
                test_empty_select,
                test_timeout,
                #[cfg(target_os = "linux")]
                test_select_interrupt_noraise,
                test_empty_select_timeout,
            );
            $(instantiate!($backend; $($(#[$attr])* $extra),*);)?
        }
    };
}

// `DefaultSelectorTestCase`; `polling` is epoll, kqueue or IOCP, so also `ScalableSelectorMixIn`,
// and on Linux `EpollSelectorTestCase`.
cpython_tests!(default_selector: PollingBackend;
    test_above_fd_setsize,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    test_register_file,
);

// `EpollSelectorTestCase` (with `ScalableSelectorMixIn`).
#[cfg(any(target_os = "linux", target_os = "android"))]
cpython_tests!(epoll_selector: selectloop::EpollBackend;
    test_above_fd_setsize,
    test_register_file,
);

// `PollSelectorTestCase` (with `ScalableSelectorMixIn`).
cpython_tests!(poll_selector: selectloop::PollBackend; test_above_fd_setsize);

// `SelectSelectorTestCase`: not scalable, as in Python.
cpython_tests!(select_selector: selectloop::SelectBackend);
