//! The Python tutorials' file server, done right: one thread serves every client; files stream
//! with bounded memory whatever their size or the client's speed; names cannot leave the
//! served directory; an interrupted or corrupted upload never leaves a partial file nor
//! replaces the old version; a download resumes from an offset. Ctrl-C or SIGTERM stops it
//! cleanly, reporting how many connections it closed.
//!
//! ```text
//! cargo run --example file_server -- --root DIR [--listen ADDR] [--max-clients N]
//!     [--max-upload BYTES] [--handshake-timeout SECS] [--idle-timeout SECS]
//!     [--send-timeout SECS] [--executor]
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
//!
//! Clients that say nothing cannot lock others out. A connection that has not sent a complete
//! request (a header that parses as one) within `--handshake-timeout` of connecting (default
//! 10 s) is closed. And at `--max-clients`, a newcomer is served: the server makes room by
//! closing the connection idle longest — idle meaning waiting for a request (not receiving
//! an upload's body, not sending a reply's body), for as long as since its last request was
//! answered or, if it made none, since it connected (the first accepted of two idle as long).
//! Only when no connection is idle (all are in the middle of a transfer) is the newcomer told
//! `ERR busy` and closed. A closed idle connection had its last reply handed over whole; if
//! part of it was still queued (the client was slow to read it), that part is dropped and
//! the close logged as such.
//!
//! Each request is logged at `info`, and so are the connections closed by the handshake
//! timeout or to make room (`RUST_LOG=debug` shows every connection).

#[path = "../common/cli.rs"]
mod cli;
mod paths;
mod protocol;
#[path = "../common/shutdown.rs"]
mod shutdown;
mod transfer;

use paths::{io_refusal, Root};
use protocol::{parse_crc, parse_request, Code, Refusal, Request, CHUNK, MAX_FRAME};
use selectloop::{ConnEvent, Connection, DefaultSelector, Events, LengthPrefixed, Limits};
use selectloop::{Selector, SelectorKey, Timeouts, TimerHandle, EVENT_READ};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};
use transfer::{read_ahead, Body, Conn, Download, Upload};

/// A session's request before it has sent any, for the log.
const CONNECTED: &str = "(connected)";

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
    handshake_timeout: Duration,
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
    sessions: Sessions,
}

/// Every connection, by a number of its own (in the order they were accepted): where the
/// server looks for the one idle longest when it is full.
#[derive(Default)]
struct Sessions {
    next: Cell<u64>,
    all: RefCell<HashMap<u64, Weak<RefCell<Session>>>>,
}

impl Sessions {
    fn add(&self, session: &Rc<RefCell<Session>>) {
        let id = session.borrow().id;
        self.all.borrow_mut().insert(id, Rc::downgrade(session));
    }

    fn new_id(&self) -> u64 {
        let id = self.next.get();
        self.next.set(id + 1);
        id
    }

    /// The connection waiting for a request for the longest time (the earlier accepted one if
    /// two have waited as long), with when it began to wait.
    fn longest_idle(&self) -> Option<(Rc<RefCell<Session>>, Instant)> {
        let all = self.all.borrow();
        let idle = all
            .values()
            .filter_map(Weak::upgrade)
            .filter_map(|session| {
                let (since, id) = {
                    let s = session.try_borrow().ok()?;
                    let State::Idle = s.state else {
                        return None;
                    };
                    (s.idle_since, s.id)
                };
                Some((since, id, session))
            });
        idle.min_by_key(|&(since, id, _)| (since, id))
            .map(|(since, _, session)| (session, since))
    }
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
    id: u64,
    peer: SocketAddr,
    key: Option<SelectorKey>,
    me: Weak<RefCell<Session>>,
    server: Rc<Server>,
    state: State,
    /// The request being served and when it began, for the log.
    request: String,
    started: Instant,
    /// Since when the connection waits for a request: its last request was answered (the
    /// whole reply handed to the connection), or it connected.
    idle_since: Instant,
    /// Closes the connection if no complete request came `--handshake-timeout` after it
    /// connected; cancelled by the first one.
    handshake: Option<TimerHandle>,
}

