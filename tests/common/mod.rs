//! Helpers shared by the integration tests: socket pairs, bounded waits, captured logs, and
//! example servers run as processes.
//!
//! Every wait here is bounded by [`TIMEOUT`] and fails with a message that says what it waited
//! for; nothing sleeps to synchronise.

#![allow(dead_code)] // each test file uses its own subset

use selectloop::{Backend, Ready, Selector};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{
    Arc, Condvar, Mutex, Once, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::time::{Duration, Instant};

/// Helpers of the `Connection` tests (`tests/conn_*.rs`).
pub mod conn;

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
                let _numbers = crate::common::low_descriptors::<$backend>();
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
    let (a, b) = tcp_pair()?;
    a.set_nonblocking(true)?;
    Ok((a, b))
}

/// A connected loopback TCP pair, both ends blocking.
pub fn tcp_pair() -> io::Result<(std::net::TcpStream, std::net::TcpStream)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let a = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (b, _) = listener.accept()?;
    Ok((a, b))
}

/// Taken for writing by a test that holds more descriptors than `select(2)` can watch
/// (`FD_SETSIZE`: descriptor numbers up to 1023 on Unix), and for reading by every test of
/// `SelectSelector`: beside the former, in the same process, the latter would get descriptor
/// numbers past 1023, which its selector refuses.
static DESCRIPTORS: RwLock<()> = RwLock::new(());

/// Held by a test that opens more than about a thousand descriptors at once.
pub fn many_descriptors() -> RwLockWriteGuard<'static, ()> {
    DESCRIPTORS.write().unwrap_or_else(PoisonError::into_inner)
}

/// Held by every test of backend `B` if `B` is `select(2)`'s (the `instantiate!` tests take
/// it themselves): no test holding many descriptors runs meanwhile.
pub fn low_descriptors<B: Backend>() -> Option<RwLockReadGuard<'static, ()>> {
    let select = std::any::type_name::<B>().ends_with("SelectBackend");
    select.then(|| DESCRIPTORS.read().unwrap_or_else(PoisonError::into_inner))
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

/// Runs `sel.run()`, and fails with `why` if it has not returned after [`TIMEOUT`].
#[track_caller]
pub fn run_returns_promptly<B: Backend>(sel: &mut Selector<B>, why: &str) -> io::Result<()> {
    let handle = sel.handle()?;
    let (done, is_done) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let stuck = is_done.recv_timeout(TIMEOUT).is_err();
        if stuck {
            handle.stop().expect("stop the loop");
        }
        stuck
    });
    sel.run()?;
    let _ = done.send(());
    let stuck = watchdog.join().expect("the watchdog thread");
    assert!(!stuck, "run() did not return within {TIMEOUT:?}: {why}");
    Ok(())
}

/// Selects until the result is non-empty, failing after [`TIMEOUT`] with `what`.
#[track_caller]
pub fn select_some<B: Backend>(sel: &mut Selector<B>, what: &str) -> io::Result<Ready> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let ready = sel.select(Some(Duration::from_millis(50)))?;
        if !ready.is_empty() {
            return Ok(ready);
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

/// Selects until `n` keys are reported in one batch, each with exactly `mask`, failing after
/// [`TIMEOUT`] (level-triggered: what is ready stays reported until all of it shows at once).
#[track_caller]
pub fn select_n_ready<B: Backend>(
    sel: &mut Selector<B>,
    n: usize,
    mask: selectloop::Events,
) -> io::Result<Ready> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let ready = sel.select(Some(Duration::from_millis(50)))?;
        if ready.len() == n && ready.iter().all(|&(_, m)| m == mask) {
            return Ok(ready);
        }
        assert!(
            Instant::now() < deadline,
            "never {n} keys at once with {mask:?}: {ready:?}"
        );
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

// --- Example servers as processes (tests/examples.rs) ---------------------------------------

/// The built binary of example `name`, up to date with its sources.
///
/// This test executable is `TARGET_DIR/[TRIPLE/]PROFILE/deps/NAME-HASH`, and the examples are
/// built into `TARGET_DIR/[TRIPLE/]PROFILE/examples/`. A plain `cargo test` builds them, but
/// `cargo test --all-targets` builds them as test harnesses instead (no program at that path),
/// and `cargo test --test examples` alone not at all: so the first call for each example runs
/// `cargo build --example NAME` with this executable's profile, target and target directory
/// (a no-op when it is fresh; cargo's lock serialises concurrent builds). A cross build run
/// under an emulator (the Windows leg, under Wine) cannot run cargo: there the examples must
/// be built beforehand (`cargo test --no-run` does), and a binary older than its sources is
/// refused, as it would test yesterday's code.
#[track_caller]
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable is in TARGET_DIR/PROFILE/deps/");
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let bin = profile_dir.join("examples").join(file);
    if cfg!(unix) {
        build_example(name, profile_dir);
    } else {
        refuse_stale(name, &bin);
    }
    bin
}

