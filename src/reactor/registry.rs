//! The registry half of the selector: register, unregister, detach, modify, lookups.
//!
//! Each registration is a slab entry (see [`Selector`]); a hash map from descriptor to slab
//! index serves the lookups by file object, as Python's `_fd_to_key` does. Registration is
//! all-or-nothing: the OS poller accepts the descriptor before the tables change. Removal is the
//! other way round: the poller forgets the descriptor before its source can be closed.

use crate::reactor::failure::{self, Failures};
use crate::reactor::key::SelectorKey;
use crate::reactor::key::{SelectorMap, Token, MAX_INDEX};
use crate::reactor::registration::{BoxedCallback, Handler, Registration};
use crate::reactor::selector::Selector;
use crate::reactor::selector::{check_events, error, Entry};
use crate::sys::events::{Events, Mode};
use crate::sys::{self, Backend, FileObj, Source};
use log::{debug, trace, warn};
use std::any::{Any, TypeId};
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
        if self.fds.contains_key(&fd) {
            return Err(error(
                ErrorKind::AlreadyExists,
                "register",
                fd,
                "already registered",
            ));
        }
        let index = self.entries.vacant_key();
        if index > MAX_INDEX {
            return Err(error(
                ErrorKind::OutOfMemory,
                "register",
                fd,
                "too many registrations",
            ));
        }
        self.generation = self.generation.wrapping_add(1);
        let listener = failure::is_listener::<S>();
        let key = SelectorKey {
            fd,
            events,
            mode,
            token: Token::new(index, self.generation),
            listener,
        };
        if listener && self.reserve.is_none() {
            self.reserve = sys::reserve_descriptor(); // for shedding at the descriptor limit
        }
        self.backend.reserve(self.entries.len() + 1);
        // SAFETY: `fileobj` moves into the entry below and is dropped only after `delete`
        // (`remove`, the panic path of `dispatch`, and `clear` all delete before dropping).
        unsafe { self.backend.add(fd, key.token.0, events, mode) }
            .map_err(|e| error(e.kind(), "register", fd, e))?;
        self.entries.insert(Entry {
            key,
            source_type: (TypeId::of::<S>(), std::any::type_name::<S>()),
            handler: Some(Box::new(Registration {
                source: fileobj,
                callback,
            })),
            new_callback: None,
            batch: 0,
            slot: 0,
            failures: Failures::default(),
        });
        self.fds.insert(fd, index);
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
        let index = self.index_of("unregister", fileobj)?;
        let (key, _closed_here) = self.remove(index);
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
        let index = self.index_of("detach", fileobj)?;
        self.check_type::<S>("detach", index)?;
        let Some(handler) = self.entries[index].handler.take() else {
            let why = "its own callback is running and holds the source";
            return Err(error(ErrorKind::ResourceBusy, "detach", fd, why));
        };
        self.remove(index);
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
        let index = self.index_of("source_mut", fileobj)?;
        self.check_type::<S>("source_mut", index)?;
        let busy = || {
            let why = "its own callback is running and holds the source";
            error(ErrorKind::ResourceBusy, "source_mut", fd, why)
        };
        let handler = self.entries[index].handler.as_mut().ok_or_else(busy)?;
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
        let index = self.index_of("modify", fileobj)?;
        let entry = &mut self.entries[index];
        let key = &mut entry.key;
        if entry.failures.resume_at.is_some() {
            key.events = events; // paused: it goes back to the poller with these events
        } else if key.events != events || key.mode == Mode::Oneshot {
            // SAFETY: `fd` is registered, so its source is still open.
            if let Err(e) = unsafe { self.backend.modify(fd, key.token.0, events, key.mode) } {
                self.remove(index);
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
        let index = self.index_of("set_callback", fileobj)?;
        self.check_type::<S>("set_callback", index)?;
        let callback: Box<dyn Any> = Box::new(Box::new(callback) as BoxedCallback<S, B>);
        let entry = &mut self.entries[index];
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
        let index = self.index_of("get_key", fileobj)?;
        Ok(self.entries[index].key)
    }

    /// All registrations (Python: `get_map()`), as a read-only view.
    pub fn get_map(&self) -> SelectorMap<'_, B> {
        SelectorMap { sel: self }
    }

    /// Every key, in slab order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = SelectorKey> + '_ {
        self.entries.iter().map(|(_, entry)| entry.key)
    }

    /// The number of registrations.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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

    fn check_type<S: 'static>(&self, op: &str, index: usize) -> io::Result<()> {
        let entry = &self.entries[index];
        let (registered, name) = entry.source_type;
        if registered != TypeId::of::<S>() {
            let what = format!("registered as {name}, not {}", std::any::type_name::<S>());
            return Err(error(ErrorKind::InvalidInput, op, entry.key.fd, what));
        }
        Ok(())
    }

    /// Removes a registration from the poller, then from the tables. The returned handler (if
    /// the callback is not running) closes the source when dropped.
    pub(crate) fn remove(&mut self, index: usize) -> (SelectorKey, Option<Box<dyn Handler<B>>>) {
        let entry = self.entries.remove(index);
        let fd = entry.key.fd;
        self.fds.remove(&fd);
        // A paused registration is out of the poller already.
        let in_poller = entry.failures.resume_at.is_none();
        // SAFETY: the source is still open: it is owned by `entry.handler`, or by `dispatch`
        // while its callback runs, and both drop it only after this.
        if let Some(Err(e)) = in_poller.then(|| unsafe { self.backend.delete(fd) }) {
            // As in Python, the registration is gone whatever the OS says.
            warn!("unregister fd {fd}: removing it from the poller failed: {e}");
        }
        debug!("unregister fd {fd}");
        (entry.key, entry.handler)
    }
}
