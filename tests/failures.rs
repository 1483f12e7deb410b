//! What happens when callbacks fail: every readiness report is delivered once even when a
//! dispatch stops early, errors that mean "out of descriptors" pause a registration with
//! backoff instead of closing it or spinning, a listener stuck at the descriptor limit sheds its
//! waiting clients, and no kept error can make the loop spin.

#[macro_use]
mod common;

use common::{logged, logged_count, run_until, selector, socketpair, Stream};
use selectloop::{Backend, ErrorAction, Events, Mode, Selector, SelectorKey, EVENT_READ};
use selectloop::{DefaultSelector, EVENT_WRITE};
use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

type Count = Rc<Cell<u32>>;
type Accepted = Rc<RefCell<Vec<TcpStream>>>;

/// "Too many open files", as `accept` reports it at the descriptor limit.
fn emfile() -> io::Error {
    #[cfg(unix)]
    return io::Error::from_raw_os_error(rustix::io::Errno::MFILE.raw_os_error());
    #[cfg(windows)]
    return io::Error::from_raw_os_error(10024); // WSAEMFILE
}

/// Reads everything the peer sent (until `WouldBlock`), so level mode reports nothing more.
fn drain(s: &mut Stream) -> io::Result<usize> {
    let (mut total, mut buf) = (0, [0u8; 64]);
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(total),
            Err(e) => return Err(e),
        }
    }
}

fn listener() -> io::Result<(TcpListener, std::net::SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Runs the loop for `period` (a window to count calls in, not a synchronisation).
fn run_for<B: Backend>(sel: &mut Selector<B>, period: Duration) -> io::Result<()> {
    let end = Instant::now() + period;
    while Instant::now() < end {
        sel.run_once(Some(Duration::from_millis(10)))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Exactly-once delivery when a dispatch stops early.

#[derive(Clone, Copy, Debug)]
enum Stop {
    Panic,
    Error,
}

#[derive(Clone, Copy, Debug)]
enum Path {
    RunOnce,
    SelectDispatch,
}

/// One pass of the loop the way `path` runs it; panics and errors propagate.
fn pass<B: Backend>(sel: &mut Selector<B>, path: Path, timeout: Duration) -> io::Result<()> {
    match path {
        Path::RunOnce => sel.run_once(Some(timeout)).map(|_| ()),
        Path::SelectDispatch => {
            for (key, mask) in sel.select(Some(timeout))? {
                sel.dispatch(&key, mask)?;
            }
            Ok(())
        }
    }
}

/// Ten sources ready at once; the first callback to run stops the batch (`how`); each of the
/// other nine is then dispatched exactly once, except one unregistered meanwhile, never.
fn ten_ready_first_stops<B: Backend>(mode: Mode, how: Stop, path: Path) -> io::Result<()> {
    let context = format!("{mode:?}, {how:?}, {path:?}");
    let mut sel = selector::<B>()?;
    sel.set_error_handler(|_, _| ErrorAction::Stop);
    let tripped = Rc::new(Cell::new(false));
    let (mut calls, mut peers, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..10 {
        let (a, peer) = socketpair()?;
        let (count, tripped): (Count, _) = (Rc::default(), tripped.clone());
        calls.push(count.clone());
        let key = sel.register_with_mode(a, EVENT_READ, mode, move |_, s, _| {
            count.set(count.get() + 1);
            drain(s)?;
            if !tripped.replace(true) {
                match how {
                    Stop::Panic => panic!("the first callback stops the batch (expected)"),
                    Stop::Error => return Err(io::Error::other("the first callback stops")),
                }
            }
            Ok(())
        })?;
        keys.push(key);
        peers.push(peer);
    }
    for peer in &mut peers {
        peer.write_all(b"x")?;
    }
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            pass(&mut sel, path, Duration::from_millis(50))
        }));
        match (how, result) {
            (Stop::Panic, Err(_)) | (Stop::Error, Ok(Err(_))) => break,
            (_, Ok(Ok(()))) => {}
            (_, other) => panic!("{context}: the stop came out as {:?}", other.map(|_| ())),
        }
        assert!(Instant::now() < deadline, "{context}: no callback ran");
    }
    let first = calls.iter().position(|c| c.get() == 1).expect("one call");
    // One of those still owed is unregistered before the loop goes on: it gets nothing.
    let gone = (0..10).find(|&i| calls[i].get() == 0).expect("nine owed");
    sel.unregister(&keys[gone])?;
    let others = |i: &usize| *i != first && *i != gone;
    run_until_counted(&mut sel, path, &context, || {
        (0..10).filter(others).all(|i| calls[i].get() >= 1)
    })?;
    for _ in 0..3 {
        pass(&mut sel, path, Duration::from_millis(20))?; // nothing is delivered twice
    }
    let counts: Vec<u32> = calls.iter().map(|c| c.get()).collect();
    let mut expected = vec![1; 10];
    expected[gone] = 0;
    assert_eq!(counts, expected, "{context}: calls per source");
    let registered = if matches!(how, Stop::Panic) { 8 } else { 9 };
    assert_eq!(sel.len(), registered, "{context}");
    Ok(())
}

