//! The OS side: raw descriptor types and the readiness backends.
//!
//! Everything that differs between Unix and Windows, and every `unsafe` block of the crate,
//! lives below this module; the selector itself is platform-neutral. Besides the backends,
//! `signal.rs` is the OS half of signal handlers (Unix signals, Windows console control events).
//!
//! A backend is one file here, a struct implementing [`Backend`] with five operations:
//!
//! - `new()` — create the OS object (epoll/kqueue fd, IOCP port, ...).
//! - `add(fd, token, interest, mode)` — start watching `fd` in `mode` (level, edge or oneshot;
//!   a backend that cannot do a mode returns `ErrorKind::Unsupported`), reporting `token`.
//!   It is `unsafe` because the backend keeps using `fd` until `delete`: the caller promises the
//!   descriptor stays open until then. The selector keeps that promise by owning every source.
//! - `modify(fd, token, interest, mode)` — change what `fd` is watched for (and re-arm a
//!   oneshot registration).
//! - `delete(fd)` — stop watching `fd`; called before the source is closed, always. Both are
//!   `unsafe` for the same reason as `add`: they may only name a descriptor added and not yet
//!   deleted, which is therefore still open.
//! - `wait(timeout, on_event)` — block up to `timeout` (`None`: forever) and call
//!   `on_event(token, readiness)` for each ready descriptor. Hang-ups and errors are reported as
//!   both read and write readiness (Python's rule); the selector masks them with the registered
//!   interest, merges duplicates and retries wake-ups that delivered nothing. The backend must
//!   retry `EINTR` itself or return `ErrorKind::Interrupted`.
//!
//! - `waker()` — make `wait` wakeable from any thread, and return the function that wakes it.
//!   A wake-up makes `wait` return (with or without events) and reports nothing itself.
//!
//! Tokens are chosen by the selector and never equal `usize::MAX` (which `polling` reserves, and
//! the other backends use for their own wake-up descriptor, [`WAKE`]).

use events::{Events, Mode};
use std::io;
use std::sync::Arc;
use std::time::Duration;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
pub(crate) mod events;
mod fd_map;
mod poll;
mod polling;
#[cfg(test)]
pub(crate) mod scripted;
mod select;
pub(crate) mod signal;
mod wake;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub use self::epoll::EpollBackend;
pub use self::poll::PollBackend;
pub use self::polling::PollingBackend;
pub use self::select::SelectBackend;
pub(crate) use fd_map::FdMap;

#[cfg(unix)]
pub(crate) use std::os::fd::{AsFd as AsSource, AsRawFd as AsRaw, RawFd as RawSource};
#[cfg(windows)]
pub(crate) use std::os::windows::io::{
    AsRawSocket as AsRaw, AsSocket as AsSource, RawSocket as RawSource,
};

/// The readiness a backend reports: `readable` and `writable` as the OS flags say, after
/// Python's rule that any flag other than "out" (input, hang-up, error...) counts as readable
/// and any other than "in" as writable. The selector then masks it with the registered events.
pub(crate) fn readiness(readable: bool, writable: bool) -> Events {
    let mut ready = Events::NONE;
    if readable {
        ready |= Events::READ;
    }
    if writable {
        ready |= Events::WRITE;
    }
    ready
}

/// Wakes a backend blocked in `wait`, from any thread.
pub(crate) type Waker = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

/// The token a backend uses for its own wake-up descriptor; the selector never issues it.
pub(crate) const WAKE: usize = usize::MAX;

/// Anything that has an OS descriptor: Python's "file object with a `fileno()`".
///
/// Lookups ([`unregister`](crate::Selector::unregister), [`modify`](crate::Selector::modify),
/// [`get_key`](crate::Selector::get_key), ...) take any such value: the registered source itself,
/// a reference to it, a `BorrowedFd`, a raw fd number on Unix (as Python takes an `int`), or a
/// [`SelectorKey`](crate::SelectorKey). It is implemented for every type with `AsRawFd` (Unix)
/// or `AsRawSocket` (Windows), and for keys; there is no need to implement it yourself.
///
/// A key names one registration, not just a descriptor: once that registration is gone, a
/// lookup by its key fails with `NotFound` even if the fd number was registered again since.
pub trait FileObj {
    /// The raw descriptor: a `RawFd` on Unix, a `RawSocket` on Windows.
    fn fileno(&self) -> RawSource;

