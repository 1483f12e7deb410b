//! The example servers, run as processes and put through the faults a real server meets: a
//! client that reads slowly and half-closes, the descriptor limit, a reset, garbage, a client
//! that never reads, and Ctrl-C; then their timeouts (slowloris, a client that never reads, a
//! trickling one) and `blast_server`'s bounded memory. Users copy these programs, so they must
//! survive all of it. Then every example program's command line, as a newcomer meets it (bad
//! flags, `--help`, an address in use...), and SIGTERM.
//!
//! Each example is built on first use (`common::example_binary`), so this file runs alone too:
//! `cargo test --test examples`. Each fault is one generic function below, and each server one
//! line per fault at the end.

mod common;

use common::{connect, tail, ExampleServer, TIMEOUT};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// An example server, and what it replies to the whole lines it receives.
struct Example {
    name: &'static str,
    args: &'static [&'static str],
    reply: fn(&[u8]) -> Vec<u8>,
}

const ECHO: Example = Example {
    name: "echo_server",
    args: &["127.0.0.1:0"],
    reply: <[u8]>::to_vec,
};

const IDLE_ECHO: Example = Example {
    name: "idle_echo_server",
    args: &["127.0.0.1:0"],
    reply: <[u8]>::to_vec,
};

/// Line-based, lines of at most 4096 bytes; replies in upper case.
const UPPERCASE: Example = Example {
    name: "uppercase_server",
    args: &["127.0.0.1:0"],
    reply: <[u8]>::to_ascii_uppercase,
};

impl Example {
    fn start(&self) -> ExampleServer {
        ExampleServer::start(self.name, self.args)
    }
}

/// `total / 64` numbered lines of 64 bytes (a multiple of 64): a loss, a duplicate or a
/// reordering shows, and tells where.
fn lines(total: usize) -> Vec<u8> {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(total);
    for i in 0..total / 64 {
        out.extend_from_slice(format!("{i:09} ").as_bytes());
        out.extend((0..53).map(|j| LETTERS[(i + j) % LETTERS.len()]));
        out.push(b'\n');
    }
    out
}

/// `len` pseudo-random bytes (xorshift64, fixed seed: the same bytes every run).
fn random_bytes(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

/// Sends one line on `conn` and checks the server's reply.
fn round_trip(ex: &Example, mut conn: &TcpStream, i: usize) -> io::Result<()> {
    let line = format!("round trip {i}\n");
    conn.write_all(line.as_bytes())?;
    let expected = (ex.reply)(line.as_bytes());
    let mut reply = vec![0u8; expected.len()];
    conn.read_exact(&mut reply).map_err(|e| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            io::Error::new(ErrorKind::TimedOut, format!("no reply within {TIMEOUT:?}"))
        }
        _ => e,
    })?;
    if reply != expected {
        let msg = format!("sent {line:?}, got {:?}", String::from_utf8_lossy(&reply));
        return Err(io::Error::new(ErrorKind::InvalidData, msg));
    }
    Ok(())
}

/// Checks that the server still runs and that a new client gets one round trip.
#[track_caller]
fn assert_serves(ex: &Example, server: &mut ExampleServer, after: &str) {
    let name = ex.name;
    if let Some(status) = server.exited() {
        panic!(
            "{name} exited {after} ({status}); stderr:\n{}",
            server.stderr()
        );
    }
    let result = connect(server.addr()).and_then(|conn| round_trip(ex, &conn, 0));
    if let Err(e) = result {
        let stderr = tail(&server.stderr(), 20);
        panic!("{name} does not serve a new client {after}: {e}; stderr (end):\n{stderr}");
    }
}

// --- Slow reader, then half-close ------------------------------------------------------------

/// 16 MiB through the server to a client that reads slowly, the client half-closing once it
/// has sent everything: every byte must come back, in order, before end of file. A server
/// writing with `write_all` on its non-blocking socket loses what `WouldBlock` interrupted.
fn slow_reader_then_half_close(ex: &Example) {
    const TOTAL: usize = 16 << 20;
    let server = ex.start();
    let payload = lines(TOTAL);
    let expected = (ex.reply)(&payload);
    let mut conn = connect(server.addr()).expect("connect");
    let mut sender = conn.try_clone().expect("clone the client socket");
    let writer = thread::spawn(move || -> io::Result<()> {
        sender.write_all(&payload)?;
        sender.shutdown(Shutdown::Write) // half-close: the replies must still all arrive
    });

    let start = Instant::now();
    let deadline = start + 6 * TIMEOUT; // about 2 s here; the reads are paced, not the wait
    let mut received = Vec::with_capacity(expected.len());
    let mut buf = vec![0u8; 16 << 10];
    let end = loop {
        match conn.read(&mut buf) {
            Ok(0) => break "end of file".to_string(),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                break format!("a read error ({e}; a timeout means nothing came for {TIMEOUT:?})")
            }
        }
        if Instant::now() > deadline {
            break format!("the deadline ({:?})", deadline - start);
        }
        thread::sleep(Duration::from_millis(1)); // the slow reader: the fault simulated
    };
    let took = start.elapsed().as_secs_f64();
    let sent = writer.join().expect("the writer thread");
    let name = ex.name;
    if received != expected {
        let lost = expected.len() as i64 - received.len() as i64;
        let at = expected.iter().zip(&received).position(|(a, b)| a != b);
        let at = at.unwrap_or(expected.len().min(received.len()));
        panic!(
            "{name}: sent {TOTAL} bytes, got {} back before {end}: {lost} bytes lost \
             ({:.1}% of the reply); first difference at byte {at} (line {}); the client's \
             writes: {sent:?}; took {took:.1} s; stderr (end):\n{}",
            received.len(),
            lost as f64 * 100.0 / expected.len() as f64,
            at / 64,
            tail(&server.stderr(), 10),
        );
    }
    sent.expect("the client sent everything");
    eprintln!(
        "{name}: the reply to {TOTAL} bytes came back intact to a slow reader in {took:.1} s"
    );
}

// --- Descriptor limit (Linux: /proc) ---------------------------------------------------------

/// [`common::descriptor_limit`] with the example's own round trip.
#[cfg(target_os = "linux")]
fn descriptor_limit(ex: &Example) {
    common::descriptor_limit(ex.name, ex.args, |conn, i| round_trip(ex, conn, i));
}

// --- Reset, garbage, a client that never reads -----------------------------------------------

/// A client sends, starts receiving, then resets (`SO_LINGER` 0, then close: an RST).
fn reset_mid_transfer(ex: &Example) {
    let mut server = ex.start();
    let mut conn = connect(server.addr()).expect("connect");
    conn.write_all(&lines(256 << 10)).expect("send 256 KiB");
    let mut some = [0u8; 4096];
    conn.read_exact(&mut some).expect("the reply starts");
    socket2::SockRef::from(&conn)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(conn); // reset, with most of the reply still to come
    assert_serves(
        ex,
        &mut server,
        "after a client reset its connection mid-transfer",
    );
}

