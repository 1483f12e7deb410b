//! A server that sends each client a payload it produces itself (a file being served, a
//! broadcast), in memory that does not grow with the payload. Runs wherever selectloop does;
//! Ctrl-C or SIGTERM stops it cleanly and reports how many connections it closed.
//!
//! ```text
//! cargo run --example blast_server -- [ADDR] [--payload BYTES] [--send-timeout SECS]
//! nc 127.0.0.1 8090 | wc -c                    # default 127.0.0.1:8090, 1 GiB each
//! ```
//!
//! Each client gets BYTES bytes (byte i is `i % 251`), then end of file. Sending it all at once
//! would queue all of it; instead the server sends 64 KiB chunks while the connection's queue
//! is under its high-water mark, and more on `ConnEvent::Drained`, which comes when the queue
//! has drained to the low-water mark (asyncio's `resume_writing`, Node's `'drain'`). So at
//! most the high-water mark plus one chunk is queued per client, whatever BYTES is. How much
//! was handed over so far is `bytes_sent() + queued()`: no other state per client.
//! `--send-timeout` closes a client that stops reading; the hard cap is a backstop the
//! producer never reaches.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/shutdown.rs"]
mod shutdown;

use selectloop::{Bytes, EVENT_READ};
use selectloop::{ConnEvent, Connection, DefaultSelector, Events, Limits, Selector, Timeouts};
use std::io;
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

type Conn = Connection<TcpStream, Bytes>;

const CHUNK: usize = 64 << 10;

/// Sends chunks of the payload while the queue is under the high-water mark; closes once it is
/// all handed over (the connection flushes it, then sends end of file).
fn fill(conn: &mut Conn, payload: u64, pattern: &[u8]) -> io::Result<()> {
    while conn.queued() < conn.limits().high_water {
        let handed = conn.bytes_sent() + conn.queued() as u64;
        if handed == payload {
            conn.close();
            break;
        }
        let len = (payload - handed).min(CHUNK as u64) as usize;
        let at = (handed % 251) as usize; // `pattern` repeats every 251 bytes
        conn.send(&pattern[at..at + len])?;
    }
    Ok(())
}

fn accept(sel: &mut Selector, sock: &mut TcpListener, options: Options) -> io::Result<()> {
    let (conn, addr) = sock.accept()?;
    conn.set_nonblocking(true)?;
    log::info!("accepted {addr}: sending {} bytes", options.payload);
    let pattern: Vec<u8> = (0..CHUNK + 251).map(|i| (i % 251) as u8).collect();
    let high_water = Limits::default().high_water;
    let limits = Limits {
        hard_cap: high_water + 2 * CHUNK,
        ..Limits::default()
    };
    let conn = Connection::new(conn, Bytes)
        .with_limits(limits)?
        .with_timeouts(options.timeouts);
    let payload = options.payload;
    let filler = pattern.clone();
    let key = conn.register(sel, move |_sel, conn, event| {
        match event {
            ConnEvent::Drained => fill(conn, payload, &filler)?,
            ConnEvent::Frame(_) | ConnEvent::PeerClosed => {} // what the client says is ignored
            ConnEvent::Closed(None) => log::info!("{addr}: sent {} bytes", conn.bytes_sent()),
            ConnEvent::Closed(Some(e)) => log::info!("{addr}: {e}"),
            _ => {}
        }
        Ok(())
    })?;
    Conn::with(sel, &key, |conn| fill(conn, payload, &pattern))? // the first chunks
}

#[derive(Clone, Copy)]
struct Options {
    payload: u64,
    timeouts: Timeouts,
}

const USAGE: &str = "usage: blast_server [ADDR] [--payload BYTES] [--send-timeout SECS]

  ADDR                 where to listen (default 127.0.0.1:8090)
  --payload BYTES      what each client gets (default 1073741824: 1 GiB)
  --send-timeout SECS  close a client that accepted nothing for SECS (default: off; may be
                       fractional)
Ctrl-C or SIGTERM stops it, reporting how many connections it closed.";

fn parse_args(parser: &mut lexopt::Parser) -> Result<(String, Options), lexopt::Error> {
    use lexopt::prelude::*;
    let mut addr = None;
    let mut options = Options {
        payload: 1 << 30,
        timeouts: Timeouts::default(),
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("payload") => options.payload = cli::bytes(parser, "--payload")?,
            Long("send-timeout") => {
                options.timeouts.send = Some(cli::secs(parser, "--send-timeout")?);
            }
            Value(value) if addr.is_none() => addr = Some(cli::addr(value)?),
            Short('h') | Long("help") => cli::help(USAGE),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok((addr.unwrap_or_else(|| "127.0.0.1:8090".into()), options))
}

fn main() -> ExitCode {
    let (addr, options) = cli::parse(USAGE, parse_args);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli::status(serve(&addr, options))
}

fn serve(addr: &str, options: Options) -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let sock = TcpListener::bind(addr).map_err(cli::about(addr))?;
    sock.set_nonblocking(true)?;
    let addr = sock.local_addr()?; // the real port, if ADDR asked for port 0
    let listener = sel.register(sock, EVENT_READ, move |sel, sock, _: Events| {
        accept(sel, sock, options)
    })?;
    shutdown::stop_on_signals(&mut sel)?;
    eprintln!(
        "blast server on {addr}; {} bytes to each client",
        options.payload
    );

    sel.run()?; // until Ctrl-C or SIGTERM
    shutdown::close::<TcpStream, Bytes>(sel, &[listener]) // flushes, then closes
}
