//! One loop per core, shared by the example servers that take `--threads N` (`kv_server`,
//! `http_server`): N selectors, each on its own thread, each serving the connections it owns
//! from start to end — no connection moves between threads, and a loop's state needs no lock.
//!
//! How connections reach the loops:
//! - **Linux**: every loop binds its own listener to the same address with `SO_REUSEPORT`
//!   (through `socket2`), and the kernel spreads incoming connections over them. No thread
//!   hands anything to another; a busy loop only gets its share.
//! - **Elsewhere** (and on Linux with `--threads 1`): one listener, on the first loop, which
//!   accepts and hands each connection, in turn, to the next loop with
//!   [`Handle::call_soon_threadsafe`](selectloop::Handle::call_soon_threadsafe). macOS and the
//!   BSDs have an `SO_REUSEPORT` that does not balance (FreeBSD's balancing one is
//!   `SO_REUSEPORT_LB`), and Windows has none.
//!
//! Ctrl-C (SIGINT) or SIGTERM stops every loop; each stops accepting, lets its connections send
//! what they have queued and closes them (`shutdown.rs`, which the example includes too), and
//! the total is printed, as `echo_server` does.

use crate::shutdown;
use selectloop::EVENT_READ;
use selectloop::{ByteStream, Codec, DefaultSelector, Events, Handle, Selector, SelectorKey};
use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// What a loop does with each connection it owns: usually wraps it in a `Connection` and
/// registers it. Called on that loop's thread, with the stream already non-blocking.
pub type Accepted = Box<dyn FnMut(&mut DefaultSelector, TcpStream) -> io::Result<()>>;

thread_local! {
    /// This thread's `Accepted`, for connections handed over from the acceptor loop.
    static ACCEPTED: RefCell<Option<Accepted>> = RefCell::new(None);
}

/// Serves `addr` with `threads` loops until Ctrl-C or SIGTERM. `factory` runs once on each loop's
/// thread and returns what that loop does with a connection (so per-loop state can be `Rc`).
/// `reuse_port: false` makes Linux use the acceptor too (the examples' `--no-reuseport`, to
/// compare the two); elsewhere it is always used.
///
/// The first line on stderr names the address bound (the real port if `addr` asked for 0).
/// The connections are `Connection<S, C>`s: at the end, each is closed once what it has queued
/// is written.
pub fn serve<S: ByteStream, C: Codec + 'static, F>(
    name: &str,
    addr: SocketAddr,
    threads: usize,
    reuse_port: bool,
    factory: F,
) -> io::Result<()>
where
    F: Fn() -> Accepted + Send + Sync + 'static,
{
    if threads == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--threads: at least one loop is needed",
        ));
    }
    let reuse_port = reuse_port && cfg!(target_os = "linux") && threads > 1;
    // The error names the address, as the examples report errors (`PROG: ADDR: error`).
    let first =
        bind(addr, reuse_port).map_err(|e| io::Error::new(e.kind(), format!("{addr}: {e}")))?;
    let addr = first.local_addr()?; // the real port, for the other listeners too

    let running = Arc::new(AtomicBool::new(true));
    let factory = Arc::new(factory);
    let mut workers = Vec::new();
    let mut handles = Vec::new();
    for _ in 1..threads {
        let listener = if reuse_port {
            Some(bind(addr, true)?)
        } else {
            None
        };
        let (running, factory) = (running.clone(), factory.clone());
        let (tx, rx) = crossbeam_channel::bounded(1);
        workers.push(thread::spawn(move || -> io::Result<usize> {
            let mut sel = DefaultSelector::new()?;
            tx.send(sel.handle())
                .expect("the main thread waits for the handle");
            let mut listeners = Vec::new();
            if let Some(listener) = listener {
                listeners.push(register_listener(&mut sel, listener, factory())?);
            } else {
                ACCEPTED.with(|accepted| *accepted.borrow_mut() = Some(factory()));
            }
            run::<S, C>(&mut sel, &running, &listeners)
        }));
        let handle = rx
            .recv()
            .map_err(|_| io::Error::other("a loop failed to start"))??;
        handles.push(handle);
    }

    let mut sel = DefaultSelector::new()?;
    let mut accepted = factory();
    if threads > 1 && !reuse_port {
        // The acceptor: its own share, then each of the others in turn.
        let mut next = 0;
        let others = handles.clone();
        accepted = Box::new(move |sel, conn| {
            next = (next + 1) % (others.len() + 1);
            match next {
                0 => accepted(sel, conn),
                i => hand_over(&others[i - 1], conn),
            }
        });
    }
    let listener = register_listener(&mut sel, first, accepted)?;
    for signal in [selectloop::signals::SIGINT, selectloop::signals::SIGTERM] {
        let (running, handles) = (running.clone(), handles.clone());
        sel.add_signal_handler(signal, move |_, _| {
            running.store(false, Ordering::SeqCst);
            for handle in &handles {
                let _ = handle.call_soon_threadsafe(|_| {}); // wakes it to see `running`
            }
        })?;
    }
    // The first line says the server is ready, and so that it stops on a signal: a supervisor
    // (or a test) may send one as soon as it reads it, while other loops already serve.
    let how = if threads == 1 {
        "one loop"
    } else if reuse_port {
        "one loop per thread, each with its own SO_REUSEPORT listener"
    } else {
        "one loop per thread, the first accepting for all"
    };
    eprintln!("{name} on {addr} ({threads} thread(s): {how}); Ctrl-C or SIGTERM stops it");
    let mut closed = run::<S, C>(&mut sel, &running, &[listener])?;
    for worker in workers {
        closed += worker.join().expect("a loop panicked")?;
    }
    eprintln!("interrupted: closed {closed} connection(s)");
    Ok(())
}

/// A listener on `addr`, non-blocking; with `reuse_port`, one of several on the same address.
fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?; // as std's `TcpListener::bind` does on Unix
    #[cfg(target_os = "linux")]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = reuse_port;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Registers `listener`: each connection accepted goes to `accepted`, on this loop.
fn register_listener(
    sel: &mut DefaultSelector,
    listener: TcpListener,
    mut accepted: Accepted,
) -> io::Result<SelectorKey> {
    sel.register(
        listener,
        EVENT_READ,
        move |sel: &mut Selector, sock: &mut TcpListener, _: Events| {
            let (conn, _) = sock.accept()?; // its errors: the selector's default policy
            conn.set_nonblocking(true)?;
            // Replies go out as they are written, not held back by Nagle's algorithm waiting
            // for the peer's acknowledgement (Redis and nginx do the same).
            conn.set_nodelay(true)?;
            accepted(sel, conn)
        },
    )
}

/// Sends `conn` to the loop of `handle`, whose thread's `ACCEPTED` takes it.
fn hand_over(handle: &Handle, conn: TcpStream) -> io::Result<()> {
    handle.call_soon_threadsafe(move |sel| {
        ACCEPTED.with(|accepted| {
            if let Some(accepted) = accepted.borrow_mut().as_mut() {
                if let Err(e) = accepted(sel, conn) {
                    log::warn!("a connection handed over could not be set up: {e}");
                }
            }
        })
    })
}

/// Runs `sel` until `running` turns false, then stops accepting on `listeners` and closes the
/// connections once their queues are written (`shutdown::drain`); returns how many there were.
fn run<S: ByteStream, C: Codec>(
    sel: &mut DefaultSelector,
    running: &AtomicBool,
    listeners: &[SelectorKey],
) -> io::Result<usize> {
    while running.load(Ordering::SeqCst) {
        sel.run_once(None)?;
    }
    shutdown::drain::<S, C>(sel, listeners)
}
