//! The selector: `select`, `dispatch` and the loop (`run_once`, `run`).
//!
//! This file is the reactor's loop. A [`Selector`] is a few parts, each in a file of its own: the
//! OS poller (`backend`, from `sys/`), the registrations (`registry.rs`: a slab of entries, each
//! holding the key, the owned source and its boxed callback), the reports of the last wait and
//! the rule that delivers each once (`batch.rs`), the failure policy (`failure.rs`), and the
//! loop's services (`services/`: timers, calls, calls from other threads, the executor), which
//! `run_once` runs after I/O with one call. The OS poller reports a token (slab index +
//! generation, see `key.rs`) for each ready source. `select` turns those reports into
//! `(key, mask)` pairs exactly as Python does — masked by the registered events, one pair per
//! key — and `dispatch` calls the key's callback with the selector itself, so callbacks can
//! register, modify and unregister anything, themselves included. The loop counts its work as
//! it goes (`metrics.rs`: an addition per wait and per callback) and times it only when asked
//! (`services/observe.rs`: the timed wait and call are out of line, behind one test each).
//!
//! Three rules keep that re-entrancy safe (Redis's `ae.c` follows the first two):
//! 1. Before each callback the key is looked up again: an earlier callback of the same batch may
//!    have unregistered it, or unregistered it and registered something new in its slot. The
//!    token's generation tells the two apart, so a stale event is dropped, never misdelivered.
//! 2. The callback is taken out of its slot while it runs and put back afterwards only if the
//!    slot still holds the same registration. If the callback unregistered itself, the source it
//!    holds is closed right after it returns — and the source was already removed from the OS
//!    poller by `unregister`, so a descriptor is never closed while the poller still watches it.
//! 3. A panicking callback is caught just long enough to remove its registration (poller first,
//!    then the source), and the panic is resumed, so the selector stays consistent.

use crate::reactor::batch::{Batch, Pair, Ready};
use crate::reactor::failure::{ErrorAction, Policy};
use crate::reactor::hooks::{Hooks, Phase};
use crate::reactor::key::{SelectorKey, Token};
use crate::reactor::metrics::Counters;
use crate::reactor::registration::Handler;
use crate::reactor::registry::Registry;
use crate::services::observe::ShortTypeName;
use crate::services::{HasServices, Services};
use crate::sys::events::Events;
use crate::sys::{Backend, PollBackend, PollingBackend, SelectBackend};
use log::{debug, warn};
use std::io::{self, ErrorKind};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};
use std::{fmt, mem};

/// The selector Python programs reach for first: `polling`'s epoll, kqueue or IOCP backend.
///
/// # Examples
///
/// ```
/// use selectloop::DefaultSelector;
///
/// let sel = DefaultSelector::new()?;
/// assert!(sel.is_empty());
/// # std::io::Result::Ok(())
/// ```
pub type DefaultSelector = Selector<PollingBackend>;

/// poll(2) (`WSAPoll` on Windows), as Python's `PollSelector`: no descriptor limit, but each
/// `select` costs time in proportion to the registrations. Level-triggered only.
pub type PollSelector = Selector<PollBackend>;

/// select(2) (Winsock `select` on Windows), as Python's `SelectSelector`: the most portable, the
/// slowest with many registrations, and limited to `FD_SETSIZE` (descriptors below 1024 on Unix,
/// 512 sockets on Windows; more are refused with `InvalidInput`). Level-triggered only.
pub type SelectSelector = Selector<SelectBackend>;

/// epoll used directly (Linux, Android), as Python's `EpollSelector`.
///
/// Pick it over [`DefaultSelector`] on Linux when system calls per event matter: one
/// `epoll_wait` per `select` where `polling` makes five (it re-arms a timer and a notifier
/// around each wait), so an echo costs 3 system calls per message instead of 7. Its timeouts
/// have millisecond resolution (rounded up, never early). Supports every [`Mode`](crate::Mode).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub type EpollSelector = Selector<crate::sys::EpollBackend>;

