//! Rung 1 of the I/O-model ladder: an iterative server, one client at a time.
//!
//! ```text
//! cargo run --example model_blocking -- [ADDR]       # default 127.0.0.1:8088
//! cargo run --example echo_client -- [ADDR]          # in two terminals: the second waits
//! ```
//!
//! The first program of every tutorial on network servers: accept a connection, serve it until
//! the client leaves, accept the next. Blocking sockets, so reads and writes are simple:
//! `read` waits for data, and `write_all` waits until the kernel has taken every byte — correct
//! here, and nothing is lost to a slow reader (it only slows the server down).
//!
//! The catch is concurrency: while one client is served, the next one connects (the kernel
//! completes its handshake and queues it in the listen backlog, 128 connections with Rust's
//! `TcpListener`) but gets no answer until the first leaves. A client that never reads stalls
//! everyone: `write_all` waits for it forever. The rungs above fix that with threads
//! (`model_thread_per_conn`, `model_thread_pool`), processes (`model_fork`) or multiplexing.
//!
//! Platforms: any (std only). Ctrl-C or SIGTERM ends the process by the signal's default
//! action, so it prints no report of the connections it closed (the servers from
//! `model_nonblocking_busy` up do): a thread blocked in `accept` or `read` cannot be told to
//! stop without one of the mechanisms of the rungs above.

#[path = "common/cli.rs"]
mod cli;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

/// Echoes everything the client sends until it closes its side (end of file).
fn serve(mut conn: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 64 << 10];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) => return Ok(()), // the client is done
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        conn.write_all(&buf[..n])?; // blocks until the kernel took it all: nothing is dropped
    }
}

const USAGE: &str = "usage: model_blocking [ADDR]

  ADDR  where to listen (default 127.0.0.1:8088)
Ctrl-C or SIGTERM ends it at once (the default action: no report).";

fn main() -> ExitCode {
    let addr = cli::parse(USAGE, cli::addr_only(USAGE));
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli::status(run(&addr))
}

fn run(addr: &str) -> io::Result<()> {
    let listener = TcpListener::bind(addr).map_err(cli::about(addr))?;
    let addr = listener.local_addr()?; // the real port, if ADDR asked for port 0
    eprintln!("model_blocking on {addr}, one client at a time; try: cargo run --example echo_client {addr}");
    let mut failing = false;
    loop {
        match listener.accept() {
            Ok((conn, peer)) => {
                failing = false;
                log::info!("serving {peer}");
                match serve(conn) {
                    Ok(()) => log::info!("{peer} left"),
                    Err(e) => log::info!("{peer}: {e}"),
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
