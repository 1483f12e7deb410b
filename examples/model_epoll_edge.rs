//! Rung 7 of the I/O-model ladder: raw epoll in edge-triggered mode, and its classic bug.
//!
//! ```text
//! cargo run --example model_epoll_edge -- [ADDR]               # default 127.0.0.1:8088
//! cargo run --example model_epoll_edge -- [ADDR] --read-once   # the bug, to watch it hang
//! ```
//!
//! epoll keeps the interest list in the kernel (`epoll_ctl` once per socket, not a set rebuilt
//! for every call as with `select` and `poll`) and returns only the sockets that are ready, so
//! a wait costs the same with ten connections or ten thousand. Edge-triggered (`EPOLLET`), it
//! reports a socket when its state *changes* — new data arrived, room freed up — instead of for
//! as long as it stays ready, so each socket is registered once, for reading and writing, and
//! never modified: the cheapest epoll server, the one nginx and Redis-style loops use.
//!
//! The rule that comes with it: on each report, read (and accept, and write) **until
//! `WouldBlock`**. Whatever is left in the socket will not be reported again — no new edge comes
//! until more data arrives, which, for a client waiting for its reply, is never. `--read-once`
//! runs the classic bug: one `read` per report, as a level-triggered server does. Send it more
//! than one read takes (4 KiB here, as the tutorials' `recv(4096)`) in one go, and the echo
//! stops short and the client waits forever (`tests/ladder.rs` shows both, with a bounded wait).
//!
//! The same rule applies to the listener (accept until `WouldBlock`, or waiting clients are
//! never accepted), to writes (a non-blocking `write` may take part of the data: the rest is
//! queued, and written when the next "room freed" edge comes; `write_all` would lose it), and to
//! back-pressure: a client with over 256 KiB queued is not read from, and when its queue drains
//! the server must go back to reading by itself, since the data waiting was reported already.
//! After an accept error (out of descriptors), accepting is retried after 100 ms: the
//! connections already waiting will bring no new edge.
//!
//! selectloop's `EpollSelector` with `Mode::Edge` is this loop as a library.
//!
//! Platforms: Linux (and Android) only — epoll is Linux's; the BSDs and macOS have kqueue,
//! Windows IOCP (`DefaultSelector` uses whichever the platform has); elsewhere it says so and
//! exits with status 1. Ctrl-C or SIGTERM: a signal handler sets a flag and interrupts
//! `epoll_wait` (`EINTR`), and the server exits cleanly, reporting how many connections it
//! closed.

