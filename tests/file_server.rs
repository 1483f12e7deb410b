//! `examples/file_server` end to end: the server and `file_client` run as processes, over
//! loopback, each test with a temporary root of its own. Round trips of empty to 50 MiB files,
//! 20 clients at once, resumed downloads, every way out of the root (symbolic links with every
//! request), interrupted and oversize uploads, a client that stops reading, silent clients (the
//! handshake timeout, and 100 of them at `--max-clients`), protocol garbage, and the
//! descriptor limit.
//!
//! Each example is built on first use (`common::example_binary`), so this file runs alone too:
//! `cargo test --test file_server`.

mod common;
#[path = "../examples/file_server/protocol.rs"]
mod protocol;

use common::{connect, example_binary, ExampleServer, TIMEOUT};
use protocol::{read_body, read_reply, write_body, write_frame, Reply};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

// --- Fixtures --------------------------------------------------------------------------------

/// A temporary directory, removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("selectloop-{what}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir); // a leftover of an earlier run with the same pid
        fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A file server on a temporary root, with a scratch directory beside it for the client's
/// files. Dropped in field order: the server is killed before its directories go.
struct Fixture {
    server: ExampleServer,
    root: PathBuf,
    local: PathBuf,
    _dir: TempDir,
}

impl Fixture {
    fn start(args: &[&str]) -> Fixture {
        Self::start_with(args, |_| {})
    }

    /// As `start`, with `prepare(root)` run before the server starts.
    fn start_with(args: &[&str], prepare: impl FnOnce(&Path)) -> Fixture {
        let dir = TempDir::new("files");
        let (root, local) = (dir.path().join("root"), dir.path().join("local"));
        fs::create_dir(&root).unwrap();
        fs::create_dir(&local).unwrap();
        prepare(&root);
        let root_arg = root.to_str().expect("a UTF-8 temporary path");
        let mut all = vec!["--root", root_arg, "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let server = ExampleServer::start("file_server", &all);
        Fixture {
            server,
            root,
            local,
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Runs `file_client ADDR args...` to completion (its own `--timeout` bounds it).
    fn client(&self, args: &[&str]) -> Output {
        Command::new(example_binary("file_client"))
            .arg(self.addr().to_string())
            .args(args)
            .args(["--timeout", "10"])
            .stdin(Stdio::null())
            .output()
            .expect("run file_client")
    }

    /// As `client`, failing the test unless it succeeds; returns its stdout.
    #[track_caller]
    fn client_ok(&self, args: &[&str]) -> String {
        let out = self.client(args);
        assert!(
            out.status.success(),
            "file_client {args:?} failed ({}): {}\nserver's stderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.server.stderr()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The root's entries and their contents: what a test compares before and after.
    fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        snapshot(&self.root)
    }

    /// Waits until the server's log has a line containing every one of `parts`.
    #[track_caller]
    fn wait_for_log(&self, what: &str, parts: &[&str]) -> String {
        self.server.wait_for_stderr(what, |text| {
            text.lines()
                .any(|line| parts.iter().all(|p| line.contains(p)))
        })
    }
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let content = fs::read(entry.path()).unwrap_or_default(); // a directory: empty
        files.insert(name, content);
    }
    files
}

/// `len` pseudo-random bytes (xorshift64, seeded: the same bytes for the same seed).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A short digest for failure messages (the comparisons are byte for byte).
fn digest(data: &[u8]) -> String {
    let mut h = crc32fast::Hasher::new();
    h.update(data);
    format!("{} bytes, CRC-32 {:08x}", data.len(), h.finalize())
}

#[track_caller]
fn assert_same(what: &str, got: &[u8], expected: &[u8]) {
    if got != expected {
        let at = got.iter().zip(expected).position(|(a, b)| a != b);
        panic!(
            "{what}: got {}, expected {}; first difference at byte {:?}",
            digest(got),
            digest(expected),
            at.unwrap_or(got.len().min(expected.len()))
        );
    }
}

/// A client speaking the protocol directly, on a blocking socket with the tests' timeouts.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: connect(addr).expect("connect to the file server"),
        }
    }

    fn send(&mut self, header: &str) {
        write_frame(&mut self.stream, header.as_bytes()).expect("send a header");
    }

    fn reply(&mut self) -> Reply {
        read_reply(&mut self.stream).expect("a reply")
    }

    fn request(&mut self, header: &str) -> Reply {
        self.send(header);
        self.reply()
    }

    /// `ERR <code>`'s code, or a panic saying what came instead.
    #[track_caller]
    fn refused(&mut self, header: &str) -> String {
        match self.request(header) {
            Reply::Err { code, .. } => code,
            other => panic!("{header:?}: expected ERR, got {other:?}"),
        }
    }

