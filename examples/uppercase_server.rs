//! The tutorials' upper-casing server, on a buffered line-based connection. Runs wherever
//! selectloop does; Ctrl-C stops it cleanly (SIGINT on Unix, the console's Ctrl-C on Windows).
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
use std::io;
use std::net::TcpListener;

const MAX_LINE: usize = 4096;

fn accept(sel: &mut Selector, sock: &mut TcpListener, _mask: Events) -> io::Result<()> {
    let (conn, addr) = sock.accept()?;
    conn.set_nonblocking(true)?;
    log::info!("accepted {addr}");
    let conn = Connection::new(conn, LineCodec::new(MAX_LINE));
    conn.register(sel, move |_sel, conn, event| {
        match event {
            ConnEvent::Frame(line) => conn.send_frame(&line.to_ascii_uppercase())?,
            ConnEvent::Drained => {}
            ConnEvent::PeerClosed => {} // replies still queued are flushed, then it closes
            ConnEvent::Closed(None) => log::info!("{addr} closed"),
            ConnEvent::Closed(Some(e)) => log::info!("{addr} closed: {e}"),
        }
        Ok(())
    })?;
    Ok(())
}

fn main() -> io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let addr = match std::env::args().nth(1) {
        Some(arg) if arg == "-h" || arg == "--help" => {
            println!("usage: uppercase_server [ADDR]   (default 127.0.0.1:8089)");
            return Ok(());
        }
        arg => arg.unwrap_or("127.0.0.1:8089".into()),
    };
    let mut sel = DefaultSelector::new()?;
    let sock = TcpListener::bind(&addr)?;
    sock.set_nonblocking(true)?;
    let addr = sock.local_addr()?; // the real port, if ADDR asked for port 0
    eprintln!("uppercase server on {addr}; try: cargo run --example echo_client {addr}");
    sel.register(sock, EVENT_READ, accept)?;
    sel.add_signal_handler(selectloop::signals::SIGINT, |sel, _| sel.stop())?;
    let others = sel.len(); // the listener (and the signal handler): not connections

    sel.run()?; // until Ctrl-C
    let connections = sel.len() - others;
    sel.close()?; // closes the listener and every connection
    eprintln!("interrupted: closed {connections} connection(s)");
    Ok(())
}
