//! What the loop counts and times about its own work: the services' counters, how late timers
//! fire, and the optional stopwatch behind slow-callback warnings and time metrics.
//!
//! Counting is always on: an addition per callback, no system call, no clock reading. Reading
//! the clock is not free (a `clock_gettime` through the vDSO is some tens of instructions, as
//! much as a few percent of a whole echo), so the stopwatch runs only when asked for, as
//! libuv's idle time does (`UV_METRICS_IDLE_TIME`) and asyncio's slow-callback warnings do
//! (debug mode only). The selector (`reactor/`) owns one [`Watch`] inside its services and uses
//! it for I/O callbacks too.

use std::fmt;
use std::time::{Duration, Instant};

/// How late timers fired: the loop's lag, from [`Metrics::timer_lag`](crate::Metrics).
///
/// A timer never fires early; how late it fires is how long the loop was busy (or waiting for a
/// coarse poller timeout) past its deadline. Each firing is measured from the deadline to the
/// moment its callback starts (one reading of the clock per timer fired), and counted in one
/// of the buckets of [`Lag::BOUNDS`].
///
/// # Examples
///
/// ```
/// use selectloop::Lag;
/// use std::time::Duration;
///
/// let lag = Lag::default();
/// assert_eq!(lag.mean(), Duration::ZERO); // no timer fired yet
/// assert_eq!(lag.buckets.len(), Lag::BOUNDS.len() + 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lag {
    /// Timers measured: every timer fired.
    pub count: u64,
    /// The latest any timer fired.
    pub max: Duration,
    /// The sum of all lags, for the mean.
    pub total: Duration,
    /// Timers by lag: `buckets[i]` counts lags up to `BOUNDS[i]` (and above the bound before);
    /// the last bucket counts those above the last bound.
    pub buckets: [u64; 5],
}

impl Lag {
    /// The upper bounds of the first buckets of [`buckets`](Self::buckets): 1 ms, 10 ms,
    /// 100 ms, 1 s.
    pub const BOUNDS: [Duration; 4] = [
        Duration::from_millis(1),
        Duration::from_millis(10),
        Duration::from_millis(100),
        Duration::from_secs(1),
    ];

    /// The mean lag, or zero if no timer fired.
    pub fn mean(&self) -> Duration {
        match self.count {
            0 => Duration::ZERO,
            n => self.total / u32::try_from(n).unwrap_or(u32::MAX),
        }
    }

    /// Counts one timer that fired `lag` after its deadline.
    pub(crate) fn add(&mut self, lag: Duration) {
        self.count += 1;
        self.max = self.max.max(lag);
        self.total = self.total.saturating_add(lag);
        let bucket = Self::BOUNDS.iter().take_while(|&&b| lag > b).count();
        self.buckets[bucket] += 1;
    }
}

/// What the services ran, counted (see [`Metrics`](crate::Metrics)).
#[derive(Clone, Debug, Default)]
pub(crate) struct Counts {
    pub(crate) timers_fired: u64,
    pub(crate) timer_lag: Lag,
    pub(crate) calls: u64,
    pub(crate) remote_calls: u64,
}

/// The loop's stopwatch: off by default; on, it times the wait and every callback, adds them up
/// and warns about callbacks over the slow-callback threshold.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// Time the wait and the callbacks (time metrics asked for, or a threshold set).
    timing: bool,
    /// Time metrics asked for (`set_time_metrics`).
    metrics: bool,
    /// The slow-callback threshold, if set.
    slow: Option<Duration>,
    /// Time spent waiting in the poller.
    pub(crate) waiting: Duration,
    /// Time spent in callbacks.
    pub(crate) running: Duration,
    /// A callback inside the one being timed was timed and reported already (a registration's
    /// callback fed by `dispatch_soon` runs inside a call): the outer one is not counted again.
    inner: bool,
}

impl Watch {
    pub(crate) fn set_metrics(&mut self, on: bool) {
        self.metrics = on;
        self.timing = self.metrics || self.slow.is_some();
    }

    pub(crate) fn set_slow(&mut self, threshold: Option<Duration>) {
        self.slow = threshold;
        self.timing = self.metrics || self.slow.is_some();
    }

    pub(crate) fn slow(&self) -> Option<Duration> {
        self.slow
    }

    /// True if the watch runs: the wait and the callbacks are to be timed.
    #[inline]
    pub(crate) fn timing(&self) -> bool {
        self.timing
    }

    /// The time now if the watch runs: what a callback or a wait is measured from.
    #[inline]
    pub(crate) fn start(&self) -> Option<Instant> {
        if self.timing {
            Some(Instant::now())
        } else {
            None
        }
    }

    /// A wait that began at `started` is over.
    pub(crate) fn waited(&mut self, started: Instant) {
        self.waiting = self.waiting.saturating_add(started.elapsed());
    }

    /// A callback that began at `started` returned; `what` names it for the warning, if it was
    /// slow.
    #[cold]
    pub(crate) fn ran(&mut self, started: Instant, what: impl fmt::Display) {
        if std::mem::take(&mut self.inner) {
            return; // measured and reported inside
        }
        let took = started.elapsed();
        self.running = self.running.saturating_add(took);
        if self.slow.is_some_and(|slow| took > slow) {
            log::warn!("slow callback: {what} took {took:.3?}");
        }
    }
}

impl Watch {
    /// As [`ran`](Self::ran), for a callback run inside another timed one (whose own `ran`
    /// then counts nothing): the inner one names what really ran.
    #[cold]
    pub(crate) fn ran_inside(&mut self, started: Instant, what: impl fmt::Display) {
        self.ran(started, what);
        self.inner = true;
    }
}

/// `std::any::type_name` without module paths, written only when displayed (a warning):
/// `Connection<TcpStream, Bytes>` for
/// `selectloop::streams::connection::Connection<std::net::tcp::TcpStream, ...>`.
pub(crate) struct ShortTypeName(pub(crate) &'static str);

impl fmt::Display for ShortTypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let is_path = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
        let mut rest = self.0;
        while !rest.is_empty() {
            let end = rest.find(|c: char| !is_path(c)).unwrap_or(rest.len());
            let (path, after) = rest.split_at(end);
            f.write_str(path.rsplit("::").next().unwrap_or(""))?;
            let mut chars = after.chars();
            if let Some(c) = chars.next() {
                write!(f, "{c}")?;
            }
            rest = chars.as_str();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_lose_their_paths() {
        let short = |name: &'static str| ShortTypeName(name).to_string();
        let name = "selectloop::streams::connection::Connection<std::net::tcp::TcpStream, \
                    selectloop::streams::codec::Bytes>";
        assert_eq!(short(name), "Connection<TcpStream, Bytes>");
        assert_eq!(short("std::net::tcp::TcpListener"), "TcpListener");
        assert_eq!(short("u8"), "u8");
        assert_eq!(short("(a::B, &c::D)"), "(B, &D)");
        assert_eq!(short("a::b_c::D_e<[f::G; 2]>"), "D_e<[G; 2]>");
    }

    #[test]
    fn lags_fall_in_their_buckets() {
        let mut lag = Lag::default();
        for ms in [0, 1, 2, 10, 11, 100, 101, 1000, 1001, 60_000] {
            lag.add(Duration::from_millis(ms));
        }
        assert_eq!(lag.buckets, [2, 2, 2, 2, 2]);
        assert_eq!(lag.count, 10);
        assert_eq!(lag.max, Duration::from_millis(60_000));
        assert_eq!(lag.total, Duration::from_millis(62_226));
        assert_eq!(lag.mean(), Duration::from_micros(6_222_600));
    }
}