    fn get(&mut self, name: &str, offset: u64) -> io::Result<Vec<u8>> {
        match self.request(&format!("GET {offset} {name}")) {
            Reply::Data(len) => {
                let mut data = Vec::new();
                read_body(&mut self.stream, len, |chunk| {
                    data.extend_from_slice(chunk);
                    Ok(())
                })?;
                Ok(data)
            }
            other => Err(io::Error::other(format!("GET {name}: {other:?}"))),
        }
    }

    /// `LIST`'s body, as text.
    fn list(&mut self) -> String {
        let len = match self.request("LIST") {
            Reply::Data(len) => len,
            other => panic!("LIST: {other:?}"),
        };
        let mut text = Vec::new();
        read_body(&mut self.stream, len, |chunk| {
            text.extend_from_slice(chunk);
            Ok(())
        })
        .expect("LIST's body");
        String::from_utf8(text).expect("a UTF-8 listing")
    }

    /// True if the server has not closed the connection (nor sent anything on it): a read
    /// would block.
    fn is_open(&self) -> bool {
        self.stream.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1];
        let open =
            matches!((&self.stream).read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock);
        self.stream.set_nonblocking(false).unwrap();
        open
    }

    fn put(&mut self, name: &str, data: &[u8]) -> Reply {
        match self.request(&format!("PUT {} {name}", data.len())) {
            Reply::Ready => {}
            other => return other,
        }
        write_body(&mut self.stream, &mut &data[..], data.len() as u64, |_| {}).expect("body");
        self.reply()
    }

    /// Reads until the server closes the connection (end of file or a reset), within
    /// [`TIMEOUT`] of silence; returns how many bytes came first.
    #[track_caller]
    fn expect_closed(&mut self, what: &str) -> usize {
        let (mut buf, mut total) = (vec![0u8; 64 << 10], 0);
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return total,
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => return total,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("{what}: the server did not close the connection: {e}"),
            }
        }
    }
}

/// Polls `done` every few milliseconds until it holds, failing after [`TIMEOUT`] with `what`:
/// for conditions only the file system shows (no event to wait on).
#[track_caller]
fn poll_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// The server's peak resident memory (VmHWM), in KiB.
#[cfg(target_os = "linux")]
fn peak_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

// --- Round trips -----------------------------------------------------------------------------

/// Empty, 1-byte, odd-sized and 50 MiB binary files up with `file_client put`, listed, and
/// down with `file_client get`, compared byte for byte; the server's memory stays bounded.
#[test]
fn round_trips_through_file_client() {
    let fx = Fixture::start(&[]);
    let files: [(&str, Vec<u8>); 4] = [
        ("empty", Vec::new()),
        ("one byte", vec![0xff]),
        ("odd.bin", random_bytes(1_000_003, 1)),
        ("fifty.bin", random_bytes(50 << 20, 2)),
    ];
    for (name, data) in &files {
        let path = fx.local.join(format!("up-{name}"));
        fs::write(&path, data).unwrap();
        let out = fx.client_ok(&["put", path.to_str().unwrap(), "--as", name]);
        assert!(out.contains("CRC-32 ok"), "{out}");
        assert_same(
            &format!("{name} as stored"),
            &fs::read(fx.root.join(name)).unwrap(),
            data,
        );
    }
    let listing = fx.client_ok(&["list"]);
    let expected: String = {
        let mut sorted: Vec<_> = files.iter().map(|(n, d)| (n, d.len())).collect();
        sorted.sort();
        sorted
            .iter()
            .map(|(n, len)| format!("{len} {n}\n"))
            .collect()
    };
    assert_eq!(listing, expected);
    for (name, data) in &files {
        let out = fx.local.join(format!("down-{name}"));
        fx.client_ok(&["get", name, "--out", out.to_str().unwrap()]);
        assert_same(
            &format!("{name} downloaded"),
            &fs::read(&out).unwrap(),
            data,
        );
        assert!(!out.with_file_name(format!("down-{name}.part")).exists());
    }
    assert_eq!(fx.snapshot().len(), files.len(), "only the files uploaded");
    #[cfg(target_os = "linux")]
    {
        let peak = peak_rss_kib(fx.server.pid());
        eprintln!("file_server: peak RSS {peak} KiB after 50 MiB up and down");
        assert!(peak < 32 << 10, "the server's peak RSS is {peak} KiB");
    }
}

