//! The echo server from Python's `selectors` documentation, with writes that lose nothing.
//! Runs wherever selectloop does; Ctrl-C or SIGTERM stops it cleanly and reports how many
//! connections it closed (on Windows: the console's Ctrl-C, or its closing).
//!
//! ```text
//! cargo run --example echo_server [ADDR]        # default 127.0.0.1:8088
//! cargo run --example echo_client [ADDR]        # then type lines
//! cargo run --example echo_server -- --stats 1  # and a line of loop metrics every second
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
//! `--stats SECS` prints a line of the loop's metrics ([`Selector::metrics`]) to stderr every
//! SECS seconds, for the interval just gone: loop iterations, callbacks run and how many
//! failed, registrations (the listener, the signal handlers and the connections), and the
//! share of time spent waiting for I/O against running callbacks
//! (`Selector::set_time_metrics`). The plain loop has no timers, so the loop itself asks
//! `select` to return in time for the next line.
//!
//! A bad command line (`echo_server 8088`: a port without its host) is refused with the usage
//! line and exit status 2; a run-time error is one line, `echo_server: ADDR: what went wrong`
//! (the address in use), and exit status 1 (`examples/common/cli.rs`, shared by every example).

#[path = "common/cli.rs"]
mod cli;
#[path = "common/shutdown.rs"]
mod shutdown;

use selectloop::{
    Bytes, ConnEvent, Connection, DefaultSelector, Events, Metrics, Selector, EVENT_READ,
};
use std::cell::Cell;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

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

const USAGE: &str = "usage: echo_server [ADDR] [--stats SECS]

  ADDR          where to listen (default 127.0.0.1:8088)
  --stats SECS  print a line of loop metrics to stderr every SECS seconds
Ctrl-C or SIGTERM stops it, reporting how many connections it closed.";

fn parse_args(parser: &mut lexopt::Parser) -> Result<(String, Option<Duration>), lexopt::Error> {
    use lexopt::prelude::*;
    let (mut addr, mut stats) = (None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("stats") => match cli::secs(parser, "--stats")? {
                Duration::ZERO => return Err("--stats 0: the interval must be above 0".into()),
                every => stats = Some(every),
            },
            Value(value) if addr.is_none() => addr = Some(cli::addr(value)?),
            Short('h') | Long("help") => cli::help(USAGE),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok((addr.unwrap_or_else(|| "127.0.0.1:8088".into()), stats))
}

fn main() -> ExitCode {
    let (addr, stats) = cli::parse(USAGE, parse_args);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli::status(serve(&addr, stats))
}

/// One line of what the loop did between two snapshots, `was` and `now`, `secs` apart.
fn stats_line(was: &Metrics, now: &Metrics, secs: f64) -> String {
    let failed = |m: &Metrics| {
        let c = &m.callbacks;
        c.kept + c.paused + c.closed + c.stopped + c.panicked
    };
    let ran = |m: &Metrics| m.callbacks.ok + m.callbacks.spurious + failed(m);
    let share = |d: Duration| 100.0 * d.as_secs_f64() / secs;
    format!(
        "stats: {secs:.2}s iterations={} callbacks={} failed={} registrations={} wait={:.1}% \
         running={:.1}%",
        now.iterations - was.iterations,
        ran(now) - ran(was),
        failed(now) - failed(was),
        now.registrations,
        share(now.wait_time.saturating_sub(was.wait_time)),
        share(now.callback_time.saturating_sub(was.callback_time)),
    )
}

/// The same loop, printing a line of metrics every `every`: `select` is asked to return in
/// time for the next line (the plain loop has no timers).
#[inline(never)] // kept out of `serve`, whose loop stays the plain one
fn loop_with_stats(sel: &mut Selector, running: &Cell<bool>, every: Duration) -> io::Result<()> {
    sel.set_time_metrics(true);
    let (mut last, mut was) = (Instant::now(), sel.metrics());
    while running.get() {
        let timeout = (last + every).saturating_duration_since(Instant::now());
        for (key, mask) in sel.select(Some(timeout))? {
            sel.dispatch(&key, mask)?;
        }
        let now = Instant::now();
        if now >= last + every {
            let metrics = sel.metrics();
            eprintln!("{}", stats_line(&was, &metrics, (now - last).as_secs_f64()));
            (last, was) = (now, metrics);
        }
    }
    Ok(())
}

fn serve(addr: &str, stats: Option<Duration>) -> io::Result<()> {
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

    match stats {
        None => {
            while running.get() {
                for (key, mask) in sel.select(None)? {
                    sel.dispatch(&key, mask)?;
                }
            }
        }
        Some(every) => loop_with_stats(&mut sel, &running, every)?,
    }
    // Stop accepting, let each connection send what it has queued, then close them all.
    shutdown::close::<TcpStream, Bytes>(sel, &[listener])
}