impl Session {
    fn on_event(&mut self, sel: &mut Selector, conn: &mut Conn, event: ConnEvent<&[u8]>) {
        let result = match event {
            ConnEvent::Frame(frame) => self.on_frame(sel, conn, frame),
            ConnEvent::Drained => self.pump(sel, conn),
            ConnEvent::PeerClosed => Ok(()), // what is queued is sent, then the connection closes
            ConnEvent::Closed(reason) => {
                self.on_closed(conn, reason);
                Ok(())
            }
            _ => Ok(()),
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

    fn on_frame(&mut self, sel: &mut Selector, conn: &mut Conn, frame: &[u8]) -> io::Result<()> {
        match &mut self.state {
            State::Idle => {
                self.started = Instant::now();
                match parse_request(frame) {
                    Ok(request) => {
                        if let Some(timer) = self.handshake.take() {
                            timer.cancel();
                        }
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
                upload.write(frame);
                Ok(())
            }
            State::Receiving(_) => {
                let State::Receiving(upload) = std::mem::replace(&mut self.state, State::Idle)
                else {
                    unreachable!("matched above");
                };
                let Some(crc) = parse_crc(frame) else {
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
        self.idle_since = Instant::now();
    }

    /// Replies with a header; a refusal as a reply is not an error of the connection.
    fn reply(&mut self, conn: &mut Conn, header: &str) -> io::Result<()> {
        conn.send_frame(header.as_bytes())
    }

    /// The request succeeded: replies and logs.
    fn done(&mut self, conn: &mut Conn, header: &str, bytes: u64) -> io::Result<()> {
        self.reply(conn, header)?;
        self.log("ok", bytes);
        self.idle_since = Instant::now();
        Ok(())
    }

    /// The request is refused: `ERR` reply, logged; the connection goes on.
    fn refuse(&mut self, conn: &mut Conn, refusal: Refusal) -> io::Result<()> {
        self.state = State::Idle;
        self.reply(conn, &refusal.header())?;
        self.log(&format!("refused: {refusal}"), 0);
        self.idle_since = Instant::now();
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

    /// `--handshake-timeout` after the connection was accepted, if no request came.
    fn handshake_expired(&mut self, sel: &mut Selector) {
        self.handshake = None;
        let (State::Idle, Some(key)) = (&self.state, self.key) else {
            return;
        };
        let secs = self.server.options.handshake_timeout.as_secs_f64();
        log::info!(
            "{}: no complete request {secs} s after connecting (--handshake-timeout); closing",
            self.peer
        );
        self.state = State::Closing;
        if let Err(e) = Conn::with(sel, &key, |conn| conn.close()) {
            log::warn!("{}: closing: {e}", self.peer); // gone already: nothing to do
        }
    }

    /// The server is full and this connection is the one idle longest: closes it, for
    /// `newcomer`. Returns false if it could not (it was gone).
    fn make_room(&mut self, sel: &mut Selector, newcomer: SocketAddr, since: Instant) -> bool {
        let Some(key) = self.key else {
            return false;
        };
        // A reply the client has not read all of yet is cut: the connection must go now, to
        // make room, and the client sees it closed, never a reply spliced with another.
        let result = Conn::with(sel, &key, |conn| {
            let queued = conn.queued();
            match queued {
                0 => conn.close(),
                _ => conn.abort(),
            }
            queued
        });
        let queued = match result {
            Ok(queued) => queued,
            Err(e) => {
                log::warn!("{}: closing to make room: {e}", self.peer);
                return false;
            }
        };
        if let Some(timer) = self.handshake.take() {
            timer.cancel();
        }
        self.state = State::Closing;
        let since_what = match self.request.as_str() {
            CONNECTED => "since it connected",
            _ => "since its last request",
        };
        let dropped = match queued {
            0 => String::new(),
            n => format!("; the last {n} bytes of its last reply, unread, are dropped"),
        };
        log::info!(
            "{}: closed to make room for {newcomer} (--max-clients {}): the longest idle, \
             {:.1} s {since_what}{dropped}",
            self.peer,
            self.server.options.max_clients,
            since.elapsed().as_secs_f64(),
        );
        true
    }

    fn on_closed(&mut self, conn: &Conn, reason: Option<io::Error>) {
        let server = &self.server;
        server.clients.set(server.clients.get() - 1);
        server.sessions.all.borrow_mut().remove(&self.id);
        if let Some(timer) = self.handshake.take() {
            timer.cancel();
        }
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
    let full = server.clients.get() >= options.max_clients;
    let busy = full && !make_room(sel, server, peer);
    let now = Instant::now();
    let session = Rc::new_cyclic(|me| {
        RefCell::new(Session {
            id: server.sessions.new_id(),
            peer,
            key: None,
            me: me.clone(),
            server: server.clone(),
            state: State::Idle,
            request: CONNECTED.to_string(),
            started: now,
            idle_since: now,
            handshake: None,
        })
    });
    let s = session.clone();
    let key = conn.register(sel, move |sel, conn, event| {
        s.borrow_mut().on_event(sel, conn, event);
        Ok(())
    })?;
    session.borrow_mut().key = Some(key.key());
    server.clients.set(server.clients.get() + 1); // counted down on `Closed`
    server.sessions.add(&session); // removed on `Closed`
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
    } else {
        let me = Rc::downgrade(&session);
        let timer = sel.call_later(options.handshake_timeout, move |sel| {
            if let Some(session) = me.upgrade() {
                session.borrow_mut().handshake_expired(sel);
            }
        });
        session.borrow_mut().handshake = Some(timer);
    }
    Ok(())
}

/// The server is full: closes the connection idle longest, to serve `newcomer`. Returns
/// false if none is idle (all are in the middle of a transfer).
fn make_room(sel: &mut Selector, server: &Server, newcomer: SocketAddr) -> bool {
    let Some((session, since)) = server.sessions.longest_idle() else {
        return false;
    };
    let made = session.borrow_mut().make_room(sel, newcomer, since);
    made
}

const USAGE: &str = "usage: file_server --root DIR [--listen ADDR] [--max-clients N] \
[--max-upload BYTES] [--handshake-timeout SECS] [--idle-timeout SECS] [--send-timeout SECS] \
[--executor]

  --root DIR           the directory served (its files, not its subdirectories)
  --listen ADDR        where to listen (default 127.0.0.1:8091)
  --max-clients N      clients served at once (default 100); at the limit, a new client is
                       served and the one idle longest (waiting for a request) closed; only
                       if all are mid-transfer is the new one told `ERR busy`
  --max-upload BYTES   the largest upload accepted (default 4294967296: 4 GiB)
  --handshake-timeout SECS
                       close a client that sent no complete request SECS after connecting
                       (default 10)
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
        handshake_timeout: Duration::from_secs(10),
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
            Long("handshake-timeout") => {
                options.handshake_timeout = cli::secs(parser, "--handshake-timeout")?
            }
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
    let stale = root.remove_stale_temps()?;
    let server = Rc::new(Server {
        root,
        options,
        clients: Cell::new(0),
        buf: RefCell::new(vec![0; CHUNK]),
        sessions: Sessions::default(),
    });
    let mut sel = DefaultSelector::new()?;
    let listener_server = server.clone();
    let listener = sel.register(sock, EVENT_READ, move |sel, sock, _: Events| {
        accept(sel, sock, &listener_server)
    })?;
    shutdown::stop_on_signals(&mut sel)?;
    eprintln!(
        "file server on {addr}, serving {}; try: cargo run --example file_client -- {addr} list",
        server.root.path().display()
    );
    if stale > 0 {
        log::warn!("removed {stale} unfinished upload(s) left by an earlier server");
    }

    sel.run()?; // until Ctrl-C or SIGTERM

    // Replies queued go out whole, then every connection closes; unfinished uploads remove
    // their temporary files.
    shutdown::close::<TcpStream, LengthPrefixed>(sel, &[listener])
}
