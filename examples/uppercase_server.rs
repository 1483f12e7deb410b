//! The tutorials' upper-casing server, on a buffered line-based connection. Runs wherever
//! selectloop does; Ctrl-C or SIGTERM stops it cleanly and reports how many connections it
//! closed (on Windows: the console's Ctrl-C, or its closing).
//!
//! ```text
//! cargo run --example uppercase_server -- [ADDR] [--idle-timeout SECS] [--frame-timeout SECS]
//!                                         [--send-timeout SECS]   # default 127.0.0.1:8089
//! cargo run --example echo_client 127.0.0.1:8089  # type lines, get them back in capitals
//! ```
//!
//! Compared with the echo server, the connection does the work the seeds' servers did by hand:
//! it cuts the stream into lines whatever pieces they arrive in (no sleeping between sends, no
//! in-band end marker), refuses lines over 4 KiB, delivers a last line that has no newline,
//! queues replies the socket cannot take yet, and stops reading from a client that sends
//! without reading the replies. The timeouts (each off unless given) close a client that is
//! silent (`--idle-timeout`), takes too long over a line (`--frame-timeout`: slowloris), or
//! does not read its replies (`--send-timeout`).

#[path = "common/cli.rs"]
mod cli;
#[path = "common/shutdown.rs"]
mod shutdown;

use selectloop::{ConnEvent, Connection, DefaultSelector, Limits, LineCodec, Selector, Timeouts};
use selectloop::{Events, EVENT_READ};
use std::io;
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

const MAX_LINE: usize = 4096;

/// Reading pauses at 1 MiB of replies queued (the default high-water mark), and one read of
/// requests (64 KiB) cannot ask for more than 64 KiB of replies, so a client that merely reads
/// slowly never comes near these caps: they are a backstop.
const LIMITS: Limits = Limits {
    high_water: 1 << 20,
    low_water: 256 << 10,
    read_chunk: 64 << 10,
    hard_cap: 4 << 20,
    soft_cap: 2 << 20,
    soft_cap_for: Duration::from_secs(30),
};

fn accept(sel: &mut Selector, sock: &mut TcpListener, timeouts: Timeouts) -> io::Result<()> {
    let (conn, addr) = sock.accept()?;
    conn.set_nonblocking(true)?;
    log::info!("accepted {addr}");
    let conn = Connection::new(conn, LineCodec::new(MAX_LINE))
        .with_limits(LIMITS)?
        .with_timeouts(timeouts);
    conn.register(sel, move |_sel, conn, event| {
        match event {
            ConnEvent::Frame(line) => conn.send_frame(&line.to_ascii_uppercase())?,
            ConnEvent::Closed(None) => log::info!("{addr} closed"),
            ConnEvent::Closed(Some(e)) => log::info!("{addr} closed: {e}"),
            _ => {} // Drained, PeerClosed: replies are flushed, then it closes
        }
        Ok(())
    })?;
    Ok(())
}

const USAGE: &str = "usage: uppercase_server [ADDR] [--idle-timeout SECS] [--frame-timeout SECS] \
[--send-timeout SECS]

  ADDR                  where to listen (default 127.0.0.1:8089)
  --idle-timeout SECS   close a client that sent and read nothing for SECS
  --frame-timeout SECS  close a client whose line is not complete SECS after its first byte
  --send-timeout SECS   close a client that accepted none of its replies for SECS
SECS may be fractional (0.5); a timeout not given is off. Ctrl-C or SIGTERM stops it,
reporting how many connections it closed.";

fn parse_args(parser: &mut lexopt::Parser) -> Result<(String, Timeouts), lexopt::Error> {
    use lexopt::prelude::*;
    let (mut addr, mut timeouts) = (None, Timeouts::default());
    while let Some(arg) = parser.next()? {
        match arg {
            Long("idle-timeout") => timeouts.idle = Some(cli::secs(parser, "--idle-timeout")?),
            Long("frame-timeout") => timeouts.frame = Some(cli::secs(parser, "--frame-timeout")?),
            Long("send-timeout") => timeouts.send = Some(cli::secs(parser, "--send-timeout")?),
            Value(value) if addr.is_none() => addr = Some(cli::addr(value)?),
            Short('h') | Long("help") => cli::help(USAGE),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok((addr.unwrap_or_else(|| "127.0.0.1:8089".into()), timeouts))
}

fn main() -> ExitCode {
    let (addr, timeouts) = cli::parse(USAGE, parse_args);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli::status(serve(&addr, timeouts))
}

fn serve(addr: &str, timeouts: Timeouts) -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let sock = TcpListener::bind(addr).map_err(cli::about(addr))?;
    sock.set_nonblocking(true)?;
    let addr = sock.local_addr()?; // the real port, if ADDR asked for port 0
    let listener = sel.register(sock, EVENT_READ, move |sel, sock, _: Events| {
        accept(sel, sock, timeouts)
    })?;
    shutdown::stop_on_signals(&mut sel)?;
    eprintln!("uppercase server on {addr}; try: cargo run --example echo_client {addr}");

    sel.run()?; // until Ctrl-C or SIGTERM; `run`, not `select`, fires the timeouts
    shutdown::close::<TcpStream, LineCodec>(sel, &[listener]) // flushes, then closes
}
