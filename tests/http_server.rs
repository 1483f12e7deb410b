//! `examples/http_server` end to end: the server runs as a process, each test with a temporary
//! root of its own, and raw `TcpStream`s talk HTTP to it over loopback (replies parsed
//! minimally here). Keep-alive, pipelining, HTTP/1.0, static files and every way out of the
//! root, the refusals (400, 405, 413, 431, 501), the header and idle timeouts, several loops,
//! clients that misbehave (garbage, half-close, reset, never reading), and the descriptor
//! limit.
//!
//! Each example is built on first use (`common::example_binary`), so this file runs alone too:
//! `cargo test --test http_server`.

mod common;

use common::{connect, ExampleServer, TIMEOUT};
use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const HELLO: &[u8] = b"Hello, World!\n";
/// Larger than loopback's socket buffers on both sides, so the server must stream it.
const BIG: usize = 8 << 20;
const SMALL_TEXT: &[u8] = b"a small static file\n";
const SECRET: &[u8] = b"outside the root: never served\n";

// --- Fixtures --------------------------------------------------------------------------------

/// A temporary directory, removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("selectloop-http-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir); // a leftover of an earlier run with the same pid
        fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Pseudo-random bytes (xorshift), the same for the same length.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A server on a temporary root holding `small.txt`, `big.bin` ([`BIG`] bytes) and a
/// directory `sub` with a file in it; `secret.txt` lies beside the root, outside it. Dropped in
/// field order: the server is killed before its directory goes.
struct Fixture {
    server: ExampleServer,
    _dir: TempDir,
}

impl Fixture {
    fn start(args: &[&str]) -> Fixture {
        let dir = TempDir::new();
        let root = dir.0.join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("small.txt"), SMALL_TEXT).unwrap();
        fs::write(root.join("big.bin"), pattern(BIG)).unwrap();
        fs::write(root.join("sub").join("inner.txt"), SMALL_TEXT).unwrap();
        fs::write(dir.0.join("secret.txt"), SECRET).unwrap();
        let root_arg = root.to_str().expect("a UTF-8 temporary path");
        let mut all = vec!["127.0.0.1:0", "--root", root_arg];
        all.extend_from_slice(args);
        let server = ExampleServer::start("http_server", &all);
        Fixture { server, _dir: dir }
    }

    fn client(&self) -> Client {
        Client::new(&self.server)
    }
}

// --- A minimal HTTP client -------------------------------------------------------------------

/// A reply: status, headers in order, body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        found.next().map(|(_, value)| value.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection") == Some("close")
    }
}

/// A connection to the server, its reads and writes bounded by [`TIMEOUT`].
struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn new(server: &ExampleServer) -> Client {
        let stream = connect(server.addr()).expect("connect to the server");
        let reader = BufReader::new(stream.try_clone().expect("clone the client socket"));
        Client { stream, reader }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to the server");
    }

    /// Reads one reply; `head_only` for the reply to a `HEAD`.
    #[track_caller]
    fn reply(&mut self, head_only: bool) -> Reply {
        read_reply(&mut self.reader, head_only).expect("a reply")
    }

    /// Sends a GET of `path` and reads the reply.
    #[track_caller]
    fn get(&mut self, path: &str) -> Reply {
        self.send(get(path).as_bytes());
        self.reply(false)
    }

    /// Reads until the server closes the connection (end of file or a reset); returns what
    /// came before. Fails after [`TIMEOUT`] without the close.
    #[track_caller]
    fn expect_close(&mut self, what: &str) -> Vec<u8> {
        let mut rest = Vec::new();
        let mut buf = [0u8; 16 << 10];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return rest,
                Ok(n) => rest.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return rest,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("{what}: the server did not close the connection ({e})"),
            }
        }
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// Reads a reply: the status line, the headers, then `Content-Length` bytes of body (none for
/// a `HEAD`).
fn read_reply(reader: &mut impl BufRead, head_only: bool) -> io::Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        let msg = "the connection closed where a reply was expected";
        return Err(io::Error::new(ErrorKind::UnexpectedEof, msg));
    }
    let bad = |what: &str, line: &str| {
        io::Error::new(ErrorKind::InvalidData, format!("{what}: {line:?}"))
    };
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad("not a status line", &line))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let text = line
            .strip_suffix("\r\n")
            .ok_or_else(|| bad("a header line without CRLF", &line))?;
        if text.is_empty() {
            break;
        }
        let (name, value) = text
            .split_once(": ")
            .ok_or_else(|| bad("not a header", text))?;
        headers.push((name.to_string(), value.to_string()));
    }
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = reply
        .header("content-length")
        .and_then(|len| len.parse().ok())
        .ok_or_else(|| bad("no Content-Length", &format!("{:?}", reply.headers)))?;
    if !head_only {
        reply.body = vec![0; len];
        reader.read_exact(&mut reply.body)?;
    }
    Ok(reply)
}

