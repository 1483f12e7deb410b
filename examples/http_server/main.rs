//! An HTTP/1.1 server on selectloop: keep-alive, pipelining, static files, and the limits a
//! server on the open internet needs — one loop per thread, each connection a `Connection`
//! with a request codec built on `httparse`.
//!
//! ```text
//! cargo run --release --example http_server -- [ADDR] [--threads N] [--root DIR] ...
//!                                                            # default 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/                 # Hello, World!
//! curl -I http://127.0.0.1:8080/static/Cargo.toml
//! curl -C - -o Cargo.toml http://127.0.0.1:8080/static/Cargo.toml   # resumes a download
//! wrk -t2 -c100 -d10s http://127.0.0.1:8080/
//! curl http://127.0.0.1:8080/nginx_status       # with --status /nginx_status
//! ```
//!
//! What it serves:
//! - `GET /`: `Hello, World!\n` (`text/plain`, 14 bytes), with nginx's headers (`Server`,
//!   `Date`, `Content-Type`, `Content-Length`, `Connection`), for comparing the two with `wrk`.
//!   The reply is kept ready per thread and its `Date` rebuilt once a second (`response.rs`).
//! - `GET /static/NAME`: the file NAME of `--root` (default: the current directory), streamed
//!   with back-pressure, never read whole into memory; only plain names, no subdirectories,
//!   nothing outside the root, however encoded (`files.rs`). The path is first normalised as
//!   nginx does (`ngx_http_parse_complex_uri`): percent-decoded, slashes merged, `.` and `..`
//!   segments resolved, so `/static/./a.txt`, `/static//a.txt` and `/static/sub/../a.txt`
//!   serve `a.txt`; a `..` above `/` is a 400 that closes the connection, as in nginx.
//!   With nginx's validators and ranges (`conditional.rs`):
//!   - `Last-Modified` (the file's modification time, an IMF-fixdate) and `ETag` in nginx's
//!     form, `"<mtime hex>-<size hex>"`, and `Accept-Ranges: bytes`;
//!   - `304 Not Modified` (no body; `Last-Modified` and `ETag`, as nginx's 304) for an
//!     `If-None-Match` that matches (`*`, or a list, compared weakly), or, without
//!     `If-None-Match` (RFC 9110 13.1.3), an `If-Modified-Since` (any of the three HTTP-date
//!     forms) not earlier than the file. nginx differs in two cases: its default
//!     (`if_modified_since exact`) wants the very date, and it wants both fields to hold when
//!     both are sent;
//!   - one `Range: bytes=a-b`, `a-` or `-n`: `206 Partial Content` with `Content-Range: bytes
//!     a-b/size`, streamed from the offset (so `curl -C -` resumes a download); a range starting
//!     at or past the end (or `-0`): `416 Range Not Satisfiable` with `Content-Range: bytes
//!     */size`, the connection kept. Several ranges get the whole file with 200 (nginx sends
//!     them as `multipart/byteranges`; this server does not), and so does a Range that is not
//!     well formed (`5-2` included: nginx answers that 416), another unit, or a range of an
//!     empty file from its start (as nginx). `If-Range` (the strong ETag, or the very
//!     `Last-Modified` date, as nginx compares them) must match, or the whole file is sent.
//! - `GET PATH` with `--status PATH` (e.g. `--status /nginx_status`): nginx's `stub_status`
//!   page, byte for byte, so that what reads nginx's (scripts, Prometheus's nginx exporter)
//!   reads this one (`status.rs`):
//!   ```text
//!   Active connections: 2 \n
//!   server accepts handled requests\n
//!    5 5 17 \n
//!   Reading: 0 Writing: 1 Waiting: 1 \n
//!   ```
//!   `text/plain`, with nginx's headers as for `GET /`. The numbers are nginx's: connections
//!   open now (Active), accepted and handled since the start, requests received (counted at
//!   their first byte, this one included), and the connections open now that are reading a
//!   request head, answering a request (Writing: the one asking is), or waiting between
//!   requests (Waiting: keep-alive, or nothing sent yet). With `--threads N`, each loop counts
//!   its own connections (relaxed atomic additions, on a cache line of its own) and the page
//!   adds them up. Matched on the path alone (a query is ignored); without `--status` nothing
//!   is counted, and the path is an ordinary one.
//! - `HEAD` of any of these: the same head, no body.
//!
//! How connections behave:
//! - HTTP/1.1 keeps the connection open unless the request says `Connection: close`; HTTP/1.0
//!   closes it unless `Connection: keep-alive`. Closing means: reply, flush, close.
//! - Pipelining: requests are answered in order, those of one read in one write (the replies
//!   are queued, and the connection writes its queue when the batch of callbacks returns). A
//!   request behind a file waits until the whole file is queued.
//!
//! What it refuses (and then closes the connection, unless said otherwise):
//! - a malformed request, a bad `Content-Length` or more than one (even equal: RFC 9112 6.3,
//!   and nginx's "duplicate header line", against request smuggling), HTTP/1.1 without `Host`:
//!   `400 Bad Request`;
//! - what cannot be HTTP/1.x, answered `400` at once rather than at the header timeout: an
//!   HTTP/0.9 request line (`GET /` with no version) as soon as its line ends, and a first byte
//!   no method begins with — a TLS ClientHello (`0x16`) sent to this plain port;
//! - a request head over `--max-header` bytes (default 8 KiB, nginx's large header buffer) or
//!   with more than 100 header fields (`request::MAX_HEADERS`; nginx has no count, only its
//!   buffers; 100 is Apache httpd's `LimitRequestFields`, far above what browsers send):
//!   `431 Request Header Fields Too Large`;
//! - methods other than GET and HEAD: `405 Method Not Allowed` with `Allow: GET, HEAD`
//!   (the connection stays open if no body was announced);
//! - a request body: `413 Content Too Large` for a `Content-Length` over 0, `501 Not
//!   Implemented` for a `Transfer-Encoding` (a body is not read, so what follows it cannot be
//!   told apart from a request: the connection is closed);
//! - an unknown path: `404 Not Found` (the connection stays open).
//!
//! Timeouts (nginx's `client_header_timeout` and `keepalive_timeout`), on the connection's own
//! timer (selectloop's `Timeouts`):
//! - `--header-timeout SECS` (default 10): a request head not complete that long after its
//!   first byte (slowloris) gets a best-effort `408 Request Timeout`, written straight to the
//!   socket as the connection closes (its queue is gone by then), and the connection is closed;
//! - `--idle-timeout SECS` (default 75): a connection with no byte moving either way that long
//!   is closed silently — a keep-alive connection between requests, or a client that stopped
//!   reading its replies.
//!
//! Memory per connection stays bounded whatever a client sends: undecoded bytes up to the
//! head limit plus one read (64 KiB), and replies queued up to the high-water mark (1 MiB)
//! before reading pauses (plus the replies to one read's requests; a file is queued 64 KiB at
//! a time, only while under the mark).
//!
//! `--threads N` runs N loops, one per thread (`examples/common/loops.rs`): on Linux each with
//! its own `SO_REUSEPORT` listener, elsewhere (or with `--no-reuseport`) one acceptor handing
//! connections out in turn. Ctrl-C or SIGTERM stops it, reporting how many connections it
//! closed. Nothing is logged per connection at the default level (`RUST_LOG=debug` shows why
//! each one closed).

