//! Rung 8 of the I/O-model ladder: the tutorials' UDP "loop server" and its client, on
//! selectloop: a `UdpSocket` is a registration like any other.
//!
//! ```text
//! cargo run --example model_udp -- [ADDR]                           # server; default 127.0.0.1:8088
//! cargo run --example model_udp -- --client [ADDR] [--count N]      # sends N datagrams (default 10)
//! ```
//!
//! UDP has no connections: one socket receives every client's datagrams, each with its sender's
//! address, and the reply is sent to that address — so one registration serves every client,
//! with no `accept` and no per-client state. The server echoes each datagram back unchanged.
//!
//! Two things differ from TCP. A datagram is sent whole or not at all: a non-blocking `send_to`
//! that finds the socket's buffer full fails with `WouldBlock`, and the datagram would be lost
//! if dropped, so it is queued with its address and sent when the socket is writable (WRITE
//! interest on exactly while the queue is not empty). The queue is bounded (1024 datagrams):
//! while it is full the server stops reading, and the kernel drops what arrives meanwhile —
//! which UDP allows, and which the client must cope with anyway. So the client retransmits a
//! datagram whose echo has not come within 200 ms (a timer per datagram, cancelled by the echo),
//! up to 10 times, and ignores late duplicates. Every echo is checked byte for byte.
//!
//! Platforms: any (wherever selectloop runs). On Windows, a `recv_from` may fail with
//! `ConnectionReset`: an earlier `send_to` reached a port where nobody listens (an ICMP
//! message); the server skips it and reads on. Ctrl-C or SIGTERM stops the server cleanly on
//! every platform (on Windows: the console's Ctrl-C, or its closing), and it reports how many
//! datagrams it echoed (UDP has no connections to count).

#[path = "common/cli.rs"]
mod cli;

use selectloop::{DefaultSelector, Events, Selector, TimerHandle, EVENT_READ, EVENT_WRITE};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// At most this many echoes wait for the socket; then the server stops reading.
const MAX_QUEUED: usize = 1024;

/// The server's state besides the socket: echoes the socket could not take yet.
struct Echoes {
    queue: VecDeque<(Vec<u8>, SocketAddr)>,
    buf: Vec<u8>,
    echoed: u64,
}

impl Echoes {
    /// The server's callback: send what is queued, receive and echo, set the interest.
    fn on_ready(
        &mut self,
        sel: &mut Selector,
        sock: &mut UdpSocket,
        mask: Events,
    ) -> io::Result<()> {
        if mask.is_writable() {
            self.flush(sock);
        }
        while mask.is_readable() && self.queue.len() < MAX_QUEUED {
            let (n, peer) = match sock.recv_from(&mut self.buf) {
                Ok(received) => received,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // Windows: an ICMP "port unreachable" for an earlier send; nothing to echo.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            };
            self.queue.push_back((self.buf[..n].to_vec(), peer));
            self.flush(sock); // usually sent at once
        }
        let events = match self.queue.len() {
            0 => EVENT_READ,
            MAX_QUEUED.. => EVENT_WRITE, // full: stop reading until there is room
            _ => EVENT_READ | EVENT_WRITE,
        };
        if events != sel.get_key(&*sock)?.events() {
            sel.modify(&*sock, events)?;
        }
        Ok(())
    }

    /// Sends queued echoes until the queue is empty or the socket is full.
    fn flush(&mut self, sock: &UdpSocket) {
        while let Some((datagram, peer)) = self.queue.front() {
            match sock.send_to(datagram, peer) {
                Ok(_) => self.echoed += 1, // a datagram goes whole
                Err(e) if e.kind() == ErrorKind::WouldBlock => return, // full: wait for WRITE
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // This datagram cannot be sent (its sender's address is unreachable, say):
                // drop it, as the network might have; the others still go.
                Err(e) => log::warn!("send_to {peer}: {e}; dropping that echo"),
            }
            self.queue.pop_front();
        }
    }
}

fn server(addr: SocketAddr) -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let sock = UdpSocket::bind(addr).map_err(cli::about(addr))?;
    sock.set_nonblocking(true)?;
    let addr = sock.local_addr()?; // the real port, if ADDR asked for port 0
    let echoes = Rc::new(RefCell::new(Echoes {
        queue: VecDeque::new(),
        buf: vec![0u8; 65536], // the largest UDP datagram
        echoed: 0,
    }));
    let state = echoes.clone();
    sel.register(sock, EVENT_READ, move |sel, sock, mask| {
        state.borrow_mut().on_ready(sel, sock, mask)
    })?;
    for signal in [selectloop::signals::SIGINT, selectloop::signals::SIGTERM] {
        sel.add_signal_handler(signal, |sel, _| sel.stop())?;
    }
    eprintln!("model_udp on {addr}; try: cargo run --example model_udp -- --client {addr}");
    sel.run()?; // until Ctrl-C or SIGTERM
    sel.close()?;
    eprintln!("interrupted: echoed {} datagram(s)", echoes.borrow().echoed);
    Ok(())
}

/// How long the client waits for an echo before sending the datagram again, and how often.
const RETRY_AFTER: Duration = Duration::from_millis(200);
const TRIES: u32 = 10;

/// The client's state: the datagram in flight, and the tally. It sends only from the socket's
/// own callback: to send, it asks for WRITE (a UDP socket with room in its buffer is writable),
/// and the retransmission timer does the same.
struct Client {
    addr: SocketAddr,
    count: u64,
    /// The datagram in flight (`count` once all are echoed).
    next: u64,
    /// The datagram in flight is still to be sent (first time, or again after a timeout).
    to_send: bool,
    tries: u32,
    retransmitted: u64,
    duplicates: u64,
    timer: Option<TimerHandle>,
    failure: Option<io::Error>,
}

