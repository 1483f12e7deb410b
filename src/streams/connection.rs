//! Buffered connections: writes that never block or lose data, back-pressure, framing, and the
//! defences a server needs against careless and hostile peers.
//!
//! What users need to know (the three traps, memory, events, ending a connection from outside
//! its callback) is in [`Connection`]'s docs, which `cargo doc` shows; this file keeps the
//! how.

use crate::reactor::key::SelectorKey;
use crate::reactor::selector::Selector;
use crate::streams::codec::Codec;
use crate::streams::deadlines::{Deadlines, Timer};
use crate::streams::lifecycle::State;
use crate::streams::limits::{Limits, Timeouts};
use crate::streams::read_buffer::{discard_unread, ReadBuffer};
use crate::streams::write_queue::WriteQueue;
use crate::sys::events::{Events, EVENT_READ, EVENT_WRITE};
use crate::sys::{self, Backend, FileObj, Source};
use log::{debug, warn};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::{self, ErrorKind, Read, Write};
use std::marker::PhantomData;
use std::net::{Shutdown, TcpStream};
use std::time::Instant;

/// A byte stream a [`Connection`] can drive: a socket that reads, writes and half-closes.
///
/// Implemented for `TcpStream`, and `UnixStream` on Unix. Implement it for a wrapper to put
/// a protocol layer between the socket and the connection's buffers.
///
/// # A TLS session under a `Connection` (not built yet)
///
/// A TLS session (rustls's `ServerConnection` over a `TcpStream`) is the case this trait must
/// grow for: there, a read may need a write (a handshake message, a key update) and a write a
/// read (the handshake is not over). The plan: a wrapper whose `read` and `write` move records
/// between the session and the socket and return `WouldBlock` while the session waits for the
/// other direction, plus one provided method, `wants_write() -> bool` (false for plain sockets),
/// that the connection adds to its interest, as it does for its own queue. `shutdown_write`
/// would send `close_notify` first. Nothing else of the connection changes: the codec, the
/// queue and the limits work on the plaintext.
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
#[non_exhaustive]
pub enum ConnEvent<T> {
    /// A decoded frame. None comes after the connection began to end (see
    /// [`Closed`](Self::Closed)), nor while more than the high-water mark is queued
    /// ([`Limits::high_water`]): frames received meanwhile wait, undecoded, until the queue
    /// drains to the low-water mark.
    ///
    /// A frame may borrow the connection's read buffer: the codecs of this crate lend `&[u8]`
    /// (no copy, no allocation), valid for this call. Copy what must outlive it
    /// (`frame.to_vec()`); [`send`](Connection::send) and
    /// [`send_frame`](Connection::send_frame) copy it into the write queue.
    Frame(T),
    /// The write queue has fallen to the low-water mark ([`Limits::low_water`]) after holding
    /// more (counting what `send` queued before the connection wrote any of it): send more now
    /// (asyncio's `resume_writing`, Node's `'drain'`). Once per crossing; not after
    /// [`close`](Connection::close) or a failure.
    ///
    /// A program that produces data sends while [`queued`](Connection::queued) is under the
    /// high-water mark, then waits for this: the queue then never holds more than the
    /// high-water mark plus one of its sends.
    Drained,
    /// The peer closed its sending half (end of file). The connection flushes what is queued,
    /// then closes; sends made now are still delivered.
    PeerClosed,
    /// The connection is closed and unregistered; the last event. `None` after an orderly
    /// close (by [`close`](Connection::close) or after `PeerClosed`), else the error that ended
    /// it: the peer reset it, a protocol error from the codec (`InvalidData`, or
    /// `UnexpectedEof` for a frame cut short), [`abort`](Connection::abort)
    /// (`ConnectionAborted`), a [timeout](Timeouts) (`TimedOut`), an output cap
    /// ([`Limits::hard_cap`], [`Limits::soft_cap`]: `OutOfMemory`), or an error the callback
    /// returned (that error).
    Closed(Option<io::Error>),
}