#[path = "../common/cli.rs"]
mod cli;
#[path = "../common/loops.rs"]
mod loops;
#[allow(dead_code)] // the upload and listing parts are the file server's
#[path = "../file_server/paths.rs"]
mod paths;
#[path = "../file_server/protocol.rs"]
mod protocol;
#[path = "../common/shutdown.rs"]
mod shutdown;

mod conditional;
mod files;
mod request;
mod response;
mod status;

use conditional::Part;
use files::Download;
use request::{Body, Method, Parsed, Request, RequestCodec, Target};
use selectloop::{ConnEvent, Connection, Timeouts};
use status::{LoopStatus, Status, Tracker};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, ErrorKind, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// A client connection.
pub type Conn = Connection<TcpStream, RequestCodec>;

/// What every connection needs to know, shared by the loops.
struct Config {
    root: paths::Root,
    max_header: usize,
    timeouts: Timeouts,
    /// `--status PATH`: the page, and the counters of every loop.
    status: Option<Arc<Status>>,
}

/// One connection's state, beside its `Connection`.
struct Session {
    config: Arc<Config>,
    /// The file being sent, if one is.
    download: Option<Download>,
    /// Close once `download` is all queued.
    close_after: bool,
    /// Requests received while a file is being sent, answered after it, in order.
    waiting: VecDeque<Parsed>,
    /// The connection is closing: further requests get no answer.
    closing: bool,
    /// Bytes of request heads decoded so far: fewer than were received means a head had begun.
    decoded: u64,
    /// With `--status`: where the connection is, for the page (shared with its codec).
    tracker: Option<Rc<Tracker>>,
}

impl Session {
    fn new(config: Arc<Config>, tracker: Option<Rc<Tracker>>) -> Session {
        Session {
            config,
            download: None,
            close_after: false,
            waiting: VecDeque::new(),
            closing: false,
            decoded: 0,
            tracker,
        }
    }

