//! Rung 6b of the I/O-model ladder: the tutorials' `poll(2)` server, with a message queue per
//! connection and `POLLOUT`, on the system call itself.
//!
//! ```text
//! cargo run --example model_poll -- [ADDR]    # default 127.0.0.1:8088
//! ```
//!
//! PyMOTW's `poll` example, in Rust: one thread, non-blocking sockets, and `poll` over an array
//! of `(descriptor, events wanted)` that it fills with the events that happened. Unlike
//! `select`'s bitmaps, the array has no descriptor-number limit, and each entry says what it
//! waits for: `POLLIN` for the listener and for clients the server can take more data from,
//! `POLLOUT` for clients with replies queued.
//!
//! The message queue: a non-blocking `write` may take only part of the data (`write_all` would
//! stop half-way with `WouldBlock`, and the rest would be lost), so each connection keeps what
//! the socket did not take, and asks for `POLLOUT` exactly while that queue is not empty — the
//! tutorial switches the registration to READ|WRITE and back in the same way. Above 256 KiB
//! queued, `POLLIN` is dropped (a client that never reads cannot make the server's memory
//! grow); at end of file the queue is flushed before the connection is closed.
//!
//! Like `select`, `poll` is given the whole array on every call and checks every entry, ready or
//! not: time in proportion to the connections (the README's c10k benchmark measures it), which
//! `epoll` (`model_epoll_edge`) avoids. `selectloop::PollSelector` is this loop as a library.
//!
//! Platforms: any. rustix wraps poll(2) on Unix and `WSAPoll` on Windows. Ctrl-C or SIGTERM: on
//! Unix, a signal handler sets a flag and interrupts `poll` (`EINTR`), and the server exits
//! cleanly, reporting how many connections it closed; on Windows the console's Ctrl-C ends the
//! process.

#[path = "common/cli.rs"]
mod cli;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::{AsFd, AsRawFd, RawFd};
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stop reading from a client while more than this is queued for it.
const HIGH_WATER: usize = 256 << 10;

/// "Readable" and "writable": `POLLIN` and `POLLOUT`; on Windows their "normal data" halves,
/// as Python's and selectloop's poll do (`WSAPoll` is picky about the other bits).
#[cfg(unix)]
const IN: PollFlags = PollFlags::IN;
#[cfg(unix)]
const OUT: PollFlags = PollFlags::OUT;
#[cfg(windows)]
const IN: PollFlags = PollFlags::RDNORM;
#[cfg(windows)]
const OUT: PollFlags = PollFlags::WRNORM;

struct Client {
    conn: TcpStream,
    peer: SocketAddr,
    /// Bytes read but not yet written back: the tutorial's message queue.
    queue: Vec<u8>,
    /// The client sent end of file: flush the queue, then close.
    eof: bool,
    /// The connection failed (reset...): close it now.
    failed: bool,
}

impl Client {
    /// What to poll this connection for.
    fn interest(&self) -> PollFlags {
        let mut events = PollFlags::empty();
        if !self.eof && !self.failed && self.queue.len() <= HIGH_WATER {
            events |= IN;
        }
        if !self.queue.is_empty() {
            events |= OUT;
        }
        events
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
                self.flush(); // most replies go out at once, without waiting for POLLOUT
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
                Err(e) if e.kind() == ErrorKind::WouldBlock => break, // full: wait for POLLOUT
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

const USAGE: &str = "usage: model_poll [ADDR]

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
    eprintln!("model_poll on {addr}; try: cargo run --example echo_client {addr}");
    let stop = interrupted()?;
    let mut clients: HashMap<RawFd, Client> = HashMap::new();
    let mut ready: Vec<(RawFd, PollFlags)> = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    // After an accept error (out of descriptors, say), the listener is left out until then: it
    // stays readable while connections wait, so `poll` would return at once, again and again.
    let mut accept_after: Option<Instant> = None;

    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let listening = accept_after.is_none_or(|t| now >= t);
        let timeout = accept_after.filter(|_| !listening).map(|t| t - now);
        // 1. The array: every descriptor to watch and what for, every time. It borrows the
        //    sockets, so what `poll` reports is copied out before anything is changed.
        let mut fds = Vec::with_capacity(clients.len() + 1);
        if listening {
            fds.push(PollFd::new(&listener, IN));
        }
        for client in clients.values() {
            fds.push(PollFd::new(&client.conn, client.interest()));
        }
        if fds.is_empty() {
            std::thread::sleep(timeout.unwrap_or_default()); // nothing to poll
            continue;
        }

        // 2. Sleep until some are ready (or the listener's pause is over).
        let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue, // a signal (Ctrl-C?): check the flag
            Err(e) => return Err(e.into()),
        }
        ready.clear();
        ready.extend(
            fds.iter()
                .filter(|fd| !fd.revents().is_empty())
                .map(|fd| (fd.as_fd().as_raw_fd(), fd.revents())),
        );
        drop(fds);

        // 3. Only what is ready. An error or hang-up counts as both: the read or the write
        //    then returns it (or end of file).
        for &(fd, revents) in &ready {
            if fd == listener.as_raw_fd() {
                match listener.accept().and_then(|(conn, peer)| {
                    conn.set_nonblocking(true)?;
                    Ok((conn, peer))
                }) {
                    Ok((conn, peer)) => {
                        if accept_after.take().is_some() {
                            log::info!("accepting again");
                        }
                        log::info!("accepted {peer}");
                        let client = Client {
                            conn,
                            peer,
                            queue: Vec::new(),
                            eof: false,
                            failed: false,
                        };
                        clients.insert(client.conn.as_raw_fd(), client);
                    }
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                    Err(e) => {
                        if accept_after.is_none() {
                            log::warn!("accept: {e}; retrying every 100 ms");
                        }
                        accept_after = Some(Instant::now() + Duration::from_millis(100));
                    }
                }
                continue;
            }
            let Some(client) = clients.get_mut(&fd) else {
                continue;
            };
            let trouble = revents.intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL);
            if revents.intersects(OUT) || trouble {
                client.flush();
            }
            if (revents.intersects(IN) || trouble) && client.interest().intersects(IN) {
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
