//! What happens when a callback fails: the error handler, pausing with backoff, and shedding.
//!
//! Python's tutorial server ends at the first exception. A server that must keep running meets
//! three kinds of failure, and each needs its own answer:
//!
//! - **The connection is broken** (reset, protocol error, ...): close that registration, keep
//!   serving the others. This is [`ErrorAction::Close`], the default for most errors.
//! - **The process is out of something for now** — descriptors (`EMFILE`, `ENFILE`), socket
//!   buffers (`ENOBUFS`), memory (`ENOMEM`). Closing would be wrong (a listener closed at the
//!   descriptor limit is a dead server), and retrying at once is wrong too: the source is still
//!   ready, so a level-triggered loop would call the failing callback again and again, at 100%
//!   CPU, until the condition passes. nginx takes the listener out of the poller and re-enables
//!   it after a delay; that is [`ErrorAction::Pause`]: the registration leaves the OS poller and
//!   is retried after a backoff (5 ms, doubling with each failed retry, up to 500 ms), and the
//!   first call that succeeds ends the episode. The episode is logged once at `warn` when it
//!   starts and once at `info` when it ends, not once per attempt.
//! - **A listener out of descriptors for long** leaves clients hanging in the kernel's backlog.
//!   libuv keeps one descriptor in reserve for this: after a second of exhaustion, each
//!   retry frees the reserve, accepts the waiting connections and closes them at once (their
//!   clients see the connection closed instead of waiting forever), then takes the reserve back.
//!   Clients that arrive once descriptors are free again are served normally.
//!
//! And one guard for everything else: a callback that fails twice in a row and is kept
//! ([`ErrorAction::Keep`]) is paused like the above, so no error the program chose to ignore can
//! make the loop spin.

use crate::reactor::key::{SelectorKey, Token};
use crate::reactor::registry::{error, Registry};
use crate::sys::events::Mode;
use crate::sys::{self, Backend, Reserve};
use log::{debug, info, warn};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::time::{Duration, Instant};

/// The first backoff delay of a paused registration.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest backoff delay: a paused registration is retried at least this often.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// How long a listener may be out of descriptors before waiting connections are refused.
#[cfg(unix)]
pub(crate) const SHED_AFTER: Duration = Duration::from_secs(1);

/// What to do with a registration whose callback returned an error.
///
/// Returned by the handler set with
/// [`Selector::set_error_handler`](crate::Selector::set_error_handler); the default handler is
/// [`ErrorAction::default_for`]. Errors of kind `WouldBlock` and `Interrupted` never reach the
/// handler: they mean "not ready after all" (spurious readiness), and the callback is simply
/// called again when the source is next reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorAction {
    /// Keep the registration as it is. If its next call fails too, it is paused as with
    /// [`Pause`](Self::Pause): an error kept over and over cannot make the loop spin.
    Keep,
    /// Take the registration out of the OS poller and call it again after a backoff: 5 ms,
    /// doubling with each consecutive failure up to 500 ms. The first call that succeeds ends
    /// the pause. See [`Selector::is_paused`](crate::Selector::is_paused).
    Pause,
    /// Unregister it and close its source (logged at `warn`); other registrations are
    /// unaffected.
    Close,
    /// Keep it, and make `dispatch` (and so `run_once` and `run`) return the error. The
    /// readiness reports of the same `select` not dispatched yet are kept: the next `select` or
    /// `run_once` delivers them first.
    Stop,
}

impl ErrorAction {
    /// The default policy: what a selector does unless
    /// [`Selector::set_error_handler`](crate::Selector::set_error_handler) says
    /// otherwise. A custom handler can fall back to it for the errors it does not care about.
    ///
    /// - Out of descriptors, buffers or memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`;
    ///   `WSAEMFILE`, `WSAENOBUFS` on Windows; any error of kind `OutOfMemory`): [`Pause`](Self::Pause).
    /// - From a `TcpListener` or `UnixListener` callback, an error about the one connection
    ///   being accepted, not the listener (it was aborted or reset before `accept` returned it,
    ///   `EPROTO`, the network or host went down or is unreachable, `EPERM` from a firewall
    ///   rule — the errors Linux's `accept(2)` says to retry): [`Keep`](Self::Keep).
    /// - Anything else: [`Close`](Self::Close).
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::{DefaultSelector, ErrorAction};
    /// use std::io::ErrorKind;
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// sel.set_error_handler(|key, err| match err.kind() {
    ///     ErrorKind::InvalidData => ErrorAction::Stop, // a bug worth stopping for
    ///     _ => ErrorAction::default_for(key, err),
    /// });
    /// # std::io::Result::Ok(())
    /// ```
    pub fn default_for(key: &SelectorKey, err: &io::Error) -> ErrorAction {
        if sys::is_exhaustion(err) {
            ErrorAction::Pause
        } else if key.listener && sys::is_lost_connection(err) {
            ErrorAction::Keep
        } else {
            ErrorAction::Close
        }
    }
}

/// The delay before retry number `failures` (1 for the first failure).
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (BACKOFF_MIN * (1 << doublings)).min(BACKOFF_MAX)
}

