//! The default backend: epoll (Linux, Android), kqueue (macOS, BSD), IOCP (Windows), event ports
//! (illumos) — whichever the `polling` crate picks for the platform.
//!
//! What `polling` implies, and how it is handled here:
//! - its default mode is oneshot, so every registration names its mode explicitly (`Level`
//!   unless asked otherwise: Python's selectors are level-triggered);
//! - `wait` appends to its `Events` buffer, so the buffer is cleared before each call;
//! - `wait` already retries `EINTR` against its deadline, and may return with no events after a
//!   `notify()` or spuriously — the selector handles the latter;
//! - the buffer holds at most its capacity; `reserve` grows it with the number of registrations
//!   so that one `select` reports every ready registration, as Python's `max_events` does;
//! - on kqueue readable and writable readiness arrive as two events for one key; the selector
//!   merges them;
//! - on Windows (IOCP), a `modify` of a socket whose poll is in flight only takes effect on the
//!   wait after next (the first collects the cancelled poll), so a zero-timeout wait right after
//!   a `modify` is made twice: Python's `select(0)` sees the new interest at once.
//!
//! **Linux: one system call per wait.** `polling`'s `wait()` makes five on Linux, whatever the
//! timeout and whether or not anyone called `notify()`: it arms a timerfd for the timeout
//! (`timerfd_settime`, `epoll_ctl`), waits (`epoll_pwait`), then clears and re-arms its
//! notifier (`read`, `epoll_ctl`): 7 system calls per message for an echo, where hand-written
//! epoll makes 3 (docs/performance.md). So on Linux the wait is `epoll_wait` on `polling`'s own
//! epoll instance (`Poller::as_fd()`, public on Linux), with the timeout in milliseconds rounded
//! up (never early; a sub-millisecond timeout waits 1 ms, not 0). Registrations still go through
//! `polling` (`add`, `modify`, `delete` are single `epoll_ctl` calls there), and so do wake-ups:
//! `notify()` writes `polling`'s eventfd, which it registered under the key it reserves for
//! itself (`usize::MAX`, never a token of ours). When that key comes back, `polling`'s own
//! `wait(Some(ZERO))` runs once — it reads the eventfd and re-arms it, exactly as after any of
//! its waits — and any event of ours that this zero-timeout wait reports is passed on as well
//! (an edge-triggered report must not be lost). Its timerfd is registered without interest
//! until that first `wait`, and left disarmed by it: it never fires.
//!
//! What this relies on, and what fails loudly if a `polling` upgrade changes it: registrations
//! made through `polling` are epoll registrations carrying the key as their data (the semantic
//! suite on `DefaultSelector`), `notify()` makes its eventfd readable under `usize::MAX`
//! (`threadsafe_call_wakes_a_blocked_loop` and the unit test below, which wakes a blocked wait
//! a thousand times in a row: a notifier left disarmed would hang it), and timeouts are never
//! early (`timeout_is_never_early`).

use super::events::{Events, Mode};
use super::{readiness, Backend, RawSource, Waker};
use polling::{Event, PollMode, Poller};
use std::io;
use std::sync::Arc;
use std::time::Duration;

#[cfg(unix)]
use std::os::fd::BorrowedFd as Borrowed;
#[cfg(windows)]
use std::os::windows::io::BorrowedSocket as Borrowed;

/// The `polling` crate's poller: the backend of [`DefaultSelector`](crate::DefaultSelector).
pub struct PollingBackend {
    /// Shared with the wakers, which call `notify()` from other threads.
    poller: Arc<Poller>,
    events: polling::Events,
    /// IOCP: a `modify` was made since the last wait (see the module docs).
    #[cfg(windows)]
    modified: bool,
    /// Linux: the buffer of the direct `epoll_wait` (see the module docs).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    direct: Vec<rustix::event::epoll::Event>,
}

/// The key `polling` reserves for its own notifier and timer (documented on `polling::Event`).
#[cfg(any(target_os = "linux", target_os = "android"))]
const POLLING_KEY: usize = usize::MAX;

fn interest(token: usize, events: Events) -> Event {
    Event::new(token, events.is_readable(), events.is_writable())
}

fn poll_mode(mode: Mode) -> PollMode {
    match mode {
        Mode::Level => PollMode::Level,
        Mode::Edge => PollMode::Edge,
        Mode::Oneshot => PollMode::Oneshot,
    }
}

/// Borrows a raw descriptor for `polling`'s safe `modify`/`delete`.
///
/// # Safety
/// `fd` must be open for the returned lifetime.
unsafe fn borrow<'a>(fd: RawSource) -> Borrowed<'a> {
    // SAFETY: forwarded to the caller.
    #[cfg(unix)]
    return unsafe { Borrowed::borrow_raw(fd) };
    #[cfg(windows)]
    return unsafe { Borrowed::borrow_raw(fd) };
}

impl std::fmt::Debug for PollingBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollingBackend")
            .field("poller", &self.poller)
            .finish_non_exhaustive()
    }
}

impl PollingBackend {
    /// `polling`'s own wait, reporting its events.
    fn poll_polling(
        &mut self,
        timeout: Option<Duration>,
        on_event: &mut impl FnMut(usize, Events),
    ) -> io::Result<()> {
        self.events.clear();
        self.poller.wait(&mut self.events, timeout)?;
        for ev in self.events.iter() {
            on_event(ev.key, readiness(ev.readable, ev.writable));
        }
        Ok(())
    }
}