fn run_until_counted<B: Backend>(
    sel: &mut Selector<B>,
    path: Path,
    context: &str,
    mut done: impl FnMut() -> bool,
) -> io::Result<()> {
    let deadline = Instant::now() + common::TIMEOUT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{context}: the reports after the stopped one were never delivered"
        );
        pass(sel, path, Duration::from_millis(50))?;
    }
    Ok(())
}

fn each_way<B: Backend>(mode: Mode) -> io::Result<()> {
    for how in [Stop::Panic, Stop::Error] {
        for path in [Path::RunOnce, Path::SelectDispatch] {
            ten_ready_first_stops::<B>(mode, how, path)?;
        }
    }
    Ok(())
}

fn early_stop_level<B: Backend>() -> io::Result<()> {
    each_way::<B>(Mode::Level)
}

#[cfg(not(windows))]
fn early_stop_edge<B: Backend>() -> io::Result<()> {
    each_way::<B>(Mode::Edge)
}

fn early_stop_oneshot<B: Backend>() -> io::Result<()> {
    each_way::<B>(Mode::Oneshot)
}

// Reports owed after a stop are cut to the events their keys wait for when delivered: an event
// `modify` removed meanwhile is not delivered.
fn owed_reports_follow_modify<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    sel.set_error_handler(|_, _| ErrorAction::Stop);
    let (mut keys, mut peers) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (a, mut peer) = socketpair()?;
        peer.write_all(b"x")?; // READ, and WRITE (a connected socket has room)
        keys.push(sel.register(a, EVENT_READ | EVENT_WRITE, |_, _, _| {
            Err(io::Error::other("stop"))
        })?);
        peers.push(peer);
    }
    let ready = common::select_n_ready(&mut sel, 2, EVENT_READ | EVENT_WRITE)?;
    let (first, second) = (ready[0].0, ready[1].0);
    for (key, mask) in ready {
        if sel.dispatch(&key, mask).is_err() {
            break; // the first stops the batch: the second is owed
        }
    }
    sel.modify(&second, EVENT_READ)?;
    let owed = sel.select(Some(Duration::ZERO))?;
    assert_eq!(
        owed,
        [(sel.get_key(&second)?, EVENT_READ)],
        "first: {first:?}"
    );
    drop(owed);

    // Owed READ, then modified to WRITE only: nothing of that report is deliverable, so the
    // next select polls afresh (and finds the WRITE readiness) instead of returning nothing.
    sel.modify(&first, EVENT_READ)?;
    let ready = common::select_n_ready(&mut sel, 2, EVENT_READ)?;
    let owed = ready[1].0;
    for (key, mask) in ready {
        if sel.dispatch(&key, mask).is_err() {
            break;
        }
    }
    sel.modify(&owed, EVENT_WRITE)?;
    let fresh = sel.select(Some(Duration::from_millis(50)))?;
    let owed = sel.get_key(&owed)?;
    assert!(
        fresh.contains(&(owed, EVENT_WRITE)),
        "not polled afresh: {fresh:?}"
    );
    Ok(())
}