/// Random binary bytes, then a 64 KiB line (over `uppercase_server`'s 4096-byte limit), then a
/// half-close. The server may reply or close the connection, but must close it in the end,
/// and go on serving.
fn garbage(ex: &Example) {
    let mut server = ex.start();
    let conn = connect(server.addr()).expect("connect");
    let mut junk = random_bytes(256 << 10);
    junk.extend(std::iter::repeat_n(b'x', 64 << 10));
    let mut sender = conn.try_clone().expect("clone the client socket");
    let writer = thread::spawn(move || {
        sender.write_all(&junk)?;
        sender.shutdown(Shutdown::Write)
    });
    let mut buf = vec![0u8; 64 << 10];
    let end = loop {
        match (&conn).read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => {} // whatever the server makes of it
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    let name = ex.name;
    end.unwrap_or_else(|e| panic!("{name} did not close the garbage connection: {e}"));
    match writer.join().expect("the writer thread") {
        Ok(()) => {}
        // The server closed the connection before taking it all (the line over the limit).
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {}
        Err(e) => panic!("{name}: sending the garbage: {e}"),
    }
    assert_serves(ex, &mut server, "after a client sent garbage");
}

/// One client sends without ever reading the replies; meanwhile another must be served.
fn client_that_never_reads(ex: &Example) {
    const FIRST: usize = 1 << 20; // sent before the other client starts
    let mut server = ex.start();
    let hog = connect(server.addr()).expect("connect");
    let mut sender = hog.try_clone().expect("clone the client socket");
    let (started, has_started) = std::sync::mpsc::channel();
    let writer = thread::spawn(move || {
        let chunk = lines(64 << 10);
        let mut sent = 0;
        while sent < 64 << 20 && sender.write_all(&chunk).is_ok() {
            sent += chunk.len();
            if sent == FIRST {
                let _ = started.send(());
            }
        }
        sent
    });
    let name = ex.name;
    has_started.recv_timeout(TIMEOUT).unwrap_or_else(|e| {
        panic!("{name}: the client that never reads could not send {FIRST} bytes: {e}")
    });
    for i in 0..10 {
        let other = connect(server.addr()).and_then(|conn| round_trip(ex, &conn, i));
        if let Err(e) = other {
            let stderr = tail(&server.stderr(), 10);
            panic!(
                "{name}: a client is not served while another never reads: {e}; stderr:\n{stderr}"
            );
        }
    }
    hog.shutdown(Shutdown::Both).expect("shut the hog down"); // its blocked write fails
    let sent = writer.join().expect("the writer thread");
    eprintln!("{name}: served 10 clients while another had sent {sent} bytes without reading");
    assert_serves(ex, &mut server, "after a client that never read left");
}

// --- Ctrl-C (Unix: SIGINT) ---------------------------------------------------------------------

/// SIGINT with three clients connected: exit status 0, and the server says it closed them.
#[cfg(unix)]
fn ctrl_c(ex: &Example) {
    let mut server = ex.start();
    let clients: Vec<TcpStream> = (0..3)
        .map(|i| {
            let conn = connect(server.addr()).expect("connect");
            round_trip(ex, &conn, i).expect("a round trip (the server accepted it)");
            conn
        })
        .collect();
    let status = server.interrupt();
    let stderr = server.stderr();
    let name = ex.name;
    assert!(
        status.success() && stderr.contains("closed 3 connection(s)"),
        "{name} on SIGINT with 3 clients: {status}, expected success and \"closed 3 \
         connection(s)\"; stderr (end):\n{}",
        tail(&stderr, 10)
    );
    drop(clients);
}

// --- Timeouts: slowloris, a client that never reads, a quiet one ---------------------------------

/// Reads from `conn` until the server closes it (end of file or a reset), whatever comes
/// first; fails after [`TIMEOUT`] without the close.
#[track_caller]
fn wait_for_close(mut conn: &TcpStream, what: &str) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("{what}: not closed by the server ({e})"),
        }
    }
}

/// A client that sends `first`, then one byte (never a newline) every 100 ms, from a thread
/// of its own — the fault simulated — until its writes fail. Call it after taking the time
/// the server's clock cannot have started before.
fn trickle(conn: &TcpStream, first: &[u8]) -> thread::JoinHandle<()> {
    let mut sender = conn.try_clone().expect("clone the client socket");
    sender.write_all(first).expect("the first bytes");
    thread::spawn(move || {
        while sender.write_all(b"x").is_ok() {
            thread::sleep(Duration::from_millis(100));
        }
    })
}

/// While `slow` waits to be closed (on a thread), another client gets a round trip every
/// 50 ms; returns the time from `start` to the close, and the round trips done meanwhile.
#[track_caller]
fn served_while_closing(
    ex: &Example,
    server: &ExampleServer,
    slow: TcpStream,
    start: Instant,
) -> (Duration, u32) {
    let (closed, is_closed) = std::sync::mpsc::channel();
    thread::spawn(move || {
        wait_for_close(&slow, "the slow client");
        let _ = closed.send(start.elapsed());
    });
    let good = connect(server.addr()).expect("connect");
    let mut served = 0;
    loop {
        match is_closed.recv_timeout(Duration::from_millis(50)) {
            Ok(took) => return (took, served),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("{}: the slow client's thread: {e}", ex.name),
        }
        if let Err(e) = round_trip(ex, &good, served as usize) {
            let stderr = tail(&server.stderr(), 10);
            panic!(
                "{}: a client is not served beside a slow one: {e}\n{stderr}",
                ex.name
            );
        }
        served += 1;
        assert!(
            start.elapsed() < TIMEOUT,
            "{}: the slow client was never closed",
            ex.name
        );
    }
}

/// `uppercase_server --frame-timeout 0.3`: a client that starts a line and trickles a byte
/// every 100 ms is closed once the line is 0.3 s old; another is served meanwhile.
#[test]
fn uppercase_server_closes_a_slowloris_after_the_frame_timeout() {
    let args = ["127.0.0.1:0", "--frame-timeout", "0.3"];
    let server = ExampleServer::start(UPPERCASE.name, &args);
    let slow = connect(server.addr()).expect("connect");
    let start = Instant::now(); // before its first byte
    let trickler = trickle(&slow, b"GET / HTTP/1.1");
    let (took, served) = served_while_closing(&UPPERCASE, &server, slow, start);
    trickler.join().expect("the trickling thread");
    assert!(took >= Duration::from_millis(300), "closed after {took:?}");
    assert!(served > 0, "no round trip while the slowloris was there");
    server.wait_for_stderr("the frame timeout logged", |text| {
        text.contains("closed: frame timeout")
    });
    eprintln!(
        "slowloris closed after {:.2} s; {served} round trips meanwhile",
        took.as_secs_f64()
    );
}