/// A callback reactor over one OS poller: Python's `selectors.BaseSelector`, owning its sources.
///
/// Use [`DefaultSelector`]; the type parameter picks the OS backend and its default is the
/// same, so callbacks can simply take `&mut Selector`.
///
/// A selector, its sources and its callbacks live on one thread.
///
/// # Examples
///
/// Python's accept/read echo server, with its writes made safe by a [`Connection`]
/// (`conn.send(data)` on a non-blocking socket may send only part of `data`: see
/// [`dispatch`](Self::dispatch)):
///
/// ```no_run
/// use selectloop::{Bytes, ConnEvent, Connection, DefaultSelector, Events, Selector, EVENT_READ};
/// use std::io;
/// use std::net::{TcpListener, TcpStream};
///
/// fn accept(sel: &mut Selector, sock: &mut TcpListener, _mask: Events) -> io::Result<()> {
///     let (conn, _addr) = sock.accept()?;
///     conn.set_nonblocking(true)?;
///     Connection::new(conn, Bytes).register(sel, read)?;
///     Ok(())
/// }
///
/// type Conn = Connection<TcpStream, Bytes>;
///
/// fn read(_sel: &mut Selector, conn: &mut Conn, event: ConnEvent<&[u8]>) -> io::Result<()> {
///     if let ConnEvent::Frame(data) = event {
///         conn.send(data)?; // queued: written as the client reads, never lost
///     }
///     Ok(())
/// }
///
/// fn main() -> io::Result<()> {
///     let mut sel = DefaultSelector::new()?;
///     let sock = TcpListener::bind("127.0.0.1:8088")?;
///     sock.set_nonblocking(true)?;
///     sel.register(sock, EVENT_READ, accept)?;
///     loop {
///         for (key, mask) in sel.select(None)? {
///             sel.dispatch(&key, mask)?;
///         }
///     }
/// }
/// ```
///
/// [`Connection`]: crate::Connection
pub struct Selector<B: Backend = PollingBackend> {
    /// The OS poller.
    pub(crate) backend: B,
    /// The registrations (`registry.rs`); `register.rs` adds and removes them.
    pub(crate) registry: Registry<Selector<B>>,
    /// The reports of the last wait, and which are owed (`batch.rs`).
    batch: Batch,
    /// The error handler, the paused registrations, the reserve descriptor (`failure.rs`).
    pub(crate) failures: Policy,
    /// The loop's services (`services/`): timers, calls, calls from other threads, the executor.
    pub(crate) services: Services<Selector<B>>,
    /// `stop()` was called.
    stopping: bool,
    /// What the loop counts of its own work (`metrics.rs`).
    pub(crate) counters: Counters,
    /// The hooks around the wait (`hooks.rs`).
    pub(crate) hooks: Hooks<Selector<B>>,
}

impl<B: Backend> Selector<B> {
    /// Creates a selector with its OS poller (an epoll or kqueue fd, an IOCP port, ...).
    ///
    /// # Errors
    ///
    /// Whatever the OS returns when creating the poller, e.g. out of file descriptors.
    pub fn new() -> io::Result<Self> {
        Ok(Selector {
            backend: B::new()?,
            registry: Registry::new(),
            batch: Batch::default(),
            failures: Policy::new(),
            services: Services::new(),
            stopping: false,
            counters: Counters::default(),
            hooks: Hooks::default(),
        })
    }

