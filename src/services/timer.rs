//! Timers: `call_later`, `call_at`, `call_repeating`, and their cancellable handles.
//!
//! A binary heap ordered by (deadline, scheduling number), as in asyncio and libuv: the earliest
//! timer is always on top, timers due at the same instant fire in the order they were scheduled,
//! and scheduling is O(log n). Cancelling is O(1) and lazy: the handle marks the timer, the heap
//! drops the callback when the timer reaches the top — or sooner, when cancelled timers make up
//! more than half of the heap, which is then rebuilt without them. So schedule-and-cancel cycles
//! keep the heap at most about twice the number of live timers.
//!
//! The loop fires the timers due when a batch of I/O has been dispatched (see
//! [`Selector::run_once`](crate::Selector::run_once)). It takes one reading of the clock and
//! fires only timers scheduled before it started, so a callback that schedules a timer due now
//! does not run it in the same pass: it fires in the next iteration. A timer never fires before
//! its deadline, and never twice.
//!
//! The queue knows nothing of the selector: its callbacks take the loop (`L`) as their
//! argument, whatever type that is.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A handle to a scheduled timer, returned by [`Selector::call_later`](crate::Selector::call_later)
/// and its kin.
///
/// Dropping the handle does not cancel the timer. Handles are cheap to clone.
#[derive(Clone)]
pub struct TimerHandle {
    state: Rc<TimerState>,
}

struct TimerState {
    when: Cell<Instant>,
    cancelled: Cell<bool>,
    /// The number of cancelled timers still in the heap, shared with the queue (a heuristic
    /// for compaction: it may be off by one while a repeating timer is being fired).
    heap_cancelled: Rc<Cell<usize>>,
    /// False once a one-shot timer has fired (cancelling it then is a no-op).
    pending: Cell<bool>,
}

impl TimerHandle {
    /// Cancels the timer: its callback will not run (again, for a repeating timer).
    ///
    /// Cancelling a timer that already fired or was already cancelled does nothing. A repeating
    /// timer may cancel itself from its own callback.
    pub fn cancel(&self) {
        let state = &self.state;
        if state.pending.get() && !state.cancelled.replace(true) {
            state.heap_cancelled.set(state.heap_cancelled.get() + 1);
        }
    }

    /// True if [`cancel`](Self::cancel) was called before the timer was done.
    pub fn is_cancelled(&self) -> bool {
        self.state.cancelled.get()
    }

    /// When the timer is (or was last) due.
    pub fn when(&self) -> Instant {
        self.state.when.get()
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("when", &self.state.when.get())
            .field("cancelled", &self.state.cancelled.get())
            .field("pending", &self.state.pending.get())
            .finish()
    }
}

/// A callback run once on the loop thread (`L` is the loop): timers and `call_soon`.
pub(crate) type Once<L> = Box<dyn FnOnce(&mut L)>;
type Repeating<L> = Box<dyn FnMut(&mut L)>;

pub(crate) enum Callback<L> {
    Once(Once<L>),
    Every(Repeating<L>, Duration),
}

struct Entry<L> {
    when: Instant,
    seq: u64,
    state: Rc<TimerState>,
    callback: Callback<L>,
}

// The heap is a max-heap: the entry that is due first must compare greatest.
impl<L> Ord for Entry<L> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.when, other.seq).cmp(&(self.when, self.seq))
    }
}
impl<L> PartialOrd for Entry<L> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<L> PartialEq for Entry<L> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<L> Eq for Entry<L> {}

/// The timer heap of one loop.
pub(crate) struct TimerQueue<L> {
    heap: BinaryHeap<Entry<L>>,
    next_seq: u64,
    cancelled: Rc<Cell<usize>>,
}

