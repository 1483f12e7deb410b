//! The selector's registrations, as a program sees them: register, unregister, detach, modify,
//! the lookups, and what happens when a callback fails.
//!
//! Registration is all-or-nothing: the OS poller accepts the descriptor before the tables
//! (`registry.rs`) change. Removal is the other way round: the poller forgets the descriptor
//! before its source can be closed.

use crate::reactor::batch::Report;
use crate::reactor::failure::{self, ErrorAction};
use crate::reactor::key::SelectorKey;
use crate::reactor::registration::{BoxedCallback, Registration};
use crate::reactor::registry::{check_events, error, Entry, Failures};
use crate::reactor::selector::Selector;
use crate::sys::events::{Events, Mode};
use crate::sys::{self, Backend, FileObj, PollingBackend, Source};
use log::{debug, trace};
use std::any::{Any, TypeId};
use std::fmt;
use std::io::{self, ErrorKind};

impl<B: Backend> Selector<B> {
    /// Registers `fileobj` for `events`, taking ownership of it, and returns its key.
    ///
    /// When the source is ready, [`dispatch`](Self::dispatch) (or [`run`](Self::run)) calls
    /// `callback(selector, &mut fileobj, mask)`. The callback may capture per-connection state.
    /// The source stays open until it is unregistered, the selector is closed or dropped, or
    /// [`detach`](Self::detach) hands it back. Sockets should be in non-blocking mode — and then
    /// a callback must not count on `write_all`: once the socket's buffer is full it stops
    /// half-way with `WouldBlock`, the selector takes that for spurious readiness, and the rest
    /// of the data is lost. Queue what the socket does not take (a
    /// [`Connection`](crate::Connection) does), as explained under [`dispatch`](Self::dispatch).
    ///
    /// # Errors
    ///
    /// - `InvalidInput` if `events` is empty (Python: `ValueError`);
    /// - `AlreadyExists` if the fd is already registered (Python: `KeyError`);
    /// - the OS error if the poller refuses the descriptor.
    ///
    /// On error the source is dropped, which closes it.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::{DefaultSelector, EVENT_READ};
    /// use std::net::TcpListener;
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// listener.set_nonblocking(true)?;
    /// let key = sel.register(listener, EVENT_READ, |_sel, sock, _mask| {
    ///     let (_conn, _addr) = sock.accept()?;
    ///     Ok(())
    /// })?;
    /// assert_eq!(key.events(), EVENT_READ);
    /// assert_eq!(sel.get_key(&key)?, key);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn register<S, F>(
        &mut self,
        fileobj: S,
        events: Events,
        callback: F,
    ) -> io::Result<SelectorKey>
    where
        S: Source,
        F: FnMut(&mut Selector<B>, &mut S, Events) -> io::Result<()> + 'static,
    {
        self.register_with_mode(fileobj, events, Mode::Level, callback)
    }

    /// Registers `fileobj` like [`register`](Self::register), reporting readiness in `mode`
    /// (edge-triggered or oneshot instead of Python's level-triggered; see [`Mode`]).
    ///
    /// # Errors
    ///
    /// As for `register`, and `Unsupported` if the backend cannot do `mode` (the poll and
    /// select backends are level-triggered only).
    ///
    /// # Examples
    ///
    /// An edge-triggered callback drains its source every time:
    ///
    /// ```
    /// use selectloop::{DefaultSelector, Mode, EVENT_READ};
    /// use std::io::ErrorKind;
    /// use std::net::TcpListener;
    ///
    /// # if cfg!(windows) { return Ok(()); } // IOCP has no edge mode
    /// let mut sel = DefaultSelector::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// listener.set_nonblocking(true)?;
    /// let key = sel.register_with_mode(listener, EVENT_READ, Mode::Edge, |_sel, sock, _mask| {
    ///     loop {
    ///         match sock.accept() {
    ///             Ok((_conn, _addr)) => {} // register it, ...
    ///             Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
    ///             Err(e) => return Err(e),
    ///         }
    ///     }
    /// })?;
    /// assert_eq!(key.mode(), Mode::Edge);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn register_with_mode<S, F>(
        &mut self,
        fileobj: S,
        events: Events,
        mode: Mode,
        callback: F,
    ) -> io::Result<SelectorKey>
    where
        S: Source,
        F: FnMut(&mut Selector<B>, &mut S, Events) -> io::Result<()> + 'static,
    {
        let fd = sys::raw_source(&fileobj);
        check_events("register", fd, events)?;
        if self.registry.contains_fd(fd) {
            return Err(error(
                ErrorKind::AlreadyExists,
                "register",
                fd,
                "already registered",
            ));
        }
        let token = self.registry.next_token(fd)?;
        let listener = failure::is_listener::<S>();
        let key = SelectorKey {
            fd,
            events,
            mode,
            token,
            listener,
        };
        if listener {
            self.failures.reserve_for_listener();
        }
        self.backend.reserve(self.registry.len() + 1);
        // SAFETY: `fileobj` moves into the entry below and is dropped only after `delete`
        // (`remove`, the panic path of `dispatch`, and `clear` all delete before dropping).
        unsafe { self.backend.add(fd, key.token.0, events, mode) }
            .map_err(|e| error(e.kind(), "register", fd, e))?;
        self.registry.insert(Entry {
            key,
            source_type: (TypeId::of::<S>(), std::any::type_name::<S>()),
            handler: Some(Box::new(Registration {
                source: fileobj,
                callback,
            })),
            new_callback: None,
            report: Report::default(),
            failures: Failures::default(),
        });
        self.counters.registered += 1;
        debug!("register fd {fd} for {events:?} ({mode:?})");
        Ok(key)
    }

    /// Unregisters `fileobj` and returns its key; the source is closed.
    ///
    /// The descriptor is removed from the OS poller at once. The source is dropped (closed) at
    /// once too — or, when a callback unregisters its own source, as soon as that callback
    /// returns. No callback runs for it afterwards, even if an event for it is still pending in
    /// the current batch. To keep the source open, use [`detach`](Self::detach) instead.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fileobj` is not registered (Python: `KeyError`).
    pub fn unregister<F: FileObj + ?Sized>(&mut self, fileobj: &F) -> io::Result<SelectorKey> {
        let index = self.registry.index_of("unregister", fileobj)?;
        let (key, _closed_here) = self.registry.remove(&mut self.backend, index);
        Ok(key)
    }

    /// Unregisters `fileobj` and hands its source back, still open.
    ///
    /// `S` must be the type it was registered with.
    ///
    /// # Errors
    ///
    /// - `NotFound` if `fileobj` is not registered;
    /// - `InvalidInput` if it was registered as another type than `S` (it stays registered);
    /// - `ResourceBusy` if called from the source's own callback, which holds it (it stays
    ///   registered; that callback already has the source).
    ///
    /// # Examples
    ///
    /// ```
    /// # use selectloop::{DefaultSelector, EVENT_READ};
    /// # use std::net::TcpListener;
    /// let mut sel = DefaultSelector::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let key = sel.register(listener, EVENT_READ, |_, _, _| Ok(()))?;
    /// let listener: TcpListener = sel.detach(&key)?;
    /// assert_eq!(listener.local_addr()?, addr);
    /// assert!(sel.is_empty());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn detach<S: Source, F: FileObj + ?Sized>(&mut self, fileobj: &F) -> io::Result<S> {
        let fd = fileobj.fileno();
        let index = self.registry.index_of("detach", fileobj)?;
        self.registry.check_type::<S>("detach", index)?;
        let Some(handler) = self.registry.entry_mut(index).handler.take() else {
            let why = "its own callback is running and holds the source";
            return Err(error(ErrorKind::ResourceBusy, "detach", fd, why));
        };
        self.registry.remove(&mut self.backend, index);
        match handler.into_source().downcast::<S>() {
            Ok(source) => Ok(*source),
            Err(_) => Err(error(ErrorKind::InvalidInput, "detach", fd, "wrong type")),
        }
    }

    /// The registered source of `fileobj`, to use it outside its callback (from a timer, say,
    /// or another connection's callback). `S` must be the type it was registered with.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fileobj` is not registered; `InvalidInput` if it was registered as another
    /// type than `S`; `ResourceBusy` from the source's own callback, which has it already.
    ///
    /// # Examples
    ///
    /// ```
    /// # use selectloop::{DefaultSelector, EVENT_READ};
    /// # use std::net::TcpListener;
    /// let mut sel = DefaultSelector::new()?;
    /// let key = sel.register(TcpListener::bind("127.0.0.1:0")?, EVENT_READ, |_, _, _| Ok(()))?;
    /// let listener: &mut TcpListener = sel.source_mut(&key)?;
    /// assert!(listener.local_addr()?.ip().is_loopback());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn source_mut<S: Source, F: FileObj + ?Sized>(
        &mut self,
        fileobj: &F,
    ) -> io::Result<&mut S> {
        let fd = fileobj.fileno();
        let index = self.registry.index_of("source_mut", fileobj)?;
        self.registry.check_type::<S>("source_mut", index)?;
        let busy = || {
            let why = "its own callback is running and holds the source";
            error(ErrorKind::ResourceBusy, "source_mut", fd, why)
        };
        let entry = self.registry.entry_mut(index);
        let handler = entry.handler.as_mut().ok_or_else(busy)?;
        handler.source_mut().downcast_mut::<S>().ok_or_else(busy)
    }

    /// Changes the events `fileobj` is registered for; takes effect on the next `select`.
    ///
    /// Nothing is asked of the OS if the events are unchanged — except for a
    /// [`Mode::Oneshot`] registration, which this re-arms.
    ///
    /// # Errors
    ///
    /// - `InvalidInput` if `events` is empty, `NotFound` if `fileobj` is not registered;
    /// - the OS error if the poller refuses: then, as in Python, the registration is removed
    ///   and its source closed.
    pub fn modify<F: FileObj + ?Sized>(
        &mut self,
        fileobj: &F,
        events: Events,
    ) -> io::Result<SelectorKey> {
        let fd = fileobj.fileno();
        check_events("modify", fd, events)?;
        let index = self.registry.index_of("modify", fileobj)?;
        let entry = self.registry.entry_mut(index);
        let key = &mut entry.key;
        if entry.failures.resume_at.is_some() {
            key.events = events; // paused: it goes back to the poller with these events
        } else if key.events != events || key.mode == Mode::Oneshot {
            // SAFETY: `fd` is registered, so its source is still open.
            if let Err(e) = unsafe { self.backend.modify(fd, key.token.0, events, key.mode) } {
                self.registry.remove(&mut self.backend, index);
                return Err(error(e.kind(), "modify", fd, e));
            }
            trace!("modify fd {fd}: {:?} -> {events:?}", key.events);
            key.events = events;
        }
        Ok(*key)
    }

    /// Replaces the callback of `fileobj` (Python: `modify(fileobj, events, data)`).
    ///
    /// Takes effect from the next dispatch; when a callback replaces itself, the call in
    /// progress finishes first. `S` is the source type the callback receives and must be the
    /// type `fileobj` was registered with.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fileobj` is not registered; `InvalidInput` if it was registered as
    /// another type than `S`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use selectloop::{DefaultSelector, EVENT_READ, Events, Selector};
    /// # use std::io;
    /// # use std::net::TcpListener;
    /// fn closed(_: &mut Selector, _: &mut TcpListener, _: Events) -> io::Result<()> {
    ///     Ok(())
    /// }
    /// let mut sel = DefaultSelector::new()?;
    /// let key = sel.register(TcpListener::bind("127.0.0.1:0")?, EVENT_READ, |_, _, _| Ok(()))?;
    /// sel.set_callback(&key, closed)?;
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_callback<S, C, F>(&mut self, fileobj: &F, callback: C) -> io::Result<SelectorKey>
    where
        S: Source,
        C: FnMut(&mut Selector<B>, &mut S, Events) -> io::Result<()> + 'static,
        F: FileObj + ?Sized,
    {
        let index = self.registry.index_of("set_callback", fileobj)?;
        self.registry.check_type::<S>("set_callback", index)?;
        let callback: Box<dyn Any> = Box::new(Box::new(callback) as BoxedCallback<S, Selector<B>>);
        let entry = self.registry.entry_mut(index);
        match entry.handler.take() {
            Some(handler) => entry.handler = Some(handler.with_callback(callback)),
            None => entry.new_callback = Some(callback),
        }
        Ok(entry.key)
    }

    /// Returns the key of `fileobj`.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fileobj` is not registered (Python: `KeyError`).
    pub fn get_key<F: FileObj + ?Sized>(&self, fileobj: &F) -> io::Result<SelectorKey> {
        let index = self.registry.index_of("get_key", fileobj)?;
        Ok(self.registry.entry(index).key)
    }

    /// All registrations (Python: `get_map()`), as a read-only view.
    pub fn get_map(&self) -> SelectorMap<'_, B> {
        SelectorMap { sel: self }
    }

    /// The number of registrations.
    pub fn len(&self) -> usize {
        self.registry.len()
    }

    /// True if nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.registry.is_empty()
    }

    /// True if the registration of `fileobj` is paused: out of the OS poller after its callback
    /// failed, until its backoff delay is over (see [`ErrorAction::Pause`]).
    ///
    /// # Errors
    ///
    /// `NotFound` if `fileobj` is not registered.
    pub fn is_paused<F: FileObj + ?Sized>(&self, fileobj: &F) -> io::Result<bool> {
        let index = self.registry.index_of("is_paused", fileobj)?;
        Ok(self.registry.entry(index).failures.resume_at.is_some())
    }

    /// The number of pause episodes so far, over all registrations: each time a registration
    /// that was working had to be paused (see [`ErrorAction::Pause`]). A counter for
    /// monitoring; each episode is also logged at `warn` when it starts.
    pub fn pauses(&self) -> u64 {
        self.failures.pauses
    }

    /// Sets what happens when a callback returns an error (other than `WouldBlock` and
    /// `Interrupted`, which mean "not ready after all" and are ignored).
    ///
    /// The handler receives the key and the error and returns an [`ErrorAction`]: keep the
    /// registration, pause it (retried with backoff), close it, or stop the loop with the error.
    /// The default is [`ErrorAction::default_for`]: pause a registration out of descriptors,
    /// buffers or memory, keep a listener whose accept of one connection failed, close the rest.
    /// Whatever the handler says, a registration that keeps failing cannot make the loop spin:
    /// `Keep` after two failures in a row is a `Pause`. A `Close` is logged at `warn`, a pause
    /// once per episode; the handler need not log.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::{DefaultSelector, ErrorAction};
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// sel.set_error_handler(|key, err| {
    ///     eprintln!("fd {}: {err}", key.fd());
    ///     ErrorAction::Stop
    /// });
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_error_handler(
        &mut self,
        handler: impl FnMut(&SelectorKey, &io::Error) -> ErrorAction + 'static,
    ) {
        self.failures.set_handler(Box::new(handler));
    }
}

