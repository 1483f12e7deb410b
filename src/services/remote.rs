//! Calls from other threads: the queue behind `Handle::call_soon_threadsafe` and `Handle::stop`.
//!
//! Calls travel through a `crossbeam-channel` queue; after each send the backend is woken
//! (`polling`'s `notify()`, an eventfd, or a self-pipe), so a loop blocked in `select` returns at
//! once. Wake-ups coalesce — ten sends may cost one wake-up — so the loop drains every queued
//! call whenever it wakes: none is lost or left waiting for a later wake-up. The queue is the
//! truth, the wake-up only a nudge: the loop also looks at the queue before it blocks.
//!
//! The queue knows nothing of the selector: a call takes the loop (`L`) as its argument.

use crate::sys::Waker;
use crossbeam_channel::Receiver;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A call sent to the loop thread.
pub(crate) type Call<L> = Box<dyn FnOnce(&mut L) + Send>;

/// The sending side, shared by every handle of one loop: `Send + Sync + Clone`.
pub(crate) struct Sender<L> {
    shared: Arc<Shared<L>>,
}

struct Shared<L> {
    calls: crossbeam_channel::Sender<Call<L>>,
    waker: Waker,
    stop: AtomicBool,
    closed: AtomicBool,
    notified: AtomicBool,
}

/// The loop's side: the receiving end, and the shared part once a handle was made.
pub(crate) struct Remote<L> {
    calls: Receiver<Call<L>>,
    sender: crossbeam_channel::Sender<Call<L>>,
    shared: Option<Arc<Shared<L>>>,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the selector is closed")
}

impl<L> Sender<L> {
    /// Queues `call` for the loop thread and wakes the loop if no wake-up is on its way.
    pub(crate) fn send(&self, call: Call<L>) -> io::Result<()> {
        if self.is_closed() {
            return Err(closed());
        }
        self.shared.calls.send(call).map_err(|_| closed())?;
        if self.shared.notified.swap(true, Ordering::AcqRel) {
            return Ok(()); // a wake-up is on its way; the loop drains the whole queue
        }
        (self.shared.waker)()
    }

    /// Asks the loop's `run` to return, waking it.
    pub(crate) fn stop(&self) -> io::Result<()> {
        if self.is_closed() {
            return Err(closed());
        }
        self.shared.stop.store(true, Ordering::Release);
        (self.shared.waker)()
    }

    /// True once the loop was closed or dropped.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl<L> Clone for Sender<L> {
    fn clone(&self) -> Self {
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<L> Remote<L> {
    pub(crate) fn new() -> Self {
        let (sender, calls) = crossbeam_channel::unbounded();
        Remote {
            calls,
            sender,
            shared: None,
        }
    }

    /// A sender for a new handle; the first one sets up the backend's wake-up with `waker`.
    pub(crate) fn sender(
        &mut self,
        waker: impl FnOnce() -> io::Result<Waker>,
    ) -> io::Result<Sender<L>> {
        if self.shared.is_none() {
            self.shared = Some(Arc::new(Shared {
                calls: self.sender.clone(),
                waker: waker()?,
                stop: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                notified: AtomicBool::new(false),
            }));
        }
        let shared = self.shared.clone().ok_or_else(closed)?;
        Ok(Sender { shared })
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
    /// found the queue already drained, and the loop would wait again without draining: every
    /// later call would then skip its wake-up.)
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

    /// The calls queued now, at most: calls sent while they run wait for the next pass.
    pub(crate) fn queued(&self) -> usize {
        self.calls.len()
    }

    /// The next queued call, if any.
    pub(crate) fn next(&self) -> Option<Call<L>> {
        self.calls.try_recv().ok()
    }
}

impl<L> Drop for Remote<L> {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.closed.store(true, Ordering::Release);
        }
    }
}
