//! A non-blocking TCP connect: asyncio's `sock_connect`, libuv's `uv_tcp_connect`, mio's
//! `TcpStream::connect`, as a method of the selector with a callback.
//!
//! `connect(2)` on a non-blocking socket returns at once, with `EINPROGRESS` (Windows:
//! `WSAEWOULDBLOCK`), and the TCP handshake goes on in the kernel. When it is over the socket
//! becomes *writable*, whether it succeeded or not; `SO_ERROR` then says which (0, or the
//! error: refused, unreachable, timed out in the kernel after its SYN retries). So the socket is
//! registered for WRITE, and its callback reads `SO_ERROR` (`take_error`) and, if that is 0,
//! checks that the socket has a peer: a writable report with neither is spurious, and the
//! attempt goes on. A timer bounds the wait.
//!
//! Windows: a connect that fails is reported as writable too: by IOCP (`polling` reports
//! `AFD_POLL_CONNECT_FAIL` as both readable and writable) and by the select backend (which
//! passes its write set as the except set, as Python does). `WSAPoll` (the poll backend) did not
//! report failed connects before Windows 10 version 2004: there, a refused attempt ends at the
//! timeout instead.
//!
//! The socket is registered as a private wrapper that hands the stream over from its own
//! callback: the selector's `detach` refuses to run from the source's own callback (which holds
//! it), and a deferred `detach` would need the loop's services to run before the next `select`,
//! or a level-triggered WRITE report would come back again and again.

use crate::reactor::selector::Selector;
use crate::services::timer::TimerHandle;
use crate::sys::events::EVENT_WRITE;
use crate::sys::Backend;
use socket2::{Domain, Protocol, Socket, Type};
use std::cell::Cell;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::Duration;

/// The user's callback, shared by the readiness callback and the timer: whichever takes it
/// first reports the outcome, so it is called once.
type Callback<B> = Rc<Cell<Option<Box<dyn FnOnce(&mut Selector<B>, io::Result<TcpStream>)>>>>;

/// The registered source while the handshake is in progress. The stream is taken out, by the
/// registration's own callback, once the outcome is known.
struct Connecting {
    stream: Option<TcpStream>,
}

// The selector asks a source for its descriptor once, in `register`, while the stream is
// still here; after it is taken out, the selector only drops the wrapper.
#[cfg(unix)]
impl std::os::fd::AsFd for Connecting {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        let stream = self.stream.as_ref();
        stream.expect("asked only by `register`").as_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for Connecting {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        let stream = self.stream.as_ref();
        stream.expect("asked only by `register`").as_socket()
    }
}

