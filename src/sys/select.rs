//! select(2) on Unix, the Winsock `select` on Windows: the backend of `SelectSelector`.
//!
//! The oldest readiness call, and Python's only selector on Windows. Every call rebuilds the
//! descriptor sets from the registration table, the kernel scans them, and the result is
//! scanned again: cost in proportion to the registrations, ready or not. And the sets have a
//! fixed size, `FD_SETSIZE`: on Unix a bit per descriptor *number* below 1024, on Windows an array
//! of at most 512 sockets (the size Python's Windows build uses). Registering past that limit is
//! refused with `InvalidInput`; writing past it, as C programs that forget the check do,
//! corrupts memory. Level-triggered only, as the system call is.
//!
//! On Windows the write set is also passed as the except set, as Python does, so a failed
//! non-blocking `connect` is reported as writable.

use super::events::{Events, Mode};
use super::poll::level_only;
use super::wake::{self, WakePipe};
use super::{Backend, RawSource, Waker, WAKE};
use std::collections::HashMap;
use std::io;
use std::time::Duration;

/// select(2) (Unix) or Winsock `select` (Windows): the backend of `SelectSelector`.
#[derive(Debug, Default)]
pub struct SelectBackend {
    /// `(fd, token, events)` per registration.
    registered: Vec<(RawSource, usize, Events)>,
    /// Where each descriptor sits in `registered`.
    index: HashMap<RawSource, usize>,
    /// The sets, kept between calls so a steady loop does not allocate.
    sets: os::Sets,
    /// The self-pipe watched under [`WAKE`], once a waker was asked for.
    wake: Option<WakePipe>,
}

/// The longest timeout passed down at once (about 24 days); longer waits wait again.
const MAX_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

impl Backend for SelectBackend {
    fn new() -> io::Result<Self> {
        Ok(SelectBackend::default())
    }

    unsafe fn add(
        &mut self,
        fd: RawSource,
        token: usize,
        events: Events,
        mode: Mode,
    ) -> io::Result<()> {
        level_only(mode, "select")?;
        os::check_capacity(fd, self.registered.len())?;
        self.index.insert(fd, self.registered.len());
        self.registered.push((fd, token, events));
        Ok(())
    }

    unsafe fn modify(
        &mut self,
        fd: RawSource,
        token: usize,
        events: Events,
        mode: Mode,
    ) -> io::Result<()> {
        level_only(mode, "select")?;
        self.registered[self.index[&fd]] = (fd, token, events);
        Ok(())
    }

    unsafe fn delete(&mut self, fd: RawSource) -> io::Result<()> {
        let Some(i) = self.index.remove(&fd) else {
            return Err(io::ErrorKind::NotFound.into());
        };
        self.registered.swap_remove(i);
        if let Some(&(moved, _, _)) = self.registered.get(i) {
            self.index.insert(moved, i);
        }
        Ok(())
    }

    fn wait(
        &mut self,
        timeout: Option<Duration>,
        mut on_event: impl FnMut(usize, Events),
    ) -> io::Result<()> {
        let timeout = timeout.map(|t| t.min(MAX_TIMEOUT));
        // SAFETY: every descriptor in `registered` was added and not deleted, so it is open.
        unsafe { self.sets.select(&self.registered, timeout)? };
        let (registered, index, wake) = (&self.registered, &self.index, &self.wake);
        self.sets
            .for_each_ready(|fd, ready| match (index.get(&fd), wake) {
                (Some(&i), Some(wake)) if registered[i].1 == WAKE => wake.drain(),
                (Some(&i), _) => on_event(registered[i].1, ready),
                (None, _) => {}
            });
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
    use rustix::event::{fd_set_insert, fd_set_num_elements, FdSetElement, FdSetIter, Timespec};
    use std::io;
    use std::os::fd::RawFd;
    use std::time::Duration;

    /// glibc's, and Python's, limit: descriptors numbered 1024 and up do not fit an `fd_set`.
    pub(super) const FD_SETSIZE: RawFd = 1024;

    pub(super) fn check_capacity(fd: RawFd, _registered: usize) -> io::Result<()> {
        if fd >= FD_SETSIZE {
            let msg = format!("select: fd {fd} is not below FD_SETSIZE ({FD_SETSIZE}); use PollSelector or DefaultSelector");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
        Ok(())
    }

    #[derive(Default)]
    pub(super) struct Sets {
        read: Vec<FdSetElement>,
        write: Vec<FdSetElement>,
    }

    impl std::fmt::Debug for Sets {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Sets").finish_non_exhaustive()
        }
    }

    impl Sets {
        /// # Safety
        /// Every descriptor in `registered` must be open.
        pub(super) unsafe fn select(
            &mut self,
            registered: &[(RawFd, usize, Events)],
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            let nfds = registered.iter().map(|r| r.0 + 1).max().unwrap_or(0);
            let len = fd_set_num_elements(registered.len(), nfds);
            for set in [&mut self.read, &mut self.write] {
                set.clear();
                set.resize(len, FdSetElement::default());
            }
            for &(fd, _, events) in registered {
                if events.is_readable() {
                    fd_set_insert(&mut self.read, fd);
                }
                if events.is_writable() {
                    fd_set_insert(&mut self.write, fd);
                }
            }
            let timeout = timeout.map(|t| Timespec {
                tv_sec: t.as_secs() as _,
                tv_nsec: t.subsec_nanos() as _,
            });
            let (read, write) = (&mut self.read[..], &mut self.write[..]);
            // SAFETY: the sets hold only descriptors from `registered`, open (the caller's
            // promise) and below `nfds`, and each set has room for `nfds` bits.
            unsafe {
                rustix::event::select(nfds, Some(read), Some(write), None, timeout.as_ref())?
            };
            Ok(())
        }

        pub(super) fn for_each_ready(&self, mut f: impl FnMut(RawFd, Events)) {
            FdSetIter::new(&self.read).for_each(|fd| f(fd, Events::READ));
            FdSetIter::new(&self.write).for_each(|fd| f(fd, Events::WRITE));
        }
    }
}

#[cfg(windows)]
mod os {
    use crate::sys::events::Events;
    use std::io;
    use std::os::windows::io::RawSocket;
    use std::time::Duration;
    use windows_sys::Win32::Networking::WinSock::{
        select, WSAGetLastError, FD_SET, SOCKET, SOCKET_ERROR, TIMEVAL,
    };

