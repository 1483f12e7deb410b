//! Buffered connections: writes that never block or lose data, back-pressure, framing.
//!
//! The Python tutorials' servers all meet the same three traps. `send()` on a non-blocking
//! socket may take only part of the data, so the poll example keeps a queue per connection and
//! switches its registration to READ|WRITE until the queue drains. A client that sends without
//! reading makes that queue grow without bound. And TCP has no message boundaries. A
//! [`Connection`] handles all three once:
//!
//! - [`send`](Connection::send) writes what the socket takes at once and queues the rest; WRITE
//!   interest is on exactly while the queue is non-empty (check it with `get_key`).
//! - Back-pressure: when the queue passes the high-water mark, the connection stops reading
//!   (READ interest off) until it drains below the low-water mark; the peer's own sends then
//!   block in TCP flow control instead of piling up here.
//! - A [`Codec`] cuts the received bytes into frames, and bounds their size.
//!
//! Memory per connection is bounded by: the read buffer, at most the codec's largest frame
//! plus one read chunk; plus the write queue, at most the high-water mark plus what the last
//! callback sent (a connection never refuses or drops data the program sends).
//!
//! The user's callback receives [`ConnEvent`]s: each decoded frame, then — once — how the
//! connection ended. On end of file from the peer (which may be a half-close: it can still
//! receive) the connection reports `PeerClosed`, flushes what is queued, and closes itself.

use crate::streams::codec::Codec;
use crate::sys::{Backend, FileObj, Source};
use crate::{Events, Selector, SelectorKey, EVENT_READ, EVENT_WRITE};
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};

/// A byte stream a [`Connection`] can drive: a socket that reads, writes and half-closes.
///
/// Implemented for `TcpStream`, and `UnixStream` on Unix.
pub trait ByteStream: Source + Read + Write {
    /// Shuts down the writing half (the peer reads end of file), as `shutdown(SHUT_WR)`.
    fn shutdown_write(&mut self) -> io::Result<()>;
}

impl ByteStream for TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

#[cfg(unix)]
impl ByteStream for std::os::unix::net::UnixStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

/// What a [`Connection`]'s callback is told.
#[derive(Debug)]
pub enum ConnEvent<T> {
    /// A decoded frame.
    Frame(T),
    /// The peer closed its sending half (end of file). The connection flushes what is queued,
    /// then closes; sends made now are still delivered.
    PeerClosed,
    /// The connection is closed and unregistered; the last event. `None` after an orderly
    /// close (by [`close`](Connection::close) or after `PeerClosed`), else the error that ended
    /// it: the peer reset it, a protocol error from the codec, or [`abort`](Connection::abort).
    Closed(Option<io::Error>),
}

/// Buffer sizes of a [`Connection`], set with [`Connection::with_limits`].
///
/// Every combination with `low_water <= high_water` and `read_chunk > 0` is valid, the extremes
/// included; `with_limits` refuses the others with `InvalidInput`.
///
/// # Examples
///
/// ```
/// use selectloop::Limits;
///
/// // Never stop reading, however much is queued for the peer (a trusted peer only: the
/// // write queue is then unbounded), and read at most 4 KiB at a time.
/// let limits = Limits { high_water: usize::MAX, read_chunk: 4096, ..Limits::default() };
/// # let _ = limits;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Stop reading from the peer while more than this many bytes wait to be written
    /// (default 1 MiB). `usize::MAX` means never stop; `0` means stop while anything at all
    /// is queued.
    pub high_water: usize,
    /// Resume reading once the queue is at most this (default 256 KiB). At most `high_water`.
    pub low_water: usize,
    /// How much one read may take (default 64 KiB); also how much the read buffer grows by
    /// when a frame needs more room. Not 0. Values above [`Limits::MAX_READ_CHUNK`] (16 MiB)
    /// are lowered to it, so `usize::MAX` means "as much as allowed".
    pub read_chunk: usize,
}

impl Limits {
    /// The largest `read_chunk` used (16 MiB): larger values are lowered to it. A socket
    /// rarely returns more in one read, and the read buffer is allocated in such chunks.
    pub const MAX_READ_CHUNK: usize = 16 << 20;

