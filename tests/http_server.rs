//! `examples/http_server` end to end: the server runs as a process, each test with a temporary
//! root of its own, and raw `TcpStream`s talk HTTP to it over loopback (replies parsed
//! minimally here). Keep-alive, pipelining, HTTP/1.0, static files and every way out of the
//! root, paths normalised as nginx does, the refusals (400, 405, 413, 431, 501; smuggling and
//! junk answered at once), conditional requests (304) and ranges (206, 416, `curl -C -`), the
//! header and idle timeouts, several loops, clients that misbehave (garbage, half-close, reset,
//! never reading), the descriptor limit, and `--status`: nginx's stub_status page, its counts,
//! read by curl and compared with nginx's own; and file replies compared with nginx's (each
//! when installed). The real `curl`, when installed, drives ranges, conditional requests by
//! date and by ETag, `--path-as-is` paths, `https://` to the plain port, duplicate
//! `Content-Length` and the header field limit too.
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
/// The modification time of the fixture's files: 2024-01-02 03:04:05 UTC.
const MTIME: u64 = 0x6593_7d25;
/// Its IMF-fixdate.
const MTIME_DATE: &str = "Tue, 02 Jan 2024 03:04:05 GMT";
/// The nginx ETag of `small.txt`: `"<mtime hex>-<size hex>"`.
const SMALL_ETAG: &str = "\"65937d25-14\"";

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

/// A server on a temporary root holding `small.txt`, `big.bin` ([`BIG`] bytes) and
/// `empty.txt`, all modified at [`MTIME`], and a directory `sub` with a file in it;
/// `secret.txt` lies beside the root, outside it. Dropped in field order: the server is killed
/// before its directory goes.
struct Fixture {
    server: ExampleServer,
    #[cfg_attr(not(unix), allow(dead_code))] // the comparison with nginx is Unix-only
    root: PathBuf,
    _dir: TempDir,
}

impl Fixture {
    fn start(args: &[&str]) -> Fixture {
        let dir = TempDir::new();
        let root = dir.0.join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("small.txt"), SMALL_TEXT).unwrap();
        fs::write(root.join("big.bin"), pattern(BIG)).unwrap();
        fs::write(root.join("empty.txt"), b"").unwrap();
        for name in ["small.txt", "big.bin", "empty.txt"] {
            let file = fs::File::options()
                .write(true)
                .open(root.join(name))
                .unwrap();
            let mtime = std::time::UNIX_EPOCH + Duration::from_secs(MTIME);
            file.set_modified(mtime)
                .expect("set a file's modification time");
        }
        fs::write(root.join("sub").join("inner.txt"), SMALL_TEXT).unwrap();
        fs::write(dir.0.join("secret.txt"), SECRET).unwrap();
        let root_arg = root.to_str().expect("a UTF-8 temporary path");
        let mut all = vec!["127.0.0.1:0", "--root", root_arg];
        all.extend_from_slice(args);
        let server = ExampleServer::start("http_server", &all);
        Fixture {
            server,
            root,
            _dir: dir,
        }
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
/// a `HEAD`, nor for a `304`, which has no `Content-Length`).
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
    if status == 304 {
        return Ok(reply);
    }
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
        "/static/%2e%2e/%2e%2e", // (`/static/%2e%2e` is `/`, as in nginx)
        "/static/%2e%2e/secret.txt",
        "/static/sub/../../secret.txt",
        "/static/sub/%2e%2e%2f%2e%2e%2fsecret.txt",
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

/// A GET of `path` with the header lines `headers`.
fn get_with(path: &str, headers: &[&str]) -> String {
    let mut text = format!("GET {path} HTTP/1.1\r\nHost: test\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text + "\r\n"
}

/// The start of a TLS 1.3 ClientHello, as a browser sends it to `https://` on this port: a
/// handshake record (first byte 0x16), with no line in it a server could wait for the end of.
fn client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03]; // legacy version
    body.extend(pattern(32)); // random
    body.extend([0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00, 0x00, 0x00]); // session, suites...
    let mut handshake = vec![0x01, 0x00, 0x00, body.len() as u8];
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend(handshake);
    record
}

#[test]
fn duplicate_content_lengths_get_400_even_when_equal() {
    let fx = Fixture::start(&[]);
    for lengths in [["0", "0"], ["3", "3"], ["3", "4"]] {
        let request = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\ncontent-length: {}\r\n\r\nabc",
            lengths[0], lengths[1]
        );
        refused_and_closed(&fx, request.as_bytes(), 400);
    }
}

/// An HTTP/0.9 request line and a TLS ClientHello never end a head: both are answered 400 at
/// once, the server started with a header timeout (60 s) far beyond the client's patience
/// ([`TIMEOUT`]), so that a 400 (or 408) only at the timeout fails the test.
#[test]
fn http_0_9_and_tls_get_400_at_once_not_at_the_header_timeout() {
    let fx = Fixture::start(&["--header-timeout", "60"]);
    for (what, request) in [
        ("an HTTP/0.9 request line", b"GET /\r\n".to_vec()),
        (
            "an HTTP/0.9 line ending in LF",
            b"GET /static/small.txt\n".to_vec(),
        ),
        (
            "an HTTP/0.9 line after empty lines",
            b"\r\n\r\nGET /\r\n".to_vec(),
        ),
        ("a TLS ClientHello", client_hello()),
        ("the first byte of a TLS ClientHello", vec![0x16]),
    ] {
        let mut client = fx.client();
        let start = Instant::now();
        client.send(&request);
        let reply = read_reply(&mut client.reader, false).unwrap_or_else(|e| {
            panic!(
                "{what}: no reply within {:?} ({e}): the server waits for the header timeout",
                start.elapsed()
            )
        });
        let took = start.elapsed();
        assert_eq!(reply.status, 400, "{what}: {reply:?}");
        assert!(reply.closes(), "{what}: {reply:?}");
        client.expect_close(what);
        assert!(took < TIMEOUT, "{what}: answered after {took:?}");
    }
    assert_eq!(fx.client().get("/").body, HELLO, "the server goes on");
}

