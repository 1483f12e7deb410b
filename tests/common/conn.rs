//! Helpers shared by the `Connection` tests (`tests/conn_*.rs`): what a connection's callback
//! saw ([`Seen`]), connections that record it, the peers the tests play, and [`Watched`], a
//! socket whose room the test sets.

use super::{run_until, socketpair, Stream, TIMEOUT};
use selectloop::{
    Bytes, ConnEvent, Connection, DefaultSelector, Events, Limits, LineCodec, SelectorKey,
    Timeouts, EVENT_WRITE,
};
use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, Read, Write};
use std::rc::Rc;
use std::thread;
use std::time::Duration;

// --- Connections that record what their callback saw --------------------------------------------

/// What a connection's callback saw, in order.
#[derive(Debug, PartialEq)]
pub enum Seen {
    Frame(Vec<u8>),
    Drained,
    PeerClosed,
    Closed(Option<ErrorKind>),
}

pub type Events_ = Rc<RefCell<Vec<Seen>>>;

impl From<ConnEvent<&[u8]>> for Seen {
    fn from(event: ConnEvent<&[u8]>) -> Seen {
        match event {
            ConnEvent::Frame(frame) => Seen::Frame(frame.to_vec()),
            ConnEvent::Drained => Seen::Drained,
            ConnEvent::PeerClosed => Seen::PeerClosed,
            ConnEvent::Closed(e) => Seen::Closed(e.map(|e| e.kind())),
            other => panic!("an event this test does not know: {other:?}"),
        }
    }
}

/// Registers `stream` as a connection with `codec` that records its events and, if `echo`,
/// sends every frame back.
pub fn connection<S, C>(
    sel: &mut DefaultSelector,
    stream: S,
    codec: C,
    limits: Limits,
    echo: bool,
) -> io::Result<(SelectorKey, Events_)>
where
    S: selectloop::ByteStream,
    C: for<'a> selectloop::Codec<Incoming<'a> = &'a [u8], Outgoing = [u8]>,
{
    timed_connection(sel, stream, codec, limits, Timeouts::default(), echo)
}

/// As [`connection`], with timeouts.
pub fn timed_connection<S, C>(
    sel: &mut DefaultSelector,
    stream: S,
    codec: C,
    limits: Limits,
    timeouts: Timeouts,
    echo: bool,
) -> io::Result<(SelectorKey, Events_)>
where
    S: selectloop::ByteStream,
    C: for<'a> selectloop::Codec<Incoming<'a> = &'a [u8], Outgoing = [u8]>,
{
    super::init_logging();
    let seen: Events_ = Rc::default();
    let log = seen.clone();
    let mut conn = Connection::new(stream, codec).with_limits(limits)?;
    if timeouts != Timeouts::default() {
        // Only then: each setting must work alone (a soft cap without timeouts arms a timer).
        conn = conn.with_timeouts(timeouts);
        assert_eq!(conn.timeouts(), timeouts);
    }
    let key = conn.register(sel, move |_, conn, event| {
        if let (true, ConnEvent::Frame(frame)) = (echo, &event) {
            conn.send_frame(frame)?;
        }
        log.borrow_mut().push(Seen::from(event));
        Ok(())
    })?;
    Ok((key.key(), seen))
}

pub fn events_of(sel: &DefaultSelector, key: &impl selectloop::FileObj) -> Option<Events> {
    sel.get_key(key).ok().map(|k| k.events())
}

// --- Peers --------------------------------------------------------------------------------------

/// A pattern that shows reordering or loss: byte i is a function of i.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

/// Reads from a blocking peer until end of file (or a reset), whatever data comes first:
/// what a connection that was closed with data on the way looks like.
#[track_caller]
pub fn read_to_eof_or_reset(peer: &mut Stream) {
    peer.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match peer.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!("expected end of file on the peer (its end was not closed): {e}"),
        }
    }
}

/// Queues more than the socket holds for a peer that never reads, and runs the loop until the
/// socket is full: the connection then waits for a WRITE readiness that never comes.
pub fn fill_a_peer_that_never_reads(
    sel: &mut DefaultSelector,
    key: &SelectorKey,
) -> io::Result<()> {
    Connection::<Stream, Bytes>::with(sel, key, |conn| conn.send(&pattern(16 << 20)))??;
    for _ in 0..3 {
        sel.run_once(Some(Duration::from_millis(5)))?;
    }
    assert_eq!(
        events_of(sel, key),
        Some(EVENT_WRITE),
        "not waiting to write"
    );
    Ok(())
}

// --- Pipelining peers and scripted callbacks ----------------------------------------------------

/// What [`scripted`]'s callback does with frame number `n`: its sends, and how it ends things.
pub type OnFrame = Box<dyn FnMut(&mut Connection<Stream, LineCodec>, usize) -> io::Result<()>>;

/// Registers `stream` as a line connection whose callback records every event and runs
/// `on_frame` for each frame, numbered from 0 — as a server's callback does, with `?` on its
/// sends.
fn scripted(
    sel: &mut DefaultSelector,
    stream: Stream,
    limits: Limits,
    timeouts: Timeouts,
    mut on_frame: OnFrame,
) -> io::Result<(SelectorKey, Events_)> {
    super::init_logging();
    let seen: Events_ = Rc::default();
    let log = seen.clone();
    let conn = Connection::new(stream, LineCodec::new(64))
        .with_limits(limits)?
        .with_timeouts(timeouts);
    let mut frames = 0;
    let key = conn.register(sel, move |_, conn, event| {
        let frame = matches!(event, ConnEvent::Frame(_));
        log.borrow_mut().push(Seen::from(event));
        if frame {
            frames += 1;
            on_frame(conn, frames - 1)?;
        }
        Ok(())
    })?;
    Ok((key.key(), seen))
}