/// `uppercase_server --send-timeout 0.3`: a client that sends without reading is cut off
/// once its replies have waited 0.3 s; another is served meanwhile.
#[test]
fn uppercase_server_cuts_off_a_client_that_never_reads_after_the_send_timeout() {
    let args = ["127.0.0.1:0", "--send-timeout", "0.3"];
    let server = ExampleServer::start(UPPERCASE.name, &args);
    let good = connect(server.addr()).expect("connect");
    common::hog_is_cut_off(server.addr(), lines(64 << 10), |i| {
        round_trip(&UPPERCASE, &good, i).expect("a client beside the hog is served");
    });
    server.wait_for_stderr("the send timeout logged", |text| {
        text.contains("closed: send timeout")
    });
}

/// `idle_echo_server --idle-timeout 0.5`: a client trickling a line (a byte every 100 ms:
/// traffic, so never idle) is closed once the line is 0.5 s old, the frame timeout being the
/// idle timeout unless given.
#[test]
fn idle_echo_server_closes_a_trickling_client() {
    let args = ["127.0.0.1:0", "--idle-timeout", "0.5"];
    let server = ExampleServer::start(IDLE_ECHO.name, &args);
    let slow = connect(server.addr()).expect("connect");
    let start = Instant::now(); // before its first byte
    let trickler = trickle(&slow, b"x");
    let (took, served) = served_while_closing(&IDLE_ECHO, &server, slow, start);
    trickler.join().expect("the trickling thread");
    assert!(took >= Duration::from_millis(500), "closed after {took:?}");
    assert!(
        served > 0,
        "no round trip while the trickling client was there"
    );
    server.wait_for_stderr("the frame timeout logged", |text| {
        text.contains("closed: frame timeout")
    });
}

/// With `--idle-timeout 0.3`: a quiet client gets end of file; a client that sends without
/// reading (its replies stay queued, so a graceful close cannot finish) is cut off.
#[test]
fn idle_echo_server_closes_quiet_and_stuck_clients() {
    let args = ["127.0.0.1:0", "--idle-timeout", "0.3"];
    let server = ExampleServer::start(IDLE_ECHO.name, &args);
    let quiet = connect(server.addr()).expect("connect");
    round_trip(&IDLE_ECHO, &quiet, 0).expect("a round trip");
    let start = Instant::now();
    match (&quiet).read(&mut [0u8; 1]) {
        Ok(0) => eprintln!(
            "quiet client closed after {:.2} s",
            start.elapsed().as_secs_f64()
        ),
        other => panic!("expected end of file on the quiet client, got {other:?}"),
    }

    let mut hog = connect(server.addr()).expect("connect");
    hog.set_write_timeout(None).expect("blocking writes");
    let (done, is_done) = std::sync::mpsc::channel();
    let start = Instant::now();
    thread::spawn(move || {
        let chunk = lines(64 << 10);
        let error = loop {
            if let Err(e) = hog.write_all(&chunk) {
                break e;
            }
        };
        let _ = done.send(error);
    });
    let error = is_done
        .recv_timeout(TIMEOUT)
        .expect("the client that never reads is cut off");
    let cut = start.elapsed().as_secs_f64();
    assert!(
        matches!(
            error.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        ),
        "the client that never reads: {error}"
    );
    eprintln!("a client that never reads was cut off after {cut:.2} s: {error}");
}

// --- blast_server: a producer in bounded memory ---------------------------------------------------

/// The peak resident memory of process `pid` so far, in KiB (`VmHWM`).
#[cfg(target_os = "linux")]
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
    let kib = line.and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok());
    kib.expect("VmHWM in /proc/PID/status")
}

/// Starts `blast_server --payload BYTES`, reads the whole payload, checks every byte and the
/// end of file, and returns the server's peak resident memory (KiB).
#[cfg(target_os = "linux")]
fn blast(payload: usize) -> u64 {
    let server = ExampleServer::start(
        "blast_server",
        &["127.0.0.1:0", "--payload", &payload.to_string()],
    );
    let mut conn = connect(server.addr()).expect("connect");
    let (mut got, mut buf) = (0, vec![0u8; 64 << 10]);
    loop {
        let n = conn
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("after {got} bytes: {e}"));
        if n == 0 {
            break;
        }
        let wrong = (0..n).find(|&i| buf[i] != ((got + i) % 251) as u8);
        assert!(
            wrong.is_none(),
            "byte {} is wrong",
            got + wrong.unwrap_or(0)
        );
        got += n;
    }
    assert_eq!(got, payload, "end of file after {got} of {payload} bytes");
    server.wait_for_stderr("the end of the transfer", |text| {
        text.contains(&format!("sent {payload} bytes"))
    });
    peak_rss_kib(server.pid())
}

/// The server's peak memory does not grow with the payload: 8 MiB and 64 MiB to a client
/// cost the same, within 2 MiB (sending it all at once would cost the whole payload).
#[cfg(target_os = "linux")]
#[test]
fn blast_server_streams_any_payload_in_bounded_memory() {
    let small = blast(8 << 20);
    let large = blast(64 << 20);
    eprintln!("blast_server's peak RSS: {small} KiB for 8 MiB, {large} KiB for 64 MiB");
    assert!(
        large <= small + 2048,
        "peak RSS {large} KiB for 64 MiB against {small} KiB for 8 MiB: it grows with the payload"
    );
}

// --- Each fault, each server --------------------------------------------------------------------

#[test]
fn echo_server_slow_reader_then_half_close() {
    slow_reader_then_half_close(&ECHO);
}
#[test]
fn idle_echo_server_slow_reader_then_half_close() {
    slow_reader_then_half_close(&IDLE_ECHO);
}
#[test]
fn uppercase_server_slow_reader_then_half_close() {
    slow_reader_then_half_close(&UPPERCASE);
}

#[cfg(target_os = "linux")]
#[test]
fn echo_server_descriptor_limit() {
    descriptor_limit(&ECHO);
}
#[cfg(target_os = "linux")]
#[test]
fn idle_echo_server_descriptor_limit() {
    descriptor_limit(&IDLE_ECHO);
}
#[cfg(target_os = "linux")]
#[test]
fn uppercase_server_descriptor_limit() {
    descriptor_limit(&UPPERCASE);
}

#[test]
fn echo_server_reset_mid_transfer() {
    reset_mid_transfer(&ECHO);
}
#[test]
fn idle_echo_server_reset_mid_transfer() {
    reset_mid_transfer(&IDLE_ECHO);
}
#[test]
fn uppercase_server_reset_mid_transfer() {
    reset_mid_transfer(&UPPERCASE);
}

#[test]
fn echo_server_garbage() {
    garbage(&ECHO);
}
#[test]
fn idle_echo_server_garbage() {
    garbage(&IDLE_ECHO);
}
#[test]
fn uppercase_server_garbage() {
    garbage(&UPPERCASE);
}

#[test]
fn echo_server_client_that_never_reads() {
    client_that_never_reads(&ECHO);
}
#[test]
fn idle_echo_server_client_that_never_reads() {
    client_that_never_reads(&IDLE_ECHO);
}
#[test]
fn uppercase_server_client_that_never_reads() {
    client_that_never_reads(&UPPERCASE);
}

