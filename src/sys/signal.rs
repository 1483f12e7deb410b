//! The OS half of signal handlers: one self-pipe per handler.
//!
//! The OS-level handler only writes one byte to the pipe's write end; the read end is what the
//! selector watches (`crate::services::signal` registers it for READ like any other source), so even a
//! bare `select()` loop sees a signal arrive.
//!
//! - **Unix**: a real signal handler may do almost nothing, so it is `signal-hook`'s, which
//!   `send`s the byte. The pipe is a stream socket pair: `signal-hook` probes the write end with
//!   a zero-byte `send`, which a datagram socket would deliver as an empty message.
//! - **Windows** has no signals but console control events, which the system delivers by calling
//!   the routines registered with `SetConsoleCtrlHandler`, each on a new thread of its own. One
//!   routine, installed the first time a handler is added and never removed, looks the event up
//!   in a process-wide table of write ends (the loopback pair of [`wake`](super::wake): Winsock
//!   polls sockets only), writes to each, and tells the system whether anything handled it.
//!   Dropping a handler removes its entry; with none left for an event, the routine says "not
//!   handled" and the system runs the next routine (by default, one that exits the process).
//!   For the events the system ends the process after (close, log-off, shut-down: `SIGTERM`),
//!   the routine does not return once it has delivered one, so that the loop gets the time the
//!   system grants to run the handler and close down.

use std::io;

#[cfg(unix)]
pub(crate) use self::unix::raise;
#[cfg(unix)]
use self::unix::{drain, pipe, Handler, Reader};
#[cfg(windows)]
pub(crate) use self::windows::raise;
#[cfg(windows)]
use self::windows::{drain, pipe, Handler, Reader};
#[cfg(windows)]
pub use self::windows::{SIGBREAK, SIGINT, SIGTERM};

/// One handler's self-pipe: the read end, watched by the selector, and the OS-level handler
/// that writes to the other end. Dropping it removes the handler, then closes the read end.
pub(crate) struct SignalPipe {
    _handler: Handler,
    read: Reader,
}

impl SignalPipe {
    /// Adds an OS-level handler for `signal` that writes to a new pipe.
    pub(crate) fn new(signal: i32) -> io::Result<SignalPipe> {
        let (read, write) = pipe()?;
        let handler = Handler::new(signal, write)?;
        Ok(SignalPipe {
            _handler: handler,
            read,
        })
    }

