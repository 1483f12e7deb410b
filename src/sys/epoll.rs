//! epoll used directly (Linux, Android): the backend of `EpollSelector`.
//!
//! `polling` makes five system calls per `wait` on Linux (it re-arms a timerfd and its notifier
//! around each `epoll_pwait`), so one echoed message costs 7 through it. This backend makes one:
//! `epoll_wait` with its own timeout, in milliseconds rounded up (never early; a finer timeout
//! would need `epoll_pwait2`, which older kernels lack), so an echo costs 3 system calls per
//! message, as hand-written epoll and Python's `EpollSelector` do.
//!
//! Readiness follows Python's `EpollSelector`: any flag other than `EPOLLOUT` (input, hang-up,
//! error, priority) counts as READ, any flag other than `EPOLLIN` as WRITE; the selector then
//! masks both with the registered events.

use super::events::{Events, Mode};
use super::{readiness, Backend, RawSource, Waker, WAKE};
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::Timespec;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

/// epoll itself, level-triggered by default: the backend of `EpollSelector`.
pub struct EpollBackend {
    epoll: OwnedFd,
    events: Vec<epoll::Event>,
    /// An eventfd watched under [`WAKE`], once a waker was asked for; read only when it fired.
    wake: Option<Arc<OwnedFd>>,
}

impl std::fmt::Debug for EpollBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpollBackend")
            .field("epoll", &self.epoll)
            .finish_non_exhaustive()
    }
}

fn flags(events: Events, mode: Mode) -> EventFlags {
    let mut flags = EventFlags::empty();
    if events.is_readable() {
        flags |= EventFlags::IN;
    }
    if events.is_writable() {
        flags |= EventFlags::OUT;
    }
    match mode {
        Mode::Level => flags,
        Mode::Edge => flags | EventFlags::ET,
        Mode::Oneshot => flags | EventFlags::ONESHOT,
    }
}

/// The longest timeout `epoll_wait` takes in milliseconds; longer waits wait again.
const MAX_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// One `epoll_wait` on `epoll` into `events` (cleared first; it holds its capacity's worth),
/// for `timeout` in milliseconds rounded up: never early, and a sub-millisecond timeout waits
/// 1 ms, not 0. Also the wait of `PollingBackend` on Linux, on `polling`'s own epoll instance.
pub(crate) fn wait(
    epoll: BorrowedFd<'_>,
    events: &mut Vec<epoll::Event>,
    timeout: Option<Duration>,
) -> io::Result<()> {
    let timeout = timeout.map(|t| {
        let t = t.min(MAX_TIMEOUT);
        Timespec {
            tv_sec: t.as_secs() as _,
            tv_nsec: t.subsec_nanos() as _,
        }
    });
    events.clear();
    epoll::wait(
        epoll,
        rustix::buffer::spare_capacity(events),
        timeout.as_ref(),
    )?;
    Ok(())
}

/// Python's `EpollSelector` rule: any flag other than `EPOLLOUT` (input, hang-up, error,
/// priority) counts as READ, any flag other than `EPOLLIN` as WRITE.
pub(crate) fn readiness_of(flags: EventFlags) -> Events {
    readiness(
        !(flags - EventFlags::OUT).is_empty(),
        !(flags - EventFlags::IN).is_empty(),
    )
}

impl Backend for EpollBackend {
    fn new() -> io::Result<Self> {
        Ok(EpollBackend {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            events: Vec::with_capacity(64),
            wake: None,
        })
    }

    unsafe fn add(
        &mut self,
        fd: RawSource,
        token: usize,
        events: Events,
        mode: Mode,
    ) -> io::Result<()> {
        // SAFETY: the caller keeps `fd` open until `delete` (this trait's contract).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let data = EventData::new_u64(token as u64);
        Ok(epoll::add(&self.epoll, fd, data, flags(events, mode))?)
    }

    unsafe fn modify(
        &mut self,
        fd: RawSource,
        token: usize,
        events: Events,
        mode: Mode,
    ) -> io::Result<()> {
        // SAFETY: `fd` was added and not deleted, so it is open (this trait's contract).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let data = EventData::new_u64(token as u64);
        Ok(epoll::modify(&self.epoll, fd, data, flags(events, mode))?)
    }

    unsafe fn delete(&mut self, fd: RawSource) -> io::Result<()> {
        // SAFETY: as in `modify`.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        Ok(epoll::delete(&self.epoll, fd)?)
    }

    #[inline(always)] // into the selector's `poll`: see `PollingBackend::wait`
    fn wait(
        &mut self,
        timeout: Option<Duration>,
        mut on_event: impl FnMut(usize, Events),
    ) -> io::Result<()> {
        wait(self.epoll.as_fd(), &mut self.events, timeout)?;
        for event in &self.events {
            let token = event.data.u64() as usize;
            if token == WAKE {
                if let Some(wake) = &self.wake {
                    let _ = rustix::io::read(wake.as_fd(), &mut [0u8; 8]); // reset the counter
                }
                continue;
            }
            on_event(token, readiness_of(event.flags));
        }
        Ok(())
    }

    fn reserve(&mut self, registrations: usize) {
        // Python's `max_events = max(len(registered), 1)`: one wait reports every ready fd.
        if registrations > self.events.capacity() {
            self.events
                .reserve(registrations.next_power_of_two() - self.events.len());
        }
    }

    fn waker(&mut self) -> io::Result<Waker> {
        let wake = match &self.wake {
            Some(wake) => wake.clone(),
            None => {
                use rustix::event::{eventfd, EventfdFlags};
                let fd = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?);
                let data = EventData::new_u64(WAKE as u64);
                epoll::add(&self.epoll, fd.as_fd(), data, EventFlags::IN)?;
                self.wake = Some(fd.clone());
                fd
            }
        };
        Ok(Arc::new(move || {
            match rustix::io::write(wake.as_fd(), &1u64.to_ne_bytes()) {
                // The counter is saturated: a wake-up is pending already.
                Err(e) if e != rustix::io::Errno::AGAIN => Err(e.into()),
                _ => Ok(()),
            }
        }))
    }
}