#[test]
fn a_hundred_header_fields_pass_and_more_get_431() {
    let fx = Fixture::start(&[]);
    let head = |fields: usize| {
        let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 1..fields {
            head.extend_from_slice(format!("X-Field-{i}: some value\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        assert!(head.len() < 8 << 10, "under the head limit");
        head
    };
    let mut client = fx.client();
    client.send(&head(100));
    let reply = client.reply(false);
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (200, HELLO),
        "100 fields"
    );
    refused_and_closed(&fx, &head(101), 431);
}

// --- Paths as nginx normalises them ------------------------------------------------------------

#[test]
fn dot_segments_and_double_slashes_are_resolved_as_nginx_does() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    for path in [
        "/static/./small.txt",
        "/static//small.txt",
        "//static///small.txt",
        "/static/sub/../small.txt",
        "/static/sub/./../small.txt",
        "/static/%2e/small.txt",
        "/static/sub/%2e%2e/small.txt",
        "/other/../static/small.txt",
        "/./static/small.txt",
    ] {
        let reply = client.get(path);
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        assert_eq!(reply.body, SMALL_TEXT, "{path}");
    }
    for path in ["//", "/.", "/static/..", "/static/../?x"] {
        assert_eq!(client.get(path).body, HELLO, "{path} is /");
    }
    // Above the root: refused with 400 and closed, as nginx does ("client sent invalid
    // request").
    for path in [
        "/..",
        "/../static/small.txt",
        "/static/../../secret.txt",
        "/%2e%2e/x",
    ] {
        refused_and_closed(&fx, get(path).as_bytes(), 400);
    }
    // Still only the root's own files.
    for (path, status) in [
        ("/static/../secret.txt", 404),
        ("/static/sub/inner.txt", 403),
        ("/static/sub/", 403),
    ] {
        let reply = client.get(path);
        assert_eq!(reply.status, status, "{path}: {reply:?}");
    }
}

// --- Conditional requests and ranges -----------------------------------------------------------

/// The names of a reply's headers, in order.
fn header_names(reply: &Reply) -> Vec<&str> {
    reply.headers.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn files_have_nginx_s_validators_and_accept_ranges() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    let reply = client.get("/static/small.txt");
    assert_eq!(reply.status, 200);
    assert_eq!(
        header_names(&reply),
        [
            "Server",
            "Date",
            "Content-Type",
            "Content-Length",
            "Last-Modified",
            "Connection",
            "ETag",
            "Accept-Ranges"
        ],
        "nginx's headers, in nginx's order"
    );
    assert_eq!(reply.header("last-modified"), Some(MTIME_DATE));
    assert_eq!(reply.header("etag"), Some(SMALL_ETAG));
    assert_eq!(reply.header("accept-ranges"), Some("bytes"));
    let big = client.get("/static/big.bin");
    let etag = format!("\"{MTIME:x}-{BIG:x}\"");
    assert_eq!(big.header("etag"), Some(etag.as_str()));
    // The root's replies have none of them.
    let hello = client.get("/");
    assert_eq!(
        (hello.header("etag"), hello.header("accept-ranges")),
        (None, None)
    );
}

#[test]
fn conditional_requests_get_304_with_nginx_s_headers() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    let path = "/static/small.txt";
    let earlier = "Tue, 02 Jan 2024 03:04:04 GMT";
    let later = "Wed, 03 Jan 2024 00:00:00 GMT";
    let inm = |value: &str| format!("If-None-Match: {value}");
    let ims = |value: &str| format!("If-Modified-Since: {value}");
    let cases: [(&[String], u16); 13] = [
        (&[inm(SMALL_ETAG)], 304),
        (&[inm("*")], 304),
        (&[inm(&format!("\"x\", W/{SMALL_ETAG}"))], 304),
        (&[inm("\"65937d25-15\"")], 200),
        (&[ims(MTIME_DATE)], 304),
        (&[ims(later)], 304),
        (&[ims(earlier)], 200),
        (&[ims("not a date")], 200),
        (&[ims("Tuesday, 02-Jan-24 03:04:05 GMT")], 304), // RFC 850
        (&[ims("Tue Jan  2 03:04:05 2024")], 304),        // asctime
        // With If-None-Match, If-Modified-Since is not looked at (RFC 9110 13.1.3).
        (&[inm("\"other\""), ims(MTIME_DATE)], 200),
        (&[inm(SMALL_ETAG), ims(earlier)], 304),
        // A range does not turn a 304 into a 206.
        (&[inm(SMALL_ETAG), "Range: bytes=0-3".to_string()], 304),
    ];
    for (headers, status) in cases {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        client.send(get_with(path, &headers).as_bytes());
        let reply = client.reply(false);
        assert_eq!(reply.status, status, "{headers:?}: {reply:?}");
        assert!(!reply.closes(), "{headers:?}");
        match status {
            304 => assert_eq!(
                header_names(&reply),
                ["Server", "Date", "Last-Modified", "Connection", "ETag"],
                "{headers:?}: nginx's 304, no body"
            ),
            _ => assert_eq!(reply.body, SMALL_TEXT, "{headers:?}"),
        }
    }
    // HEAD too; and the connection goes on, the 304 having no body.
    let head = format!("HEAD {path} HTTP/1.1\r\nHost: a\r\nIf-None-Match: *\r\n\r\n");
    client.send(head.as_bytes());
    assert_eq!(client.reply(true).status, 304);
    assert_eq!(client.get("/").body, HELLO);
}

#[test]
fn ranges_get_206_or_416_and_stream_from_the_offset() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    let whole = pattern(BIG);
    let big_etag = format!("\"{MTIME:x}-{BIG:x}\"");
    let size = BIG as u64;
    // A Range, other header lines, and the bytes expected (`None`: the whole file, 200).
    type Case = (String, Vec<String>, Option<(u64, u64)>);
    let cases: Vec<Case> = vec![
        ("bytes=0-9".into(), vec![], Some((0, 9))),
        ("bytes=1000000-".into(), vec![], Some((1_000_000, size - 1))),
        ("bytes=-5".into(), vec![], Some((size - 5, size - 1))),
        (format!("bytes=-{}", size + 10), vec![], Some((0, size - 1))),
        (
            format!("bytes={}-{}", size - 3, size + 100),
            vec![],
            Some((size - 3, size - 1)),
        ),
        ("bytes=0-1,3-4".into(), vec![], None), // several: the whole file, 200
        ("bytes=5-2".into(), vec![], None),     // not a range: ignored
        ("lines=1-2".into(), vec![], None),
        (
            "bytes=0-99".into(),
            vec![format!("If-Range: {big_etag}")],
            Some((0, 99)),
        ),
        (
            "bytes=0-99".into(),
            vec![format!("If-Range: {MTIME_DATE}")],
            Some((0, 99)),
        ),
        (
            "bytes=0-99".into(),
            vec!["If-Range: \"other\"".into()],
            None,
        ),
        (
            "bytes=0-99".into(),
            vec![format!("If-Range: W/{big_etag}")],
            None,
        ),
    ];
    for (range, extra, expected) in cases {
        let mut headers = vec![format!("Range: {range}")];
        headers.extend(extra);
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        client.send(get_with("/static/big.bin", &headers).as_bytes());
        let reply = client.reply(false);
        assert!(!reply.closes(), "{headers:?}");
        let Some((first, last)) = expected else {
            assert_eq!(reply.status, 200, "{headers:?}: {:?}", reply.headers);
            assert_eq!(reply.header("accept-ranges"), Some("bytes"));
            assert!(reply.body == whole, "{headers:?}: the whole file altered");
            continue;
        };
        assert_eq!(reply.status, 206, "{headers:?}: {:?}", reply.headers);
        assert_eq!(
            header_names(&reply),
            [
                "Server",
                "Date",
                "Content-Type",
                "Content-Length",
                "Last-Modified",
                "Connection",
                "ETag",
                "Content-Range"
            ],
            "{headers:?}: nginx's 206"
        );
        let content_range = format!("bytes {first}-{last}/{size}");
        assert_eq!(reply.header("content-range"), Some(content_range.as_str()));
        let len = (last - first + 1).to_string();
        assert_eq!(reply.header("content-length"), Some(len.as_str()));
        assert!(
            reply.body[..] == whole[first as usize..=last as usize],
            "{headers:?}: the wrong bytes"
        );
    }
    // Unsatisfiable: 416, the size in Content-Range, the connection kept.
    for range in [
        format!("bytes={size}-"),
        "bytes=-0".into(),
        "bytes=99999999999999999999999-".into(),
    ] {
        client.send(get_with("/static/big.bin", &[&format!("Range: {range}")]).as_bytes());
        let reply = client.reply(false);
        assert_eq!(reply.status, 416, "{range}: {reply:?}");
        let content_range = format!("bytes */{size}");
        assert_eq!(reply.header("content-range"), Some(content_range.as_str()));
        assert_eq!(
            reply.header("etag"),
            None,
            "nginx sends no validators with a 416"
        );
        assert!(!reply.closes(), "{range}");
    }
    // HEAD of a range, then a range with a request pipelined behind it.
    client.send(b"HEAD /static/big.bin HTTP/1.1\r\nHost: a\r\nRange: bytes=10-19\r\n\r\n");
    let head = client.reply(true);
    assert_eq!(
        (head.status, head.header("content-length")),
        (206, Some("10"))
    );
    let ranged = get_with("/static/big.bin", &["Range: bytes=4000000-"]);
    client.send([ranged, get("/")].concat().as_bytes());
    let reply = client.reply(false);
    assert_eq!(reply.status, 206);
    assert!(reply.body[..] == whole[4_000_000..], "the tail altered");
    assert_eq!(
        client.reply(false).body,
        HELLO,
        "the request behind the range"
    );
}

