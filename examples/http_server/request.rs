//! The request codec: cuts HTTP/1.x request heads off the received bytes and parses them with
//! `httparse`, for a selectloop `Connection`.
//!
//! A head ends at the first empty line. The codec looks for one in the bytes it has not searched
//! yet (a head trickling in byte by byte costs its length, not its length squared), and only
//! then hands the head to `httparse`, once. What it yields:
//!
//! - [`Parsed::Request`]: the method, the target's path, whether the connection stays open
//!   afterwards (HTTP/1.1: unless `Connection: close`; HTTP/1.0: only with
//!   `Connection: keep-alive`), and whether a body follows (which this server refuses);
//! - [`Parsed::Refused`] with `400` (not HTTP, a bad header, HTTP/1.1 without `Host`, a bad
//!   `Content-Length` or more than one, as RFC 9112 6.3 and nginx refuse them) or `431` (a head
//!   over the limit, or more than [`MAX_HEADERS`] header fields). A refusal takes every byte
//!   given: the server answers it and closes the connection.
//!
//! What cannot be a request is refused as soon as it is seen, not when the head timeout ends
//! it: a first byte that cannot begin a method (a TLS ClientHello, `0x16`, sent to the plain
//! port) at once, and a request line that is not `METHOD TARGET HTTP/1.x` (an HTTP/0.9
//! `GET /`, which has no version and no headers) as soon as its line ends. `httparse` checks
//! the request line alone then, once per head.
//!
//! Refusals are items, not errors: an error from a codec makes the connection close at once,
//! with no chance to answer. At end of file an incomplete head is dropped.
//!
//! With `--status`, the codec also tells the connection's [`Watcher`] when a request's first
//! bytes arrive and when its head is decoded: it alone sees a head begin (`status.rs`).

use std::fmt::Debug;
use std::io;
use std::mem::MaybeUninit;
use std::rc::Rc;

/// The most header fields a request may have; more is a 431. nginx counts none: only its
/// buffers bound a head (`large_client_header_buffers`, 4 of 8 KiB, a line in one), which lets
/// through some 2,000 tiny fields. 100 is Apache httpd's default (`LimitRequestFields`), far
/// more than browsers send (some 10 to 20) or than proxies add, and keeps the parse's field
/// array on the stack (100 slices, 3.2 KiB).
pub const MAX_HEADERS: usize = 100;

/// What a request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// Anything else: answered `405 Method Not Allowed`.
    Other,
}

/// The target's path, without its query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/`, the common case: no allocation.
    Root,
    /// Any other path, as sent (still percent-encoded).
    Path(String),
}

/// The body a request announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    None,
    /// `Content-Length` over 0.
    Length(u64),
    /// A `Transfer-Encoding` (chunked or other).
    Encoded,
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub target: Target,
    /// The connection stays open after the reply, as the version and `Connection` say.
    pub keep_alive: bool,
    pub body: Body,
    /// The head's length in bytes, on the wire.
    pub len: usize,
    /// The conditional and range fields, if any were sent.
    pub conditions: Conditions,
}

/// The fields a file's reply depends on, their values as sent (trimmed; a value that is not
/// UTF-8 is left out, as if not sent). The first of each counts (as in nginx 1.22), but
/// `If-None-Match`, a list, whose fields are joined with `, ` (RFC 9110 5.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub range: Option<String>,
    pub if_range: Option<String>,
}

/// What the codec yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Request(Request),
    /// An HTTP status (400 or 431) to answer before closing.
    Refused(u16),
}

/// What follows a connection's requests for the status page (`status.rs`'s `Tracker`): the
/// codec tells it when they begin and when their heads end.
pub trait Watcher: Debug {
    /// Bytes of a request are here, not decoded yet (called again as more come).
    fn bytes_arrived(&self);
    /// A head was decoded, or refused: what follows is another request.
    fn head_decoded(&self);
}