/// True if `date` looks like an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
fn is_imf_fixdate(date: &str) -> bool {
    let b = date.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    b.len() == 29
        && ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&&date[..3])
        && &date[3..5] == ", "
        && digits(5..7)
        && digits(12..16)
        && digits(17..19)
        && digits(20..22)
        && digits(23..25)
        && date.ends_with(" GMT")
}

// --- GET /, HEAD, keep-alive, pipelining, closing ----------------------------------------------

#[test]
fn get_root_has_the_fixed_body_and_nginx_like_headers() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    let reply = client.get("/");
    assert_eq!(reply.status, 200);
    let names: Vec<&str> = reply.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Server",
            "Date",
            "Content-Type",
            "Content-Length",
            "Connection"
        ],
        "{reply:?}"
    );
    assert_eq!(reply.header("server"), Some("selectloop"));
    let date = reply.header("date").unwrap();
    assert!(is_imf_fixdate(date), "Date: {date:?}");
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    assert_eq!(reply.header("content-length"), Some("14"));
    assert_eq!(reply.header("connection"), Some("keep-alive"));
    assert_eq!(reply.body, HELLO);
}

#[test]
fn head_gets_the_headers_only() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    client.send(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
    let head = client.reply(true);
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("14"))
    );
    // No body came: the next bytes are the next reply's.
    let next = client.get("/");
    assert_eq!((next.status, next.body.as_slice()), (200, HELLO));
    client.send(b"HEAD /static/big.bin HTTP/1.1\r\nHost: test\r\n\r\n");
    let head = client.reply(true);
    assert_eq!(
        head.header("content-length"),
        Some(BIG.to_string().as_str())
    );
    assert_eq!(client.get("/").body, HELLO);
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    for i in 0..1000 {
        let reply = client.get("/");
        assert_eq!(
            (reply.status, reply.body.as_slice()),
            (200, HELLO),
            "request {i}"
        );
        assert!(!reply.closes(), "request {i}: {reply:?}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    let mut batch = String::new();
    let mut expected = Vec::new();
    for i in 0..100 {
        let (request, status, head_only) = match i % 4 {
            0 | 2 => (get("/"), 200, false),
            1 => (get(&format!("/missing-{i}")), 404, false),
            _ => (
                "HEAD / HTTP/1.1\r\nHost: test\r\n\r\n".to_string(),
                200,
                true,
            ),
        };
        batch.push_str(&request);
        expected.push((status, head_only));
    }
    client.send(batch.as_bytes()); // one write: the server reads them together
    for (i, (status, head_only)) in expected.into_iter().enumerate() {
        let reply = client.reply(head_only);
        assert_eq!(reply.status, status, "reply {i}");
        if status == 200 && !head_only {
            assert_eq!(reply.body, HELLO, "reply {i}");
        }
    }
    assert_eq!(client.get("/").body, HELLO, "the connection still serves");
}

#[test]
fn a_file_in_the_middle_of_a_pipeline_keeps_the_order() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    let batch = [
        get("/"),
        get("/static/big.bin"),
        get("/static/small.txt"),
        get("/nope"),
        get("/"),
    ];
    client.send(batch.concat().as_bytes());
    assert_eq!(client.reply(false).body, HELLO);
    let big = client.reply(false);
    assert_eq!(big.status, 200);
    assert!(big.body == pattern(BIG), "big.bin arrived altered");
    assert_eq!(client.reply(false).body, SMALL_TEXT);
    assert_eq!(client.reply(false).status, 404);
    assert_eq!(client.reply(false).body, HELLO);
}