    /// The registration this names, if it names one (keys do): its token.
    #[doc(hidden)]
    fn registration(&self) -> Option<usize> {
        None
    }
}

impl<T: AsRaw + ?Sized> FileObj for T {
    fn fileno(&self) -> RawSource {
        #[cfg(unix)]
        return self.as_raw_fd();
        #[cfg(windows)]
        return self.as_raw_socket();
    }
}

/// A source the selector can own: any type with `AsFd` (Unix) or `AsSocket` (Windows).
///
/// Sockets of every kind (`TcpListener`, `TcpStream`, `UdpSocket`, `UnixStream`, ...), pipes
/// (`ChildStdout`, ...), `OwnedFd` and `File` all qualify. It is implemented for every such type;
/// there is no need to implement it yourself.
pub trait Source: AsSource + 'static {}

impl<T: AsSource + 'static> Source for T {}

/// The OS readiness mechanism behind a [`Selector`](crate::Selector).
///
/// One per selector type, as in Python:
///
/// | backend | selector | system call |
/// |---|---|---|
/// | [`PollingBackend`] | [`DefaultSelector`](crate::DefaultSelector) | epoll, kqueue or IOCP, through the `polling` crate |
/// | `EpollBackend` | `EpollSelector` (Linux, Android) | epoll directly: fewer system calls per wait |
/// | [`PollBackend`] | [`PollSelector`](crate::PollSelector) | poll(2); `WSAPoll` on Windows |
/// | [`SelectBackend`] | [`SelectSelector`](crate::SelectSelector) | select(2); Winsock `select` on Windows |
///
/// The trait is sealed: its methods are the crate's internal contract with the OS (see the
/// module source), not an extension point.
pub trait Backend: sealed::Sealed + Sized + 'static {
    #[doc(hidden)]
    fn new() -> io::Result<Self>;

    /// # Safety
    /// `fd` must stay open until it is passed to `delete`.
    #[doc(hidden)]
    unsafe fn add(
        &mut self,
        fd: RawSource,
        token: usize,
        interest: Events,
        mode: Mode,
    ) -> io::Result<()>;

    /// # Safety
    /// `fd` must have been passed to `add` and not yet to `delete`, so it is still open.
    #[doc(hidden)]
    unsafe fn modify(
        &mut self,
        fd: RawSource,
        token: usize,
        interest: Events,
        mode: Mode,
    ) -> io::Result<()>;

    /// # Safety
    /// As for `modify`.
    #[doc(hidden)]
    unsafe fn delete(&mut self, fd: RawSource) -> io::Result<()>;

    #[doc(hidden)]
    fn wait(
        &mut self,
        timeout: Option<Duration>,
        on_event: impl FnMut(usize, Events),
    ) -> io::Result<()>;

    /// Make room to report `registrations` ready descriptors in one `wait`.
    #[doc(hidden)]
    fn reserve(&mut self, registrations: usize);

    /// Make `wait` wakeable from other threads (set up on the first call) and return the waker.
    #[doc(hidden)]
    fn waker(&mut self) -> io::Result<Waker>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::PollingBackend {}
    impl Sealed for super::PollBackend {}
    impl Sealed for super::SelectBackend {}
    #[cfg(any(target_os = "linux", target_os = "android"))]
    impl Sealed for super::EpollBackend {}
    #[cfg(test)]
    impl Sealed for super::scripted::Scripted {}
}

/// The raw descriptor of an owned source.
pub(crate) fn raw_source<S: Source>(source: &S) -> RawSource {
    #[cfg(unix)]
    return source.as_fd().fileno();
    #[cfg(windows)]
    return source.as_socket().fileno();
}