#[cfg(unix)]
#[test]
fn echo_server_ctrl_c() {
    ctrl_c(&ECHO);
}
#[cfg(unix)]
#[test]
fn idle_echo_server_ctrl_c() {
    ctrl_c(&IDLE_ECHO);
}
#[cfg(unix)]
#[test]
fn uppercase_server_ctrl_c() {
    ctrl_c(&UPPERCASE);
}

// --- echo_server --stats: the loop's metrics, a line per interval -------------------------------

/// The sums of `key=N` over the `stats:` lines of `stderr`, and how many lines there are.
fn stats_sums(stderr: &str, key: &str) -> (u64, usize) {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("stats: "))
        .collect();
    let sum = lines
        .iter()
        .map(|line| {
            let field = line.split(' ').find_map(|f| f.strip_prefix(key));
            let field = field.unwrap_or_else(|| panic!("no {key} in the stats line {line:?}"));
            field
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("{key} in {line:?}: {e}"))
        })
        .sum();
    (sum, lines.len())
}

#[test]
fn echo_server_prints_the_loop_metrics() {
    let server = ExampleServer::start("echo_server", &["127.0.0.1:0", "--stats", "0.05"]);
    let conn = connect(server.addr()).expect("connect");
    for i in 0..10 {
        round_trip(&ECHO, &conn, i).expect("a round trip");
    }
    drop(conn);
    // One accept, ten reads of a line, the read of the end of file: 12 callbacks, none failed.
    let stderr = server.wait_for_stderr("12 callbacks in the stats lines", |text| {
        stats_sums(text, "callbacks=").0 >= 12
    });
    assert_eq!(stats_sums(&stderr, "callbacks=").0, 12, "{stderr}");
    assert_eq!(stats_sums(&stderr, "failed=").0, 0, "{stderr}");
    let (iterations, lines) = stats_sums(&stderr, "iterations=");
    assert!(
        iterations >= 12 + lines as u64 - 1,
        "an iteration per callback: {stderr}"
    );
    for line in stderr.lines().filter(|l| l.starts_with("stats: ")) {
        assert!(line.contains(" wait=") && line.ends_with('%'), "{line}");
    }
    drop(server);
}

