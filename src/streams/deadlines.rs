//! A connection's deadlines: its timeouts and soft cap as instants, and its one timer.
//!
//! A timer per deadline, moved every time bytes move, would cost a timer-heap operation per
//! read and write. Instead the connection notes *when* things happened (bytes moved, a frame
//! began, the queue began to wait or went over the soft cap) — plain stores, no timer touched —
//! and keeps one timer for the earliest deadline. Bytes moving only move deadlines later, so a
//! timer set earlier than needed simply fires, finds nothing expired, and is set again; a
//! clock that *starts* (a frame begins...) may bring a deadline closer, and is what makes the
//! connection look at its timer again.
//!
//! The part knows nothing of buffers or the connection's state: the connection tells it what
//! happened and asks what is due — the next instant to set the timer for, or the error to end
//! with.

use crate::services::timer::{deadline_after, TimerHandle};
use crate::streams::limits::{Limits, Timeouts};
use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};

/// Which limit a deadline enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    Idle,
    Frame,
    Send,
    SoftCap,
}

/// The timeouts and soft cap in force, and the instants their deadlines count from; all
/// `None` with none on.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Deadlines {
    timeouts: Timeouts,
    /// A timeout or the soft cap is on (see `on`).
    on: bool,
    /// The soft cap and how long the queue may stay over it, if one is set.
    soft_cap: Option<(usize, Duration)>,
    /// Bytes last moved either way (or the connection was registered): idle timeout.
    last_io: Option<Instant>,
    /// The incomplete frame at the front of the read buffer began: frame timeout.
    frame_since: Option<Instant>,
    /// Bytes are queued, and the peer last accepted some (or the queue filled): send timeout.
    send_since: Option<Instant>,
    /// The queue went above the soft cap.
    soft_since: Option<Instant>,
    /// When the connection's timer was last scheduled for: once that is past, the timer has
    /// fired (or is due), and counts as none.
    timer_at: Option<Instant>,
    /// A clock started since the timer was scheduled (a frame began, the queue began to wait,
    /// or went over the soft cap): a deadline may be due before it.
    started: bool,
}