impl Backend for PollingBackend {
    fn new() -> io::Result<Self> {
        Ok(PollingBackend {
            poller: Arc::new(Poller::new()?),
            events: polling::Events::new(),
            #[cfg(windows)]
            modified: false,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            direct: Vec::with_capacity(64),
        })
    }

    unsafe fn add(
        &mut self,
        fd: RawSource,
        token: usize,
        events: Events,
        mode: Mode,
    ) -> io::Result<()> {
        if mode == Mode::Edge && !self.poller.supports_edge() {
            let msg = "edge-triggered mode is not available here (IOCP); use Level or Oneshot";
            return Err(io::Error::new(io::ErrorKind::Unsupported, msg));
        }
        // SAFETY: the caller keeps `fd` open until `delete` (this trait's contract).
        unsafe {
            self.poller
                .add_with_mode(fd, interest(token, events), poll_mode(mode))
        }
    }

    unsafe fn modify(
        &mut self,
        fd: RawSource,
        token: usize,
        events: Events,
        mode: Mode,
    ) -> io::Result<()> {
        // SAFETY: `fd` was added and not deleted, so it is open (this trait's contract).
        let fd = unsafe { borrow(fd) };
        #[cfg(windows)]
        {
            self.modified = true;
        }
        self.poller
            .modify_with_mode(fd, interest(token, events), poll_mode(mode))
    }

    unsafe fn delete(&mut self, fd: RawSource) -> io::Result<()> {
        // SAFETY: as in `modify`.
        let fd = unsafe { borrow(fd) };
        self.poller.delete(fd)
    }

    // Inlined into the selector's `poll`, itself inlined into `select` and `run_once`: one
    // call frame less per wait, which counts when a wait reports one event.
    #[inline(always)]
    fn wait(
        &mut self,
        timeout: Option<Duration>,
        mut on_event: impl FnMut(usize, Events),
    ) -> io::Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::fd::AsFd;
            super::epoll::wait(self.poller.as_fd(), &mut self.direct, timeout)?;
            let mut notified = false;
            for event in &self.direct {
                match event.data.u64() as usize {
                    POLLING_KEY => notified = true,
                    token => on_event(token, super::epoll::readiness_of(event.flags)),
                }
            }
            if notified {
                // `notify()` fired: `polling` clears and re-arms its eventfd in its own wait.
                self.poll_polling(Some(Duration::ZERO), &mut on_event)?;
            }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        self.poll_polling(timeout, &mut on_event)?;
        #[cfg(windows)]
        if std::mem::take(&mut self.modified) && timeout == Some(Duration::ZERO) {
            self.poll_polling(timeout, &mut on_event)?; // appends; the selector merges
        }
        Ok(())
    }

    fn reserve(&mut self, registrations: usize) {
        // Linux: the direct wait's buffer (`polling`'s own only serves the rare wait after a
        // notification; what it cannot hold stays ready in the kernel for the next wait).
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if registrations > self.direct.capacity() {
            let capacity = registrations
                .checked_next_power_of_two()
                .unwrap_or(registrations);
            self.direct.reserve(capacity - self.direct.len());
        }
        // kqueue reports readable and writable as two events: room for both.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let needed = registrations.saturating_mul(2);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        if needed > self.events.capacity().get() {
            let capacity = needed.checked_next_power_of_two().unwrap_or(needed);
            if let Some(capacity) = std::num::NonZeroUsize::new(capacity) {
                self.events = polling::Events::with_capacity(capacity);
            }
        }
    }

    fn waker(&mut self) -> io::Result<Waker> {
        let poller = self.poller.clone();
        Ok(Arc::new(move || poller.notify()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// The Linux path waits on `polling`'s epoll instance itself and leaves the notifier to
    /// `polling` (see the module docs): every `notify()` must still wake a blocked wait. A
    /// notifier left disarmed after the first wake-up would hang the second round.
    #[test]
    fn every_notify_wakes_a_blocked_wait() -> io::Result<()> {
        let mut backend = PollingBackend::new()?;
        let waker = backend.waker()?;
        for round in 0..1000 {
            let notify = waker.clone();
            let notifier = std::thread::spawn(move || notify()); // before or during the wait
            let start = Instant::now();
            backend.wait(Some(Duration::from_secs(10)), |token, _| {
                panic!("round {round}: an event for token {token}, and nothing is registered")
            })?;
            let took = start.elapsed();
            assert!(
                took < Duration::from_secs(5),
                "round {round}: not woken ({took:?})"
            );
            notifier.join().expect("notifier thread")?;
        }
        Ok(())
    }

    /// The Linux path's own timeout (milliseconds, rounded up) never ends a wait early, however
    /// short: a sub-millisecond timeout is not rounded to 0. (Elsewhere `polling` times the
    /// wait, and the selector waits again after any early return.)
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn short_timeouts_are_never_early() -> io::Result<()> {
        let mut backend = PollingBackend::new()?;
        for timeout in [1, 10, 100, 999].map(Duration::from_micros) {
            let start = Instant::now();
            backend.wait(Some(timeout), |_, _| {})?;
            assert!(
                start.elapsed() >= timeout,
                "{timeout:?}: {:?}",
                start.elapsed()
            );
        }
        Ok(())
    }
}