    /// Waits until some registered source is ready, or `timeout` passes, and returns the ready
    /// `(key, mask)` pairs (Python: `select(timeout)`), as a [`Ready`] list: iterate, index or
    /// measure it as Python's list. Its buffer is reused by the next `select`, so a loop
    /// allocates nothing in steady state.
    ///
    /// - `None` blocks until at least one pair can be returned; `Some(Duration::ZERO)` polls
    ///   without blocking; `Some(d)` returns an empty list only once `d` has passed, never
    ///   earlier (interrupted or spurious wake-ups wait again for the time left).
    /// - Level-triggered: a source is reported again by every call while it stays ready.
    /// - One pair per key; `mask` is never empty and always within `key.events()`. A hang-up
    ///   or error is reported as whichever of READ and WRITE the key waits for.
    /// - Every report is delivered once: if dispatching the previous list stopped early (a
    ///   callback panicked, or the error handler said [`Stop`]), the pairs
    ///   after that one are returned first, without waiting — an edge-triggered source would
    ///   otherwise never be reported again. Pairs whose registration is gone are left out.
    /// - I/O only, as in Python: timers, [`call_soon`](Self::call_soon) and calls from a
    ///   [`Handle`] are run by [`run_once`](Self::run_once) and [`run`](Self::run), and do not
    ///   end a `select` early. (Signal handlers are registrations, so they are reported here.)
    ///
    /// # Errors
    ///
    /// The OS error of the wait itself (not `EINTR`, which is retried).
    ///
    /// [`Handle`]: crate::Handle
    /// [`Stop`]: crate::ErrorAction::Stop
    pub fn select(&mut self, timeout: Option<Duration>) -> io::Result<Ready> {
        self.counters.iterations += 1;
        let from = match self.take_owed() {
            Some(from) => from,
            None => {
                self.poll(timeout, false)?;
                0
            }
        };
        let (registry, batch) = (&self.registry, &self.batch);
        Ok(batch.ready(from, |pair| live(registry, batch, pair)))
    }

    /// Calls the callback of `key` with `mask` (Python: `key.data(key.fileobj, mask)`).
    ///
    /// Does nothing if `key` was unregistered since `select` returned it (even if its fd or
    /// slot was reused by a new registration), if `mask` no longer meets its events, or if it
    /// is the registration whose callback is running now.
    ///
    /// When the callback returns an error:
    /// - `WouldBlock` or `Interrupted` means the source was not ready after all (spurious
    ///   readiness): ignored. **Beware `write_all`**: on a non-blocking socket it stops with
    ///   `WouldBlock` once the socket's buffer is full, and the rest of the data is lost — the
    ///   selector cannot tell that from spurious readiness. Queue what the socket does not take
    ///   and write it on WRITE readiness, as [`Connection`](crate::Connection) does. (For a
    ///   level-triggered registration, the first `WouldBlock` is logged at `warn` with this
    ///   hint.)
    /// - Any other error goes to the error handler ([`set_error_handler`](Self::set_error_handler));
    ///   by default ([`ErrorAction::default_for`]) a registration out of descriptors, buffers
    ///   or memory is paused and retried with backoff, a listener's failed accept is retried,
    ///   and anything else closes that registration only.
    ///
    /// # Errors
    ///
    /// The callback's error, if the error handler returned [`ErrorAction::Stop`]. The pairs of
    /// the same `select` not dispatched yet are kept: the next `select` returns them first.
    ///
    /// # Panics
    ///
    /// If the callback panics, the panic propagates — after the registration has been removed
    /// and its source closed. The selector stays usable for every other registration, and the
    /// pairs of the same `select` not dispatched yet are kept, as for an error.
    ///
    /// [`ErrorAction::Stop`]: crate::ErrorAction::Stop
    /// [`ErrorAction::default_for`]: crate::ErrorAction::default_for
    pub fn dispatch(&mut self, key: &SelectorKey, mask: Events) -> io::Result<()> {
        self.dispatch_token(key.token, mask).map(|_| ())
    }

