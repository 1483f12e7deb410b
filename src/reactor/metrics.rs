//! The loop's metrics: the counters the selector keeps as it runs, and the snapshot a program
//! reads ([`Metrics`], from `Selector::metrics`).
//!
//! The counters are plain integers bumped on the loop thread: one addition per dispatched
//! callback on the hot path, the rarer outcomes (errors, panics) counted where they are
//! handled, off the hot path. A snapshot is a copy, so it can be sent to another thread (a
//! monitoring thread, a log line) while the loop runs on. Time is measured only when asked for
//! (`services/observe.rs`).

use crate::services::observe::{Counts, Lag, Watch};
use std::time::Duration;

/// What a selector's loop has done since it was created: a snapshot from
/// [`Selector::metrics`](crate::Selector::metrics).
///
/// The counts are exact; the times ([`wait_time`](Self::wait_time),
/// [`callback_time`](Self::callback_time)) are measured only while
/// [`set_time_metrics`](crate::Selector::set_time_metrics) or a slow-callback threshold is on.
/// `Send`, so a loop can hand it to a monitoring thread.
///
/// # Examples
///
/// ```
/// use selectloop::DefaultSelector;
/// use std::time::Duration;
///
/// let mut sel = DefaultSelector::new()?;
/// sel.call_soon(|_sel| {});
/// sel.run_once(Some(Duration::ZERO))?;
/// let m = sel.metrics();
/// assert_eq!((m.iterations, m.calls, m.dispatched), (1, 1, 0));
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Loop iterations: calls of `select` and `run_once` (libuv's loop count).
    pub iterations: u64,
    /// Readiness reports dispatched: registration callbacks run by `dispatch` (and so by
    /// `run_once`) for I/O.
    pub dispatched: u64,
    /// Registration callbacks by how they ended: those dispatched for I/O and those run by
    /// `dispatch_soon`.
    pub callbacks: Outcomes,
    /// Registrations now.
    pub registrations: usize,
    /// Registrations made since the selector was created.
    pub registered: u64,
    /// Timers fired.
    pub timers_fired: u64,
    /// How late the timers fired: the loop's lag.
    pub timer_lag: Lag,
    /// `call_soon` calls run (the calls behind `dispatch_soon` included).
    pub calls: u64,
    /// Calls from other threads run: `Handle::call_soon_threadsafe`, executor completions.
    pub remote_calls: u64,
    /// Executor jobs waiting for a worker now (a cancelled one until a worker drops it).
    pub jobs_queued: usize,
    /// Executor jobs running now.
    pub jobs_running: usize,
    /// Time spent waiting in the OS poller (libuv's idle time), while time is measured.
    pub wait_time: Duration,
    /// Time spent in callbacks of every kind (registrations, timers, calls, hooks), while time
    /// is measured.
    pub callback_time: Duration,
}

/// Registration callbacks by how they ended, from [`Metrics::callbacks`].
///
/// Each callback run counts once, in one field: see [`ErrorAction`](crate::ErrorAction) for
/// what the error handler decides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcomes {
    /// Returned `Ok`.
    pub ok: u64,
    /// Returned `WouldBlock` or `Interrupted`: not ready after all, ignored.
    pub spurious: u64,
    /// Failed, and the error handler kept the registration.
    pub kept: u64,
    /// Failed, and the registration was paused (a `Keep` twice in a row is a pause).
    pub paused: u64,
    /// Failed, and the registration was closed (or had unregistered itself first).
    pub closed: u64,
    /// Failed, and the error handler stopped the loop with the error.
    pub stopped: u64,
    /// Panicked: the registration was removed and the panic resumed.
    pub panicked: u64,
}

impl Outcomes {
    /// Every counted callback that did not return `Ok`.
    fn not_ok(&self) -> u64 {
        self.spurious + self.kept + self.paused + self.closed + self.stopped + self.panicked
    }
}

/// The selector's own counters (the services count theirs: `services/observe.rs`).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) iterations: u64,
    pub(crate) dispatched: u64,
    /// Registration callbacks run by `dispatch_soon`.
    pub(crate) fed: u64,
    pub(crate) registered: u64,
    /// The outcomes, but `ok`: every callback run that is not counted here returned `Ok`.
    pub(crate) outcomes: Outcomes,
}

impl Counters {
    /// The snapshot, with the services' counts and times and what is true now.
    pub(crate) fn snapshot(
        &self,
        services: &Counts,
        watch: &Watch,
        registrations: usize,
        (jobs_queued, jobs_running): (usize, usize),
    ) -> Metrics {
        let ran = self.dispatched + self.fed;
        Metrics {
            iterations: self.iterations,
            dispatched: self.dispatched,
            callbacks: Outcomes {
                ok: ran.saturating_sub(self.outcomes.not_ok()),
                ..self.outcomes.clone()
            },
            registrations,
            registered: self.registered,
            timers_fired: services.timers_fired,
            timer_lag: services.timer_lag.clone(),
            calls: services.calls,
            remote_calls: services.remote_calls,
            jobs_queued,
            jobs_running,
            wait_time: watch.waiting,
            callback_time: watch.running,
        }
    }
}