/// `n` numbered lines, `0\n` to `n-1\n`, as one write: a pipelining peer.
fn numbered_lines(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| format!("{i}\n").into_bytes()).collect()
}

/// Reads from `peer` on a thread until end of file; the thread returns what it read, or the
/// error (a reset) that ended it.
pub fn read_all_on_a_thread(mut peer: Stream) -> thread::JoinHandle<Result<Vec<u8>, io::Error>> {
    thread::spawn(move || {
        peer.set_read_timeout(Some(TIMEOUT))?;
        let mut got = Vec::new();
        peer.read_to_end(&mut got)?;
        Ok(got)
    })
}

/// The frames of `seen`, and whether `Closed` came exactly once, last.
pub fn frames_and_closed_last(seen: &[Seen]) -> (usize, bool) {
    let frames = seen.iter().filter(|s| matches!(s, Seen::Frame(_))).count();
    let closed = seen.iter().filter(|s| matches!(s, Seen::Closed(_))).count();
    (
        frames,
        closed == 1 && matches!(seen.last(), Some(Seen::Closed(_))),
    )
}

/// A selector with one [`scripted`] connection whose peer has sent `lines` numbered lines in
/// one write, as a pipelining client does: the selector, the key, what the callback saw, and
/// the peer.
pub fn pipelining(
    lines: usize,
    limits: Limits,
    timeouts: Timeouts,
    on_frame: OnFrame,
) -> io::Result<(DefaultSelector, SelectorKey, Events_, Stream)> {
    let mut sel = DefaultSelector::new()?;
    let (a, mut peer) = socketpair()?;
    peer.write_all(&numbered_lines(lines))?;
    let (key, seen) = scripted(&mut sel, a, limits, timeouts, on_frame)?;
    Ok((sel, key, seen, peer))
}

/// Runs the loop until the callback got `Closed`.
#[track_caller]
pub fn until_closed(sel: &mut DefaultSelector, seen: &Events_) -> io::Result<()> {
    run_until(sel, "Closed", || frames_and_closed_last(&seen.borrow()).1)
}

// --- Replies that pass the high-water mark ------------------------------------------------------

/// Limits for the tests of frames that wait while more than the high-water mark is queued
/// (in `conn_backpressure.rs` and `conn_lifecycle.rs`): replies of `REPLY` bytes pass the
/// high-water mark after four frames.
pub const REPLY: usize = 256 << 10;
pub fn frame_limits() -> Limits {
    Limits {
        high_water: 1 << 20,
        low_water: 256 << 10,
        ..Limits::default()
    }
}

/// Frame `n`'s reply: `REPLY` bytes, each `n`.
pub fn reply_to(n: usize) -> Vec<u8> {
    vec![n as u8; REPLY]
}

// --- A socket the test watches ------------------------------------------------------------------

/// One end of a socket pair the test watches: it counts the connection's `read` and `write`
/// calls, and takes only `room` more bytes (refusing more with `WouldBlock`, as a full socket
/// does): a peer that never reads (`room` 0), or reads exactly so much, for tests that need
/// exactly what was sent to stay queued. The bytes it takes are dropped, but with `room` of
/// `usize::MAX` (the default), which passes every write on to the socket.
///
/// Filling a real socket is not enough to keep what is sent queued: a TCP socket that refused
/// a write takes more later, as the kernel moves its bytes on to the peer's receive buffer —
/// on a busy machine well after the refusal (under Wine, where the tests' socket pairs are
/// loopback TCP, 128 KiB went through after the socket had refused a write, so a queue meant
/// to pass a cap never did). [`Watched::full`] fills the socket too, so that it is not
/// reported writable over and over.
pub struct Watched {
    stream: Stream,
    room: Rc<Cell<usize>>,
    pub writes: Rc<Cell<usize>>,
    pub reads: Rc<Cell<usize>>,
}

impl Watched {
    pub fn new(stream: Stream) -> Watched {
        Watched {
            stream,
            room: Rc::new(Cell::new(usize::MAX)),
            writes: Rc::default(),
            reads: Rc::default(),
        }
    }

    /// A full socket (its peer never reads): its `room` is 0.
    pub fn full() -> io::Result<(Watched, Rc<Cell<usize>>, Stream)> {
        let (a, peer) = socketpair()?;
        let chunk = [0u8; 4096];
        while (&a).write(&chunk).is_ok() {} // until WouldBlock
        let stream = Watched::new(a);
        stream.room.set(0);
        let room = stream.room.clone();
        Ok((stream, room, peer))
    }
}

impl Read for Watched {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads.set(self.reads.get() + 1);
        self.stream.read(buf)
    }
}

impl Write for Watched {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.writes.set(self.writes.get() + 1);
        match self.room.get() {
            0 => Err(ErrorKind::WouldBlock.into()),
            usize::MAX => self.stream.write(data),
            room => {
                let n = room.min(data.len());
                self.room.set(room - n);
                Ok(n)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl selectloop::ByteStream for Watched {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for Watched {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for Watched {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.stream.as_socket()
    }
}

pub type WatchedConn = Connection<Watched, Bytes>;

/// The bytes queued on the watched connection `key`.
pub fn queued(sel: &mut DefaultSelector, key: &SelectorKey) -> usize {
    let conn: &mut WatchedConn = sel.source_mut(key).expect("open");
    conn.queued()
}