    fn on_event(&mut self, conn: &mut Conn, event: ConnEvent<Parsed>) -> io::Result<()> {
        match event {
            ConnEvent::Frame(parsed) => {
                if let Parsed::Request(request) = &parsed {
                    self.decoded += request.len as u64;
                }
                if let Some(tracker) = &self.tracker {
                    tracker.answering();
                }
                if self.closing {
                    // Pipelined behind a request that closes the connection: not answered.
                } else if self.download.is_some() {
                    self.waiting.push_back(parsed);
                } else {
                    self.answer(conn, parsed)?;
                }
                self.answered();
            }
            ConnEvent::Drained => {
                self.pump(conn)?;
                self.answered();
            }
            ConnEvent::PeerClosed => {} // what is queued is flushed, then the connection closes
            ConnEvent::Closed(None) => {}
            ConnEvent::Closed(Some(e)) => {
                // A timeout with part of a head received: tell the client, best effort.
                if e.kind() == ErrorKind::TimedOut && conn.bytes_received() > self.decoded {
                    let _ = conn.get_ref().write(&response::timeout_reply());
                }
                log::debug!("connection closed: {e}");
            }
            _ => {}
        }
        Ok(())
    }

    /// For the status page: once every request received is answered (the last reply all
    /// queued) and the connection stays open, it is back to reading or waiting.
    fn answered(&self) {
        if let Some(tracker) = &self.tracker {
            if !self.closing && self.download.is_none() && self.waiting.is_empty() {
                tracker.answered();
            }
        }
    }

    /// Answers one request (or refusal), or starts sending a file.
    fn answer(&mut self, conn: &mut Conn, parsed: Parsed) -> io::Result<()> {
        let request = match parsed {
            Parsed::Request(request) => request,
            Parsed::Refused(status) => {
                log::debug!("request refused: {status}");
                return self.fail(conn, status, false);
            }
        };
        let head_only = request.method == Method::Head;
        if request.body != Body::None || request.method == Method::Other {
            let status = match (request.method, request.body) {
                (Method::Other, _) => 405,
                (_, Body::Length(_)) => 413,
                _ => 501,
            };
            // Keep-alive after a 405 only: an unread body would be taken for a request.
            let close = !request.keep_alive || request.body != Body::None;
            response::error(conn, status, head_only, close)?;
            return self.close_if(conn, close);
        }
        let close = !request.keep_alive;
        if let Some(tracker) = self.status_page(&request.target) {
            let page = tracker.page();
            response::head(conn, 200, "text/plain", page.len() as u64, close)?;
            if !head_only {
                conn.send(page.as_bytes())?;
            }
            return self.close_if(conn, close);
        }
        let path = match &request.target {
            Target::Root => return self.hello(conn, head_only, close),
            Target::Path(path) => match files::normalise(path) {
                Ok(path) => path,
                // A malformed path (400) closes the connection, as nginx's "client sent
                // invalid request"; a name no file has (404) does not.
                Err(status) => {
                    let close = close || status == 400;
                    response::error(conn, status, head_only, close)?;
                    return self.close_if(conn, close);
                }
            },
        };
        if path == "/" {
            return self.hello(conn, head_only, close);
        }
        match path.strip_prefix("/static/") {
            Some(name) => self.serve_file(conn, &request, name, close),
            None => {
                response::error(conn, 404, head_only, close)?;
                self.close_if(conn, close)
            }
        }
    }

    /// Answers `GET /` or `HEAD /`.
    fn hello(&mut self, conn: &mut Conn, head_only: bool, close: bool) -> io::Result<()> {
        response::hello(conn, head_only, close)?;
        self.close_if(conn, close)
    }

    /// The connection's tracker, if `target` is the status page's path (with `--status`).
    fn status_page(&self, target: &Target) -> Option<&Tracker> {
        let status = self.config.status.as_ref()?;
        let path = match target {
            Target::Root => "/",
            Target::Path(path) => path,
        };
        match status.is_page(path) {
            true => self.tracker.as_deref(),
            false => None,
        }
    }