    /// These limits with `read_chunk` lowered to [`MAX_READ_CHUNK`](Self::MAX_READ_CHUNK), or
    /// `InvalidInput` if they contradict each other.
    fn checked(self) -> io::Result<Limits> {
        let invalid = |what: String| {
            let msg = format!("Connection::with_limits: {what}");
            Err(io::Error::new(ErrorKind::InvalidInput, msg))
        };
        if self.low_water > self.high_water {
            return invalid(format!(
                "low_water ({}) is above high_water ({}): reading would never resume",
                self.low_water, self.high_water
            ));
        }
        if self.read_chunk == 0 {
            return invalid("read_chunk of 0: a read could never take a byte".to_string());
        }
        Ok(Limits {
            read_chunk: self.read_chunk.min(Self::MAX_READ_CHUNK),
            ..self
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            high_water: 1 << 20,
            low_water: 256 << 10,
            read_chunk: 64 << 10,
        }
    }
}

/// A registered byte stream with a read buffer, a write queue and a codec.
///
/// # Examples
///
/// A line-based upper-casing server's connection:
///
/// ```no_run
/// use selectloop::{ConnEvent, Connection, DefaultSelector, LineCodec};
/// use std::net::TcpStream;
///
/// # fn main() -> std::io::Result<()> {
/// let mut sel = DefaultSelector::new()?;
/// let stream = TcpStream::connect("127.0.0.1:8088")?;
/// stream.set_nonblocking(true)?;
/// Connection::new(stream, LineCodec::new(4096)).register(&mut sel, |_sel, conn, event| {
///     if let ConnEvent::Frame(line) = event {
///         conn.send_frame(&line.to_ascii_uppercase())?; // never blocks, never drops
///     }
///     Ok(())
/// })?;
/// sel.run()
/// # }
/// ```
pub struct Connection<S, C: Codec> {
    stream: S,
    codec: C,
    limits: Limits,
    /// Received bytes not yet decoded: `rbuf[rstart..rend]`. The rest of `rbuf` is zeroed
    /// once, when it grows, and reused: not zeroed again before every read.
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Bytes queued for the peer: `wbuf[wstart..]`.
    wbuf: Vec<u8>,
    wstart: usize,
    /// Above the high-water mark: not reading until below the low-water mark.
    paused: bool,
    /// Closing: flush, then shut down the write half and close.
    closing: bool,
    /// The peer sent end of file: no more reading; flush, then close.
    eof: bool,
    /// Why the connection must end now (reset, protocol error, abort), if it must.
    failed: Option<io::Error>,
}

impl<S, C: Codec> fmt::Debug for Connection<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("buffered_in", &(self.rend - self.rstart))
            .field("queued_out", &(self.wbuf.len() - self.wstart))
            .field("paused", &self.paused)
            .field("closing", &self.closing)
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

// A connection is a source (it is registered) and a file object (it looks itself up).
#[cfg(unix)]
impl<S: std::os::fd::AsFd, C: Codec> std::os::fd::AsFd for Connection<S, C> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

#[cfg(unix)]
impl<S: std::os::fd::AsFd, C: Codec> std::os::fd::AsRawFd for Connection<S, C> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.stream.as_fd())
    }
}

#[cfg(windows)]
impl<S: std::os::windows::io::AsSocket, C: Codec> std::os::windows::io::AsSocket
    for Connection<S, C>
{
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.stream.as_socket()
    }
}

#[cfg(windows)]
impl<S: std::os::windows::io::AsSocket, C: Codec> std::os::windows::io::AsRawSocket
    for Connection<S, C>
{
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        std::os::windows::io::AsRawSocket::as_raw_socket(&self.stream.as_socket())
    }
}

impl<S: ByteStream, C: Codec> Connection<S, C> {
    /// Wraps a non-blocking stream. Register it with [`register`](Self::register).
    pub fn new(stream: S, codec: C) -> Self {
        Connection {
            stream,
            codec,
            limits: Limits::default(),
            rbuf: Vec::new(),
            rstart: 0,
            rend: 0,
            wbuf: Vec::new(),
            wstart: 0,
            paused: false,
            closing: false,
            eof: false,
            failed: None,
        }
    }