#[path = "common/cli.rs"]
mod cli;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod server {
    use rustix::buffer::spare_capacity;
    use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
    use rustix::event::Timespec;
    use std::collections::HashMap;
    use std::io::{self, ErrorKind, Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Stop reading from a client while more than this is queued for it.
    const HIGH_WATER: usize = 256 << 10;

    /// The listener's epoll data; a client's is its descriptor.
    const LISTENER: u64 = u64::MAX;

    struct Client {
        conn: TcpStream,
        peer: SocketAddr,
        /// Bytes read but not yet written back.
        queue: Vec<u8>,
        /// The client sent end of file: flush the queue, then close.
        eof: bool,
        /// The connection failed (reset...): close it now.
        failed: bool,
    }

    impl Client {
        fn done(&self) -> bool {
            self.failed || (self.eof && self.queue.is_empty())
        }

        /// The fix: write what is queued, then read until `WouldBlock` (or until too much is
        /// queued: then the next "room freed" edge brings the server back here, to read on).
        fn pump(&mut self, buf: &mut [u8]) {
            loop {
                self.flush();
                if self.failed || self.eof || self.queue.len() > HIGH_WATER {
                    return;
                }
                if !self.read(buf) {
                    return; // WouldBlock: the next edge comes with new data
                }
            }
        }

        /// The bug: one read per report.
        fn read_once(&mut self, buf: &mut [u8]) {
            self.flush();
            if !self.failed && !self.eof && self.queue.len() <= HIGH_WATER {
                self.read(buf);
                self.flush();
            }
        }

        /// One read into the queue; false if there was nothing to read (`WouldBlock`).
        fn read(&mut self, buf: &mut [u8]) -> bool {
            match self.conn.read(buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.queue.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) => self.fail(e),
            }
            true
        }

        /// Writes from the queue until it is empty or the socket is full (then the next edge
        /// says when there is room).
        fn flush(&mut self) {
            let mut written = 0;
            while written < self.queue.len() && !self.failed {
                match self.conn.write(&self.queue[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
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

    /// Accepts until `WouldBlock`: one edge may stand for many waiting connections.
    fn accept_all(
        epoll: &OwnedFd,
        listener: &TcpListener,
        clients: &mut HashMap<u64, Client>,
    ) -> io::Result<()> {
        loop {
            let (conn, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            conn.set_nonblocking(true)?;
            let fd = conn.as_raw_fd() as u64;
            // Reading and writing, edge-triggered, once for the connection's whole life.
            let flags = EventFlags::IN | EventFlags::OUT | EventFlags::ET;
            epoll::add(epoll, &conn, EventData::new_u64(fd), flags)?;
            log::info!("accepted {peer}");
            let client = Client {
                conn,
                peer,
                queue: Vec::new(),
                eof: false,
                failed: false,
            };
            clients.insert(fd, client);
        }
    }

    pub fn run(listener: TcpListener, read_once: bool) -> io::Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, stop.clone())?;
        }
        listener.set_nonblocking(true)?;
        let epoll = epoll::create(CreateFlags::CLOEXEC)?;
        let flags = EventFlags::IN | EventFlags::ET;
        epoll::add(&epoll, &listener, EventData::new_u64(LISTENER), flags)?;
        let mut clients: HashMap<u64, Client> = HashMap::new();
        let mut events: Vec<epoll::Event> = Vec::with_capacity(1024);
        let mut buf = vec![0u8; 4096];
        // After an accept error (out of descriptors, say), accepting is retried then.
        let mut accept_after: Option<Instant> = None;

        while !stop.load(Ordering::Relaxed) {
            let timeout = accept_after.map(|t| t.saturating_duration_since(Instant::now()));
            let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
            events.clear();
            match epoll::wait(&epoll, spare_capacity(&mut events), timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue, // a signal (Ctrl-C?): check the flag
                Err(e) => return Err(e.into()),
            }
            let retry = accept_after.is_some_and(|t| Instant::now() >= t);
            let listener_ready = events.iter().any(|e| e.data.u64() == LISTENER);
            if retry || (listener_ready && accept_after.is_none()) {
                match accept_all(&epoll, &listener, &mut clients) {
                    Ok(()) if accept_after.take().is_some() => log::info!("accepting again"),
                    Ok(()) => {}
                    Err(e) => {
                        if accept_after.is_none() {
                            log::warn!("accept: {e}; retrying every 100 ms");
                        }
                        accept_after = Some(Instant::now() + Duration::from_millis(100));
                    }
                }
            }
            for event in &events {
                let (key, flags) = (event.data.u64(), event.flags); // copied: a packed struct
                let Some(client) = clients.get_mut(&key) else {
                    continue;
                };
                if !read_once {
                    client.pump(&mut buf); // whatever the edge was: write, then read it all
                } else if flags.intersects(EventFlags::IN | EventFlags::HUP | EventFlags::ERR) {
                    client.read_once(&mut buf); // THE BUG: what is left is never reported
                } else {
                    client.flush();
                }
                if client.done() {
                    if let Some(client) = clients.remove(&key) {
                        epoll::delete(&epoll, &client.conn)?; // out of epoll, then closed
                        if !client.failed {
                            log::info!("{} left", client.peer);
                        }
                    }
                }
            }
        }
        eprintln!("interrupted: closed {} connection(s)", clients.len());
        Ok(())
    }
}

const USAGE: &str = "usage: model_epoll_edge [ADDR] [--read-once]

  ADDR         where to listen (default 127.0.0.1:8088)
  --read-once  the classic bug: one read per edge (a burst's echo stalls)
Linux only. Ctrl-C or SIGTERM stops it, reporting how many connections it closed.";

fn parse_args(parser: &mut lexopt::Parser) -> Result<(String, bool), lexopt::Error> {
    use lexopt::prelude::*;
    let (mut addr, mut read_once) = (None, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("read-once") => read_once = true,
            Value(value) if addr.is_none() => addr = Some(cli::addr(value)?),
            Short('h') | Long("help") => cli::help(USAGE),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok((addr.unwrap_or_else(|| "127.0.0.1:8088".into()), read_once))
}

fn main() -> std::process::ExitCode {
    let (addr, read_once) = cli::parse(USAGE, parse_args);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli::status(run(&addr, read_once))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn run(addr: &str, read_once: bool) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(addr).map_err(cli::about(addr))?;
    let addr = listener.local_addr()?; // the real port, if ADDR asked for port 0
    let mode = match read_once {
        true => "reading ONCE per edge (the bug)",
        false => "reading until WouldBlock",
    };
    eprintln!("model_epoll_edge on {addr}, {mode}; try: cargo run --example echo_client {addr}");
    server::run(listener, read_once)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn run(_addr: &str, _read_once: bool) -> std::io::Result<()> {
    let msg = "needs epoll, which is Linux's (macOS and the BSDs have kqueue)";
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, msg))
}