/// The type of the handler [`Selector::set_error_handler`](crate::Selector::set_error_handler)
/// sets.
pub(crate) type ErrorHandler = Box<dyn FnMut(&SelectorKey, &io::Error) -> ErrorAction>;

/// The loop's failure policy: the error handler, the registrations paused and when they come
/// back, how many pause episodes there were, and the descriptor kept in reserve for shedding.
pub(crate) struct Policy {
    on_error: ErrorHandler,
    /// Registrations out of the poller after failing, by resume time.
    paused: BinaryHeap<Reverse<(Instant, Token)>>,
    /// Pause episodes so far (`Selector::pauses`).
    pub(crate) pauses: u64,
    /// A descriptor kept to be freed when a listener runs out of them (see the module docs).
    pub(crate) reserve: Option<Reserve>,
    /// The error of a call made by `dispatch_soon` whose handler said `Stop`, for `run_once`
    /// to return.
    pub(crate) stopped: Option<io::Error>,
}

impl Policy {
    pub(crate) fn new() -> Policy {
        Policy {
            on_error: Box::new(ErrorAction::default_for),
            paused: BinaryHeap::new(),
            pauses: 0,
            reserve: None,
            stopped: None,
        }
    }

    pub(crate) fn set_handler(&mut self, handler: ErrorHandler) {
        self.on_error = handler;
    }

    /// True if a registration is paused: the loop must not wait past its resume time.
    #[inline]
    pub(crate) fn has_paused(&self) -> bool {
        !self.paused.is_empty()
    }

    /// The error a call made by `dispatch_soon` stopped the loop with.
    #[cold]
    pub(crate) fn take_stopped(&mut self) -> io::Error {
        let stopped = self.stopped.take();
        stopped.unwrap_or_else(|| io::Error::other("stopped"))
    }

    /// Opens the reserve descriptor, if there is none yet: done with the first listener.
    pub(crate) fn reserve_for_listener(&mut self) {
        if self.reserve.is_none() {
            self.reserve = sys::reserve_descriptor(); // for shedding at the descriptor limit
        }
    }

    /// The callback at `index` succeeded (or met spurious readiness): any failure episode ends.
    pub(crate) fn succeeded<L>(registry: &mut Registry<L>, index: usize) {
        let entry = registry.entry_mut(index);
        let failures = &mut entry.failures;
        if failures.count == 0 {
            return;
        }
        failures.count = 0;
        if let Some(since) = failures.since.take() {
            let fd = entry.key.fd;
            info!(
                "fd {fd}: callback succeeded again after {:.1?} paused",
                since.elapsed()
            );
        }
    }

    /// A level-triggered callback returned `WouldBlock` although its source was reported ready.
    /// Usually spurious readiness; but it is also how `write_all` on a non-blocking socket ends
    /// when the socket is full, silently losing the rest of the data. Say so, once.
    pub(crate) fn would_block<L>(registry: &mut Registry<L>, index: usize) {
        let entry = registry.entry_mut(index);
        if entry.key.mode != Mode::Edge && !entry.failures.warned_would_block {
            entry.failures.warned_would_block = true;
            warn!(
                "callback for fd {} returned WouldBlock although the fd was reported ready; if it \
                 came from write_all, the data after what was written is lost: queue what the \
                 socket does not take (see Connection). Logged once per registration.",
                entry.key.fd
            );
        }
        Self::succeeded(registry, index);
    }

    /// The callback of `key` failed with `err` (not spurious readiness): asks the error handler,
    /// and carries out what it says. Returns what was done (a `Keep` made a `Pause` is a
    /// `Pause`; a registration that unregistered itself first counts as closed), or the error if
    /// the handler says `Stop`.
    pub(crate) fn failed<B: Backend, L>(
        &mut self,
        backend: &mut B,
        registry: &mut Registry<L>,
        key: &SelectorKey,
        err: io::Error,
    ) -> io::Result<ErrorAction> {
        let action = (self.on_error)(key, &err);
        if action == ErrorAction::Stop {
            return Err(err);
        }
        let Some(index) = registry.current(key.token) else {
            // It unregistered itself before failing: nothing left to act on, and closed.
            return Ok(ErrorAction::Close);
        };
        let entry = registry.entry_mut(index);
        let fd = entry.key.fd;
        entry.failures.count = entry.failures.count.saturating_add(1);
        let action = match action {
            ErrorAction::Keep if entry.failures.count >= 2 => ErrorAction::Pause, // no spinning
            action => action,
        };
        match action {
            ErrorAction::Keep => debug!("callback for fd {fd} failed, kept: {err}"),
            ErrorAction::Close => {
                warn!("callback for fd {fd} failed, closing it: {err}");
                registry.remove(backend, index);
            }
            _ => self.pause(backend, registry, index, &err),
        }
        Ok(action)
    }

