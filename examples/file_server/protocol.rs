//! The file server's wire protocol, shared by the server, `file_client` and the tests (which
//! include this file with `#[path]`). Specified byte by byte, with a worked example, in
//! `docs/file_server_protocol.md`; in short:
//!
//! - Everything is a **frame**: a 4-byte big-endian length, then that many bytes (selectloop's
//!   `LengthPrefixed` codec), at most [`MAX_FRAME`] bytes.
//! - A **header** is a frame of at most [`MAX_HEADER`] bytes of UTF-8 text: a verb and its
//!   arguments, separated by single spaces; a file name comes last and runs to the end of the
//!   frame (so it may contain spaces).
//! - A **body** (a file, a listing) is announced by its length in a header, then sent as chunk
//!   frames of 1 to [`CHUNK`] bytes that add up to exactly that length, then a trailer header
//!   `CRC <8 hex digits>`: the CRC-32 (IEEE, Python's `zlib.crc32`) of the body's bytes.
//!
//! Requests: `LIST`, `GET <offset> <name>`, `PUT <size> <name>`, `DELETE <name>`, `QUIT`.
//! Replies: `DATA <length>` (then a body), `READY` (send the upload's body now), `OK [<size>]`,
//! `ERR <code> <message>`.

#![allow(dead_code)] // the server, the client and the tests each use their own part

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};

/// The largest frame: a body chunk's payload, or a header (which has a lower limit of its own).
pub const MAX_FRAME: usize = CHUNK;
/// The largest header (request or reply), in bytes.
pub const MAX_HEADER: usize = 4096;
/// The largest body chunk, in bytes: the unit files are read, sent and written in.
pub const CHUNK: usize = 64 << 10;
/// The longest file name, in bytes of UTF-8 (most file systems allow 255).
pub const MAX_NAME: usize = 255;

/// A request, parsed from a header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `LIST`: the files in the root, as a body of lines `<size> <name>\n`, sorted by name.
    List,
    /// `GET <offset> <name>`: the file's bytes from `offset` on.
    Get { name: String, offset: u64 },
    /// `PUT <size> <name>`: store a file of `size` bytes, sent after the server's `READY`.
    Put { name: String, size: u64 },
    /// `DELETE <name>`.
    Delete { name: String },
    /// `QUIT`: the server replies `OK` and closes the connection.
    Quit,
}

impl fmt::Display for Request {
    /// The header's text, as sent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::List => write!(f, "LIST"),
            Request::Get { name, offset } => write!(f, "GET {offset} {name}"),
            Request::Put { name, size } => write!(f, "PUT {size} {name}"),
            Request::Delete { name } => write!(f, "DELETE {name}"),
            Request::Quit => write!(f, "QUIT"),
        }
    }
}

/// Why a request is refused: the code and message of an `ERR` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The header is not a request: unknown verb, missing or extra argument, not UTF-8.
    BadRequest,
    /// The name is not acceptable (see [`check_name`]) or leads out of the root.
    BadName,
    /// No such file.
    NotFound,
    /// The upload is larger than the server accepts.
    TooLarge,
    /// `GET`'s offset is past the end of the file.
    Range,
    /// The body's CRC-32 does not match its trailer's.
    Checksum,
    /// The server has as many clients as it accepts, all in the middle of a transfer (with
    /// one idle, it closes that one instead).
    Busy,
    /// The server could not read or write the file.
    Io,
}

impl Code {
    pub const ALL: [Code; 8] = [
        Code::BadRequest,
        Code::BadName,
        Code::NotFound,
        Code::TooLarge,
        Code::Range,
        Code::Checksum,
        Code::Busy,
        Code::Io,
    ];

    /// The code as it is written in an `ERR` reply.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "bad-request",
            Code::BadName => "bad-name",
            Code::NotFound => "not-found",
            Code::TooLarge => "too-large",
            Code::Range => "range",
            Code::Checksum => "checksum",
            Code::Busy => "busy",
            Code::Io => "io",
        }
    }
}

/// An `ERR` reply: a code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
}

