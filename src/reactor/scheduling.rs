//! The selector's calls that schedule callbacks, through its services (`services/`): timers,
//! `call_soon`, calls from other threads (the [`Handle`]), the executor ([`WorkHandle`]) and
//! signal handlers. Every callback receives `&mut Selector`, as I/O callbacks do; the loop
//! runs them (see [`Selector::run_once`]).

use crate::reactor::key::SelectorKey;
use crate::reactor::selector::Selector;
use crate::services::executor::{self, JobState};
use crate::services::remote::Sender;
use crate::services::timer::{deadline_after, TimerHandle};
use crate::services::Services;
use crate::sys::events::EVENT_READ;
use crate::sys::signal::SignalPipe;
use crate::sys::{Backend, PollingBackend};
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

/// A handle to a selector usable from any thread: [`Selector::handle`].
///
/// It is `Send + Sync + Clone`. Its calls run on the selector's thread, in the order each
/// thread sent them, during [`run_once`](Selector::run_once) or [`run`](Selector::run).
///
/// # Examples
///
/// ```
/// use selectloop::DefaultSelector;
///
/// let mut sel = DefaultSelector::new()?;
/// let handle = sel.handle()?;
/// std::thread::spawn(move || {
///     handle.call_soon_threadsafe(|sel| sel.stop()).expect("the selector is alive");
/// });
/// sel.run()?; // returns once the call has run
/// # std::io::Result::Ok(())
/// ```
pub struct Handle<B: Backend = PollingBackend> {
    sender: Sender<Selector<B>>,
}

impl<B: Backend> Handle<B> {
    /// Schedules `callback` to run on the selector's thread, waking the selector if it is
    /// blocked.
    ///
    /// # Errors
    ///
    /// `BrokenPipe` if the selector was closed or dropped: the call is not run.
    pub fn call_soon_threadsafe(
        &self,
        callback: impl FnOnce(&mut Selector<B>) + Send + 'static,
    ) -> io::Result<()> {
        self.sender.send(Box::new(callback))
    }

    /// Makes [`Selector::run`] return, from any thread, waking the selector if it is blocked.
    ///
    /// # Errors
    ///
    /// `BrokenPipe` if the selector was closed or dropped.
    pub fn stop(&self) -> io::Result<()> {
        self.sender.stop()
    }
}

impl<B: Backend> Clone for Handle<B> {
    fn clone(&self) -> Self {
        Handle {
            sender: self.sender.clone(),
        }
    }
}

impl<B: Backend> fmt::Debug for Handle<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("closed", &self.sender.is_closed())
            .finish_non_exhaustive()
    }
}

// Handles cross threads; the selector and its callbacks do not.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Handle>();
};

/// A handle to work submitted with [`Selector::run_in_executor`]: it can cancel the work
/// before it starts. `Send + Sync`, so any thread may cancel.
pub struct WorkHandle<B: Backend = PollingBackend> {
    state: JobState,
    id: usize,
    loop_handle: Handle<B>,
}

impl<B: Backend> WorkHandle<B> {
    /// Cancels the work if it has not started. Returns true if it was cancelled: its `done`
    /// callback then runs on the loop thread with an `Interrupted` error. Returns false if the
    /// work already started (it will finish and `done` gets its result) or was cancelled before.
    pub fn cancel(&self) -> bool {
        let cancelled = executor::cancel(&self.state);
        if cancelled {
            let id = self.id;
            // If the selector is gone there is nobody left to tell.
            let _ = self.loop_handle.sender.send(Box::new(move |sel| {
                let err = io::Error::new(io::ErrorKind::Interrupted, "cancelled before it started");
                Services::finish_job(sel, id, Err(err));
            }));
        }
        cancelled
    }
}

impl<B: Backend> fmt::Debug for WorkHandle<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = executor::describe(&self.state);
        f.debug_struct("WorkHandle").field("state", &state).finish()
    }
}