    /// Sockets per set, as in Python's Windows build (Winsock's header default is 64).
    pub(super) const FD_SETSIZE: usize = 512;

    pub(super) fn check_capacity(fd: RawSocket, registered: usize) -> io::Result<()> {
        if registered >= FD_SETSIZE {
            let msg = format!("select: cannot add socket {fd}: at most FD_SETSIZE ({FD_SETSIZE}) sockets; use DefaultSelector");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
        Ok(())
    }

    /// Winsock's `fd_set` with room for `FD_SETSIZE` sockets: the same layout as `FD_SET`
    /// (a count, then the sockets), only longer, which Winsock allows.
    #[repr(C)]
    struct FdSet {
        count: u32,
        sockets: [SOCKET; FD_SETSIZE],
    }

    impl FdSet {
        fn clear(&mut self) {
            self.count = 0;
        }
        fn insert(&mut self, socket: RawSocket) {
            self.sockets[self.count as usize] = socket as SOCKET;
            self.count += 1;
        }
        fn ready(&self) -> impl Iterator<Item = RawSocket> + '_ {
            self.sockets[..self.count as usize]
                .iter()
                .map(|&s| s as RawSocket)
        }
        fn as_ptr(&mut self) -> *mut FD_SET {
            (self as *mut FdSet).cast()
        }
    }

    pub(super) struct Sets {
        read: Box<FdSet>,
        write: Box<FdSet>,
        except: Box<FdSet>,
    }

    impl Default for Sets {
        fn default() -> Self {
            let empty = || {
                Box::new(FdSet {
                    count: 0,
                    sockets: [0; FD_SETSIZE],
                })
            };
            Sets {
                read: empty(),
                write: empty(),
                except: empty(),
            }
        }
    }

    impl std::fmt::Debug for Sets {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Sets").finish_non_exhaustive()
        }
    }

    impl Sets {
        /// # Safety
        /// Every socket in `registered` must be open.
        pub(super) unsafe fn select(
            &mut self,
            registered: &[(RawSocket, usize, Events)],
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            for set in [&mut self.read, &mut self.write, &mut self.except] {
                set.clear();
            }
            if registered.is_empty() {
                // Winsock refuses three empty sets; waiting on nothing is sleeping.
                std::thread::sleep(timeout.unwrap_or(super::MAX_TIMEOUT));
                return Ok(());
            }
            for &(socket, _, events) in registered {
                if events.is_readable() {
                    self.read.insert(socket);
                }
                if events.is_writable() {
                    self.write.insert(socket);
                    self.except.insert(socket); // a failed connect() is reported here
                }
            }
            let timeval = timeout.map(|t| {
                let micros = t.as_nanos().div_ceil(1000); // round up: never early
                TIMEVAL {
                    tv_sec: (micros / 1_000_000) as i32,
                    tv_usec: (micros % 1_000_000) as i32,
                }
            });
            let timeval_ptr = timeval
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const TIMEVAL);
            // SAFETY: each set is a valid `fd_set` of at most FD_SETSIZE open sockets (checked
            // at registration); `timeval_ptr` is null or points to a live TIMEVAL.
            let n = unsafe {
                select(
                    0,
                    self.read.as_ptr(),
                    self.write.as_ptr(),
                    self.except.as_ptr(),
                    timeval_ptr,
                )
            };
            if n == SOCKET_ERROR {
                // SAFETY: plain FFI call with no arguments.
                return Err(io::Error::from_raw_os_error(unsafe { WSAGetLastError() }));
            }
            Ok(())
        }

        pub(super) fn for_each_ready(&self, mut f: impl FnMut(RawSocket, Events)) {
            self.read.ready().for_each(|s| f(s, Events::READ));
            self.write.ready().for_each(|s| f(s, Events::WRITE));
            self.except.ready().for_each(|s| f(s, Events::WRITE));
        }
    }
}
