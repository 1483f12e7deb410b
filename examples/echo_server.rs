//! The echo server from Python's `selectors` documentation, line for line.
//!
//! ```text
//! cargo run --example echo_server [ADDR]        # default 127.0.0.1:8088
//! cargo run --example echo_client [ADDR]        # then type lines
//! ```
//!
//! Ctrl-C (SIGINT) stops it cleanly on Unix: the loop ends, and dropping the selector closes
//! every connection. `idle_echo_server` adds idle timeouts on top of this program.
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

use selectloop::{DefaultSelector, Events, Selector, EVENT_READ};
use std::cell::Cell;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;

fn accept(sel: &mut Selector, sock: &mut TcpListener, _mask: Events) -> io::Result<()> {
    let (conn, addr) = match sock.accept() {
        Ok(accepted) => accepted,
        // Transient: the client gave up, or we are out of file descriptors. Keep listening.
        Err(e) if is_transient(&e) => {
            eprintln!("accept failed, still listening: {e}");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    eprintln!("accepted {addr}");
    conn.set_nonblocking(true)?;
    sel.register(conn, EVENT_READ, read)?;
    Ok(())
}

fn read(sel: &mut Selector, conn: &mut TcpStream, _mask: Events) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    match conn.read(&mut buf)? {
        0 => {
            sel.unregister(conn)?; // closed as soon as this callback returns
        }
        n => conn.write_all(&buf[..n])?,
    }
    Ok(())
}

/// Accept errors that say nothing about the listener itself. (`WouldBlock` needs no case:
/// the selector treats it as spurious readiness.)
fn is_transient(e: &io::Error) -> bool {
    const EMFILE: i32 = 24; // per-process fd limit (same number on Linux, macOS and the BSDs)
    const ENFILE: i32 = 23; // system-wide fd limit
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) || (cfg!(unix) && matches!(e.raw_os_error(), Some(EMFILE | ENFILE)))
}

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8088".into());
    let mut sel = DefaultSelector::new()?;
    let sock = TcpListener::bind(&addr)?;
    sock.set_nonblocking(true)?;
    eprintln!(
        "echo server on {}; try: cargo run --example echo_client {addr}",
        sock.local_addr()?
    );
    sel.register(sock, EVENT_READ, accept)?;

    // Python's KeyboardInterrupt: the handler is a registration like the others, so the
    // select/dispatch loop below runs it on this thread.
    let running = Rc::new(Cell::new(true));
    #[cfg(unix)]
    {
        let running = running.clone();
        sel.add_signal_handler(selectloop::signals::SIGINT, move |_, _| running.set(false))?;
    }
    let others = sel.len(); // the listener (and the signal handler): not connections

    while running.get() {
        for (key, mask) in sel.select(None)? {
            sel.dispatch(&key, mask)?;
        }
    }
    let connections = sel.len() - others;
    sel.close()?; // closes the listener and every connection
    eprintln!("interrupted: closed {connections} connection(s)");
    Ok(())
}