/// How many bytes can be read from `source` now without blocking (`FIONREAD`): what the peer
/// sent that nobody has read yet.
pub(crate) fn unread_bytes(source: &impl AsSource) -> io::Result<usize> {
    #[cfg(unix)]
    return Ok(usize::try_from(rustix::io::ioctl_fionread(source.as_fd())?).unwrap_or(usize::MAX));
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawSocket;
        use windows_sys::Win32::Networking::WinSock::{
            ioctlsocket, WSAGetLastError, FIONREAD, SOCKET, SOCKET_ERROR,
        };
        let mut unread: u32 = 0;
        let socket = source.as_socket().as_raw_socket() as SOCKET;
        // SAFETY: `socket` is borrowed from `source` for the call, so it is open; FIONREAD
        // writes one u32 to the pointer, which points at `unread`.
        if unsafe { ioctlsocket(socket, FIONREAD, &mut unread) } == SOCKET_ERROR {
            // SAFETY: no precondition; reads this thread's last Winsock error.
            return Err(io::Error::from_raw_os_error(unsafe { WSAGetLastError() }));
        }
        Ok(unread as usize)
    }
}

/// Errors that say the process or the system is out of a resource for now — descriptors,
/// socket buffers, memory — rather than that the source is broken: `EMFILE`, `ENFILE`,
/// `ENOBUFS`, `ENOMEM` (`WSAEMFILE`, `WSAENOBUFS` on Windows), and kind `OutOfMemory`.
pub(crate) fn is_exhaustion(err: &io::Error) -> bool {
    if err.kind() == io::ErrorKind::OutOfMemory || is_out_of_descriptors(err) {
        return true;
    }
    #[cfg(unix)]
    return matches!(
        rustix::io::Errno::from_io_error(err),
        Some(rustix::io::Errno::NOBUFS | rustix::io::Errno::NOMEM)
    );
    #[cfg(windows)]
    return err.raw_os_error() == Some(windows_sys::Win32::Networking::WinSock::WSAENOBUFS);
}

/// `EMFILE` (this process) or `ENFILE` (the whole system): no descriptor for a new socket.
pub(crate) fn is_out_of_descriptors(err: &io::Error) -> bool {
    #[cfg(unix)]
    return matches!(
        rustix::io::Errno::from_io_error(err),
        Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE)
    );
    #[cfg(windows)]
    return err.raw_os_error() == Some(windows_sys::Win32::Networking::WinSock::WSAEMFILE);
}

/// Errors of `accept` about the one connection it was taking, not the listener: the client
/// aborted or reset it, or (Linux's `accept(2)` lists these as "retry") a network error or a
/// firewall rule ended it before `accept` returned.
pub(crate) fn is_lost_connection(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | NetworkDown | NetworkUnreachable | HostUnreachable
    ) {
        return true;
    }
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        let errno = Errno::from_io_error(err);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if errno == Some(Errno::NONET) {
            return true;
        }
        matches!(
            errno,
            Some(
                Errno::PROTO | Errno::NOPROTOOPT | Errno::HOSTDOWN | Errno::OPNOTSUPP | Errno::PERM
            )
        )
    }
    #[cfg(windows)]
    false
}

/// A descriptor held in reserve, to be freed when the process runs out (see `failure.rs`).
#[cfg(unix)]
pub(crate) type Reserve = std::fs::File;
/// A descriptor held in reserve; on Windows there is none (sockets are handles, and Winsock
/// has no spare to free), so a listener out of them is paused but sheds nothing.
#[cfg(windows)]
pub(crate) type Reserve = std::convert::Infallible;

