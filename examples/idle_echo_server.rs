//! The echo server with timeouts: a client that says nothing for `--idle-timeout` seconds is
//! closed, and so is one that trickles a line without ever finishing it, or stops reading its
//! echoes. Runs wherever selectloop does; Ctrl-C or SIGTERM stops it cleanly and reports how
//! many connections it closed (on Windows: the console's Ctrl-C, or its closing).
//!
//! ```text
//! cargo run --example idle_echo_server -- [ADDR] [--idle-timeout SECS] [--frame-timeout SECS]
//!                                         [--send-timeout SECS]   # default 127.0.0.1:8088
//! ```
//!
//! It echoes lines (of up to 64 KiB), each connection a [`Connection`] (see `echo_server` for
//! why: `write_all` on a non-blocking socket loses data) with the connection's own timeouts,
//! on one timer each that moving bytes never touches. Lines rather than raw bytes, because an
//! idle timer alone cannot catch a client that sends one byte a second: every byte is traffic.
//! An echo is exactly the bytes received: a last line the client did not end with a newline
//! comes back without one (`RawLines` below says why `LineCodec` alone would add it).
//! A line that has begun must be complete within `--frame-timeout` (by default the idle
//! timeout): that is what ends a trickling client. The loop is `run()`, because timers are the
//! loop's service (a bare `select()` reports I/O only).

#[path = "common/cli.rs"]
mod cli;
#[path = "common/shutdown.rs"]
mod shutdown;

use selectloop::{Codec, Timeouts, EVENT_READ};
use selectloop::{ConnEvent, Connection, DefaultSelector, Events, Limits, LineCodec, Selector};
use std::io;
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

const MAX_LINE: usize = 64 << 10;

/// Reading pauses at 1 MiB of echoes queued, and one read (64 KiB) cannot ask for more than
/// 64 KiB of echoes: a client that merely reads slowly never comes near these caps.
const LIMITS: Limits = Limits {
    high_water: 1 << 20,
    low_water: 256 << 10,
    read_chunk: 64 << 10,
    hard_cap: 4 << 20,
    soft_cap: 2 << 20,
    soft_cap_for: Duration::from_secs(30),
};

/// Lines exactly as received: each with its `\n`, and a last one without if the client ended
/// without one. `LineCodec` finds and bounds the lines, but its frames drop the `\n` and its
/// `encode` (`send_frame`) appends one, so an unterminated last line, which it delivers at end
/// of file as it came, would go back with a `\n` it never had. So this codec lends the bytes
/// `LineCodec` used, newline included.
struct RawLines(LineCodec);

impl Codec for RawLines {
    type Incoming<'a> = &'a [u8];
    type Outgoing = [u8];

    fn decode<'a>(&mut self, buf: &'a [u8]) -> io::Result<Option<(&'a [u8], usize)>> {
        Ok(self.0.decode(buf)?.map(|(_, used)| (&buf[..used], used)))
    }

    fn decode_eof<'a>(&mut self, buf: &'a [u8]) -> io::Result<Option<(&'a [u8], usize)>> {
        Ok(self
            .0
            .decode_eof(buf)?
            .map(|(_, used)| (&buf[..used], used)))
    }

    fn encode(&mut self, line: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(line); // as it came, newline or not
        Ok(())
    }
}

fn accept(sel: &mut Selector, sock: &mut TcpListener, timeouts: Timeouts) -> io::Result<()> {
    let (conn, addr) = sock.accept()?;
    log::info!("accepted {addr}");
    conn.set_nonblocking(true)?;
    let conn = Connection::new(conn, RawLines(LineCodec::new(MAX_LINE)))
        .with_limits(LIMITS)?
        .with_timeouts(timeouts);
    conn.register(sel, move |_sel, conn, event| {
        match event {
            ConnEvent::Frame(line) => conn.send_frame(line)?, // queued, never dropped
            // End of file: what is queued is flushed, then it closes (the send timeout still
            // runs, in case the client never reads it).
            ConnEvent::Drained | ConnEvent::PeerClosed => {}
            ConnEvent::Closed(None) => log::info!("{addr} closed"),
            ConnEvent::Closed(Some(e)) => log::info!("{addr} closed: {e}"),
            _ => {}
        }
        Ok(())
    })?;
    Ok(())
}

const USAGE: &str = "usage: idle_echo_server [ADDR] [--idle-timeout SECS] [--frame-timeout SECS] \
[--send-timeout SECS]

  ADDR                  where to listen (default 127.0.0.1:8088)
  --idle-timeout SECS   close a client that sent and read nothing for SECS (default 10)
  --frame-timeout SECS  close a client whose line is not complete SECS after its first byte
                        (default: the idle timeout)
  --send-timeout SECS   close a client that accepted none of its echoes for SECS (default: off)
SECS may be fractional (0.5). Ctrl-C or SIGTERM stops it, reporting how many connections it
closed.";

fn parse_args(parser: &mut lexopt::Parser) -> Result<(String, Timeouts), lexopt::Error> {
    use lexopt::prelude::*;
    let mut addr = None;
    let mut timeouts = Timeouts {
        idle: Some(Duration::from_secs(10)),
        ..Timeouts::default()
    };
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
    timeouts.frame = timeouts.frame.or(timeouts.idle);
    Ok((addr.unwrap_or_else(|| "127.0.0.1:8088".into()), timeouts))
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
    let secs = |t: Option<Duration>| t.map_or("off".into(), |t| format!("{} s", t.as_secs_f64()));
    let listener = sel.register(sock, EVENT_READ, move |sel, sock, _: Events| {
        accept(sel, sock, timeouts)
    })?;
    shutdown::stop_on_signals(&mut sel)?;
    eprintln!(
        "echo server on {addr}; timeouts: idle {}, frame {}, send {}",
        secs(timeouts.idle),
        secs(timeouts.frame),
        secs(timeouts.send)
    );

    sel.run()?; // until Ctrl-C or SIGTERM
    shutdown::close::<TcpStream, RawLines>(sel, &[listener]) // flushes, then closes
}