/// Runs `cargo build --example NAME` for the profile, target and target directory of
/// `profile_dir`, once per example per test process.
#[track_caller]
fn build_example(name: &str, profile_dir: &Path) {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if built.iter().any(|b| b == name) {
        return;
    }
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("example {name}: no profile in {}", profile_dir.display()),
    };
    // TARGET_DIR holds cargo's CACHEDIR.TAG; a cross build's PROFILE is under TARGET_DIR/TRIPLE.
    let parent = profile_dir.parent().expect("TARGET_DIR/PROFILE");
    let (target_dir, triple) = match parent.join("CACHEDIR.TAG").exists() {
        true => (parent, None),
        false => (parent.parent().unwrap_or(parent), parent.file_name()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut command = Command::new(cargo);
    command
        .args(["build", "--quiet", "--example", name, "--profile", profile])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    if let Some(triple) = triple {
        command.arg("--target").arg(triple);
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("example {name}: cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "example {name}: {command:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    built.push(name.to_string());
}

/// Fails if example `name`'s binary `bin` is missing or older than a source it is built from.
#[track_caller]
fn refuse_stale(name: &str, bin: &Path) {
    let rebuild = "build the examples first: `cargo test --no-run` (or `cargo build --examples`) \
                   for this target";
    let built = std::fs::metadata(bin).and_then(|m| m.modified());
    let built = built.unwrap_or_else(|e| {
        panic!(
            "example {name}: no binary at {} ({e}): {rebuild}",
            bin.display()
        )
    });
    // Best effort: sources that cannot be read (a cross build run elsewhere) are not compared.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = vec![root.join("examples").join(format!("{name}.rs"))];
    rust_files(&root.join("src"), &mut sources);
    // An example that is a folder (`examples/NAME/main.rs` and its modules), and the files an
    // example includes with `#[path = "..."]` (file_client includes file_server's protocol).
    rust_files(&root.join("examples").join(name), &mut sources);
    let mut included = Vec::new();
    for source in &sources {
        let text = std::fs::read_to_string(source).unwrap_or_default();
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("#[path = \"") {
                let dir = source.parent().unwrap_or(root);
                included.push(dir.join(rest.split('"').next().unwrap_or_default()));
            }
        }
    }
    sources.extend(included);
    for source in sources {
        let changed = std::fs::metadata(&source).and_then(|m| m.modified());
        if changed.is_ok_and(|changed| changed > built) {
            panic!(
                "example {name}: {} is older than {}: {rebuild}",
                bin.display(),
                source.display()
            );
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// What a child process wrote to its stderr so far, and whether it closed it (exited).
#[derive(Default)]
struct Captured {
    state: Mutex<(String, bool)>,
    changed: Condvar,
}

/// An example server running as a child process, killed when this is dropped.
///
/// Its stderr is read all along by a thread (so the pipe never fills and blocks the server)
/// into a buffer the test can search: [`stderr`](Self::stderr), [`wait_for_stderr`](Self::wait_for_stderr).
pub struct ExampleServer {
    pub name: String,
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Captured>,
}

impl ExampleServer {
    /// Starts example `name` with `args` (one of them the address, `127.0.0.1:0`), and waits
    /// for the address it is bound to: the first line of its stderr must contain it.
    #[track_caller]
    pub fn start(name: &str, args: &[&str]) -> ExampleServer {
        let mut command = Command::new(example_binary(name));
        command.args(args);
        Self::spawn(name, command)
    }

    /// As [`start`](Self::start), under `ulimit -n fd_limit`: at most that many descriptors.
    #[cfg(unix)]
    #[track_caller]
    pub fn start_with_fd_limit(name: &str, fd_limit: u32, args: &[&str]) -> ExampleServer {
        let mut command = Command::new("sh");
        let script = format!("ulimit -n {fd_limit} && exec \"$0\" \"$@\"");
        command
            .arg("-c")
            .arg(script)
            .arg(example_binary(name))
            .args(args);
        Self::spawn(name, command)
    }

    #[track_caller]
    fn spawn(name: &str, mut command: Command) -> ExampleServer {
        // Under Wine a freshly started example now and then ends at once, before writing
        // anything (seen once in many runs of the Windows leg, with no trace of a crash): it
        // gets one more try there. Anywhere else, and the second time, that fails the test.
        if cfg!(windows) {
            let first = Self::spawn_once(name, &mut command);
            if !first.exited_silently() {
                return first.with_address();
            }
            eprintln!("{name} exited at once with nothing on its stderr: starting it again");
        }
        Self::spawn_once(name, &mut command).with_address()
    }

    /// True if the server closed its stderr (exited) without writing anything to it: waits
    /// for its first line or for that, at most [`TIMEOUT`].
    fn exited_silently(&self) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        let mut state = self.stderr.state.lock().unwrap();
        while !state.0.contains('\n') && !state.1 && Instant::now() < deadline {
            state = self
                .stderr
                .changed
                .wait_timeout(state, Duration::from_millis(50))
                .unwrap()
                .0;
        }
        state.1 && state.0.is_empty()
    }

    /// Starts `command` and captures its stderr.
    #[track_caller]
    fn spawn_once(name: &str, command: &mut Command) -> ExampleServer {
        command.stdin(Stdio::null()).stdout(Stdio::null());
        command.stderr(Stdio::piped());
        let mut child = once_more_on_windows(name, || command.spawn())
            .unwrap_or_else(|e| panic!("{name}: cannot start {command:?}: {e}"));
        let stderr = Arc::new(Captured::default());
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let captured = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = match pipe.read(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    result => result.unwrap_or(0), // an error ends it as end of file does
                };
                let mut state = captured.state.lock().unwrap();
                state.0.push_str(&String::from_utf8_lossy(&buf[..n]));
                state.1 = n == 0;
                captured.changed.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        ExampleServer {
            name: name.to_string(),
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            stderr,
        }
    }

    /// Waits for the server's first line and reads its address from it.
    #[track_caller]
    fn with_address(mut self) -> ExampleServer {
        let name = self.name.clone();
        let text = self.wait_for_stderr("its first line (with its address)", |text| {
            text.contains('\n')
        });
        let first = text.lines().next().unwrap_or("");
        self.addr = first
            .split_whitespace()
            .find_map(|word| word.trim_matches(|c: char| ",;()".contains(c)).parse().ok())
            .unwrap_or_else(|| panic!("{name}: no address in its first line: {first:?}"));
        self
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the server SIGINT (Ctrl-C) and waits for it to exit; returns its status.
    #[cfg(unix)]
    #[track_caller]
    pub fn interrupt(&mut self) -> ExitStatus {
        self.kill("-INT");
        self.wait_for_exit("its exit after SIGINT")
    }

    /// Sends the server SIGTERM (what `kill` and service managers send) and waits for it to
    /// exit; returns its status.
    #[cfg(unix)]
    #[track_caller]
    pub fn terminate(&mut self) -> ExitStatus {
        self.kill("-TERM");
        self.wait_for_exit("its exit after SIGTERM")
    }

    /// Sends the server `signal` (`-TERM`, `-INT`...) with `kill`, without waiting.
    #[cfg(unix)]
    #[track_caller]
    pub fn kill(&self, signal: &str) {
        let pid = self.pid().to_string();
        let kill = Command::new("kill").args([signal, &pid]).status();
        assert!(kill.expect("run kill").success(), "kill {signal} {pid}");
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.state.lock().unwrap().0.clone()
    }

    /// Waits until `done(stderr so far)` holds, and returns that text. Fails after
    /// [`TIMEOUT`], or if the server closed its stderr (exited) first, saying `what` it waited for.
    #[track_caller]
    pub fn wait_for_stderr(&self, what: &str, mut done: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut state = self.stderr.state.lock().unwrap();
        loop {
            let (text, closed) = &*state;
            if done(text) {
                return text.clone();
            }
            let name = &self.name;
            assert!(!closed, "{name} exited before {what}; its stderr:\n{text}");
            let now = Instant::now();
            assert!(
                now < deadline,
                "{name}: timed out waiting for {what}; its stderr:\n{text}"
            );
            state = self
                .stderr
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// `None` while the server runs, else how it exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait on the server")
    }

    /// Waits for the server to exit (it closes its stderr then), failing after [`TIMEOUT`].
    #[track_caller]
    pub fn wait_for_exit(&mut self, what: &str) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        let mut state = self.stderr.state.lock().unwrap();
        while !state.1 {
            let now = Instant::now();
            if now >= deadline {
                let text = &state.0;
                panic!(
                    "{}: timed out waiting for {what}; its stderr:\n{text}",
                    self.name
                );
            }
            state = self
                .stderr
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap()
                .0;
        }
        drop(state);
        self.child.wait().expect("wait for the server")
    }
}

impl Drop for ExampleServer {
    fn drop(&mut self) {
        let _ = self.child.kill(); // harmless if it has exited
        let _ = self.child.wait();
    }
}

/// A client of a server at `addr`, its reads and writes bounded by [`TIMEOUT`].
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let conn = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.set_write_timeout(Some(TIMEOUT))?;
    Ok(conn)
}

/// Sends `line` on `conn` and reads back as many bytes: the echo, or the error (a timeout
/// after [`TIMEOUT`] if the reads are bounded, as [`connect`]'s are).
pub fn echo_round_trip(mut conn: &TcpStream, line: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write;
    conn.write_all(line)?;
    let mut echo = vec![0u8; line.len()];
    conn.read_exact(&mut echo)?;
    Ok(echo)
}

/// A Redis request as clients send it (RESP2): an array of bulk strings.
pub fn resp_request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Runs example `name` with `args` to completion (it must end by itself: give it a timeout
/// flag if it has one) and returns its exit status, stdout and stderr.
#[track_caller]
pub fn run_example(name: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(example_binary(name));
    command.args(args).stdin(Stdio::null());
    once_more_on_windows(name, || command.output())
        .unwrap_or_else(|e| panic!("{name}: cannot run it: {e}"))
}

/// Starts process `name` with `start`, and on Windows once more if that fails: under Wine,
/// starting a process now and then fails at once with "Internal error" (os error 1359, seen
/// in the Windows leg, the machine busy).
fn once_more_on_windows<T>(name: &str, mut start: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    match start() {
        Err(e) if cfg!(windows) => {
            eprintln!("{name}: cannot start it ({e}): starting it again");
            start()
        }
        started => started,
    }
}

/// A client of the server at `addr` that sends `chunk` over and over and never reads, until
/// the server cuts it off: its write then fails with a reset or a broken pipe, which this
/// returns after. Meanwhile, every 20 ms, `beside(i)` runs round trip `i` of another client,
/// which must succeed. Fails if the hog is still served after [`TIMEOUT`].
#[track_caller]
pub fn hog_is_cut_off(addr: SocketAddr, chunk: Vec<u8>, mut beside: impl FnMut(usize)) {
    use std::io::Write;
    let hog = connect(addr).expect("connect the client that never reads");
    let mut sender = hog.try_clone().expect("clone the client socket");
    sender.set_write_timeout(None).expect("blocking writes");
    let writer = std::thread::spawn(move || loop {
        if let Err(e) = sender.write_all(&chunk) {
            return e;
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    let mut i = 0;
    while !writer.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the client that never reads is still served"
        );
        beside(i);
        i += 1;
        std::thread::sleep(Duration::from_millis(20)); // pacing the other client, not a wait
    }
    let error = writer.join().expect("the writer thread");
    assert!(
        matches!(
            error.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "the client that never reads: {error}"
    );
}

/// A server's stderr, for failure messages: its last warnings and errors (the per-connection
/// lines would bury them), then its last `n` lines.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let alarms: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .collect();
    let last = |lines: &[&str]| lines[lines.len().saturating_sub(n)..].join("\n");
    format!(
        "(warnings and errors)\n{}\n(last lines)\n{}",
        last(&alarms),
        last(&lines)
    )
}

// --- Descriptor limit (Linux: /proc) ---------------------------------------------------------

/// The server's CPU time so far, in clock ticks: utime + stime, fields 14 and 15 of
/// `/proc/PID/stat` (counted after the command name, which may contain spaces).
#[cfg(target_os = "linux")]
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    let after_name = &stat[stat.rfind(')').expect("(comm) in /proc/PID/stat") + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect(); // field 3 is fields[0]
    let field = |n: usize| fields[n - 3].parse::<u64>().expect("a number of ticks");
    field(14) + field(15)
}

/// Clock ticks per second, from `getconf CLK_TCK` (100 if that fails: Linux's usual value).
#[cfg(target_os = "linux")]
fn clock_ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    text.ok().and_then(|t| t.parse().ok()).unwrap_or(100.0)
}

/// Under `ulimit -n 64`, 100 clients: the server accepts what its descriptors allow (each of
/// those gets a round trip), the others wait in the listen queue. It must stay alive, not spin
/// (the listener stays readable while connections wait), and once the clients leave it must
/// serve a new one: the listener must not have been closed on `EMFILE`. `round_trip(conn, i)`
/// is one request and its reply, checked, on client number `i`.
#[cfg(target_os = "linux")]
pub fn descriptor_limit(
    name: &str,
    args: &[&str],
    round_trip: impl Fn(&TcpStream, usize) -> io::Result<()>,
) {
    const LIMIT: usize = 64;
    const CLIENTS: usize = 100;
    const HOLD: Duration = Duration::from_secs(1);
    const MAX_CPU_PERCENT: f64 = 30.0; // a spinning server takes about 100
    let mut server = ExampleServer::start_with_fd_limit(name, LIMIT as u32, args);
    let pid = server.pid();
    let open_fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("/proc/PID/fd")
            .count()
    };

    // After the first round trip the loop is running: every descriptor but this connection
    // is the server's own (stdio, the poller, the listener, the signal pipe...).
    let first = connect(server.addr()).expect("the first client connects");
    round_trip(&first, 0).expect("the first client is served");
    let room = LIMIT - (open_fds() - 1);
    let mut clients = vec![first];
    let mut failures = Vec::new();
    for i in 1..CLIENTS {
        let client = connect(server.addr()).and_then(|conn| {
            if i < room {
                round_trip(&conn, i)?; // the server has a descriptor for this one
            }
            Ok(conn)
        });
        match client {
            Ok(conn) => clients.push(conn),
            Err(e) => {
                let why = match e.kind() {
                    io::ErrorKind::ConnectionRefused => ": the listener is closed",
                    _ => "",
                };
                failures.push(format!("client {i} of {CLIENTS}: {e}{why}"));
                break;
            }
        }
    }

    if let Some(status) = server.exited() {
        failures.push(format!("the server exited at the limit: {status}"));
    } else {
        let ticks = cpu_ticks(pid);
        let start = Instant::now();
        std::thread::sleep(HOLD); // a measurement period, not a synchronisation
        let seconds = (cpu_ticks(pid) - ticks) as f64 / clock_ticks_per_second();
        let percent = seconds * 100.0 / start.elapsed().as_secs_f64();
        eprintln!("{name}: {percent:.0}% of one core while at the limit with {CLIENTS} clients");
        if percent > MAX_CPU_PERCENT {
            failures.push(format!(
                "{percent:.0}% of one core while at the limit (over {MAX_CPU_PERCENT}%): it spins"
            ));
        }
    }

    drop(clients);
    let start = Instant::now();
    match connect(server.addr()).and_then(|conn| round_trip(&conn, CLIENTS)) {
        Ok(()) => eprintln!(
            "{name}: a new client served {:.2} s after the {CLIENTS} others left",
            start.elapsed().as_secs_f64()
        ),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => failures.push(format!(
            "a new client after the others left: {e}: the listener is closed"
        )),
        Err(e) => failures.push(format!("a new client after the others left: {e}")),
    }
    assert!(
        failures.is_empty(),
        "{name} under `ulimit -n {LIMIT}` with {CLIENTS} clients (room for {room}):\n  {}\n\
         stderr (end):\n{}",
        failures.join("\n  "),
        tail(&server.stderr(), 10)
    );
}