impl Refusal {
    pub fn new(code: Code, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// The reply header: `ERR <code> <message>`, cut to fit a header (the message is ours, but
    /// may quote a name).
    pub fn header(&self) -> String {
        let mut text = format!("ERR {} {}", self.code.as_str(), self.message);
        if text.len() > MAX_HEADER {
            let mut end = MAX_HEADER;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code.as_str())
    }
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal::new(Code::BadRequest, message)
}

/// Parses a request header. Never panics, whatever the bytes; allocates at most their length.
///
/// # Errors
///
/// `bad-request` for anything that is not one of the five requests, `bad-name` for a name
/// [`check_name`] refuses. Numbers are decimal `u64`s, digits only (no sign, no spaces).
pub fn parse_request(frame: &[u8]) -> Result<Request, Refusal> {
    if frame.len() > MAX_HEADER {
        let msg = format!(
            "a header of {} bytes; the limit is {MAX_HEADER}",
            frame.len()
        );
        return Err(bad(msg));
    }
    let text = std::str::from_utf8(frame).map_err(|_| bad("the header is not UTF-8"))?;
    let (verb, rest) = match text.split_once(' ') {
        Some((verb, rest)) => (verb, Some(rest)),
        None => (text, None),
    };
    let name = |rest: &str| -> Result<String, Refusal> {
        check_name(rest)?;
        Ok(rest.to_string())
    };
    match (verb, rest) {
        ("LIST", None) => Ok(Request::List),
        ("QUIT", None) => Ok(Request::Quit),
        ("GET", Some(rest)) => {
            let (offset, rest) = number_then(rest, "GET <offset> <name>")?;
            Ok(Request::Get {
                name: name(rest)?,
                offset,
            })
        }
        ("PUT", Some(rest)) => {
            let (size, rest) = number_then(rest, "PUT <size> <name>")?;
            Ok(Request::Put {
                name: name(rest)?,
                size,
            })
        }
        ("DELETE", Some(rest)) => Ok(Request::Delete { name: name(rest)? }),
        ("LIST" | "QUIT", Some(_)) => Err(bad(format!("{verb} takes no argument"))),
        ("GET" | "PUT" | "DELETE", None) => Err(bad(format!("{verb} needs arguments"))),
        _ => Err(bad(format!("unknown request {:?}", clip(verb)))),
    }
}

/// A decimal number, a space, and the rest.
fn number_then<'a>(text: &'a str, usage: &str) -> Result<(u64, &'a str), Refusal> {
    let Some((number, rest)) = text.split_once(' ') else {
        return Err(bad(format!("expected {usage}")));
    };
    Ok((parse_number(number)?, rest))
}

/// A decimal `u64`: digits only.
pub fn parse_number(text: &str) -> Result<u64, Refusal> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("{:?} is not a number", clip(text))));
    }
    text.parse()
        .map_err(|_| bad(format!("{:?} is more than 2^64 - 1", clip(text))))
}

/// The start of `text`, for messages: at most 64 bytes of it.
fn clip(text: &str) -> &str {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Checks that `name` can only mean a file directly in the server's root, on every platform.
///
/// Refused: the empty name and names over [`MAX_NAME`] bytes; `/` and `\` (no directories, no
/// absolute paths), `:` (drive letters, NTFS streams), NUL and other control characters, and
/// the characters Windows forbids (`< > " | ? *`); names starting with `.` (`.`, `..`,
/// hidden files, and the server's own temporary files) or ending with `.` or a space (Windows
/// drops those, so two names would mean one file); and Windows' device names (`CON`, `PRN`,
/// `AUX`, `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9`, also with an extension, in any case). Symbolic
/// links are the server's business: it refuses those that lead out of the root.
///
/// # Errors
///
/// `bad-name`, saying why.
pub fn check_name(name: &str) -> Result<(), Refusal> {
    let refuse = |why: &str| {
        Err(Refusal::new(
            Code::BadName,
            format!("{:?}: {why}", clip(name)),
        ))
    };
    if name.is_empty() {
        return refuse("an empty name");
    }
    if name.len() > MAX_NAME {
        return refuse(&format!("longer than {MAX_NAME} bytes"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c.is_control() || "/\\:<>\"|?*".contains(c))
    {
        return refuse(&format!("{c:?} is not allowed in a name (no paths)"));
    }
    if name.starts_with('.') {
        return refuse("names starting with '.' are not served");
    }
    if name.ends_with(['.', ' ']) {
        return refuse("a name may not end with '.' or a space");
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    let upper = stem.to_ascii_uppercase();
    let device = matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && upper.as_bytes()[3].is_ascii_digit());
    if device {
        return refuse("a Windows device name");
    }
    Ok(())
}

/// A reply, parsed from a header (the client's side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `DATA <length>`: a body follows.
    Data(u64),
    /// `READY`: send the upload's body.
    Ready,
    /// `OK` or `OK <size>`.
    Ok(Option<u64>),
    /// `ERR <code> <message>`.
    Err { code: String, message: String },
}

/// Parses a reply header.
///
/// # Errors
///
/// `InvalidData` if it is not a reply.
pub fn parse_reply(frame: &[u8]) -> io::Result<Reply> {
    let invalid = || {
        let text = String::from_utf8_lossy(&frame[..frame.len().min(64)]).into_owned();
        invalid_data(format!("not a reply: {text:?}"))
    };
    let text = std::str::from_utf8(frame).map_err(|_| invalid())?;
    let number = |n: &str| parse_number(n).map_err(|_| invalid());
    match text.split_once(' ') {
        None if text == "READY" => Ok(Reply::Ready),
        None if text == "OK" => Ok(Reply::Ok(None)),
        Some(("OK", n)) => Ok(Reply::Ok(Some(number(n)?))),
        Some(("DATA", n)) => Ok(Reply::Data(number(n)?)),
        Some(("ERR", rest)) => {
            let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
            Ok(Reply::Err {
                code: code.to_string(),
                message: message.to_string(),
            })
        }
        _ => Err(invalid()),
    }
}

/// The trailer after a body: `CRC <8 lowercase hex digits>`.
pub fn crc_trailer(crc: u32) -> String {
    format!("CRC {crc:08x}")
}

/// Parses a trailer; `None` if the header is not one.
pub fn parse_crc(frame: &[u8]) -> Option<u32> {
    let hex = frame.strip_prefix(b"CRC ")?;
    if hex.len() != 8 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

pub fn invalid_data(msg: impl Into<String>) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg.into())
}

// --- Blocking helpers: the client's side (file_client, the tests) ---------------------------

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|_| payload.len() <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "frame over MAX_FRAME"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(payload)
}