// A report owed after a stop but dispatched meanwhile (from the list `select` returned) is
// not delivered again: the next `select` returns only the reports still undelivered.
fn owed_reports_dispatched_meanwhile_are_not_delivered_again<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    sel.set_error_handler(|_, _| ErrorAction::Stop);
    let (tripped, mut peers) = (Rc::new(Cell::new(false)), Vec::new());
    for _ in 0..3 {
        let (a, mut peer) = socketpair()?;
        peer.write_all(b"x")?;
        let tripped = tripped.clone();
        sel.register(a, EVENT_READ, move |_, _, _| match tripped.replace(true) {
            false => Err(io::Error::other("the first callback stops the batch")),
            true => Ok(()),
        })?;
        peers.push(peer);
    }
    let ready: Vec<_> = common::select_n_ready(&mut sel, 3, EVENT_READ)?
        .into_iter()
        .collect();
    assert!(sel.dispatch(&ready[0].0, ready[0].1).is_err(), "Stop");
    sel.dispatch(&ready[1].0, ready[1].1)?; // owed, and delivered now
    let owed = sel.select(Some(Duration::ZERO))?;
    assert_eq!(owed, [ready[2]], "only the report still owed");
    Ok(())
}

/// Many sources, rounds of one byte each, callbacks that stop the loop at random: every round,
/// every source is dispatched exactly once (in edge mode a lost report is never made up for).
fn chaos<B: Backend>(mode: Mode, n: usize) -> io::Result<()> {
    const ROUNDS: u32 = 20;
    let mut sel = selector::<B>()?;
    sel.set_error_handler(|_, _| ErrorAction::Stop);
    let seed = Rc::new(Cell::new(0x2545_f491_4f6c_dd1du64));
    let (mut calls, mut peers) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (a, peer) = socketpair()?;
        let (count, seed): (Count, _) = (Rc::default(), seed.clone());
        calls.push(count.clone());
        sel.register_with_mode(a, EVENT_READ, mode, move |_, s, _| {
            count.set(count.get() + 1);
            drain(s)?;
            let mut x = seed.get(); // xorshift: the same "random" failures every run
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            seed.set(x);
            match x % 10 {
                0 => Err(io::Error::other("chaos")),
                _ => Ok(()),
            }
        })?;
        peers.push(peer);
    }
    let mut stops = 0;
    for round in 1..=ROUNDS {
        for peer in &mut peers {
            peer.write_all(b"x")?;
        }
        let deadline = Instant::now() + common::TIMEOUT;
        while calls.iter().any(|c| c.get() < round) {
            assert!(Instant::now() < deadline, "round {round}: reports lost");
            if sel.run_once(Some(Duration::from_millis(50))).is_err() {
                stops += 1;
            }
        }
    }
    for _ in 0..3 {
        let _ = sel.run_once(Some(Duration::from_millis(20)));
    }
    let lost: u32 = calls.iter().map(|c| ROUNDS.saturating_sub(c.get())).sum();
    let extra: u32 = calls.iter().map(|c| c.get().saturating_sub(ROUNDS)).sum();
    assert_eq!(
        (lost, extra),
        (0, 0),
        "{mode:?}: events lost, delivered twice"
    );
    assert!(stops > 0, "the chaos never stopped the loop");
    Ok(())
}

fn chaos_level<B: Backend>() -> io::Result<()> {
    chaos::<B>(Mode::Level, 200)
}

#[cfg(not(windows))]
fn chaos_edge<B: Backend>() -> io::Result<()> {
    chaos::<B>(Mode::Edge, 200)
}

// ---------------------------------------------------------------------------------------------
// Out of descriptors: pause with backoff, never close, never spin.

/// A listener whose callback is the Python one (`sock.accept()?`) after `failures` EMFILEs.
fn failing_listener<B: Backend>(
    sel: &mut Selector<B>,
    failures: u32,
) -> io::Result<(SelectorKey, std::net::SocketAddr, Count, Accepted)> {
    let (sock, addr) = listener()?;
    let (calls, accepted): (Count, Accepted) = Default::default();
    let (count, out) = (calls.clone(), accepted.clone());
    let key = sel.register(sock, EVENT_READ, move |_, sock, _| {
        count.set(count.get() + 1);
        if count.get() <= failures {
            return Err(emfile());
        }
        let (conn, _addr) = sock.accept()?;
        out.borrow_mut().push(conn);
        Ok(())
    })?;
    Ok((key, addr, calls, accepted))
}

