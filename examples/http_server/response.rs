//! Replies: status lines and headers, written straight into a connection's queue.
//!
//! The headers are nginx's, so that a benchmark against it compares like with like: the status
//! line, `Server`, `Date`, `Content-Type`, `Content-Length`, then `Connection: keep-alive` or
//! `Connection: close` (nginx says `keep-alive` to HTTP/1.1 clients too; an HTTP/1.0 client
//! needs it to know the connection stays open).
//!
//! `Date` is an IMF-fixdate (RFC 9110 5.6.7, `Sun, 06 Nov 1994 08:49:37 GMT`), formatted here
//! from `SystemTime` at most once a second per thread. With it, the whole reply to `GET /` is
//! kept ready per thread and rebuilt when the second changes: answering it is one clock read
//! and one copy into the queue, with no allocation.

use selectloop::{ByteStream, Codec, Connection};
use std::cell::RefCell;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// The body of `GET /`.
pub const HELLO: &[u8] = b"Hello, World!\n";

/// The reason phrase of each status this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Unknown",
    }
}

/// The IMF-fixdate of `secs` seconds after the Unix epoch (UTC), e.g.
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]; // 1970-01-01: Thu
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[month as usize - 1],
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The (year, month 1-12, day 1-31) of the proleptic Gregorian calendar `days` days after
/// 1970-01-01. Counts in 400-year eras (146,097 days each) of years starting on 1 March, so
/// that the leap day falls at the end of a year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // 0 = March .. 11 = February
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// What a thread keeps ready: the date, and the replies to `GET /`.
struct Cache {
    /// The second `date` is for (`u64::MAX`: none yet).
    second: u64,
    date: String,
    /// The reply to `GET /`, keeping the connection open, and closing it.
    hello: [Vec<u8>; 2],
    /// The length of their heads (what `HEAD /` gets).
    hello_head: [usize; 2],
    /// Where other heads are assembled before being queued.
    scratch: Vec<u8>,
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache {
            second: u64::MAX,
            date: String::new(),
            hello: [Vec::new(), Vec::new()],
            hello_head: [0, 0],
            scratch: Vec::new(),
        })
    };
}

impl Cache {
    /// Brings the date (and what contains it) up to the current second.
    fn refresh(&mut self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if now == self.second {
            return;
        }
        self.second = now;
        self.date = http_date(now);
        for (i, close) in [false, true].into_iter().enumerate() {
            let mut reply = Vec::new();
            write_head(
                &mut reply,
                &self.date,
                200,
                "text/plain",
                HELLO.len() as u64,
                close,
            );
            self.hello_head[i] = reply.len();
            reply.extend_from_slice(HELLO);
            self.hello[i] = reply;
        }
    }
}

/// Appends a head: status line, the headers, and the empty line.
fn write_head(out: &mut Vec<u8>, date: &str, status: u16, ctype: &str, len: u64, close: bool) {
    write_head_with(out, date, status, Some((ctype, len)), close, None, "");
}

/// Appends a head with `Content-Type` and `Content-Length` if `body` says them (a 304 has
/// neither, as nginx sends it), `Last-Modified` if given, and `extra` (whole header lines, each
/// ending with CRLF) after `Connection`: nginx's order.
fn write_head_with(
    out: &mut Vec<u8>,
    date: &str,
    status: u16,
    body: Option<(&str, u64)>,
    close: bool,
    last_modified: Option<&str>,
    extra: &str,
) {
    let connection = if close { "close" } else { "keep-alive" };
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nServer: selectloop\r\nDate: {date}\r\n",
        reason(status)
    );
    if let Some((ctype, len)) = body {
        let _ = write!(out, "Content-Type: {ctype}\r\nContent-Length: {len}\r\n");
    }
    if let Some(last_modified) = last_modified {
        let _ = write!(out, "Last-Modified: {last_modified}\r\n");
    }
    let _ = write!(out, "Connection: {connection}\r\n{extra}");
    if status == 405 {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Queues the reply to `GET /` (its head only for `HEAD /`).
pub fn hello<S: ByteStream, C: Codec>(
    conn: &mut Connection<S, C>,
    head_only: bool,
    close: bool,
) -> io::Result<()> {
    CACHE.with_borrow_mut(|cache| {
        cache.refresh();
        let i = usize::from(close);
        let end = match head_only {
            true => cache.hello_head[i],
            false => cache.hello[i].len(),
        };
        conn.send(&cache.hello[i][..end])
    })
}

/// Queues a head announcing a body of `len` bytes of type `ctype` (sent by the caller).
pub fn head<S: ByteStream, C: Codec>(
    conn: &mut Connection<S, C>,
    status: u16,
    ctype: &str,
    len: u64,
    close: bool,
) -> io::Result<()> {
    head_with(conn, status, Some((ctype, len)), close, None, "")
}

/// Queues a head with `Content-Type` and `Content-Length` if `body` gives them,
/// `Last-Modified` if given, and the header lines `extra` (each ending with CRLF).
pub fn head_with<S: ByteStream, C: Codec>(
    conn: &mut Connection<S, C>,
    status: u16,
    body: Option<(&str, u64)>,
    close: bool,
    last_modified: Option<&str>,
    extra: &str,
) -> io::Result<()> {
    CACHE.with_borrow_mut(|cache| {
        cache.refresh();
        let Cache { date, scratch, .. } = cache;
        scratch.clear();
        write_head_with(scratch, date, status, body, close, last_modified, extra);
        conn.send(scratch)
    })
}

/// Queues an error reply: its status and reason as a short text body (the head only for
/// `HEAD`). A 405 lists the methods allowed.
pub fn error<S: ByteStream, C: Codec>(
    conn: &mut Connection<S, C>,
    status: u16,
    head_only: bool,
    close: bool,
) -> io::Result<()> {
    error_with(conn, status, head_only, close, "")
}

/// Queues an error reply with the header lines `extra` (each ending with CRLF).
pub fn error_with<S: ByteStream, C: Codec>(
    conn: &mut Connection<S, C>,
    status: u16,
    head_only: bool,
    close: bool,
    extra: &str,
) -> io::Result<()> {
    let body = format!("{status} {}\n", reason(status));
    let len = body.len() as u64;
    head_with(conn, status, Some(("text/plain", len)), close, None, extra)?;
    match head_only {
        true => Ok(()),
        false => conn.send(body.as_bytes()),
    }
}

/// The bytes of a `408 Request Timeout` that closes the connection, for writing to the socket
/// directly (the connection has already given up its queue when a timeout ends it).
pub fn timeout_reply() -> Vec<u8> {
    CACHE.with_borrow_mut(|cache| {
        cache.refresh();
        let body = format!("408 {}\n", reason(408));
        let mut out = Vec::new();
        write_head(
            &mut out,
            &cache.date,
            408,
            "text/plain",
            body.len() as u64,
            true,
        );
        out.extend_from_slice(body.as_bytes());
        out
    })
}
