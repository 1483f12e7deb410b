//! Signals — Unix signals, and Windows console control events — delivered to callbacks on the
//! loop thread.
//!
//! The OS-level handler runs at a moment the program does not choose (in a signal handler on
//! Unix, on a thread the system creates on Windows), so it only writes a byte to a self-pipe
//! (`sys::signal`). The read end is registered with the selector like any other source, and its
//! callback runs the user's callback on the loop thread with `&mut Selector`: a bare
//! `select()`/`dispatch()` loop sees signals too. Arrivals while the callback is pending
//! coalesce into one call, as in asyncio.

/// Signal numbers for [`Selector::add_signal_handler`](crate::Selector::add_signal_handler),
/// and [`raise`](signals::raise).
///
/// `SIGINT` and `SIGTERM` exist everywhere, so a program that stops on them is portable.
///
/// - **Unix**: the usual signals (re-exported from `signal-hook`); any other signal number
///   works too, except those that cannot be handled.
/// - **Windows** has console control events instead, delivered as the signal numbers of the C
///   runtime (as Python's `signal` module does): `SIGINT` for Ctrl-C, `SIGBREAK` for Ctrl-Break,
///   and `SIGTERM` when the console window is closed, the user logs off or the system shuts
///   down. The system ends the process soon after those three (5 seconds after a close, 20
///   after a log-off or shut-down) and at once if the handler returns, so selectloop holds the
///   system's call until the program exits: the handler gets that long to close down.
pub mod signals {
    #[cfg(windows)]
    pub use crate::sys::signal::{SIGBREAK, SIGINT, SIGTERM};
    #[cfg(unix)]
    pub use signal_hook::consts::signal::{
        SIGALRM, SIGCHLD, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
    };

    /// Delivers `signal` to this process, as if it had come from outside.
    ///
    /// On Unix this is `raise(3)`: a signal with a handler from
    /// [`add_signal_handler`](crate::Selector::add_signal_handler) wakes its selector, any other
    /// has its default effect (`SIGINT` and `SIGTERM` end the process). On Windows it delivers
    /// the console control event to this process's handlers, on a new thread as the system
    /// does; the real event (`GenerateConsoleCtrlEvent`) would reach every process attached to
    /// the console, the program's parent shell included.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an invalid signal number (on Windows: anything but `SIGINT`,
    /// `SIGBREAK` and `SIGTERM`). On Windows, `NotFound` if no handler is registered for
    /// `signal`: the system would have run its default action, ending the process.
    pub fn raise(signal: i32) -> std::io::Result<()> {
        crate::sys::signal::raise(signal)
    }
}
