//! poll(2) on Unix, `WSAPoll` on Windows: the backend of `PollSelector`.
//!
//! The whole registration table is handed to the kernel on every call and scanned for results,
//! so each `select` costs time in proportion to the number of registrations, ready or not —
//! the reason epoll and kqueue exist. Unlike select(2), poll has no cap on descriptor numbers.
//! Level-triggered only, as the system call is.
//!
//! Readiness follows Python's `PollSelector`: any flag other than `POLLOUT` (input, hang-up,
//! error, invalid) counts as READ, any flag other than `POLLIN` as WRITE; the selector then
//! masks both with the registered events.

use super::events::{Events, Mode};
use super::wake::{self, WakePipe};
use super::{Backend, FdMap, RawSource, Waker, WAKE};
use std::io;
use std::time::Duration;

/// poll(2) (Unix) or `WSAPoll` (Windows): the backend of `PollSelector`.
#[derive(Default)]
pub struct PollBackend {
    /// The array the system call takes, one entry per registration.
    fds: Vec<os::PollFd>,
    /// `tokens[i]` is the token of `fds[i]`.
    tokens: Vec<usize>,
    /// Where each descriptor sits in `fds`.
    index: FdMap<usize>,
    /// The self-pipe watched under [`WAKE`], once a waker was asked for.
    wake: Option<WakePipe>,
}

/// The longest timeout passed down at once (about 24 days); longer waits wait again.
const MAX_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

impl std::fmt::Debug for PollBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollBackend")
            .field("registered", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn level_only(mode: Mode, what: &str) -> io::Result<()> {
    match mode {
        Mode::Level => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "{what} is level-triggered only; {mode:?} needs DefaultSelector or EpollSelector"
            ),
        )),
    }
}

impl Backend for PollBackend {
    fn new() -> io::Result<Self> {
        Ok(PollBackend::default())
    }

    unsafe fn add(
        &mut self,
        fd: RawSource,
        token: usize,
        events: Events,
        mode: Mode,
    ) -> io::Result<()> {
        level_only(mode, "poll")?;
        self.index.insert(fd, self.fds.len());
        // SAFETY: the caller keeps `fd` open until `delete`, which removes this entry.
        self.fds.push(unsafe { os::pollfd(fd, events) });
        self.tokens.push(token);
        Ok(())
    }

    unsafe fn modify(
        &mut self,
        fd: RawSource,
        token: usize,
        events: Events,
        mode: Mode,
    ) -> io::Result<()> {
        level_only(mode, "poll")?;
        let i = self.index[&fd];
        // SAFETY: as in `add`: `fd` is open until `delete`.
        self.fds[i] = unsafe { os::pollfd(fd, events) };
        self.tokens[i] = token;
        Ok(())
    }

    unsafe fn delete(&mut self, fd: RawSource) -> io::Result<()> {
        let Some(i) = self.index.remove(&fd) else {
            return Err(io::ErrorKind::NotFound.into());
        };
        self.fds.swap_remove(i);
        self.tokens.swap_remove(i);
        if let Some(moved) = self.fds.get(i) {
            self.index.insert(os::fd_of(moved), i);
        }
        Ok(())
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        mut on_event: impl FnMut(usize, Events),
    ) -> io::Result<()> {
        let timeout = timeout.map(|t| t.min(MAX_TIMEOUT));
        if os::poll(&mut self.fds, timeout)? == 0 {
            return Ok(());
        }
        for (pollfd, &token) in self.fds.iter().zip(&self.tokens) {
            let ready = os::revents(pollfd);
            match &self.wake {
                Some(wake) if token == WAKE && !ready.is_empty() => wake.drain(),
                _ if !ready.is_empty() => on_event(token, ready),
                _ => {}
            }
        }
        Ok(())
    }

    fn reserve(&mut self, _registrations: usize) {}

    fn waker(&mut self) -> io::Result<Waker> {
        wake::waker(self, |backend| &mut backend.wake)
    }
}

#[cfg(unix)]
mod os {
    use crate::sys::events::Events;
    use crate::sys::readiness;
    use rustix::event::{PollFlags, Timespec};
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
    use std::time::Duration;

    pub(super) type PollFd = rustix::event::PollFd<'static>;

    /// # Safety
    /// `fd` must stay open as long as the returned entry is used.
    pub(super) unsafe fn pollfd(fd: RawFd, events: Events) -> PollFd {
        let mut flags = PollFlags::empty();
        if events.is_readable() {
            flags |= PollFlags::IN;
        }
        if events.is_writable() {
            flags |= PollFlags::OUT;
        }
        // SAFETY: forwarded to the caller.
        PollFd::from_borrowed_fd(unsafe { BorrowedFd::borrow_raw(fd) }, flags)
    }

    pub(super) fn fd_of(pollfd: &PollFd) -> RawFd {
        pollfd.as_fd().as_raw_fd()
    }

    pub(super) fn revents(pollfd: &PollFd) -> Events {
        let flags = pollfd.revents();
        readiness(
            !(flags - PollFlags::OUT).is_empty(),
            !(flags - PollFlags::IN).is_empty(),
        )
    }

    pub(super) fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
        let timeout = timeout.map(|t| Timespec {
            tv_sec: t.as_secs() as _,
            tv_nsec: t.subsec_nanos() as _,
        });
        Ok(rustix::event::poll(fds, timeout.as_ref())?)
    }
}

#[cfg(windows)]
mod os {
    use crate::sys::events::Events;
    use crate::sys::readiness;
    use std::io;
    use std::os::windows::io::RawSocket;
    use std::time::Duration;
    use windows_sys::Win32::Networking::WinSock::{
        WSAGetLastError, WSAPoll, POLLRDNORM, POLLWRNORM, SOCKET, SOCKET_ERROR, WSAPOLLFD,
    };

    pub(super) type PollFd = WSAPOLLFD;

    /// # Safety
    /// Nothing to uphold here; `unsafe` to match the Unix version, which borrows the socket.
    pub(super) unsafe fn pollfd(fd: RawSocket, events: Events) -> PollFd {
        let mut flags = 0;
        if events.is_readable() {
            flags |= POLLRDNORM;
        }
        if events.is_writable() {
            flags |= POLLWRNORM;
        }
        WSAPOLLFD {
            fd: fd as SOCKET,
            events: flags,
            revents: 0,
        }
    }

    pub(super) fn fd_of(pollfd: &PollFd) -> RawSocket {
        pollfd.fd as RawSocket
    }

    pub(super) fn revents(pollfd: &PollFd) -> Events {
        let flags = pollfd.revents;
        readiness(flags & !POLLWRNORM != 0, flags & !POLLRDNORM != 0)
    }

    pub(super) fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
        if fds.is_empty() {
            // WSAPoll refuses an empty array; waiting on nothing is sleeping.
            std::thread::sleep(timeout.unwrap_or(super::MAX_TIMEOUT));
            return Ok(0);
        }
        let millis = match timeout {
            // Round up, so the wait is never shorter than asked.
            Some(t) => t.as_nanos().div_ceil(1_000_000) as i32,
            None => -1,
        };
        // SAFETY: `fds` is a valid array of `fds.len()` entries for the duration of the call.
        let n = unsafe { WSAPoll(fds.as_mut_ptr(), fds.len() as u32, millis) };
        if n == SOCKET_ERROR {
            // SAFETY: plain FFI call with no arguments.
            return Err(io::Error::from_raw_os_error(unsafe { WSAGetLastError() }));
        }
        Ok(n as usize)
    }
}
