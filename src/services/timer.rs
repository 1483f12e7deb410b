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
//! [`Selector::run_once`]). It takes one reading of the clock and fires only timers scheduled
//! before it started, so a callback that schedules a timer due now does not run it in the same
//! pass: it fires in the next iteration. A timer never fires before its deadline, and never twice.

use crate::sys::Backend;
use crate::reactor::selector::Selector;
use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A handle to a scheduled timer, returned by [`Selector::call_later`] and its kin.
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

/// A callback run once on the loop thread: timers and `call_soon`.
pub(crate) type Once<B> = Box<dyn FnOnce(&mut Selector<B>)>;
type Repeating<B> = Box<dyn FnMut(&mut Selector<B>)>;

pub(crate) enum Callback<B: Backend> {
    Once(Once<B>),
    Every(Repeating<B>, Duration),
}

struct Entry<B: Backend> {
    when: Instant,
    seq: u64,
    state: Rc<TimerState>,
    callback: Callback<B>,
}

// The heap is a max-heap: the entry that is due first must compare greatest.
impl<B: Backend> Ord for Entry<B> {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.when, other.seq).cmp(&(self.when, self.seq))
    }
}
impl<B: Backend> PartialOrd for Entry<B> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<B: Backend> PartialEq for Entry<B> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<B: Backend> Eq for Entry<B> {}

/// The timer heap of one selector.
pub(crate) struct TimerQueue<B: Backend> {
    heap: BinaryHeap<Entry<B>>,
    next_seq: u64,
    cancelled: Rc<Cell<usize>>,
}

impl<B: Backend> TimerQueue<B> {
    pub(crate) fn new() -> Self {
        TimerQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
            cancelled: Rc::new(Cell::new(0)),
        }
    }

    pub(crate) fn schedule(&mut self, when: Instant, callback: Callback<B>) -> TimerHandle {
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

    fn push(&mut self, when: Instant, state: Rc<TimerState>, callback: Callback<B>) {
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
    ) -> Option<(TimerHandle, Callback<B>)> {
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
    pub(crate) fn reschedule(&mut self, timer: TimerHandle, callback: Callback<B>, now: Instant) {
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

impl<B: Backend> Selector<B> {
    /// Calls `callback` once, `delay` from now (asyncio: `loop.call_later`).
    ///
    /// Never earlier: the loop wakes in time for the earliest timer, and a timer that comes due
    /// while callbacks run fires in the next iteration. Timers due at the same instant fire in
    /// the order they were scheduled. A delay too large for the clock (`Duration::MAX`) means
    /// "never", without overflow. While a timer is pending, [`run`](Self::run) keeps running.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    /// use std::time::{Duration, Instant};
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// let start = Instant::now();
    /// sel.call_later(Duration::from_millis(20), move |_sel| {
    ///     assert!(start.elapsed() >= Duration::from_millis(20));
    /// });
    /// let never = sel.call_later(Duration::MAX, |_sel| unreachable!());
    /// never.cancel();
    /// sel.run()?; // returns once no timer is left
    /// # std::io::Result::Ok(())
    /// ```
    pub fn call_later(
        &mut self,
        delay: Duration,
        callback: impl FnOnce(&mut Selector<B>) + 'static,
    ) -> TimerHandle {
        self.call_at(deadline_after(Instant::now(), delay), callback)
    }

    /// Calls `callback` once, at `when` (asyncio: `loop.call_at`). A past `when` fires in the
    /// next iteration.
    pub fn call_at(
        &mut self,
        when: Instant,
        callback: impl FnOnce(&mut Selector<B>) + 'static,
    ) -> TimerHandle {
        self.timers
            .schedule(when, Callback::Once(Box::new(callback)))
    }

    /// Calls `callback` every `interval`, first `interval` from now, until the returned handle
    /// is cancelled (libuv: a repeating `uv_timer`).
    ///
    /// The deadlines stay on one grid — the first is `interval` from now, each next one
    /// `interval` after the previous — so a late call does not make the later ones drift. If a
    /// call comes so late (the callback or the loop stalled) that ticks were missed, they are
    /// skipped, not made up in a burst: the next call is at the first tick after the late one
    /// returned.
    ///
    /// An `interval` below 1 ms (`Duration::ZERO` included) is raised to 1 ms, as browsers
    /// clamp `setInterval`: a timer that is always due would keep the loop from ever waiting
    /// for I/O, spinning a CPU. So a repeating timer fires at most once a millisecond. A
    /// `Duration::MAX` interval means "never", as for [`call_later`](Self::call_later).
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    /// use std::time::{Duration, Instant};
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// let before = Instant::now();
    /// let timer = sel.call_repeating(Duration::ZERO, |_sel| {});
    /// assert!(timer.when() >= before + Duration::from_millis(1)); // raised to 1 ms
    /// timer.cancel();
    /// # std::io::Result::Ok(())
    /// ```
    pub fn call_repeating(
        &mut self,
        interval: Duration,
        callback: impl FnMut(&mut Selector<B>) + 'static,
    ) -> TimerHandle {
        let interval = interval.max(MIN_INTERVAL);
        let when = deadline_after(Instant::now(), interval);
        self.timers
            .schedule(when, Callback::Every(Box::new(callback), interval))
    }

    /// Fires the timers due now that were scheduled before this call; returns how many.
    pub(crate) fn run_timers(&mut self) -> usize {
        if self.timers.is_empty() {
            return 0; // no clock reading when there is no timer
        }
        let (now, mark) = (Instant::now(), self.timers.mark());
        let mut fired = 0;
        while let Some((timer, callback)) = self.timers.pop_due(now, mark) {
            fired += 1;
            match callback {
                Callback::Once(callback) => callback(self),
                Callback::Every(mut callback, interval) => {
                    callback(self);
                    let callback = Callback::Every(callback, interval);
                    self.timers.reschedule(timer, callback, Instant::now());
                }
            }
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::scripted::Scripted;

    #[test]
    fn schedule_and_cancel_cycles_keep_the_heap_small() {
        let mut queue = TimerQueue::<Scripted>::new();
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
        let mut queue = TimerQueue::<Scripted>::new();
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
    fn repeating_intervals_below_the_minimum_are_raised_to_it() {
        let mut sel = Selector::<Scripted>::new().unwrap();
        for interval in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(999),
        ] {
            let before = Instant::now();
            let timer = sel.call_repeating(interval, |_| {});
            let after = Instant::now();
            assert!(timer.when() >= before + MIN_INTERVAL, "{interval:?}");
            assert!(timer.when() <= after + MIN_INTERVAL, "{interval:?}");
            timer.cancel();
        }
        let before = Instant::now();
        let timer = sel.call_repeating(Duration::from_millis(3), |_| {});
        assert!(timer.when() >= before + Duration::from_millis(3)); // longer ones unchanged
        assert!(timer.when() <= Instant::now() + Duration::from_millis(3));
    }

    #[test]
    fn huge_delays_saturate() {
        let now = Instant::now();
        assert!(deadline_after(now, Duration::MAX) > now + Duration::from_secs(86_400 * 365));
        assert_eq!(deadline_after(now, Duration::ZERO), now);
    }
}