/// Request heads of at most `max_header` bytes (the empty line included).
#[derive(Clone, Debug)]
pub struct RequestCodec {
    max_header: usize,
    /// How far the bytes at the front were searched for an empty line.
    scanned: usize,
    /// With `--status`: told when a request begins and when its head is decoded.
    watcher: Option<Rc<dyn Watcher>>,
    /// The request line of the head at the front was checked (once per head).
    line_checked: bool,
}

impl RequestCodec {
    pub fn new(max_header: usize) -> RequestCodec {
        RequestCodec {
            max_header,
            scanned: 0,
            watcher: None,
            line_checked: false,
        }
    }

    /// The codec, telling `watcher` when a request begins and when its head is decoded.
    #[allow(dead_code)] // tests/http_codec.rs includes this file without the server
    pub fn with_watcher(mut self, watcher: Option<Rc<dyn Watcher>>) -> RequestCodec {
        self.watcher = watcher;
        self
    }

    /// A refusal taking every byte of `buf`.
    fn refuse(&mut self, status: u16, buf: &[u8]) -> io::Result<Option<(Parsed, usize)>> {
        self.scanned = 0;
        self.line_checked = false;
        Ok(Some((Parsed::Refused(status), buf.len())))
    }

    /// Not complete yet, or over the limit already.
    fn incomplete(&mut self, buf: &[u8]) -> io::Result<Option<(Parsed, usize)>> {
        if buf.len() > self.max_header {
            return self.refuse(431, buf);
        }
        Ok(None)
    }

    /// The next head of `buf`, complete or refused, if there is one yet.
    fn decode_head(&mut self, buf: &[u8]) -> io::Result<Option<(Parsed, usize)>> {
        if buf
            .first()
            .is_some_and(|&b| !is_tchar(b) && b != b'\r' && b != b'\n')
        {
            return self.refuse(400, buf); // no method starts so (0x16: a TLS ClientHello)
        }
        let limit = buf.len().min(self.max_header);
        let mut from = self.scanned.min(limit);
        // Each `\n` followed by `\n` or `\r\n` ends a candidate head (more than one only when
        // empty lines come before the request line, which `httparse` skips).
        while let Some(at) = buf[from..limit].iter().position(|&b| b == b'\n') {
            let nl = from + at;
            if !self.line_checked {
                match check_line(&buf[..=nl]) {
                    Ok(true) => self.line_checked = true,
                    Ok(false) => {} // an empty line before the request line
                    Err(status) => return self.refuse(status, buf),
                }
            }
            let end = match (buf.get(nl + 1), buf.get(nl + 2)) {
                (Some(&b'\n'), _) => nl + 2,
                (Some(&b'\r'), Some(&b'\n')) => nl + 3,
                (None, _) | (Some(&b'\r'), None) => {
                    self.scanned = nl; // look at this `\n` again when more has come
                    return self.incomplete(buf);
                }
                _ => {
                    from = nl + 1;
                    continue;
                }
            };
            if end > self.max_header {
                return self.refuse(431, buf);
            }
            match parse(&buf[..end]) {
                Ok(Some(request)) => {
                    self.scanned = 0;
                    self.line_checked = false;
                    let len = request.len;
                    return Ok(Some((Parsed::Request(request), len)));
                }
                Ok(None) => from = nl + 1, // only empty lines so far
                Err(status) => return self.refuse(status, buf),
            }
        }
        self.scanned = limit;
        self.incomplete(buf)
    }
}

impl selectloop::Codec for RequestCodec {
    type Incoming<'a> = Parsed;
    type Outgoing = [u8];

    fn decode(&mut self, buf: &[u8]) -> io::Result<Option<(Parsed, usize)>> {
        let Some(watcher) = &self.watcher else {
            return self.decode_head(buf);
        };
        if !buf.is_empty() {
            watcher.bytes_arrived();
        }
        let decoded = self.decode_head(buf)?;
        if let (Some(_), Some(watcher)) = (&decoded, &self.watcher) {
            watcher.head_decoded();
        }
        Ok(decoded)
    }