/// 20 clients, each uploading a file of its own and downloading it again, all at once.
#[test]
fn twenty_clients_at_once() {
    let fx = Fixture::start(&[]);
    let addr = fx.addr();
    let clients: Vec<_> = (0..20)
        .map(|i| {
            thread::spawn(move || {
                let data = random_bytes((i + 1) * 100_003, i as u64 + 10);
                let name = format!("client {i}.bin");
                let mut raw = Raw::connect(addr);
                assert_eq!(raw.put(&name, &data), Reply::Ok(Some(data.len() as u64)));
                let got = raw.get(&name, 0).expect("download");
                assert_same(&name, &got, &data);
                assert_eq!(raw.request("QUIT"), Reply::Ok(None));
                (name, data)
            })
        })
        .collect();
    for client in clients {
        let (name, data) = client.join().expect("a client thread");
        assert_same(&name, &fs::read(fx.root.join(&name)).unwrap(), &data);
    }
}

/// An interrupted download resumes from the end of its `.part` file, and the offsets' edges.
#[test]
fn download_resumes_from_an_offset() {
    let fx = Fixture::start(&[]);
    let data = random_bytes(3_000_017, 3);
    fs::write(fx.root.join("big.bin"), &data).unwrap();

    // A download cut off: the server sends, the client reads part of it and goes away.
    let mut raw = Raw::connect(fx.addr());
    let Reply::Data(len) = raw.request("GET 0 big.bin") else {
        panic!("no DATA")
    };
    assert_eq!(len, data.len() as u64);
    let out = fx.local.join("big.bin");
    let kept = 1_234_567;
    fs::write(out.with_file_name("big.bin.part"), &data[..kept]).unwrap();
    drop(raw);

    let printed = fx.client(&["get", "big.bin", "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&printed.stderr);
    assert!(printed.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("resuming at byte {kept}")),
        "{stderr}"
    );
    assert_same("the resumed download", &fs::read(&out).unwrap(), &data);
    fx.wait_for_log("the resumed GET", &[&format!("GET {kept} big.bin: sent")]);

    let mut raw = Raw::connect(fx.addr());
    assert_same("GET at the end", &raw.get("big.bin", len).unwrap(), b"");
    assert_same(
        "GET of the last byte",
        &raw.get("big.bin", len - 1).unwrap(),
        &data[data.len() - 1..],
    );
    assert_eq!(raw.refused(&format!("GET {} big.bin", len + 1)), "range");
    assert_eq!(raw.refused("GET 18446744073709551615 big.bin"), "range");

    // A .part longer than the file: a clear refusal, and the .part is left alone.
    let small = fx.local.join("small");
    fs::write(fx.root.join("small"), b"abc").unwrap();
    fs::write(small.with_file_name("small.part"), b"abcdef").unwrap();
    let printed = fx.client(&["get", "small", "--out", small.to_str().unwrap()]);
    assert_eq!(printed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&printed.stderr);
    assert!(stderr.contains("delete it to download anew"), "{stderr}");
}

// --- Security --------------------------------------------------------------------------------

/// Every way out of the root is refused by GET, PUT and DELETE, and nothing outside the root
/// (nor inside it) is read or written.
#[test]
fn names_that_escape_the_root_are_refused() {
    let outside = TempDir::new("outside");
    let secret = outside.path().join("secret");
    fs::write(&secret, b"not for clients").unwrap();
    let secret_str = secret.to_str().unwrap().to_string();
    let fx = Fixture::start_with(&[], |root| {
        fs::write(root.join("ok.txt"), b"served").unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("sub").join("inner"), b"in a subdirectory").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::symlink;
            symlink(&secret, root.join("link-out")).unwrap();
            symlink(secret.parent().unwrap(), root.join("dir-out")).unwrap();
            symlink("ok.txt", root.join("link-in")).unwrap();
        }
    });
    let long = "x".repeat(256);
    let names: Vec<&str> = vec![
        "..",
        ".",
        "../secret",
        "../../etc/passwd",
        "/etc/passwd",
        &secret_str,
        "sub/inner",
        "sub/../ok.txt",
        "..\\secret",
        "sub\\inner",
        "C:secret",
        "C:\\Windows\\win.ini",
        "\\\\server\\share\\file",
        "ok.txt\0.jpg",
        "a\nb",
        "CON",
        "nul.txt",
        "com1",
        "LPT9.log",
        "ok.txt.",
        "ok.txt ",
        ".hidden",
        ".upload-1-1.part",
        "file:stream",
        "what?",
        &long,
        "",
    ];
    let before = fx.snapshot();
    let outside_before = snapshot(outside.path());
    let mut raw = Raw::connect(fx.addr());
    for name in &names {
        for request in [
            format!("GET 0 {name}"),
            format!("PUT 5 {name}"),
            format!("DELETE {name}"),
        ] {
            let code = raw.refused(&request);
            assert!(
                code == "bad-name" || (name.is_empty() && code == "bad-request"),
                "{request:?}: refused with {code}, expected bad-name"
            );
        }
    }
    #[cfg(unix)]
    {
        assert_eq!(raw.refused("GET 0 link-out"), "bad-name", "a link out");
        assert_eq!(raw.refused("DELETE link-out"), "bad-name", "a link out");
        assert_eq!(
            raw.refused("GET 0 dir-out"),
            "bad-name",
            "a link to a directory out"
        );
        assert_same("a link inside", &raw.get("link-in", 0).unwrap(), b"served");
        let listing = raw.get("ok.txt", 0).unwrap();
        assert_same("ok.txt", &listing, b"served");
    }
    assert_eq!(raw.refused("GET 0 sub"), "not-found", "a directory");
    assert_eq!(raw.refused("PUT 1 sub"), "bad-name", "a directory");
    match raw.request("LIST") {
        Reply::Data(len) => {
            let mut text = Vec::new();
            read_body(&mut raw.stream, len, |c| {
                text.extend_from_slice(c);
                Ok(())
            })
            .unwrap();
            let text = String::from_utf8(text).unwrap();
            let expected = if cfg!(unix) {
                "6 link-in\n6 ok.txt\n"
            } else {
                "6 ok.txt\n"
            };
            assert_eq!(text, expected, "LIST shows only what may be served");
        }
        other => panic!("LIST: {other:?}"),
    }
    assert_eq!(raw.request("QUIT"), Reply::Ok(None));
    assert_eq!(fx.snapshot(), before, "the root changed");
    assert_eq!(
        snapshot(outside.path()),
        outside_before,
        "outside the root changed"
    );
}

