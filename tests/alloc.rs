//! A loop in steady state allocates nothing: neither the README's `select()` + `dispatch()`
//! loop nor `run_once()`, on any backend. Counted by a global allocator that counts the
//! allocations of the thread that asks (each test runs on a thread of its own).

#[macro_use]
mod common;

use common::{selector, socketpair, Stream};
use selectloop::{
    Backend, Bytes, ConnEvent, Connection, DefaultSelector, LineCodec, Selector, EVENT_READ,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::time::Duration;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is a
// thread-local `Cell` with a const initialiser, which neither allocates nor re-enters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const ROUNDS: usize = 200;

/// Eight echo pairs: each round the peers write a byte and read it back; the loop under test
/// (`pass`) must echo it. Returns the allocations made by the loop thread after a warm-up.
fn count<B: Backend>(pass: impl FnMut(&mut Selector<B>) -> io::Result<()>) -> io::Result<u64> {
    let mut sel = selector::<B>()?;
    count_with(&mut sel, register_echo, b"x", pass)
}

/// The README's echo callback on `stream`.
fn register_echo<B: Backend>(sel: &mut Selector<B>, stream: Stream) -> io::Result<()> {
    sel.register(stream, EVENT_READ, |_, s, _| {
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        s.write_all(&buf[..n]) // one byte: always fits
    })?;
    Ok(())
}

/// As [`count`], on `sel`, with the echo ends registered by `register`, the peers sending
/// `message` (and reading as many bytes back).
fn count_with<B: Backend>(
    sel: &mut Selector<B>,
    register: impl Fn(&mut Selector<B>, Stream) -> io::Result<()>,
    message: &[u8],
    mut pass: impl FnMut(&mut Selector<B>) -> io::Result<()>,
) -> io::Result<u64> {
    let mut peers = Vec::new();
    for _ in 0..8 {
        let (a, peer) = socketpair()?;
        register(sel, a)?;
        peers.push(peer);
    }
    let mut round = |sel: &mut Selector<B>| -> io::Result<()> {
        for peer in &mut peers {
            peer.write_all(message)?;
        }
        for peer in &mut peers {
            // Each peer blocks until its echo: pass() until every echo has come back.
            peer.set_nonblocking(true)?;
            let (mut echo, mut got) = ([0u8; 16], 0); // no allocation: it is counted
            let deadline = std::time::Instant::now() + common::TIMEOUT;
            loop {
                match peer.read(&mut echo[got..message.len()]) {
                    Ok(0) => panic!("the echo connection closed"),
                    Ok(n) if got + n == message.len() => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                assert!(std::time::Instant::now() < deadline, "no echo");
                pass(sel)?;
            }
            peer.set_nonblocking(false)?;
        }
        Ok(())
    };
    for _ in 0..20 {
        round(sel)?; // warm-up: buffers reach their steady size
    }
    let before = allocations();
    for _ in 0..ROUNDS {
        round(sel)?;
    }
    Ok(allocations() - before)
}

fn select_and_dispatch_allocate_nothing<B: Backend>() -> io::Result<()> {
    let n = count::<B>(|sel| {
        for (key, mask) in sel.select(Some(Duration::from_millis(50)))? {
            sel.dispatch(&key, mask)?;
        }
        Ok(())
    })?;
    assert_eq!(
        n, 0,
        "select() + dispatch() allocated {n} times in {ROUNDS} rounds"
    );
    Ok(())
}

fn run_once_allocates_nothing<B: Backend>() -> io::Result<()> {
    let n = count::<B>(|sel| sel.run_once(Some(Duration::from_millis(50))).map(|_| ()))?;
    assert_eq!(n, 0, "run_once() allocated {n} times in {ROUNDS} rounds");
    Ok(())
}

/// A `Connection` echo allocates nothing in steady state, with `Bytes` and with `LineCodec`:
/// frames are lent from the read buffer, and the write queue a reply needs is the one the last
/// reply emptied, kept by the thread — even when the thread also keeps a large queue from an
/// earlier bulk send.
#[test]
fn a_connection_echo_allocates_nothing() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    // A 1 MiB queue, sent to a reader and emptied: the thread keeps it for large sends.
    let (a, mut reader) = socketpair()?;
    let bulk = Connection::new(a, Bytes).register(&mut sel, |_, _, _| Ok(()))?;
    assert!(bulk.send(&mut sel, &vec![7; 1 << 20]));
    let reading = std::thread::spawn(move || io::copy(&mut reader, &mut io::sink()));
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while bulk.with(&mut sel, |conn| conn.queued())? > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the bulk send never drained"
        );
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    let pass =
        |sel: &mut DefaultSelector| sel.run_once(Some(Duration::from_millis(50))).map(|_| ());
    let bytes = |sel: &mut DefaultSelector, stream: Stream| -> io::Result<()> {
        Connection::new(stream, Bytes).register(sel, |_, conn, event| match event {
            ConnEvent::Frame(data) => conn.send(data),
            _ => Ok(()),
        })?;
        Ok(())
    };
    let n = count_with(&mut sel, bytes, b"x", pass)?;
    assert_eq!(n, 0, "a Bytes echo allocated {n} times in {ROUNDS} rounds");
    let lines = |sel: &mut DefaultSelector, stream: Stream| -> io::Result<()> {
        Connection::new(stream, LineCodec::new(64)).register(
            sel,
            |_, conn, event| match event {
                ConnEvent::Frame(line) => conn.send_frame(line),
                _ => Ok(()),
            },
        )?;
        Ok(())
    };
    let n = count_with(&mut sel, lines, b"a line\n", pass)?;
    assert_eq!(
        n, 0,
        "a LineCodec echo allocated {n} times in {ROUNDS} rounds"
    );
    sel.unregister(&bulk)?;
    reading.join().expect("the reader")?;
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
    tests: [select_and_dispatch_allocate_nothing, run_once_allocates_nothing]
}