/// A read-only view of a selector's registrations, from [`Selector::get_map`].
///
/// # Examples
///
/// ```
/// # use selectloop::{DefaultSelector, EVENT_READ};
/// # use std::net::TcpListener;
/// let mut sel = DefaultSelector::new()?;
/// let key = sel.register(TcpListener::bind("127.0.0.1:0")?, EVENT_READ, |_, _, _| Ok(()))?;
/// let map = sel.get_map();
/// assert_eq!(map.len(), 1);
/// assert_eq!(map.get(&key), Some(key));
/// assert_eq!(map.iter().collect::<Vec<_>>(), [key]);
/// # std::io::Result::Ok(())
/// ```
pub struct SelectorMap<'a, B: Backend = PollingBackend> {
    sel: &'a Selector<B>,
}

impl<'a, B: Backend> SelectorMap<'a, B> {
    /// The number of registrations.
    pub fn len(&self) -> usize {
        self.sel.len()
    }

    /// True if nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.sel.is_empty()
    }

    /// The key of `fileobj`, if it is registered.
    pub fn get<F: FileObj + ?Sized>(&self, fileobj: &F) -> Option<SelectorKey> {
        self.sel.get_key(fileobj).ok()
    }

    /// True if `fileobj` is registered.
    pub fn contains<F: FileObj + ?Sized>(&self, fileobj: &F) -> bool {
        self.sel.get_key(fileobj).is_ok()
    }

    /// Every key, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = SelectorKey> + 'a {
        self.sel.registry.keys()
    }
}

impl<B: Backend> fmt::Debug for SelectorMap<'_, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_map_debugs_as_a_list_of_keys() -> std::io::Result<()> {
        let mut sel = crate::reactor::selector::DefaultSelector::new()?;
        let a = sel.register(
            std::net::TcpListener::bind("127.0.0.1:0")?,
            crate::sys::events::Events::READ,
            |_, _, _| Ok(()),
        )?;
        assert_eq!(format!("{:?}", sel.get_map()), format!("[{a:?}]"));
        Ok(())
    }
}