/// Symbolic links, with every verb. A link leading out of the root — to a file, to a
/// directory, through another link, or to nothing — is refused by `GET`, `PUT` and `DELETE`
/// with `bad-name` (`PUT` onto it used to be accepted, replacing the link) and left out of
/// `LIST`. A link to a file inside the root is listed and served; `PUT` replaces the link
/// itself with the new file, and `DELETE` removes the link: the file it led to is untouched.
/// Nothing outside the root is read, written or removed.
#[cfg(unix)]
#[test]
fn links_out_of_the_root_are_refused_by_every_verb() {
    use std::os::unix::fs::symlink;
    let outside = TempDir::new("outside");
    let secret = outside.path().join("secret");
    fs::write(&secret, b"not for clients").unwrap();
    let missing = outside.path().join("missing");
    let fx = Fixture::start_with(&[], |root| {
        fs::write(root.join("ok.txt"), b"served").unwrap();
        symlink(&secret, root.join("link-out")).unwrap();
        symlink(outside.path(), root.join("dir-out")).unwrap();
        symlink("link-out", root.join("via-link")).unwrap(); // inside, then out
        symlink(&missing, root.join("to-nothing")).unwrap();
        symlink("ok.txt", root.join("link-in")).unwrap();
        symlink("ok.txt", root.join("link-in-2")).unwrap();
    });
    let outside_before = snapshot(outside.path());
    let is_link = |name: &str| {
        fs::symlink_metadata(fx.root.join(name)).is_ok_and(|m| m.file_type().is_symlink())
    };
    let mut raw = Raw::connect(fx.addr());

    assert_eq!(raw.list(), "6 link-in\n6 link-in-2\n6 ok.txt\n", "LIST");
    for name in ["link-out", "dir-out", "via-link"] {
        for request in [
            format!("GET 0 {name}"),
            format!("PUT 5 {name}"),
            format!("DELETE {name}"),
        ] {
            assert_eq!(raw.refused(&request), "bad-name", "{request}");
        }
        assert!(is_link(name), "{name} is no longer the link it was");
    }
    assert_eq!(
        raw.refused("PUT 5 to-nothing"),
        "bad-name",
        "PUT onto a link to nothing"
    );
    assert_eq!(raw.refused("GET 0 to-nothing"), "not-found");
    assert_eq!(raw.refused("DELETE to-nothing"), "not-found");
    assert!(is_link("to-nothing"));
    assert!(
        !missing.exists(),
        "PUT wrote through a link to outside the root"
    );
    assert_eq!(
        raw.list(),
        "6 link-in\n6 link-in-2\n6 ok.txt\n",
        "LIST after the refusals"
    );

    // A link inside the root: served; PUT replaces the link, DELETE removes it.
    assert_same("GET link-in", &raw.get("link-in", 0).unwrap(), b"served");
    assert_eq!(raw.put("link-in", b"new"), Reply::Ok(Some(3)));
    assert!(!is_link("link-in"), "PUT left the link in place");
    assert_same("link-in now", &raw.get("link-in", 0).unwrap(), b"new");
    assert_same(
        "ok.txt",
        &fs::read(fx.root.join("ok.txt")).unwrap(),
        b"served",
    );
    assert_eq!(raw.request("DELETE link-in-2"), Reply::Ok(None));
    assert!(!fx.root.join("link-in-2").exists(), "DELETE left the link");
    assert_same("ok.txt", &raw.get("ok.txt", 0).unwrap(), b"served");
    assert_eq!(raw.list(), "3 link-in\n6 ok.txt\n", "LIST at the end");
    assert_eq!(raw.request("QUIT"), Reply::Ok(None));

    assert_eq!(
        snapshot(outside.path()),
        outside_before,
        "outside the root changed"
    );
    let names: Vec<_> = fx.snapshot().into_keys().collect();
    let expected = [
        "dir-out",
        "link-in",
        "link-out",
        "ok.txt",
        "to-nothing",
        "via-link",
    ];
    assert_eq!(names, expected, "the root's entries");
}

