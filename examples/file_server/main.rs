//! The Python tutorials' file server, done right: one thread serves every client; files stream
//! with bounded memory whatever their size or the client's speed; names cannot leave the
//! served directory; an interrupted or corrupted upload never leaves a partial file nor
//! replaces the old version; a download resumes from an offset. Ctrl-C or SIGTERM stops it
//! cleanly, reporting how many connections it closed.
//!
//! ```text
//! cargo run --example file_server -- --root DIR [--listen ADDR] [--max-clients N]
//!     [--max-upload BYTES] [--idle-timeout SECS] [--send-timeout SECS] [--executor]
//! cargo run --example file_client -- 127.0.0.1:8091 list     # or get NAME, put PATH, ...
//! ```
//!
//! The protocol (`protocol.rs`, specified in `docs/file_server_protocol.md`): length-prefixed
//! frames (selectloop's `LengthPrefixed` codec); text headers (`LIST`, `GET <offset> <name>`,
//! `PUT <size> <name>`, `DELETE <name>`, `QUIT`); bodies announced by their length, sent in
//! chunk frames, and ended by their CRC-32. Each connection has the server's limits: reading
//! pauses while 1 MiB is queued for it, a hard cap closes it past that plus a few chunks (a
//! backstop: the server never queues that much), the idle and send timeouts close clients that
//! went quiet or stopped reading, and a frame must be complete 30 s after its first byte.
//! Each request is logged at `info` (`RUST_LOG=debug` shows connections too).

#[path = "../common/cli.rs"]
mod cli;
mod paths;
mod protocol;
mod transfer;

use paths::{io_refusal, Root};
use protocol::{parse_crc, parse_request, Code, Refusal, Request, CHUNK, MAX_FRAME};
use selectloop::{ConnEvent, Connection, DefaultSelector, Events, LengthPrefixed, Limits};
use selectloop::{Selector, SelectorKey, Timeouts, EVENT_READ};
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};
use transfer::{read_ahead, Body, Conn, Download, Upload};

/// A download's reads on the executor take this much at a time.
const READ_AHEAD: usize = 4 * CHUNK;

/// The default marks, and a backstop hard cap: a download sends while under the high-water
/// mark, so at most one chunk frame (or, with `--executor`, one read-ahead) passes it; replies
/// to requests are small, and reading pauses at the high-water mark. Reads of 256 KiB, not
/// 64: an upload's 64 KiB chunk frames (plus their headers) straddle reads, and the start of
/// the next frame is moved to the front of the buffer once per read, so about once per four
/// frames instead of once per frame (the server's CPU time per uploaded GiB, four runs each on
/// a busy machine: 1.25-2.0 s, against 1.4-3.1 s with 64 KiB). It costs an uploading client up
/// to 320 KiB of buffer while a frame is incomplete.
const LIMITS: Limits = Limits {
    high_water: 1 << 20,
    low_water: 256 << 10,
    read_chunk: 256 << 10,
    hard_cap: (1 << 20) + 2 * READ_AHEAD,
    soft_cap: usize::MAX,
    soft_cap_for: Duration::ZERO,
};

#[derive(Clone, Debug)]
struct Options {
    root: PathBuf,
    listen: String,
    max_clients: usize,
    max_upload: u64,
    idle_timeout: Duration,
    send_timeout: Duration,
    executor: bool,
}

/// What every connection shares (one thread: `Cell`s and `RefCell`s).
struct Server {
    root: Root,
    options: Options,
    clients: Cell<usize>,
    /// The loop thread's read buffer for downloads: one for all of them.
    buf: RefCell<Vec<u8>>,
}

enum State {
    /// Waiting for a request.
    Idle,
    /// Sending a body (`GET`, `LIST`).
    Sending(Download),
    /// Receiving an upload's body and trailer (`PUT`, after `READY`).
    Receiving(Upload),
    /// The reply to `QUIT` or a fatal error is queued; the connection is closing.
    Closing,
}

