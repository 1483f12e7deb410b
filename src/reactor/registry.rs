//! The table of registrations: a slab of entries, each holding a key, the owned source and its
//! callback (a `registration.rs` box), and what the loop remembers of it (its last report, its
//! failures); and a map from descriptor to slab index for the lookups by file object, as
//! Python's `_fd_to_key`.
//!
//! A registration's token (see `key.rs`) is its slab index plus a generation number, so a
//! report or a key outlives its registration harmlessly: [`Registry::current`] tells whether a
//! token still names the registration it was issued for. Removal takes the descriptor out of
//! the OS poller before its source can be closed. `L` is the loop the callbacks receive.

use crate::reactor::batch::Report;
use crate::reactor::key::{SelectorKey, Token, MAX_INDEX};
use crate::reactor::registration::Handler;
use crate::sys::events::Events;
use crate::sys::{Backend, FdMap, FileObj, RawSource};
use log::{debug, warn};
use slab::Slab;
use std::any::{Any, TypeId};
use std::fmt;
use std::io::{self, ErrorKind};
use std::time::Instant;

/// One registration.
pub(crate) struct Entry<L> {
    pub(crate) key: SelectorKey,
    pub(crate) source_type: (TypeId, &'static str),
    /// `None` while the callback runs (the dispatcher holds it).
    pub(crate) handler: Option<Box<dyn Handler<L>>>,
    /// A callback set while the old one was running, installed when it returns.
    pub(crate) new_callback: Option<Box<dyn Any>>,
    /// The wait that last reported it, and where (see `batch.rs`).
    pub(crate) report: Report,
    /// Consecutive failures of its callback, and its pause, if paused (see `failure.rs`).
    pub(crate) failures: Failures,
}

/// What the loop remembers of a registration's failures (see `failure.rs`).
#[derive(Debug, Default)]
pub(crate) struct Failures {
    /// Consecutive failed calls (reset by a call that succeeds).
    pub(crate) count: u32,
    /// When the current pause episode began, if one is under way.
    pub(crate) since: Option<Instant>,
    /// When a paused registration goes back to the poller; `None` while it is in the poller.
    pub(crate) resume_at: Option<Instant>,
    /// A `WouldBlock` from a level-triggered callback was logged (once per registration).
    pub(crate) warned_would_block: bool,
}

impl Failures {
    /// True unless the registration's last call failed: nothing to reset after a success.
    #[inline]
    pub(crate) fn is_clear(&self) -> bool {
        self.count == 0
    }
}

/// The registrations of one loop.
pub(crate) struct Registry<L> {
    entries: Slab<Entry<L>>,
    /// Descriptor to slab index, for lookups by file object.
    fds: FdMap<usize>,
    /// Bumped by every registration, so tokens of reused slots differ (see `key.rs`).
    generation: usize,
}

/// An error about `fd`, as every operation of the selector words them: `op: fd N: what`.
pub(crate) fn error(
    kind: ErrorKind,
    op: &str,
    fd: RawSource,
    what: impl fmt::Display,
) -> io::Error {
    io::Error::new(kind, format!("{op}: fd {fd}: {what}"))
}

/// `InvalidInput` for an empty event set (Python: `ValueError`).
pub(crate) fn check_events(op: &str, fd: RawSource, events: Events) -> io::Result<()> {
    if events.is_empty() {
        return Err(error(
            ErrorKind::InvalidInput,
            op,
            fd,
            "invalid events: (empty)",
        ));
    }
    Ok(())
}

impl<L> Registry<L> {
    pub(crate) fn new() -> Self {
        Registry {
            entries: Slab::new(),
            fds: FdMap::default(),
            generation: 0,
        }
    }

    /// The number of registrations.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry at slab index `index`, if there is one (whatever registration it is now).
    #[inline]
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut Entry<L>> {
        self.entries.get_mut(index)
    }

    /// The entry at `index`, which must be occupied.
    #[inline]
    pub(crate) fn entry(&self, index: usize) -> &Entry<L> {
        &self.entries[index]
    }

    /// The entry at `index`, which must be occupied.
    #[inline]
    pub(crate) fn entry_mut(&mut self, index: usize) -> &mut Entry<L> {
        &mut self.entries[index]
    }

    /// The slab index of `token` if it is still the registration it was issued for.
    #[inline]
    pub(crate) fn current(&self, token: Token) -> Option<usize> {
        let entry = self.entries.get(token.index())?;
        (entry.key.token == token).then_some(token.index())
    }