    /// Answers `GET` or `HEAD` of `/static/NAME` (`name` decoded): the file, a part of it
    /// (206), `304 Not Modified`, or `416 Range Not Satisfiable`.
    fn serve_file(
        &mut self,
        conn: &mut Conn,
        request: &Request,
        name: &str,
        close: bool,
    ) -> io::Result<()> {
        let head_only = request.method == Method::Head;
        let found = match files::open(&self.config.root, name) {
            Ok(found) => found,
            Err(status) => {
                response::error(conn, status, head_only, close)?;
                return self.close_if(conn, close);
            }
        };
        let cond = &request.conditions;
        let etag = found.mtime.map(|mtime| conditional::etag(mtime, found.len));
        // nginx's validators, in its order: `Last-Modified`, then (after `Connection`) `ETag`.
        let last_modified = found.mtime.map(response::http_date);
        let last_modified = last_modified.as_deref();
        let mut extra = match &etag {
            Some(etag) => format!("ETag: {etag}\r\n"),
            None => String::new(),
        };
        let (if_none_match, if_modified_since) = (
            cond.if_none_match.as_deref(),
            cond.if_modified_since.as_deref(),
        );
        if conditional::not_modified(
            if_none_match,
            if_modified_since,
            found.mtime,
            etag.as_deref(),
        ) {
            // No body, no `Content-Type`, `Content-Length` or `Accept-Ranges` (as nginx).
            response::head_with(conn, 304, None, close, last_modified, &extra)?;
            return self.close_if(conn, close);
        }
        let part = conditional::range(
            cond.range.as_deref(),
            cond.if_range.as_deref(),
            found.len,
            found.mtime,
            etag.as_deref(),
        );
        let (status, first, len) = match part {
            Part::Whole => {
                extra.push_str("Accept-Ranges: bytes\r\n");
                (200, 0, found.len)
            }
            Part::Bytes { first, last } => {
                let size = found.len;
                extra.push_str(&format!("Content-Range: bytes {first}-{last}/{size}\r\n"));
                (206, first, last - first + 1)
            }
            Part::Unsatisfiable => {
                // Without the validators, as nginx.
                let extra = format!("Content-Range: bytes */{}\r\n", found.len);
                response::error_with(conn, 416, head_only, close, &extra)?;
                return self.close_if(conn, close);
            }
        };
        let body = Some((found.ctype, len));
        response::head_with(conn, status, body, close, last_modified, &extra)?;
        if head_only {
            return self.close_if(conn, close);
        }
        match Download::new(found, first, len) {
            Ok(download) => self.download = Some(download),
            Err(e) => {
                log::warn!("seeking in a file: {e}; closing the connection");
                self.closing = true;
                conn.abort(); // the head promised a body
                return Ok(());
            }
        }
        self.close_after = close;
        self.pump(conn)
    }

    /// Queues more of the file being sent; once it is all queued, closes the connection or
    /// answers the requests that waited for it.
    fn pump(&mut self, conn: &mut Conn) -> io::Result<()> {
        let Some(download) = self.download.as_mut() else {
            return Ok(());
        };
        match download.pump(conn) {
            Ok(false) => return Ok(()),
            Ok(true) => self.download = None,
            Err(e) => {
                log::warn!("sending a file: {e}; closing the connection");
                self.download = None;
                self.closing = true;
                conn.abort(); // the client was promised more bytes than it can get
                return Ok(());
            }
        }
        if self.close_after {
            return self.close_if(conn, true);
        }
        while self.download.is_none() && !self.closing {
            let Some(parsed) = self.waiting.pop_front() else {
                break;
            };
            self.answer(conn, parsed)?;
        }
        Ok(())
    }

    /// Answers `status` and closes.
    fn fail(&mut self, conn: &mut Conn, status: u16, head_only: bool) -> io::Result<()> {
        response::error(conn, status, head_only, true)?;
        self.close_if(conn, true)
    }

    /// Closes the connection once its queue is written, if `close`.
    fn close_if(&mut self, conn: &mut Conn, close: bool) -> io::Result<()> {
        if close {
            self.closing = true;
            self.waiting.clear();
            conn.close();
        }
        Ok(())
    }
}

/// What a loop does with each connection: wraps it, with its own session, and registers it.
/// With `--status`, counts it in `status`, this loop's counters: accepted now, handled once
/// registered, and followed by a tracker, shared by its codec and its session, until it closes.
fn accepted(config: Arc<Config>, status: Option<LoopStatus>) -> loops::Accepted {
    Box::new(move |sel, stream| {
        let tracker = status.as_ref().map(LoopStatus::accepted);
        // Replies are written whole, once per batch: no reason to wait for ACKs (nginx's
        // `tcp_nodelay on`).
        stream.set_nodelay(true)?;
        let mut session = Session::new(config.clone(), tracker.clone());
        let watcher = tracker
            .clone()
            .map(|tracker| tracker as Rc<dyn request::Watcher>);
        let codec = RequestCodec::new(config.max_header).with_watcher(watcher);
        Connection::new(stream, codec)
            .with_timeouts(config.timeouts)
            .register(sel, move |_sel, conn, event| session.on_event(conn, event))?;
        if let Some(tracker) = tracker {
            tracker.handled();
        }
        Ok(())
    })
}

