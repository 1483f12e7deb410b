//! Static files: `GET /static/NAME` serves the file NAME of the root directory, streamed in
//! chunks with back-pressure.
//!
//! The path is first made what nginx makes of it (`ngx_http_parse_complex_uri`):
//! [`normalise`] percent-decodes it (`%XX`; a malformed escape is a 400; it must then be UTF-8,
//! or it names no file: 404), merges slashes (`//` is `/`) and resolves dot segments (`./` is
//! dropped, `sub/../` removed), so that `/static/./a.txt`, `/static//a.txt` and
//! `/static/sub/../a.txt` all name `a.txt`. A `..` that would climb above `/` is a 400, as in
//! nginx. Only what is then under `/static/` is a file's NAME, and it goes through the file
//! server's checks (`examples/file_server/paths.rs`, included as is): one plain file name — no `/` or `\` (so no subdirectory either), no `..` nor any name
//! starting with `.`, no control character (NUL included), no drive letter or Windows device
//! name — and a symbolic link is followed only to a regular file inside the root. A refused
//! name is a 403, a missing file or anything but a regular file (a directory) a 404. Checking
//! after decoding means `%2e%2e%2f` is treated exactly as `../` is.
//!
//! A file is never read whole: [`Download::pump`] reads 64 KiB chunks while the connection's
//! queue is under its high-water mark, and is called again on `ConnEvent::Drained`.

use crate::paths::Root;
use crate::protocol::Code;
use crate::Conn;
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Seek, SeekFrom};
use std::time::UNIX_EPOCH;

/// How much of a file is read at a time.
const CHUNK: usize = 64 << 10;

thread_local! {
    /// The thread's chunk buffer, shared by its downloads (one reads at a time).
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A file to send: its size, content type and modification time, opened.
#[derive(Debug)]
pub struct Found {
    pub file: File,
    pub len: u64,
    pub ctype: &'static str,
    /// Seconds since the Unix epoch; `None` if the system has none (or one before 1970): the
    /// reply then has no `Last-Modified` and no `ETag`.
    pub mtime: Option<u64>,
}

/// A request's path as nginx normalises it: percent-decoded, slashes merged, `.` and `..`
/// segments resolved (a trailing `/` kept). `Err(400)` for a malformed escape or a `..` above
/// `/`, `Err(404)` if the decoded bytes are not UTF-8 (no name this server serves is not).
pub fn normalise(raw: &str) -> Result<String, u16> {
    let decoded = percent_decode(raw.as_bytes()).ok_or(400u16)?;
    let path = String::from_utf8(decoded).map_err(|_| 404u16)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable(); // the path starts with `/`
    let mut dir = false; // the path ends with `/` (or a dot segment, which names a directory)
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        match part {
            "" => dir = last,
            "." => dir = true,
            ".." => {
                segments.pop().ok_or(400u16)?;
                dir = true;
            }
            _ => {
                segments.push(part);
                dir = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if dir || segments.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Opens the file NAME of the root (`name` decoded, from [`normalise`]), or says which status
/// refuses it.
pub fn open(root: &Root, name: &str) -> Result<Found, u16> {
    let (_, real) = root.existing(name).map_err(|refusal| match refusal.code {
        Code::NotFound => 404u16,
        Code::BadName => 403,
        _ => 500,
    })?;
    let file = File::open(real).map_err(|e| match e.kind() {
        ErrorKind::NotFound => 404u16,
        ErrorKind::PermissionDenied => 403,
        _ => 500,
    })?;
    let meta = file.metadata().map_err(|_| 500u16)?;
    if !meta.is_file() {
        return Err(404); // replaced by something else since it was checked
    }
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    Ok(Found {
        file,
        len: meta.len(),
        ctype: content_type(name),
        mtime: mtime.map(|since| since.as_secs()),
    })
}

/// `%XX` escapes decoded; `None` if a `%` is not followed by two hex digits.
pub fn percent_decode(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
        let (hi, lo) = (hex(bytes.next())?, hex(bytes.next())?);
        out.push((hi * 16 + lo) as u8);
    }
    Some(out)
}

/// The content type of a file, by its extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "md" | "rs" => "text/plain; charset=utf-8",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// A file body being sent.
#[derive(Debug)]
pub struct Download {
    file: File,
    /// Bytes not queued yet.
    left: u64,
}

impl Download {
    /// The bytes `first..first + len` of the file.
    pub fn new(mut found: Found, first: u64, len: u64) -> io::Result<Download> {
        if first > 0 {
            found.file.seek(SeekFrom::Start(first))?;
        }
        Ok(Download {
            left: len,
            file: found.file,
        })
    }

    /// Queues chunks while the queue is at most its high-water mark; true once all is queued.
    /// Stopping only above the mark makes the connection pause reading meanwhile, and owe a
    /// `Drained` (when `pump` is called again).
    ///
    /// # Errors
    ///
    /// A read error, or the file ending before the length announced (it shrank while being
    /// sent): the reply cannot be completed, and the caller aborts the connection.
    pub fn pump(&mut self, conn: &mut Conn) -> io::Result<bool> {
        let high_water = conn.limits().high_water;
        BUF.with_borrow_mut(|buf| {
            buf.resize(CHUNK, 0);
            while self.left > 0 && conn.queued() <= high_water {
                let want = self.left.min(CHUNK as u64) as usize;
                let n = match self.file.read(&mut buf[..want]) {
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    result => result?,
                };
                if n == 0 {
                    let msg = "the file ended before the length announced (it shrank)";
                    return Err(io::Error::new(ErrorKind::UnexpectedEof, msg));
                }
                conn.send(&buf[..n])?;
                self.left -= n as u64;
            }
            Ok(self.left == 0)
        })
    }
}
