//! `examples/chat_server.rs` as a process, with several clients: names, commands, notices,
//! and the clients a chat server meets — one that never reads (dropped at its cap, the others
//! served in full), one that disconnects in the middle of a line, one that sends a 1 MiB line.
//! Its command line and SIGTERM are tested with the other examples (`tests/examples.rs`).

mod common;

use common::{tail, ExampleServer, TIMEOUT};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;

/// A chat client: a connection and a reader of its lines.
struct Client {
    conn: TcpStream,
    lines: BufReader<TcpStream>,
}

impl Client {
    /// Connects, and reads the welcome line, which names the client.
    fn join(server: &ExampleServer) -> (Client, String) {
        let conn = common::connect(server.addr()).expect("connect");
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        let lines = BufReader::new(conn.try_clone().unwrap());
        let mut client = Client { conn, lines };
        let welcome = client.line();
        let name = welcome
            .strip_prefix("* welcome, ")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("not a welcome line: {welcome:?}"))
            .to_string();
        (client, name)
    }

    fn say(&mut self, line: &str) {
        self.conn.write_all(line.as_bytes()).expect("send");
        self.conn.write_all(b"\n").expect("send");
    }

    /// The next line, without its newline.
    #[track_caller]
    fn line(&mut self) -> String {
        let mut line = String::new();
        match self.lines.read_line(&mut line) {
            Ok(0) => panic!("end of file, expected a line"),
            Ok(_) => line.trim_end_matches('\n').to_string(),
            Err(e) => panic!("expected a line: {e}"),
        }
    }

    /// Reads until end of file (or a reset); returns what came.
    fn rest(&mut self) -> String {
        let mut rest = String::new();
        let _ = self.lines.read_to_string(&mut rest);
        rest
    }
}

fn start() -> ExampleServer {
    ExampleServer::start("chat_server", &["127.0.0.1:0"])
}

#[test]
fn lines_go_to_the_others_with_names_notices_and_commands() {
    let server = start();
    let (mut a, a_name) = Client::join(&server);
    let (mut b, b_name) = Client::join(&server);
    assert_ne!(a_name, b_name, "two guests, two names");
    assert_eq!(a.line(), format!("* {b_name} joined"));

    a.say("/nick alice");
    assert_eq!(a.line(), format!("* {a_name} is now alice"));
    assert_eq!(b.line(), format!("* {a_name} is now alice"));
    b.say("/nick alice");
    assert_eq!(b.line(), "* alice is taken");
    b.say("/nick two words");
    assert_eq!(b.line(), "* a name is 1 to 32 letters, digits, _ or -");
    b.say("/shout hi");
    assert_eq!(b.line(), "* unknown command; try /nick NAME or /quit");

    a.say("hello\r"); // a telnet line: the \r goes
    assert_eq!(b.line(), "alice: hello");
    b.say("hi alice");
    assert_eq!(a.line(), format!("{b_name}: hi alice"), "not to its sender");

    let (mut c, c_name) = Client::join(&server);
    assert_eq!(a.line(), format!("* {c_name} joined"));
    assert_eq!(b.line(), format!("* {c_name} joined"));
    c.say("/quit");
    assert_eq!(c.line(), "* bye");
    assert_eq!(c.rest(), "", "end of file after bye");
    assert_eq!(a.line(), format!("* {c_name} left"));
    assert_eq!(b.line(), format!("* {c_name} left"));
}

/// A client that disconnects in the middle of a line: the part it sent is passed on (as
/// Python's `readline` returns a last line without its newline), then it leaves.
#[test]
fn a_client_that_disconnects_mid_line_leaves_cleanly() {
    let server = start();
    let (mut a, _) = Client::join(&server);
    let (mut b, b_name) = Client::join(&server);
    assert_eq!(a.line(), format!("* {b_name} joined"));
    b.conn.write_all(b"half a li").unwrap();
    b.conn.shutdown(Shutdown::Write).unwrap();
    assert_eq!(a.line(), format!("{b_name}: half a li"));
    assert_eq!(a.line(), format!("* {b_name} left"));
    assert_eq!(b.rest(), "");
    a.say("still here");
    let (mut c, c_name) = Client::join(&server);
    assert_eq!(a.line(), format!("* {c_name} joined"));
    c.say("and me");
    assert_eq!(a.line(), format!("{c_name}: and me"));
}