const USAGE: &str = "usage: http_server [ADDR] [--threads N] [--no-reuseport] [--root DIR]
                   [--max-header BYTES] [--header-timeout SECS] [--idle-timeout SECS]
                   [--status PATH]

  ADDR                   where to listen (default 127.0.0.1:8080)
  --threads N            loops, one per thread, 1 to 1024 (default 1)
  --no-reuseport         with --threads on Linux: one listener, its loop handing connections
                         to the others (default: one SO_REUSEPORT listener per loop)
  --root DIR             the directory GET /static/NAME serves files from (default: the
                         current directory)
  --max-header BYTES     the longest request head; longer gets 431 (default 8192)
  --header-timeout SECS  a request head not complete SECS after its first byte gets 408 and
                         the connection is closed (default 10)
  --idle-timeout SECS    close a connection with no traffic for SECS (default 75)
  --status PATH          GET and HEAD of PATH (e.g. /nginx_status) answer nginx's stub_status
                         page: connections open, accepted and handled, requests, and how many
                         connections are reading, writing or waiting (default: no such page)
  -h, --help             this help
SECS may be fractional (0.5). GET / answers \"Hello, World!\\n\"; GET and HEAD only.
Ctrl-C or SIGTERM stops it, reporting how many connections it closed.";

struct Options {
    addr: String,
    threads: usize,
    reuse_port: bool,
    root: PathBuf,
    max_header: usize,
    timeouts: Timeouts,
    status: Option<String>,
}

fn parse_args(parser: &mut lexopt::Parser) -> Result<Options, lexopt::Error> {
    use lexopt::prelude::*;
    let mut addr = None;
    let mut options = Options {
        addr: String::new(),
        threads: 1,
        reuse_port: true,
        root: PathBuf::from("."),
        max_header: 8 << 10,
        timeouts: Timeouts {
            idle: Some(Duration::from_secs(75)),
            frame: Some(Duration::from_secs(10)),
            send: None, // a client that stops reading moves no byte: the idle timeout ends it
        },
        status: None,
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("threads") => options.threads = cli::number(parser, "--threads", 1..=1024)?,
            Long("no-reuseport") => options.reuse_port = false,
            Long("root") => options.root = PathBuf::from(parser.value()?),
            Long("max-header") => options.max_header = cli::bytes(parser, "--max-header")?,
            Long("header-timeout") => {
                options.timeouts.frame = Some(cli::secs(parser, "--header-timeout")?);
            }
            Long("idle-timeout") => {
                options.timeouts.idle = Some(cli::secs(parser, "--idle-timeout")?)
            }
            Long("status") => options.status = Some(status_path(parser.value()?)?),
            Value(value) if addr.is_none() => addr = Some(cli::addr(value)?),
            Short('h') | Long("help") => cli::help(USAGE),
            _ => return Err(arg.unexpected()),
        }
    }
    options.addr = addr.unwrap_or_else(|| "127.0.0.1:8080".into());
    Ok(options)
}

/// The value of `--status`: a path as requests name it — starting with `/`, and with no query,
/// fragment, space or control character, which a request's path never has.
fn status_path(value: OsString) -> Result<String, lexopt::Error> {
    use lexopt::ValueExt;
    let path = value.string()?;
    let odd = |c: char| c == '?' || c == '#' || c.is_whitespace() || c.is_control();
    if path.starts_with('/') && !path.contains(odd) {
        return Ok(path);
    }
    let shown = match path.is_empty() || path.contains(odd) {
        true => format!("{path:?}"),
        false => path,
    };
    let what = "not a request path (one starting with /, without a query: e.g. /nginx_status)";
    Err(format!("--status {shown}: {what}").into())
}

fn main() -> ExitCode {
    let options = cli::parse(USAGE, parse_args);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli::status(run(options))
}

fn run(options: Options) -> io::Result<()> {
    let addr = cli::resolve(&options.addr).map_err(cli::about(&options.addr))?;
    let config = Arc::new(Config {
        root: paths::Root::open(&options.root)?, // its error names --root
        max_header: options.max_header,
        timeouts: options.timeouts,
        status: options
            .status
            .map(|path| Arc::new(Status::new(path, options.threads))),
    });
    // Called once on each loop's thread: that loop's counters.
    let factory = move || {
        let status = config.status.as_ref().map(Status::for_loop);
        accepted(config.clone(), status)
    };
    loops::serve::<TcpStream, RequestCodec, _>(
        "http_server",
        addr,
        options.threads,
        options.reuse_port,
        factory,
    )
}