fn emfile_pauses_then_serves<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (key, addr, calls, accepted) = failing_listener(&mut sel, 5)?;
    let _client = TcpStream::connect(addr)?;
    run_until(&mut sel, "the client, accepted after the pause", || {
        accepted.borrow().len() == 1
    })?;
    assert_eq!(
        calls.get(),
        6,
        "5 failures then the accept: no retry in between"
    );
    assert_eq!(sel.get_key(&key)?, key, "the listener was closed");
    assert!(!sel.is_paused(&key)?, "still paused after succeeding");
    assert_eq!(sel.pauses(), 1, "one episode");
    let fd = format!("callback for fd {} failed", key.fd());
    assert_eq!(logged_count(&["WARN", &fd, "pausing it"]), 1, "logged once");
    let again = format!("fd {}: callback succeeded again", key.fd());
    assert!(
        logged(&["INFO", &again]),
        "the end of the episode not logged"
    );
    Ok(())
}

fn emfile_does_not_spin<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (key, addr, calls, _) = failing_listener(&mut sel, u32::MAX)?;
    let _client = TcpStream::connect(addr)?;
    run_until(&mut sel, "the first accept", || calls.get() > 0)?;
    run_for(&mut sel, Duration::from_secs(1))?;
    // Backoff 5, 10, 20, ... ms: about 8 calls in a second; spinning would be thousands.
    assert!(
        calls.get() <= 12,
        "{} calls in a second: spinning",
        calls.get()
    );
    assert!(sel.is_paused(&key)?);
    assert_eq!(sel.pauses(), 1);
    let fd = format!("callback for fd {} failed", key.fd());
    assert_eq!(
        logged_count(&["WARN", &fd, "pausing it"]),
        1,
        "logged per attempt"
    );
    Ok(())
}

/// Connects two clients with `connect`, each waiting to read, runs the loop until both are
/// refused (end of file or a reset: their connections were accepted and closed at once), and
/// checks how and when: not before the grace period, never by the callback, and logged once.
#[cfg(unix)]
fn waiting_clients_are_refused<C: Read>(
    sel: &mut Selector<selectloop::PollingBackend>,
    key: SelectorKey,
    connect: impl Fn() -> io::Result<C> + Send + Clone + 'static,
) -> io::Result<()> {
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let connect = connect.clone();
            std::thread::spawn(move || -> io::Result<usize> {
                let mut conn = connect()?;
                match conn.read(&mut [0u8; 16]) {
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(0),
                    Err(e) => Err(e),
                }
            })
        })
        .collect();
    let start = Instant::now();
    run_until(sel, "the waiting clients to be refused", || {
        clients.iter().all(|c| c.is_finished())
    })?;
    for client in clients {
        assert_eq!(client.join().expect("client thread")?, 0, "not end of file");
    }
    // `SHED_AFTER`, one second, as `ErrorAction::default_for` documents.
    let grace = Duration::from_secs(1);
    assert!(start.elapsed() >= grace, "refused before the grace period");
    assert_eq!(sel.get_key(&key)?, key, "the listener was closed");
    let refused = format!("fd {}: out of descriptors for", key.fd());
    let lines = logged_count(&["WARN", &refused, "refused"]);
    let both = logged_count(&["WARN", &refused, "refused 2 waiting connection(s)"]);
    assert!(
        both == 1 || logged_count(&["WARN", &refused, "refused 1 waiting connection(s)"]) == 2,
        "not refused 2 in all ({lines} lines)"
    );
    Ok(())
}

/// A TCP listener out of descriptors for longer than `SHED_AFTER` accepts and closes the
/// waiting connections through its reserve descriptor: clients are refused, not left hanging.
#[cfg(unix)]
#[test]
fn a_stuck_tcp_listener_refuses_waiting_clients() -> io::Result<()> {
    let mut sel = selector::<selectloop::PollingBackend>()?;
    let (key, addr, _calls, accepted) = failing_listener(&mut sel, u32::MAX)?;
    waiting_clients_are_refused(&mut sel, key, move || {
        let conn = TcpStream::connect(addr)?;
        conn.set_read_timeout(Some(common::TIMEOUT))?;
        Ok(conn)
    })?;
    assert!(
        accepted.borrow().is_empty(),
        "the callback accepted a client"
    );
    Ok(())
}