/// Opens the reserve descriptor (`/dev/null`), if the process has one to spare.
pub(crate) fn reserve_descriptor() -> Option<Reserve> {
    #[cfg(unix)]
    return std::fs::File::open("/dev/null").ok();
    #[cfg(windows)]
    return None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    /// A connected loopback TCP pair: a source every backend takes, on every platform.
    fn pair() -> io::Result<(TcpStream, TcpStream)> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let a = TcpStream::connect(listener.local_addr()?)?;
        Ok((a, listener.accept()?.0))
    }

    /// `wait` reports the descriptors that are ready, each with what it is ready for, and
    /// nothing else: not one that is not ready, and never the backend's own wake-up
    /// descriptor (a wake-up is consumed and reported to no one). The selector above would
    /// hide both mistakes — it drops empty masks and unknown tokens — but a wake-up never
    /// consumed leaves the loop spinning.
    fn only_ready_descriptors_are_reported_never_the_wake_up<B: Backend>() -> io::Result<()> {
        let mut backend = B::new()?;
        let wake = backend.waker()?;
        let (quiet, _quiet_peer) = pair()?;
        let (ready, mut ready_peer) = pair()?;
        // SAFETY: both streams outlive their registrations, deleted at the end.
        unsafe {
            backend.add(quiet.fileno(), 1, Events::READ, Mode::Level)?;
            backend.add(ready.fileno(), 2, Events::READ, Mode::Level)?;
        }
        wake()?;
        ready_peer.write_all(b"x")?;
        let mut reports = Vec::new();
        for _ in 0..10 {
            // The wake-up alone may end a wait before the byte arrives: wait again.
            backend.wait(Some(Duration::from_secs(5)), |token, events| {
                reports.push((token, events))
            })?;
            if !reports.is_empty() {
                break;
            }
        }
        // A backend may report a descriptor twice in one wait (kqueue, a filter each; `polling`
        // after a notification): the selector merges them.
        let only_ready = reports.iter().all(|&report| report == (2, Events::READ));
        assert!(only_ready && !reports.is_empty(), "{reports:?}");
        // SAFETY: both were added above and are still open.
        unsafe {
            backend.delete(quiet.fileno())?;
            backend.delete(ready.fileno())?;
        }
        Ok(())
    }

    /// Wake-ups before a wait coalesce: however many, none fails (a full pipe already holds
    /// one), the next wait returns at once, and it consumes them all: the wait after it lasts
    /// its whole timeout.
    fn wake_ups_coalesce<B: Backend>() -> io::Result<()> {
        let mut backend = B::new()?;
        let wake = backend.waker()?;
        for _ in 0..10_000 {
            wake()?;
        }
        let nothing = |token, _| panic!("an event for token {token}: nothing is registered");
        let start = Instant::now();
        backend.wait(Some(Duration::from_secs(10)), nothing)?;
        let took = start.elapsed();
        assert!(took < Duration::from_secs(5), "not woken: {took:?}");
        let timeout = Duration::from_millis(50);
        let start = Instant::now();
        backend.wait(Some(timeout), nothing)?;
        let took = start.elapsed();
        assert!(took >= timeout, "woken again, after {took:?}: not drained");
        Ok(())
    }

    #[test]
    fn polling_coalesces_wake_ups() -> io::Result<()> {
        wake_ups_coalesce::<PollingBackend>()
    }

    #[test]
    fn poll_coalesces_wake_ups() -> io::Result<()> {
        wake_ups_coalesce::<PollBackend>()
    }

    #[test]
    fn select_coalesces_wake_ups() -> io::Result<()> {
        wake_ups_coalesce::<SelectBackend>()
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn epoll_coalesces_wake_ups() -> io::Result<()> {
        wake_ups_coalesce::<EpollBackend>()
    }

    #[test]
    fn polling_reports_only_ready_descriptors() -> io::Result<()> {
        only_ready_descriptors_are_reported_never_the_wake_up::<PollingBackend>()
    }

    #[test]
    fn poll_reports_only_ready_descriptors() -> io::Result<()> {
        only_ready_descriptors_are_reported_never_the_wake_up::<PollBackend>()
    }

    #[test]
    fn select_reports_only_ready_descriptors() -> io::Result<()> {
        only_ready_descriptors_are_reported_never_the_wake_up::<SelectBackend>()
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn epoll_reports_only_ready_descriptors() -> io::Result<()> {
        only_ready_descriptors_are_reported_never_the_wake_up::<EpollBackend>()
    }
}