/// One client.
struct Session {
    peer: SocketAddr,
    key: Option<SelectorKey>,
    me: Weak<RefCell<Session>>,
    server: Rc<Server>,
    state: State,
    /// The request being served and when it began, for the log.
    request: String,
    started: Instant,
}

impl Session {
    fn on_event(&mut self, sel: &mut Selector, conn: &mut Conn, event: ConnEvent<Vec<u8>>) {
        let result = match event {
            ConnEvent::Frame(frame) => self.on_frame(sel, conn, frame),
            ConnEvent::Drained => self.pump(sel, conn),
            ConnEvent::PeerClosed => Ok(()), // what is queued is sent, then the connection closes
            ConnEvent::Closed(reason) => {
                self.on_closed(conn, reason);
                Ok(())
            }
        };
        if let Err(e) = result {
            log::warn!(
                "{} {}: {e}; closing the connection",
                self.peer,
                self.request
            );
            conn.abort();
        }
    }

    fn on_frame(&mut self, sel: &mut Selector, conn: &mut Conn, frame: Vec<u8>) -> io::Result<()> {
        match &mut self.state {
            State::Idle => {
                self.started = Instant::now();
                match parse_request(&frame) {
                    Ok(request) => {
                        self.request = request.to_string();
                        match self.serve(sel, conn, request) {
                            Ok(()) => Ok(()),
                            Err(refusal) => self.refuse(conn, refusal),
                        }
                    }
                    Err(refusal) => {
                        let text = String::from_utf8_lossy(&frame[..frame.len().min(64)]);
                        self.request = format!("{text:?}");
                        self.refuse(conn, refusal)
                    }
                }
            }
            State::Sending(_) => {
                log::warn!(
                    "{} {}: a request came before the reply ended (one at a time); closing",
                    self.peer,
                    self.request
                );
                conn.abort();
                Ok(())
            }
            State::Receiving(upload) if upload.left > 0 => {
                if frame.is_empty() || frame.len() as u64 > upload.left {
                    let msg = format!(
                        "a body chunk of {} bytes with {} left to send",
                        frame.len(),
                        upload.left
                    );
                    return self.fail(conn, Refusal::new(Code::BadRequest, msg));
                }
                upload.write(&frame);
                Ok(())
            }
            State::Receiving(_) => {
                let State::Receiving(upload) = std::mem::replace(&mut self.state, State::Idle)
                else {
                    unreachable!("matched above");
                };
                let Some(crc) = parse_crc(&frame) else {
                    let refusal = Refusal::new(Code::BadRequest, "expected the CRC trailer");
                    return self.fail(conn, refusal);
                };
                match upload.commit(crc) {
                    Ok(size) => self.done(conn, &format!("OK {size}"), size),
                    Err(refusal) => self.refuse(conn, refusal),
                }
            }
            State::Closing => Ok(()), // the rest is ignored
        }
    }

