//! Python's `selectors` module as a callback reactor for Rust.
//!
//! Python programmers learn event-driven servers from one small program: register a listening
//! socket with a callback, let that callback register each accepted connection with another,
//! and loop over `select()` calling each ready key's callback. selectloop is that program's
//! model, with nothing hidden: a [`DefaultSelector`] over the OS poller (epoll, kqueue or IOCP,
//! through the `polling` crate), registrations that own their source and a boxed `FnMut`
//! callback, and a `select()` that returns `(key, mask)` pairs to [`dispatch`](Selector::dispatch).
//!
//! ```no_run
//! use selectloop::{Bytes, ConnEvent, Connection, DefaultSelector, Events, Selector, EVENT_READ};
//! use std::io;
//! use std::net::{TcpListener, TcpStream};
//!
//! fn accept(sel: &mut Selector, sock: &mut TcpListener, _mask: Events) -> io::Result<()> {
//!     let (conn, _addr) = sock.accept()?;
//!     conn.set_nonblocking(true)?;
//!     Connection::new(conn, Bytes).register(sel, read)?;
//!     Ok(())
//! }
//!
//! type Conn = Connection<TcpStream, Bytes>;
//!
//! fn read(_sel: &mut Selector, conn: &mut Conn, event: ConnEvent<&[u8]>) -> io::Result<()> {
//!     if let ConnEvent::Frame(data) = event {
//!         conn.send(data)?; // queued, and written as fast as the client reads: never lost
//!     }
//!     Ok(()) // at end of file the connection sends what is queued, then closes itself
//! }
//!
//! fn main() -> io::Result<()> {
//!     let mut sel = DefaultSelector::new()?;
//!     let sock = TcpListener::bind("127.0.0.1:8088")?;
//!     sock.set_nonblocking(true)?;
//!     sel.register(sock, EVENT_READ, accept)?;
//!     loop {
//!         for (key, mask) in sel.select(None)? { // Python: for key, mask in sel.select():
//!             sel.dispatch(&key, mask)?;          // Python:     key.data(key.fileobj, mask)
//!         }
//!     }
//! }
//! ```
//!
//! `examples/echo_server.rs` is this program with the address on its command line, a logger and
//! Ctrl-C: `cargo run --example echo_server`, then `cargo run --example echo_client` to talk to
//! it.
//!
//! Python's `read` would call `conn.send(data)` — and on a non-blocking socket, `send` may take
//! only part of `data` (`write_all` stops half-way with `WouldBlock`), silently losing the rest
//! when the client reads slowly. A [`Connection`] queues what the socket does not take and
//! writes it as the socket drains, stops reading from a client that does not read its replies,
//! can cut the stream into messages with a [`Codec`], and ends clients that stall or hoard
//! memory ([`Timeouts`], the caps in [`Limits`]); a connection that waits holds no buffer.
//! On the client side, [`Selector::connect`] connects without blocking, with a timeout, and
//! hands the connected stream (or the error) to a callback, ready for a `Connection`.
//!
//! [`Selector::run`] is that loop in one call, and runs the loop's services besides: timers
//! ([`call_later`](Selector::call_later)), deferred calls ([`call_soon`](Selector::call_soon)),
//! calls from other threads ([`Handle`]), blocking work on a thread pool
//! ([`run_in_executor`](Selector::run_in_executor)) and signals
//! ([`add_signal_handler`](Selector::add_signal_handler): Unix signals, and console control
//! events such as Ctrl-C on Windows; a signal handler is a registration, so the loop above
//! runs it too). Where selectloop differs from Python, it is because Rust can do better: the
//! selector owns each source, so a descriptor is always removed from the OS poller before it
//! is closed; callbacks receive `&mut Selector` and their own source; errors are
//! `std::io::Error` with the kinds Python's exceptions map to (`KeyError` →
//! `AlreadyExists`/`NotFound`, `ValueError` → `InvalidInput`).
//!
//! Logging goes through the `log` facade: registrations at `debug`, callback errors at `warn`.

#![deny(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unsafe_op_in_unsafe_fn
)]
#![doc(test(attr(deny(warnings))))]

pub mod guide;
mod reactor;
mod services;
mod streams;
mod sys;

// The reactor: selectors, keys, events, and the error policy.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use reactor::selector::EpollSelector;
pub use reactor::{
    batch::{IntoIter, Ready},
    failure::ErrorAction,
    key::SelectorKey,
    metrics::{Metrics, Outcomes},
    register::SelectorMap,
    selector::{DefaultSelector, PollSelector, SelectSelector, Selector},
};

// The loop's services: timers, calls from other threads, the executor, signals.
pub use reactor::scheduling::{Handle, WorkHandle};
pub use services::{observe::Lag, signal::signals, timer::TimerHandle};

// Streams: buffered connections and their codecs.
pub use streams::{
    codec::{Bytes, Codec, LengthPrefixed, LineCodec},
    connection::{ByteStream, ConnEvent, ConnKey, Connection},
    limits::{Limits, Timeouts},
};

// The OS side: readiness events, backends, and what a source or a file object is.
pub use sys::events::{Events, Mode, EVENT_READ, EVENT_WRITE};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use sys::EpollBackend;
pub use sys::{Backend, FileObj, PollBackend, PollingBackend, SelectBackend, Source};

/// The README's Rust examples, compiled as doc tests so they cannot drift from the API; the
/// same for the pages under docs/.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/observability.md")]
struct ObservabilityDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/services.md")]
struct ServicesDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/connections.md")]
struct ConnectionsDoctests;