impl<B: Backend> Selector<B> {
    /// Connects a TCP socket to `addr` without blocking, and calls `callback` with the
    /// connected stream or the error: Python's `loop.sock_connect`, `TcpStream::connect_timeout`
    /// as a callback.
    ///
    /// The attempt is a registration for WRITE (it counts in [`len`](Self::len) and keeps
    /// [`run`](Self::run) running) plus a timer for `timeout`. `callback` is called exactly
    /// once, from the loop, never from within `connect`:
    ///
    /// - `Ok(stream)`: connected; the stream is non-blocking and no longer registered, ready to
    ///   wrap in a [`Connection`](crate::Connection) or to register;
    /// - `Err(e)` with the kind of what happened — `ConnectionRefused` (nothing listens there),
    ///   `TimedOut` (no answer within `timeout`), `HostUnreachable` or `NetworkUnreachable`,
    ///   ... — and a message naming the address. The socket is closed.
    ///
    /// The outcome comes from the socket's readiness, the timeout from a timer, and an
    /// outcome the OS knows at once (some platforms connect a loopback socket at once) from a
    /// deferred call: so drive the loop with [`run`](Self::run) or
    /// [`run_once`](Self::run_once), which run timers and deferred calls, not with a bare
    /// `select()` loop. If the selector is closed or dropped first, `callback` is dropped
    /// uncalled. `addr` is an address, not a name: resolving a name blocks, so do it before
    /// (`ToSocketAddrs`) or on the executor ([`run_in_executor`](Self::run_in_executor)).
    ///
    /// On Windows, a [`PollSelector`](crate::PollSelector) (`WSAPoll`) does not report a failed
    /// connect before Windows 10 version 2004: there a refused attempt ends at the timeout,
    /// with `TimedOut`.
    ///
    /// # Errors
    ///
    /// When the attempt cannot start, and then `callback` is never called:
    /// `InvalidInput` for a zero `timeout` (as `TcpStream::connect_timeout`; `Duration::MAX`
    /// means no timeout); the OS error if the socket cannot be created or registered (out of
    /// descriptors, say), its message naming the address.
    ///
    /// # Examples
    ///
    /// A connection, and a refusal:
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    /// use std::io::{self, ErrorKind};
    /// use std::net::TcpListener;
    /// use std::{cell::RefCell, rc::Rc, time::Duration};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?; // nothing listens there
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// let outcomes = Rc::new(RefCell::new(Vec::new()));
    /// for to in [addr, closed] {
    ///     let outcomes = outcomes.clone();
    ///     sel.connect(to, Duration::from_secs(5), move |_sel, result: io::Result<_>| {
    ///         // Here a program would wrap the stream in a Connection, or reconnect later.
    ///         let peer = result.and_then(|stream| stream.peer_addr());
    ///         outcomes.borrow_mut().push(peer.map_err(|e| e.kind()));
    ///     })?;
    /// }
    /// sel.run()?; // returns once both attempts are over: nothing is left registered
    /// assert_eq!(*outcomes.borrow(), [Ok(addr), Err(ErrorKind::ConnectionRefused)]);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        timeout: Duration,
        callback: impl FnOnce(&mut Selector<B>, io::Result<TcpStream>) + 'static,
    ) -> io::Result<()> {
        if timeout.is_zero() {
            let msg = format!("connect to {addr}: a zero timeout (Duration::MAX means none)");
            return Err(io::Error::new(ErrorKind::InvalidInput, msg));
        }
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .and_then(|socket| socket.set_nonblocking(true).map(|()| socket))
            .map_err(|e| failed(addr, "socket", e))?;
        let started = socket.connect(&addr.into());
        let stream = TcpStream::from(socket);
        let callback: Callback<B> = Rc::new(Cell::new(Some(Box::new(callback))));
        match started {
            Err(e) if in_progress(&e) => {}
            started => {
                // Known at once: connected (loopback, on some platforms) or failed.
                let result = match started {
                    Ok(()) => Ok(stream),
                    Err(e) => Err(refused(addr, e)),
                };
                self.call_soon(move |sel| deliver(sel, &callback, result));
                return Ok(());
            }
        }

        let timer: Rc<Cell<Option<TimerHandle>>> = Rc::default();
        let on_ready = {
            let (callback, timer) = (callback.clone(), timer.clone());
            move |sel: &mut Selector<B>, conn: &mut Connecting, _mask| {
                let Some(stream) = conn.stream.as_ref() else {
                    return Ok(()); // handed over already; the wrapper is closing
                };
                let result = match outcome(stream) {
                    None => return Ok(()), // spurious: the handshake goes on
                    Some(result) => result.map_err(|e| refused(addr, e)),
                };
                if let Some(timer) = timer.take() {
                    timer.cancel();
                }
                sel.unregister(stream)?; // out of the poller now; the empty wrapper closes later
                let stream = conn.stream.take();
                deliver(
                    sel,
                    &callback,
                    result.and_then(|()| stream.ok_or_else(gone)),
                );
                Ok(())
            }
        };
        let key = self
            .register(
                Connecting {
                    stream: Some(stream),
                },
                EVENT_WRITE,
                on_ready,
            )
            .map_err(|e| failed(addr, "register", e))?;
        let expired = move |sel: &mut Selector<B>| {
            let _ = sel.unregister(&key); // closes the socket: the attempt is abandoned
            let msg = format!("connect to {addr}: timed out after {timeout:?}");
            deliver(
                sel,
                &callback,
                Err(io::Error::new(ErrorKind::TimedOut, msg)),
            );
        };
        timer.set(Some(self.call_later(timeout, expired)));
        Ok(())
    }
}

/// Calls the user's callback, if nobody has yet.
fn deliver<B: Backend>(
    sel: &mut Selector<B>,
    callback: &Callback<B>,
    result: io::Result<TcpStream>,
) {
    if let Some(callback) = callback.take() {
        callback(sel, result);
    }
}

/// The outcome of a connect reported writable: `None` if it is still in progress.
fn outcome(stream: &TcpStream) -> Option<io::Result<()>> {
    match stream.take_error() {
        Ok(Some(e)) | Err(e) => Some(Err(e)),
        Ok(None) => match stream.peer_addr() {
            Ok(_) => Some(Ok(())),
            // No error and no peer yet: not over (mio's check; seen on some platforms).
            Err(e) if e.kind() == ErrorKind::NotConnected => None,
            Err(e) => Some(Err(e)),
        },
    }
}

/// True for the error a non-blocking connect returns when it has started.
fn in_progress(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error()) {
        return true;
    }
    e.kind() == ErrorKind::WouldBlock // Windows' WSAEWOULDBLOCK (and EAGAIN)
}

/// `e`, the outcome of the attempt, with the address in its message.
fn refused(addr: SocketAddr, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("connect to {addr}: {e}"))
}

/// `e`, from a step before the attempt, with the step and the address in its message.
fn failed(addr: SocketAddr, op: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("connect to {addr}: {op}: {e}"))
}

fn gone() -> io::Error {
    io::Error::other("connect: the stream was handed over already")
}