    /// Starts serving a request; a refusal becomes an `ERR` reply.
    fn serve(
        &mut self,
        sel: &mut Selector,
        conn: &mut Conn,
        request: Request,
    ) -> Result<(), Refusal> {
        let server = self.server.clone();
        let root = &server.root;
        match request {
            Request::List => {
                let files = root.list().map_err(|e| io_refusal("listing", &e))?;
                let text: String = files
                    .iter()
                    .map(|(n, size)| format!("{size} {n}\n"))
                    .collect();
                let len = text.len() as u64;
                self.start_download(sel, conn, Body::Listing(text.into_bytes(), 0), len)
            }
            Request::Get { name, offset } => {
                let (_, real) = root.existing(&name)?;
                let mut file = File::open(&real).map_err(|e| io_refusal(&name, &e))?;
                let size = file.metadata().map_err(|e| io_refusal(&name, &e))?.len();
                if offset > size {
                    let msg = format!("offset {offset} is past the end of {name:?} ({size} bytes)");
                    return Err(Refusal::new(Code::Range, msg));
                }
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| io_refusal(&name, &e))?;
                self.start_download(sel, conn, Body::File(file), size - offset)
            }
            Request::Put { name, size } => {
                let max = self.server.options.max_upload;
                if size > max {
                    let msg = format!("{size} bytes; this server takes uploads of up to {max}");
                    return Err(Refusal::new(Code::TooLarge, msg));
                }
                let target = root.target(&name)?;
                let temp = root
                    .temp_file()
                    .map_err(|e| io_refusal("creating the upload's file", &e))?;
                self.state = State::Receiving(Upload::new(target, temp, size));
                self.reply(conn, "READY")
            }
            Request::Delete { name } => {
                let (path, _) = root.existing(&name)?;
                std::fs::remove_file(path).map_err(|e| io_refusal(&name, &e))?;
                self.done(conn, "OK", 0)
            }
            Request::Quit => {
                let replied = self.done(conn, "OK", 0);
                self.state = State::Closing;
                conn.close();
                replied
            }
        }
        .map_err(|e| io_refusal("replying", &e))
    }

    fn start_download(
        &mut self,
        sel: &mut Selector,
        conn: &mut Conn,
        body: Body,
        len: u64,
    ) -> io::Result<()> {
        self.reply(conn, &format!("DATA {len}"))?;
        self.state = State::Sending(Download::new(body, len));
        self.pump(sel, conn)
    }

    /// Sends more of the body being sent, if any: on the loop thread, or through the executor.
    fn pump(&mut self, sel: &mut Selector, conn: &mut Conn) -> io::Result<()> {
        let State::Sending(download) = &mut self.state else {
            return Ok(());
        };
        if !self.server.options.executor {
            let mut buf = self.server.buf.borrow_mut();
            if download.pump(conn, &mut buf)? {
                let sent = download.sent;
                drop(buf);
                self.finished(sent);
            }
            return Ok(());
        }
        if conn.queued() < conn.limits().high_water {
            self.read_next(sel)?;
        }
        Ok(())
    }

    /// With `--executor`: reads the next piece of the body on the executor, unless a read is
    /// in flight; its `done` sends it, and reads on while the queue has room.
    fn read_next(&mut self, sel: &mut Selector) -> io::Result<()> {
        let State::Sending(download) = &mut self.state else {
            return Ok(());
        };
        let (Some(body), Some(key)) = (download.body.take(), self.key) else {
            return Ok(()); // a read is in flight
        };
        let want = download.left.min(READ_AHEAD as u64) as usize;
        let me = self.me.clone();
        sel.run_in_executor(
            move || read_ahead(body, want),
            move |sel, result| {
                let Some(session) = me.upgrade() else {
                    return; // the connection is gone: the file closes here
                };
                let delivered = |conn: &mut Conn| session.borrow_mut().delivered(conn, result);
                if let Ok(true) = Conn::with(sel, &key, delivered) {
                    if let Err(e) = session.borrow_mut().read_next(sel) {
                        log::warn!("executor: {e}"); // the send timeout ends the connection
                    }
                }
            },
        )?;
        Ok(())
    }

    /// Sends what a read on the executor brought. Returns true if the next read should start.
    fn delivered(
        &mut self,
        conn: &mut Conn,
        read: io::Result<(Body, crc32fast::Hasher, io::Result<Vec<u8>>)>,
    ) -> bool {
        let State::Sending(download) = &mut self.state else {
            return false;
        };
        // The outer error: the work panicked (the executor caught it).
        let result = read.and_then(|(body, crc, data)| {
            data.and_then(|data| download.deliver(conn, body, crc, &data))
        });
        match result {
            Ok(true) => {
                let sent = download.sent;
                self.finished(sent);
                false
            }
            Ok(false) => conn.queued() < conn.limits().high_water,
            Err(e) => {
                log::warn!(
                    "{} {}: {e}; closing the connection",
                    self.peer,
                    self.request
                );
                conn.abort();
                false
            }
        }
    }

    /// Logs the end of a download and waits for the next request.
    fn finished(&mut self, sent: u64) {
        self.log("sent", sent);
        self.state = State::Idle;
    }

    /// Replies with a header; a refusal as a reply is not an error of the connection.
    fn reply(&mut self, conn: &mut Conn, header: &str) -> io::Result<()> {
        conn.send_frame(header.as_bytes())
    }

    /// The request succeeded: replies and logs.
    fn done(&mut self, conn: &mut Conn, header: &str, bytes: u64) -> io::Result<()> {
        self.reply(conn, header)?;
        self.log("ok", bytes);
        Ok(())
    }

    /// The request is refused: `ERR` reply, logged; the connection goes on.
    fn refuse(&mut self, conn: &mut Conn, refusal: Refusal) -> io::Result<()> {
        self.state = State::Idle;
        self.reply(conn, &refusal.header())?;
        self.log(&format!("refused: {refusal}"), 0);
        Ok(())
    }

    /// The stream cannot go on (a body that does not add up): `ERR` reply, then close.
    fn fail(&mut self, conn: &mut Conn, refusal: Refusal) -> io::Result<()> {
        self.refuse(conn, refusal)?;
        self.state = State::Closing;
        conn.close();
        Ok(())
    }

    fn log(&self, outcome: &str, bytes: u64) {
        let ms = self.started.elapsed().as_secs_f64() * 1e3;
        log::info!(
            "{} {}: {outcome}, {bytes} bytes, {ms:.1} ms",
            self.peer,
            self.request
        );
    }

    fn on_closed(&mut self, conn: &Conn, reason: Option<io::Error>) {
        let server = &self.server;
        server.clients.set(server.clients.get() - 1);
        match std::mem::replace(&mut self.state, State::Closing) {
            State::Sending(download) => {
                self.log("interrupted", download.sent);
            }
            State::Receiving(upload) => {
                let got = upload.size - upload.left;
                let size = upload.size;
                drop(upload); // removes the temporary file
                self.log(
                    &format!("interrupted at {got} of {size} bytes; nothing stored"),
                    got,
                );
            }
            State::Idle | State::Closing => {}
        }
        let (received, sent) = (conn.bytes_received(), conn.bytes_sent());
        match reason {
            None => log::debug!("{} closed ({received} bytes in, {sent} out)", self.peer),
            Some(e) => log::info!(
                "{} closed: {e} ({received} bytes in, {sent} out)",
                self.peer
            ),
        }
    }
}

