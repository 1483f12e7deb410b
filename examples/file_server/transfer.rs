//! Bodies in flight: a download streamed on `Drained`, an upload written to a temporary file.
//!
//! A download sends chunk frames while the connection's queue is under its high-water mark,
//! and more on `ConnEvent::Drained`: whatever the file's size or the client's speed, at most
//! the high-water mark plus one chunk is queued. The chunks are read either on the loop
//! thread ([`Download::pump`]) or, with `--executor`, on the executor's threads
//! ([`read_ahead`]), one read in flight per download.
//!
//! An upload's chunks are written to the temporary file as they arrive, on the loop thread; the
//! file is renamed over the target only once the trailer's CRC matches. Dropping an
//! [`Upload`] that was not committed (the client went away, the server stopped, the CRC did not
//! match) removes its temporary file: no partial file, and the old version stays.

use crate::paths::io_refusal;
use crate::protocol::{crc_trailer, Code, Refusal, CHUNK};
use selectloop::{Connection, LengthPrefixed};
use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

pub type Conn = Connection<TcpStream, LengthPrefixed>;

/// What a download reads from.
#[derive(Debug)]
pub enum Body {
    File(File),
    /// A listing, made in memory, and how much of it was read.
    Listing(Vec<u8>, usize),
}

impl Body {
    /// Reads up to `buf.len()` bytes. A file that ends early is an error: it shrank while
    /// being sent, and the client was promised its length.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self {
            Body::File(file) => loop {
                match file.read(buf) {
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    result => break result?,
                }
            },
            Body::Listing(text, at) => {
                let n = buf.len().min(text.len() - *at);
                buf[..n].copy_from_slice(&text[*at..*at + n]);
                *at += n;
                n
            }
        };
        if n == 0 && !buf.is_empty() {
            let msg = "the file ended before the length announced (it shrank while being sent)";
            return Err(io::Error::new(ErrorKind::UnexpectedEof, msg));
        }
        Ok(n)
    }
}

/// A body being sent.
#[derive(Debug)]
pub struct Download {
    /// `None` while a read is on the executor.
    pub body: Option<(Body, crc32fast::Hasher)>,
    /// Bytes not read yet.
    pub left: u64,
    /// Bytes handed to the connection.
    pub sent: u64,
}

impl Download {
    pub fn new(body: Body, len: u64) -> Download {
        Download {
            body: Some((body, crc32fast::Hasher::new())),
            left: len,
            sent: 0,
        }
    }

    /// Reads and sends chunks on the loop thread while the queue is under the high-water mark,
    /// using `buf` (at least [`CHUNK`] bytes). Returns true once the body and its trailer are
    /// all handed over.
    pub fn pump(&mut self, conn: &mut Conn, buf: &mut [u8]) -> io::Result<bool> {
        let high_water = conn.limits().high_water;
        let Some((body, crc)) = self.body.as_mut() else {
            return Ok(false); // a read is on the executor
        };
        while self.left > 0 && conn.queued() < high_water {
            let want = self.left.min(CHUNK as u64) as usize;
            let n = body.read_some(&mut buf[..want])?;
            crc.update(&buf[..n]);
            conn.send_frame(&buf[..n])?;
            self.left -= n as u64;
            self.sent += n as u64;
        }
        self.finish_if_done(conn)
    }

    /// Sends what a read on the executor brought, in chunk frames. Returns true once the body
    /// and its trailer are all handed over.
    pub fn deliver(
        &mut self,
        conn: &mut Conn,
        body: Body,
        crc: crc32fast::Hasher,
        data: &[u8],
    ) -> io::Result<bool> {
        self.body = Some((body, crc));
        for chunk in data.chunks(CHUNK) {
            conn.send_frame(chunk)?;
        }
        self.left -= data.len() as u64;
        self.sent += data.len() as u64;
        self.finish_if_done(conn)
    }

    fn finish_if_done(&mut self, conn: &mut Conn) -> io::Result<bool> {
        match (self.left, &self.body) {
            (0, Some((_, crc))) => {
                conn.send_frame(crc_trailer(crc.clone().finalize()).as_bytes())?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// The work of one read on the executor: up to `want` bytes, and their CRC. Returns the body
/// and CRC state back, with the bytes or the error.
pub fn read_ahead(
    (mut body, mut crc): (Body, crc32fast::Hasher),
    want: usize,
) -> (Body, crc32fast::Hasher, io::Result<Vec<u8>>) {
    let mut data = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match body.read_some(&mut data[got..]) {
            Ok(n) => got += n,
            Err(e) => return (body, crc, Err(e)),
        }
    }
    crc.update(&data);
    (body, crc, Ok(data))
}

/// An upload being received.
#[derive(Debug)]
pub struct Upload {
    target: PathBuf,
    temp: PathBuf,
    /// `None` once a write failed (the rest of the body is read and dropped, then refused).
    file: Option<File>,
    pub size: u64,
    /// Bytes of the body not received yet; at 0, the trailer comes next.
    pub left: u64,
    crc: crc32fast::Hasher,
    failed: Option<Refusal>,
    committed: bool,
}

impl Upload {
    pub fn new(target: PathBuf, (temp, file): (PathBuf, File), size: u64) -> Self {
        Upload {
            target,
            temp,
            file: Some(file),
            size,
            left: size,
            crc: crc32fast::Hasher::new(),
            failed: None,
            committed: false,
        }
    }

    /// Writes a chunk (at most `left` bytes: the caller checks) to the temporary file.
    pub fn write(&mut self, chunk: &[u8]) {
        self.left -= chunk.len() as u64;
        self.crc.update(chunk);
        if let Some(file) = self.file.as_mut() {
            if let Err(e) = file.write_all(chunk) {
                self.failed = Some(io_refusal("writing the upload", &e));
                self.file = None;
            }
        }
    }

    /// The trailer came: checks the CRC and renames the temporary file into place. Returns
    /// the size stored.
    ///
    /// # Errors
    ///
    /// `checksum` if the CRCs differ, `io` if a write or the rename failed: the temporary file
    /// is removed (when `self` is dropped) and the old version stays.
    pub fn commit(mut self, theirs: u32) -> Result<u64, Refusal> {
        if let Some(refusal) = self.failed.take() {
            return Err(refusal);
        }
        let ours = self.crc.clone().finalize();
        if ours != theirs {
            let msg = format!(
                "the body's bytes give CRC {ours:08x}, the trailer says {theirs:08x}; nothing stored"
            );
            return Err(Refusal::new(Code::Checksum, msg));
        }
        drop(self.file.take()); // closed before the rename: Windows renames no open file
        fs::rename(&self.temp, &self.target).map_err(|e| {
            // Windows may refuse to replace a file that is open (Wine always does): one being
            // downloaded. The upload fails whole; the old version stays.
            let what = match e.kind() {
                ErrorKind::PermissionDenied if cfg!(windows) => {
                    "storing the upload (a file being downloaded cannot be replaced on Windows: \
                     try again once no one reads it)"
                }
                _ => "storing the upload",
            };
            io_refusal(what, &e)
        })?;
        self.committed = true;
        Ok(self.size)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.committed {
            drop(self.file.take()); // closed first: Windows deletes no open file
            if let Err(e) = fs::remove_file(&self.temp) {
                log::warn!("removing {}: {e}", self.temp.display());
            }
        }
    }
}
