//! Rung 4 of the I/O-model ladder: a process per connection (`fork`), children reaped.
//!
//! ```text
//! cargo run --example model_fork -- [ADDR]     # default 127.0.0.1:8088
//! ```
//!
//! The oldest concurrent server (inetd, Apache's prefork, the tutorials' `os.fork()` server):
//! the parent accepts, forks, and goes back to `accept`; the child serves the connection with
//! plain blocking code, as `model_blocking` does, and exits. Each child has its own memory, so
//! a crash or a leak in one connection cannot touch the others — at the price of a process per
//! client (a page-table copy at each fork, a few hundred KiB each).
//!
//! Each side closes what it does not need: the child its copy of the listener (or the port
//! stays bound by a child after the parent is gone), the parent its copy of the connection (or
//! the client never sees end of file, since the socket stays open in the parent).
//!
//! **Zombies.** A child that exits stays in the process table, a zombie, until its parent
//! collects its exit status with `waitpid`; a server that never does fills the table. Here a
//! SIGCHLD handler reaps every child that has exited, `waitpid(-1, WNOHANG)` in a loop (one
//! signal may stand for several children) — the tutorials' (and Stevens') `sig_chld`. Setting
//! SIGCHLD to `SIG_IGN` is the one-line alternative on POSIX systems. `tests/ladder.rs` checks
//! that no zombie remains once the clients are gone.
//!
//! Platforms: Unix only — Windows has no `fork` (its processes start from a program, not from a
//! copy of the running one; there it says so and exits with status 1). Ctrl-C or SIGTERM ends
//! the parent by the signal's default action, so it prints no report of the connections it
//! closed (see `model_blocking`). Children serving a client keep serving it after a `kill -TERM`
//! of the parent, until the client leaves; Ctrl-C at a terminal ends them too (the terminal
//! signals its whole foreground process group).

#[path = "common/cli.rs"]
mod cli;

#[cfg(unix)]
mod server {
    use std::io::{self, ErrorKind, Read, Write};
    use std::net::{TcpListener, TcpStream};
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
            conn.write_all(&buf[..n])?;
        }
    }

    /// Reaps every child that has exited, each time SIGCHLD arrives.
    fn reap_children() -> io::Result<()> {
        let reap = || loop {
            // SAFETY: waitpid is async-signal-safe; the status pointer may be null.
            let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
            if pid <= 0 {
                break; // 0: the others still run; -1: no child left (ECHILD)
            }
        };
        // SAFETY: the action makes only async-signal-safe calls (waitpid) and touches no
        // memory shared with the interrupted code; signal-hook saves and restores errno.
        unsafe { signal_hook::low_level::register(signal_hook::consts::SIGCHLD, reap) }?;
        Ok(())
    }

    pub fn run(listener: TcpListener) -> io::Result<()> {
        reap_children()?;
        let mut failing = false;
        loop {
            let (conn, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection that died before it was accepted.
                    // Wait a little: at the descriptor limit, retrying at once would spin.
                    if !failing {
                        log::warn!("accept: {e}; retrying every 100 ms");
                    }
                    failing = true;
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            failing = false;
            // SAFETY: this process has one thread (no threads are started here, and
            // signal-hook's handler runs on the interrupted thread), so no other thread can
            // hold a lock (the allocator's, stderr's) that the child would inherit locked:
            // the child may run ordinary Rust code, as after fork in a C program.
            match unsafe { libc::fork() } {
                -1 => {
                    let e = io::Error::last_os_error();
                    log::warn!("{peer}: fork: {e}; closing the connection");
                    thread::sleep(Duration::from_millis(100)); // out of processes: no spinning
                }
                0 => {
                    drop(listener); // the child serves one client and never accepts
                    let status = match serve(conn) {
                        Ok(()) => 0,
                        Err(e) => {
                            log::info!("{peer}: {e}");
                            1
                        }
                    };
                    std::process::exit(status);
                }
                child => log::info!("{peer}: served by process {child}"),
            }
            // The parent: `conn` is dropped here, closing its copy.
        }
    }
}

const USAGE: &str = "usage: model_fork [ADDR]

  ADDR  where to listen (default 127.0.0.1:8088)
Unix only. Ctrl-C or SIGTERM ends it at once (the default action: no report).";

fn main() -> std::process::ExitCode {
    let addr = cli::parse(USAGE, cli::addr_only(USAGE));
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli::status(run(&addr))
}

#[cfg(unix)]
fn run(addr: &str) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(addr).map_err(cli::about(addr))?;
    let addr = listener.local_addr()?; // the real port, if ADDR asked for port 0
    eprintln!(
        "model_fork on {addr}, a process per client; try: cargo run --example echo_client {addr}"
    );
    server::run(listener)
}

#[cfg(not(unix))]
fn run(_addr: &str) -> std::io::Result<()> {
    let msg = "needs fork(2), which this platform does not have (Unix only)";
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, msg))
}