fn accept(sel: &mut Selector, sock: &mut TcpListener, server: &Rc<Server>) -> io::Result<()> {
    let (stream, peer) = sock.accept()?;
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?; // replies are small and awaited: no Nagle delay for them
    let options = &server.options;
    let timeouts = Timeouts {
        idle: Some(options.idle_timeout),
        frame: Some(Duration::from_secs(30)),
        send: Some(options.send_timeout),
    };
    let conn = Connection::new(stream, LengthPrefixed::new(MAX_FRAME))
        .with_limits(LIMITS)?
        .with_timeouts(timeouts);
    let busy = server.clients.get() >= options.max_clients;
    let session = Rc::new_cyclic(|me| {
        RefCell::new(Session {
            peer,
            key: None,
            me: me.clone(),
            server: server.clone(),
            state: State::Idle,
            request: "(connected)".to_string(),
            started: Instant::now(),
        })
    });
    let s = session.clone();
    let key = conn.register(sel, move |sel, conn, event| {
        s.borrow_mut().on_event(sel, conn, event);
        Ok(())
    })?;
    session.borrow_mut().key = Some(key);
    server.clients.set(server.clients.get() + 1); // counted down on `Closed`
    log::debug!("{peer} connected");
    if busy {
        let max = options.max_clients;
        let refusal = Refusal::new(
            Code::Busy,
            format!("this server serves {max} clients at most"),
        );
        log::info!("{peer} refused: {refusal}");
        Conn::with(sel, &key, |conn| {
            let _ = conn.send_frame(refusal.header().as_bytes());
            conn.close();
        })?;
        session.borrow_mut().state = State::Closing;
    }
    Ok(())
}