/// A registered byte stream with a read buffer, a write queue, a codec, and optional limits
/// and timeouts: writes that never block or lose data, back-pressure, framing, and the
/// defences a server needs against careless and hostile peers.
///
/// The Python tutorials' servers all meet the same three traps. `send()` on a non-blocking
/// socket may take only part of the data, so the poll example keeps a queue per connection and
/// switches its registration to READ|WRITE until the queue drains. A client that sends without
/// reading makes that queue grow without bound. And TCP has no message boundaries. A
/// [`Connection`] handles all three once:
///
/// - [`send`](Connection::send) queues; the queue is written when the callback returns, as much
///   as the socket takes, and the rest as the peer reads. WRITE interest is on exactly while
///   the queue is non-empty (check it with `get_key`).
/// - Back-pressure: when the queue passes the high-water mark, the connection stops reading
///   (READ interest off) and stops handing frames to the callback — frames already received
///   wait in the read buffer, undecoded — until it drains to the low-water mark; the peer's own
///   sends then block in TCP flow control instead of piling up here. A peer that pipelines
///   requests and reads the replies slowly costs at most the high-water mark plus one reply,
///   and loses nothing. A program that produces data itself
///   (a file, a broadcast) sends while [`queued`](Connection::queued) is under the high-water
///   mark, and sends more on [`ConnEvent::Drained`] (asyncio's `resume_writing`, Node's
///   `'drain'`).
/// - A [`Codec`] cuts the received bytes into frames, bounds their size, and decides what a
///   frame cut short by end of file means ([`Codec::decode_eof`]).
///
/// And against peers that do not play along, [`Limits`] caps the output queue (Redis's
/// `client-output-buffer-limit`) and [`Timeouts`] ends idle, slowloris and never-reading peers
/// (nginx's `keepalive_timeout`, `client_header_timeout`, `send_timeout`).
///
/// # Memory
///
/// A connection that waits holds no buffer at all: nothing undecoded, nothing queued, nothing
/// allocated. Reads go into one buffer per thread, zeroed once and lent to one read at a time;
/// a connection keeps only what its codec could not decode yet (the start of a frame), in a
/// buffer of its own sized to it, and gives its write queue up once drained. Frames are decoded
/// in place and lent to the callback ([`ConnEvent::Frame`]): an echo or a line protocol in
/// steady state allocates nothing per message. Keeping the read
/// buffer of a connection's first read (zeroed, as `Read` needs) would cost every idle
/// connection a read chunk; releasing it after each read instead would allocate and zero a read
/// chunk again for every read. The shared buffer avoids both (the figures, and how to measure
/// them, are in docs/performance.md).
///
/// A drained write queue is not simply freed either: a producer that empties its queue and
/// fills it again would pay a fresh allocation (and, above 128 KiB, fresh pages) each time,
/// which slowed bulk sending several-fold (docs/performance.md). So the thread keeps two
/// emptied queues, the largest lately of up to 64 KiB and of 64 KiB to 4 MiB, and a send into
/// an empty queue takes the one that fits, if it is at most 16 times what it needs: a small
/// reply never holds a large buffer. The bounds:
///
/// - **waiting** (every byte received was decoded, nothing queued): no buffer memory;
/// - **receiving a frame**: its bytes so far — up to 4 KiB in a buffer of exactly that size;
///   longer, in the connection's own buffer read into directly (copying it in and out of the
///   shared one at every read would cost its length squared), of which at most the codec's
///   largest frame plus one read chunk is used (the allocation grows by doubling, so it may
///   reach twice that, the rest untouched); given up once the frame is decoded;
/// - **sending**: the queue: up to the high-water mark plus what one callback sends (plus one
///   send, for a program that sends on `Drained` while under the mark), and never more than
///   the hard cap once the callback has returned;
/// - **per thread**: the shared read buffer, one read chunk (64 KiB by default) plus 4 KiB, and
///   the two spare queues, at most 64 KiB and 4 MiB.
///
/// [`buffer_memory`](Connection::buffer_memory) shows what a connection holds.
///
/// # Events
///
/// The user's callback receives [`ConnEvent`]s: each decoded frame, `Drained`, `PeerClosed` —
/// then, once, `Closed` with how the connection ended. On end of file from the peer (which may
/// be a half-close: it can still receive) the connection decodes what is left
/// (`decode_eof`), reports `PeerClosed`, flushes what is queued, and closes itself.
///
/// However a connection ends, no frame follows the end: after [`close`](Connection::close)
/// (what is queued is flushed whole, then `Closed(None)`), [`abort`](Connection::abort), a cap
/// passed, a timeout, a protocol error or an error returned by the callback (each then
/// `Closed(Some(error))`), frames received and not yet handed over are dropped; after
/// `PeerClosed` there are none left. An error the callback returns (other than `WouldBlock` and
/// `Interrupted`, ignored as in [`Selector::dispatch`]) ends that connection as a failure:
/// logged at `warn`, its queue dropped, and `Closed` carries the error — the selector's error
/// handler does not see it.
///
/// # Ending a connection from outside its callback
///
/// A connection ends in its registration's callback, which owns the user's callback. Readiness
/// is not enough to get there: a socket whose peer does not read never becomes writable. So
/// whatever ends a connection from elsewhere — its timer firing, or
/// [`Connection::with`] after `abort()`, `close()` with nothing queued, or a hard cap passed —
/// has that callback called without readiness, with [`Selector::dispatch_soon`] and an empty
/// mask (libuv's feeding): in the [`call_soon`](Selector::call_soon) phase of the loop
/// iteration, so the user's callback never runs inside the caller of `with`, which may hold a
/// `RefCell` borrow the callback needs too. That is a loop service, run by `run_once`/`run`; a
/// bare `select()`/`dispatch()` loop finishes such a connection when its socket is next
/// reported (WRITE interest is on), and fires no timeouts.
///
/// # Examples
///
/// The connection of a line-based upper-casing client (the server side registers the streams
/// it accepts the same way):
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
    /// Received bytes not decoded yet (`read_buffer.rs`).
    input: ReadBuffer,
    /// Bytes queued for the peer (`write_queue.rs`). Released once drained.
    out: WriteQueue,
    /// Where the connection is between registered and closed (`lifecycle.rs`).
    state: State,
    /// Back-pressure: more than the high-water mark was queued; not reading (nor handing
    /// frames over) until the queue is down to the low-water mark.
    paused: bool,
    /// More than `low_water` bytes were queued since the last `Drained`.
    above_low: bool,
    /// The timeouts and soft cap, and when their clocks started (`deadlines.rs`).
    deadlines: Deadlines,
    /// Bytes read from and written to the socket so far.
    received: u64,
    sent: u64,
    /// The key of the connection's registration, as of its last callback: found again by its
    /// token (an index), not by hashing the descriptor (see `own_key`).
    key: Option<SelectorKey>,
}