/// A client gone mid-upload (its socket closed, reset, or the process killed) leaves no file
/// and the previous version intact; so does a body whose CRC does not match.
#[test]
fn interrupted_uploads_leave_the_old_version() {
    // Under Wine a killed process's sockets can stay open for a long while (wineserver keeps
    // a descriptor of each), so its upload is not interrupted until the idle timeout ends it.
    let fx = Fixture::start(if cfg!(windows) {
        &["--idle-timeout", "3"]
    } else {
        &[]
    });
    let v1 = random_bytes(100_000, 4);
    let mut raw = Raw::connect(fx.addr());
    assert_eq!(raw.put("doc.bin", &v1), Reply::Ok(Some(v1.len() as u64)));
    let before = fx.snapshot();

    // Closed after 3 MiB of 10.
    let v2 = random_bytes(10 << 20, 5);
    let mut raw = Raw::connect(fx.addr());
    assert_eq!(
        raw.request(&format!("PUT {} doc.bin", v2.len())),
        Reply::Ready
    );
    for chunk in v2[..3 << 20].chunks(protocol::CHUNK) {
        write_frame(&mut raw.stream, chunk).unwrap();
    }
    raw.stream.shutdown(Shutdown::Both).unwrap();
    drop(raw);
    fx.wait_for_log(
        "the closed upload",
        &["PUT 10485760 doc.bin: interrupted at", "nothing stored"],
    );
    assert_eq!(fx.snapshot(), before, "a closed upload changed the root");

    // Reset (SO_LINGER 0) in the middle of a chunk.
    let raw = Raw::connect(fx.addr());
    let mut stream = raw.stream;
    write_frame(&mut stream, format!("PUT {} doc.bin", v2.len()).as_bytes()).unwrap();
    assert_eq!(read_reply(&mut stream).unwrap(), Reply::Ready);
    stream.write_all(&(1000u32).to_be_bytes()).unwrap();
    stream.write_all(&v2[..500]).unwrap();
    let socket = socket2::Socket::from(stream);
    socket.set_linger(Some(Duration::ZERO)).unwrap();
    drop(socket);
    fx.server
        .wait_for_stderr("the reset upload to be logged", |text| {
            text.matches("interrupted at").count() == 2
        });
    assert_eq!(fx.snapshot(), before, "a reset upload changed the root");

    // A body whose trailer does not match.
    let mut raw = Raw::connect(fx.addr());
    assert_eq!(raw.request("PUT 3 doc.bin"), Reply::Ready);
    write_frame(&mut raw.stream, b"abc").unwrap();
    write_frame(&mut raw.stream, b"CRC 00000000").unwrap();
    match raw.reply() {
        Reply::Err { code, .. } => assert_eq!(code, "checksum"),
        other => panic!("a bad CRC: {other:?}"),
    }
    assert_eq!(fx.snapshot(), before, "a corrupted upload changed the root");
    assert_eq!(raw.request("QUIT"), Reply::Ok(None)); // and the connection went on

    // file_client killed mid-upload (a file large enough to be sent for a while).
    let big = fx.local.join("big");
    fs::write(&big, random_bytes(128 << 20, 6)).unwrap();
    let mut client = Command::new(example_binary("file_client"))
        .arg(fx.addr().to_string())
        .args(["put", big.to_str().unwrap(), "--as", "doc.bin"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start file_client");
    let root = fx.root.clone();
    poll_until("the upload's temporary file to grow", || {
        fs::read_dir(&root).unwrap().flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(".upload-") && e.metadata().is_ok_and(|m| m.len() > 0)
        })
    });
    client.kill().expect("kill file_client");
    let status = client.wait().unwrap();
    assert!(
        !status.success(),
        "file_client finished before it was killed"
    );
    fx.server
        .wait_for_stderr("the killed upload to be logged", |text| {
            text.matches("interrupted at").count() == 3
        });
    assert_eq!(fx.snapshot(), before, "a killed upload changed the root");
}

