//! The I/O-model ladder (`examples/model_*.rs`), run as processes: every server answers the
//! common client (`echo_client`, itself on selectloop) byte for byte, and each rung shows what
//! it is known for — the iterative server makes the second client wait, the pool of 3 the
//! fourth, the forking server leaves no zombie, the edge-triggered server stalls when it reads
//! once per edge. The faults every example server must survive (slow reader, descriptor limit,
//! reset, garbage, Ctrl-C) are in `tests/examples.rs`, which lists these servers too.
//!
//! Each example is built on first use (`common::example_binary`), so this file runs alone too:
//! `cargo test --test ladder`.

mod common;

use common::{connect, echo_round_trip, run_example, ExampleServer, TIMEOUT};
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::Duration;

/// How long a client is watched to show that it is *not* answered (a negative observation: a
/// correct server passes however slow the machine; only a wrong one could pass by luck).
const NO_REPLY_WITHIN: Duration = Duration::from_millis(300);

/// `echo_client ADDR --count N --connections C [--size B]` against `server`: it must exit 0,
/// saying every line came back intact.
#[track_caller]
fn common_client(server: &ExampleServer, count: u64, connections: usize, size: Option<usize>) {
    let addr = server.addr().to_string();
    let (count_s, connections_s) = (count.to_string(), connections.to_string());
    let mut args = vec![
        addr.as_str(),
        "--count",
        &count_s,
        "--connections",
        &connections_s,
    ];
    let size_s = size.map(|s| s.to_string());
    if let Some(size) = &size_s {
        args.extend(["--size", size]);
    }
    args.extend(["--timeout", "10"]);
    let out = run_example("echo_client", &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!("{} lines echoed intact", count * connections as u64);
    assert!(
        out.status.success() && stdout.contains(&expected),
        "{}: echo_client {args:?}: {}; stdout:\n{stdout}\nstderr:\n{}\nserver's stderr:\n{}",
        server.name,
        out.status,
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
}

/// The common client against example `name`: 10 connections at once with 64-byte digit lines,
/// then one connection with "line i of n" lines.
fn serves_the_common_client(name: &str, args: &[&str]) {
    let server = ExampleServer::start(name, args);
    common_client(&server, 50, 10, Some(64));
    common_client(&server, 20, 1, None);
}

/// Ten clients connected at once, served in the reverse of the order they connected: a server
/// that serves one connection at a time never answers the last one while the first is open.
fn serves_clients_at_once(name: &str) {
    let server = ExampleServer::start(name, &["127.0.0.1:0"]);
    let clients: Vec<TcpStream> = (0..10)
        .map(|i| connect(server.addr()).unwrap_or_else(|e| panic!("{name}: client {i}: {e}")))
        .collect();
    for round in 0..2 {
        for (i, conn) in clients.iter().enumerate().rev() {
            let line = format!("client {i}, round {round}\n");
            match echo_round_trip(conn, line.as_bytes()) {
                Ok(echo) => assert_eq!(echo, line.as_bytes(), "{name}: client {i}"),
                Err(e) => panic!(
                    "{name}: client {i} of 10, all connected: {e}; stderr:\n{}",
                    server.stderr()
                ),
            }
        }
    }
}

/// Sends `line` on `conn` and checks that no reply comes within [`NO_REPLY_WITHIN`].
#[track_caller]
fn expect_no_reply(mut conn: &TcpStream, line: &[u8], who: &str) {
    use std::io::Write;
    conn.write_all(line).expect("send");
    conn.set_read_timeout(Some(NO_REPLY_WITHIN)).unwrap();
    let mut buf = [0u8; 64];
    match conn.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("{who} should wait, but its read returned {other:?}"),
    }
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
}

/// Reads the reply to `line` (sent already) within [`TIMEOUT`].
#[track_caller]
fn expect_reply(mut conn: &TcpStream, line: &[u8], who: &str) {
    let mut echo = vec![0u8; line.len()];
    conn.read_exact(&mut echo)
        .unwrap_or_else(|e| panic!("{who}: no reply within {TIMEOUT:?}: {e}"));
    assert_eq!(echo, line, "{who}");
}

// --- Every rung answers the common client -----------------------------------------------------

#[test]
fn model_blocking_serves_the_common_client() {
    serves_the_common_client("model_blocking", &["127.0.0.1:0"]);
}
#[test]
fn model_thread_per_conn_serves_the_common_client() {
    serves_the_common_client("model_thread_per_conn", &["127.0.0.1:0"]);
}
#[test]
fn model_thread_pool_serves_the_common_client() {
    serves_the_common_client("model_thread_pool", &["127.0.0.1:0"]);
}
#[cfg(unix)]
#[test]
fn model_fork_serves_the_common_client() {
    serves_the_common_client("model_fork", &["127.0.0.1:0"]);
}
#[test]
fn model_nonblocking_busy_serves_the_common_client() {
    serves_the_common_client("model_nonblocking_busy", &["127.0.0.1:0"]);
}
#[test]
fn model_select_serves_the_common_client() {
    serves_the_common_client("model_select", &["127.0.0.1:0"]);
}
#[test]
fn model_poll_serves_the_common_client() {
    serves_the_common_client("model_poll", &["127.0.0.1:0"]);
}
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn model_epoll_edge_serves_the_common_client() {
    serves_the_common_client("model_epoll_edge", &["127.0.0.1:0"]);
}
#[test]
fn echo_server_serves_the_common_client() {
    serves_the_common_client("echo_server", &["127.0.0.1:0"]);
}

// --- The concurrent rungs serve clients at once ------------------------------------------------

#[test]
fn model_thread_per_conn_serves_clients_at_once() {
    serves_clients_at_once("model_thread_per_conn");
}
#[cfg(unix)]
#[test]
fn model_fork_serves_clients_at_once() {
    serves_clients_at_once("model_fork");
}
#[test]
fn model_nonblocking_busy_serves_clients_at_once() {
    serves_clients_at_once("model_nonblocking_busy");
}
#[test]
fn model_select_serves_clients_at_once() {
    serves_clients_at_once("model_select");
}
#[test]
fn model_poll_serves_clients_at_once() {
    serves_clients_at_once("model_poll");
}
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn model_epoll_edge_serves_clients_at_once() {
    serves_clients_at_once("model_epoll_edge");
}

// --- ...and the others make clients wait ---------------------------------------------------------

/// The iterative server: a second client connects, but gets no answer until the first leaves.
#[test]
fn model_blocking_second_client_waits() {
    let server = ExampleServer::start("model_blocking", &["127.0.0.1:0"]);
    let first = connect(server.addr()).expect("connect the first client");
    let echo = echo_round_trip(&first, b"first\n").expect("the first client is served");
    assert_eq!(echo, b"first\n");
    let second = connect(server.addr()).expect("the second client connects (listen backlog)");
    expect_no_reply(
        &second,
        b"second\n",
        "the second client, while the first is connected",
    );
    drop(first);
    expect_reply(
        &second,
        b"second\n",
        "the second client, once the first has left",
    );
}

/// The pool of 3: three clients are served at once, a 4th waits until one of them leaves.
#[test]
fn model_thread_pool_fourth_client_waits() {
    let server = ExampleServer::start("model_thread_pool", &["127.0.0.1:0", "--workers", "3"]);
    let mut first_three: Vec<TcpStream> = (0..3)
        .map(|i| {
            let conn = connect(server.addr()).expect("connect");
            let line = format!("client {i}\n");
            let echo = echo_round_trip(&conn, line.as_bytes())
                .unwrap_or_else(|e| panic!("client {i} of the first three is served: {e}"));
            assert_eq!(echo, line.as_bytes());
            conn
        })
        .collect();
    let fourth = connect(server.addr()).expect("the 4th client connects (it is accepted)");
    expect_no_reply(&fourth, b"fourth\n", "the 4th client, with 3 workers busy");
    // The other two are still served meanwhile.
    for (i, conn) in first_three.iter().enumerate().skip(1) {
        let echo = echo_round_trip(conn, b"again\n").expect("served while the 4th waits");
        assert_eq!(echo, b"again\n", "client {i}");
    }
    drop(first_three.remove(0));
    expect_reply(
        &fourth,
        b"fourth\n",
        "the 4th client, once one of the first three left",
    );
}

// --- The forking server reaps its children -------------------------------------------------------

/// The children of process `pid`, with their state letter (Z: zombie), from `/proc/*/stat`.
#[cfg(target_os = "linux")]
fn children_of(pid: u32) -> Vec<(u32, char)> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // not a process, or gone meanwhile
        };
        // "PID (COMM) STATE PPID ...": COMM may contain spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next());
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        let child = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok());
        if let (Some(state), Some(ppid), Some(child)) = (state, ppid, child) {
            if ppid == pid {
                children.push((child, state));
            }
        }
    }
    children
}