    /// Calls the callback of `key` with `mask` soon, whatever its source's readiness: in the
    /// [`call_soon`](Self::call_soon) phase of this loop iteration (from a callback or a timer)
    /// or of the next one. libuv calls this feeding a watcher (`uv__io_feed`).
    ///
    /// For a callback that has work to do without a new event: a protocol that must run its
    /// parser again over what it already received after changing state, or a stream that
    /// must end from outside its callback (a [`Connection`](crate::Connection) wakes its own
    /// callback this way for its timeouts and for [`Connection::with`](crate::Connection::with)).
    /// `mask` is passed as given: `Events::NONE` tells the callback it was not called for
    /// readiness. Nothing happens if `key` is unregistered by then (even if its slot or fd was
    /// reused), or if its callback is running then (no re-entry). The call is not a report of
    /// a wait: it changes nothing of what `select` returned.
    ///
    /// Errors are handled as for [`dispatch`](Self::dispatch): the error handler decides; if
    /// it says [`Stop`], [`run_once`](Self::run_once) (and so
    /// [`run`](Self::run)) returns the error at the end of the iteration.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::{DefaultSelector, Events, EVENT_READ};
    /// use std::net::TcpListener;
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// let calls = Rc::new(RefCell::new(Vec::new()));
    /// let seen = calls.clone();
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let key = sel.register(listener, EVENT_READ, move |_sel, _sock, mask| {
    ///     seen.borrow_mut().push(mask); // Events::NONE: called without readiness
    ///     Ok(())
    /// })?;
    /// sel.dispatch_soon(&key, Events::NONE);
    /// sel.run_once(Some(Duration::ZERO))?; // no client: only the call made soon
    /// assert_eq!(*calls.borrow(), [Events::NONE]);
    /// # std::io::Result::Ok(())
    /// ```
    ///
    /// [`Stop`]: crate::ErrorAction::Stop
    pub fn dispatch_soon(&mut self, key: &SelectorKey, mask: Events) {
        let token = key.token;
        self.services
            .call_soon(Box::new(move |sel: &mut Selector<B>| {
                if let Err(e) = sel.feed(token, mask) {
                    sel.failures.stopped.get_or_insert(e); // `Stop`: `run_once` returns it
                }
            }));
    }

    /// One loop iteration: wait for I/O, dispatch it, then run the loop's services. Returns the
    /// number of callbacks run.
    ///
    /// In order:
    /// 1. Wait, as [`select`](Self::select) does, but no longer than `timeout` nor past the
    ///    earliest timer, and not at all if calls are queued; a [`Handle`] wakes it. The
    ///    [`before_wait`](Self::set_before_wait) hook runs just before the wait (so a call it
    ///    queues ends the wait at once), the [`after_wait`](Self::set_after_wait) hook just
    ///    after. If the previous dispatch stopped early, its undelivered reports are taken
    ///    instead, without waiting, and without the hooks.
    /// 2. Dispatch each ready `(key, mask)`, as [`dispatch`](Self::dispatch) does.
    /// 3. Fire the timers due now (those scheduled by step 3 itself wait for the next
    ///    iteration).
    /// 4. Run the [`call_soon`](Self::call_soon) calls queued before this step, in order, then
    ///    the calls queued from other threads through a [`Handle`]. Calls queued by these
    ///    callbacks run in the next iteration, so they cannot starve I/O.
    ///
    /// Allocates nothing in steady state (the ready list is reused).
    ///
    /// # Errors
    ///
    /// As for [`select`](Self::select) and [`dispatch`](Self::dispatch). The reports after the
    /// one whose callback failed are kept for the next `run_once` (or `select`), and the
    /// services wait for the next iteration.
    ///
    /// [`Handle`]: crate::Handle
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        self.counters.iterations += 1;
        let from = match self.take_owed() {
            Some(from) => from,
            None => {
                if self.hooks.any() {
                    self.run_hook(Phase::BeforeWait);
                }
                let timeout = self.services.wait(timeout);
                self.poll(timeout, true)?;
                if self.hooks.any() {
                    self.run_hook(Phase::AfterWait);
                }
                0
            }
        };
        let mut called = 0;
        for i in from..self.batch.len() {
            let (key, mask) = self.batch.get(i);
            called += usize::from(self.dispatch_token(key.token, mask)?);
        }
        called += Services::run(self);
        if self.failures.stopped.is_some() {
            return Err(self.failures.take_stopped()); // a call made soon failed: `Stop`
        }
        Ok(called)
    }

    /// Runs the loop until [`stop`](Self::stop) is called (here or through a [`Handle`]), or
    /// there is nothing left to wait for: no registration, timer, queued call or executor job.
    ///
    /// A `stop()` takes effect once the current iteration is done. If `stop()` was called
    /// before `run()`, `run()` returns at once; either way the request is then cleared.
    ///
    /// # Errors
    ///
    /// As for [`run_once`](Self::run_once).
    ///
    /// [`Handle`]: crate::Handle
    pub fn run(&mut self) -> io::Result<()> {
        loop {
            if mem::take(&mut self.stopping) | self.services.take_stop() {
                return Ok(());
            }
            if self.registry.is_empty() && self.services.is_idle() {
                return Ok(());
            }
            self.run_once(None)?;
        }
    }

    /// Asks [`run`](Self::run) to return after the current iteration. Callable from callbacks.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Unregisters and closes every source, then closes the OS poller.
    ///
    /// Dropping the selector does the same and ignores errors. Unlike Python, which does not
    /// own them, this closes the registered sources.
    ///
    /// # Errors
    ///
    /// The first OS error met while removing sources from the poller; every source is closed
    /// regardless.
    pub fn close(mut self) -> io::Result<()> {
        self.registry.clear(&mut self.backend)
    }

    /// The key of the registration `token` was issued for, if it is still registered.
    #[inline]
    pub(crate) fn key_of(&self, token: Token) -> Option<SelectorKey> {
        self.registry.key_of(token)
    }

    /// Where the reports a stopped dispatch left undelivered start, if any of them is still
    /// deliverable.
    fn take_owed(&mut self) -> Option<usize> {
        let registry = &self.registry;
        self.batch
            .take_owed(|batch, pair| live(registry, batch, pair))
    }

    /// Waits for readiness and fills the batch with one `(key, mask)` per ready key. With
    /// `services`, a queued call or stop request from a [`Handle`] also ends the wait.
    ///
    /// Inlined into its two callers, `select` and `run_once` (`#[inline]` alone was not taken):
    /// one call frame less per wait.
    ///
    /// [`Handle`]: crate::Handle
    #[inline(always)]
    fn poll(&mut self, timeout: Option<Duration>, services: bool) -> io::Result<()> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut wait = timeout;
        loop {
            // Registrations paused after failing go back to the poller once their delay is
            // over, so the wait must end in time for the next of them.
            let wait_now = match self.failures.has_paused() {
                false => wait,
                true => self
                    .failures
                    .resume_due(&mut self.backend, &mut self.registry, wait),
            };
            let waited = match self.services.watch.timing() {
                false => self.wait(wait_now),
                true => self.wait_timed(wait_now),
            };
            if services {
                // Every wake-up clears the flag before the queue is looked at: a call sent
                // from now on wakes the next wait.
                self.services.woke();
            }
            match waited {
                Err(e) if e.kind() != ErrorKind::Interrupted => return Err(e),
                _ if !self.batch.is_empty() => return Ok(()),
                _ if services && self.services.has_ready() => return Ok(()),
                _ => {}
            }
            // Nothing for the caller: the timeout, or a wake-up that carried no event of ours.
            // Python never returns an empty list before the timeout, so wait for the rest.
            if let Some(deadline) = deadline {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(());
                }
                wait = Some(deadline - now);
            }
        }
    }

    /// One wait of the OS poller, its reports added to the batch.
    #[inline(always)]
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let (registry, mut batch) = (&mut self.registry, self.batch.begin());
        self.backend.wait(timeout, |token, readiness| {
            let token = Token(token);
            let Some(entry) = registry.get_mut(token.index()) else {
                return;
            };
            let mask = readiness & entry.key.events;
            if entry.key.token != token || mask.is_empty() {
                return; // unregistered meanwhile, or a hang-up outside its interest
            }
            batch.add(&mut entry.report, entry.key, mask);
        })
    }

    /// [`wait`](Self::wait), timed (the stopwatch is on).
    #[cold]
    #[inline(never)]
    fn wait_timed(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let started = Instant::now();
        let waited = self.wait(timeout);
        self.services.watch.waited(started);
        waited
    }

    /// Runs the callback of `token`; returns whether it ran.
    ///
    /// The hot path of every loop, kept small enough to inline: what happens after a panic, an
    /// error or a self-unregistration is in [`after_call`](Self::after_call), out of line, and
    /// so is the timed call.
    #[inline]
    fn dispatch_token(&mut self, token: Token, mask: Events) -> io::Result<bool> {
        let Some(entry) = self.registry.get_mut(token.index()) else {
            return Ok(false); // unregistered since it was reported
        };
        let key = entry.key;
        let mask = mask & key.events;
        if key.token != token || mask.is_empty() {
            return Ok(false); // unregistered (the slot may be reused), or modified, since
        }
        let Some(mut handler) = entry.handler.take() else {
            return Ok(false); // its own callback is running: no re-entry
        };
        // Delivered: a report of the last wait is not delivered again. If this call stops
        // the batch (a panic, or `Stop`), the reports after it are owed.
        let slot = self.batch.deliver(&mut entry.report);
        let result = self.call(&mut handler, &key, mask, false);
        self.counters.dispatched += 1;
        if let (Ok(Ok(())), Some(entry)) = (&result, self.registry.get_mut(token.index())) {
            let unchanged = entry.key.token == token && entry.new_callback.is_none();
            if unchanged && entry.handler.is_none() && entry.failures.is_clear() {
                entry.handler = Some(handler);
                return Ok(true); // the hot path: it succeeded and is still registered
            }
        }
        self.after_call(&key, handler, result, slot)
    }

    /// Runs the callback of `token` for [`dispatch_soon`](Self::dispatch_soon): with `mask` as
    /// given, unless the registration is gone or its callback is running. Not a report of the
    /// last wait, so nothing of the batch changes.
    #[cold]
    #[inline(never)]
    fn feed(&mut self, token: Token, mask: Events) -> io::Result<bool> {
        let Some(index) = self.registry.current(token) else {
            return Ok(false); // unregistered since
        };
        let entry = self.registry.entry_mut(index);
        let key = entry.key;
        let Some(mut handler) = entry.handler.take() else {
            return Ok(false); // its own callback is running: no re-entry
        };
        let result = self.call(&mut handler, &key, mask, true); // inside the call that fed it
        self.counters.fed += 1;
        self.after_call(&key, handler, result, None)
    }

    /// Calls `handler` (the callback of `key`) with `mask`, a panic caught; timed, out of line,
    /// while the stopwatch runs. `inside`: it runs inside a call (`dispatch_soon`).
    #[inline(always)]
    fn call(
        &mut self,
        handler: &mut Box<dyn Handler<Selector<B>>>,
        key: &SelectorKey,
        mask: Events,
        inside: bool,
    ) -> std::thread::Result<io::Result<()>> {
        match self.services.watch.timing() {
            false => panic::catch_unwind(AssertUnwindSafe(|| handler.call(self, mask))),
            true => self.call_timed(handler, key, mask, inside),
        }
    }

    /// Calls `handler` (the callback of `key`) with `mask`, timed (the stopwatch is on): its
    /// time is counted, and a slow one named. `inside`: it runs inside a call
    /// (`dispatch_soon`), which must not count it again.
    #[cold]
    #[inline(never)]
    fn call_timed(
        &mut self,
        handler: &mut Box<dyn Handler<Selector<B>>>,
        key: &SelectorKey,
        mask: Events,
        inside: bool,
    ) -> std::thread::Result<io::Result<()>> {
        let started = Instant::now();
        let result = panic::catch_unwind(AssertUnwindSafe(|| handler.call(self, mask)));
        let (fd, kind) = (key.fd, ShortTypeName(handler.source_type()));
        let watch = &mut self.services.watch;
        match inside {
            false => watch.ran(
                started,
                format_args!("callback for fd {fd} ({kind}, {mask:?})"),
            ),
            true => watch.ran_inside(
                started,
                format_args!("callback for fd {fd} ({kind}, dispatch_soon)"),
            ),
        }
        result
    }

    /// Runs the hook of `phase`, if one is set.
    #[cold]
    #[inline(never)]
    fn run_hook(&mut self, phase: Phase) {
        let Some(mut hook) = self.hooks.take(phase) else {
            return;
        };
        Services::run_one(self, |sel| (hook.0)(sel), phase.name());
        self.hooks.put_back(phase, hook);
    }

    /// Everything but the hot path after a callback returned (or panicked): putting the
    /// callback back (or the one set meanwhile), closing a source unregistered by its own
    /// callback, ending a failure episode, the error handler, and resuming a panic.
    #[cold]
    #[inline(never)]
    fn after_call(
        &mut self,
        key: &SelectorKey,
        mut handler: Box<dyn Handler<Selector<B>>>,
        result: std::thread::Result<io::Result<()>>,
        slot: Option<usize>,
    ) -> io::Result<bool> {
        let (token, fd) = (key.token, key.fd);
        let result = match result {
            Ok(result) => result,
            Err(panic) => {
                self.counters.outcomes.panicked += 1;
                if let Some(index) = self.registry.current(token) {
                    self.registry.remove(&mut self.backend, index);
                }
                drop(handler); // after `remove`: the poller no longer watches the fd
                warn!("callback for fd {fd} panicked; it was unregistered");
                self.batch.owe_after(slot);
                panic::resume_unwind(panic);
            }
        };
        let Some(index) = self.registry.current(token) else {
            debug!("close fd {fd} after its callback");
            drop(handler); // closes the source: it was unregistered, and left the poller then
            return match result {
                Err(e) if !is_spurious(&e) => self.fail(key, e, slot),
                Err(_) => {
                    self.counters.outcomes.spurious += 1;
                    Ok(true)
                }
                Ok(()) => Ok(true),
            };
        };
        let entry = self.registry.entry_mut(index);
        if let Some(callback) = entry.new_callback.take() {
            handler = handler.with_callback(callback);
        }
        entry.handler = Some(handler);
        match result {
            Ok(()) => Policy::succeeded(&mut self.registry, index),
            Err(e) if is_spurious(&e) => {
                self.counters.outcomes.spurious += 1;
                Policy::would_block(&mut self.registry, index);
            }
            Err(e) => return self.fail(key, e, slot),
        }
        Ok(true)
    }

    /// The callback of `key` failed with `err` (not spurious readiness): the error handler
    /// decides, and a `Stop` leaves the reports after `slot` owed.
    fn fail(&mut self, key: &SelectorKey, err: io::Error, slot: Option<usize>) -> io::Result<bool> {
        let failed = self
            .failures
            .failed(&mut self.backend, &mut self.registry, key, err);
        let outcomes = &mut self.counters.outcomes;
        match failed {
            Ok(ErrorAction::Keep) => outcomes.kept += 1,
            Ok(ErrorAction::Pause) => outcomes.paused += 1,
            Ok(ErrorAction::Close | ErrorAction::Stop) => outcomes.closed += 1, // never `Stop`
            Err(_) => outcomes.stopped += 1,
        }
        if let Err(err) = failed {
            self.batch.owe_after(slot); // `Stop`: the rest of the batch waits
            return Err(err);
        }
        Ok(true)
    }
}

/// A report of the last wait as it stands now: its key as registered now and its mask within
/// the key's events, or `None` if it was delivered, or its registration is gone or no longer
/// waits for those events.
fn live<L>(registry: &Registry<L>, batch: &Batch, (key, mask): Pair) -> Option<Pair> {
    let entry = registry.entry(registry.current(key.token)?);
    let mask = mask & entry.key.events;
    (batch.undelivered(&entry.report) && !mask.is_empty()).then_some((entry.key, mask))
}

/// A callback error that only means "not ready after all".
fn is_spurious(err: &io::Error) -> bool {
    matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
}

impl<B: Backend> Drop for Selector<B> {
    fn drop(&mut self) {
        let _ = self.registry.clear(&mut self.backend);
    }
}

impl<B: Backend + fmt::Debug> fmt::Debug for Selector<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selector")
            .field("backend", &self.backend)
            .field("keys", &self.get_map())
            .finish_non_exhaustive()
    }
}

impl<B: Backend> HasServices for Selector<B> {
    fn services(&mut self) -> &mut Services<Selector<B>> {
        &mut self.services
    }
}