#[test]
fn connection_close_is_honoured() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    assert_eq!(client.get("/").status, 200);
    // A request pipelined behind the one that closes gets no answer.
    client.send(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: test\r\n\r\n");
    let reply = client.reply(false);
    assert_eq!((reply.status, reply.body.as_slice()), (200, HELLO));
    assert!(reply.closes(), "{reply:?}");
    let rest = client.expect_close("after Connection: close");
    assert!(
        rest.is_empty(),
        "bytes after the last reply: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    client.send(b"GET / HTTP/1.0\r\n\r\n");
    let reply = client.reply(false);
    assert_eq!((reply.status, reply.body.as_slice()), (200, HELLO));
    assert!(reply.closes(), "{reply:?}");
    client.expect_close("HTTP/1.0 without keep-alive");

    let mut client = fx.client();
    for i in 0..3 {
        client.send(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        let reply = client.reply(false);
        assert_eq!(
            reply.header("connection"),
            Some("keep-alive"),
            "request {i}"
        );
        assert_eq!(reply.body, HELLO);
    }
}

// --- Static files ------------------------------------------------------------------------------

#[test]
fn static_files_are_served_with_length_and_type() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    let reply = client.get("/static/small.txt");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, SMALL_TEXT);
    assert_eq!(
        reply.header("content-length"),
        Some(SMALL_TEXT.len().to_string().as_str())
    );
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let reply = client.get("/static/small%2etxt?query=ignored");
    assert_eq!(
        reply.body, SMALL_TEXT,
        "a percent-encoded name, and a query"
    );
    let reply = client.get("/static/big.bin");
    assert_eq!(
        reply.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(reply.body == pattern(BIG), "big.bin arrived altered");
}

#[test]
fn a_large_file_reaches_a_slow_reader_whole() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    client.send(get("/static/big.bin").as_bytes());
    client.send(get("/").as_bytes()); // behind it, waiting
    let head = client.reply(true);
    assert_eq!(
        head.header("content-length"),
        Some(BIG.to_string().as_str())
    );
    // The reader is slow (the sleeps simulate it; nothing waits on them): the server fills the
    // socket buffers, stops, and goes on as the client reads.
    let mut body = vec![0u8; BIG];
    let mut got = 0;
    let mut reads = 0;
    while got < BIG {
        let end = (got + (64 << 10)).min(BIG);
        let n = client
            .reader
            .read(&mut body[got..end])
            .expect("read the file");
        assert!(n > 0, "the connection closed after {got} bytes of {BIG}");
        got += n;
        reads += 1;
        if reads % 16 == 0 {
            thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(body == pattern(BIG), "big.bin arrived altered");
    assert_eq!(
        client.reply(false).body,
        HELLO,
        "the request behind the file"
    );
}

#[test]
fn missing_files_and_directories_are_404() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    for path in [
        "/static/missing.txt",
        "/static/sub",
        "/nothing/here",
        "/static",
    ] {
        let reply = client.get(path);
        assert_eq!(reply.status, 404, "{path}");
        assert!(!reply.closes(), "{path}: a 404 keeps the connection");
    }
}

#[test]
fn nothing_outside_the_root_is_served_however_encoded() {
    let fx = Fixture::start(&[]);
    let attempts = [
        "/static/../secret.txt",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/..%5csecret.txt",
        "/static/%2e%2e%5csecret.txt",
        "/static/%252e%252e%252fsecret.txt",
        "/static/sub/inner.txt",
        "/static/sub%2finner.txt",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/C:%5cWindows%5cwin.ini",
        "/static/%00small.txt",
        "/static/small.txt%00",
        "/static/%2e",
        "/static/%2e%2e",
        "/static/.",
        "/static/%",
        "/static/%zz",
        "/static/%ff%fe",
        "/static/NUL",
        "/../secret.txt",
    ];
    for path in attempts {
        let mut client = fx.client();
        let reply = client.get(path);
        assert!(
            [400, 403, 404].contains(&reply.status),
            "{path}: status {}",
            reply.status
        );
        assert!(
            !reply.body.windows(SECRET.len()).any(|w| w == SECRET),
            "{path} served the secret"
        );
    }
}

// --- Refusals ----------------------------------------------------------------------------------

/// Sends `request` on a new connection; expects `status` and the connection closed after it.
#[track_caller]
fn refused_and_closed(fx: &Fixture, request: &[u8], status: u16) {
    let mut client = fx.client();
    client.send(request);
    let reply = client.reply(false);
    let shown = String::from_utf8_lossy(&request[..request.len().min(80)]).into_owned();
    assert_eq!(reply.status, status, "{shown:?}");
    assert!(reply.closes(), "{shown:?}: {reply:?}");
    client.expect_close(&shown);
}

#[test]
fn malformed_requests_get_400_and_are_closed() {
    let fx = Fixture::start(&[]);
    refused_and_closed(&fx, b"GARBAGE\r\n\r\n", 400);
    refused_and_closed(&fx, b"GET / HTTP/1.1\r\n\r\n", 400); // no Host
    refused_and_closed(&fx, b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400);
    refused_and_closed(&fx, b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    refused_and_closed(&fx, b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n", 400);
    refused_and_closed(
        &fx,
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
        400,
    );
    refused_and_closed(
        &fx,
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400,
    );
    // After a good request on the same connection too.
    let mut client = fx.client();
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\x00\x01\x02 nonsense\r\n\r\n");
    assert_eq!(client.reply(false).body, HELLO);
    assert_eq!(client.reply(false).status, 400);
    client.expect_close("after a malformed request");
}

#[test]
fn oversized_heads_get_431_and_are_closed() {
    let fx = Fixture::start(&["--max-header", "1024"]);
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'x', 2000));
    refused_and_closed(&fx, &big, 431); // no end in sight: refused at 1024 bytes
    big.extend_from_slice(b"\r\n\r\n");
    refused_and_closed(&fx, &big, 431); // complete, but too long
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    refused_and_closed(&fx, &many, 431); // too many fields (under 1024 bytes)
                                         // Just under the limit is fine.
    let mut fits = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    fits.extend(std::iter::repeat_n(b'x', 1024 - fits.len() - 4));
    fits.extend_from_slice(b"\r\n\r\n");
    assert_eq!(fits.len(), 1024);
    let mut client = fx.client();
    client.send(&fits);
    assert_eq!(client.reply(false).body, HELLO);
}

#[test]
fn the_default_head_limit_is_8_kib() {
    let fx = Fixture::start(&[]);
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'x', 9000));
    big.extend_from_slice(b"\r\n\r\n");
    refused_and_closed(&fx, &big, 431);
    let mut client = fx.client();
    let mut fits = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    fits.extend(std::iter::repeat_n(b'x', 7000));
    fits.extend_from_slice(b"\r\n\r\n");
    client.send(&fits);
    assert_eq!(client.reply(false).body, HELLO);
}

