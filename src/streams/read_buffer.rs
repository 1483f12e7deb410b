//! A connection's read buffer: the bytes received and not decoded yet.
//!
//! A waiting connection holds no read buffer, yet `Read` needs initialised memory to read
//! into, and zeroing a read chunk for every read would cost more than the read. So reads go
//! into one buffer per thread, zeroed once, and a connection keeps only what its codec could
//! not decode yet: up to `SMALL` bytes in a buffer sized to them, copied to the front of the
//! shared buffer at the next read; more (a long frame arriving in pieces) in a buffer of its
//! own, read into directly, since copying it in and out at every read would cost its length
//! squared.
//!
//! Frames are decoded from the buffer in place and lent to the callback, which gets the
//! connection too: so the bytes are [`lend`](ReadBuffer::lend)t out of the connection while
//! frames borrow them, and [given back](ReadBuffer::give_back) after. The buffer knows nothing
//! of codecs, limits or the connection's state: it reads, says what it holds, and moves its
//! start as frames are taken.

use crate::sys::{self, Source};
use std::cell::Cell;
use std::io::{self, Read};
use std::mem;

/// Undecoded bytes up to this size are read through the thread's shared buffer (copied in
/// front of the new bytes, and what is left copied back out); above it, into the connection's
/// own buffer.
const SMALL: usize = 4 << 10;

/// At an orderly close, unread input up to this much is read and dropped (see
/// [`discard_unread`]).
const DISCARD_AT_CLOSE: usize = 256 << 10;

thread_local! {
    /// The thread's read buffer: zeroed once, as long as the longest read asked of it, and
    /// lent to one read (and the frames decoded from it) at a time.
    static SHARED: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Received bytes not decoded yet: `buf[start..end]`. Outside a read, either exactly those
/// bytes (at most `SMALL`; none allocated when there are none), or a long frame's buffer,
/// read into directly. From a read of few undecoded bytes until they are given back, the
/// thread's shared buffer.
#[derive(Default)]
pub(crate) struct ReadBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// `buf` is the thread's shared buffer.
    shared: bool,
    /// The capacity of the connection's own buffer while it is lent out.
    lent: usize,
}

impl ReadBuffer {
    /// The number of bytes received and not decoded yet.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    /// The bytes of memory the connection holds for them (the shared buffer not counted).
    pub(crate) fn capacity(&self) -> usize {
        match self.shared {
            true => 0,
            false => self.buf.capacity().max(self.lent),
        }
    }

    /// Reads once from `stream`, at most `chunk` bytes (at most `Limits::MAX_READ_CHUNK`).
    /// Few undecoded bytes move to the front of the thread's shared buffer, which is read
    /// into; more stay in the connection's own buffer, which grows by the chunk (zeroed once).
    /// Returns what was read: 0 at end of file.
    #[inline(always)] // into the connection's read: one call frame fewer per read
    pub(crate) fn fill(&mut self, stream: &mut impl Read, chunk: usize) -> io::Result<usize> {
        let left = self.len();
        // `left` is less than what was read before, `chunk` at most `MAX_READ_CHUNK`: no
        // overflow.
        let end = left + chunk;
        if left <= SMALL {
            let mut shared = SHARED.try_with(Cell::take).unwrap_or_default();
            shared.resize(shared.len().max(end), 0); // zeroed once, then only reused
            if left > 0 {
                shared[..left].copy_from_slice(&self.buf[self.start..self.end]);
            }
            self.buf = shared; // the connection's own copy of those bytes is freed
            self.shared = true;
        } else {
            if self.start != 0 {
                self.buf.copy_within(self.start..self.end, 0);
            }
            self.buf.resize(self.buf.len().max(end), 0);
        }
        (self.start, self.end) = (0, left);
        let n = stream.read(&mut self.buf[left..end])?;
        self.end += n;
        Ok(n)
    }

    /// The bytes themselves, out of the connection while frames borrow them (the start, and so
    /// `len`, stay here and move with `consume`). [`undecoded`](Self::undecoded) finds the
    /// undecoded part of them; [`give_back`](Self::give_back) returns them.
    #[inline]
    pub(crate) fn lend(&mut self) -> Vec<u8> {
        let buf = mem::take(&mut self.buf);
        if !self.shared {
            self.lent = buf.capacity();
        }
        buf
    }

    /// The undecoded part of `lent`, the bytes [`lend`](Self::lend) returned.
    #[inline]
    pub(crate) fn undecoded<'a>(&self, lent: &'a [u8]) -> &'a [u8] {
        &lent[self.start..self.end]
    }

    /// Drops the first `used` undecoded bytes (a frame taken). Returns false if there were
    /// fewer: all are dropped then (a codec that claimed more than it was given).
    #[inline]
    pub(crate) fn consume(&mut self, used: usize) -> bool {
        if used > self.len() {
            self.start = self.end;
            return false;
        }
        self.start += used;
        true
    }

    /// Drops every undecoded byte.
    pub(crate) fn consume_all(&mut self) {
        self.start = self.end;
    }

    /// Takes back the bytes [`lend`](Self::lend) returned, keeping what is left undecoded in a
    /// buffer of the connection's own (sized to it, if small), and the shared buffer goes back
    /// to the thread.
    #[inline(always)]
    pub(crate) fn give_back(&mut self, buf: Vec<u8>) {
        let left = self.len();
        if self.shared || left <= SMALL {
            let own = buf[self.start..self.end].to_vec(); // none allocated if empty
            if mem::take(&mut self.shared) {
                let _ = SHARED.try_with(|shared| shared.set(buf));
            }
            (self.buf, self.start, self.end) = (own, 0, left);
        } else {
            self.buf = buf;
        }
        self.lent = 0;
    }

    /// Drops the bytes and gives the memory up.
    pub(crate) fn release(&mut self) {
        *self = ReadBuffer::default();
    }
}

/// Reads and drops what the peer sent that was never read (a request pipelined behind the one
/// that closed the connection, bytes after a refused one), at most `DISCARD_AT_CLOSE` bytes.
/// Closing a TCP socket with unread input sends a reset instead of an end of file, and a reset
/// throws away whatever of the last reply the kernel has not delivered yet (nginx's
/// `lingering_close` exists for this). Only the bytes already there are read (`FIONREAD`), so
/// this never blocks, even on a blocking socket; bytes arriving after the close still cause a
/// reset.
pub(crate) fn discard_unread(stream: &mut (impl Source + Read)) {
    let Ok(ready) = sys::unread_bytes(stream) else {
        return; // a source FIONREAD does not apply to
    };
    let mut left = ready.min(DISCARD_AT_CLOSE);
    let mut scratch = [0u8; 4096];
    while left > 0 {
        match stream.read(&mut scratch[..left.min(4096)]) {
            // End of file, or an error (an interrupted read only leaves bytes unread).
            Ok(0) | Err(_) => return,
            Ok(n) => left -= n,
        }
    }
}