    /// Sets the buffer limits (see [`Limits`]); a `read_chunk` above
    /// [`Limits::MAX_READ_CHUNK`] is lowered to it ([`limits`](Self::limits) shows the result).
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `low_water > high_water` or `read_chunk == 0`.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::{Bytes, Connection, Limits};
    /// use std::io::ErrorKind;
    /// use std::net::{TcpListener, TcpStream};
    ///
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let stream = TcpStream::connect(listener.local_addr()?)?;
    /// # let stream2 = stream.try_clone()?;
    /// let limits = Limits { high_water: 4096, low_water: 1024, read_chunk: usize::MAX };
    /// let conn = Connection::new(stream, Bytes).with_limits(limits)?;
    /// assert_eq!(conn.limits().read_chunk, Limits::MAX_READ_CHUNK);
    ///
    /// let backwards = Limits { high_water: 1024, low_water: 4096, ..limits };
    /// let err = Connection::new(stream2, Bytes).with_limits(backwards).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidInput);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn with_limits(mut self, limits: Limits) -> io::Result<Self> {
        self.limits = limits.checked()?;
        Ok(self)
    }

    /// The buffer limits in force (after the lowering [`with_limits`](Self::with_limits) does).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Registers the connection for READ; `callback` receives its [`ConnEvent`]s.
    ///
    /// # Errors
    ///
    /// As for [`Selector::register`].
    pub fn register<B: Backend>(
        self,
        sel: &mut Selector<B>,
        mut callback: impl FnMut(&mut Selector<B>, &mut Self, ConnEvent<C::Item>) -> io::Result<()>
            + 'static,
    ) -> io::Result<SelectorKey> {
        sel.register(self, EVENT_READ, move |sel, conn: &mut Self, mask| {
            conn.on_ready(sel, mask, &mut callback)
        })
    }

    /// Runs `f` on the connection registered as `key`, from outside its callback (a timer,
    /// another connection), then writes what `f` sent and updates the connection's interest.
    /// If `f` closed or aborted it, the connection's callback finishes the job (and gets
    /// `Closed`) in the next loop iteration.
    ///
    /// # Errors
    ///
    /// As for [`Selector::source_mut`]: `NotFound` if `key` is gone, `ResourceBusy` from the
    /// connection's own callback (which has `conn` already).
    pub fn with<B: Backend, R>(
        sel: &mut Selector<B>,
        key: &SelectorKey,
        f: impl FnOnce(&mut Self) -> R,
    ) -> io::Result<R> {
        let conn: &mut Self = sel.source_mut(key)?;
        let result = f(conn);
        conn.flush();
        let events = conn.next_interest();
        if events != sel.get_key(key)?.events() {
            sel.modify(key, events)?;
        }
        Ok(result)
    }

    /// Queues `data` for the peer. Never blocks, never drops: it is written when the callback
    /// returns, as much as the socket takes, and the rest as the peer reads (see the module
    /// docs on back-pressure).
    ///
    /// # Errors
    ///
    /// `NotConnected` if the connection is closing or failed: the data would never arrive.
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.check_open()?;
        self.wbuf.extend_from_slice(data);
        Ok(())
    }

    /// Encodes `frame` with the codec and [`send`](Self::send)s it.
    ///
    /// # Errors
    ///
    /// The codec's error (e.g. the frame is over its limit: nothing is sent), or as for `send`.
    pub fn send_frame(&mut self, frame: &C::Frame) -> io::Result<()> {
        self.check_open()?;
        let len = self.wbuf.len();
        let result = self.codec.encode(frame, &mut self.wbuf);
        if result.is_err() {
            self.wbuf.truncate(len); // a codec may fail after appending part of the frame
        }
        result
    }

    /// Closes the connection once everything queued is written: then shuts down the write half
    /// (the peer reads end of file) and closes it. Reading stops now. The callback gets
    /// `Closed(None)` at the end.
    pub fn close(&mut self) {
        self.closing = true;
    }

    /// Closes the connection now, dropping whatever is queued. The callback gets
    /// `Closed(Some(error))` with kind `ConnectionAborted`.
    pub fn abort(&mut self) {
        self.wbuf.clear();
        self.wstart = 0;
        let err = io::Error::new(ErrorKind::ConnectionAborted, "aborted by the program");
        self.failed.get_or_insert(err);
    }

    /// The number of bytes queued for the peer.
    pub fn queued(&self) -> usize {
        self.wbuf.len() - self.wstart
    }

    /// The stream itself (to read its address, set options...). Reading or writing it directly
    /// bypasses the buffers.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    fn check_open(&self) -> io::Result<()> {
        if self.closing || self.failed.is_some() {
            let msg = "the connection is closing: data sent now would never arrive";
            return Err(io::Error::new(ErrorKind::NotConnected, msg));
        }
        Ok(())
    }

    /// The events to wait for: READ unless paused or closing, WRITE while data is queued. Once
    /// the connection is done (failed, or closing with nothing queued), WRITE alone, so that its
    /// callback runs at once (a socket with room, or reset, is writable) and finishes it.
    fn next_interest(&mut self) -> Events {
        let queued = self.queued();
        if queued > self.limits.high_water {
            self.paused = true;
        } else if queued <= self.limits.low_water {
            self.paused = false;
        }
        let mut events = Events::NONE;
        if !self.paused && !self.closing && !self.eof && self.failed.is_none() {
            events |= EVENT_READ;
        }
        if queued > 0 || self.done() {
            events |= EVENT_WRITE;
        }
        events
    }

    /// True when the connection should end now: it failed, or it is closing with nothing left
    /// to write.
    fn done(&self) -> bool {
        self.failed.is_some() || ((self.closing || self.eof) && self.queued() == 0)
    }

    /// Writes queued bytes until the socket is full; a write error fails the connection.
    fn flush(&mut self) {
        while self.queued() > 0 && self.failed.is_none() {
            match write_some(&mut self.stream, &self.wbuf[self.wstart..]) {
                Ok(0) => break, // the socket is full
                Ok(n) => self.wstart += n,
                Err(e) => self.failed = Some(e),
            }
        }
        if self.wstart == self.wbuf.len() {
            self.wbuf.clear();
            self.wstart = 0;
        } else if self.wstart > self.wbuf.len() / 2 {
            self.wbuf.drain(..self.wstart);
            self.wstart = 0;
        }
    }

    /// Reads one chunk. Returns false at end of file.
    fn fill(&mut self) -> io::Result<bool> {
        if self.rstart == self.rend {
            (self.rstart, self.rend) = (0, 0);
        } else if self.rstart > self.rend / 2 {
            self.rbuf.copy_within(self.rstart..self.rend, 0);
            (self.rstart, self.rend) = (0, self.rend - self.rstart);
        }
        // `read_chunk` is at most `MAX_READ_CHUNK` and `rend` at most the buffer's length.
        let end = self.rend + self.limits.read_chunk;
        if self.rbuf.len() < end {
            self.rbuf.resize(end, 0);
        }
        let result = self.stream.read(&mut self.rbuf[self.rend..end]);
        self.rend += *result.as_ref().unwrap_or(&0);
        Ok(result? > 0)
    }

    /// The registration's callback: write, read and decode, tell the user, update interest.
    fn on_ready<B: Backend>(
        &mut self,
        sel: &mut Selector<B>,
        mask: Events,
        callback: &mut impl FnMut(&mut Selector<B>, &mut Self, ConnEvent<C::Item>) -> io::Result<()>,
    ) -> io::Result<()> {
        if mask.is_writable() {
            self.flush();
        }
        // READ may be in the mask while reading is paused or over: a report from before.
        if mask.is_readable() && !self.paused && !self.closing && !self.eof && self.failed.is_none()
        {
            let mut eof = false;
            match self.fill() {
                Ok(more) => eof = !more,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => self.failed = Some(e),
            }
            while self.failed.is_none() {
                match self.codec.decode(&self.rbuf[self.rstart..self.rend]) {
                    Ok(Some((frame, used))) => {
                        self.rstart += used;
                        callback(sel, self, ConnEvent::Frame(frame))?;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        log::warn!("fd {}: {e}; closing the connection", self.fileno());
                        self.failed = Some(e);
                    }
                }
            }
            if eof && self.failed.is_none() {
                self.eof = true; // after the frames that came before the end of file
                callback(sel, self, ConnEvent::PeerClosed)?;
            }
            self.flush();
        }
        if self.done() {
            let reason = self.failed.take();
            sel.unregister(self)?; // closed as soon as this callback returns
            if reason.is_none() {
                let _ = self.stream.shutdown_write(); // the peer may be gone already
            }
            self.failed = Some(io::Error::new(ErrorKind::NotConnected, "closed"));
            return callback(sel, self, ConnEvent::Closed(reason));
        }
        let events = self.next_interest();
        if events != sel.get_key(self)?.events() {
            sel.modify(self, events)?;
        }
        Ok(())
    }
}

/// One `write`, with `WouldBlock` and `Interrupted` as "nothing written".
fn write_some(stream: &mut impl Write, data: &[u8]) -> io::Result<usize> {
    match stream.write(data) {
        Ok(n) => Ok(n),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => Ok(0),
        Err(e) => Err(e),
    }
}