/// Reads one frame of at most `max` bytes into `buf` (replacing its contents).
///
/// # Errors
///
/// `UnexpectedEof` if the stream ends before the frame does, `InvalidData` if its header
/// announces more than `max` (nothing is allocated for it).
pub fn read_frame_into(r: &mut impl Read, max: usize, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header)?;
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(invalid_data(format!(
            "a frame of {len} bytes, over the limit of {max}"
        )));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf)
}

/// Reads one reply header.
pub fn read_reply(r: &mut impl Read) -> io::Result<Reply> {
    let mut buf = Vec::new();
    read_frame_into(r, MAX_HEADER, &mut buf)?;
    parse_reply(&buf)
}

/// Reads a body of `len` bytes (chunk frames, then the trailer), giving each chunk to `sink`,
/// and checks its CRC-32.
///
/// # Errors
///
/// `InvalidData` for a chunk that is empty or overruns `len`, a missing trailer, or a CRC
/// mismatch; the reader's and the sink's errors.
pub fn read_body(
    r: &mut impl Read,
    len: u64,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let (mut left, mut crc, mut buf) = (len, crc32fast::Hasher::new(), Vec::with_capacity(CHUNK));
    while left > 0 {
        read_frame_into(r, CHUNK, &mut buf)?;
        if buf.is_empty() || buf.len() as u64 > left {
            let n = buf.len();
            return Err(invalid_data(format!(
                "a body chunk of {n} bytes with {left} bytes of the body left"
            )));
        }
        crc.update(&buf);
        sink(&buf)?;
        left -= buf.len() as u64;
    }
    read_frame_into(r, MAX_HEADER, &mut buf)?;
    let theirs = parse_crc(&buf).ok_or_else(|| {
        let text = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
        invalid_data(format!("expected the body's CRC trailer, got {text:?}"))
    })?;
    let ours = crc.finalize();
    if ours != theirs {
        return Err(invalid_data(format!(
            "CRC mismatch: the body's bytes give {ours:08x}, the sender says {theirs:08x}"
        )));
    }
    Ok(())
}

/// Sends `len` bytes from `source` as a body (chunk frames, then the trailer); `progress` is
/// told each chunk's size. Returns the CRC-32 sent.
///
/// # Errors
///
/// `UnexpectedEof` if `source` ends before `len` bytes; the writer's errors.
pub fn write_body(
    w: &mut impl Write,
    source: &mut impl Read,
    len: u64,
    mut progress: impl FnMut(u64),
) -> io::Result<u32> {
    let (mut left, mut crc, mut buf) = (len, crc32fast::Hasher::new(), vec![0u8; CHUNK]);
    while left > 0 {
        let want = left.min(CHUNK as u64) as usize;
        let n = match source.read(&mut buf[..want]) {
            Ok(0) => {
                let msg = format!("the file ended {left} bytes short of its announced size");
                return Err(io::Error::new(ErrorKind::UnexpectedEof, msg));
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        crc.update(&buf[..n]);
        write_frame(w, &buf[..n])?;
        left -= n as u64;
        progress(n as u64);
    }
    let crc = crc.finalize();
    write_frame(w, crc_trailer(crc).as_bytes())?;
    Ok(crc)
}
