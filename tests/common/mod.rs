//! Helpers shared by the integration tests: socket pairs, bounded waits, captured logs.
//!
//! Every wait here is bounded by [`TIMEOUT`] and fails with a message that says what it waited
//! for; nothing sleeps to synchronise.

#![allow(dead_code)] // each test file uses its own subset

use selectloop::{Backend, Events, Selector, SelectorKey};
use std::io::{self, Read};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Instantiates each listed generic test (`fn name<B: Backend>() -> io::Result<()>`, defined in
/// the test file) for each listed backend, one module per backend:
///
/// ```text
/// instantiate! {
///     backends: [default_selector = selectloop::PollingBackend, ...],
///     tests: [level_triggered, ...]
/// }
/// ```
#[allow(unused_macros)] // each test file uses its own subset
macro_rules! instantiate {
    (backends: [$($(#[$attr:meta])* $module:ident = $backend:ty),* $(,)?], tests: $tests:tt) => {
        $( $(#[$attr])* mod $module { instantiate!(@tests $backend, $tests); } )*
    };
    (@tests $backend:ty, [$($(#[$tattr:meta])* $test:ident),* $(,)?]) => {
        $(
            $(#[$tattr])*
            #[test]
            fn $test() -> std::io::Result<()> {
                super::$test::<$backend>()
            }
        )*
    };
}

/// How long any bounded wait in the tests may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One end of a connected stream pair: a Unix socket pair on Unix, loopback TCP on Windows.
#[cfg(unix)]
pub type Stream = std::os::unix::net::UnixStream;
/// One end of a connected stream pair: a Unix socket pair on Unix, loopback TCP on Windows.
#[cfg(windows)]
pub type Stream = std::net::TcpStream;

/// A connected pair: the first end non-blocking (to register), the second blocking (the peer
/// the test drives).
pub fn socketpair() -> io::Result<(Stream, Stream)> {
    #[cfg(unix)]
    let (a, b) = Stream::pair()?;
    #[cfg(windows)]
    let (a, b) = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let a = Stream::connect(listener.local_addr()?)?;
        let (b, _) = listener.accept()?;
        (a, b)
    };
    a.set_nonblocking(true)?;
    Ok((a, b))
}

/// A selector of backend `B`.
pub fn selector<B: Backend>() -> io::Result<Selector<B>> {
    init_logging();
    Selector::<B>::new()
}

/// Runs `run_once` until `done()` holds, failing after [`TIMEOUT`] with `what`.
#[track_caller]
pub fn run_until<B: Backend>(
    sel: &mut Selector<B>,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> io::Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    Ok(())
}

/// Selects until the result is non-empty, failing after [`TIMEOUT`] with `what`.
#[track_caller]
pub fn select_some<B: Backend>(
    sel: &mut Selector<B>,
    what: &str,
) -> io::Result<Vec<(SelectorKey, Events)>> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let ready = sel.select(Some(Duration::from_millis(50)))?;
        if !ready.is_empty() {
            return Ok(ready);
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

/// Reads from a blocking peer and expects its other end to be closed: end of file, or a reset
/// (what a socket closed with unread data in its buffer sends). Fails if that does not come
/// within [`TIMEOUT`] (the other end is still open) or data arrives instead.
#[track_caller]
pub fn expect_eof(peer: &mut Stream) {
    peer.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0u8; 64];
    match peer.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Ok(n) => panic!("expected EOF on the peer, read {n} bytes"),
        Err(e) => panic!("expected EOF on the peer (its end was not closed): {e}"),
    }
}

/// True if the peer's other end is still open: nothing to read, and no EOF.
pub fn is_open(peer: &Stream) -> bool {
    peer.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let open = matches!((&*peer).read(&mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    peer.set_nonblocking(false).unwrap();
    open
}

/// Every log line so far, with the thread that logged it: each test runs on a thread of its
/// own, and its selector logs on that thread, so a test sees its own lines only (fd numbers are
/// reused by tests running in parallel).
static LOGS: Mutex<Vec<(std::thread::ThreadId, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        LOGS.lock()
            .unwrap()
            .push((std::thread::current().id(), line));
    }
    fn flush(&self) {}
}

/// Installs a logger that keeps every record, so tests can assert what was logged.
pub fn init_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        log::set_logger(&Capture).expect("no other logger");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// True if some log line of this thread so far contains every one of `parts`.
pub fn logged(parts: &[&str]) -> bool {
    logged_count(parts) > 0
}

/// The number of log lines of this thread so far that contain every one of `parts`.
pub fn logged_count(parts: &[&str]) -> usize {
    let me = std::thread::current().id();
    LOGS.lock()
        .unwrap()
        .iter()
        .filter(|(thread, line)| *thread == me && parts.iter().all(|p| line.contains(p)))
        .count()
}
