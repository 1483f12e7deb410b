//! The echo server with idle timeouts: a connection that sends nothing for `--idle-timeout`
//! seconds is closed. A worked example of timers. Runs wherever selectloop does; Ctrl-C stops
//! it cleanly (SIGINT on Unix, the console's Ctrl-C on Windows).
//!
//! ```text
//! cargo run --example idle_echo_server -- [ADDR] [--idle-timeout SECS]   # default 127.0.0.1:8088, 10 s
//! ```
//!
//! Each connection is a [`Connection`] (see `echo_server` for why: `write_all` on a non-blocking
//! socket loses data) with one timer. Every frame received re-arms it: cancel the old one,
//! schedule a new one (both cheap: cancelling is O(1), scheduling O(log n)). When a timer
//! fires, its connection has sent nothing for the whole timeout and is closed: gracefully
//! (what is queued is still written, then end of file), and at once if the client has not read
//! that after one more timeout. The loop is `run()`, because timers are the loop's service
//! (a bare `select()` reports I/O only).

use selectloop::{Bytes, ConnEvent, Connection, DefaultSelector, Selector, SelectorKey};
use selectloop::{TimerHandle, EVENT_READ};
use std::cell::Cell;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

type Conn = Connection<TcpStream, Bytes>;

/// Schedules the timer that closes connection `key` after `timeout` of silence.
fn arm(sel: &mut Selector, key: SelectorKey, timeout: Duration) -> TimerHandle {
    sel.call_later(timeout, move |sel| {
        // Close gracefully: what is queued is written first. `with` fails with NotFound if the
        // connection is gone already: nothing to do.
        if Conn::with(sel, &key, |conn| conn.close()).is_ok() {
            log::info!("closing fd {} after {timeout:?} idle", key.fd());
            // A client that has not read that after one more timeout is cut off: `unregister`
            // closes at once, dropping what is still queued.
            sel.call_later(timeout, move |sel| {
                if sel.unregister(&key).is_ok() {
                    log::info!("fd {} cut off: its client does not read", key.fd());
                }
            });
        }
    })
}

fn accept(sel: &mut Selector, sock: &mut TcpListener, timeout: Duration) -> io::Result<()> {
    let (conn, addr) = sock.accept()?;
    log::info!("accepted {addr}");
    conn.set_nonblocking(true)?;
    // The connection's current timer, shared by its callback (which re-arms it) and this
    // function (which arms the first one, once the key is known).
    let idle: Rc<Cell<Option<TimerHandle>>> = Rc::default();
    let timer = idle.clone();
    let key = Connection::new(conn, Bytes).register(sel, move |sel, conn, event| {
        match event {
            ConnEvent::Frame(data) => {
                conn.send(&data)?; // queued: written as the client reads, never dropped
                if let Some(old) = timer.take() {
                    old.cancel(); // not idle: start counting again
                }
                let key = sel.get_key(&*conn)?;
                timer.set(Some(arm(sel, key, timeout)));
            }
            // End of file: what is queued is flushed, then it closes (the timer still runs,
            // in case the client never reads it).
            ConnEvent::Drained | ConnEvent::PeerClosed => {}
            ConnEvent::Closed(_) => {
                if let Some(old) = timer.take() {
                    old.cancel();
                }
                log::info!("{addr} closed");
            }
        }
        Ok(())
    })?;
    idle.set(Some(arm(sel, key, timeout)));
    Ok(())
}

fn parse_args() -> Result<(String, Duration), lexopt::Error> {
    use lexopt::prelude::*;
    let (mut addr, mut timeout) = ("127.0.0.1:8088".to_string(), Duration::from_secs(10));
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("idle-timeout") => {
                let secs: f64 = parser.value()?.parse()?;
                timeout = Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())?;
            }
            Short('h') | Long("help") => {
                println!("usage: idle_echo_server [ADDR] [--idle-timeout SECS]");
                std::process::exit(0);
            }
            Value(value) => addr = value.string()?,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok((addr, timeout))
}

fn main() -> io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let (addr, timeout) = parse_args().unwrap_or_else(|e| {
        eprintln!("idle_echo_server: {e}; try --help");
        std::process::exit(2);
    });
    let mut sel = DefaultSelector::new()?;
    let sock = TcpListener::bind(&addr)?;
    sock.set_nonblocking(true)?;
    let addr = sock.local_addr()?; // the real port, if ADDR asked for port 0
    eprintln!("echo server on {addr}, closing connections idle for {timeout:?}");
    sel.register(sock, EVENT_READ, move |sel, sock, _| {
        accept(sel, sock, timeout)
    })?;
    sel.add_signal_handler(selectloop::signals::SIGINT, |sel, _| sel.stop())?;
    let others = sel.len(); // the listener (and the signal handler): not connections

    sel.run()?; // until Ctrl-C
    let connections = sel.len() - others;
    sel.close()?; // closes the listener and every connection
    eprintln!("interrupted: closed {connections} connection(s)");
    Ok(())
}
