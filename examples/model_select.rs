//! Rung 6a of the I/O-model ladder: the tutorials' `select(2)` server, on the system call itself.
//!
//! ```text
//! cargo run --example model_select -- [ADDR]    # default 127.0.0.1:8088
//! ```
//!
//! The classic multiplexing server (PyMOTW's `select` example, in C in every Unix book): one
//! thread, non-blocking sockets, and a `select` call that sleeps until some of them are ready
//! and says which. Each turn builds two descriptor sets — *read* (the listener, and every
//! client the server can take more data from) and *write* (every client with replies queued) —
//! and after `select` returns, accepts, reads or writes only what is ready. Idle, it uses no CPU
//! (`model_nonblocking_busy` burns a core doing the same job).
//!
//! Replies are queued per connection, as the tutorials' `message_queues`: a non-blocking `write`
//! may take only part of the data (`write_all` would stop half-way with `WouldBlock`, and the
//! rest would be lost), so the rest waits in the queue, and the connection is in the write set
//! exactly while its queue is not empty. Above 256 KiB queued, it leaves the read set (a client
//! that never reads cannot make the server's memory grow); at end of file, its queue is flushed
//! before it is closed.
//!
//! The costs `select` is known for are visible here: the sets are rebuilt and copied into the
//! kernel on every call, and the kernel and then this loop check every descriptor in them —
//! time in proportion to the connections, ready or not (the README's c10k benchmark measures
//! it). And an `fd_set` is a bitmap of `FD_SETSIZE` bits on Unix: descriptors numbered 1024 and
//! up do not fit (writing past it corrupts memory in C), so a connection that gets one is
//! closed at once, with a warning. `selectloop::SelectSelector` is this loop as a library, with
//! the same limit; `poll` (`model_poll`) has none.
//!
//! Platforms: any. rustix wraps select(2) on Unix and Winsock's `select` on Windows (where an
//! `fd_set` is a list of sockets, not a bitmap: no descriptor-number limit). Ctrl-C or SIGTERM:
//! on Unix, a signal handler sets a flag and interrupts `select` (`EINTR`), and the server exits
//! cleanly, reporting how many connections it closed; on Windows the console's Ctrl-C ends the
//! process.

#[path = "common/cli.rs"]
mod cli;

use rustix::event::{
    fd_set_insert, fd_set_num_elements, select, FdSetElement, FdSetIter, Timespec,
};
use rustix::fd::{AsRawFd, RawFd};
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stop reading from a client while more than this is queued for it.
const HIGH_WATER: usize = 256 << 10;

/// Unix's `fd_set` holds descriptors 0 to 1023 (glibc's and macOS's `FD_SETSIZE`).
#[cfg(unix)]
const FD_SETSIZE: RawFd = 1024;

struct Client {
    conn: TcpStream,
    peer: SocketAddr,
    /// Bytes read but not yet written back: the tutorials' message queue.
    queue: Vec<u8>,
    /// The client sent end of file: flush the queue, then close.
    eof: bool,
    /// The connection failed (reset...): close it now.
    failed: bool,
}

impl Client {
    fn wants_read(&self) -> bool {
        !self.eof && !self.failed && self.queue.len() <= HIGH_WATER
    }

    fn done(&self) -> bool {
        self.failed || (self.eof && self.queue.is_empty())
    }