/// An upload replaces the old version at once and whole (a rename over it), even while the old
/// version is being downloaded: that download gets the old version, whole. Windows may refuse
/// to replace an open file (Wine does): the upload is then refused, and the old version stays.
#[test]
fn an_upload_replaces_the_old_version_even_while_it_is_read() {
    let fx = Fixture::start(&[]);
    let (v1, v2) = (random_bytes(8 << 20, 11), random_bytes(123_457, 12));
    let mut reader = Raw::connect(fx.addr());
    assert_eq!(reader.put("doc.bin", &v1), Reply::Ok(Some(v1.len() as u64)));
    // The reader starts a download and holds it (the server holds the old file open).
    assert_eq!(
        reader.request("GET 0 doc.bin"),
        Reply::Data(v1.len() as u64)
    );
    let mut writer = Raw::connect(fx.addr());
    let new = match writer.put("doc.bin", &v2) {
        Reply::Ok(Some(n)) if n == v2.len() as u64 => &v2,
        Reply::Err { code, message } if cfg!(windows) && code == "io" => {
            assert!(
                message.contains("cannot be replaced on Windows"),
                "{message}"
            );
            &v1
        }
        other => panic!("the upload: {other:?}"),
    };
    assert_same("the version now", &writer.get("doc.bin", 0).unwrap(), new);
    let mut old = Vec::new();
    read_body(&mut reader.stream, v1.len() as u64, |chunk| {
        old.extend_from_slice(chunk);
        Ok(())
    })
    .expect("the old version's body");
    assert_same("the download begun before the upload", &old, &v1);
    let names: Vec<_> = fx.snapshot().into_keys().collect();
    assert_eq!(names, ["doc.bin"]);
}

/// Uploads over `--max-upload` are refused before any byte is stored; at the limit they work.
/// A body whose chunks overrun its announced size ends the connection, storing nothing.
#[test]
fn uploads_over_the_limit_are_refused() {
    let fx = Fixture::start(&["--max-upload", "1000"]);
    let mut raw = Raw::connect(fx.addr());
    assert_eq!(raw.refused("PUT 1001 big"), "too-large");
    assert_eq!(raw.refused("PUT 9223372036854775808 big"), "too-large"); // 2^63
    assert_eq!(raw.refused("PUT 18446744073709551616 big"), "bad-request"); // 2^64
    assert!(fx.snapshot().is_empty(), "{:?}", fx.snapshot().keys());
    assert_eq!(raw.put("big", &[7; 1000]), Reply::Ok(Some(1000)));

    assert_eq!(raw.request("PUT 10 other"), Reply::Ready);
    write_frame(&mut raw.stream, &[1; 11]).unwrap(); // 11 bytes of a 10-byte body
    match raw.reply() {
        Reply::Err { code, .. } => assert_eq!(code, "bad-request"),
        other => panic!("an overrunning chunk: {other:?}"),
    }
    raw.expect_closed("an overrunning chunk");
    let names: Vec<_> = fx.snapshot().into_keys().collect();
    assert_eq!(names, ["big"]);
}

// --- Slow and hostile clients ----------------------------------------------------------------

/// A client that stops reading mid-download stalls no one, and the send timeout drops it.
#[test]
fn a_client_that_stops_reading_is_dropped_and_stalls_no_one() {
    let fx = Fixture::start(&["--send-timeout", "3"]);
    fs::write(fx.root.join("huge.bin"), random_bytes(64 << 20, 7)).unwrap();
    let small = random_bytes(100_001, 8);
    fs::write(fx.root.join("small.bin"), &small).unwrap();

    let mut stuck = Raw::connect(fx.addr());
    assert_eq!(stuck.request("GET 0 huge.bin"), Reply::Data(64 << 20)); // and reads no more
    let mut other = Raw::connect(fx.addr());
    for _ in 0..20 {
        assert_same("small.bin", &other.get("small.bin", 0).unwrap(), &small);
    }
    let log = fx.wait_for_log("the stuck client's end", &["closed: send timeout"]);
    // Served while the stuck client was still connected: its end is logged after them.
    let served = log
        .rfind("GET 0 small.bin: sent")
        .expect("the small downloads logged");
    let dropped = log
        .find("GET 0 huge.bin: interrupted")
        .expect("the GET logged");
    assert!(
        served < dropped,
        "the others waited for the stuck client:\n{log}"
    );
    let got = stuck.expect_closed("a client that stopped reading");
    assert!(got < 64 << 20, "the stuck client got all {got} bytes");
}