    /// Takes a registration out of the poller until its backoff delay is over.
    fn pause<B: Backend, L>(
        &mut self,
        backend: &mut B,
        registry: &mut Registry<L>,
        index: usize,
        err: &io::Error,
    ) {
        let now = Instant::now();
        let entry = registry.entry_mut(index);
        let (fd, token) = (entry.key.fd, entry.key.token);
        let delay = backoff(entry.failures.count);
        if entry.failures.resume_at.is_none() {
            // SAFETY: the registration's source is open: it is owned by the entry (or by the
            // dispatcher while its callback runs), and dropped only after `remove`.
            if let Err(e) = unsafe { backend.delete(fd) } {
                warn!("fd {fd}: removing it from the poller to pause it failed: {e}");
            }
        }
        let when = now + delay;
        entry.failures.resume_at = Some(when);
        self.paused.push(Reverse((when, token)));
        let since = match entry.failures.since {
            Some(since) => {
                debug!("fd {fd}: still failing ({err}); next retry in {delay:?}");
                since
            }
            None => {
                entry.failures.since = Some(now);
                self.pauses += 1;
                warn!(
                    "callback for fd {fd} failed: {err}; pausing it, retrying after \
                     {BACKOFF_MIN:?} to {BACKOFF_MAX:?} until it succeeds"
                );
                now
            }
        };
        #[cfg(unix)]
        if entry.key.listener && sys::is_out_of_descriptors(err) && now - since >= SHED_AFTER {
            self.shed(registry, index, now - since);
        }
        #[cfg(windows)]
        let _ = since; // no reserve descriptor to shed with (see `sys::Reserve`)
    }

    /// Puts the paused registrations whose delay is over back into the poller, and returns how
    /// long the caller may wait: `wait`, or less, to be back in time for the next one.
    pub(crate) fn resume_due<B: Backend, L>(
        &mut self,
        backend: &mut B,
        registry: &mut Registry<L>,
        wait: Option<Duration>,
    ) -> Option<Duration> {
        let now = Instant::now();
        while let Some(&Reverse((when, token))) = self.paused.peek() {
            if when > now {
                let until = when - now;
                return Some(wait.map_or(until, |wait| wait.min(until)));
            }
            self.paused.pop();
            let Some(index) = registry.current(token) else {
                continue; // unregistered while paused
            };
            let entry = registry.entry_mut(index);
            if entry.failures.resume_at != Some(when) {
                continue; // paused again since, with a later deadline
            }
            let key = entry.key;
            // SAFETY: as in `pause`: the source is open until `remove`, which skips `delete`
            // for a paused registration and is the only way it is dropped.
            match unsafe { backend.add(key.fd, token.0, key.events, key.mode) } {
                Ok(()) => {
                    entry.failures.resume_at = None;
                    debug!("fd {}: back in the poller after its pause", key.fd);
                }
                Err(e) => {
                    entry.failures.resume_at = None; // out of the poller: nothing to delete
                    warn!("fd {}: {}", key.fd, error(e.kind(), "resume", key.fd, e));
                    registry.remove(backend, index);
                }
            }
        }
        wait
    }

    /// libuv's trick for a listener stuck at the descriptor limit: free the reserve descriptor,
    /// accept the connections waiting in the backlog and close them at once (so their clients
    /// are refused instead of left hanging), then take the reserve back.
    #[cfg(unix)]
    fn shed<L>(&mut self, registry: &mut Registry<L>, index: usize, stuck: Duration) {
        let entry = registry.entry_mut(index);
        let fd = entry.key.fd;
        let Some(handler) = entry.handler.as_mut() else {
            return; // its callback is running (a nested loop); the next retry sheds
        };
        let Some(reserve) = self.reserve.take() else {
            return; // no reserve (it could not be opened): clients wait for a descriptor
        };
        drop(reserve);
        let refused = accept_and_close(handler.source_mut());
        self.reserve = sys::reserve_descriptor();
        if refused > 0 {
            warn!(
                "fd {fd}: out of descriptors for {stuck:.1?}: refused {refused} waiting \
                 connection(s)"
            );
        }
    }
}

/// Accepts and closes the connections waiting on a `TcpListener` or `UnixListener` (at most a
/// thousand, so a flood cannot hold the loop); returns how many.
#[cfg(unix)]
fn accept_and_close(source: &mut dyn std::any::Any) -> usize {
    const MOST: usize = 1000;
    let mut refused = 0;
    if let Some(listener) = source.downcast_mut::<std::net::TcpListener>() {
        let _ = listener.set_nonblocking(true); // never block the loop, whatever the user set
        while refused < MOST && listener.accept().is_ok() {
            refused += 1;
        }
    }
    if let Some(listener) = source.downcast_mut::<std::os::unix::net::UnixListener>() {
        let _ = listener.set_nonblocking(true);
        while refused < MOST && listener.accept().is_ok() {
            refused += 1;
        }
    }
    refused
}

/// True if a source of type `S` is a listener: its callback accepts connections.
pub(crate) fn is_listener<S: 'static>() -> bool {
    let id = std::any::TypeId::of::<S>();
    #[cfg(unix)]
    if id == std::any::TypeId::of::<std::os::unix::net::UnixListener>() {
        return true;
    }
    id == std::any::TypeId::of::<std::net::TcpListener>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_up_to_the_maximum() {
        let delays: Vec<u64> = (1..=10).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 500, 500, 500]);
        assert_eq!(backoff(0), BACKOFF_MIN);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