    /// The key of the registration `token` was issued for, if it is still registered.
    #[inline]
    pub(crate) fn key_of(&self, token: Token) -> Option<SelectorKey> {
        self.current(token).map(|index| self.entries[index].key)
    }

    /// Every key, in slab order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = SelectorKey> + '_ {
        self.entries.iter().map(|(_, entry)| entry.key)
    }

    /// True if `fd` is registered.
    pub(crate) fn contains_fd(&self, fd: RawSource) -> bool {
        self.fds.contains_key(&fd)
    }

    /// The slab index of `fileobj`'s registration.
    pub(crate) fn index_of<F: FileObj + ?Sized>(&self, op: &str, fileobj: &F) -> io::Result<usize> {
        let fd = fileobj.fileno();
        let Some(&index) = self.fds.get(&fd) else {
            return Err(error(ErrorKind::NotFound, op, fd, "not registered"));
        };
        match fileobj.registration() {
            Some(token) if token != self.entries[index].key.token.0 => {
                let why = "this key's registration is gone (the fd was registered again since)";
                Err(error(ErrorKind::NotFound, op, fd, why))
            }
            _ => Ok(index),
        }
    }

    /// `InvalidInput` unless the registration at `index` was registered as an `S`.
    pub(crate) fn check_type<S: 'static>(&self, op: &str, index: usize) -> io::Result<()> {
        let entry = &self.entries[index];
        let (registered, name) = entry.source_type;
        if registered != TypeId::of::<S>() {
            let what = format!("registered as {name}, not {}", std::any::type_name::<S>());
            return Err(error(ErrorKind::InvalidInput, op, entry.key.fd, what));
        }
        Ok(())
    }

    /// The token the next registration gets: its slab slot, and a generation not used before.
    ///
    /// # Errors
    ///
    /// `OutOfMemory` once the slab index would not fit in a token (see `key.rs`).
    pub(crate) fn next_token(&mut self, fd: RawSource) -> io::Result<Token> {
        let index = self.entries.vacant_key();
        if index > MAX_INDEX {
            let why = "too many registrations";
            return Err(error(ErrorKind::OutOfMemory, "register", fd, why));
        }
        self.generation = self.generation.wrapping_add(1);
        Ok(Token::new(index, self.generation))
    }

    /// Adds `entry`, whose token came from [`next_token`](Self::next_token) just before.
    pub(crate) fn insert(&mut self, entry: Entry<L>) {
        let fd = entry.key.fd;
        let index = self.entries.insert(entry);
        self.fds.insert(fd, index);
    }

    /// Removes a registration from the poller, then from the tables. The returned handler (if
    /// the callback is not running) closes the source when dropped.
    pub(crate) fn remove<B: Backend>(
        &mut self,
        backend: &mut B,
        index: usize,
    ) -> (SelectorKey, Option<Box<dyn Handler<L>>>) {
        let entry = self.entries.remove(index);
        let fd = entry.key.fd;
        self.fds.remove(&fd);
        // A paused registration is out of the poller already.
        let in_poller = entry.failures.resume_at.is_none();
        // SAFETY: the source is still open: it is owned by `entry.handler`, or by `dispatch`
        // while its callback runs, and both drop it only after this.
        if let Some(Err(e)) = in_poller.then(|| unsafe { backend.delete(fd) }) {
            // As in Python, the registration is gone whatever the OS says.
            warn!("unregister fd {fd}: removing it from the poller failed: {e}");
        }
        debug!("unregister fd {fd}");
        (entry.key, entry.handler)
    }

    /// Removes every registration from the poller and closes its source.
    ///
    /// # Errors
    ///
    /// The first OS error met while removing sources from the poller; every source is closed
    /// regardless.
    pub(crate) fn clear<B: Backend>(&mut self, backend: &mut B) -> io::Result<()> {
        let mut result = Ok(());
        for (_, entry) in std::mem::take(&mut self.entries) {
            // A paused registration is out of the poller already.
            let in_poller = entry.failures.resume_at.is_none();
            // SAFETY: the entry's source is open: it is dropped only at the end of this loop.
            if let Some(Err(e)) = in_poller.then(|| unsafe { backend.delete(entry.key.fd) }) {
                if result.is_ok() {
                    result = Err(error(e.kind(), "close", entry.key.fd, e));
                }
            }
            debug!("close fd {}", entry.key.fd);
        }
        self.fds.clear();
        result
    }
}
