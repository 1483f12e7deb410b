//! The echo server with idle timeouts: a connection that sends nothing for `--idle-timeout`
//! seconds is closed. A worked example of timers.
//!
//! ```text
//! cargo run --example idle_echo_server -- [ADDR] [--idle-timeout SECS]   # default 127.0.0.1:8088, 10 s
//! ```
//!
//! Each connection has one timer. Every read re-arms it: cancel the old one, schedule a new one
//! (both cheap: cancelling is O(1), scheduling O(log n)). When a timer fires, its connection has
//! been idle for the whole timeout and is unregistered, which closes it. The loop is `run()`,
//! because timers are the loop's service (a bare `select()` reports I/O only).

use selectloop::{DefaultSelector, Events, Selector, SelectorKey, TimerHandle, EVENT_READ};
use std::cell::RefCell;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

/// Schedules the timer that closes `conn` after `timeout` of silence.
fn arm(sel: &mut Selector, conn: SelectorKey, timeout: Duration) -> TimerHandle {
    sel.call_later(timeout, move |sel| {
        if sel.unregister(&conn).is_ok() {
            eprintln!("closed fd {} after {timeout:?} idle", conn.fd());
        }
    })
}

fn accept(sel: &mut Selector, sock: &mut TcpListener, timeout: Duration) -> io::Result<()> {
    let (conn, addr) = match sock.accept() {
        Ok(accepted) => accepted,
        Err(e) if e.kind() == ErrorKind::ConnectionAborted => return Ok(()),
        Err(e) => return Err(e),
    };
    eprintln!("accepted {addr}");
    conn.set_nonblocking(true)?;
    // The connection's current timer, shared by its read callback (which re-arms it) and
    // this function (which arms the first one, once the key is known).
    let idle: Rc<RefCell<Option<TimerHandle>>> = Rc::default();
    let timer = idle.clone();
    let key = sel.register(
        conn,
        EVENT_READ,
        move |sel, conn: &mut TcpStream, _: Events| {
            let mut buf = [0u8; 1024];
            match conn.read(&mut buf)? {
                0 => {
                    sel.unregister(conn)?;
                }
                n => conn.write_all(&buf[..n])?,
            }
            if let Some(old) = timer.borrow_mut().take() {
                old.cancel();
            }
            if let Ok(key) = sel.get_key(conn) {
                *timer.borrow_mut() = Some(arm(sel, key, timeout)); // still open: re-arm
            }
            Ok(())
        },
    )?;
    *idle.borrow_mut() = Some(arm(sel, key, timeout));
    Ok(())
}

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:8088".to_string();
    let mut timeout = Duration::from_secs(10);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--idle-timeout" => {
                let secs = args.next().and_then(|s| s.parse::<f64>().ok());
                match secs.and_then(|s| Duration::try_from_secs_f64(s).ok()) {
                    Some(t) => timeout = t,
                    None => {
                        eprintln!("usage: idle_echo_server [ADDR] [--idle-timeout SECS]");
                        std::process::exit(2);
                    }
                }
            }
            _ => addr = arg,
        }
    }
    let mut sel = DefaultSelector::new()?;
    let sock = TcpListener::bind(&addr)?;
    sock.set_nonblocking(true)?;
    eprintln!(
        "echo server on {}, closing connections idle for {timeout:?}",
        sock.local_addr()?
    );
    sel.register(sock, EVENT_READ, move |sel, sock, _| {
        accept(sel, sock, timeout)
    })?;
    sel.run()
}
