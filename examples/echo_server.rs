//! The echo server from Python's `selectors` documentation, with writes that lose nothing.
//! Runs wherever selectloop does; Ctrl-C or SIGTERM stops it cleanly and reports how many
//! connections it closed (on Windows: the console's Ctrl-C, or its closing).
//!
//! ```text
//! cargo run --example echo_server [ADDR]        # default 127.0.0.1:8088
//! cargo run --example echo_client [ADDR]        # then type lines
//! ```
//!
//! Python's version, for comparison:
//!
//! ```python
//! def accept(sock, mask):
//!     conn, addr = sock.accept()
//!     conn.setblocking(False)
//!     sel.register(conn, selectors.EVENT_READ, read)
//!
//! def read(conn, mask):
//!     data = conn.recv(1024)
//!     if data:
//!         conn.send(data)
//!     else:
//!         sel.unregister(conn)
//!         conn.close()
//!
//! sel = selectors.DefaultSelector()
//! sock = socket.socket(); sock.bind(('localhost', 8088)); sock.listen(); sock.setblocking(False)
//! sel.register(sock, selectors.EVENT_READ, accept)
//! while True:
//!     for key, mask in sel.select():
//!         key.data(key.fileobj, mask)
//! ```
//!
//! The trap in that program: on a non-blocking socket, `conn.send(data)` may take only part of
//! `data` (it returns how much), and the rest is dropped. Rust's `conn.write_all(&data)` fails
//! the same way: when the client reads slower than it sends, the socket's buffer fills,
//! `write_all` stops half-way with `WouldBlock`, which the selector takes for spurious readiness,
//! and the rest of `data` is gone (16 MiB sent to a slow reader, about 6 MiB echoed back). So
//! here each connection is a [`Connection`] with the [`Bytes`] codec (no framing): `send` queues
//! what the socket cannot take yet and writes it as the client reads, never dropping it; above
//! 1 MiB queued it stops reading from that client, so one that never reads costs bounded
//! memory; at end of file it flushes, then closes itself.
//!
//! `accept` stays Python's, `sock.accept()?`: its errors go to the selector's error handler,
//! whose default policy keeps a server alive — out of file descriptors, the listener is paused
//! and retried with backoff (logged once, no spinning), and clients still waiting after a
//! second are refused; a connection that died before it was accepted is skipped. Ctrl-C is
//! Python's `KeyboardInterrupt`: the loop ends; SIGTERM does the same. Then the server stops
//! accepting, lets each connection send what it has queued (at most 5 s), and closes them
//! (`examples/common/shutdown.rs`, shared by the servers).
//!
//! A bad command line (`echo_server 8088`: a port without its host) is refused with the usage
//! line and exit status 2; a run-time error is one line, `echo_server: ADDR: what went wrong`
//! (the address in use), and exit status 1 (`examples/common/cli.rs`, shared by every example).

#[path = "common/cli.rs"]
mod cli;
#[path = "common/shutdown.rs"]
mod shutdown;

use selectloop::{Bytes, ConnEvent, Connection, DefaultSelector, Events, Selector, EVENT_READ};
use std::cell::Cell;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::rc::Rc;

fn accept(sel: &mut Selector, sock: &mut TcpListener, _mask: Events) -> io::Result<()> {
    let (conn, addr) = sock.accept()?;
    log::info!("accepted {addr}");
    conn.set_nonblocking(true)?;
    Connection::new(conn, Bytes).register(sel, read)?;
    Ok(())
}

fn read(
    _sel: &mut Selector,
    conn: &mut Connection<TcpStream, Bytes>,
    event: ConnEvent<&[u8]>,
) -> io::Result<()> {
    if let ConnEvent::Frame(data) = event {
        conn.send(data)?; // queued: written as the client reads, never dropped
    }
    Ok(()) // after end of file (`PeerClosed`), the connection flushes, then closes itself
}

const USAGE: &str = "usage: echo_server [ADDR]

  ADDR  where to listen (default 127.0.0.1:8088)
Ctrl-C or SIGTERM stops it, reporting how many connections it closed.";

fn main() -> ExitCode {
    let addr = cli::parse(USAGE, cli::addr_only(USAGE));
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli::status(serve(&addr))
}

fn serve(addr: &str) -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let sock = TcpListener::bind(addr).map_err(cli::about(addr))?;
    sock.set_nonblocking(true)?;
    let addr = sock.local_addr()?; // the real port, if ADDR asked for port 0
    let listener = sel.register(sock, EVENT_READ, accept)?;

    // Python's KeyboardInterrupt: the handler is a registration like the others, so the
    // select/dispatch loop below runs it on this thread. SIGTERM (what `kill` and service
    // managers send) stops it the same way.
    let running = Rc::new(Cell::new(true));
    for signal in [selectloop::signals::SIGINT, selectloop::signals::SIGTERM] {
        let running = running.clone();
        sel.add_signal_handler(signal, move |_, _| running.set(false))?;
    }
    eprintln!("echo server on {addr}; try: cargo run --example echo_client {addr}");

    while running.get() {
        for (key, mask) in sel.select(None)? {
            sel.dispatch(&key, mask)?;
        }
    }
    // Stop accepting, let each connection send what it has queued, then close them all.
    shutdown::close::<TcpStream, Bytes>(sel, &[listener])
}