    /// A head cut short by end of file is dropped (the peer will read no reply to it); with
    /// `--status`, it was counted as a request when it began, as nginx counts it.
    fn decode_eof(&mut self, buf: &[u8]) -> io::Result<Option<(Parsed, usize)>> {
        let decoded = self.decode(buf)?;
        self.scanned = 0;
        self.line_checked = false;
        Ok(decoded)
    }

    /// Replies are written with `Connection::send`, not through the codec: bytes as they are.
    fn encode(&mut self, frame: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(frame);
        Ok(())
    }
}

/// A token character (RFC 9110 5.6.2), what a method is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks the first line of `head` (which ends with it, at a `\n`): `Ok(true)` for a request
/// line `httparse` accepts, `Ok(false)` if the line is empty (skipped before a request line),
/// `Err(400)` for anything else — an HTTP/0.9 `GET /`, say, which would otherwise wait for an
/// empty line that never comes.
fn check_line(head: &[u8]) -> Result<bool, u16> {
    let line = head.trim_ascii_start();
    if line.is_empty() {
        return Ok(false); // an empty line (whitespace at most)
    }
    let mut fields = [MaybeUninit::<httparse::Header>::uninit(); 1];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, &mut fields) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => Ok(true),
        Err(_) => Err(400),
    }
}

/// Parses a complete head: `Ok(None)` if it holds only empty lines, `Err(status)` if refused.
fn parse(head: &[u8]) -> Result<Option<Request>, u16> {
    let mut fields = [MaybeUninit::<httparse::Header>::uninit(); MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(head, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    };
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(400); // a complete parse has all three
    };
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => Method::Other,
    };
    if !path.starts_with('/') {
        return Err(400); // absolute-form and `*`: not for an origin server of files
    }
    let path = path.split_once('?').map_or(path, |(path, _query)| path);
    let target = match path {
        "/" => Target::Root,
        _ => Target::Path(path.to_string()),
    };
    let (mut close, mut keep_alive, mut host) = (false, false, false);
    let mut length: Option<u64> = None;
    let mut encoded = false;
    let mut conditions = Conditions::default();
    for field in req.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in field.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("host") {
            host = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            let value = content_length(field.value).ok_or(400u16)?;
            if length.is_some() {
                // Two lengths, even equal: a sign of smuggling (RFC 9112 6.3; nginx: "client
                // sent duplicate header line").
                return Err(400);
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            encoded = true;
        } else if name.eq_ignore_ascii_case("if-none-match") {
            if let Some(value) = text(field.value) {
                match &mut conditions.if_none_match {
                    Some(list) => {
                        list.push_str(", ");
                        list.push_str(value);
                    }
                    none => *none = Some(value.to_string()),
                }
            }
        } else {
            let slot = match name.len() {
                5 if name.eq_ignore_ascii_case("range") => &mut conditions.range,
                8 if name.eq_ignore_ascii_case("if-range") => &mut conditions.if_range,
                17 if name.eq_ignore_ascii_case("if-modified-since") => {
                    &mut conditions.if_modified_since
                }
                _ => continue,
            };
            if slot.is_none() {
                *slot = text(field.value).map(str::to_string);
            }
        }
    }
    if minor == 1 && !host {
        return Err(400); // RFC 9112 3.2: a 1.1 request without Host is refused
    }
    let body = match (encoded, length) {
        (true, _) => Body::Encoded,
        (false, Some(len)) if len > 0 => Body::Length(len),
        _ => Body::None,
    };
    Ok(Some(Request {
        method,
        target,
        keep_alive: !close && (minor == 1 || keep_alive),
        body,
        len,
        conditions,
    }))
}

/// A field's value as text, trimmed; `None` if it is not UTF-8.
fn text(value: &[u8]) -> Option<&str> {
    std::str::from_utf8(value.trim_ascii()).ok()
}

/// A `Content-Length` value: decimal digits only (no sign, no spaces inside), no overflow.
fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