/// The README's demo as a user runs it: lines typed into `echo_client` come back, each printed
/// as it arrives; at the end of input the client exits 0.
#[test]
fn echo_client_types_lines_to_echo_server() {
    use std::process::{Command, Stdio};
    let server = ExampleServer::start("echo_server", &["127.0.0.1:0"]);
    let mut client = Command::new(common::example_binary("echo_client"))
        .arg(server.addr().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start echo_client");
    let mut stdin = client.stdin.take().expect("its stdin");
    stdin.write_all(b"hello\nsecond line\n").expect("type");
    drop(stdin);
    let out = client.wait_with_output().expect("echo_client's output");
    assert!(out.status.success(), "echo_client: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "received: hello\nreceived: second line\n"
    );
    drop(server);
}

#[test]
fn echo_server_refuses_a_bad_stats_interval() {
    for (value, message) in [
        ("0", "--stats 0: the interval must be above 0"),
        ("x", "--stats x"),
    ] {
        let out = common::run_example("echo_server", &["--stats", value]);
        assert_usage_error("echo_server", &out, message);
    }
}

// --- The I/O-model ladder (examples/model_*.rs; tests/ladder.rs has what each rung shows) -------
//
// Each fault applies where the model can take it: an iterative server (`model_blocking`) cannot
// serve another client while one never reads, nor hold many clients at the descriptor limit,
// and neither can a pool of 3 hold them; `model_nonblocking_busy` spins by design (its idle CPU
// is measured by benches/ladder.rs), so the descriptor-limit test's "no spinning" does not
// apply; the blocking rungs end on Ctrl-C by the default action, not cleanly.

const MODEL_BLOCKING: Example = Example {
    name: "model_blocking",
    args: &["127.0.0.1:0"],
    reply: <[u8]>::to_vec,
};
const MODEL_THREAD_PER_CONN: Example = Example {
    name: "model_thread_per_conn",
    args: &["127.0.0.1:0"],
    reply: <[u8]>::to_vec,
};
const MODEL_THREAD_POOL: Example = Example {
    name: "model_thread_pool",
    args: &["127.0.0.1:0"],
    reply: <[u8]>::to_vec,
};
#[cfg(unix)]
const MODEL_FORK: Example = Example {
    name: "model_fork",
    args: &["127.0.0.1:0"],
    reply: <[u8]>::to_vec,
};
const MODEL_BUSY: Example = Example {
    name: "model_nonblocking_busy",
    args: &["127.0.0.1:0"],
    reply: <[u8]>::to_vec,
};
const MODEL_SELECT: Example = Example {
    name: "model_select",
    args: &["127.0.0.1:0"],
    reply: <[u8]>::to_vec,
};
const MODEL_POLL: Example = Example {
    name: "model_poll",
    args: &["127.0.0.1:0"],
    reply: <[u8]>::to_vec,
};
#[cfg(target_os = "linux")]
const MODEL_EPOLL_EDGE: Example = Example {
    name: "model_epoll_edge",
    args: &["127.0.0.1:0"],
    reply: <[u8]>::to_vec,
};

#[test]
fn model_blocking_slow_reader_then_half_close() {
    slow_reader_then_half_close(&MODEL_BLOCKING);
}
#[test]
fn model_thread_per_conn_slow_reader_then_half_close() {
    slow_reader_then_half_close(&MODEL_THREAD_PER_CONN);
}
#[test]
fn model_thread_pool_slow_reader_then_half_close() {
    slow_reader_then_half_close(&MODEL_THREAD_POOL);
}
#[cfg(unix)]
#[test]
fn model_fork_slow_reader_then_half_close() {
    slow_reader_then_half_close(&MODEL_FORK);
}
#[test]
fn model_nonblocking_busy_slow_reader_then_half_close() {
    slow_reader_then_half_close(&MODEL_BUSY);
}
#[test]
fn model_select_slow_reader_then_half_close() {
    slow_reader_then_half_close(&MODEL_SELECT);
}
#[test]
fn model_poll_slow_reader_then_half_close() {
    slow_reader_then_half_close(&MODEL_POLL);
}
#[cfg(target_os = "linux")]
#[test]
fn model_epoll_edge_slow_reader_then_half_close() {
    slow_reader_then_half_close(&MODEL_EPOLL_EDGE);
}

#[cfg(target_os = "linux")]
#[test]
fn model_thread_per_conn_descriptor_limit() {
    descriptor_limit(&MODEL_THREAD_PER_CONN);
}
#[cfg(target_os = "linux")]
#[test]
fn model_fork_descriptor_limit() {
    descriptor_limit(&MODEL_FORK);
}
#[cfg(target_os = "linux")]
#[test]
fn model_select_descriptor_limit() {
    descriptor_limit(&MODEL_SELECT);
}
#[cfg(target_os = "linux")]
#[test]
fn model_poll_descriptor_limit() {
    descriptor_limit(&MODEL_POLL);
}
#[cfg(target_os = "linux")]
#[test]
fn model_epoll_edge_descriptor_limit() {
    descriptor_limit(&MODEL_EPOLL_EDGE);
}

#[test]
fn model_blocking_reset_mid_transfer() {
    reset_mid_transfer(&MODEL_BLOCKING);
}
#[test]
fn model_thread_per_conn_reset_mid_transfer() {
    reset_mid_transfer(&MODEL_THREAD_PER_CONN);
}
#[test]
fn model_thread_pool_reset_mid_transfer() {
    reset_mid_transfer(&MODEL_THREAD_POOL);
}
#[cfg(unix)]
#[test]
fn model_fork_reset_mid_transfer() {
    reset_mid_transfer(&MODEL_FORK);
}
#[test]
fn model_nonblocking_busy_reset_mid_transfer() {
    reset_mid_transfer(&MODEL_BUSY);
}
#[test]
fn model_select_reset_mid_transfer() {
    reset_mid_transfer(&MODEL_SELECT);
}
#[test]
fn model_poll_reset_mid_transfer() {
    reset_mid_transfer(&MODEL_POLL);
}
#[cfg(target_os = "linux")]
#[test]
fn model_epoll_edge_reset_mid_transfer() {
    reset_mid_transfer(&MODEL_EPOLL_EDGE);
}

#[test]
fn model_blocking_garbage() {
    garbage(&MODEL_BLOCKING);
}
#[test]
fn model_thread_per_conn_garbage() {
    garbage(&MODEL_THREAD_PER_CONN);
}
#[test]
fn model_thread_pool_garbage() {
    garbage(&MODEL_THREAD_POOL);
}
#[cfg(unix)]
#[test]
fn model_fork_garbage() {
    garbage(&MODEL_FORK);
}
#[test]
fn model_nonblocking_busy_garbage() {
    garbage(&MODEL_BUSY);
}
#[test]
fn model_select_garbage() {
    garbage(&MODEL_SELECT);
}
#[test]
fn model_poll_garbage() {
    garbage(&MODEL_POLL);
}
#[cfg(target_os = "linux")]
#[test]
fn model_epoll_edge_garbage() {
    garbage(&MODEL_EPOLL_EDGE);
}

#[test]
fn model_thread_per_conn_client_that_never_reads() {
    client_that_never_reads(&MODEL_THREAD_PER_CONN);
}
#[test]
fn model_thread_pool_client_that_never_reads() {
    client_that_never_reads(&MODEL_THREAD_POOL);
}
#[cfg(unix)]
#[test]
fn model_fork_client_that_never_reads() {
    client_that_never_reads(&MODEL_FORK);
}
#[test]
fn model_nonblocking_busy_client_that_never_reads() {
    client_that_never_reads(&MODEL_BUSY);
}
#[test]
fn model_select_client_that_never_reads() {
    client_that_never_reads(&MODEL_SELECT);
}
#[test]
fn model_poll_client_that_never_reads() {
    client_that_never_reads(&MODEL_POLL);
}
#[cfg(target_os = "linux")]
#[test]
fn model_epoll_edge_client_that_never_reads() {
    client_that_never_reads(&MODEL_EPOLL_EDGE);
}

#[cfg(unix)]
#[test]
fn model_nonblocking_busy_ctrl_c() {
    ctrl_c(&MODEL_BUSY);
}
#[cfg(unix)]
#[test]
fn model_select_ctrl_c() {
    ctrl_c(&MODEL_SELECT);
}
#[cfg(unix)]
#[test]
fn model_poll_ctrl_c() {
    ctrl_c(&MODEL_POLL);
}
#[cfg(target_os = "linux")]
#[test]
fn model_epoll_edge_ctrl_c() {
    ctrl_c(&MODEL_EPOLL_EDGE);
}

// --- The command line: usage errors, --help, run-time errors, SIGTERM ---------------------------
//
// Every example program, as a newcomer runs it: an unknown flag, an extra argument or a bad value
// is refused with `PROG: what (try --help)` and the usage line, exit status 2; `-h`/`--help`
// prints the usage, exit status 0, wherever it comes; a run-time error is one line,
// `PROG: ADDR: what went wrong`, exit status 1; never a Rust `Debug` struct.

/// Runs example `name` with `args`, which must make it end by itself (a usage error, `--help`,
/// a failure at start-up), and returns its exit status, stdout and stderr. Still running after
/// [`TIMEOUT`], it is killed and the test fails.
#[track_caller]
fn run_to_end(name: &str, args: &[String]) -> std::process::Output {
    use std::process::{Command, Stdio};
    let mut child = Command::new(common::example_binary(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: cannot start it: {e}"));
    // Both pipes reach end of file when it exits.
    let (closed, is_closed) = std::sync::mpsc::channel();
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        let closed = closed.clone();
        thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            let _ = closed.send(());
            text
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("stdout is piped")));
    let stderr = read_all(Box::new(child.stderr.take().expect("stderr is piped")));
    let deadline = Instant::now() + TIMEOUT;
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        if is_closed.recv_timeout(left).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().expect("the stderr reader");
            panic!(
                "{name} {args:?} still runs after {TIMEOUT:?} (it should have ended at once); \
                 stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
    }
    std::process::Output {
        status: child.wait().expect("wait for the program"),
        stdout: stdout.join().expect("the stdout reader"),
        stderr: stderr.join().expect("the stderr reader"),
    }
}

/// An example program, and the arguments that make it use an address (and whatever else it
/// needs to start).
struct Program {
    name: &'static str,
    with_addr: fn(&str) -> Vec<String>,
}

impl Program {
    #[track_caller]
    fn run(&self, args: &[&str]) -> std::process::Output {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        run_to_end(self.name, &args)
    }

    #[track_caller]
    fn run_at(&self, addr: &str, more: &[&str]) -> std::process::Output {
        let mut args = (self.with_addr)(addr);
        args.extend(more.iter().map(|a| a.to_string()));
        run_to_end(self.name, &args)
    }
}

fn addr_only(addr: &str) -> Vec<String> {
    vec![addr.to_string()]
}

/// `--root .`: the crate's directory, which exists (these runs end before serving anything).
fn file_server_at(addr: &str) -> Vec<String> {
    ["--root", ".", "--listen", addr].map(String::from).to_vec()
}

fn file_client_at(addr: &str) -> Vec<String> {
    vec![addr.to_string(), "list".to_string()]
}

fn udp_client_at(addr: &str) -> Vec<String> {
    vec!["--client".to_string(), addr.to_string()]
}

/// Bytes a program wrote, as text (for assertions and messages).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Neither stream shows a Rust `Debug` struct (`Error: Os { code: 98, kind: AddrInUse, .. }`).
#[track_caller]
fn assert_no_debug_struct(name: &str, out: &std::process::Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = text(bytes);
        for debug in ["Error {", "Custom {", "Os {", "kind:"] {
            assert!(
                !text.contains(debug),
                "{name}: a Debug struct ({debug:?}) on its {stream}:\n{text}"
            );
        }
    }
}

