//! Unix signals, delivered to callbacks on the loop thread.
//!
//! A signal handler may do almost nothing safely, so the handler only writes a byte to a
//! socket pair (the self-pipe trick, through `signal-hook`'s well-tested registration); the read
//! end is registered with the selector like any other source, and its callback runs the user's
//! callback on the loop thread with `&mut Selector`. Signals that arrive while the callback is
//! pending coalesce into one call, as in asyncio. Windows has no such signals: there, stop the
//! loop from a console-control handler through [`Handle::stop`](crate::Handle::stop).

use crate::sys::Backend;
use crate::{Selector, SelectorKey, EVENT_READ};
use signal_hook::SigId;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

/// Signal numbers for [`Selector::add_signal_handler`] (re-exported from `signal-hook`).
pub mod signals {
    pub use signal_hook::consts::signal::{
        SIGALRM, SIGCHLD, SIGHUP, SIGINT, SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH,
    };
}

/// The read end of a signal's self-pipe. Dropping it (when its registration goes) removes the
/// signal handler, which closes the write end.
struct SignalPipe {
    read: UnixStream,
    id: SigId,
}

impl AsFd for SignalPipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.id);
    }
}

impl<B: Backend> Selector<B> {
    /// Calls `callback(selector, signal)` on the loop thread whenever `signal` arrives
    /// (asyncio: `loop.add_signal_handler`). Unix only.
    ///
    /// The handler is a registration like any other (READ on a self-pipe): its key is returned,
    /// and [`unregister`](Self::unregister) removes the handler. Several arrivals before the
    /// callback runs make one call. Several handlers for one signal all run.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a signal that cannot be handled (`SIGKILL`, `SIGSTOP`, `SIGSEGV`,
    /// `SIGILL`, `SIGFPE`) or an invalid number.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::{signals::SIGUSR1, DefaultSelector};
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// sel.add_signal_handler(SIGUSR1, |sel, signal| {
    ///     assert_eq!(signal, SIGUSR1);
    ///     sel.stop();
    /// })?;
    /// signal_hook::low_level::raise(SIGUSR1)?;
    /// sel.run()?; // until the handler ran
    /// # std::io::Result::Ok(())
    /// ```
    pub fn add_signal_handler(
        &mut self,
        signal: i32,
        mut callback: impl FnMut(&mut Selector<B>, i32) + 'static,
    ) -> io::Result<SelectorKey> {
        if signal_hook::consts::FORBIDDEN.contains(&signal) {
            let msg = format!("add_signal_handler: signal {signal} cannot be handled");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let id = signal_hook::low_level::pipe::register(signal, write).map_err(|e| {
            let msg = format!("add_signal_handler: signal {signal}: {e}");
            io::Error::new(io::ErrorKind::InvalidInput, msg)
        })?;
        let pipe = SignalPipe { read, id };
        self.register(pipe, EVENT_READ, move |sel, pipe, _| {
            let mut buf = [0u8; 64];
            while matches!(pipe.read.read(&mut buf), Ok(n) if n > 0) {}
            callback(sel, signal);
            Ok(())
        })
    }
}
