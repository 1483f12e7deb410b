//! A backend for unit tests that reports exactly what the test scripts.
//!
//! Real pollers cannot be made to produce some cases on demand: READ and WRITE reported as two
//! events (kqueue always does), an event carrying a token whose registration is gone, a wake-up
//! with no event at all. This backend replays them, so the selector's handling of each is tested
//! on every platform. Each `wait` returns at once with the next scripted batch, or with nothing.

use super::{Backend, RawSource, Waker};
use crate::{Events, Mode};
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
}

impl Backend for Scripted {
    fn new() -> io::Result<Self> {
        Ok(Scripted::default())
    }

    unsafe fn add(&mut self, _: RawSource, _: usize, _: Events, _: Mode) -> io::Result<()> {
        Ok(())
    }

    unsafe fn modify(&mut self, _: RawSource, _: usize, _: Events, _: Mode) -> io::Result<()> {
        match self.refuse_modify {
            true => Err(io::ErrorKind::PermissionDenied.into()),
            false => Ok(()),
        }
    }

    unsafe fn delete(&mut self, _: RawSource) -> io::Result<()> {
        Ok(())
    }

    fn wait(
        &mut self,
        _: Option<Duration>,
        mut on_event: impl FnMut(usize, Events),
    ) -> io::Result<()> {
        self.waits += 1;
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
