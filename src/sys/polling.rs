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

use super::{readiness, Backend, RawSource, Waker};
use crate::{Events, Mode};
use polling::{Event, PollMode, Poller};
use std::io;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

#[cfg(unix)]
use std::os::fd::BorrowedFd as Borrowed;
#[cfg(windows)]
use std::os::windows::io::BorrowedSocket as Borrowed;

/// The `polling` crate's poller: the backend of [`DefaultSelector`](crate::DefaultSelector).
#[derive(Debug)]
pub struct PollingBackend {
    /// Shared with the wakers, which call `notify()` from other threads.
    poller: Arc<Poller>,
    events: polling::Events,
    /// A `modify` was made since the last wait (only acted on under IOCP, see the module docs).
    modified: bool,
}

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

impl Backend for PollingBackend {
    fn new() -> io::Result<Self> {
        Ok(PollingBackend {
            poller: Arc::new(Poller::new()?),
            events: polling::Events::new(),
            modified: false,
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
        self.modified = true;
        self.poller
            .modify_with_mode(fd, interest(token, events), poll_mode(mode))
    }

    unsafe fn delete(&mut self, fd: RawSource) -> io::Result<()> {
        // SAFETY: as in `modify`.
        let fd = unsafe { borrow(fd) };
        self.poller.delete(fd)
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        mut on_event: impl FnMut(usize, Events),
    ) -> io::Result<()> {
        self.events.clear();
        self.poller.wait(&mut self.events, timeout)?;
        if std::mem::take(&mut self.modified) && cfg!(windows) && timeout == Some(Duration::ZERO) {
            self.poller.wait(&mut self.events, timeout)?; // appends; the selector merges
        }
        for ev in self.events.iter() {
            on_event(ev.key, readiness(ev.readable, ev.writable));
        }
        Ok(())
    }

    fn reserve(&mut self, registrations: usize) {
        // kqueue reports readable and writable as two events: room for both.
        let needed = registrations.saturating_mul(2);
        if needed > self.events.capacity().get() {
            let capacity = needed.checked_next_power_of_two().unwrap_or(needed);
            if let Some(capacity) = NonZeroUsize::new(capacity) {
                self.events = polling::Events::with_capacity(capacity);
            }
        }
    }

    fn waker(&mut self) -> io::Result<Waker> {
        let poller = self.poller.clone();
        Ok(Arc::new(move || poller.notify()))
    }
}
