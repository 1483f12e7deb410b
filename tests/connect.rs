//! `Selector::connect`, the non-blocking connect: success, refusal and timeout, on every
//! backend, and the contract around them (one call, never from within `connect`, nothing left
//! registered). Loopback only: the timeout is provoked with a listener whose accept backlog is
//! full, which drops further connection requests instead of answering them.

#[macro_use]
mod common;

use common::{run_until, selector, TIMEOUT};
use selectloop::{Backend, Bytes, ConnEvent, Connection, Selector};
use socket2::{Domain, Socket, Type};
use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

type Outcome = Rc<RefCell<Option<io::Result<TcpStream>>>>;

/// Starts a connect to `addr` whose outcome lands in the returned cell.
fn start<B: Backend>(
    sel: &mut Selector<B>,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<Outcome> {
    let outcome: Outcome = Rc::default();
    let cell = outcome.clone();
    sel.connect(addr, timeout, move |_sel, result| {
        let previous = cell.borrow_mut().replace(result);
        assert!(previous.is_none(), "the callback was called twice");
    })?;
    Ok(outcome)
}

/// Runs the loop until the attempt is over, and returns its outcome.
#[track_caller]
fn finish<B: Backend>(sel: &mut Selector<B>, outcome: &Outcome) -> io::Result<TcpStream> {
    run_until(sel, "the connect callback", || outcome.borrow().is_some())?;
    let result = outcome.borrow_mut().take().expect("an outcome");
    assert!(
        sel.is_empty(),
        "the attempt's registration is gone once it is over"
    );
    result
}

/// A connect that fails inside `connect(2)` itself, before any handshake: to the limited
/// broadcast address, which Linux's routing refuses at once with `ENETUNREACH` (no packet
/// leaves the machine). The error is delivered as it is, from the loop, not mistaken for a
/// handshake in progress and left to time out.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn fails_at_once<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let addr: SocketAddr = "255.255.255.255:9".parse().expect("an address");
    let started = Instant::now();
    let outcome = start(&mut sel, addr, TIMEOUT / 2)?;
    assert!(
        outcome.borrow().is_none(),
        "the callback ran from within connect"
    );
    let err = finish(&mut sel, &outcome).expect_err("unreachable");
    assert_eq!(err.kind(), ErrorKind::NetworkUnreachable, "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    assert!(
        started.elapsed() < TIMEOUT / 2,
        "the error waited for the timeout"
    );
    Ok(())
}

/// An address nothing listens on: a port just bound and released.
fn closed_port() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn connects<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let outcome = start(&mut sel, addr, TIMEOUT)?;
    assert!(
        outcome.borrow().is_none(),
        "the callback ran from within connect"
    );
    let mut stream = finish(&mut sel, &outcome)?;
    assert_eq!(stream.peer_addr()?, addr);

    // Non-blocking, and connected for real: a byte each way.
    let mut buf = [0u8; 1];
    let err = stream.read(&mut buf).expect_err("a read with nothing sent");
    assert_eq!(
        err.kind(),
        ErrorKind::WouldBlock,
        "the stream is non-blocking"
    );
    let (mut server, _) = listener.accept()?;
    server.set_read_timeout(Some(TIMEOUT))?;
    stream.write_all(b"x")?;
    server.read_exact(&mut buf)?;
    assert_eq!(&buf, b"x");
    server.write_all(b"y")?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.read_exact(&mut buf)?;
    assert_eq!(&buf, b"y");
    Ok(())
}

/// Once connected, the attempt's timer is cancelled: `run()` returns, though the timeout (an
/// hour) is far off. A watchdog thread stops the loop after [`TIMEOUT`] if it does not.
fn run_returns_once_connected<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let outcome = start(&mut sel, listener.local_addr()?, Duration::from_secs(3600))?;
    common::run_returns_promptly(&mut sel, "the timer is still pending")?;
    let stream = outcome.borrow_mut().take().expect("an outcome")?;
    assert_eq!(stream.peer_addr()?, listener.local_addr()?);
    Ok(())
}