impl<L> TimerQueue<L> {
    pub(crate) fn new() -> Self {
        TimerQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
            cancelled: Rc::new(Cell::new(0)),
        }
    }

    pub(crate) fn schedule(&mut self, when: Instant, callback: Callback<L>) -> TimerHandle {
        let state = Rc::new(TimerState {
            when: Cell::new(when),
            cancelled: Cell::new(false),
            heap_cancelled: self.cancelled.clone(),
            pending: Cell::new(true),
        });
        self.push(when, state.clone(), callback);
        self.compact_if_mostly_cancelled();
        TimerHandle { state }
    }

    fn push(&mut self, when: Instant, state: Rc<TimerState>, callback: Callback<L>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        state.when.set(when);
        self.heap.push(Entry {
            when,
            seq,
            state,
            callback,
        });
    }

    fn compact_if_mostly_cancelled(&mut self) {
        let cancelled = self.cancelled.get();
        if cancelled > 64 && cancelled > self.heap.len() / 2 {
            self.heap.retain(|entry| !entry.state.cancelled.get());
            self.cancelled.set(0);
        }
    }

    /// Drops cancelled timers from the top of the heap.
    fn skip_cancelled(&mut self) {
        self.compact_if_mostly_cancelled();
        while self.heap.peek().is_some_and(|e| e.state.cancelled.get()) {
            self.heap.pop();
            self.cancelled.set(self.cancelled.get().saturating_sub(1));
        }
    }

    /// The deadline of the earliest live timer. Every `run_once` asks, most often of an empty
    /// heap: that answer costs no call.
    #[inline]
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        if self.heap.is_empty() {
            return None;
        }
        self.skip_cancelled();
        self.heap.peek().map(|entry| entry.when)
    }

    /// True if the heap holds no timer at all, live or cancelled.
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// True if a live timer is scheduled.
    pub(crate) fn is_pending(&mut self) -> bool {
        self.next_deadline().is_some()
    }

    /// The scheduling number the next timer will get: timers numbered below it exist now.
    pub(crate) fn mark(&self) -> u64 {
        self.next_seq
    }

    /// Takes the earliest live timer if it is due at `now` and was scheduled before `mark`.
    pub(crate) fn pop_due(
        &mut self,
        now: Instant,
        mark: u64,
    ) -> Option<(TimerHandle, Callback<L>)> {
        self.skip_cancelled();
        let top = self.heap.peek()?;
        if top.when > now || top.seq >= mark {
            return None;
        }
        let entry = self.heap.pop()?;
        if let Callback::Once(_) = entry.callback {
            entry.state.pending.set(false);
        }
        Some((TimerHandle { state: entry.state }, entry.callback))
    }

    /// Puts a repeating timer back at its next tick after `now` — its last deadline plus a
    /// whole number of intervals, so it never drifts; ticks already past are skipped, not made
    /// up — unless it cancelled itself meanwhile.
    pub(crate) fn reschedule(&mut self, timer: TimerHandle, callback: Callback<L>, now: Instant) {
        let Callback::Every(_, interval) = &callback else {
            return;
        };
        if timer.state.cancelled.get() {
            timer.state.pending.set(false);
            self.cancelled.set(self.cancelled.get().saturating_sub(1));
            return;
        }
        self.push(
            next_tick(timer.when(), *interval, now),
            timer.state,
            callback,
        );
    }

    /// The number of entries in the heap, cancelled ones included (for tests).
    #[cfg(test)]
    pub(crate) fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

/// The shortest interval of a repeating timer: shorter ones are raised to it, so that a
/// repeating timer cannot be due at every iteration and keep the loop from waiting.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The first of `last + k × interval` (k = 1, 2, ...) that is after `now`.
fn next_tick(last: Instant, interval: Duration, now: Instant) -> Instant {
    let behind = now.saturating_duration_since(last).as_nanos();
    let ticks = behind / interval.as_nanos().max(1) + 1; // the interval is at least 1 ms
    let delay = interval.as_nanos().saturating_mul(ticks);
    deadline_after(
        last,
        Duration::from_nanos(u64::try_from(delay).unwrap_or(u64::MAX)),
    )
}

/// `start + delay`, or, where that is past what `Instant` can represent, a deadline decades
/// away (so `Duration::MAX` means "never", without overflow or panic).
pub(crate) fn deadline_after(start: Instant, delay: Duration) -> Instant {
    let mut delay = delay;
    loop {
        if let Some(when) = start.checked_add(delay) {
            return when;
        }
        delay /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_and_cancel_cycles_keep_the_heap_small() {
        let mut queue = TimerQueue::<()>::new();
        let now = Instant::now();
        let keep = queue.schedule(
            now + Duration::from_secs(60),
            Callback::Once(Box::new(|_| {})),
        );
        for i in 0..1_000_000u64 {
            let when = now + Duration::from_millis(i % 1000);
            queue
                .schedule(when, Callback::Once(Box::new(|_| {})))
                .cancel();
        }
        assert!(
            queue.heap_len() <= 200,
            "heap holds {} entries",
            queue.heap_len()
        );
        assert_eq!(queue.next_deadline(), Some(keep.when()));
    }

    #[test]
    fn cancelling_twice_or_after_firing_is_harmless() {
        let mut queue = TimerQueue::<()>::new();
        let now = Instant::now();
        let timer = queue.schedule(now, Callback::Once(Box::new(|_| {})));
        let mark = queue.mark();
        assert!(queue.pop_due(now, mark).is_some());
        timer.cancel(); // fired already: no-op
        timer.cancel();
        assert!(!timer.is_cancelled());
        assert_eq!(queue.cancelled.get(), 0);
        assert!(queue.pop_due(now, mark).is_none());
    }

    #[test]
    fn huge_delays_saturate() {
        let now = Instant::now();
        assert!(deadline_after(now, Duration::MAX) > now + Duration::from_secs(86_400 * 365));
        assert_eq!(deadline_after(now, Duration::ZERO), now);
    }
}
