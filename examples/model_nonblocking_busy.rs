//! Rung 5 of the I/O-model ladder: non-blocking sockets polled in a loop, with no readiness API.
//! **Do not copy this one**: it burns a whole CPU core while idle, by design.
//!
//! ```text
//! cargo run --example model_nonblocking_busy -- [ADDR]    # default 127.0.0.1:8088; watch top
//! ```
//!
//! The tutorials' first step away from blocking: make every socket non-blocking and try each in
//! turn — accept, then read each connection, then write what is queued — over and over. No call
//! waits, so one thread serves any number of clients. But nothing says *which* socket is ready,
//! so the loop asks every socket every time, even when none has anything: with no client at all
//! it spins at 100% of a core (`benches/ladder.rs` measures it, next to the other servers' idle
//! CPU). The readiness APIs of the next rungs (`select`, `poll`, `epoll`) exist to replace
//! this loop: they sleep until some socket is ready, and say which.
//!
//! What it does right, as every non-blocking server must: a non-blocking `write` may take only
//! part of the data (or none: `WouldBlock`), so what the socket does not take is queued per
//! connection and written on later turns — `write_all` would stop half-way with `WouldBlock`
//! and the rest would be lost. A client that sends without reading cannot make its queue grow
//! without bound: above 256 KiB queued, the server stops reading from it until it drains. At end
//! of file, the queue is flushed before the connection is closed.
//!
//! Platforms: any (std only). Ctrl-C or SIGTERM: on Unix the loop sees a flag set by a signal
//! handler, exits cleanly and reports how many connections it closed; on Windows the console's
//! Ctrl-C ends the process.

#[path = "common/cli.rs"]
mod cli;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stop reading from a client while more than this is queued for it.
const HIGH_WATER: usize = 256 << 10;

struct Client {
    conn: TcpStream,
    peer: SocketAddr,
    /// Bytes read but not yet written back.
    queue: Vec<u8>,
    /// The client sent end of file: flush the queue, then close.
    eof: bool,
}

impl Client {
    /// One turn: write what is queued, read what has come (unless too much is queued).
    /// Returns false when the connection is over.
    fn turn(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.flush()?;
        if !self.eof && self.queue.len() <= HIGH_WATER {
            match self.conn.read(buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.queue.extend_from_slice(&buf[..n]);
                    self.flush()?;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(!(self.eof && self.queue.is_empty()))
    }

    /// Writes from the queue until it is empty or the socket is full.
    fn flush(&mut self) -> io::Result<()> {
        let mut written = 0;
        while written < self.queue.len() {
            match self.conn.write(&self.queue[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break, // full: next turn
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.queue.drain(..written);
        Ok(())
    }
}

/// A flag set by Ctrl-C (SIGINT) or SIGTERM, on Unix; never set on Windows.
fn interrupted() -> io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, flag.clone())?;
    }
    Ok(flag)
}

const USAGE: &str = "usage: model_nonblocking_busy [ADDR]

  ADDR  where to listen (default 127.0.0.1:8088)
Ctrl-C or SIGTERM stops it, reporting how many connections it closed (Unix; on Windows
Ctrl-C ends it at once).";

fn main() -> ExitCode {
    let addr = cli::parse(USAGE, cli::addr_only(USAGE));
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli::status(run(&addr))
}

fn run(addr: &str) -> io::Result<()> {
    let listener = TcpListener::bind(addr).map_err(cli::about(addr))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?; // the real port, if ADDR asked for port 0
    eprintln!(
        "model_nonblocking_busy on {addr}, spinning; try: cargo run --example echo_client {addr}"
    );
    let stop = interrupted()?;
    let mut clients: Vec<Client> = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    // After an accept error (out of descriptors, say), accepts wait until then.
    let mut accept_after: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if accept_after.is_none_or(|t| Instant::now() >= t) {
            match listener.accept() {
                Ok((conn, peer)) => {
                    if accept_after.take().is_some() {
                        log::info!("accepting again");
                    }
                    conn.set_nonblocking(true)?;
                    log::info!("accepted {peer}");
                    clients.push(Client {
                        conn,
                        peer,
                        queue: Vec::new(),
                        eof: false,
                    });
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => {
                    if accept_after.is_none() {
                        log::warn!("accept: {e}; retrying every 100 ms");
                    }
                    accept_after = Some(Instant::now() + Duration::from_millis(100));
                }
            }
        }
        // Every client, every turn, ready or not: the cost this rung is about.
        clients.retain_mut(|client| match client.turn(&mut buf) {
            Ok(true) => true,
            Ok(false) => {
                log::info!("{} left", client.peer);
                false
            }
            Err(e) => {
                log::info!("{}: {e}", client.peer);
                false
            }
        });
    }
    eprintln!("interrupted: closed {} connection(s)", clients.len());
    Ok(())
}