    /// Reads every byte pending; false if there was none (spurious readiness). Arrivals since
    /// the last drain coalesce into one call.
    pub(crate) fn drain(&self) -> bool {
        drain(&self.read)
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for SignalPipe {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.read.as_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for SignalPipe {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.read.as_socket()
    }
}

fn invalid(what: &str, signal: i32, why: impl std::fmt::Display) -> io::Error {
    let msg = format!("{what}: signal {signal} {why}");
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[cfg(unix)]
mod unix {
    use signal_hook::SigId;
    use std::io::{self, Read};
    use std::os::unix::net::UnixStream;

    pub(crate) type Reader = UnixStream;

    /// A `signal-hook` registration; dropping it removes the handler and closes the write end.
    pub(crate) struct Handler(SigId);

    pub(crate) fn pipe() -> io::Result<(UnixStream, UnixStream)> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        Ok((read, write))
    }

    pub(crate) fn drain(mut read: &UnixStream) -> bool {
        let mut buf = [0u8; 64];
        let mut any = false;
        while matches!(read.read(&mut buf), Ok(n) if n > 0) {
            any = true;
        }
        any
    }

    impl Handler {
        pub(crate) fn new(signal: i32, write: UnixStream) -> io::Result<Handler> {
            if signal_hook::consts::FORBIDDEN.contains(&signal) {
                return Err(super::invalid(
                    "add_signal_handler",
                    signal,
                    "cannot be handled",
                ));
            }
            signal_hook::low_level::pipe::register(signal, write)
                .map(Handler)
                .map_err(|e| super::invalid("add_signal_handler", signal, e))
        }
    }

    impl Drop for Handler {
        fn drop(&mut self) {
            signal_hook::low_level::unregister(self.0);
        }
    }

    pub(crate) fn raise(signal: i32) -> io::Result<()> {
        signal_hook::low_level::raise(signal)
    }
}

#[cfg(windows)]
mod windows {
    use crate::sys::wake::Socket;
    pub(crate) use crate::sys::wake::{drain, socket_pair as pipe};
    use std::io;
    use std::sync::{Mutex, MutexGuard, PoisonError};
    use windows_sys::core::BOOL;
    use windows_sys::Win32::System::Console::{
        SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_C_EVENT, CTRL_LOGOFF_EVENT,
        CTRL_SHUTDOWN_EVENT,
    };

    // The C runtime's numbers, as in Python's `signal` module on Windows.

    /// Ctrl-C (`CTRL_C_EVENT`).
    pub const SIGINT: i32 = 2;
    /// Ctrl-Break (`CTRL_BREAK_EVENT`).
    pub const SIGBREAK: i32 = 21;
    /// The console window is closing, the user logging off or the system shutting down
    /// (`CTRL_CLOSE_EVENT`, `CTRL_LOGOFF_EVENT`, `CTRL_SHUTDOWN_EVENT`). The system ends the
    /// process soon after: 5 seconds after a close, 20 after a log-off or shut-down.
    pub const SIGTERM: i32 = 15;

    pub(crate) type Reader = Socket;

    /// The signal a console control event is delivered as.
    fn signal_of(event: u32) -> Option<i32> {
        match event {
            CTRL_C_EVENT => Some(SIGINT),
            CTRL_BREAK_EVENT => Some(SIGBREAK),
            CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => Some(SIGTERM),
            _ => None,
        }
    }

    /// The event [`raise`] delivers for `signal`.
    fn event_of(signal: i32) -> Option<u32> {
        match signal {
            SIGINT => Some(CTRL_C_EVENT),
            SIGBREAK => Some(CTRL_BREAK_EVENT),
            SIGTERM => Some(CTRL_CLOSE_EVENT),
            _ => None,
        }
    }

    const NOT_AN_EVENT: &str = "is not a console control event (SIGINT, SIGBREAK or SIGTERM)";

    /// The handlers of the whole process, as the console has one list of routines per process.
    struct Table {
        /// `routine` is registered with the system (once, for the life of the process).
        installed: bool,
        next_id: u64,
        /// `(id, signal, write end)`, in the order the handlers were added.
        entries: Vec<(u64, i32, Socket)>,
    }

    static TABLE: Mutex<Table> = Mutex::new(Table {
        installed: false,
        next_id: 0,
        entries: Vec::new(),
    });

    /// The table; a panic elsewhere while it was locked cannot have left it inconsistent (every
    /// change is one push or one `retain`), and the routine must not panic.
    fn table() -> MutexGuard<'static, Table> {
        TABLE.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An entry in the table; dropping it removes the entry and closes its write end.
    pub(crate) struct Handler {
        id: u64,
    }

    impl Handler {
        pub(crate) fn new(signal: i32, write: Socket) -> io::Result<Handler> {
            if event_of(signal).is_none() {
                return Err(super::invalid("add_signal_handler", signal, NOT_AN_EVENT));
            }
            let mut table = table();
            if !table.installed {
                // SAFETY: `routine` has the signature the system calls (`PHANDLER_ROUTINE`), is
                // a plain function that lives as long as the process, and cannot unwind into
                // the system: it takes a lock that ignores poisoning and ignores send errors.
                if unsafe { SetConsoleCtrlHandler(Some(routine), 1) } == 0 {
                    return Err(io::Error::last_os_error());
                }
                table.installed = true;
            }
            let id = table.next_id;
            table.next_id += 1;
            table.entries.push((id, signal, write));
            Ok(Handler { id })
        }
    }

    impl Drop for Handler {
        fn drop(&mut self) {
            table().entries.retain(|(id, _, _)| *id != self.id);
        }
    }

    /// Writes one byte to the pipe of every handler for `event`; false if it has none.
    fn deliver(event: u32) -> bool {
        let Some(signal) = signal_of(event) else {
            return false;
        };
        let mut handled = false;
        for (_, _, write) in table().entries.iter().filter(|e| e.1 == signal) {
            let _ = write.send(&[1]); // a full buffer already holds an arrival
            handled = true;
        }
        handled
    }

    /// The routine the system calls, on a new thread, for each console control event: TRUE
    /// (handled) only if a handler for it is registered, so that other events and events with no
    /// handler left go on to the next routine, as they would without selectloop.
    extern "system" fn routine(event: u32) -> BOOL {
        let handled = deliver(event);
        if handled && signal_of(event) == Some(SIGTERM) {
            // The system ends the process as soon as this returns, before the loop could run a
            // single callback. Wait instead, as Go does: the program exits when its handler has
            // closed down, or the system ends it when its time is up.
            loop {
                std::thread::park();
            }
        }
        BOOL::from(handled)
    }

    /// Delivers the console event of `signal` to this process's handlers, on a new thread as
    /// the system does (without waiting on SIGTERM: the caller is not about to be ended).
    pub(crate) fn raise(signal: i32) -> io::Result<()> {
        let event =
            event_of(signal).ok_or_else(|| super::invalid("raise", signal, NOT_AN_EVENT))?;
        let handled = std::thread::spawn(move || deliver(event))
            .join()
            .unwrap_or(false);
        if handled {
            Ok(())
        } else {
            let msg = format!("raise: no handler for signal {signal}");
            Err(io::Error::new(io::ErrorKind::NotFound, msg))
        }
    }
}