/// A usage error: exit status 2; stderr is `PROG: <message> (try --help)`, with `message` in
/// its first line, then the usage line.
#[track_caller]
fn assert_usage_error(name: &str, out: &std::process::Output, message: &str) {
    let stderr = text(&out.stderr);
    let first = stderr.lines().next().unwrap_or("");
    assert!(
        out.status.code() == Some(2)
            && first.starts_with(&format!("{name}: "))
            && first.contains(message)
            && first.ends_with("(try --help)")
            && stderr.contains(&format!("usage: {name}")),
        "{name}: expected exit status 2 and \"{name}: ...{message}... (try --help)\" then the \
         usage line; got {}, stderr:\n{stderr}",
        out.status
    );
    assert_no_debug_struct(name, out);
}

fn refuses_an_unknown_flag(program: &Program) {
    let out = program.run(&["--bogus"]);
    assert_usage_error(program.name, &out, "--bogus");
}

/// `--help` and `-h`, alone or after arguments that would start it: the usage on stdout.
fn prints_help(program: &Program) {
    let name = program.name;
    for out in [
        program.run(&["--help"]),
        program.run(&["-h"]),
        program.run_at("127.0.0.1:0", &["--help"]),
    ] {
        let stdout = text(&out.stdout);
        assert!(
            out.status.success() && stdout.starts_with(&format!("usage: {name}")),
            "{name} --help: {}; stdout:\n{stdout}\nstderr:\n{}",
            out.status,
            text(&out.stderr)
        );
        assert_no_debug_struct(name, &out);
    }
}

fn refuses_an_extra_argument(program: &Program) {
    let out = program.run_at("127.0.0.1:0", &["extra"]);
    assert_usage_error(program.name, &out, "extra");
}

/// `PROG 8088`, the usual slip: an address needs its host.
fn refuses_a_port_without_its_host(program: &Program) {
    let out = program.run_at("8088", &[]);
    let message = "8088: not a socket address (expected HOST:PORT, e.g. 127.0.0.1:8088)";
    assert_usage_error(program.name, &out, message);
}

/// With its address taken by another socket (bound here first): exit status 1 and one line,
/// `PROG: 127.0.0.1:PORT: ` and the system's text for "address in use".
fn fails_on_an_address_in_use(program: &Program, udp: bool) {
    let name = program.name;
    let (_taken, addr, os_text) = if udp {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        let addr = taken.local_addr().expect("its address");
        let e = std::net::UdpSocket::bind(addr).expect_err("a second bind fails");
        (
            Box::new(taken) as Box<dyn std::any::Any>,
            addr,
            e.to_string(),
        )
    } else {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a listener");
        let addr = taken.local_addr().expect("its address");
        let e = std::net::TcpListener::bind(addr).expect_err("a second bind fails");
        (
            Box::new(taken) as Box<dyn std::any::Any>,
            addr,
            e.to_string(),
        )
    };
    let out = program.run_at(&addr.to_string(), &[]);
    let stderr = text(&out.stderr);
    let expected = format!("{name}: {addr}: {os_text}");
    assert!(
        out.status.code() == Some(1) && stderr.trim_end() == expected,
        "{name} on an address in use: expected exit status 1 and {expected:?}; got {}, \
         stderr:\n{stderr}",
        out.status
    );
    assert_no_debug_struct(name, &out);
}