/// An idle client is closed after `--idle-timeout`, whether it sent requests or not.
#[test]
fn idle_clients_are_closed() {
    let fx = Fixture::start(&["--idle-timeout", "1"]);
    let (mut a, mut b) = (Raw::connect(fx.addr()), Raw::connect(fx.addr()));
    assert_eq!(a.list(), "");
    a.expect_closed("an idle client");
    b.expect_closed("an idle client");
    let a_addr = a.stream.local_addr().unwrap().to_string();
    fx.wait_for_log("the idle timeout", &[&a_addr, "idle timeout"]);
    let mut c = Raw::connect(fx.addr());
    assert_eq!(c.list(), "");
}

/// 100 clients that say nothing do not lock a new client out: at `--max-clients`, the server
/// closes the client idle longest (here the first of them, idle since it connected) and
/// serves the new one at once; the next newcomer (`file_client`) makes room the same way,
/// by closing the second silent client (the first newcomer's last request is more recent);
/// the others stay connected.
#[test]
fn a_full_server_closes_its_longest_idle_client_to_serve_a_new_one() {
    let fx = Fixture::start(&["--max-clients", "100", "--handshake-timeout", "60"]);
    let mut silent: Vec<Raw> = (0..100).map(|_| Raw::connect(fx.addr())).collect();
    let mut newcomer = Raw::connect(fx.addr());
    assert_eq!(newcomer.list(), "", "the 101st client");

    let first = silent[0].stream.local_addr().unwrap().to_string();
    let got = silent[0].expect_closed("the longest idle client");
    assert_eq!(got, 0, "the closed client was sent something");
    fx.wait_for_log(
        "the first silent client's eviction",
        &[&first, "to make room"],
    );

    let listing = fx.client_ok(&["list"]);
    assert_eq!(listing, "", "file_client's list");
    let second = silent[1].stream.local_addr().unwrap().to_string();
    silent[1].expect_closed("the second longest idle client");
    fx.wait_for_log(
        "the second silent client's eviction",
        &[&second, "to make room"],
    );

    assert_eq!(newcomer.list(), "", "the first newcomer, still served");
    for (i, peer) in silent.iter().enumerate().skip(2) {
        assert!(peer.is_open(), "silent client {i} was closed too");
    }
}

/// Only when every client is in the middle of a transfer (an upload being received, a
/// download being sent) is a newcomer told `ERR busy`; once one of them waits for a request
/// again, the next newcomer is served, and that one is closed.
#[test]
fn a_full_server_in_mid_transfer_tells_a_new_client_busy() {
    let fx = Fixture::start(&["--max-clients", "2"]);
    let huge = random_bytes(32 << 20, 13);
    fs::write(fx.root.join("huge.bin"), &huge).unwrap();
    let mut uploader = Raw::connect(fx.addr());
    assert_eq!(uploader.request("PUT 3 up.txt"), Reply::Ready); // the body waits
    let mut reader = Raw::connect(fx.addr());
    assert_eq!(reader.request("GET 0 huge.bin"), Reply::Data(32 << 20)); // not read yet
    let mut third = Raw::connect(fx.addr());
    match third.reply() {
        Reply::Err { code, .. } => assert_eq!(code, "busy"),
        other => panic!("a third client: {other:?}"),
    }
    third.expect_closed("a client told busy");

    write_body(&mut uploader.stream, &mut &b"abc"[..], 3, |_| {}).unwrap();
    assert_eq!(uploader.reply(), Reply::Ok(Some(3)));
    let mut fourth = Raw::connect(fx.addr());
    assert_eq!(
        fourth.list(),
        "33554432 huge.bin\n3 up.txt\n",
        "a fourth client"
    );
    uploader.expect_closed("the client that finished its upload, closed to make room");

    let mut got = Vec::with_capacity(huge.len());
    read_body(&mut reader.stream, huge.len() as u64, |chunk| {
        got.extend_from_slice(chunk);
        Ok(())
    })
    .expect("the download, not interrupted");
    assert_same("the download", &got, &huge);
}

/// `--handshake-timeout`: a client that has not sent a complete request that long after it
/// connected is closed, and logged — one that sent nothing, half a header, or only garbage —
/// while a client that sent one stays, however long it then waits.
#[test]
fn clients_without_a_request_are_closed_after_the_handshake_timeout() {
    let fx = Fixture::start(&["--handshake-timeout", "1"]);
    let mut talker = Raw::connect(fx.addr());
    assert_eq!(talker.list(), "");
    let mut silent = Raw::connect(fx.addr());
    let mut half = Raw::connect(fx.addr());
    half.stream.write_all(&[0, 0, 0, 4, b'L', b'I']).unwrap();
    let mut garbage = Raw::connect(fx.addr());
    assert_eq!(garbage.refused("HELLO"), "bad-request");

    let addr = silent.stream.local_addr().unwrap().to_string();
    assert_eq!(silent.expect_closed("a silent client"), 0);
    fx.wait_for_log("the silent client's close", &[&addr, "--handshake-timeout"]);
    half.expect_closed("a client that sent half a header");
    garbage.expect_closed("a client that sent only garbage");
    // Connected before the others, so past its own handshake time: its request counted.
    assert!(
        talker.is_open(),
        "the client that sent a request was closed"
    );
    assert_eq!(talker.list(), "");
}