impl<B: Backend> Selector<B> {
    /// Calls `callback` in the next loop iteration, after I/O and timers (asyncio:
    /// `loop.call_soon`). Calls run in the order they were made.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// let log = Rc::new(RefCell::new(Vec::new()));
    /// for i in 0..3 {
    ///     let log = log.clone();
    ///     sel.call_soon(move |_sel| log.borrow_mut().push(i));
    /// }
    /// sel.run()?;
    /// assert_eq!(*log.borrow(), [0, 1, 2]);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn call_soon(&mut self, callback: impl FnOnce(&mut Selector<B>) + 'static) {
        self.services.call_soon(Box::new(callback));
    }

    /// Calls `callback` once, `delay` from now (asyncio: `loop.call_later`).
    ///
    /// Never earlier: the loop wakes in time for the earliest timer, and a timer that comes due
    /// while callbacks run fires in the next iteration. Timers due at the same instant fire in
    /// the order they were scheduled. A delay too large for the clock (`Duration::MAX`) means
    /// "never", without overflow. While a timer is pending, [`run`](Self::run) keeps running.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    /// use std::time::{Duration, Instant};
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// let start = Instant::now();
    /// sel.call_later(Duration::from_millis(20), move |_sel| {
    ///     assert!(start.elapsed() >= Duration::from_millis(20));
    /// });
    /// let never = sel.call_later(Duration::MAX, |_sel| unreachable!());
    /// never.cancel();
    /// sel.run()?; // returns once no timer is left
    /// # std::io::Result::Ok(())
    /// ```
    pub fn call_later(
        &mut self,
        delay: Duration,
        callback: impl FnOnce(&mut Selector<B>) + 'static,
    ) -> TimerHandle {
        self.call_at(deadline_after(Instant::now(), delay), callback)
    }

    /// Calls `callback` once, at `when` (asyncio: `loop.call_at`). A past `when` fires in the
    /// next iteration.
    pub fn call_at(
        &mut self,
        when: Instant,
        callback: impl FnOnce(&mut Selector<B>) + 'static,
    ) -> TimerHandle {
        self.services.call_at(when, Box::new(callback))
    }

    /// Calls `callback` every `interval`, first `interval` from now, until the returned handle
    /// is cancelled (libuv: a repeating `uv_timer`).
    ///
    /// The deadlines stay on one grid — the first is `interval` from now, each next one
    /// `interval` after the previous — so a late call does not make the later ones drift. If a
    /// call comes so late (the callback or the loop stalled) that ticks were missed, they are
    /// skipped, not made up in a burst: the next call is at the first tick after the late one
    /// returned.
    ///
    /// An `interval` below 1 ms (`Duration::ZERO` included) is raised to 1 ms, as browsers
    /// clamp `setInterval`: a timer that is always due would keep the loop from ever waiting
    /// for I/O, spinning a CPU. So a repeating timer fires at most once a millisecond. A
    /// `Duration::MAX` interval means "never", as for [`call_later`](Self::call_later).
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    /// use std::time::{Duration, Instant};
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// let before = Instant::now();
    /// let timer = sel.call_repeating(Duration::ZERO, |_sel| {});
    /// assert!(timer.when() >= before + Duration::from_millis(1)); // raised to 1 ms
    /// timer.cancel();
    /// # std::io::Result::Ok(())
    /// ```
    pub fn call_repeating(
        &mut self,
        interval: Duration,
        callback: impl FnMut(&mut Selector<B>) + 'static,
    ) -> TimerHandle {
        self.services.call_repeating(interval, Box::new(callback))
    }

    /// A handle for other threads: [`Handle::call_soon_threadsafe`] and [`Handle::stop`].
    ///
    /// # Errors
    ///
    /// If the backend's wake-up cannot be set up (the first time; e.g. out of descriptors).
    pub fn handle(&mut self) -> io::Result<Handle<B>> {
        let backend = &mut self.backend;
        let sender = self.services.sender(|| backend.waker())?;
        Ok(Handle { sender })
    }

    /// Runs `work` on the selector's thread pool, then `done(selector, result)` on the loop
    /// thread (Python: `executor.submit(work).add_done_callback(done)`, but on the right thread).
    ///
    /// `result` is `Ok` with what `work` returned, or an error: `Interrupted` if the work was
    /// cancelled through the returned handle before it started, `Other` if it panicked (the
    /// message says so). The pool starts on first use; see
    /// [`set_executor_threads`](Self::set_executor_threads). While work is in flight,
    /// [`run`](Self::run) keeps running.
    ///
    /// # Errors
    ///
    /// If the pool's threads or the loop's wake-up cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// let loop_thread = std::thread::current().id();
    /// sel.run_in_executor(
    ///     || std::fs::metadata(".").map(|m| m.is_dir()), // blocking work, on a worker
    ///     move |sel, result| {
    ///         assert_eq!(std::thread::current().id(), loop_thread); // done: on the loop
    ///         assert!(result.expect("the work ran").expect("metadata"));
    ///         sel.stop();
    ///     },
    /// )?;
    /// sel.run()?;
    /// # std::io::Result::Ok(())
    /// ```
    pub fn run_in_executor<T, W, D>(&mut self, work: W, done: D) -> io::Result<WorkHandle<B>>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
        D: FnOnce(&mut Selector<B>, io::Result<T>) + 'static,
    {
        let loop_handle = self.handle()?;
        let done = executor::completion(done);
        let (id, state) = self
            .services
            .submit(work, done, loop_handle.sender.clone())?;
        Ok(WorkHandle {
            state,
            id,
            loop_handle,
        })
    }

    /// Sets the number of executor threads (default: the number of CPUs), from 1 to 1024.
    /// Only before the first [`run_in_executor`](Self::run_in_executor), which starts them all.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `threads` is 0 or more than 1024 (the selector is unchanged);
    /// `ResourceBusy` if the pool already started.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    /// use std::io::ErrorKind;
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// sel.set_executor_threads(2)?;
    /// let err = sel.set_executor_threads(usize::MAX).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidInput);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_executor_threads(&mut self, threads: usize) -> io::Result<()> {
        self.services.set_pool_threads(threads)
    }

    /// Calls `callback(selector, signal)` on the loop thread whenever `signal` arrives
    /// (asyncio: `loop.add_signal_handler`). On Windows, signals are console control events:
    /// see [`signals`](crate::signals).
    ///
    /// The handler is a registration like any other (READ on a self-pipe), so a bare
    /// [`select`](Self::select)/[`dispatch`](Self::dispatch) loop runs it too: the way to end
    /// such a loop on Ctrl-C, on every platform. Its key is returned, and
    /// [`unregister`](Self::unregister) removes the handler. Several arrivals before the
    /// callback runs make one call. Several handlers for one signal all run. On Windows, an
    /// event with no handler left goes on to the system's default (ending the process), as if
    /// selectloop were not there.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a signal that cannot be handled (Unix: `SIGKILL`, `SIGSTOP`,
    /// `SIGSEGV`, `SIGILL`, `SIGFPE`; Windows: anything but `SIGINT`, `SIGBREAK` and `SIGTERM`)
    /// or an invalid number.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::{signals::{self, SIGINT}, DefaultSelector};
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// let running = Rc::new(Cell::new(true));
    /// let r = running.clone();
    /// sel.add_signal_handler(SIGINT, move |_sel, signal| {
    ///     assert_eq!(signal, SIGINT);
    ///     r.set(false);
    /// })?;
    /// signals::raise(SIGINT)?; // as if the user pressed Ctrl-C
    /// while running.get() {
    ///     for (key, mask) in sel.select(None)? {
    ///         sel.dispatch(&key, mask)?; // runs the handler
    ///     }
    /// }
    /// # std::io::Result::Ok(())
    /// ```
    pub fn add_signal_handler(
        &mut self,
        signal: i32,
        mut callback: impl FnMut(&mut Selector<B>, i32) + 'static,
    ) -> io::Result<SelectorKey> {
        let pipe = SignalPipe::new(signal)?;
        self.register(pipe, EVENT_READ, move |sel, pipe, _| {
            if pipe.drain() {
                callback(sel, signal);
            }
            Ok(())
        })
    }
}