/// The key of a registered [`Connection`], with its types: what
/// [`register`](Connection::register) returns, and [`key`](Connection::key) gives its callback.
///
/// From any callback (a timer's, another connection's), it reaches that connection without
/// naming its types again: [`send`](Self::send) and [`send_frame`](Self::send_frame) queue for
/// it, [`with`](Self::with) runs any code on it. What goes wrong there stays that connection's:
/// a connection that is closing, gone, or pushed over its cap by the send ends as its own
/// [`Limits`] and callback say (the callback gets `Closed`), and the caller only learns whether
/// the bytes were queued — a broadcast does not fail because one recipient did.
///
/// Keys compare and hash by registration, as [`SelectorKey`]s do: use them in a `HashMap` or
/// `HashSet`. A `ConnKey` is also a [`FileObj`]: pass it to [`Selector::get_key`],
/// [`Selector::unregister`] and the other lookups.
///
/// # Examples
///
/// A broadcast to every connection but the sender:
///
/// ```
/// use selectloop::{ConnKey, Connection, DefaultSelector, LineCodec, Selector};
/// use std::io::{BufRead, BufReader};
/// use std::net::{TcpListener, TcpStream};
///
/// type Key = ConnKey<TcpStream, LineCodec>;
///
/// fn broadcast(sel: &mut Selector, to: &[Key], from: Key, line: &[u8]) {
///     for key in to.iter().filter(|&&key| key != from) {
///         key.send_frame(sel, line); // false if it is closing or gone: its callback knows
///     }
/// }
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let mut sel = DefaultSelector::new()?;
/// let mut keys = Vec::new();
/// for _ in 0..3 {
///     let stream = TcpStream::connect(listener.local_addr()?)?;
///     stream.set_nonblocking(true)?;
///     let conn = Connection::new(stream, LineCodec::new(1024));
///     keys.push(conn.register(&mut sel, |_, _, _| Ok(()))?);
/// }
/// broadcast(&mut sel, &keys, keys[0], b"hello");
/// let (_first, _) = listener.accept()?; // the peer of keys[0]: told nothing
/// let (second, _) = listener.accept()?; // the peer of keys[1]
/// let mut line = String::new();
/// BufReader::new(second).read_line(&mut line)?;
/// assert_eq!(line, "hello\n");
/// # std::io::Result::Ok(())
/// ```
pub struct ConnKey<S, C> {
    key: SelectorKey,
    types: PhantomData<fn() -> (S, C)>,
}

impl<S, C> ConnKey<S, C> {
    fn new(key: SelectorKey) -> Self {
        ConnKey {
            key,
            types: PhantomData,
        }
    }

    /// The key of the registration, without the connection's types.
    pub fn key(&self) -> SelectorKey {
        self.key
    }
}

impl<S: ByteStream, C: Codec> ConnKey<S, C> {
    /// Runs `f` on the connection: [`Connection::with`].
    ///
    /// # Errors
    ///
    /// As for [`Connection::with`]: `NotFound` if the connection is gone, `ResourceBusy` from
    /// its own callback (which has `conn` already).
    pub fn with<B: Backend, R>(
        &self,
        sel: &mut Selector<B>,
        f: impl FnOnce(&mut Connection<S, C>) -> R,
    ) -> io::Result<R> {
        Connection::with(sel, &self.key, f)
    }

    /// Queues `data` for the connection ([`Connection::send`]) and writes what its socket takes
    /// now. Returns whether it was queued: not if the connection is closing or gone, or if this
    /// is called from its own callback (which sends with `conn.send`). A send that takes it
    /// over its hard cap ends it (its callback gets `Closed`), and returns `true`.
    pub fn send<B: Backend>(&self, sel: &mut Selector<B>, data: &[u8]) -> bool {
        matches!(self.with(sel, |conn| conn.send(data)), Ok(Ok(())))
    }

    /// Encodes `frame` with the connection's codec and queues it, as [`send`](Self::send)
    /// does; also `false` if the codec refuses the frame.
    pub fn send_frame<B: Backend>(&self, sel: &mut Selector<B>, frame: &C::Outgoing) -> bool {
        matches!(self.with(sel, |conn| conn.send_frame(frame)), Ok(Ok(())))
    }
}

impl<S, C> Clone for ConnKey<S, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, C> Copy for ConnKey<S, C> {}

impl<S, C> PartialEq for ConnKey<S, C> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl<S, C> Eq for ConnKey<S, C> {}

impl<S, C> Hash for ConnKey<S, C> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl<S, C> fmt::Debug for ConnKey<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnKey").field(&self.key).finish()
    }
}

impl<S, C> FileObj for ConnKey<S, C> {
    fn fileno(&self) -> sys::RawSource {
        self.key.fileno()
    }

    fn registration(&self) -> Option<usize> {
        self.key.registration()
    }
}

impl<S, C> From<ConnKey<S, C>> for SelectorKey {
    fn from(key: ConnKey<S, C>) -> SelectorKey {
        key.key
    }
}