/// A child per client while they are connected; once they have left, none — zombies included.
/// A server that never calls `waitpid` keeps one zombie per client served.
#[cfg(target_os = "linux")]
#[test]
fn model_fork_leaves_no_zombie() {
    let server = ExampleServer::start("model_fork", &["127.0.0.1:0"]);
    let pid = server.pid();
    let clients: Vec<TcpStream> = (0..5)
        .map(|i| {
            let conn = connect(server.addr()).expect("connect");
            let echo = echo_round_trip(&conn, b"hello\n").expect("a round trip");
            assert_eq!(echo, b"hello\n", "client {i}");
            conn
        })
        .collect();
    let children = children_of(pid);
    assert_eq!(
        children.len(),
        5,
        "a process per connected client: {children:?}"
    );
    drop(clients);
    // Polled: nothing tells this test when the kernel has delivered SIGCHLD.
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let children = children_of(pid);
        if children.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{TIMEOUT:?} after its clients left, model_fork still has children (Z: zombie, \
             never reaped): {children:?}; stderr:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let echo = connect(server.addr()).and_then(|c| echo_round_trip(&c, b"again\n"));
    assert_eq!(echo.expect("served after reaping"), b"again\n");
}

// --- Edge-triggered: read until WouldBlock, or stall -----------------------------------------