    /// Reads once (the socket is readable: this does not block), and queues the echo.
    fn read(&mut self, buf: &mut [u8]) {
        match self.conn.read(buf) {
            Ok(0) => self.eof = true,
            Ok(n) => {
                self.queue.extend_from_slice(&buf[..n]);
                self.flush(); // most replies go out at once, without waiting for the next turn
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => self.fail(e),
        }
    }

    /// Writes from the queue until it is empty or the socket is full.
    fn flush(&mut self) {
        let mut written = 0;
        while written < self.queue.len() && !self.failed {
            match self.conn.write(&self.queue[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break, // full: wait for WRITE
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => self.fail(e),
            }
        }
        self.queue.drain(..written);
    }

    fn fail(&mut self, e: io::Error) {
        log::info!("{}: {e}", self.peer);
        self.failed = true;
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

/// Accepts one connection (the listener is readable), unless it does not fit an `fd_set`.
fn accept(listener: &TcpListener, clients: &mut HashMap<RawFd, Client>) -> io::Result<()> {
    let (conn, peer) = listener.accept()?;
    let fd = conn.as_raw_fd();
    #[cfg(unix)]
    if fd >= FD_SETSIZE {
        log::warn!("{peer}: fd {fd} is past FD_SETSIZE ({FD_SETSIZE}): select cannot watch it; closing it (poll and epoll have no such limit)");
        return Ok(());
    }
    conn.set_nonblocking(true)?;
    log::info!("accepted {peer}");
    let client = Client {
        conn,
        peer,
        queue: Vec::new(),
        eof: false,
        failed: false,
    };
    clients.insert(fd, client);
    Ok(())
}

const USAGE: &str = "usage: model_select [ADDR]

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
    eprintln!("model_select on {addr}; try: cargo run --example echo_client {addr}");
    let stop = interrupted()?;
    let listener_fd = listener.as_raw_fd();
    let mut clients: HashMap<RawFd, Client> = HashMap::new();
    let (mut readable, mut writable) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 64 << 10];
    // After an accept error (out of descriptors, say), the listener leaves the read set until
    // then: it stays readable while connections wait, so `select` would return at once, again
    // and again.
    let mut accept_after: Option<Instant> = None;

    while !stop.load(Ordering::Relaxed) {
        // 1. The sets: every descriptor to watch, every time.
        let now = Instant::now();
        let listening = accept_after.is_none_or(|t| now >= t);
        let timeout = accept_after.filter(|_| !listening).map(|t| t - now);
        let watched = usize::from(listening) + clients.len();
        if watched == 0 {
            std::thread::sleep(timeout.unwrap_or_default()); // nothing to select on
            continue;
        }
        let nfds = clients
            .keys()
            .chain([&listener_fd])
            .max()
            .map_or(0, |fd| fd + 1);
        let len = fd_set_num_elements(watched, nfds);
        for set in [&mut readable, &mut writable] {
            set.clear();
            set.resize(len, FdSetElement::default());
        }
        if listening {
            fd_set_insert(&mut readable, listener_fd);
        }
        for (&fd, client) in &clients {
            if client.wants_read() {
                fd_set_insert(&mut readable, fd);
            }
            if !client.queue.is_empty() {
                fd_set_insert(&mut writable, fd);
            }
        }

        // 2. Sleep until some are ready (or the listener's pause is over).
        let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
        // SAFETY: the sets hold the listener's descriptor and those of `clients`, all open
        // (owned by `listener` and `clients`, which outlive the call), each below `nfds`.
        let result = unsafe {
            select(
                nfds as _, // ignored by Winsock: a Windows `fd_set` counts its sockets
                Some(&mut readable),
                Some(&mut writable),
                None,
                timeout.as_ref(),
            )
        };
        match result {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue, // a signal (Ctrl-C?): check the flag
            Err(e) => return Err(e.into()),
        }

        // 3. Only what is ready: replies first (they make room), then input.
        for fd in FdSetIter::new(&writable) {
            if let Some(client) = clients.get_mut(&fd) {
                client.flush();
            }
        }
        for fd in FdSetIter::new(&readable) {
            if fd == listener_fd {
                match accept(&listener, &mut clients) {
                    Ok(()) if accept_after.take().is_some() => log::info!("accepting again"),
                    Ok(()) => {}
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                    Err(e) => {
                        if accept_after.is_none() {
                            log::warn!("accept: {e}; retrying every 100 ms");
                        }
                        accept_after = Some(Instant::now() + Duration::from_millis(100));
                    }
                }
            } else if let Some(client) = clients.get_mut(&fd) {
                client.read(&mut buf);
            }
        }
        clients.retain(|_, client| {
            if client.done() && !client.failed {
                log::info!("{} left", client.peer);
            }
            !client.done()
        });
    }
    eprintln!("interrupted: closed {} connection(s)", clients.len());
    Ok(())
}
