//! The loop's services, run by `run_once`/`run` on the loop thread: what every server built on
//! Python's `selectors` adds (asyncio, Redis's `ae`, libuv).
//!
//! Timers (`timer.rs`), calls from other threads (`remote.rs`), blocking work on a thread pool
//! with its completion back on the loop (`executor.rs`), and signal numbers (`signal.rs`; a
//! signal handler itself is a registration, over the per-OS self-pipes in `sys/signal.rs`);
//! and what the loop counts and times of its own work (`observe.rs`).
//!
//! [`Services`] holds them all, and is the loop's only way in: it asks how long it may wait
//! ([`wait`](Services::wait)), whether calls are ready ([`has_ready`](Services::has_ready)),
//! whether anything is left to run ([`is_idle`](Services::is_idle)), and runs what is due
//! ([`run`](Services::run)), once per iteration, as libuv's `uv_run` calls each of its
//! services once. Nothing here knows the selector: callbacks take the loop `L` as their
//! argument, and the loop (`reactor/selector.rs`) says where its services are with
//! [`HasServices`]. The selector's public methods that schedule callbacks are in
//! `reactor/scheduling.rs`.

pub(crate) mod executor;
pub(crate) mod observe;
pub(crate) mod remote;
pub(crate) mod signal;
pub(crate) mod timer;

use crate::sys::Waker;
use executor::{Done, JobState, Outcome, Pool};
use observe::{Counts, Watch};
use remote::{Remote, Sender};
use slab::Slab;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use std::{fmt, io};
use timer::{Callback, Once, TimerHandle, TimerQueue};

/// A loop with services: where they are.
pub(crate) trait HasServices: Sized + 'static {
    fn services(&mut self) -> &mut Services<Self>;
}

/// Every service of one loop `L`.
pub(crate) struct Services<L> {
    timers: TimerQueue<L>,
    /// `call_soon`'s calls, in order.
    soon: VecDeque<Once<L>>,
    remote: Remote<L>,
    /// The executor's jobs in flight: their `done` callbacks, by job number.
    jobs: Slab<Done<L>>,
    pool: Option<Pool>,
    pool_threads: usize,
    /// What the services ran (`observe.rs`).
    pub(crate) counts: Counts,
    /// The loop's stopwatch, off unless asked for (`observe.rs`); the selector times its I/O
    /// callbacks and its waits with it too.
    pub(crate) watch: Watch,
}

impl<L: HasServices> Services<L> {
    pub(crate) fn new() -> Self {
        Services {
            timers: TimerQueue::new(),
            soon: VecDeque::new(),
            remote: Remote::new(),
            jobs: Slab::new(),
            pool: None,
            pool_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            counts: Counts::default(),
            watch: Watch::default(),
        }
    }

    // --- What the loop asks -----------------------------------------------------------------

    /// How long the loop may wait for I/O: not at all if calls are ready, else at most until
    /// the earliest timer, and at most `timeout`.
    #[inline]
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> Option<Duration> {
        if self.has_ready() {
            return Some(Duration::ZERO);
        }
        match self.timers.next_deadline() {
            Some(when) => {
                let until = when.saturating_duration_since(Instant::now());
                Some(timeout.map_or(until, |t| t.min(until)))
            }
            None => timeout,
        }
    }

    /// True if calls are waiting to run, or a handle asked the loop to stop: a reason not to
    /// wait, or to stop waiting.
    #[inline]
    pub(crate) fn has_ready(&self) -> bool {
        !self.soon.is_empty() || self.remote.pending()
    }

    /// True if nothing is left for the loop to run: no call, no executor job in flight, no
    /// timer (`run` returns once nothing is registered either).
    pub(crate) fn is_idle(&mut self) -> bool {
        self.soon.is_empty()
            && self.jobs.is_empty()
            && !self.remote.pending()
            && !self.timers.is_pending()
    }

    /// Called after every wait, before the loop looks at the calls: see `Remote`.
    #[inline]
    pub(crate) fn woke(&self) {
        self.remote.clear_notified();
    }