impl<S, C: Codec> fmt::Debug for Connection<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("buffered_in", &self.input.len())
            .field("queued_out", &self.out.len())
            .field("received", &self.received)
            .field("sent", &self.sent)
            .field("paused", &self.paused)
            .field("state", &self.state)
            .field("limits", &self.limits)
            .field("timeouts", &self.deadlines.timeouts())
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
    #[must_use = "a connection does nothing until registered; dropped, it closes its stream"]
    pub fn new(stream: S, codec: C) -> Self {
        Connection {
            stream,
            codec,
            limits: Limits::default(),
            input: ReadBuffer::default(),
            out: WriteQueue::default(),
            state: State::Open,
            paused: false,
            above_low: false,
            deadlines: Deadlines::default(),
            received: 0,
            sent: 0,
            key: None,
        }
    }

    /// Sets the buffer limits and output caps (see [`Limits`]); a `read_chunk` above
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
    /// let limits = Limits { high_water: 4096, low_water: 1024, read_chunk: usize::MAX, ..Limits::default() };
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
        self.deadlines.set_soft_cap(&self.limits);
        Ok(self)
    }

    /// The buffer limits in force (after the lowering [`with_limits`](Self::with_limits) does).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Sets the timeouts (see [`Timeouts`]): every value is valid, `Duration::ZERO` meaning
    /// "at once" and `Duration::MAX` "never".
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::{Connection, LineCodec, Timeouts};
    /// use std::net::{TcpListener, TcpStream};
    /// use std::time::Duration;
    ///
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let stream = TcpStream::connect(listener.local_addr()?)?;
    /// let timeouts = Timeouts { frame: Some(Duration::from_secs(10)), ..Timeouts::default() };
    /// let conn = Connection::new(stream, LineCodec::new(4096)).with_timeouts(timeouts);
    /// assert_eq!(conn.timeouts().frame, Some(Duration::from_secs(10)));
    /// # std::io::Result::Ok(())
    /// ```
    #[must_use = "the connection with timeouts is the returned one"]
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.deadlines.set_timeouts(timeouts);
        self
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.deadlines.timeouts()
    }

    /// Registers the connection for READ; `callback` receives its [`ConnEvent`]s.
    ///
    /// What was [`send`](Self::send) before (a greeting) goes out once the loop runs, without
    /// waiting for the peer to send anything; after a [`close`](Self::close) before
    /// `register`, it goes out and then the connection closes (the callback gets only
    /// `Closed`).
    ///
    /// An error `callback` returns ends this connection (logged at `warn`; its queue is
    /// dropped, and `callback` gets `Closed` with that error), not the loop; `WouldBlock` and
    /// `Interrupted` are ignored.
    ///
    /// With timeouts or a soft cap, the connection's timer is first scheduled in the next loop
    /// iteration ([`run_once`](Selector::run_once)); the idle timeout counts from now.
    ///
    /// # Errors
    ///
    /// As for [`Selector::register`].
    pub fn register<B: Backend>(
        mut self,
        sel: &mut Selector<B>,
        mut callback: impl FnMut(&mut Selector<B>, &mut Self, ConnEvent<C::Incoming<'_>>) -> io::Result<()>
            + 'static,
    ) -> io::Result<ConnKey<S, C>> {
        let timed = self.deadlines.on();
        if timed {
            self.deadlines.moved(Instant::now()); // the idle timeout counts from now
        }
        let mut timer = Timer::default();
        // Interest as after any callback: WRITE too if something was sent (or the connection
        // closed) before it was registered, so that a greeting goes out at once.
        let events = self.next_interest();
        let key = sel.register(self, events, move |sel, conn: &mut Self, mask| {
            conn.on_ready(sel, mask, &mut callback, &mut timer)
        })?;
        let conn: &mut Self = sel.source_mut(&key)?;
        conn.key = Some(key);
        if timed {
            sel.dispatch_soon(&key, Events::NONE); // schedules the timer
        }
        Ok(ConnKey::new(key))
    }

    /// The key of this connection's registration: the one [`register`](Self::register)
    /// returned. From its callback, to tell this connection from the others of a
    /// `HashMap<ConnKey<_, _>, _>`; still this key at [`ConnEvent::Closed`], when the connection
    /// is already unregistered, so the program can forget it by its key then.
    ///
    /// # Errors
    ///
    /// `NotFound` before `register`.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::{ConnEvent, ConnKey, Connection, DefaultSelector, LineCodec};
    /// use std::collections::HashMap;
    /// use std::net::{TcpListener, TcpStream};
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// type Names = HashMap<ConnKey<TcpStream, LineCodec>, String>;
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let mut sel = DefaultSelector::new()?;
    /// let names: Rc<RefCell<Names>> = Rc::default();
    /// let stream = TcpStream::connect(listener.local_addr()?)?;
    /// stream.set_nonblocking(true)?;
    /// let conn = Connection::new(stream, LineCodec::new(1024));
    /// assert!(conn.key().is_err()); // not registered yet
    /// let n = names.clone();
    /// let key = conn.register(&mut sel, move |_sel, conn, event| {
    ///     if let ConnEvent::Closed(_) = event {
    ///         n.borrow_mut().remove(&conn.key()?); // unregistered, still its key
    ///     }
    ///     Ok(())
    /// })?;
    /// names.borrow_mut().insert(key, "guest".into());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn key(&self) -> io::Result<ConnKey<S, C>> {
        let key = self.key.ok_or_else(|| {
            let fd = FileObj::fileno(self);
            let msg = format!("key of connection fd {fd:?}: not registered");
            io::Error::new(ErrorKind::NotFound, msg)
        })?;
        Ok(ConnKey::new(key))
    }

    /// Runs `f` on the connection registered as `key`, from outside its callback (a timer,
    /// another connection), then writes what `f` sent and updates the connection's interest.
    ///
    /// If the connection must end now — `f` aborted it, closed it with nothing queued, or the
    /// queue is over the hard cap once written — its callback gets `Closed` in the
    /// [`call_soon`](Selector::call_soon) phase of the loop iteration under way (from a
    /// callback or a timer) or of the next one, whatever its socket's readiness (in a bare
    /// `select()`/`dispatch()` loop: when the socket is next reported). So do `Drained`, and
    /// the frames that waited while the queue was over the high-water mark, if the queue is
    /// written down to the low-water mark at once. The callback never runs inside `with`.
    ///
    /// # Errors
    ///
    /// As for [`Selector::source_mut`]: `NotFound` if `key` is gone, `ResourceBusy` from the
    /// connection's own callback (which has `conn` already).
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::{Bytes, ConnEvent, Connection, DefaultSelector};
    /// use std::io::ErrorKind;
    /// use std::net::{TcpListener, TcpStream};
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// # let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let mut sel = DefaultSelector::new()?;
    /// let stream = TcpStream::connect(listener.local_addr()?)?;
    /// stream.set_nonblocking(true)?;
    /// let ended = Rc::new(RefCell::new(None));
    /// let e = ended.clone();
    /// let key = Connection::new(stream, Bytes).register(&mut sel, move |_, _, event| {
    ///     if let ConnEvent::Closed(reason) = event {
    ///         *e.borrow_mut() = reason.map(|err| err.kind());
    ///     }
    ///     Ok(())
    /// })?;
    /// Connection::<TcpStream, Bytes>::with(&mut sel, &key, |conn| conn.abort())?;
    /// sel.run_once(None)?; // the callback gets `Closed` in this iteration
    /// assert_eq!(*ended.borrow(), Some(ErrorKind::ConnectionAborted));
    /// assert!(sel.is_empty());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn with<B: Backend, R>(
        sel: &mut Selector<B>,
        key: &(impl FileObj + ?Sized),
        f: impl FnOnce(&mut Self) -> R,
    ) -> io::Result<R> {
        let conn: &mut Self = sel.source_mut(key)?;
        let result = f(conn);
        let now = conn.deadlines.on().then(Instant::now);
        conn.flush(now);
        conn.check_hard_cap();
        let reading = conn.reading();
        let unarmed = |now| conn.deadlines.unarmed(now, reading);
        let wake = conn.done() || conn.drain_owed() || now.is_some_and(unarmed);
        let events = conn.next_interest();
        let key = sel.get_key(key)?;
        if events != key.events() {
            sel.modify(&key, events)?;
        }
        if wake {
            sel.dispatch_soon(&key, Events::NONE);
        }
        Ok(result)
    }

    /// Queues `data` for the peer. Never blocks, never drops: it is written when the callback
    /// returns (before [`register`](Self::register): in the loop's first iteration), as much
    /// as the socket takes, and the rest as the peer reads (see [`Connection`] on
    /// back-pressure, and [`ConnEvent::Drained`]).
    ///
    /// # Errors
    ///
    /// `NotConnected` if the connection is closing or failed: the data would never arrive.
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.check_open()?;
        self.out.push(data);
        Ok(())
    }

    /// Encodes `frame` with the codec and [`send`](Self::send)s it.
    ///
    /// # Errors
    ///
    /// The codec's error (e.g. the frame is over its limit: nothing is sent), or as for `send`.
    pub fn send_frame(&mut self, frame: &C::Outgoing) -> io::Result<()> {
        self.check_open()?;
        let codec = &mut self.codec;
        self.out.push_with(|buf| codec.encode(frame, buf))
    }

    /// Closes the connection once everything queued is written: then shuts down the write half
    /// (the peer reads end of file) and closes it. Reading stops now: no frame comes after
    /// this call, not even one received in the same read (those are dropped), nor `Drained`
    /// or `PeerClosed`. The callback gets `Closed(None)` at the end.
    ///
    /// What the peer sent meanwhile and was not read (requests pipelined behind the last one
    /// answered) is read and dropped before the socket is closed, up to 256 KiB: TCP answers a
    /// close with unread input with a reset, which would throw away the part of the last
    /// replies the peer has not received yet. Bytes arriving after the close still cause one.
    ///
    /// A peer that never reads keeps the queue, and so the connection, forever: that is what
    /// [`Timeouts::send`] and the caps in [`Limits`] are for.
    pub fn close(&mut self) {
        self.state.close();
    }

    /// Closes the connection now, dropping whatever is queued, whether or not its peer reads.
    /// The callback gets `Closed(Some(error))` with kind `ConnectionAborted` — when this
    /// callback returns, or, from [`with`](Self::with), promptly (see there).
    pub fn abort(&mut self) {
        let err = io::Error::new(ErrorKind::ConnectionAborted, "aborted by the program");
        self.fail_dropping_queue(err);
    }

    /// The number of bytes queued for the peer.
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// The number of bytes received and not decoded yet: the start of a frame.
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    /// True while reading is paused because more than the high-water mark was queued (until
    /// the queue is down to the low-water mark).
    pub fn is_reading_paused(&self) -> bool {
        self.paused
    }

    /// The number of bytes read from the socket so far.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    /// The number of bytes written to the socket so far (accepted by the OS, not necessarily
    /// read by the peer yet). `bytes_sent() + queued()` is everything sent so far, unless the
    /// queue was dropped (abort, a cap, a timeout).
    pub fn bytes_sent(&self) -> u64 {
        self.sent
    }

    /// The bytes of memory this connection's buffers hold: the capacity of its read buffer and
    /// of its write queue (as Redis's `CLIENT LIST` shows `qbuf` and `omem`). The thread's
    /// shared read buffer is not counted. 0 for a waiting connection (see
    /// [memory](Connection#memory)).
    pub fn buffer_memory(&self) -> usize {
        self.input.capacity() + self.out.capacity()
    }

    /// The stream itself (to read its address, set options...). Reading or writing it directly
    /// bypasses the buffers.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    fn check_open(&self) -> io::Result<()> {
        if !self.state.may_send() {
            let msg = "the connection is closing: data sent now would never arrive";
            return Err(io::Error::new(ErrorKind::NotConnected, msg));
        }
        Ok(())
    }

    /// True while the connection reads from its peer.
    #[inline]
    fn reading(&self) -> bool {
        !self.paused && self.state.reads()
    }

    /// True when `Drained` is due: the queue is down to the low-water mark after holding more,
    /// and the program may still send.
    #[inline]
    fn drain_owed(&self) -> bool {
        self.above_low && self.down_to_low_water()
    }

    /// True when the queue is at the low-water mark or under it and the program may still
    /// send: what both `Drained` and resuming after back-pressure wait for.
    #[inline]
    fn down_to_low_water(&self) -> bool {
        self.queued() <= self.limits.low_water && self.state.may_send()
    }

    /// The events to wait for: READ unless paused or closing, WRITE while data is queued. Once
    /// the connection is done (failed, or closing with nothing queued) or owes `Drained`, WRITE
    /// too, so that its callback runs in a bare `select()` loop as well (a socket with room,
    /// or reset, is writable); the loop's services get there sooner (see `with`).
    fn next_interest(&mut self) -> Events {
        let queued = self.queued();
        if queued > self.limits.high_water {
            self.paused = true; // until `deliver_waiting`, at the low-water mark
        }
        let mut events = Events::NONE;
        if self.reading() {
            events |= EVENT_READ;
        }
        if queued > 0 || self.done() || self.drain_owed() {
            events |= EVENT_WRITE;
        }
        events
    }

    /// Resumes reading, and hands the callback the frames that waited (see `resume_owed`).
    #[cold]
    #[inline(never)]
    fn deliver_waiting<B: Backend>(
        &mut self,
        sel: &mut Selector<B>,
        callback: &mut impl FnMut(
            &mut Selector<B>,
            &mut Self,
            ConnEvent<C::Incoming<'_>>,
        ) -> io::Result<()>,
        now: Option<Instant>,
    ) {
        self.paused = false;
        if let Some(now) = now {
            self.deadlines.resumed(now); // the frame's clock stopped while not reading
        }
        self.deliver(sel, callback, now);
        self.flush(now);
    }

    /// True when reading, and the frames that waited, are owed: the queue is down to the
    /// low-water mark after being over the high one. Reading resumes in the connection's own
    /// callback, which hands those frames over first — right after `Drained`, which is always
    /// owed then (the queue went from over the high-water mark to the low one): what wakes the
    /// callback for `Drained` (`with`, and WRITE interest in a bare `select()` loop) wakes it
    /// for this too.
    #[inline]
    fn resume_owed(&self) -> bool {
        self.paused && self.down_to_low_water()
    }

    /// True when the connection should end now: it failed, or it is closing with nothing left
    /// to write — and, after the peer's end of file, no `Drained` owed: a program streaming on
    /// `Drained` to a half-closed peer still has more to send, however fast the queue emptied.
    #[inline]
    fn done(&self) -> bool {
        self.state.failed()
            || (self.state.closes_when_flushed() && self.queued() == 0 && !self.drain_owed())
    }

    /// Writes queued bytes until the socket is full; a write error fails the connection. With
    /// the clock on (`now`), notes when bytes moved, how long the queue has waited, and whether
    /// it is over the soft cap.
    fn flush(&mut self, now: Option<Instant>) {
        // Sends only append, so the queue is at its largest now: `Drained` counts from here.
        self.above_low |= self.queued() > self.limits.low_water;
        let before = self.sent;
        if self.state.failed() {
            self.out.tidy();
        } else if let Err(e) = self.out.write_to(&mut self.stream, &mut self.sent) {
            self.state.fail(e);
        }
        if let Some(now) = now {
            // The peer owes us room: bytes are queued, or none are but `Drained` is owed (the
            // socket took the whole queue, the program waits to send more, and the callback
            // runs when the socket is writable again: a peer that reads nothing never makes it
            // so).
            let (wrote, queued) = (self.sent != before, self.queued());
            let waiting = queued > 0 || self.drain_owed();
            self.deadlines.flushed(wrote, waiting, queued, now);
        }
    }

    /// Fails the connection, dropping its queue, if the queue is over the hard cap.
    #[inline]
    fn check_hard_cap(&mut self) {
        if self.queued() > self.limits.hard_cap && !self.state.failed() {
            self.over_hard_cap();
        }
    }

    #[cold]
    #[inline(never)]
    fn over_hard_cap(&mut self) {
        let (queued, cap) = (self.queued(), self.limits.hard_cap);
        let msg = format!("output hard cap: {queued} bytes queued, over the cap of {cap}");
        warn!("fd {}: {msg}; closing the connection", self.fileno());
        self.fail_dropping_queue(io::Error::new(ErrorKind::OutOfMemory, msg));
    }

    /// Fails the connection with `error` (the first reason stays), dropping its queue.
    fn fail_dropping_queue(&mut self, error: io::Error) {
        self.state.fail(error);
        self.out.release();
    }

    /// Reads once, then hands the callback what it may take now (see `deliver`).
    fn receive<B: Backend>(
        &mut self,
        sel: &mut Selector<B>,
        callback: &mut impl FnMut(
            &mut Selector<B>,
            &mut Self,
            ConnEvent<C::Incoming<'_>>,
        ) -> io::Result<()>,
        now: Option<Instant>,
    ) {
        match self.input.fill(&mut self.stream, self.limits.read_chunk) {
            Ok(0) => self.state = State::Eof, // reading: the state was `Open`
            Ok(n) => {
                self.received += n as u64;
                if let Some(now) = now {
                    self.deadlines.moved(now);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => self.state.fail(e),
        }
        self.deliver(sel, callback, now);
    }

    /// Hands the callback every frame decoded from the read buffer while it may take them
    /// (`takes_frames`), each lent from the buffer; after the peer's end of file, what the
    /// codec makes of the rest, then `PeerClosed`. What is not decoded stays, in a buffer of
    /// the connection's own; with the clock on, notes when the incomplete frame at its front
    /// began.
    #[inline(always)] // into `receive`: no call frame per read on the hot path
    fn deliver<B: Backend>(
        &mut self,
        sel: &mut Selector<B>,
        callback: &mut impl FnMut(
            &mut Selector<B>,
            &mut Self,
            ConnEvent<C::Incoming<'_>>,
        ) -> io::Result<()>,
        now: Option<Instant>,
    ) {
        // The bytes leave the connection while frames borrow them: the callback has `&mut`
        // the connection meanwhile.
        let lent = self.input.lend();
        let before = self.input.len();
        self.decode(sel, callback, now, &lent);
        let decoded = self.input.len() < before;
        self.input.give_back(lent);
        if let Some(now) = now {
            // Undecoded bytes are one incomplete frame (or frames waiting: the frame timeout
            // does not run then, reading being paused).
            self.deadlines.decoded(self.input.len() > 0, decoded, now);
        }
    }

    /// The frames of `deliver`, from `lent` (the read buffer's bytes), and at end of file the
    /// rest and `PeerClosed`.
    #[inline(always)]
    fn decode<B: Backend>(
        &mut self,
        sel: &mut Selector<B>,
        callback: &mut impl FnMut(
            &mut Selector<B>,
            &mut Self,
            ConnEvent<C::Incoming<'_>>,
        ) -> io::Result<()>,
        now: Option<Instant>,
        lent: &[u8],
    ) {
        // Called when frames may be taken (reading, or resuming), but after a failed read.
        let mut more = self.state.takes_frames();
        while more {
            match self.codec.decode(self.input.undecoded(lent)) {
                Ok(Some((frame, used))) => {
                    // A codec that claimed more bytes than it was given is an error, not a
                    // panic; its frame is delivered, nothing after it.
                    let fits = self.input.consume(used);
                    self.tell(sel, callback, ConnEvent::Frame(frame));
                    if !fits {
                        self.protocol_error(overclaimed());
                    }
                    more = self.takes_frames(now);
                }
                Ok(None) => break,
                Err(e) => {
                    self.protocol_error(e);
                    break;
                }
            }
        }
        if !matches!(self.state, State::Eof) {
            return;
        }
        while self.input.len() > 0 && self.takes_frames(now) {
            let left = self.input.len();
            match self.codec.decode_eof(self.input.undecoded(lent)) {
                Ok(Some((_, used))) if used > left => self.protocol_error(overclaimed()),
                Ok(Some((frame, used))) => {
                    match used {
                        0 => self.input.consume_all(), // it would be asked the same again
                        _ => _ = self.input.consume(used),
                    }
                    self.tell(sel, callback, ConnEvent::Frame(frame));
                }
                Ok(None) => {
                    debug!(
                        "fd {}: the codec dropped {left} bytes at end of file",
                        self.fileno()
                    );
                    self.input.consume_all();
                }
                Err(e) => self.protocol_error(e),
            }
        }
        if self.takes_frames(now) {
            self.state = State::PeerClosed; // after the frames that came before the end of file
            self.tell(sel, callback, ConnEvent::PeerClosed);
        }
    }

    /// True while the callback may be handed frames (and `PeerClosed`): not once the connection
    /// failed or began closing, nor once more than the high-water mark was queued: reading
    /// pauses then, and frames wait, undecoded, until the queue has drained to the low-water
    /// mark (`resume_owed`) — back-pressure between frames, not only between reads. (Waiting
    /// for the low-water mark, not just for the high one, also holds back a program that keeps
    /// requests of its own while its queue is over the mark, to run them on `Drained`.) The
    /// socket takes what it will first, and the hard cap is checked, so that no frame follows
    /// a reply that passed it.
    #[inline]
    fn takes_frames(&mut self, now: Option<Instant>) -> bool {
        if !self.state.takes_frames() {
            return false;
        }
        let queued = self.queued();
        if queued <= self.limits.high_water && queued <= self.limits.hard_cap {
            return !self.paused;
        }
        self.paused |= queued > self.limits.high_water;
        self.flush(now);
        self.check_hard_cap();
        self.state.takes_frames() && !self.paused
    }

    /// Calls the user's callback with `event`. An error it returns ends the connection as a
    /// failure (`Closed` then carries it); `WouldBlock` and `Interrupted` mean "not ready after
    /// all", as for [`Selector::dispatch`], and are ignored.
    #[inline]
    fn tell<B: Backend>(
        &mut self,
        sel: &mut Selector<B>,
        callback: &mut impl FnMut(
            &mut Selector<B>,
            &mut Self,
            ConnEvent<C::Incoming<'_>>,
        ) -> io::Result<()>,
        event: ConnEvent<C::Incoming<'_>>,
    ) {
        if let Err(e) = callback(sel, self, event) {
            if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) {
                self.callback_failed(e);
            }
        }
    }

    /// The callback returned `e`: the connection fails with it (the first reason stays, if it
    /// had failed already), logged, its queue dropped.
    #[cold]
    #[inline(never)]
    fn callback_failed(&mut self, e: io::Error) {
        warn!(
            "fd {}: the callback failed: {e}; closing the connection",
            self.fileno()
        );
        self.fail_dropping_queue(e);
    }

    /// Fails the connection with a protocol error from (or about) the codec, logged.
    fn protocol_error(&mut self, e: io::Error) {
        warn!("fd {}: {e}; closing the connection", self.fileno());
        self.state.fail(e);
    }

    /// The registration's callback. For readiness: write, read and decode, tell the user. For
    /// a wake-up (an empty `mask`, from `dispatch_soon`: the timer, or `with`): end the
    /// connection if a deadline has passed. Then, either way: `Drained` if owed, the frames
    /// that waited for the queue to drain, the hard cap, the end if done, else the interest and
    /// the timer.
    fn on_ready<B: Backend>(
        &mut self,
        sel: &mut Selector<B>,
        mask: Events,
        callback: &mut impl FnMut(
            &mut Selector<B>,
            &mut Self,
            ConnEvent<C::Incoming<'_>>,
        ) -> io::Result<()>,
        timer: &mut Timer,
    ) -> io::Result<()> {
        let now = self.deadlines.on().then(Instant::now);
        if mask.is_empty() {
            if let Some(now) = now {
                self.expire(now);
            }
        } else if !self.done() {
            if mask.is_writable() {
                self.flush(now);
            }
            // READ may be in the mask while reading is paused or over: a report from before.
            if mask.is_readable() && self.reading() {
                self.receive(sel, callback, now);
                self.flush(now);
            }
        }
        if self.drain_owed() {
            self.above_low = false;
            self.tell(sel, callback, ConnEvent::Drained);
            self.flush(now);
        }
        if self.resume_owed() {
            self.deliver_waiting(sel, callback, now);
        }
        self.check_hard_cap();
        if self.done() {
            return self.finish(sel, callback, timer);
        }
        let key = self.own_key(sel)?;
        let events = self.next_interest();
        if events != key.events() {
            sel.modify(self, events)?;
        }
        if let Some(now) = now {
            self.arm(sel, timer, key, now);
        }
        Ok(())
    }

    /// The key of this connection's registration, from its own callback. The token kept from
    /// the last call finds it in the selector's slab directly, without hashing the descriptor;
    /// the first call looks the descriptor up, and so does a call after the connection was
    /// registered anew: its old token is then gone (tokens carry a generation) or, in another
    /// selector, names a registration of another descriptor.
    #[inline]
    fn own_key<B: Backend>(&mut self, sel: &Selector<B>) -> io::Result<SelectorKey> {
        let fd = FileObj::fileno(self);
        let kept = self.key.and_then(|key| sel.key_of(key.token));
        if let Some(key) = kept.filter(|key| key.fd == fd) {
            return Ok(key);
        }
        let key = sel.get_key(self)?;
        self.key = Some(key);
        Ok(key)
    }

    /// Ends the connection: cancels its timer, unregisters it (its socket is closed when the
    /// callback returns), frees its buffers, and tells the user `Closed`. After an orderly
    /// end, shuts the write half down and drops unread input first (`discard_unread`).
    #[cold]
    #[inline(never)]
    fn finish<B: Backend>(
        &mut self,
        sel: &mut Selector<B>,
        callback: &mut impl FnMut(
            &mut Selector<B>,
            &mut Self,
            ConnEvent<C::Incoming<'_>>,
        ) -> io::Result<()>,
        timer: &mut Timer,
    ) -> io::Result<()> {
        timer.cancel();
        let peer_closed = matches!(self.state, State::PeerClosed);
        let reason = self.state.end();
        sel.unregister(self)?; // closed as soon as this callback returns
        if reason.is_none() {
            let _ = self.stream.shutdown_write(); // the peer may be gone already
            if !peer_closed {
                discard_unread(&mut self.stream);
            }
        }
        self.input.release();
        self.out.release();
        callback(sel, self, ConnEvent::Closed(reason))
    }

    /// Schedules the connection's timer for the earliest deadline, unless one is due by then.
    /// (A timer due earlier than needed fires, finds nothing expired, and is scheduled again:
    /// so moving bytes never touches the timer.)
    #[inline(never)]
    fn arm<B: Backend>(
        &mut self,
        sel: &mut Selector<B>,
        timer: &mut Timer,
        key: SelectorKey,
        now: Instant,
    ) {
        if let Some(when) = self.deadlines.schedule(now, self.reading()) {
            // When it fires, the callback is called without readiness (see `on_ready`).
            // Nothing happens if the connection is gone; if its own callback is running (a
            // loop run from inside a callback), that callback arms the timer again, at the
            // deadline that has passed, when it returns.
            let fired = move |sel: &mut Selector<B>| sel.dispatch_soon(&key, Events::NONE);
            timer.set(sel.call_at(when, fired));
        }
    }

    /// Fails the connection, dropping its queue, if a deadline has passed.
    #[inline(never)]
    fn expire(&mut self, now: Instant) {
        if self.state.failed() {
            return;
        }
        let (reading, buffered, queued) = (self.reading(), self.buffered(), self.queued());
        let Some(error) = self.deadlines.expired(now, reading, buffered, queued) else {
            return;
        };
        match error.kind() {
            ErrorKind::TimedOut => debug!("fd {}: {error}; closing the connection", self.fileno()),
            _ => warn!("fd {}: {error}; closing the connection", self.fileno()),
        }
        self.fail_dropping_queue(error);
    }
}

/// The error for a codec that said it used more bytes than it was given.
fn overclaimed() -> io::Error {
    let msg = "Codec::decode returned a frame that used more bytes than it was given";
    io::Error::new(ErrorKind::InvalidData, msg)
}