fn datagram(i: u64, count: u64) -> Vec<u8> {
    format!("datagram {i} of {count}").into_bytes()
}

impl Client {
    /// The client's callback: check each echo (the expected one moves on to the next datagram),
    /// then send what is to be sent.
    fn on_ready(
        state: &Rc<RefCell<Client>>,
        sel: &mut Selector,
        sock: &mut UdpSocket,
        mask: Events,
    ) -> io::Result<()> {
        let mut client = state.borrow_mut();
        let mut buf = [0u8; 1500];
        while mask.is_readable() && client.failure.is_none() && client.next < client.count {
            match sock.recv(&mut buf) {
                Ok(n) => client.check(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    let msg = format!(
                        "{}: nothing listens there (ICMP port unreachable)",
                        client.addr
                    );
                    client.failure = Some(io::Error::new(e.kind(), msg));
                }
                Err(e) => return Err(e),
            }
        }
        if client.failure.is_some() || client.next == client.count {
            sel.stop(); // done, or failed
            return Ok(());
        }
        if client.to_send {
            if client.tries == TRIES {
                let (addr, next) = (client.addr, client.next);
                let msg = format!("{addr}: no echo of datagram {next} after {TRIES} tries");
                client.failure = Some(io::Error::new(ErrorKind::TimedOut, msg));
                sel.stop();
                return Ok(());
            }
            match sock.send(&datagram(client.next, client.count)) {
                Ok(_) => {
                    client.to_send = false;
                    client.tries += 1;
                    let (state, key) = (state.clone(), sel.get_key(&*sock)?);
                    // No echo within RETRY_AFTER: send it again (from this callback).
                    client.timer = Some(sel.call_later(RETRY_AFTER, move |sel| {
                        let mut client = state.borrow_mut();
                        client.to_send = true;
                        client.retransmitted += 1;
                        if let Err(e) = sel.modify(&key, EVENT_READ | EVENT_WRITE) {
                            client.failure = Some(e);
                            sel.stop();
                        }
                    }));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {} // full: WRITE comes again
                Err(e) => return Err(e),
            }
        }
        let events = match client.to_send {
            true => EVENT_READ | EVENT_WRITE,
            false => EVENT_READ,
        };
        if events != sel.get_key(&*sock)?.events() {
            sel.modify(&*sock, events)?;
        }
        Ok(())
    }

    /// Checks one echo against the datagram in flight.
    fn check(&mut self, echo: &[u8]) {
        let (next, count) = (self.next, self.count);
        if echo == datagram(next, count) {
            if let Some(timer) = self.timer.take() {
                timer.cancel();
            }
            (self.next, self.tries, self.to_send) = (next + 1, 0, next + 1 < count);
        } else if (0..next)
            .rev()
            .take(TRIES as usize)
            .any(|i| echo == datagram(i, count))
        {
            self.duplicates += 1; // a late echo of a datagram sent twice
        } else {
            let sent = String::from_utf8_lossy(&datagram(next, count)).into_owned();
            let msg = format!(
                "sent {sent:?}, got back {:?}",
                String::from_utf8_lossy(echo)
            );
            self.failure = Some(io::Error::new(ErrorKind::InvalidData, msg));
        }
    }
}

fn client(addr: SocketAddr, count: u64) -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => ([0u16; 8], 0).into(),
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(addr)?; // only this server's datagrams are received
    sock.set_nonblocking(true)?;
    let state = Rc::new(RefCell::new(Client {
        addr,
        count,
        next: 0,
        to_send: count > 0,
        tries: 0,
        retransmitted: 0,
        duplicates: 0,
        timer: None,
        failure: None,
    }));
    let start = Instant::now();
    let callback = {
        let state = state.clone();
        move |sel: &mut Selector, sock: &mut UdpSocket, mask| {
            Client::on_ready(&state, sel, sock, mask)
        }
    };
    sel.register(sock, EVENT_READ | EVENT_WRITE, callback)?; // WRITE: the first send
    sel.run()?; // until every datagram is echoed, or a failure stops it
    let took = start.elapsed();
    let client = state.borrow();
    if let Some(e) = client.failure.as_ref() {
        return Err(io::Error::new(e.kind(), e.to_string()));
    }
    println!(
        "{count} datagrams echoed intact in {took:.2?} ({:.0}/s); {} retransmitted, {} late duplicates",
        count as f64 / took.as_secs_f64(),
        client.retransmitted,
        client.duplicates
    );
    Ok(())
}

const USAGE: &str = "usage: model_udp [ADDR]                          the echo server
       model_udp --client [ADDR] [--count N]    send N datagrams (default 10), check each echo

ADDR defaults to 127.0.0.1:8088. Ctrl-C or SIGTERM stops the server, reporting how many
datagrams it echoed.";

fn parse_args(parser: &mut lexopt::Parser) -> Result<(String, bool, u64), lexopt::Error> {
    use lexopt::prelude::*;
    let (mut addr, mut as_client, mut count) = (None, false, 10);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("client") => as_client = true,
            Long("count") => count = cli::number(parser, "--count", ..)?,
            Value(value) if addr.is_none() => addr = Some(cli::addr(value)?),
            Short('h') | Long("help") => cli::help(USAGE),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok((
        addr.unwrap_or_else(|| "127.0.0.1:8088".into()),
        as_client,
        count,
    ))
}

fn main() -> ExitCode {
    let (addr, as_client, count) = cli::parse(USAGE, parse_args);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let run = || {
        let resolved = cli::resolve(&addr).map_err(cli::about(&addr))?;
        match as_client {
            true => client(resolved, count),
            false => server(resolved),
        }
    };
    cli::status(run())
}
