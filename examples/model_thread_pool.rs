//! Rung 3 of the I/O-model ladder: blocking I/O on a fixed pool of worker threads.
//!
//! ```text
//! cargo run --example model_thread_pool -- [ADDR] [--workers N]   # default 127.0.0.1:8088, 3
//! ```
//!
//! The tutorials' `ThreadPoolExecutor(max_workers=3)` server: the main thread accepts, and
//! queues each connection for the pool; a worker serves one connection from start to end, as
//! `model_blocking` does, then takes the next. The number of threads is bounded whatever the
//! number of clients — and so is the number of clients served at once: with 3 workers a 4th
//! client is accepted but gets no answer until one of the first three leaves (`tests/ladder.rs`
//! shows it). A pool only works when connections are short; for long-lived ones it is the
//! iterative server again, N at a time.
//!
//! Platforms: any (std only). Ctrl-C or SIGTERM ends the process by the signal's default
//! action, so it prints no report of the connections it closed (see `model_blocking`).

#[path = "common/cli.rs"]
mod cli;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Echoes everything the client sends until it closes its side (end of file).
fn serve(mut conn: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 64 << 10];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        conn.write_all(&buf[..n])?; // blocks this worker only
    }
}

type Queue = Arc<Mutex<mpsc::Receiver<(TcpStream, SocketAddr)>>>;

/// A worker: takes the next queued connection and serves it to the end, until the queue closes.
fn worker(id: usize, queue: Queue) {
    loop {
        let next = queue.lock().map(|queue| queue.recv());
        let Ok(Ok((conn, peer))) = next else {
            return; // the queue is closed (or poisoned: another worker panicked)
        };
        log::info!("worker {id}: serving {peer}");
        match serve(conn) {
            Ok(()) => log::info!("worker {id}: {peer} left"),
            Err(e) => log::info!("worker {id}: {peer}: {e}"),
        }
    }
}

const USAGE: &str = "usage: model_thread_pool [ADDR] [--workers N]

  ADDR         where to listen (default 127.0.0.1:8088)
  --workers N  threads serving connections, 1 to 1024 (default 3)
Ctrl-C or SIGTERM ends it at once (the default action: no report).";

fn parse_args(parser: &mut lexopt::Parser) -> Result<(String, usize), lexopt::Error> {
    use lexopt::prelude::*;
    let (mut addr, mut workers) = (None, 3);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("workers") => workers = cli::number(parser, "--workers", 1..=1024)?,
            Value(value) if addr.is_none() => addr = Some(cli::addr(value)?),
            Short('h') | Long("help") => cli::help(USAGE),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok((addr.unwrap_or_else(|| "127.0.0.1:8088".into()), workers))
}

fn main() -> ExitCode {
    let (addr, workers) = cli::parse(USAGE, parse_args);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli::status(run(&addr, workers))
}

fn run(addr: &str, workers: usize) -> io::Result<()> {
    let listener = TcpListener::bind(addr).map_err(cli::about(addr))?;
    let addr = listener.local_addr()?; // the real port, if ADDR asked for port 0
    eprintln!("model_thread_pool on {addr}, {workers} workers; try: cargo run --example echo_client {addr}");
    let (queue, jobs) = mpsc::channel();
    let jobs: Queue = Arc::new(Mutex::new(jobs));
    for id in 0..workers {
        let jobs = jobs.clone();
        thread::Builder::new()
            .name(format!("worker {id}"))
            .spawn(move || worker(id, jobs))?; // at start-up: failing is fatal
    }
    let mut failing = false;
    loop {
        match listener.accept() {
            Ok((conn, peer)) => {
                failing = false;
                log::info!("accepted {peer}; queued for the pool");
                if queue.send((conn, peer)).is_err() {
                    return Err(io::Error::other("every worker has stopped"));
                }
            }
            Err(e) => {
                // Out of descriptors, or a connection that died before it was accepted. Wait
                // a little: at the descriptor limit, retrying at once would spin.
                if !failing {
                    log::warn!("accept: {e}; retrying every 100 ms");
                }
                failing = true;
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
