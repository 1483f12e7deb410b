//! Rung 2 of the I/O-model ladder: blocking I/O, one thread per connection.
//!
//! ```text
//! cargo run --example model_thread_per_conn -- [ADDR]    # default 127.0.0.1:8088
//! cargo run --example echo_client -- [ADDR] --count 1000 --connections 100
//! ```
//!
//! `model_blocking`'s loop, with each connection handed to a thread of its own: the code of a
//! connection stays straight-line blocking code (`read`, then `write_all`, which is correct on a
//! blocking socket and loses nothing to a slow reader), and a slow or silent client blocks only
//! its own thread. The cost is a thread per client: a stack (2 MiB reserved, a few KiB used),
//! a kernel task, and a context switch each time a client's data arrives. The tutorials'
//! verdict — fine with a few connections, not with ten thousand — is measured in the README's
//! comparison (`benches/ladder.rs`).
//!
//! Starting a thread can fail (out of memory or of the per-user thread limit): then that client
//! is closed and the server goes on, where `thread::spawn` would panic and kill the server.
//!
//! Platforms: any (std only). Ctrl-C or SIGTERM ends the process by the signal's default
//! action, so it prints no report of the connections it closed (see `model_blocking`).

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
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        conn.write_all(&buf[..n])?; // blocks this thread only
    }
}

const USAGE: &str = "usage: model_thread_per_conn [ADDR]

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
    eprintln!("model_thread_per_conn on {addr}, a thread per client; try: cargo run --example echo_client {addr}");
    let mut failing = false;
    loop {
        let (conn, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, or a connection that died before it was accepted. Wait
                // a little: at the descriptor limit, retrying at once would spin.
                if !failing {
                    log::warn!("accept: {e}; retrying every 100 ms");
                }
                failing = true;
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        failing = false;
        log::info!("accepted {peer}");
        let thread =
            thread::Builder::new()
                .name(format!("client {peer}"))
                .spawn(move || match serve(conn) {
                    Ok(()) => log::info!("{peer} left"),
                    Err(e) => log::info!("{peer}: {e}"),
                });
        if let Err(e) = thread {
            log::warn!("{peer}: cannot start a thread ({e}); closing the connection");
        }
    }
}
