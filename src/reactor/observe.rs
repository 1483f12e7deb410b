//! What a program can see of its own loop: the metrics, slow-callback warnings, and the hooks
//! around the wait.
//!
//! A server asks three questions of its loop that `select` alone cannot answer: how busy is it
//! (the [`Metrics`]: iterations, callbacks, timers and how late they fire, time waiting against
//! time working — libuv's `uv_metrics_info` and idle time, tokio's runtime metrics), which
//! callback stalled it (asyncio's debug-mode warning, `Executing <Handle ...> took 0.150 seconds`),
//! and how to do something once per iteration, such as flushing output batched by many
//! callbacks (Redis's `beforeSleep`, libuv's prepare and check handles). Counting costs an
//! addition per callback and is always on; reading the clock is off until asked for.

use crate::reactor::hooks::Phase;
use crate::reactor::metrics::Metrics;
use crate::reactor::selector::Selector;
use crate::sys::Backend;
use std::time::Duration;

impl<B: Backend> Selector<B> {
    /// A snapshot of what the loop has done since the selector was created: iterations,
    /// callbacks by outcome, registrations, timers and their lag, calls, executor jobs, and
    /// (while time is measured) time waiting against time in callbacks. See [`Metrics`].
    ///
    /// Exact and cheap: the counters are kept as the loop runs, at an addition per callback.
    /// Called from a callback, the snapshot does not count that callback yet.
    ///
    /// # Examples
    ///
    /// Printing the loop's lag once a second from a timer:
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    /// use std::time::Duration;
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// let ticks = sel.call_repeating(Duration::from_millis(1), |sel| {
    ///     let m = sel.metrics();
    ///     let lag = &m.timer_lag;
    ///     log::info!("{} iterations, timers late by {:?} at most", m.iterations, lag.max);
    ///     if m.timers_fired == 2 {
    ///         sel.stop(); // this one is the third: it counts once it returns
    ///     }
    /// });
    /// sel.run()?;
    /// ticks.cancel();
    /// assert_eq!(sel.metrics().timers_fired, 3);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        let services = &self.services;
        self.counters.snapshot(
            &services.counts,
            &services.watch,
            self.registry.len(),
            services.jobs(),
        )
    }

    /// Measures time (`true`) or stops measuring it (`false`, the default): the loop then reads
    /// the clock around each wait and each callback, for [`Metrics::wait_time`] and
    /// [`Metrics::callback_time`] (libuv's idle time, `UV_METRICS_IDLE_TIME`).
    ///
    /// Off by default because the clock is not free: two readings per callback and two per
    /// wait, no system call (the vDSO, on Linux) but some tens of instructions each. A
    /// slow-callback threshold measures time too, whatever this says.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    /// use std::time::Duration;
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// sel.set_time_metrics(true);
    /// sel.run_once(Some(Duration::from_millis(5)))?; // nothing registered: waits 5 ms
    /// assert!(sel.metrics().wait_time >= Duration::from_millis(5));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_time_metrics(&mut self, on: bool) {
        self.services.watch.set_metrics(on);
    }

    /// Warns about callbacks that run longer than `threshold` (`None`, the default: no
    /// warnings), as asyncio's debug mode does with `slow_callback_duration`.
    ///
    /// Each callback over the threshold — a registration's (named by its fd, its source's type
    /// and the events it was called for), a timer's (with how late it fired), a call's, a
    /// hook's — logs one `warn!`:
    ///
    /// ```text
    /// slow callback: callback for fd 7 (Connection<TcpStream, Bytes>, READ) took 152.301ms
    /// ```
    ///
    /// With a threshold set, the loop reads the clock around every callback (and measures time
    /// for the metrics, as [`set_time_metrics`](Self::set_time_metrics) does); without one,
    /// this costs nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    /// use std::time::Duration;
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// sel.set_slow_callback_duration(Some(Duration::from_millis(100)));
    /// assert_eq!(sel.slow_callback_duration(), Some(Duration::from_millis(100)));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_slow_callback_duration(&mut self, threshold: Option<Duration>) {
        self.services.watch.set_slow(threshold);
    }

    /// The slow-callback threshold, if set: see
    /// [`set_slow_callback_duration`](Self::set_slow_callback_duration).
    pub fn slow_callback_duration(&self) -> Option<Duration> {
        self.services.watch.slow()
    }

    /// Sets the hook that [`run_once`](Self::run_once) (and so [`run`](Self::run)) calls just
    /// before each wait for I/O, replacing the previous one (Redis's `beforeSleep`, libuv's
    /// prepare handle).
    ///
    /// The place to do once per iteration what many callbacks asked for: flush output they
    /// batched, write a log line, check a condition. A call it queues with
    /// [`call_soon`](Self::call_soon) ends the wait at once. The hook may replace or clear the
    /// hooks, itself included. Not called when the iteration takes reports left over from a
    /// stopped dispatch instead of waiting, nor by [`select`](Self::select), which is Python's
    /// bare wait. A panic in the hook propagates, and the hook is dropped.
    ///
    /// One iteration, in order: `before_wait` hook, wait, `after_wait` hook, I/O callbacks,
    /// timers, `call_soon` calls, calls from other threads.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// let phases = Rc::new(RefCell::new(Vec::new()));
    /// let (before, after, call) = (phases.clone(), phases.clone(), phases.clone());
    /// sel.set_before_wait(move |_sel| before.borrow_mut().push("before_wait"));
    /// sel.set_after_wait(move |_sel| after.borrow_mut().push("after_wait"));
    /// sel.call_soon(move |_sel| call.borrow_mut().push("call_soon"));
    /// sel.run_once(Some(Duration::ZERO))?;
    /// assert_eq!(*phases.borrow(), ["before_wait", "after_wait", "call_soon"]);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_before_wait(&mut self, hook: impl FnMut(&mut Selector<B>) + 'static) {
        self.hooks.set(Phase::BeforeWait, Box::new(hook));
    }

    /// Sets the hook that [`run_once`](Self::run_once) calls just after each wait for I/O,
    /// before any callback runs, replacing the previous one (Redis's `afterSleep`, libuv's
    /// check handle runs after I/O instead). As for
    /// [`set_before_wait`](Self::set_before_wait).
    pub fn set_after_wait(&mut self, hook: impl FnMut(&mut Selector<B>) + 'static) {
        self.hooks.set(Phase::AfterWait, Box::new(hook));
    }

    /// Removes both hooks around the wait (dropping them). Callable from a hook.
    pub fn clear_wait_hooks(&mut self) {
        self.hooks.clear();
    }
}