#[test]
fn other_methods_get_405_and_bodies_are_refused() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    client.send(b"DELETE / HTTP/1.1\r\nHost: a\r\n\r\n");
    let reply = client.reply(false);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    assert!(!reply.closes(), "no body announced: the connection stays");
    assert_eq!(client.get("/").body, HELLO);
    // With a body, which is not read: the connection must close.
    refused_and_closed(
        &fx,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        405,
    );
    refused_and_closed(
        &fx,
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        413,
    );
    refused_and_closed(
        &fx,
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        501,
    );
    // `Content-Length: 0` is no body.
    let mut client = fx.client();
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(client.reply(false).body, HELLO);
}

// --- Timeouts ----------------------------------------------------------------------------------

#[test]
fn a_slow_head_gets_408_after_the_header_timeout() {
    let fx = Fixture::start(&["--header-timeout", "0.3", "--idle-timeout", "30"]);
    let mut slow = fx.client();
    let start = Instant::now(); // before its first byte
    slow.send(b"GET / HTTP/1.1\r\nHost: a\r\n");
    // Trickles two more header bytes, 100 ms apart (the sleeps simulate the slow client),
    // then stops: bytes still arriving as the server closes would make it close with a reset,
    // which may destroy the 408 on its way.
    let mut sender = slow.stream.try_clone().unwrap();
    let trickler = thread::spawn(move || {
        for _ in 0..2 {
            thread::sleep(Duration::from_millis(100));
            sender.write_all(b"x").expect("trickle a byte");
        }
    });
    // Another client is served meanwhile.
    let mut other = fx.client();
    assert_eq!(other.get("/").body, HELLO);
    let reply = slow.reply(false);
    let took = start.elapsed();
    assert_eq!(reply.status, 408, "{reply:?}");
    assert!(reply.closes(), "{reply:?}");
    slow.expect_close("after the 408");
    assert!(took >= Duration::from_millis(300), "408 after {took:?}");
    drop(slow);
    trickler.join().expect("the trickling thread");
    assert_eq!(other.get("/").body, HELLO);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_silently() {
    let fx = Fixture::start(&["--idle-timeout", "0.3"]);
    let mut client = fx.client();
    assert_eq!(client.get("/").body, HELLO);
    let start = Instant::now(); // after the last byte moved
    let rest = client.expect_close("an idle connection");
    let took = start.elapsed();
    assert!(
        rest.is_empty(),
        "bytes at the idle close: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    assert!(took < TIMEOUT, "closed after {took:?}");
}

// --- Several loops -----------------------------------------------------------------------------

fn many_clients(args: &[&str]) {
    let fx = Fixture::start(args);
    let first = fx.server.stderr();
    assert!(first.contains("2 thread(s)"), "{first}");
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let addr = fx.server.addr();
            thread::spawn(move || {
                for c in 0..8 {
                    let stream = connect(addr).expect("connect");
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    for r in 0..25 {
                        (&stream).write_all(get("/").as_bytes()).unwrap();
                        let reply = read_reply(&mut reader, false)
                            .unwrap_or_else(|e| panic!("thread {t}, client {c}, request {r}: {e}"));
                        assert_eq!(reply.body, HELLO);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a client thread");
    }
}

#[test]
fn two_threads_serve_many_clients() {
    many_clients(&["--threads", "2"]);
}

#[test]
fn two_threads_without_reuseport_serve_many_clients() {
    many_clients(&["--threads", "2", "--no-reuseport"]);
}

// --- Clients that misbehave ----------------------------------------------------------------------

#[test]
fn garbage_is_answered_or_closed_and_the_server_goes_on() {
    let fx = Fixture::start(&[]);
    let client = fx.client();
    let mut sender = client.stream.try_clone().unwrap();
    let writer = thread::spawn(move || {
        sender.write_all(&pattern(256 << 10))?;
        sender.shutdown(Shutdown::Write)
    });
    let mut client = client;
    let rest = client.expect_close("garbage");
    if !rest.is_empty() {
        let reply = read_reply(&mut &rest[..], false).expect("a reply to garbage");
        assert!([400, 431].contains(&reply.status), "{reply:?}");
    }
    match writer.join().expect("the writer thread") {
        Ok(()) => {}
        // The server refused the garbage and closed (with a reset: it had unread bytes) before
        // taking it all; `shutdown` then finds the connection gone.
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::NotConnected
            ) => {}
        Err(e) => panic!("sending the garbage: {e}"),
    }
    assert_eq!(fx.client().get("/").body, HELLO);
}

#[test]
fn a_half_closed_client_still_gets_its_replies() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    let batch = [get("/"), get("/static/small.txt"), get("/nope")];
    client.send(batch.concat().as_bytes());
    client.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(client.reply(false).body, HELLO);
    assert_eq!(client.reply(false).body, SMALL_TEXT);
    assert_eq!(client.reply(false).status, 404);
    let rest = client.expect_close("after the half-close");
    assert!(rest.is_empty(), "bytes after the last reply: {rest:?}");
}

/// A file larger than the high-water mark, to a client that half-closes after its request.
///
/// Once failed on loopback every time: a connection whose peer half-closed ended as soon as a
/// flush emptied its queue, with a `Drained` still owed (the library's test of it is
/// `tests/conn_lifecycle.rs`'s `a_half_closed_peer_gets_a_whole_stream_sent_on_drained`).
#[test]
fn a_half_closed_client_still_gets_a_large_file() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    client.send([get("/"), get("/static/big.bin")].concat().as_bytes());
    client.stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(client.reply(false).body, HELLO);
    let big = client.reply(false);
    assert!(big.body == pattern(BIG), "big.bin arrived altered");
    client.expect_close("after the half-close");
}

#[test]
fn a_reset_mid_file_does_not_disturb_the_server() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    client.send(get("/static/big.bin").as_bytes());
    let head = client.reply(true);
    assert_eq!(head.status, 200);
    let mut some = [0u8; 4096];
    client
        .reader
        .read_exact(&mut some)
        .expect("the body starts");
    socket2::SockRef::from(&client.stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(client); // a reset, with most of the file still to come
    assert_eq!(fx.client().get("/").body, HELLO);
}

#[test]
fn a_client_that_never_reads_does_not_stop_the_others() {
    let fx = Fixture::start(&[]);
    let hog = fx.client();
    // Many file requests, never read: the server's queue fills, then it stops reading.
    let mut sender = hog.stream.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let request = get("/static/big.bin").repeat(100);
        let mut sent = 0;
        while sent < 64 << 20 && sender.write_all(request.as_bytes()).is_ok() {
            sent += request.len();
        }
    });
    for i in 0..20 {
        let mut other = fx.client();
        let reply = other.get("/");
        assert_eq!(
            reply.body, HELLO,
            "client {i} beside the one that never reads"
        );
        let small = other.get("/static/small.txt");
        assert_eq!(small.body, SMALL_TEXT, "client {i}");
    }
    hog.stream
        .shutdown(Shutdown::Both)
        .expect("shut the hog down"); // its blocked write fails
    writer.join().expect("the writer thread");
    assert_eq!(fx.client().get("/").body, HELLO);
}