fn refused<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let addr = closed_port()?;
    let outcome = start(&mut sel, addr, TIMEOUT)?;
    let err = finish(&mut sel, &outcome).expect_err("nothing listens there");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&addr.to_string()), "names the address: {msg}");
    Ok(())
}

/// A listener with the smallest backlog, filled with connections it never accepts, until one
/// more connection request goes unanswered. Returns the listener and the filling clients.
fn full_backlog() -> io::Result<(Socket, Vec<TcpStream>)> {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    listener.listen(0)?;
    let addr = listener.local_addr()?.as_socket().expect("an IP address");
    let mut clients = Vec::new();
    for _ in 0..64 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(client) => clients.push(client),
            Err(e) if e.kind() == ErrorKind::TimedOut => return Ok((listener, clients)),
            Err(e) => panic!(
                "filling the backlog of {addr}: {e} after {} connections: this platform \
                 refuses when the backlog is full, so the timeout cannot be provoked this way",
                clients.len()
            ),
        }
    }
    panic!("{addr}: 64 connections and the backlog (0) is still not full");
}

fn times_out<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (listener, _clients) = full_backlog()?;
    let addr = listener.local_addr()?.as_socket().expect("an IP address");
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let outcome = start(&mut sel, addr, timeout)?;
    let err = finish(&mut sel, &outcome).expect_err("the backlog is full: no answer");
    let took = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&addr.to_string()), "names the address: {msg}");
    assert!(took >= timeout, "timed out early, after {took:?}");
    Ok(())
}

fn zero_timeout_is_refused<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let called = Rc::new(Cell::new(false));
    let flag = called.clone();
    let addr = closed_port()?;
    let err = sel
        .connect(addr, Duration::ZERO, move |_, _| flag.set(true))
        .expect_err("a zero timeout");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    sel.run_once(Some(Duration::ZERO))?;
    assert!(!called.get(), "no callback after connect returned an error");
    assert!(sel.is_empty());
    Ok(())
}

/// The way a client uses it: connect, wrap in a `Connection`, a round trip through an echo
/// peer, close; 20 connections at once from this one thread.
fn many_connections_round_trip<B: Backend>() -> io::Result<()> {
    const N: usize = 20;
    let mut sel = selector::<B>()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> io::Result<()> {
        for _ in 0..N {
            let (mut conn, _) = listener.accept()?;
            conn.set_read_timeout(Some(TIMEOUT))?;
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf)?;
            conn.write_all(&buf)?;
        }
        Ok(())
    });
    let echoed = Rc::new(Cell::new(0));
    for _ in 0..N {
        let echoed = echoed.clone();
        sel.connect(addr, TIMEOUT, move |sel, result| {
            let stream = result.expect("connected");
            let key = Connection::new(stream, Bytes)
                .register(sel, move |_sel, conn, event| {
                    match event {
                        ConnEvent::Frame(data) => {
                            assert_eq!(data, b"hello", "a 5-byte echo arrives in one read");
                            echoed.set(echoed.get() + 1);
                            conn.close();
                        }
                        ConnEvent::PeerClosed | ConnEvent::Drained | ConnEvent::Closed(None) => {}
                        ConnEvent::Closed(Some(e)) => panic!("closed: {e}"),
                        _ => {}
                    }
                    Ok(())
                })
                .expect("register");
            Connection::<TcpStream, Bytes>::with(sel, &key, |conn| conn.send(b"hello"))
                .expect("the connection")
                .expect("send");
        })?;
    }
    run_until(&mut sel, "20 echoes", || echoed.get() == N)?;
    echo.join().expect("the echo thread")?;
    Ok(())
}

instantiate! {
    backends: [
        default_selector = selectloop::PollingBackend,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        epoll_selector = selectloop::EpollBackend,
        poll_selector = selectloop::PollBackend,
        select_selector = selectloop::SelectBackend,
    ],
    tests: [
        connects,
        run_returns_once_connected,
        refused,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        fails_at_once,
        times_out,
        zero_timeout_is_refused,
        many_connections_round_trip,
    ]
}