/// Garbage gets an error reply or a close, never a crash, and never a large allocation.
#[test]
fn protocol_garbage_gets_an_error_or_a_close() {
    let mut fx = Fixture::start(&[]);
    // Requests that are not: replied to, and the connection goes on.
    let mut raw = Raw::connect(fx.addr());
    for header in [
        "", "HELLO", "LIST x", "GET", "GET x y", "GET -1 a", "GET +1 a", "PUT 1",
    ] {
        assert_eq!(raw.refused(header), "bad-request", "{header:?}");
    }
    write_frame(&mut raw.stream, &[0xff, 0xfe, 0x00]).unwrap();
    assert!(matches!(raw.reply(), Reply::Err { code, .. } if code == "bad-request"));
    write_frame(&mut raw.stream, &vec![b'A'; 5000]).unwrap(); // a header over 4096
    assert!(matches!(raw.reply(), Reply::Err { code, .. } if code == "bad-request"));
    assert_eq!(raw.request("LIST"), Reply::Data(0));

    // A frame claiming 4 GiB - 1: closed at its header, nothing allocated for it.
    let mut raw = Raw::connect(fx.addr());
    raw.stream.write_all(&u32::MAX.to_be_bytes()).unwrap();
    raw.expect_closed("a frame of 4 GiB");

    // A truncated frame, then end of file.
    let mut raw = Raw::connect(fx.addr());
    raw.stream.write_all(&[0, 0, 0, 10, b'L', b'I']).unwrap();
    raw.stream.shutdown(Shutdown::Write).unwrap();
    raw.expect_closed("a truncated frame");

    // Random bytes.
    let mut raw = Raw::connect(fx.addr());
    let junk = random_bytes(256 << 10, 9);
    let mut sender = raw.stream.try_clone().unwrap();
    let writer = thread::spawn(move || sender.write_all(&junk));
    raw.expect_closed("random bytes");
    let _ = writer.join().unwrap(); // the server may close before taking it all

    // A request sent while a reply is still streaming.
    fs::write(fx.root.join("f"), random_bytes(16 << 20, 10)).unwrap();
    let mut raw = Raw::connect(fx.addr());
    raw.send("GET 0 f");
    raw.send("LIST");
    raw.expect_closed("a request in the middle of a reply");

    let mut raw = Raw::connect(fx.addr());
    assert_eq!(raw.request("LIST"), Reply::Data(11)); // "16777216 f\n"
    #[cfg(target_os = "linux")]
    {
        let peak = peak_rss_kib(fx.server.pid());
        assert!(peak < 16 << 10, "the server's peak RSS is {peak} KiB");
    }
    assert!(fx.server.exited().is_none(), "{}", fx.server.stderr());
}

/// Temporary files a killed server left are removed when it starts again.
#[test]
fn a_restarted_server_removes_unfinished_uploads() {
    let fx = Fixture::start_with(&[], |root| {
        fs::write(root.join(".upload-1-1.part"), b"half").unwrap();
        fs::write(root.join("keep"), b"kept").unwrap();
    });
    fx.wait_for_log("the cleanup", &["removed 1 unfinished upload"]);
    let names: Vec<_> = fx.snapshot().into_keys().collect();
    assert_eq!(names, ["keep"]);
}

/// Under `ulimit -n 64`, 100 clients: the file server serves those its descriptors allow (a
/// refused `DELETE` each), does not spin while the others wait, and serves a new client once
/// they leave (see `common::descriptor_limit`).
#[cfg(target_os = "linux")]
#[test]
fn the_descriptor_limit_is_survived() {
    let dir = TempDir::new("fd-limit");
    let root = dir.path().to_str().expect("a UTF-8 temporary path");
    let args = ["--root", root, "--listen", "127.0.0.1:0"];
    common::descriptor_limit("file_server", &args, |mut conn, i| {
        write_frame(&mut conn, format!("DELETE missing-{i}").as_bytes())?;
        match read_reply(&mut conn)? {
            Reply::Err { code, .. } if code == "not-found" => Ok(()),
            other => Err(io::Error::other(format!("DELETE missing-{i}: {other:?}"))),
        }
    });
}