const USAGE: &str = "usage: file_server --root DIR [--listen ADDR] [--max-clients N] \
[--max-upload BYTES] [--idle-timeout SECS] [--send-timeout SECS] [--executor]

  --root DIR           the directory served (its files, not its subdirectories)
  --listen ADDR        where to listen (default 127.0.0.1:8091)
  --max-clients N      clients served at once; more are told `ERR busy` (default 100)
  --max-upload BYTES   the largest upload accepted (default 4294967296: 4 GiB)
  --idle-timeout SECS  close a client that sent and read nothing for SECS (default 300)
  --send-timeout SECS  close a client that accepted nothing for SECS while data waited for it
                       (default 60)
  --executor           read files on the executor's threads instead of the loop thread
SECS may be fractional. RUST_LOG=debug shows connections; the default, info, each request.
Ctrl-C or SIGTERM stops it, reporting how many connections it closed.";

fn parse_args(parser: &mut lexopt::Parser) -> Result<Options, lexopt::Error> {
    use lexopt::prelude::*;
    let mut root = None;
    let mut options = Options {
        root: PathBuf::new(),
        listen: "127.0.0.1:8091".to_string(),
        max_clients: 100,
        max_upload: 4 << 30,
        idle_timeout: Duration::from_secs(300),
        send_timeout: Duration::from_secs(60),
        executor: false,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("root") => root = Some(PathBuf::from(parser.value()?)),
            Long("listen") => options.listen = cli::addr(parser.value()?)?,
            Long("max-clients") => options.max_clients = cli::number(parser, "--max-clients", ..)?,
            Long("max-upload") => options.max_upload = cli::bytes(parser, "--max-upload")?,
            Long("idle-timeout") => options.idle_timeout = cli::secs(parser, "--idle-timeout")?,
            Long("send-timeout") => options.send_timeout = cli::secs(parser, "--send-timeout")?,
            Long("executor") => options.executor = true,
            Short('h') | Long("help") => cli::help(USAGE),
            _ => return Err(arg.unexpected()),
        }
    }
    options.root = root.ok_or("--root DIR is required")?;
    Ok(options)
}

fn main() -> ExitCode {
    let options = cli::parse(USAGE, parse_args);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli::status(run(options))
}

fn run(options: Options) -> io::Result<()> {
    let root = Root::open(&options.root)?; // its error names --root
    let sock = TcpListener::bind(&options.listen).map_err(cli::about(&options.listen))?;
    sock.set_nonblocking(true)?;
    let addr = sock.local_addr()?; // the real port, if ADDR asked for port 0
    eprintln!(
        "file server on {addr}, serving {}; try: cargo run --example file_client -- {addr} list",
        root.path().display()
    );
    let stale = root.remove_stale_temps()?;
    if stale > 0 {
        log::warn!("removed {stale} unfinished upload(s) left by an earlier server");
    }
    let server = Rc::new(Server {
        root,
        options,
        clients: Cell::new(0),
        buf: RefCell::new(vec![0; CHUNK]),
    });
    let mut sel = DefaultSelector::new()?;
    let listener_server = server.clone();
    sel.register(sock, EVENT_READ, move |sel, sock, _: Events| {
        accept(sel, sock, &listener_server)
    })?;
    for signal in [selectloop::signals::SIGINT, selectloop::signals::SIGTERM] {
        sel.add_signal_handler(signal, |sel, _| sel.stop())?;
    }

    sel.run()?; // until Ctrl-C or SIGTERM
    let clients = server.clients.get();
    sel.close()?; // closes every connection; unfinished uploads remove their temporary files
    eprintln!("interrupted: closed {clients} connection(s)");
    Ok(())
}