    /// Takes a stop request made through a handle.
    pub(crate) fn take_stop(&self) -> bool {
        self.remote.take_stop()
    }

    /// Runs what is due, once: the timers due now, then the calls queued by then (`call_soon`'s,
    /// a timer's included, then those from other threads). Returns how many callbacks ran. What
    /// the calls schedule runs in the next iteration, so it cannot starve I/O.
    #[inline]
    pub(crate) fn run(l: &mut L) -> usize {
        let services = l.services();
        if services.timers.is_empty() && !services.has_calls() {
            return 0; // a loop with no service in use: nothing but this test
        }
        Self::run_due(l)
    }

    /// [`run`](Self::run) with timers, calls, or both (no clock reading without a timer).
    #[inline(never)]
    fn run_due(l: &mut L) -> usize {
        let mut ran = 0;
        if !l.services().timers.is_empty() {
            ran += Self::run_timers(l);
        }
        if l.services().has_calls() {
            ran += Self::run_calls(l);
        }
        ran
    }

    /// True if a call may be queued: one is, or another thread can queue one.
    #[inline]
    fn has_calls(&self) -> bool {
        !self.soon.is_empty() || self.remote.has_handle()
    }

    /// Fires the timers due now that were scheduled before this call; returns how many.
    fn run_timers(l: &mut L) -> usize {
        let timers = &mut l.services().timers;
        let (now, mark) = (Instant::now(), timers.mark());
        let mut fired = 0;
        while let Some((timer, callback)) = l.services().timers.pop_due(now, mark) {
            fired += 1;
            let lag = timer.when().elapsed(); // now, as its callback starts
            let fire = move |l: &mut L| match callback {
                Callback::Once(callback) => callback(l),
                Callback::Every(mut callback, interval) => {
                    callback(l);
                    let callback = Callback::Every(callback, interval);
                    l.services()
                        .timers
                        .reschedule(timer, callback, Instant::now());
                }
            };
            Self::run_one(
                l,
                fire,
                format_args!("timer (fired {lag:.3?} after its deadline)"),
            );
            let counts = &mut l.services().counts;
            counts.timers_fired += 1;
            counts.timer_lag.add(lag);
        }
        fired
    }

    /// Runs the calls queued before now: `call_soon`'s, then those from other threads.
    fn run_calls(l: &mut L) -> usize {
        let services = l.services();
        let (soon, remote) = (services.soon.len(), services.remote.queued());
        let mut called = 0;
        for _ in 0..soon {
            if let Some(call) = l.services().soon.pop_front() {
                Self::run_one(l, call, "call_soon call");
                l.services().counts.calls += 1;
                called += 1;
            }
        }
        for _ in 0..remote {
            let Some(call) = l.services().remote.next() else {
                break;
            };
            Self::run_one(l, call, "call from another thread");
            l.services().counts.remote_calls += 1;
            called += 1;
        }
        called
    }

    /// Runs `call` on the loop, timed while the stopwatch runs (`what` names it in the warning
    /// if it was slow): a timer's callback, a call, a hook.
    pub(crate) fn run_one(l: &mut L, call: impl FnOnce(&mut L), what: impl fmt::Display) {
        let started = l.services().watch.start();
        call(l);
        if let Some(started) = started {
            l.services().watch.ran(started, what);
        }
    }

    /// Executor jobs waiting for a worker, and running.
    pub(crate) fn jobs(&self) -> (usize, usize) {
        self.pool.as_ref().map_or((0, 0), Pool::load)
    }

    // --- What callbacks schedule ------------------------------------------------------------

    /// Queues `call` for the next iteration (after I/O and timers).
    pub(crate) fn call_soon(&mut self, call: Once<L>) {
        self.soon.push_back(call);
    }

    /// Schedules `callback` once, at `when`.
    pub(crate) fn call_at(&mut self, when: Instant, callback: Once<L>) -> TimerHandle {
        self.timers.schedule(when, Callback::Once(callback))
    }

