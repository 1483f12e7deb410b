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
//! Platforms: any (std only). Ctrl-C ends the process (the default action).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
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

fn parse_args() -> Result<(String, usize), lexopt::Error> {
    use lexopt::prelude::*;
    let (mut addr, mut workers) = ("127.0.0.1:8088".to_string(), 3);
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("workers") => workers = parser.value()?.parse()?,
            Short('h') | Long("help") => {
                println!(
                    "usage: model_thread_pool [ADDR] [--workers N]   (default 127.0.0.1:8088, 3)"
                );
                std::process::exit(0);
            }
            Value(value) => addr = value.string()?,
            _ => return Err(arg.unexpected()),
        }
    }
    if !(1..=1024).contains(&workers) {
        return Err("--workers must be 1 to 1024".into());
    }
    Ok((addr, workers))
}

fn main() -> io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let (addr, workers) = parse_args().unwrap_or_else(|e| {
        eprintln!("model_thread_pool: {e}; try --help");
        std::process::exit(2);
    });
    let listener = TcpListener::bind(&addr)?;
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