/// The tests every program gets, one module per program.
macro_rules! command_line_tests {
    ($($(#[$attr:meta])* $module:ident: $name:literal, $with_addr:ident;)*) => {$(
        $(#[$attr])*
        mod $module {
            const PROGRAM: super::Program = super::Program {
                name: $name,
                with_addr: super::$with_addr,
            };
            #[test]
            fn refuses_an_unknown_flag() {
                super::refuses_an_unknown_flag(&PROGRAM);
            }
            #[test]
            fn prints_help() {
                super::prints_help(&PROGRAM);
            }
            #[test]
            fn refuses_an_extra_argument() {
                super::refuses_an_extra_argument(&PROGRAM);
            }
            #[test]
            fn refuses_a_port_without_its_host() {
                super::refuses_a_port_without_its_host(&PROGRAM);
            }
        }
    )*};
}

command_line_tests! {
    cli_echo_server: "echo_server", addr_only;
    cli_idle_echo_server: "idle_echo_server", addr_only;
    cli_uppercase_server: "uppercase_server", addr_only;
    cli_chat_server: "chat_server", addr_only;
    cli_blast_server: "blast_server", addr_only;
    cli_kv_server: "kv_server", addr_only;
    cli_http_server: "http_server", addr_only;
    cli_file_server: "file_server", file_server_at;
    cli_model_blocking: "model_blocking", addr_only;
    cli_model_thread_per_conn: "model_thread_per_conn", addr_only;
    cli_model_thread_pool: "model_thread_pool", addr_only;
    cli_model_fork: "model_fork", addr_only;
    cli_model_nonblocking_busy: "model_nonblocking_busy", addr_only;
    cli_model_select: "model_select", addr_only;
    cli_model_poll: "model_poll", addr_only;
    cli_model_epoll_edge: "model_epoll_edge", addr_only;
    cli_model_udp: "model_udp", addr_only;
    cli_model_udp_client: "model_udp", udp_client_at;
    cli_echo_client: "echo_client", addr_only;
    cli_file_client: "file_client", file_client_at;
}

/// Each server on an address in use (model_fork and model_epoll_edge only where they run).
macro_rules! address_in_use_tests {
    ($($(#[$attr:meta])* $test:ident: $name:literal, $with_addr:ident, $udp:literal;)*) => {$(
        $(#[$attr])*
        #[test]
        fn $test() {
            let program = Program { name: $name, with_addr: $with_addr };
            fails_on_an_address_in_use(&program, $udp);
        }
    )*};
}

address_in_use_tests! {
    echo_server_address_in_use: "echo_server", addr_only, false;
    idle_echo_server_address_in_use: "idle_echo_server", addr_only, false;
    uppercase_server_address_in_use: "uppercase_server", addr_only, false;
    chat_server_address_in_use: "chat_server", addr_only, false;
    blast_server_address_in_use: "blast_server", addr_only, false;
    kv_server_address_in_use: "kv_server", addr_only, false;
    http_server_address_in_use: "http_server", addr_only, false;
    file_server_address_in_use: "file_server", file_server_at, false;
    model_blocking_address_in_use: "model_blocking", addr_only, false;
    model_thread_per_conn_address_in_use: "model_thread_per_conn", addr_only, false;
    model_thread_pool_address_in_use: "model_thread_pool", addr_only, false;
    #[cfg(unix)]
    model_fork_address_in_use: "model_fork", addr_only, false;
    model_nonblocking_busy_address_in_use: "model_nonblocking_busy", addr_only, false;
    model_select_address_in_use: "model_select", addr_only, false;
    model_poll_address_in_use: "model_poll", addr_only, false;
    #[cfg(target_os = "linux")]
    model_epoll_edge_address_in_use: "model_epoll_edge", addr_only, false;
    model_udp_address_in_use: "model_udp", addr_only, true;
}

/// A bad value is refused and named: `PROG: --flag value: what it should be`.
#[test]
fn bad_values_are_named() {
    for (name, args, message) in [
        (
            "blast_server",
            &["--payload", "1G"][..],
            "--payload 1G: not a byte count",
        ),
        (
            "idle_echo_server",
            &["--idle-timeout", "-1"],
            "--idle-timeout -1: not a number of seconds",
        ),
        (
            "uppercase_server",
            &["--frame-timeout", "soon"],
            "--frame-timeout soon: not a number of seconds",
        ),
        (
            "model_thread_pool",
            &["--workers", "0"],
            "--workers 0: must be 1 to 1024",
        ),
        (
            "kv_server",
            &["--threads", "0"],
            "--threads 0: must be 1 to 1024",
        ),
        (
            "kv_server",
            &["--max-bulk", "lots"],
            "--max-bulk lots: not a byte count",
        ),
        (
            "http_server",
            &["--threads", "0"],
            "--threads 0: must be 1 to 1024",
        ),
        (
            "http_server",
            &["--header-timeout", "x"],
            "--header-timeout x: not a number of seconds",
        ),
        (
            "file_server",
            &["--root", ".", "--max-clients", "-3"],
            "--max-clients -3: not a whole number",
        ),
        (
            "model_udp",
            &["--client", "--count", "ten"],
            "--count ten: not a whole number",
        ),
        (
            "echo_client",
            &["--connections", "0"],
            "--connections 0: must be at least 1",
        ),
        (
            "echo_client",
            &["--size", "1"],
            "--size 1: must be at least 2",
        ),
        (
            "echo_client",
            &["--timeout", "0"],
            "--timeout: must be above 0 seconds",
        ),
        (
            "file_client",
            &["127.0.0.1:1", "list", "--timeout", "x"],
            "--timeout x: not a number of seconds",
        ),
        (
            "file_client",
            &["127.0.0.1:1", "fetch", "a"],
            "unknown command \"fetch\"",
        ),
        ("file_client", &["127.0.0.1:1", "get"], "get takes one NAME"),
        (
            "file_client",
            &["127.0.0.1:1", "list", "--out", "x"],
            "--out goes with get only",
        ),
        ("file_client", &[], "missing ADDR"),
        (
            "file_server",
            &["--listen", "127.0.0.1:0"],
            "--root DIR is required",
        ),
    ] {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = run_to_end(name, &args);
        assert_usage_error(name, &out, message);
    }
}

/// A root that does not exist is a run-time error: exit status 1, the flag and the system's text.
#[test]
fn a_missing_root_is_one_line_and_status_1() {
    let missing = std::env::temp_dir()
        .join("selectloop-no-such-dir")
        .join("nonexistent");
    let missing = missing
        .to_str()
        .expect("a UTF-8 temporary path")
        .to_string();
    for (name, args) in [
        (
            "file_server",
            vec!["--root", &missing, "--listen", "127.0.0.1:0"],
        ),
        ("http_server", vec!["--root", &missing, "127.0.0.1:0"]),
    ] {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = run_to_end(name, &args);
        let stderr = text(&out.stderr);
        let expected = format!("{name}: --root {missing}: ");
        assert!(
            out.status.code() == Some(1)
                && stderr.starts_with(&expected)
                && stderr.lines().count() == 1,
            "{name} --root {missing}: expected exit status 1 and one line starting with \
             {expected:?}; got {}, stderr:\n{stderr}",
            out.status
        );
        assert_no_debug_struct(name, &out);
    }
}

// --- SIGTERM (Unix): a server stops as on Ctrl-C ------------------------------------------------

/// One client, served once (so accepted), then SIGTERM: exit status 0, and "closed 1
/// connection(s)" on stderr.
#[cfg(unix)]
fn sigterm_with_a_client(name: &str, args: &[&str], served: fn(&TcpStream)) {
    let mut server = ExampleServer::start(name, args);
    let conn = connect(server.addr()).expect("connect");
    served(&conn);
    let status = server.terminate();
    let stderr = server.stderr();
    assert!(
        status.success() && stderr.contains("closed 1 connection(s)"),
        "{name} on SIGTERM with 1 client: {status}, expected success and \"closed 1 \
         connection(s)\"; stderr (end):\n{}",
        tail(&stderr, 10)
    );
    assert_no_debug_struct(
        name,
        &std::process::Output {
            status,
            stdout: Vec::new(),
            stderr: stderr.into_bytes(),
        },
    );
    drop(conn);
}

/// A line and its reply (an echo, or in capitals).
#[cfg(unix)]
fn line_served(mut conn: &TcpStream) {
    conn.write_all(b"hello\n").expect("send a line");
    let mut reply = [0u8; 6];
    conn.read_exact(&mut reply).expect("its reply");
    assert!(reply.eq_ignore_ascii_case(b"hello\n"), "reply {reply:?}");
}

/// chat_server's welcome line.
#[cfg(unix)]
fn welcomed(mut conn: &TcpStream) {
    let mut welcome = [0u8; 17];
    conn.read_exact(&mut welcome).expect("the welcome line");
    assert_eq!(&welcome, b"* welcome, guest1");
}

/// The first bytes of the payload.
#[cfg(unix)]
fn payload_served(mut conn: &TcpStream) {
    let mut start = [0u8; 4096];
    conn.read_exact(&mut start).expect("the payload starts");
}

#[cfg(unix)]
fn ping_served(mut conn: &TcpStream) {
    conn.write_all(&common::resp_request(&[b"PING"]))
        .expect("send PING");
    let mut reply = [0u8; 7];
    conn.read_exact(&mut reply).expect("its reply");
    assert_eq!(&reply, b"+PONG\r\n");
}

#[cfg(unix)]
fn hello_served(mut conn: &TcpStream) {
    conn.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send a request");
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    while !reply.ends_with(b"Hello, World!\n") {
        let n = conn.read(&mut buf).expect("the reply");
        assert!(n > 0, "end of file after {:?}", text(&reply));
        reply.extend_from_slice(&buf[..n]);
    }
}

/// A request the file server does not know: an `ERR` reply, and the connection stays open.
#[cfg(unix)]
fn refusal_served(mut conn: &TcpStream) {
    let request = b"HELLO";
    conn.write_all(&(request.len() as u32).to_be_bytes())
        .and_then(|()| conn.write_all(request))
        .expect("send a frame");
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).expect("the reply's length");
    let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
    conn.read_exact(&mut reply).expect("the reply");
    assert!(reply.starts_with(b"ERR "), "reply {:?}", text(&reply));
}

#[cfg(unix)]
#[test]
fn echo_server_sigterm() {
    sigterm_with_a_client("echo_server", &["127.0.0.1:0"], line_served);
}
#[cfg(unix)]
#[test]
fn idle_echo_server_sigterm() {
    sigterm_with_a_client("idle_echo_server", &["127.0.0.1:0"], line_served);
}
#[cfg(unix)]
#[test]
fn uppercase_server_sigterm() {
    sigterm_with_a_client("uppercase_server", &["127.0.0.1:0"], line_served);
}
#[cfg(unix)]
#[test]
fn chat_server_sigterm() {
    sigterm_with_a_client("chat_server", &["127.0.0.1:0"], welcomed);
}
#[cfg(unix)]
#[test]
fn blast_server_sigterm() {
    sigterm_with_a_client("blast_server", &["127.0.0.1:0"], payload_served);
}
#[cfg(unix)]
#[test]
fn kv_server_sigterm() {
    sigterm_with_a_client("kv_server", &["127.0.0.1:0"], ping_served);
}
#[cfg(unix)]
#[test]
fn http_server_sigterm() {
    sigterm_with_a_client("http_server", &["127.0.0.1:0"], hello_served);
}
#[cfg(unix)]
#[test]
fn file_server_sigterm() {
    let root = std::env::temp_dir().join(format!("selectloop-sigterm-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("create the root");
    let root_arg = root.to_str().expect("a UTF-8 temporary path");
    let args = ["--root", root_arg, "--listen", "127.0.0.1:0"];
    sigterm_with_a_client("file_server", &args, refusal_served);
    let _ = std::fs::remove_dir_all(&root);
}
#[cfg(unix)]
#[test]
fn model_nonblocking_busy_sigterm() {
    sigterm_with_a_client("model_nonblocking_busy", &["127.0.0.1:0"], line_served);
}
#[cfg(unix)]
#[test]
fn model_select_sigterm() {
    sigterm_with_a_client("model_select", &["127.0.0.1:0"], line_served);
}
#[cfg(unix)]
#[test]
fn model_poll_sigterm() {
    sigterm_with_a_client("model_poll", &["127.0.0.1:0"], line_served);
}
#[cfg(target_os = "linux")]
#[test]
fn model_epoll_edge_sigterm() {
    sigterm_with_a_client("model_epoll_edge", &["127.0.0.1:0"], line_served);
}

/// The first line on stderr says a server is ready, and stoppable: a signal sent as soon as it
/// is read stops the server cleanly (the multi-loop servers printed it before installing their
/// signal handlers, and their other loops already served meanwhile: SIGINT then killed them).
#[cfg(unix)]
#[test]
fn a_signal_right_after_the_first_line_stops_a_server_cleanly() {
    let root = std::env::temp_dir(); // served, never written: nothing is uploaded
    let root = root.to_str().expect("a UTF-8 temporary directory");
    let servers: [(&str, &[&str]); 4] = [
        ("kv_server", &["127.0.0.1:0", "--threads", "2"]),
        ("http_server", &["127.0.0.1:0", "--threads", "2"]),
        ("echo_server", &["127.0.0.1:0"]),
        ("file_server", &["--listen", "127.0.0.1:0", "--root", root]),
    ];
    for _ in 0..5 {
        for (name, args) in servers {
            let mut server = ExampleServer::start(name, args);
            let status = server.interrupt();
            let stderr = server.stderr();
            assert!(
                status.success() && stderr.contains("closed 0 connection(s)"),
                "{name} on SIGINT right after its first line: {status}; stderr:\n{stderr}"
            );
        }
    }
}

/// UDP has no connections: the server reports the datagrams it echoed.
#[cfg(unix)]
#[test]
fn model_udp_sigterm() {
    let mut server = ExampleServer::start("model_udp", &["127.0.0.1:0"]);
    let addr = server.addr().to_string();
    let out = common::run_example("model_udp", &["--client", &addr, "--count", "5"]);
    assert!(out.status.success(), "model_udp --client: {}", out.status);
    let status = server.terminate();
    let stderr = server.stderr();
    assert!(
        status.success() && stderr.contains("interrupted: echoed 5 datagram(s)"),
        "model_udp on SIGTERM: {status}; stderr:\n{stderr}"
    );
}

/// The blocking rungs end by SIGTERM's default action, without a report, as their docs and the
/// README say: a thread blocked in `accept` or `read` has no way to be told to stop. The forking
/// server's child goes on serving its client until the client leaves.
#[cfg(unix)]
#[test]
fn the_blocking_rungs_end_on_sigterm_without_a_report() {
    use std::os::unix::process::ExitStatusExt;
    for name in [
        "model_blocking",
        "model_thread_per_conn",
        "model_thread_pool",
        "model_fork",
    ] {
        let mut server = ExampleServer::start(name, &["127.0.0.1:0"]);
        let conn = connect(server.addr()).expect("connect");
        line_served(&conn);
        server.kill("-TERM");
        if name == "model_fork" {
            line_served(&conn); // by the child, whether or not the parent is gone yet
        }
        drop(conn); // model_fork's child, which shares the parent's stderr, exits
        let status = server.wait_for_exit("its exit after SIGTERM");
        let stderr = server.stderr();
        assert!(
            status.signal() == Some(15) && !stderr.contains("connection(s)"),
            "{name} on SIGTERM: {status}, expected the signal's default action (no report); \
             stderr:\n{stderr}"
        );
    }
}

// --- idle_echo_server: an echo is the bytes received -------------------------------------------

/// 16 MiB of lines, the last one without its newline, then a half-close: exactly the same
/// bytes come back, no `\n` added at the end.
#[test]
fn idle_echo_server_echoes_an_unterminated_last_line_exactly() {
    let server = IDLE_ECHO.start();
    let mut payload = lines(16 << 20);
    *payload.last_mut().expect("not empty") = b'.'; // the last line, unterminated
    let conn = connect(server.addr()).expect("connect");
    let mut sender = conn.try_clone().expect("clone the client socket");
    let sent = payload.clone();
    let writer = thread::spawn(move || -> io::Result<()> {
        sender.write_all(&sent)?;
        sender.shutdown(Shutdown::Write)
    });
    let mut echo = Vec::with_capacity(payload.len() + 1);
    (&conn)
        .read_to_end(&mut echo)
        .unwrap_or_else(|e| panic!("after {} bytes of echo: {e}", echo.len()));
    writer
        .join()
        .expect("the writer thread")
        .expect("send it all");
    assert_eq!(
        echo.len(),
        payload.len(),
        "{} bytes sent, {} echoed; the echo ends with {:?}",
        payload.len(),
        echo.len(),
        text(&echo[echo.len().saturating_sub(20)..])
    );
    assert!(echo == payload, "the echo differs from what was sent");
}
