//! The tutorials' upper-casing server, on a buffered line-based connection.
//!
//! ```text
//! cargo run --example uppercase_server [ADDR]   # default 127.0.0.1:8089
//! cargo run --example echo_client 127.0.0.1:8089  # type lines, get them back in capitals
//! ```
//!
//! Compared with the echo server, the connection does the work the seeds' servers did by hand:
//! it cuts the stream into lines whatever pieces they arrive in (no sleeping between sends, no
//! in-band end marker), refuses lines over 4 KiB, queues replies the socket cannot take yet, and
//! stops reading from a client that sends without reading the replies.

use selectloop::{ConnEvent, Connection, DefaultSelector, Events, LineCodec, Selector, EVENT_READ};
use std::io::{self, ErrorKind};
use std::net::TcpListener;

const MAX_LINE: usize = 4096;

fn accept(sel: &mut Selector, sock: &mut TcpListener, _mask: Events) -> io::Result<()> {
    let (conn, addr) = match sock.accept() {
        Ok(accepted) => accepted,
        Err(e) if e.kind() == ErrorKind::ConnectionAborted => return Ok(()),
        Err(e) => return Err(e),
    };
    conn.set_nonblocking(true)?;
    eprintln!("accepted {addr}");
    let conn = Connection::new(conn, LineCodec::new(MAX_LINE));
    conn.register(sel, move |_sel, conn, event| {
        match event {
            ConnEvent::Frame(line) => conn.send_frame(&line.to_ascii_uppercase())?,
            ConnEvent::PeerClosed => {} // replies still queued are flushed, then it closes
            ConnEvent::Closed(None) => eprintln!("{addr} closed"),
            ConnEvent::Closed(Some(e)) => eprintln!("{addr} closed: {e}"),
        }
        Ok(())
    })?;
    Ok(())
}

fn main() -> io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8089".into());
    let mut sel = DefaultSelector::new()?;
    let sock = TcpListener::bind(&addr)?;
    sock.set_nonblocking(true)?;
    let addr = sock.local_addr()?; // the real port, if ADDR asked for port 0
    eprintln!("uppercase server on {addr}; try: cargo run --example echo_client {addr}");
    sel.register(sock, EVENT_READ, accept)?;
    sel.run()
}
