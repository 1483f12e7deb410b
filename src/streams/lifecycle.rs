//! A connection's lifecycle: where it is between registered and closed, as one value.
//!
//! Kept as flags (closing, end of file, peer closed, failed), the states combined in ways no
//! connection can be in, and each check had to remember which flag beat which — `close()`
//! kept delivering frames because one check forgot. As one value, a connection is in exactly
//! one state, the ways out of each are below, and the questions the connection asks of it
//! have one answer each. Back-pressure (reading paused while the queue is full) is not part of
//! it: a connection in any open state may be paused.

use std::io;

/// Where a connection is between registered and closed.
///
/// ```text
/// Open ──end of file──▶ Eof ──frames before it handed over──▶ PeerClosed ─┐
///  │ close()             │ close()                       close() │         ├─ queue empty ─▶ Closed
///  └─────────────────────┴───────────────▶ Closing ◀─────────────┘         │
///  any of them ──error, abort, cap, timeout──▶ Failed ─────── at once ─────┘
/// ```
#[derive(Debug, Default)]
pub(crate) enum State {
    /// Reading and handing frames over (unless back-pressure paused it).
    #[default]
    Open,
    /// The peer sent end of file: nothing more is read. Frames received before it may still
    /// wait (back-pressure); then `PeerClosed` is told.
    Eof,
    /// `PeerClosed` was told: the queue is flushed, then the connection closes. The program
    /// may still send.
    PeerClosed,
    /// [`close`](crate::Connection::close) was called: no frame is handed over any more; the
    /// queue is flushed, then the connection closes.
    Closing,
    /// The connection must end now, with this error (reset, protocol error, abort, timeout,
    /// cap, the callback's error).
    Failed(io::Error),
    /// Ended: unregistered, `Closed` told.
    Closed,
}

impl State {
    /// True while the connection reads from its peer (back-pressure aside).
    #[inline]
    pub(crate) fn reads(&self) -> bool {
        matches!(self, State::Open)
    }

    /// True while frames may be handed over: open, or the peer's end of file came after
    /// frames not handed over yet.
    #[inline]
    pub(crate) fn takes_frames(&self) -> bool {
        matches!(self, State::Open | State::Eof)
    }

    /// True while what the program sends still goes out: not once it closed the connection,
    /// nor once the connection failed or ended.
    #[inline]
    pub(crate) fn may_send(&self) -> bool {
        matches!(self, State::Open | State::Eof | State::PeerClosed)
    }

    /// True once the connection closes when its queue is empty.
    #[inline]
    pub(crate) fn closes_when_flushed(&self) -> bool {
        matches!(self, State::PeerClosed | State::Closing)
    }

    /// True once the connection failed or ended: nothing is written any more.
    #[inline]
    pub(crate) fn failed(&self) -> bool {
        matches!(self, State::Failed(_) | State::Closed)
    }

    /// The program closes the connection (nothing changes once it failed or ended).
    pub(crate) fn close(&mut self) {
        if self.may_send() {
            *self = State::Closing;
        }
    }

    /// The connection fails with `error`, unless it failed or ended already: the first reason
    /// stays.
    pub(crate) fn fail(&mut self, error: io::Error) {
        if !self.failed() {
            *self = State::Failed(error);
        }
    }

    /// The connection ends: returns the error it failed with, if it did.
    pub(crate) fn end(&mut self) -> Option<io::Error> {
        match std::mem::replace(self, State::Closed) {
            State::Failed(error) => Some(error),
            _ => None,
        }
    }
}
