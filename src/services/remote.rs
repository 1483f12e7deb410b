//! The cross-thread handle: `call_soon_threadsafe` and `stop` from any thread.
//!
//! Calls travel through a `crossbeam-channel` queue; after each send the backend is woken
//! (`polling`'s `notify()`, an eventfd, or a self-pipe), so a loop blocked in `select` returns at
//! once. Wake-ups coalesce — ten sends may cost one wake-up — so the loop drains every queued
//! call whenever it wakes: none is lost or left waiting for a later wake-up. The queue is the
//! truth, the wake-up only a nudge: the loop also looks at the queue before it blocks.

use crate::sys::{Backend, PollingBackend, Waker};
use crate::reactor::selector::Selector;
use crossbeam_channel::{Receiver, Sender};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A call sent to the loop thread.
pub(crate) type Call<B> = Box<dyn FnOnce(&mut Selector<B>) + Send>;

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
    shared: Arc<Shared<B>>,
}

pub(crate) struct Shared<B: Backend> {
    calls: Sender<Call<B>>,
    waker: Waker,
    stop: AtomicBool,
    closed: AtomicBool,
    notified: AtomicBool,
}

/// The loop's side: the receiving end, and the shared part once a handle was made.
pub(crate) struct Remote<B: Backend> {
    pub(crate) calls: Receiver<Call<B>>,
    sender: Sender<Call<B>>,
    shared: Option<Arc<Shared<B>>>,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the selector is closed")
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
        self.send(Box::new(callback))
    }

    pub(crate) fn send(&self, call: Call<B>) -> io::Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        self.shared.calls.send(call).map_err(|_| closed())?;
        if self.shared.notified.swap(true, Ordering::AcqRel) {
            return Ok(()); // a wake-up is on its way; the loop drains the whole queue
        }
        (self.shared.waker)()
    }

    /// Makes [`Selector::run`] return, from any thread, waking the selector if it is blocked.
    ///
    /// # Errors
    ///
    /// `BrokenPipe` if the selector was closed or dropped.
    pub fn stop(&self) -> io::Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        self.shared.stop.store(true, Ordering::Release);
        (self.shared.waker)()
    }
}

impl<B: Backend> Clone for Handle<B> {
    fn clone(&self) -> Self {
        Handle {
            shared: self.shared.clone(),
        }
    }
}

impl<B: Backend> fmt::Debug for Handle<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Remote<B> {
    pub(crate) fn new() -> Self {
        let (sender, calls) = crossbeam_channel::unbounded();
        Remote {
            calls,
            sender,
            shared: None,
        }
    }

    /// A new handle; the first one sets up the backend's wake-up.
    pub(crate) fn handle(&mut self, backend: &mut B) -> io::Result<Handle<B>> {
        if self.shared.is_none() {
            self.shared = Some(Arc::new(Shared {
                calls: self.sender.clone(),
                waker: backend.waker()?,
                stop: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                notified: AtomicBool::new(false),
            }));
        }
        let shared = self.shared.clone().ok_or_else(closed)?;
        Ok(Handle { shared })
    }

    /// True if a call is queued or a handle asked the loop to stop: reasons to stop waiting.
    /// Without a handle nothing can be queued, and this costs one branch.
    pub(crate) fn pending(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.stop.load(Ordering::Acquire) || !self.calls.is_empty())
    }

    /// True once a handle exists: only then can calls arrive from other threads.
    pub(crate) fn has_handle(&self) -> bool {
        self.shared.is_some()
    }

    /// Called after every wait, before the queue is looked at: calls sent from now on wake the
    /// loop again. (Clearing only when draining would leave the flag set after a wake-up that
    /// found the queue already drained, and `poll` waits again without draining: every later
    /// call would then skip its wake-up.)
    pub(crate) fn clear_notified(&self) {
        if let Some(shared) = &self.shared {
            shared.notified.swap(false, Ordering::AcqRel);
        }
    }

    /// Takes a stop request made through a handle.
    pub(crate) fn take_stop(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.stop.swap(false, Ordering::AcqRel))
    }
}

impl<B: Backend> Drop for Remote<B> {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.closed.store(true, Ordering::Release);
        }
    }
}

// Handles cross threads; the selector and its callbacks do not.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Handle>();
};