/// The same for a Unix-domain listener.
#[cfg(unix)]
#[test]
fn a_stuck_unix_listener_refuses_waiting_clients() -> io::Result<()> {
    use std::os::unix::net::{UnixListener, UnixStream};
    let mut sel = selector::<selectloop::PollingBackend>()?;
    let path = std::env::temp_dir().join(format!("selectloop-shed-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    listener.set_nonblocking(true)?;
    let key = sel.register(listener, EVENT_READ, |_, _, _| Err(emfile()))?;
    let at = path.clone();
    let result = waiting_clients_are_refused(&mut sel, key, move || {
        let conn = UnixStream::connect(&at)?;
        conn.set_read_timeout(Some(common::TIMEOUT))?;
        Ok(conn)
    });
    std::fs::remove_file(&path)?;
    result
}

// A listener's failed accept of one connection (aborted, reset, ...) keeps the listener.
fn lost_connection_keeps_the_listener<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (sock, addr) = listener()?;
    let (calls, accepted): (Count, Count) = Default::default();
    let (count, out) = (calls.clone(), accepted.clone());
    let key = sel.register(sock, EVENT_READ, move |_, sock, _| {
        count.set(count.get() + 1);
        if count.get() == 1 {
            return Err(ErrorKind::ConnectionAborted.into()); // the client gave up
        }
        let (_conn, _) = sock.accept()?;
        out.set(out.get() + 1);
        Ok(())
    })?;
    let _client = TcpStream::connect(addr)?;
    run_until(&mut sel, "the accept after the aborted one", || {
        accepted.get() == 1
    })?;
    assert_eq!(calls.get(), 2);
    assert_eq!(sel.get_key(&key)?, key);
    assert!(!sel.is_paused(&key)?, "paused after one kept error");
    Ok(())
}

// The busy-loop guard: an error the handler keeps, over and over, pauses the registration.
fn kept_errors_do_not_spin<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    sel.set_error_handler(|_, _| ErrorAction::Keep);
    let (a, mut peer) = socketpair()?;
    let calls: Count = Rc::default();
    let count = calls.clone();
    let key = sel.register(a, EVENT_READ, move |_, _, _| {
        count.set(count.get() + 1);
        Err(io::Error::other("failing-test-kept")) // never reads: stays ready
    })?;
    peer.write_all(b"x")?;
    run_until(&mut sel, "the first call", || calls.get() > 0)?;
    run_for(&mut sel, Duration::from_secs(1))?;
    assert!(
        calls.get() <= 12,
        "{} calls in a second: spinning",
        calls.get()
    );
    assert!(sel.is_paused(&key)?);
    assert_eq!(sel.pauses(), 1);
    let fd = format!("callback for fd {} failed", key.fd());
    assert_eq!(logged_count(&["WARN", &fd, "pausing it"]), 1);
    Ok(())
}