    /// Schedules `callback` every `interval` (raised to [`timer::MIN_INTERVAL`]), first
    /// `interval` from now.
    pub(crate) fn call_repeating(
        &mut self,
        interval: Duration,
        callback: Box<dyn FnMut(&mut L)>,
    ) -> TimerHandle {
        let interval = interval.max(timer::MIN_INTERVAL);
        let when = timer::deadline_after(Instant::now(), interval);
        self.timers
            .schedule(when, Callback::Every(callback, interval))
    }

    /// A sender of calls from other threads; the first one sets up the wake-up with `waker`.
    pub(crate) fn sender(
        &mut self,
        waker: impl FnOnce() -> io::Result<Waker>,
    ) -> io::Result<Sender<L>> {
        self.remote.sender(waker)
    }

    /// Runs `work` on the pool (started now, on first use), and `done` on the loop once it
    /// finished, was cancelled (`Interrupted`) or panicked; the completion travels back through
    /// `reply`. Returns the job's state, for its handle.
    pub(crate) fn submit<T, W>(
        &mut self,
        work: W,
        done: Done<L>,
        reply: Sender<L>,
    ) -> io::Result<(usize, JobState)>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
    {
        if self.pool.is_none() {
            self.pool = Some(Pool::new(self.pool_threads)?);
        }
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| io::Error::other("no executor"))?;
        let id = self.jobs.insert(done);
        let state = executor::pending();
        let job = executor::job(work, state.clone(), pool.running(), move |outcome| {
            // If the loop is gone, so is `done`: nothing to deliver to.
            let _ = reply.send(Box::new(move |l| Self::finish_job(l, id, outcome)));
        });
        if let Err(e) = pool.submit(job) {
            drop(self.jobs.remove(id));
            return Err(e);
        }
        Ok((id, state))
    }

    /// Runs the `done` callback of job `id`. Exactly one completion arrives per job: the
    /// worker's, or (if the job was cancelled before it started, and so never runs) its
    /// handle's.
    pub(crate) fn finish_job(l: &mut L, id: usize, outcome: Outcome) {
        match l.services().jobs.try_remove(id) {
            Some(done) => done(l, outcome),
            None => log::error!("executor: completion for unknown job {id}"),
        }
    }

    /// Sets the number of executor threads, before the pool starts.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `threads` is 0 or more than [`executor::MAX_THREADS`];
    /// `ResourceBusy` if the pool already started.
    pub(crate) fn set_pool_threads(&mut self, threads: usize) -> io::Result<()> {
        let max = executor::MAX_THREADS;
        if threads == 0 || threads > max {
            let msg =
                format!("set_executor_threads: {threads} threads; the executor takes 1 to {max}");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
        if self.pool.is_some() {
            let msg =
                "set_executor_threads: the pool already started; set its size before the first job";
            return Err(io::Error::new(io::ErrorKind::ResourceBusy, msg));
        }
        self.pool_threads = threads;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Loop(Services<Loop>);

    impl HasServices for Loop {
        fn services(&mut self) -> &mut Services<Loop> {
            &mut self.0
        }
    }

    #[test]
    fn repeating_intervals_below_the_minimum_are_raised_to_it() {
        let mut services = Services::<Loop>::new();
        for interval in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(999),
        ] {
            let before = Instant::now();
            let timer = services.call_repeating(interval, Box::new(|_| {}));
            let after = Instant::now();
            assert!(timer.when() >= before + timer::MIN_INTERVAL, "{interval:?}");
            assert!(timer.when() <= after + timer::MIN_INTERVAL, "{interval:?}");
            timer.cancel();
        }
        let before = Instant::now();
        let timer = services.call_repeating(Duration::from_millis(3), Box::new(|_| {}));
        assert!(timer.when() >= before + Duration::from_millis(3)); // longer ones unchanged
        assert!(timer.when() <= Instant::now() + Duration::from_millis(3));
    }
}
