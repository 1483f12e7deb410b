//! Static files: `GET /static/NAME` serves the file NAME of the root directory, streamed in
//! chunks with back-pressure.
//!
//! NAME is percent-decoded first (`%XX`; a malformed escape is a 400), then must be UTF-8, and
//! then goes through the file server's checks (`examples/file_server/paths.rs`, included as is):
//! one plain file name — no `/` or `\` (so no subdirectory either), no `..` nor any name
//! starting with `.`, no control character (NUL included), no drive letter or Windows device
//! name — and a symbolic link is followed only to a regular file inside the root. A refused
//! name is a 403, a missing file or anything but a regular file (a directory) a 404. Checking
//! after decoding means `%2e%2e%2f` is refused exactly as `../` is.
//!
//! A file is never read whole: [`Download::pump`] reads 64 KiB chunks while the connection's
//! queue is under its high-water mark, and is called again on `ConnEvent::Drained`.

use crate::paths::Root;
use crate::protocol::Code;
use crate::Conn;
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, ErrorKind, Read};

/// How much of a file is read at a time.
const CHUNK: usize = 64 << 10;

thread_local! {
    /// The thread's chunk buffer, shared by its downloads (one reads at a time).
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A file to send: its size and content type, opened.
#[derive(Debug)]
pub struct Found {
    pub file: File,
    pub len: u64,
    pub ctype: &'static str,
}

/// Opens the file `/static/` + `raw` names (`raw` still percent-encoded), or says which status
/// refuses it.
pub fn open(root: &Root, raw: &str) -> Result<Found, u16> {
    let decoded = percent_decode(raw.as_bytes()).ok_or(400u16)?;
    let name = String::from_utf8(decoded).map_err(|_| 404u16)?;
    let (_, real) = root.existing(&name).map_err(|refusal| match refusal.code {
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
    Ok(Found {
        file,
        len: meta.len(),
        ctype: content_type(&name),
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
    pub fn new(found: Found) -> Download {
        Download {
            left: found.len,
            file: found.file,
        }
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