/// A 1 MiB line is over the 4 KiB limit: its sender is dropped (logged), the others are told it
/// left, and the room goes on.
#[test]
fn a_client_sending_a_1_mib_line_is_dropped_and_the_room_goes_on() {
    let server = start();
    let (mut a, _) = Client::join(&server);
    let (mut big, big_name) = Client::join(&server);
    assert_eq!(a.line(), format!("* {big_name} joined"));
    let line = vec![b'x'; 1 << 20];
    // The server may close before it has read the whole line: a reset here is expected.
    let _ = big
        .conn
        .write_all(&line)
        .and_then(|()| big.conn.write_all(b"\n"));
    assert_eq!(a.line(), format!("* {big_name} left"));
    server.wait_for_stderr("the drop logged", |err| {
        err.contains(&format!("{big_name} dropped"))
    });
    let (mut c, c_name) = Client::join(&server);
    assert_eq!(a.line(), format!("* {c_name} joined"));
    c.say("small");
    assert_eq!(a.line(), format!("{c_name}: small"));
}

/// A client that never reads: once 1 MiB waits for it, it is dropped (logged), while a client
/// that reads gets every line, in order. The sender sends in batches of 400 KB and waits for
/// the reader to have them, so that the reader, however slow its thread on a loaded machine,
/// is never a batch behind, while the never-reader falls behind by all of them.
#[test]
fn a_client_that_never_reads_is_dropped_and_the_others_get_everything() {
    const BATCH: usize = 100;
    const LINES: usize = 40 * BATCH;
    const LEN: usize = 4000; // 16 MB in all: more than the cap plus the socket buffers
    let server = start();
    let (mut sender, s_name) = Client::join(&server);
    let (mut reader, r_name) = Client::join(&server);
    let (_never, never_name) = Client::join(&server); // connected, reading nothing
    assert_eq!(sender.line(), format!("* {r_name} joined"));
    assert_eq!(sender.line(), format!("* {never_name} joined"));
    assert_eq!(reader.line(), format!("* {never_name} joined"));

    let (progress, got_so_far) = std::sync::mpsc::channel();
    let counting = thread::spawn(move || -> io::Result<(usize, Vec<String>)> {
        let (mut got, mut other, mut line) = (0, Vec::new(), String::new());
        while got < LINES {
            line.clear();
            if reader.lines.read_line(&mut line)? == 0 {
                break;
            }
            let expected = format!("{s_name}: {got:06} ");
            if line.starts_with(&expected) && line.len() == s_name.len() + 2 + LEN + 1 {
                got += 1;
                if got % BATCH == 0 {
                    let _ = progress.send(got);
                }
            } else {
                other.push(line.chars().take(80).collect());
            }
        }
        Ok((got, other))
    });
    for batch in 0..LINES / BATCH {
        for i in batch * BATCH..(batch + 1) * BATCH {
            let mut line = format!("{i:06} ");
            line.extend(std::iter::repeat_n('y', LEN - line.len()));
            sender.say(&line);
        }
        let got = got_so_far.recv_timeout(TIMEOUT);
        assert_eq!(
            got,
            Ok((batch + 1) * BATCH),
            "the reader got the batch in time"
        );
    }
    let (got, other) = counting.join().expect("the reader panicked").expect("read");
    assert_eq!(
        got, LINES,
        "lines the reader got in order (other lines: {other:?})"
    );
    assert_eq!(
        other,
        [format!("* {never_name} left\n")],
        "the reader is told the never-reader left, and nothing else"
    );
    let stderr = server.wait_for_stderr("the never-reader dropped", |err| {
        err.contains(&format!("{never_name} dropped: output"))
    });
    assert!(
        stderr.contains("over the cap of 1048576"),
        "why it was dropped: {}",
        tail(&stderr, 5)
    );
}

/// `echo_client`, as the docs name it, is a chat client: it prints what others say as it
/// comes, whether or not its user types, and leaves cleanly at the end of its input.
#[test]
fn echo_client_is_a_chat_client() {
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    let server = start();
    let mut typist = Command::new(common::example_binary("echo_client"))
        .arg(server.addr().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start echo_client");
    let (seen, lines) = mpsc::channel();
    let stdout = typist.stdout.take().expect("its stdout");
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = seen.send(line.expect("a line of echo_client's output"));
        }
    });
    let wait_for = |what: &str| loop {
        let line = lines
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("echo_client never printed {what:?}"));
        if line.contains(what) {
            return line;
        }
    };
    assert!(wait_for("* welcome, ").starts_with("received: "));
    let (mut other, _) = Client::join(&server);
    wait_for(" joined");
    other.say("hello from the other"); // comes while the typist types nothing
    wait_for("hello from the other");
    let mut stdin = typist.stdin.take().expect("its stdin");
    stdin.write_all(b"hi from the typist\n").expect("type");
    loop {
        if other.line().contains("hi from the typist") {
            break;
        }
    }
    drop(stdin); // Ctrl-D: it half-closes, and exits once the server has closed
    let (exited, status) = mpsc::channel();
    thread::spawn(move || exited.send(typist.wait()));
    let status = status.recv_timeout(TIMEOUT).expect("echo_client to exit");
    assert!(status.expect("wait").success(), "echo_client failed");
}