/// Sends 64 KiB in one write (16 of the server's 4 KiB reads, arriving as one or two edges)
/// and reads the echo for at most `wait`; returns how many bytes came back.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn burst_echo(server: &ExampleServer, wait: Duration) -> (usize, usize) {
    use std::io::Write;
    const BURST: usize = 64 << 10;
    let mut conn = connect(server.addr()).expect("connect");
    let payload: Vec<u8> = (0..BURST).map(|i| b'a' + (i % 26) as u8).collect();
    conn.write_all(&payload).expect("send the burst");
    let deadline = std::time::Instant::now() + wait;
    let mut echo = Vec::with_capacity(BURST);
    let mut buf = vec![0u8; BURST];
    while echo.len() < BURST {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        conn.set_read_timeout(Some(left)).unwrap();
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => echo.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("reading the echo: {e}"),
        }
    }
    assert_eq!(
        echo,
        payload[..echo.len()],
        "what came back is the start of the burst"
    );
    (echo.len(), BURST)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn model_epoll_edge_reads_until_wouldblock() {
    let server = ExampleServer::start("model_epoll_edge", &["127.0.0.1:0"]);
    let (echoed, sent) = burst_echo(&server, TIMEOUT);
    assert_eq!(echoed, sent, "the whole burst echoed within {TIMEOUT:?}");
}

/// The classic bug, shown: with one read per edge, the echo of a burst stops short, and the
/// client would wait forever (here: 1 s, then the test looks at what came).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn model_epoll_edge_read_once_stalls() {
    let server = ExampleServer::start("model_epoll_edge", &["127.0.0.1:0", "--read-once"]);
    let (echoed, sent) = burst_echo(&server, Duration::from_secs(1));
    assert!(
        echoed < sent,
        "with --read-once the echo should stall, but all {sent} bytes came back"
    );
    eprintln!("--read-once: {echoed} of {sent} bytes echoed, then nothing (the bug)");
}

// --- UDP -----------------------------------------------------------------------------------------

#[test]
fn model_udp_client_and_server() {
    let server = ExampleServer::start("model_udp", &["127.0.0.1:0"]);
    let addr = server.addr().to_string();
    let out = run_example("model_udp", &["--client", &addr, "--count", "200"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("200 datagrams echoed intact"),
        "model_udp --client: {}; stdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two senders at once, interleaved: each gets its own datagrams back, unchanged.
#[test]
fn model_udp_echoes_to_each_sender() {
    use std::net::UdpSocket;
    let server = ExampleServer::start("model_udp", &["127.0.0.1:0"]);
    let senders: Vec<UdpSocket> = (0..2)
        .map(|_| {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
            sock.connect(server.addr()).expect("connect");
            sock.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            sock
        })
        .collect();
    for i in 0..20 {
        for (s, sock) in senders.iter().enumerate() {
            let datagram = format!("sender {s}, datagram {i}");
            let mut buf = [0u8; 100];
            // UDP may drop a datagram: a few tries each (loopback rarely needs a second).
            let echo = (0..5).find_map(|_| {
                sock.send(datagram.as_bytes()).expect("send");
                sock.recv(&mut buf).ok()
            });
            let n = echo.unwrap_or_else(|| panic!("no echo of {datagram:?} in 5 tries"));
            assert_eq!(&buf[..n], datagram.as_bytes());
        }
    }
}

/// The client fails, and says so, when nothing answers.
#[test]
fn model_udp_client_fails_without_a_server() {
    let addr = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .to_string(); // released: nothing listens there now
    let out = run_example("model_udp", &["--client", &addr, "--count", "3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains(&addr),
        "model_udp --client with no server: {}; stderr:\n{stderr}",
        out.status
    );
}

#[cfg(unix)]
#[test]
fn model_udp_ctrl_c() {
    let mut server = ExampleServer::start("model_udp", &["127.0.0.1:0"]);
    let addr = server.addr().to_string();
    let out = run_example("model_udp", &["--client", &addr, "--count", "5"]);
    assert!(out.status.success(), "model_udp --client: {}", out.status);
    let status = server.interrupt();
    let stderr = server.stderr();
    assert!(
        status.success() && stderr.contains("interrupted: echoed 5 datagram(s)"),
        "model_udp on SIGINT: {status}; stderr:\n{stderr}"
    );
}

// --- The common client checks every byte ---------------------------------------------------------

/// Against the upper-casing server, "line i of n" lines come back changed: the client must
/// fail and show the difference (its `--size` lines are digits only, and pass).
#[test]
fn echo_client_detects_a_changed_echo() {
    let server = ExampleServer::start("uppercase_server", &["127.0.0.1:0"]);
    common_client(&server, 20, 3, Some(16));
    let addr = server.addr().to_string();
    let out = run_example("echo_client", &[&addr, "--count", "5", "--timeout", "10"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("got back \"LINE 0 OF 5\\n\""),
        "echo_client against an upper-casing server: {}; stderr:\n{stderr}",
        out.status
    );
}
