//! A connection's write queue: the bytes sent and not yet taken by the socket.
//!
//! A waiting connection holds no queue, so a queue is given up once drained. But a producer
//! that drains its queue and fills it again would then pay a fresh allocation (and, above
//! 128 KiB, fresh pages) every time, which slowed bulk sending several-fold
//! (docs/performance.md). So the thread keeps two emptied queues, the largest lately of
//! `QUEUE_MIN..SPARE_MIN` and of `SPARE_MIN..=SPARE_MAX`, and a queue that starts takes the
//! one that fits, if it is at most 16 times what it needs: a small reply never holds a large
//! buffer. The queue knows nothing of limits, clocks or the connection's state: it answers
//! how much it holds and wrote, and [`Connection`](crate::Connection) decides what that means.

use std::cell::Cell;
use std::io::{self, ErrorKind, Write};
use std::mem;
use std::thread::LocalKey;

/// A queue starts with room for this much: a few replies fit without growing it.
const QUEUE_MIN: usize = 4 << 10;

/// Emptied queues with room of `SPARE_MIN..=SPARE_MAX` are kept for the thread's next large
/// queue, those with less for its next small one.
const SPARE_MIN: usize = 64 << 10;
const SPARE_MAX: usize = 4 << 20;

thread_local! {
    /// The largest queue emptied lately with room of `SPARE_MIN..=SPARE_MAX` (empty), for the
    /// next queue that starts with at least a sixteenth of it.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// The same for queues with room of `QUEUE_MIN..SPARE_MIN`, for small sends: in an echo,
    /// the queue the connection just emptied, so that its next replies cost no allocation.
    static SMALL_SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Bytes queued for the peer: `buf[start..]`. No allocation while empty.
#[derive(Default)]
pub(crate) struct WriteQueue {
    buf: Vec<u8>,
    start: usize,
}

impl WriteQueue {
    /// The number of bytes queued.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The bytes of memory the queue holds.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Queues `data`.
    #[inline]
    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.buf.capacity() == 0 {
            self.start(data.len());
        }
        self.buf.extend_from_slice(data);
    }

    /// Queues what `encode` appends; nothing if it fails (a codec may fail after appending part
    /// of a frame).
    #[inline]
    pub(crate) fn push_with(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        if self.buf.capacity() == 0 {
            self.start(0); // the frame's length is the codec's business
        }
        let len = self.buf.len();
        let result = encode(&mut self.buf);
        if result.is_err() {
            self.buf.truncate(len);
        }
        result
    }

    /// Writes to `stream` until it is full (`WouldBlock`), adding what it wrote to `sent`; then
    /// gives the queue up if it is empty. Returns the write error that stopped it, if any.
    #[inline]
    pub(crate) fn write_to(&mut self, stream: &mut impl Write, sent: &mut u64) -> io::Result<()> {
        let mut result = Ok(());
        while self.len() > 0 {
            match stream.write(&self.buf[self.start..]) {
                Ok(0) => break,
                Ok(n) => {
                    self.start += n;
                    *sent += n as u64;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    break; // the socket is full (an interrupted write is tried on the next flush)
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.tidy();
        result
    }

    /// Gives the queue up once empty (a waiting connection holds none); else moves the unsent
    /// bytes to the front once more than half of it is sent, so that the buffer holds at most
    /// about twice what is queued and each byte is moved about once at most.
    #[inline]
    pub(crate) fn tidy(&mut self) {
        if self.start == self.buf.len() {
            self.release();
        } else if self.start > self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Drops what is queued, and gives the memory up: to the thread's spare of its size (if
    /// larger than the one there), else to the allocator.
    pub(crate) fn release(&mut self) {
        let mut buf = mem::take(&mut self.buf);
        self.start = 0;
        let room = buf.capacity();
        if !(QUEUE_MIN..=SPARE_MAX).contains(&room) {
            return;
        }
        buf.clear();
        // Each key named at its own call: a key chosen at run time is an indirect call.
        match room >= SPARE_MIN {
            true => keep(&SPARE, buf),
            false => keep(&SMALL_SPARE, buf),
        }
    }

    /// Gives an empty queue room for `len` bytes: the thread's spare if that is large enough
    /// and not more than 16 times too large, else at least `QUEUE_MIN`. Out of line: it runs
    /// once per queue, not per send, and `send_frame`, inlined into the user's callback, stays
    /// small.
    #[inline(never)]
    fn start(&mut self, len: usize) {
        let need = len.max(QUEUE_MIN);
        let fits = |room: usize| room >= need && room / 16 <= len.max(QUEUE_MIN / 16);
        let spare = match len >= SPARE_MIN / 16 {
            true => take(&SPARE, fits),
            false => take(&SMALL_SPARE, fits),
        };
        match spare {
            Some(buf) => self.buf = buf,
            None => self.buf.reserve(need),
        }
    }
}

/// Keeps `buf` (empty) in the thread's `slot` if it is larger than the one there.
#[inline(always)]
fn keep(slot: &'static LocalKey<Cell<Vec<u8>>>, buf: Vec<u8>) {
    let _ = slot.try_with(|slot| {
        let old = slot.take();
        slot.set(if old.capacity() >= buf.capacity() {
            old
        } else {
            buf
        });
    });
}

/// Takes the buffer in the thread's `slot` if its room `fits`.
#[inline(always)]
fn take(slot: &'static LocalKey<Cell<Vec<u8>>>, fits: impl Fn(usize) -> bool) -> Option<Vec<u8>> {
    let buf = slot.try_with(Cell::take).ok()?;
    if fits(buf.capacity()) {
        return Some(buf);
    }
    let _ = slot.try_with(|slot| slot.set(buf));
    None
}