#[test]
fn curl_resumes_a_partial_download() {
    let fx = Fixture::start(&[]);
    let whole = pattern(BIG);
    let dir = TempDir::new();
    let file = dir.0.join("big.part");
    let have = 3 * (1 << 20) + 12_345;
    fs::write(&file, &whole[..have]).unwrap();
    let url = format!("http://{}/static/big.bin", fx.server.addr());
    let Some(out) = curl(&[
        "-C",
        "-",
        "-o",
        utf8(&file),
        &url,
        "-w",
        "%{http_code} %{size_download}",
    ]) else {
        return;
    };
    assert!(out.status.success(), "curl -C - {url}: {out:?}");
    let written = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        written,
        format!("206 {}", BIG - have),
        "curl's status and bytes downloaded: a resume, not a new download"
    );
    let got = fs::read(&file).unwrap();
    assert_eq!(got.len(), BIG, "the resumed file's length");
    assert!(got == whole, "the resumed file differs from big.bin");
}

// --- Driven by the real curl -------------------------------------------------------------------

/// Runs the real `curl` with `args` after `-sS --max-time <TIMEOUT>` (quiet but for errors,
/// and bounded; a `--max-time` in `args` overrides it), its stdin null, and returns what it
/// did; `None`, saying on stderr that the test is skipped, if curl is not installed.
fn curl(args: &[&str]) -> Option<std::process::Output> {
    let run = std::process::Command::new("curl")
        .args(["-sS", "--max-time", &TIMEOUT.as_secs().to_string()])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output();
    match run {
        Ok(out) => Some(out),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!("skipped: curl is not installed");
            None
        }
        Err(e) => panic!("run curl: {e}"),
    }
}