// A paused registration can be modified (it comes back with the new events) and unregistered
// (closed at once, without asking the poller to forget what it no longer watches).
fn paused_registrations_modify_and_unregister<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer) = socketpair()?;
    let masks = Rc::new(RefCell::new(Vec::new()));
    let seen = masks.clone();
    let key = sel.register(a, EVENT_READ, move |_, _, mask: Events| {
        seen.borrow_mut().push(mask);
        match seen.borrow().len() {
            1 => Err(emfile()),
            _ => Ok(()),
        }
    })?;
    peer.write_all(b"x")?;
    run_until(&mut sel, "the failing call", || !masks.borrow().is_empty())?;
    assert!(sel.is_paused(&key)?);
    let modified = sel.modify(&key, EVENT_WRITE)?;
    assert_eq!(modified.events(), EVENT_WRITE);
    run_until(&mut sel, "the call after the pause", || {
        masks.borrow().len() > 1
    })?;
    assert_eq!(
        masks.borrow()[1],
        EVENT_WRITE,
        "resumed with the old events"
    );
    assert!(!sel.is_paused(&key)?);
    // Pause it again (WRITE is ready at once), then unregister it while paused.
    sel.set_callback(&key, |_, _: &mut Stream, _| Err(emfile()))?;
    let deadline = Instant::now() + common::TIMEOUT;
    while !sel.is_paused(&key)? {
        assert!(Instant::now() < deadline, "never paused again");
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    assert_eq!(sel.pauses(), 2, "a new episode after the success");
    sel.unregister(&key)?;
    common::expect_eof(&mut peer);
    let fd = format!("fd {}: removing it from the poller", key.fd());
    assert!(
        !logged(&[&fd]),
        "the poller was asked to forget a paused fd"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The default policy, and the write_all trap made loud.

#[test]
fn default_policy_by_error_and_source() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (sock, _) = listener()?;
    let listener_key = sel.register(sock, EVENT_READ, |_, _, _| Ok(()))?;
    let (a, _peer) = socketpair()?;
    let stream_key = sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    let exhausted: Vec<io::Error> = {
        let mut errors = vec![emfile(), ErrorKind::OutOfMemory.into()];
        #[cfg(unix)]
        for errno in [
            rustix::io::Errno::NFILE,
            rustix::io::Errno::NOBUFS,
            rustix::io::Errno::NOMEM,
        ] {
            errors.push(io::Error::from_raw_os_error(errno.raw_os_error()));
        }
        #[cfg(windows)]
        errors.push(io::Error::from_raw_os_error(10055)); // WSAENOBUFS
        errors
    };
    for err in &exhausted {
        for key in [&listener_key, &stream_key] {
            assert_eq!(
                ErrorAction::default_for(key, err),
                ErrorAction::Pause,
                "{err}"
            );
        }
    }
    for kind in [ErrorKind::ConnectionAborted, ErrorKind::ConnectionReset] {
        let err = io::Error::from(kind);
        assert_eq!(
            ErrorAction::default_for(&listener_key, &err),
            ErrorAction::Keep
        );
        assert_eq!(
            ErrorAction::default_for(&stream_key, &err),
            ErrorAction::Close
        );
    }
    let other = io::Error::other("anything else");
    assert_eq!(
        ErrorAction::default_for(&listener_key, &other),
        ErrorAction::Close
    );
    assert_eq!(
        ErrorAction::default_for(&stream_key, &other),
        ErrorAction::Close
    );
    Ok(())
}

// A level-triggered callback that returns WouldBlock (as `write_all` does when the socket is
// full) is logged once, with the hint; the registration stays.
fn would_block_is_logged_once<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, mut peer) = socketpair()?;
    let calls: Count = Rc::default();
    let count = calls.clone();
    let key = sel.register(a, EVENT_READ, move |_, s, _| {
        count.set(count.get() + 1);
        drain(s)?;
        Err(ErrorKind::WouldBlock.into())
    })?;
    for round in 1..=3 {
        peer.write_all(b"x")?;
        run_until(&mut sel, "a call", || calls.get() == round)?;
    }
    let fd = format!("callback for fd {} returned WouldBlock", key.fd());
    assert_eq!(logged_count(&["WARN", &fd, "write_all"]), 1);
    assert!(!sel.is_paused(&key)?);
    Ok(())
}

// In edge mode, WouldBlock is how a draining callback ends: not worth a warning.
#[cfg(not(windows))]
#[test]
fn would_block_in_edge_mode_is_not_logged() -> io::Result<()> {
    let mut sel = selector::<selectloop::PollingBackend>()?;
    let (a, mut peer) = socketpair()?;
    let calls: Count = Rc::default();
    let count = calls.clone();
    let key = sel.register_with_mode(a, EVENT_READ, Mode::Edge, move |_, s, _| {
        count.set(count.get() + 1);
        loop {
            s.read_exact(&mut [0u8; 1])?; // until WouldBlock, returned through `?`
        }
    })?;
    peer.write_all(b"xy")?;
    run_until(&mut sel, "the call", || calls.get() == 1)?;
    let fd = format!("callback for fd {} returned WouldBlock", key.fd());
    assert!(!logged(&[&fd]));
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
        early_stop_level,
        owed_reports_follow_modify,
        owed_reports_dispatched_meanwhile_are_not_delivered_again,
        chaos_level,
        emfile_pauses_then_serves,
        emfile_does_not_spin,
        lost_connection_keeps_the_listener,
        kept_errors_do_not_spin,
        paused_registrations_modify_and_unregister,
        would_block_is_logged_once,
    ]
}

instantiate! {
    backends: [
        default_selector_modes = selectloop::PollingBackend,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        epoll_selector_modes = selectloop::EpollBackend,
    ],
    tests: [
        early_stop_oneshot,
        #[cfg(not(windows))] early_stop_edge,
        #[cfg(not(windows))] chaos_edge,
    ]
}