/// Under `ulimit -n 64`, 100 clients: http_server serves those its descriptors allow, does
/// not spin while the others wait, and serves a new client once they leave (see
/// `common::descriptor_limit`).
#[cfg(target_os = "linux")]
#[test]
fn the_descriptor_limit_is_survived() {
    common::descriptor_limit("http_server", &["127.0.0.1:0"], |mut conn, i| {
        conn.write_all(get(&format!("/?client={i}")).as_bytes())?;
        let reply = read_reply(&mut BufReader::new(conn), false)?;
        if (reply.status, reply.body.as_slice()) != (200, HELLO) {
            let msg = format!("GET / for client {i}: {reply:?}");
            return Err(io::Error::new(ErrorKind::InvalidData, msg));
        }
        Ok(())
    });
}

// --- The process: help, Ctrl-C -----------------------------------------------------------------

#[test]
fn help_names_the_flags_and_the_default_root() {
    let out = common::run_example("http_server", &["--help"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--threads",
        "--no-reuseport",
        "--root",
        "current directory",
        "--max-header",
        "--header-timeout",
        "--idle-timeout",
    ] {
        assert!(
            text.contains(flag),
            "--help does not mention {flag}:\n{text}"
        );
    }
    let out = common::run_example("http_server", &["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// SIGINT with clients connected: exit status 0.
#[cfg(unix)] // a real Ctrl-C under Windows needs a console of its own (tests/examples.rs)
#[test]
fn ctrl_c_ends_it_with_status_0() {
    let mut fx = Fixture::start(&[]);
    let mut clients: Vec<Client> = (0..3).map(|_| fx.client()).collect();
    for client in &mut clients {
        assert_eq!(client.get("/").body, HELLO);
    }
    let status = fx.server.interrupt();
    let stderr = fx.server.stderr();
    assert!(
        status.success() && stderr.contains("closed 3 connection(s)"),
        "{status}; stderr:\n{stderr}"
    );
}
