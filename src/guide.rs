//! From Python's `selectors` to selectloop, step by step (documentation only).
//!
//! # 1. The selector
//!
//! ```python
//! sel = selectors.DefaultSelector()
//! ```
//!
//! ```
//! let sel = selectloop::DefaultSelector::new()?;
//! # drop(sel);
//! # std::io::Result::Ok(())
//! ```
//!
//! `DefaultSelector` is epoll, kqueue or IOCP through the `polling` crate. `PollSelector`,
//! `SelectSelector` and (on Linux) `EpollSelector` have the same API.
//!
//! # 2. Registering: the selector owns the source
//!
//! ```python
//! sel.register(sock, selectors.EVENT_READ, accept)
//! ```
//!
//! ```
//! # use selectloop::{DefaultSelector, EVENT_READ};
//! # use std::net::TcpListener;
//! # let mut sel = DefaultSelector::new()?;
//! let sock = TcpListener::bind("127.0.0.1:0")?;
//! sock.set_nonblocking(true)?;
//! let key = sel.register(sock, EVENT_READ, |_sel, sock, mask| {
//!     // `_sel`: the selector; `sock`: &mut TcpListener, the source itself; `mask`: what is ready
//!     assert!(mask.is_readable());
//!     let (_conn, _addr) = sock.accept()?;
//!     Ok(())
//! })?;
//! assert_eq!(sel.get_key(&key)?.events(), EVENT_READ);
//! # std::io::Result::Ok(())
//! ```
//!
//! Python's `data` is whatever you like; here it is the callback, a closure that can capture
//! per-connection state. `register` takes the socket: from now on the selector owns it, so it
//! can always remove it from the OS poller before closing it. The returned [`SelectorKey`]
//! (also from `get_key`) has `fd()` and `events()`, and works as a lookup for `unregister`,
//! `modify` and the others.
//!
//! # 3. The loop
//!
//! ```python
//! while True:
//!     for key, mask in sel.select():
//!         key.data(key.fileobj, mask)
//! ```
//!
//! ```no_run
//! # let mut sel = selectloop::DefaultSelector::new()?;
//! loop {
//!     for (key, mask) in sel.select(None)? {
//!         sel.dispatch(&key, mask)?;
//!     }
//! }
//! # #[allow(unreachable_code)] std::io::Result::Ok(())
//! ```
//!
//! or `sel.run()?`, which also runs timers, `call_soon` and calls from other threads, and
//! returns on `sel.stop()` or when nothing is left to wait for.
//!
//! # 4. Closing a connection
//!
//! ```python
//! sel.unregister(conn)
//! conn.close()
//! ```
//!
//! ```
//! # use selectloop::{Events, Selector};
//! # use std::io::{self, Read};
//! # use std::net::TcpStream;
//! fn read(sel: &mut Selector, conn: &mut TcpStream, _mask: Events) -> io::Result<()> {
//!     let mut buf = [0u8; 1024];
//!     if conn.read(&mut buf)? == 0 {
//!         sel.unregister(conn)?; // and closed when this callback returns
//!     }
//!     Ok(())
//! }
//! # let _ = read;
//! ```
//!
//! To keep the socket instead, `detach::<TcpStream>(&key)` unregisters it and hands it back.
//!
//! # 5. Sending: the trap in Python's program
//!
//! ```python
//! conn.send(data)  # may send only part of data: the rest is silently dropped
//! ```
//!
//! On a non-blocking socket, `send` takes what fits in the socket's buffer and returns how much
//! that was; the tutorial ignores the count. The Rust spelling of the same mistake is
//! `conn.write_all(&data)?`: once the buffer is full, `write_all` stops with `WouldBlock`,
//! which the selector cannot tell from spurious readiness (the same OS error), so the rest of
//! the data is lost without an error. A client that reads slowly is enough to trigger it. (For a
//! level-triggered registration the selector logs the first `WouldBlock` of each callback at
//! `warn`, with this hint.)
//!
//! The cure is the tutorials' poll server: keep what the socket did not take in a queue,
//! register for WRITE while the queue is not empty, and stop reading while it is too long.
//! [`Connection`] is that, once:
//!
//! ```
//! # use selectloop::{Bytes, ConnEvent, Connection, Selector};
//! # use std::io;
//! # use std::net::TcpStream;
//! fn read(
//!     _sel: &mut Selector,
//!     conn: &mut Connection<TcpStream, Bytes>,
//!     event: ConnEvent<&[u8]>,
//! ) -> io::Result<()> {
//!     if let ConnEvent::Frame(data) = event {
//!         conn.send(data)?; // queued; written as the client reads
//!     }
//!     Ok(()) // end of file: what is queued is sent, then the connection closes
//! }
//! # let _ = read;
//! ```
//!
//! registered from `accept` with `Connection::new(conn, Bytes).register(sel, read)?`.
//!
//! # 6. Errors
//!
//! Python raises `KeyError` and `ValueError`; selectloop returns `io::Error` with kinds
//! `AlreadyExists`, `NotFound` and `InvalidInput`, naming the operation and the fd. An exception
//! in a Python callback ends the loop; here a callback's `Err` goes to an error handler. By
//! default ([`ErrorAction::default_for`]) a broken connection is logged and closes only its own
//! registration; a listener that runs out of file descriptors is paused and retried with
//! backoff (never closed, never spinning); `WouldBlock` is ignored. [`Selector::set_error_handler`]
//! can keep, pause, close or stop the loop instead.
//!
//! # 7. What Python's module leaves to you
//!
//! Partial sends, unbounded queues and message framing are handled by [`Connection`] and its
//! [`Codec`]s; timers, deferred and cross-thread calls, a thread pool and signals by the
//! selector itself. The repository's `docs/` pages (`services.md`, `connections.md`) have a
//! section on each.
//!
//! # 8. Watching the loop
//!
//! ```python
//! loop.set_debug(True); loop.slow_callback_duration = 0.1   # asyncio's debug mode
//! ```
//!
//! ```
//! # use selectloop::DefaultSelector;
//! # use std::time::Duration;
//! # let mut sel = DefaultSelector::new()?;
//! sel.set_slow_callback_duration(Some(Duration::from_millis(100)));
//! // logs: slow callback: callback for fd 7 (Connection<TcpStream, Bytes>, READ) took 152.301ms
//! sel.call_repeating(Duration::from_secs(10), |sel| {
//!     let m = sel.metrics();
//!     log::info!("{} registrations; timers late by {:?} at most", m.registrations, m.timer_lag.max);
//! });
//! # std::io::Result::Ok(())
//! ```
//!
//! A callback that blocks stalls every client of the loop: the slow-callback warning names it
//! (its fd, its source's type, the events), a timer or a call by its kind. [`Selector::metrics`]
//! counts what the loop did (iterations, callbacks by outcome, registrations, timers, calls,
//! executor jobs), and its `timer_lag` says how late timers fire: the loop's lag, which grows
//! when callbacks take too long between two waits. [`Selector::set_time_metrics`] adds the time
//! spent waiting against the time spent in callbacks. [`Selector::set_before_wait`] runs a hook
//! once per iteration, just before the loop sleeps (Redis's `beforeSleep`): the place to flush
//! what many callbacks batched. `examples/echo_server.rs --stats 1` prints a line of metrics
//! a second.
//!
//! [`SelectorKey`]: crate::SelectorKey
//! [`Selector::set_error_handler`]: crate::Selector::set_error_handler
//! [`ErrorAction::default_for`]: crate::ErrorAction::default_for
//! [`Connection`]: crate::Connection
//! [`Codec`]: crate::Codec
//! [`Selector::metrics`]: crate::Selector::metrics
//! [`Selector::set_time_metrics`]: crate::Selector::set_time_metrics
//! [`Selector::set_before_wait`]: crate::Selector::set_before_wait