/// `path` as an argument for curl (the temporary paths are UTF-8, as [`Fixture`] requires).
fn utf8(path: &std::path::Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// What a curl run by [`fetch`] got: its HTTP status (`%{http_code}`), the head it received
/// (`-D`), the body it wrote (`-o`; `None` if it wrote no file, as for a 304), and what it
/// said on stderr (with `-v`, its trace).
struct Fetched {
    what: String,
    status: u16,
    head: String,
    body: Option<Vec<u8>>,
    stderr: String,
}

impl Fetched {
    /// The value of the header `name` in the head received.
    fn header(&self, name: &str) -> Option<&str> {
        let mut lines = self.head.lines().skip(1); // the status line
        lines.find_map(|line| {
            let (n, value) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The header lines curl says it sent (with `-v`, its trace's `> Name: value` lines).
    fn sent_headers(&self) -> Vec<&str> {
        let sent = self.stderr.lines().filter_map(|l| l.strip_prefix("> "));
        sent.filter(|line| line.contains(": ")).collect()
    }
}

/// Runs `curl -D HEAD -o BODY -w '%{http_code}' ARGS... URL`, HEAD and BODY files `name.head`
/// and `name.body` in `dir` (any left by an earlier run removed first), and checks that curl
/// succeeded (exit status 0: the HTTP status is not an error to curl without `-f`); `None` if
/// curl is not installed.
#[track_caller]
fn fetch(dir: &TempDir, name: &str, url: &str, args: &[&str]) -> Option<Fetched> {
    let head = dir.0.join(format!("{name}.head"));
    let body = dir.0.join(format!("{name}.body"));
    let _ = fs::remove_file(&head);
    let _ = fs::remove_file(&body);
    let mut all = vec!["-D", utf8(&head), "-o", utf8(&body), "-w", "%{http_code}"];
    all.extend_from_slice(args);
    all.push(url);
    let what = format!("curl {}", args.join(" "));
    let out = curl(&all)?;
    assert!(out.status.success(), "{what} {url}: {out:?}");
    let status = String::from_utf8_lossy(&out.stdout);
    let status = status
        .parse()
        .unwrap_or_else(|_| panic!("{what}: not an HTTP status: {status:?}"));
    Some(Fetched {
        what,
        status,
        head: fs::read_to_string(&head).unwrap_or_default(),
        body: fs::read(&body).ok(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `curl -r`: one range of big.bin gets a 206 with that range's bytes and its Content-Range,
/// from the start and to the end; a range starting at the end is a 416 with the size. What
/// `ranges_get_206_or_416_and_stream_from_the_offset` checks, seen by a real client.
#[test]
fn curl_gets_single_ranges() {
    let fx = Fixture::start(&[]);
    let dir = TempDir::new();
    let url = format!("http://{}/static/big.bin", fx.server.addr());
    let whole = pattern(BIG);
    let Some(first) = fetch(&dir, "first", &url, &["-r", "0-9"]) else {
        return;
    };
    assert_eq!(first.status, 206, "{}: {}", first.what, first.head);
    let range = format!("bytes 0-9/{BIG}");
    assert_eq!(first.header("content-range"), Some(range.as_str()));
    assert_eq!(first.body.as_deref(), Some(&whole[..10]), "{}", first.what);

    let tail = fetch(&dir, "tail", &url, &["-r", "5-"]).expect("curl");
    assert_eq!(tail.status, 206, "{}: {}", tail.what, tail.head);
    let range = format!("bytes 5-{}/{BIG}", BIG - 1);
    assert_eq!(tail.header("content-range"), Some(range.as_str()));
    let body = tail.body.expect("the tail written");
    assert!(body[..] == whole[5..], "{}: the wrong bytes", tail.what);

    let past = BIG.to_string() + "-";
    let beyond = fetch(&dir, "beyond", &url, &["-r", &past]).expect("curl");
    assert_eq!(beyond.status, 416, "{}: {}", beyond.what, beyond.head);
    let range = format!("bytes */{BIG}");
    assert_eq!(beyond.header("content-range"), Some(range.as_str()));
    let body = beyond.body.unwrap_or_default();
    assert!(body.len() < 1024, "{}: {} bytes", beyond.what, body.len());
}

/// `curl -R` gives the file it writes the server's `Last-Modified`; `curl -z FILE` sends that
/// date as If-Modified-Since and gets a 304 (no body, no file written); `-z` with a date
/// before the file's gets it (200). curl itself drops a 200 whose Last-Modified is not newer
/// than the `-z` date: the status, not just the file, shows the 304.
#[test]
fn curl_conditional_requests_by_date() {
    let fx = Fixture::start(&[]);
    let dir = TempDir::new();
    let url = format!("http://{}/static/small.txt", fx.server.addr());
    let Some(first) = fetch(&dir, "first", &url, &["-R"]) else {
        return;
    };
    assert_eq!(first.status, 200, "{}: {}", first.what, first.head);
    assert_eq!(first.body.as_deref(), Some(SMALL_TEXT));
    let saved = dir.0.join("first.body");
    let mtime = fs::metadata(&saved).unwrap().modified().unwrap();
    let expected = std::time::UNIX_EPOCH + Duration::from_secs(MTIME);
    assert_eq!(mtime, expected, "curl -R: the file's time is Last-Modified");

    let again = fetch(&dir, "again", &url, &["-z", utf8(&saved)]).expect("curl");
    assert_eq!(again.status, 304, "{}: {}", again.what, again.head);
    assert_eq!(again.header("last-modified"), Some(MTIME_DATE));
    let body = again.body.unwrap_or_default();
    assert!(body.is_empty(), "{}: a body: {body:?}", again.what);

    let before = "Sat, 01 Jan 2000 00:00:00 GMT";
    let older = fetch(&dir, "older", &url, &["-z", before]).expect("curl");
    assert_eq!(older.status, 200, "{}: {}", older.what, older.head);
    assert_eq!(older.body.as_deref(), Some(SMALL_TEXT), "{}", older.what);
}

/// `curl --etag-save` keeps the ETag, `--etag-compare` sends it as If-None-Match: a 304 while
/// the file is the same; once it is rewritten (another size, so another ETag), a 200 with
/// the new bytes.
#[test]
fn curl_etag_save_and_compare() {
    let fx = Fixture::start(&[]);
    let dir = TempDir::new();
    let url = format!("http://{}/static/small.txt", fx.server.addr());
    let etag = dir.0.join("etag");
    let etag = utf8(&etag);
    let Some(first) = fetch(&dir, "first", &url, &["--etag-save", etag]) else {
        return;
    };
    assert_eq!(first.status, 200, "{}: {}", first.what, first.head);
    assert_eq!(first.body.as_deref(), Some(SMALL_TEXT));
    assert_eq!(fs::read_to_string(etag).unwrap().trim(), SMALL_ETAG);

    let same = fetch(&dir, "same", &url, &["--etag-compare", etag]).expect("curl");
    assert_eq!(same.status, 304, "{}: {}", same.what, same.head);
    assert_eq!(same.header("etag"), Some(SMALL_ETAG));
    let body = same.body.unwrap_or_default();
    assert!(body.is_empty(), "{}: a body: {body:?}", same.what);

    let changed = b"a small static file, rewritten longer\n";
    fs::write(fx.root.join("small.txt"), changed).unwrap();
    let new = fetch(&dir, "new", &url, &["--etag-compare", etag]).expect("curl");
    assert_eq!(new.status, 200, "{}: {}", new.what, new.head);
    assert_ne!(new.header("etag"), Some(SMALL_ETAG), "{}", new.what);
    assert_eq!(new.body.as_deref(), Some(&changed[..]), "{}", new.what);
}

/// `curl --path-as-is` sends dot segments and double slashes unresolved (its trace shows the
/// request line): the server resolves them as nginx does and serves big.bin whole; a path
/// that climbs above the root is a 400, as in the raw test
/// (`dot_segments_and_double_slashes_are_resolved_as_nginx_does`), and never a file's bytes.
#[test]
fn curl_path_as_is_is_normalised_as_nginx_does() {
    let fx = Fixture::start(&[]);
    let dir = TempDir::new();
    let base = format!("http://{}", fx.server.addr());
    let whole = pattern(BIG);
    for (i, path) in [
        "/static/big.bin",
        "/static/./big.bin",
        "/static//big.bin",
        "/static/sub/../big.bin",
    ]
    .into_iter()
    .enumerate()
    {
        let url = format!("{base}{path}");
        let args = ["--path-as-is", "-v"];
        let Some(got) = fetch(&dir, &format!("ok{i}"), &url, &args) else {
            return;
        };
        // Without --path-as-is, curl would resolve the dot segments itself.
        let line = format!("> GET {path} HTTP/1.1");
        assert!(
            got.stderr.contains(&line),
            "not sent as is:\n{}",
            got.stderr
        );
        assert_eq!(got.status, 200, "{path}: {}", got.head);
        let body = got.body.expect("the file written");
        assert!(body == whole, "{path}: not big.bin's bytes");
    }
    for (i, path) in [
        "/static/../../etc/passwd",
        "/static/../../secret.txt",
        "/static/sub/../../../secret.txt",
        "/../static/big.bin",
    ]
    .into_iter()
    .enumerate()
    {
        let url = format!("{base}{path}");
        let got = fetch(&dir, &format!("above{i}"), &url, &["--path-as-is"]).expect("curl");
        assert_eq!(got.status, 400, "{path}: {}", got.head);
        assert_eq!(got.header("connection"), Some("close"), "{path}");
        let body = got.body.unwrap_or_default();
        assert!(
            body.len() < 1024 && !body.windows(SECRET.len()).any(|w| w == SECRET),
            "{path}: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        );
    }
}

/// `curl https://` to the plain port: the server answers the ClientHello's first byte with a
/// 400 and closes, so curl fails its TLS handshake (exit 35, or 56 where a TLS library reports
/// the close as a receive failure) at once. The server waits 60 s for a head, curl 30 s: were
/// the ClientHello left to the header timeout, curl would give up first (28) and fail the test.
#[test]
fn curl_https_to_the_plain_port_fails_at_once() {
    let fx = Fixture::start(&["--header-timeout", "60"]);
    let url = format!("https://{}/", fx.server.addr());
    let Some(out) = curl(&["--max-time", "30", "-w", "%{http_code}", &url]) else {
        return;
    };
    assert!(
        matches!(out.status.code(), Some(35 | 56)),
        "curl {url}: not a TLS failure: {out:?}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "000", "no HTTP reply");
    let dir = TempDir::new();
    let plain = format!("http://{}/", fx.server.addr());
    let hello = fetch(&dir, "hello", &plain, &[]).expect("curl");
    assert_eq!(
        (hello.status, hello.body.as_deref()),
        (200, Some(HELLO)),
        "the server goes on"
    );
}

/// Two `Content-Length: 0` lines (curl sends both, as its trace shows): a 400 that closes,
/// against request smuggling, even though they agree.
#[test]
fn curl_duplicate_content_lengths_get_400() {
    let fx = Fixture::start(&[]);
    let dir = TempDir::new();
    let url = format!("http://{}/", fx.server.addr());
    let length = "Content-Length: 0";
    let Some(got) = fetch(&dir, "twice", &url, &["-v", "-H", length, "-H", length]) else {
        return;
    };
    let sent = got.sent_headers();
    let lengths = sent.iter().filter(|&&h| h == length).count();
    assert_eq!(lengths, 2, "curl merged the two: {sent:?}");
    assert_eq!(got.status, 400, "{}", got.head);
    assert_eq!(got.header("connection"), Some("close"), "{}", got.head);
}

/// Header fields counted (`request::MAX_HEADERS`, 100): curl's own `User-Agent` and `Accept`
/// removed (`-H 'Name:'`), so that its `Host` and N `X-N: v` lines are the head's N + 1 fields
/// (its trace shows them): 99 pass, 100 and 101 get a 431. With curl's defaults, 97 would be
/// the most that pass.
#[test]
fn curl_with_too_many_header_fields_gets_431() {
    let fx = Fixture::start(&[]);
    let dir = TempDir::new();
    let url = format!("http://{}/", fx.server.addr());
    for (extra, status) in [(99, 200), (100, 431), (101, 431)] {
        let mut args = vec!["-v", "-H", "User-Agent:", "-H", "Accept:"];
        for _ in 0..extra {
            args.extend(["-H", "X-N: v"]);
        }
        let Some(got) = fetch(&dir, &format!("fields{extra}"), &url, &args) else {
            return;
        };
        let sent = got.sent_headers();
        assert_eq!(
            sent.len(),
            extra + 1,
            "{extra} X-N lines and Host: {sent:?}"
        );
        assert_eq!(got.status, status, "{} fields: {}", extra + 1, got.head);
        match status {
            200 => assert_eq!(got.body.as_deref(), Some(HELLO)),
            _ => assert_eq!(got.header("connection"), Some("close"), "{}", got.head),
        }
    }
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

// --- The status page (--status): nginx's stub_status ---------------------------------------------

const STATUS: &str = "/nginx_status";

/// What nginx's stub_status page says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct StubStatus {
    active: u64,
    accepts: u64,
    handled: u64,
    requests: u64,
    reading: u64,
    writing: u64,
    waiting: u64,
}

/// Parses a stub_status body as strictly as nginx writes it (`ngx_http_stub_status_module`):
/// exactly these four lines, each ending in `\n` (no `\r`), with the space before the `\n` of
/// lines 1, 3 and 4 and at the start of line 3, each `#` a number as nginx prints one (`%uA`:
/// decimal digits, no sign, no leading zero), nothing before or after.
fn parse_stub_status(body: &[u8]) -> Result<StubStatus, String> {
    const LINES: [&str; 4] = [
        "Active connections: # \n",
        "server accepts handled requests\n",
        " # # # \n",
        "Reading: # Writing: # Waiting: # \n",
    ];
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8 ({e})"))?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.len() != LINES.len() {
        return Err(format!("{} lines, not 4: {text:?}", lines.len()));
    }
    let mut n = Vec::new();
    for (line, pattern) in lines.into_iter().zip(LINES) {
        let numbers = numbers_in(line, pattern);
        n.extend(numbers.map_err(|e| format!("{line:?} is not {pattern:?}: {e}"))?);
    }
    Ok(StubStatus {
        active: n[0],
        accepts: n[1],
        handled: n[2],
        requests: n[3],
        reading: n[4],
        writing: n[5],
        waiting: n[6],
    })
}

/// The numbers of `line`, which must be `pattern` with a number for each `#`.
fn numbers_in(line: &str, pattern: &str) -> Result<Vec<u64>, String> {
    let mut rest = line;
    let mut numbers = Vec::new();
    for (i, literal) in pattern.split('#').enumerate() {
        if i > 0 {
            let digits = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
            if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
                return Err(format!("no number as nginx prints one at {rest:?}"));
            }
            numbers.push(digits.parse().map_err(|e| format!("{digits}: {e}"))?);
            rest = &rest[digits.len()..];
        }
        rest = rest
            .strip_prefix(literal)
            .ok_or_else(|| format!("{literal:?} expected at {rest:?}"))?;
    }
    match rest.is_empty() {
        true => Ok(numbers),
        false => Err(format!("{rest:?} left over")),
    }
}

impl Client {
    /// GETs the status page; checks its status and headers, and parses it.
    #[track_caller]
    fn status(&mut self) -> StubStatus {
        let reply = self.get(STATUS);
        check_status_reply(&reply, Some(reply.body.len()));
        parse_stub_status(&reply.body).unwrap_or_else(|e| panic!("the status page: {e}"))
    }
}

/// Checks the head of a reply with the status page: `200`, nginx's headers in nginx's order,
/// `text/plain`, and the `Content-Length` of `len` bytes if given.
#[track_caller]
fn check_status_reply(reply: &Reply, len: Option<usize>) {
    assert_eq!(reply.status, 200, "{reply:?}");
    let names: Vec<&str> = reply.headers.iter().map(|(n, _)| n.as_str()).collect();
    let expected = [
        "Server",
        "Date",
        "Content-Type",
        "Content-Length",
        "Connection",
    ];
    assert_eq!(names, expected, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain"),
        "{reply:?}"
    );
    if let Some(len) = len {
        let announced = reply.header("content-length");
        assert_eq!(announced, Some(len.to_string().as_str()), "{reply:?}");
    }
}

/// Asks for the status page on `client` until `done(page)` holds, and returns that page and how
/// many times it asked: each look is a request, and counts in `requests`. For what no reply
/// tells the test: that the server has read bytes sent on another connection, or seen one
/// close, or that another loop has. Fails after [`TIMEOUT`], saying `what` it waited for.
#[track_caller]
fn status_when(
    client: &mut Client,
    what: &str,
    done: impl Fn(&StubStatus) -> bool,
) -> (StubStatus, u64) {
    let deadline = Instant::now() + TIMEOUT;
    let mut looks = 0;
    loop {
        let page = client.status();
        looks += 1;
        if done(&page) {
            return (page, looks);
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the page says {page:?}"
        );
    }
}

#[test]
fn the_stub_status_parser_is_strict() {
    let page = b"Active connections: 291 \nserver accepts handled requests\n \
                 16630948 16630948 31070465 \nReading: 6 Writing: 179 Waiting: 106 \n";
    let expected = StubStatus {
        active: 291,
        accepts: 16630948,
        handled: 16630948,
        requests: 31070465,
        reading: 6,
        writing: 179,
        waiting: 106,
    };
    assert_eq!(parse_stub_status(page), Ok(expected));
    let text = std::str::from_utf8(page).unwrap();
    for wrong in [
        text.replace(" \n", "\n"),                        // the trailing spaces
        text.replace("\n 1", "\n1"),                      // the leading space
        text.replace('\n', "\r\n"),                       // CRLF
        text.replace("291", "0291"),                      // a leading zero
        text.replace("291", "-1"),                        // a sign
        text.replace("291", ""),                          // no number
        text.replace("Waiting: 106 \n", "Waiting: 106 "), // no last newline
        format!("{text}\n"),                              // an extra line
        text.replace("accepts", "Accepts"),
    ] {
        assert!(
            parse_stub_status(wrong.as_bytes()).is_err(),
            "accepted {wrong:?}"
        );
    }
}

/// The page a lone client sees: it is the one connection, the one request, and writing (its
/// own reply).
fn lone_client() -> StubStatus {
    StubStatus {
        active: 1,
        accepts: 1,
        handled: 1,
        requests: 1,
        writing: 1,
        ..StubStatus::default()
    }
}

#[test]
fn the_status_page_is_nginx_s_stub_status() {
    let fx = Fixture::start(&["--status", STATUS]);
    let mut client = fx.client();
    let reply = client.get(STATUS);
    check_status_reply(&reply, Some(reply.body.len()));
    assert_eq!(reply.header("connection"), Some("keep-alive"));
    // A lone client: it is the one connection, the one request, and writing (its own reply).
    let lone = "Active connections: 1 \nserver accepts handled requests\n 1 1 1 \n\
                Reading: 0 Writing: 1 Waiting: 0 \n";
    assert_eq!(String::from_utf8_lossy(&reply.body), lone);
    let page = parse_stub_status(&reply.body).expect("the page parses");
    assert_eq!(page, lone_client());

    // HEAD: the head only, announcing the page it would have sent (as long: one digit each).
    client.send(format!("HEAD {STATUS} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    let head = client.reply(true);
    check_status_reply(&head, Some(lone.len()));
    // No body came: the next bytes are the next reply's. A query is not part of the path.
    let reply = client.get(&format!("{STATUS}?from=test"));
    check_status_reply(&reply, Some(reply.body.len()));
    let page = parse_stub_status(&reply.body).expect("the page parses");
    assert_eq!(page.requests, 3, "{page:?}");

    // Only that path: the others are what they were.
    for path in [
        "/nginx_status/",
        "/nginx_statusx",
        "/nginx",
        "/NGINX_STATUS",
    ] {
        assert_eq!(client.get(path).status, 404, "{path}");
    }
    assert_eq!(client.get("/").body, HELLO);
    client.send(format!("DELETE {STATUS} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    assert_eq!(client.reply(false).status, 405, "as nginx's stub_status");
    assert_eq!(client.status().requests, 10);
}

#[test]
fn without_status_the_path_is_an_ordinary_one() {
    let fx = Fixture::start(&[]);
    let mut client = fx.client();
    assert_eq!(client.get(STATUS).status, 404);
    let fx = Fixture::start(&["--status", "/static/small.txt"]);
    let mut client = fx.client();
    let reply = client.get("/static/small.txt");
    check_status_reply(&reply, Some(reply.body.len()));
    parse_stub_status(&reply.body).expect("the page, not the file");
    assert_eq!(client.get("/static/big.bin").body.len(), BIG);
}

/// Every number, in every state nginx names, exact. The counts expected are nginx's: nginx
/// 1.22.1, taken through the same steps by a script, gave the same pages at every step (the
/// test comparing with nginx below does the first one only: one idle client, one asking).
#[test]
fn the_status_counts_are_exact() {
    let fx = Fixture::start(&["--status", STATUS]);
    // A: a request answered, the connection kept open between requests: Waiting.
    let mut waiting = fx.client();
    assert_eq!(waiting.get("/").body, HELLO);
    // B: half a head: Reading. nginx counts a request when its first bytes arrive (it makes
    // the request then, ngx_http_create_request, before the head is complete): so B's request
    // is one of the `requests` already.
    let mut reading = fx.client();
    reading.send(b"GET / HTTP/1.1\r\nHo");
    // C: the status request: Writing (nginx counts the connection asking, whose reply is being
    // written). Waiting for the server to have read B's bytes, which no reply tells: on one loop
    // it has (B's bytes came before C's request, and the server reads in turn), but a look
    // more is counted anyway.
    let mut asking = fx.client();
    let (page, looks) = status_when(&mut asking, "B's half head read", |p| p.reading == 1);
    let mut expected = StubStatus {
        active: 3,
        accepts: 3,
        handled: 3,
        requests: 2 + looks, // A's, B's (begun), and C's
        reading: 1,
        writing: 1,
        waiting: 1,
    };
    assert_eq!(page, expected);

    // A leaves: once the server has closed it too, one connection less, and no waiting one.
    waiting.stream.shutdown(Shutdown::Write).unwrap();
    waiting.expect_close("A, half-closed");
    drop(waiting);
    let (page, looks) = status_when(&mut asking, "A's close", |p| p.active == 2);
    expected.active = 2;
    expected.waiting = 0;
    expected.requests += looks;
    assert_eq!(page, expected);

    // B completes its head: answered, it waits. Its request was counted already.
    reading.send(b"st: test\r\n\r\n");
    assert_eq!(reading.reply(false).body, HELLO);
    let page = asking.status();
    (expected.reading, expected.waiting) = (0, 1);
    expected.requests += 1;
    assert_eq!(page, expected);

    // D connects and sends nothing: nginx counts it as waiting, and so does this server.
    let _silent = fx.client();
    let (page, looks) = status_when(&mut asking, "D accepted", |p| p.accepts == 4);
    (expected.active, expected.accepts, expected.handled) = (3, 4, 4);
    expected.waiting = 2;
    expected.requests += looks;
    assert_eq!(page, expected);

    // B sends garbage: refused (400) and closed. A request all the same, for nginx too. (nginx
    // then keeps the connection in its lingering close, still Reading, until the client closes
    // its end too, as B does here; this server closes it at once.)
    reading.send(b"NOT HTTP\r\n\r\n");
    assert_eq!(reading.reply(false).status, 400);
    reading.expect_close("after the 400");
    drop(reading);
    let (page, looks) = status_when(&mut asking, "B's close", |p| p.active == 2);
    expected.active = 2;
    expected.waiting = 1;
    expected.requests += 1 + looks;
    assert_eq!(page, expected);

    // Two status requests in one write: each page counts the requests begun before it is
    // written, as nginx's does (nginx begins a pipelined request once the one before is done).
    asking.send(get(STATUS).repeat(2).as_bytes());
    let first = parse_stub_status(&asking.reply(false).body).expect("the first page");
    let second = parse_stub_status(&asking.reply(false).body).expect("the second page");
    expected.requests += 1;
    assert_eq!(first, expected);
    expected.requests += 1;
    assert_eq!(second, expected);
}

/// With two loops, each counting its own connections: the page adds them up. Without
/// `SO_REUSEPORT` the acceptor hands connections to the loops in turn, so both have some;
/// with it, the kernel spreads them, and the sums must be right whatever the spread.
#[test]
fn the_status_counts_cover_every_loop() {
    for args in [
        &["--threads", "2", "--no-reuseport"][..],
        &["--threads", "2"][..],
    ] {
        let mut all = vec!["--status", STATUS];
        all.extend_from_slice(args);
        let fx = Fixture::start(&all);
        let first = fx.server.stderr();
        assert!(first.contains("2 thread(s)"), "{first}");
        let mut idle: Vec<Client> = (0..6).map(|_| fx.client()).collect();
        for client in &mut idle {
            assert_eq!(client.get("/").body, HELLO);
        }
        let mut reading = fx.client();
        reading.send(b"GET / HTTP/1.1\r\n");
        // The loops count on their own threads: the asking one may see another's change late.
        let mut asking = fx.client();
        let (page, looks) = status_when(&mut asking, "every loop's counts", |p| {
            p.reading == 1 && p.waiting == 6
        });
        let mut expected = StubStatus {
            active: 8,
            accepts: 8,
            handled: 8,
            requests: 7 + looks,
            reading: 1,
            writing: 1,
            waiting: 6,
        };
        assert_eq!(page, expected, "{args:?}");

        for mut client in idle.drain(..3) {
            client.stream.shutdown(Shutdown::Write).unwrap();
            client.expect_close("a waiting client, half-closed");
        }
        let (page, looks) = status_when(&mut asking, "three closes", |p| p.active == 5);
        expected.active = 5;
        expected.waiting = 3;
        expected.requests += looks;
        assert_eq!(page, expected, "{args:?}");
    }
}

#[test]
fn curl_reads_the_status_page() {
    let fx = Fixture::start(&["--status", STATUS]);
    let url = format!("http://{}{STATUS}", fx.server.addr());
    let Some(out) = curl(&[&url]) else {
        return;
    };
    assert!(out.status.success(), "curl {url}: {out:?}");
    let page = parse_stub_status(&out.stdout).unwrap_or_else(|e| panic!("curl {url}: {e}"));
    assert_eq!(page, lone_client());
}

/// An nginx started for a test, with the stub_status page at [`STATUS`]: in a temporary prefix
/// directory, one process (`daemon off; master_process off;`), on a spare loopback port. Killed
/// when dropped, whatever happened, before its directory is removed.
#[cfg(unix)]
struct Nginx {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    dir: TempDir,
}

#[cfg(unix)]
impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why nginx could not be started.
#[cfg(unix)]
enum NginxFailed {
    /// The port chosen was taken meanwhile: try another.
    PortTaken(String),
    Other(String),
}

#[cfg(unix)]
impl Nginx {
    /// The nginx program, if one is installed, and how it was built (what `nginx -V` says);
    /// `None`, saying the test is skipped on stderr, if none is.
    fn installed() -> Option<(PathBuf, String)> {
        let Some(program) = Nginx::program() else {
            eprintln!("skipped: nginx is not installed");
            return None;
        };
        let version = std::process::Command::new(&program).arg("-V").output();
        let build = match version {
            Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
            Err(e) => panic!("{} -V: {e}", program.display()),
        };
        Some((program, build))
    }

    /// The nginx program, if one is installed (`command -v nginx`, or where the distributions
    /// put it: /usr/sbin is not in every user's PATH).
    fn program() -> Option<PathBuf> {
        let found = std::process::Command::new("sh")
            .args(["-c", "command -v nginx"])
            .stdin(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|path| !path.is_empty())
            .map(PathBuf::from);
        found.or_else(|| {
            [
                "/usr/sbin/nginx",
                "/usr/local/sbin/nginx",
                "/usr/local/nginx/sbin/nginx",
            ]
            .map(PathBuf::from)
            .into_iter()
            .find(|path| path.is_file())
        })
    }

    /// Starts `program`, built as `nginx -V` said (`build`); tries three spare ports. With
    /// `root`, it serves that directory's files at `/static/NAME` too, as http_server does.
    fn start(program: &std::path::Path, build: &str, root: Option<&std::path::Path>) -> Nginx {
        let mut taken = Vec::new();
        for _ in 0..3 {
            match Nginx::try_start(program, build, root) {
                Ok(nginx) => return nginx,
                Err(NginxFailed::PortTaken(why)) => taken.push(why),
                Err(NginxFailed::Other(why)) => panic!("{}: {why}", program.display()),
            }
        }
        panic!(
            "{}: no spare port:\n{}",
            program.display(),
            taken.join("\n")
        );
    }

    fn try_start(
        program: &std::path::Path,
        build: &str,
        root: Option<&std::path::Path>,
    ) -> Result<Nginx, NginxFailed> {
        let dir = TempDir::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a spare loopback port")
            .port();
        let prefix = dir.0.display().to_string();
        // Every path nginx writes to in the temporary directory: the default ones (/var/lib,
        // /var/log...) may not be writable. Each temporary path only if its module is built in
        // (nginx-light has no uwsgi or scgi, say): an unknown directive is fatal.
        let mut temp_paths = format!("client_body_temp_path {prefix}/client_body;\n");
        for module in ["proxy", "fastcgi", "uwsgi", "scgi"] {
            if !build.contains(&format!("--without-http_{module}_module")) {
                temp_paths += &format!("    {module}_temp_path {prefix}/{module};\n");
            }
        }
        // `alias`: /static/NAME is the file NAME of the root, as for http_server.
        let files = match root {
            Some(root) => format!("location /static/ {{ alias {}/; }}\n", root.display()),
            None => String::new(),
        };
        // Two error logs: the file, for the failure messages, and stderr, where the test sees
        // nginx ready (see below).
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log notice;\n\
             error_log stderr notice;\nevents {{ worker_connections 64; }}\n\
             http {{\n    access_log off;\n    {temp_paths}\
                 server {{\n        listen 127.0.0.1:{port};\n\
                     location = {STATUS} {{ stub_status; }}\n        {files}    }}\n}}\n"
        );
        fs::create_dir_all(dir.0.join("logs")).unwrap(); // the default log's place, if any
        let conf = dir.0.join("nginx.conf");
        fs::write(&conf, config).unwrap();
        let mut child = std::process::Command::new(program)
            .arg("-p")
            .arg(format!("{prefix}/"))
            .arg("-c")
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| NginxFailed::Other(format!("cannot start it: {e}")))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut nginx = Nginx {
            child,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        // Its stderr, line by line, read all along (the pipe never fills).
        let (lines, from_nginx) = std::sync::mpsc::channel::<String>();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                match line {
                    Ok(line) => _ = lines.send(line),
                    Err(_) => return,
                }
            }
        });
        // nginx listens (in ngx_init_cycle), then logs what it runs on (ngx_os_status), the
        // last line of which is `getrlimit(RLIMIT_NOFILE): ...`: from then on, connections wait
        // in its listen queue until it serves them.
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match from_nginx.recv_timeout(left) {
                Ok(line) if line.contains("getrlimit(RLIMIT_NOFILE)") => return Ok(nginx),
                Ok(line) => seen.push(line),
                Err(e) => {
                    let status = nginx.child.try_wait();
                    let log = |name| fs::read_to_string(nginx.dir.0.join(name));
                    let why = format!(
                        "not ready ({e}; {status:?}); its stderr:\n{}\nits error logs:\n{}{}",
                        seen.join("\n"),
                        log("error.log").unwrap_or_default(),
                        log("logs/error.log").unwrap_or_default(),
                    );
                    return Err(match why.contains("Address already in use") {
                        true => NginxFailed::PortTaken(why),
                        false => NginxFailed::Other(why),
                    });
                }
            }
        }
    }
}

/// The status scenario the nginx test runs on both servers: one connection open and idle,
/// then another asking for the page with GET, then with HEAD. Returns the two replies.
#[cfg(unix)]
fn idle_then_status(addr: std::net::SocketAddr) -> (Reply, Reply) {
    let _idle = connect(addr).expect("connect the idle client");
    let asking = connect(addr).expect("connect the asking client");
    let mut reader = BufReader::new(asking.try_clone().unwrap());
    (&asking).write_all(get(STATUS).as_bytes()).unwrap();
    let page = read_reply(&mut reader, false).expect("the page");
    let head = format!("HEAD {STATUS} HTTP/1.1\r\nHost: test\r\n\r\n");
    (&asking).write_all(head.as_bytes()).unwrap();
    let head = read_reply(&mut reader, true).expect("the head of the page");
    (page, head)
}

/// The page of this server and nginx's, in the same scenario on a fresh server each, are the
/// same bytes; the headers this server sends with it include nginx's (with their values, but
/// `Server`'s and `Date`'s).
#[cfg(unix)]
#[test]
fn the_status_page_is_the_same_as_nginx_s() {
    let Some((program, build)) = Nginx::installed() else {
        return;
    };
    if !build.contains("http_stub_status_module") {
        eprintln!(
            "skipped: {} is built without http_stub_status_module",
            program.display()
        );
        return;
    }
    let nginx = Nginx::start(&program, &build, None);
    let (nginx_page, nginx_head) = idle_then_status(nginx.addr);
    drop(nginx);
    let fx = Fixture::start(&["--status", STATUS]);
    let (page, head) = idle_then_status(fx.server.addr());

    assert_eq!(
        String::from_utf8_lossy(&page.body),
        String::from_utf8_lossy(&nginx_page.body),
        "the page differs from nginx's ({})",
        build.lines().next().unwrap_or("nginx")
    );
    // Two connections (one idle), one request (the one asking, writing): nginx's numbers.
    let expected = "Active connections: 2 \nserver accepts handled requests\n 2 2 1 \n\
                    Reading: 0 Writing: 1 Waiting: 1 \n";
    assert_eq!(String::from_utf8_lossy(&page.body), expected);
    for (ours, theirs) in [(&page, &nginx_page), (&head, &nginx_head)] {
        assert_eq!(ours.status, theirs.status);
        for (name, value) in &theirs.headers {
            let mine = ours.header(name);
            let same = match name.to_ascii_lowercase().as_str() {
                "server" | "date" => mine.is_some(),
                _ => mine == Some(value.as_str()),
            };
            assert!(
                same,
                "nginx sends {name}: {value}, this server {mine:?}\nnginx: {:?}\nours: {:?}",
                theirs.headers, ours.headers
            );
        }
    }
}

/// The requests the file comparison with nginx sends, each on a connection of its own: a
/// method, a path, and header lines. Left out, where the two differ on purpose: several
/// ranges (nginx: `multipart/byteranges`; this server: the whole file), a range `a-b` with
/// b < a (nginx: 416; RFC 9110 and this server: the Range ignored, 200), If-Modified-Since
/// later than the file (nginx's default `if_modified_since exact`: 200; RFC 9110 and this
/// server: 304), and If-None-Match matching beside an If-Modified-Since earlier than the file
/// (nginx: both must hold, 200; RFC 9110 and this server: If-None-Match alone, 304).
#[cfg(unix)]
fn file_requests() -> Vec<(&'static str, &'static str, Vec<String>)> {
    let big_etag = format!("\"{MTIME:x}-{BIG:x}\"");
    let small = "/static/small.txt";
    let big = "/static/big.bin";
    let h = |s: &str| s.to_string();
    vec![
        ("GET", small, vec![]),
        ("HEAD", small, vec![]),
        ("GET", big, vec![]),
        ("GET", small, vec![h("Range: bytes=2-5")]),
        ("GET", small, vec![h("Range: bytes=10-")]),
        ("GET", small, vec![h("Range: bytes=-5")]),
        ("GET", small, vec![h("Range: bytes=-100")]),
        ("GET", small, vec![h("Range: bytes=5-1000")]),
        ("HEAD", small, vec![h("Range: bytes=2-5")]),
        ("GET", big, vec![h("Range: bytes=1000000-1000099")]),
        ("GET", big, vec![h("Range: bytes=8000000-")]),
        ("GET", small, vec![h("Range: bytes=20-")]),
        ("GET", small, vec![h("Range: bytes=100-200")]),
        ("GET", small, vec![h("Range: bytes=-0")]),
        ("GET", small, vec![format!("If-None-Match: {SMALL_ETAG}")]),
        ("HEAD", small, vec![format!("If-None-Match: {SMALL_ETAG}")]),
        ("GET", small, vec![h("If-None-Match: *")]),
        (
            "GET",
            small,
            vec![format!("If-None-Match: \"x\", W/{SMALL_ETAG}")],
        ),
        ("GET", small, vec![h("If-None-Match: \"65937d25-15\"")]),
        (
            "GET",
            small,
            vec![format!("If-Modified-Since: {MTIME_DATE}")],
        ),
        (
            "GET",
            small,
            vec![h("If-Modified-Since: Tue, 02 Jan 2024 03:04:04 GMT")],
        ),
        ("GET", small, vec![h("If-Modified-Since: garbage")]),
        (
            "GET",
            small,
            vec![h("If-Modified-Since: Tuesday, 02-Jan-24 03:04:05 GMT")],
        ),
        (
            "GET",
            small,
            vec![h("If-Modified-Since: Tue Jan  2 03:04:05 2024")],
        ),
        (
            "GET",
            small,
            vec![
                h("If-None-Match: \"other\""),
                format!("If-Modified-Since: {MTIME_DATE}"),
            ],
        ),
        (
            "GET",
            small,
            vec![
                format!("If-None-Match: {SMALL_ETAG}"),
                h("Range: bytes=0-3"),
            ],
        ),
        (
            "GET",
            big,
            vec![format!("If-Range: {big_etag}"), h("Range: bytes=0-99")],
        ),
        (
            "GET",
            big,
            vec![format!("If-Range: {MTIME_DATE}"), h("Range: bytes=0-99")],
        ),
        (
            "GET",
            big,
            vec![h("If-Range: \"other\""), h("Range: bytes=0-99")],
        ),
        (
            "GET",
            small,
            vec![
                h("If-Range: Mon, 01 Jan 2024 00:00:00 GMT"),
                h("Range: bytes=0-3"),
            ],
        ),
        ("GET", "/static/empty.txt", vec![h("Range: bytes=0-")]),
        ("GET", "/static/empty.txt", vec![h("Range: bytes=-5")]),
        ("GET", "/static/empty.txt", vec![h("Range: bytes=1-")]),
        ("GET", "/static/./small.txt", vec![]),
        ("GET", "/static//small.txt", vec![]),
        ("GET", "/static/nope/../small.txt", vec![]),
        ("GET", "/static/%2e/small.txt", vec![]),
        ("GET", "/static/missing.txt", vec![]),
        ("GET", "/../static/small.txt", vec![]),
    ]
}

/// Sends `request` on a new connection to `addr` and reads the reply (`None`: the connection
/// closed or was reset without one).
#[cfg(unix)]
fn exchange(addr: std::net::SocketAddr, request: &[u8], head_only: bool) -> Option<Reply> {
    let conn = connect(addr).expect("connect");
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    (&conn).write_all(request).expect("send the request");
    read_reply(&mut reader, head_only).ok()
}

/// The same file requests to nginx and to this server, on the same directory (so the same
/// modification times and sizes): the same status, and the same headers, by name and order
/// (but `Content-Type`, `text/plain` for nginx, with a charset here) and by value (but
/// `Server`, `Date`, `Content-Type`, and the length of an error page); the same bodies for
/// 200 and 206. And the same refusals: duplicate `Content-Length`, a TLS ClientHello.
#[cfg(unix)]
#[test]
fn file_replies_are_the_same_as_nginx_s() {
    let Some((program, build)) = Nginx::installed() else {
        return;
    };
    let fx = Fixture::start(&[]);
    let nginx = Nginx::start(&program, &build, Some(&fx.root));
    let ours = fx.server.addr();
    let name = build.lines().next().unwrap_or("nginx").to_string();
    for (method, path, headers) in file_requests() {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let request = get_with(path, &headers).replacen("GET", method, 1);
        let head_only = method == "HEAD";
        let what = format!("{method} {path} {headers:?}");
        let theirs = exchange(nginx.addr, request.as_bytes(), head_only)
            .unwrap_or_else(|| panic!("{what}: no reply from {name}"));
        let mine = exchange(ours, request.as_bytes(), head_only)
            .unwrap_or_else(|| panic!("{what}: no reply from http_server"));
        assert_eq!(
            mine.status, theirs.status,
            "{what}: status\nnginx: {theirs:?}\nours: {mine:?}"
        );
        assert_eq!(
            header_names(&mine),
            header_names(&theirs),
            "{what}: header names and order"
        );
        for (name, value) in &theirs.headers {
            let same = match name.to_ascii_lowercase().as_str() {
                "server" | "date" | "content-type" => true,
                "content-length" if mine.status >= 400 => true, // the error pages differ
                _ => mine.header(name) == Some(value.as_str()),
            };
            assert!(
                same,
                "{what}: nginx sends {name}: {value}, this server {:?}\nnginx: {:?}\nours: {:?}",
                mine.header(name),
                theirs.headers,
                mine.headers
            );
        }
        if [200, 206].contains(&theirs.status) {
            assert!(mine.body == theirs.body, "{what}: the bodies differ");
        }
    }
    let duplicate = b"GET /static/small.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\
                      Content-Length: 0\r\n\r\n";
    for (what, request) in [
        ("duplicate Content-Length", duplicate.to_vec()),
        ("a TLS ClientHello", client_hello()),
    ] {
        let theirs = exchange(nginx.addr, &request, false);
        let mine = exchange(ours, &request, false);
        let status = |reply: &Option<Reply>| reply.as_ref().map(|reply| reply.status);
        assert_eq!(status(&theirs), Some(400), "{what}: {name}: {theirs:?}");
        assert_eq!(status(&mine), Some(400), "{what}: {mine:?}");
    }
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
        "--status",
    ] {
        assert!(
            text.contains(flag),
            "--help does not mention {flag}:\n{text}"
        );
    }
    let out = common::run_example("http_server", &["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn status_needs_a_path() {
    for args in [
        &["--status"][..],
        &["--status", "nginx_status"],
        &["--status", ""],
        &["--status", "/a?b"],
        &["--status", "--threads", "2"],
    ] {
        let out = common::run_example("http_server", args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--status") && stderr.contains("usage: http_server"),
            "{args:?}: {stderr}"
        );
    }
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