impl Deadlines {
    /// Sets the timeouts.
    pub(crate) fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
        self.on = self.timeouts.any() || self.soft_cap.is_some();
    }

    /// Sets the soft cap from `limits`.
    pub(crate) fn set_soft_cap(&mut self, limits: &Limits) {
        self.soft_cap = limits
            .soft_capped()
            .then_some((limits.soft_cap, limits.soft_cap_for));
        self.on = self.timeouts.any() || self.soft_cap.is_some();
    }

    /// The timeouts in force.
    pub(crate) fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// True if a timeout or the soft cap is on: the connection then reads the clock once per
    /// callback and keeps a timer.
    #[inline]
    pub(crate) fn on(&self) -> bool {
        self.on
    }

    /// Bytes moved either way (or the connection was registered): the idle clock restarts.
    #[inline]
    pub(crate) fn moved(&mut self, now: Instant) {
        self.last_io = Some(now);
    }

    /// After decoding: undecoded bytes are left (`pending`) — one incomplete frame, the one
    /// from before if no frame was decoded, else one that began now — or none are.
    #[inline]
    pub(crate) fn decoded(&mut self, pending: bool, decoded: bool, now: Instant) {
        self.started |= pending && self.frame_since.is_none();
        self.frame_since = match (pending, decoded) {
            (false, _) => None,
            (true, false) => self.frame_since.or(Some(now)),
            (true, true) => Some(now),
        };
    }

    /// Reading resumes after back-pressure: the frame clock, stopped meanwhile, starts again.
    pub(crate) fn resumed(&mut self, now: Instant) {
        if self.frame_since.is_some() {
            self.frame_since = Some(now);
            self.started = true;
        }
    }

    /// After a flush: whether it `wrote`, whether the peer owes us room (`waiting`: bytes are
    /// queued, or `Drained` is owed and the callback waits for the socket to be writable
    /// again), and how much is `queued`.
    #[inline]
    pub(crate) fn flushed(&mut self, wrote: bool, waiting: bool, queued: usize, now: Instant) {
        if wrote {
            self.last_io = Some(now);
        }
        self.started |= waiting && self.send_since.is_none();
        self.send_since = match waiting {
            false => None,
            _ if wrote => Some(now),
            _ => self.send_since.or(Some(now)),
        };
        let over = self.soft_cap.is_some_and(|(cap, _)| queued > cap);
        self.started |= over && self.soft_since.is_none();
        self.soft_since = match over {
            true => self.soft_since.or(Some(now)),
            false => None,
        };
    }

    /// The earliest deadline, and which it is. The frame timeout runs only while `reading`.
    fn next(&self, reading: bool) -> Option<(Instant, Deadline)> {
        let t = &self.timeouts;
        let after = |since: Option<Instant>, limit: Option<Duration>| {
            since
                .zip(limit)
                .map(|(since, limit)| deadline_after(since, limit))
        };
        let frame = if reading { t.frame } else { None };
        let soft = self.soft_cap.map(|(_, limit)| limit);
        [
            (after(self.last_io, t.idle), Deadline::Idle),
            (after(self.frame_since, frame), Deadline::Frame),
            (after(self.send_since, t.send), Deadline::Send),
            (after(self.soft_since, soft), Deadline::SoftCap),
        ]
        .into_iter()
        .filter_map(|(when, which)| Some((when?, which)))
        .min_by_key(|&(when, _)| when)
    }

    /// True if a deadline is due before the timer (or no timer is scheduled).
    pub(crate) fn unarmed(&self, now: Instant, reading: bool) -> bool {
        if self.in_time(now) {
            return false;
        }
        self.next(reading)
            .is_some_and(|(when, _)| self.armed_for(when, now).is_some())
    }

    /// True if the timer is scheduled, not due yet, and no clock started since: it is due
    /// before any deadline, without computing them.
    fn in_time(&self, now: Instant) -> bool {
        !self.started && self.timer_at.is_some_and(|at| at > now)
    }

    /// `when` if the timer is not due by then (or not scheduled): the time to schedule it for.
    /// A timer that fired (or is due) counts as none.
    fn armed_for(&self, when: Instant, now: Instant) -> Option<Instant> {
        match self.timer_at {
            Some(at) if at > now && at <= when => None,
            _ => Some(when),
        }
    }

    /// When to schedule the timer: the earliest deadline, unless the timer is due by then
    /// (`None`). Noted as scheduled.
    pub(crate) fn schedule(&mut self, now: Instant, reading: bool) -> Option<Instant> {
        if self.in_time(now) {
            return None;
        }
        self.started = false;
        let when = self
            .next(reading)
            .and_then(|(when, _)| self.armed_for(when, now))?;
        self.timer_at = Some(when);
        Some(when)
    }

    /// The error to end the connection with, if a deadline has passed by `now`; `buffered` and
    /// `queued` (bytes undecoded and queued) go into its message.
    pub(crate) fn expired(
        &self,
        now: Instant,
        reading: bool,
        buffered: usize,
        queued: usize,
    ) -> Option<io::Error> {
        let (when, which) = self.next(reading)?;
        if when > now {
            return None;
        }
        let t = &self.timeouts;
        let secs = |limit: Option<Duration>| limit.unwrap_or_default().as_secs_f64();
        let (kind, msg) = match which {
            Deadline::Idle => (
                ErrorKind::TimedOut,
                format!("idle timeout: no byte either way for {:.3} s", secs(t.idle)),
            ),
            Deadline::Frame => (
                ErrorKind::TimedOut,
                format!(
                    "frame timeout: a frame begun {:.3} s ago is incomplete ({buffered} bytes \
                     of it received)",
                    secs(t.frame)
                ),
            ),
            Deadline::Send => (
                ErrorKind::TimedOut,
                format!(
                    "send timeout: the peer accepted nothing for {:.3} s with {queued} bytes \
                     queued",
                    secs(t.send)
                ),
            ),
            Deadline::SoftCap => {
                let (cap, limit) = self.soft_cap.unwrap_or_default();
                let msg = format!(
                    "output soft cap: more than {cap} bytes queued for {:.3} s ({queued} now)",
                    limit.as_secs_f64()
                );
                (ErrorKind::OutOfMemory, msg)
            }
        };
        Some(io::Error::new(kind, msg))
    }
}

/// The connection's timer, kept by its registration's callback: cancelled when replaced, and
/// when the registration goes, however it goes (closed, unregistered, the selector dropped).
#[derive(Default)]
pub(crate) struct Timer(Option<TimerHandle>);

impl Timer {
    /// Replaces the timer.
    pub(crate) fn set(&mut self, timer: TimerHandle) {
        self.cancel();
        self.0 = Some(timer);
    }

    /// Cancels the timer, if any.
    pub(crate) fn cancel(&mut self) {
        if let Some(timer) = self.0.take() {
            timer.cancel();
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.cancel();
    }
}
