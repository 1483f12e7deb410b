//! A backend for unit tests that reports exactly what the test scripts (the tests are in
//! `reactor/scripted_tests.rs`).
//!
//! Real pollers cannot be made to produce some cases on demand: READ and WRITE reported as two
//! events (kqueue always does), an event carrying a token whose registration is gone, a wake-up
//! with no event at all. This backend replays them, so the selector's handling of each is tested
//! on every platform. Each `wait` returns at once with the next scripted batch, or with nothing.

use super::events::{Events, Mode};
use super::{Backend, RawSource, Waker};
use std::collections::VecDeque;
use std::io;
use std::time::Duration;

#[derive(Debug, Default)]
pub(crate) struct Scripted {
    /// What successive `wait` calls report, as `(token, readiness)`.
    pub(crate) batches: VecDeque<Vec<(usize, Events)>>,
    /// How many times `wait` was called.
    pub(crate) waits: usize,
    /// How many of the next `wait` calls fail with `Interrupted` (EINTR) before reporting.
    pub(crate) interrupts: usize,
    /// Make `modify` fail, as the OS may (Python's issue 30014).
    pub(crate) refuse_modify: bool,
    /// Make `delete` fail.
    pub(crate) refuse_delete: bool,
    /// Make the next `wait` fail with this error (other than `Interrupted`).
    pub(crate) fail_wait: Option<io::ErrorKind>,
    /// Every `add` and `delete`, in order, as `("add" | "delete", fd)`; shared, so a test can
    /// read it after the selector is gone.
    pub(crate) calls: std::rc::Rc<std::cell::RefCell<Vec<(&'static str, RawSource)>>>,
}

impl Backend for Scripted {
    fn new() -> io::Result<Self> {
        Ok(Scripted::default())
    }

    unsafe fn add(&mut self, fd: RawSource, _: usize, _: Events, _: Mode) -> io::Result<()> {
        self.calls.borrow_mut().push(("add", fd));
        Ok(())
    }

    unsafe fn modify(&mut self, _: RawSource, _: usize, _: Events, _: Mode) -> io::Result<()> {
        match self.refuse_modify {
            true => Err(io::ErrorKind::PermissionDenied.into()),
            false => Ok(()),
        }
    }

    unsafe fn delete(&mut self, fd: RawSource) -> io::Result<()> {
        self.calls.borrow_mut().push(("delete", fd));
        match self.refuse_delete {
            true => Err(io::ErrorKind::PermissionDenied.into()),
            false => Ok(()),
        }
    }

    fn wait(
        &mut self,
        _: Option<Duration>,
        mut on_event: impl FnMut(usize, Events),
    ) -> io::Result<()> {
        self.waits += 1;
        if let Some(kind) = self.fail_wait.take() {
            return Err(kind.into());
        }
        if self.interrupts > 0 {
            self.interrupts -= 1;
            return Err(io::ErrorKind::Interrupted.into());
        }
        for (token, readiness) in self.batches.pop_front().unwrap_or_default() {
            on_event(token, readiness);
        }
        Ok(())
    }

    fn reserve(&mut self, _: usize) {}

    fn waker(&mut self) -> io::Result<Waker> {
        Ok(std::sync::Arc::new(|| Ok(())))
    }
}
