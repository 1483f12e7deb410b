//! A client for the echo servers: interactive (it also serves as the chat server's client: it
//! prints lines as they come, as `nc` does), or `--count N` to send N lines and check each
//! echo — a load generator on selectloop itself. Runs wherever selectloop does.
//!
//! ```text
//! cargo run --example echo_client [ADDR]              # type lines, see them echoed
//! cargo run --example echo_client [ADDR] --count 1000 # exits non-zero on any mismatch
//! cargo run --example echo_client [ADDR] --count 100 --connections 1000 --size 64
//! ```
//!
//! With `--count`, `--connections C` connections are opened at once from this one thread, with
//! no thread per connection: each is a non-blocking connect ([`Selector::connect`]) whose
//! stream becomes a [`Connection`]. Each connection does N round trips, one line in flight at
//! a time (ping-pong), checks that every byte of each echo is the byte it sent, then closes.
//! `--size BYTES` makes every line exactly BYTES long (newline included) and of digits only, so
//! an upper-casing server returns it unchanged too. At the end it prints the lines echoed and
//! the messages per second (connecting included), then the round-trip latency percentiles; it
//! exits non-zero on the first mismatch, early close or error, or when no echo at all has
//! come for `--timeout` seconds (also each connect's timeout). `scripts/count.sh` and the
//! I/O-model comparison (`benches/ladder.rs`) drive the servers with it.

#[path = "common/cli.rs"]
mod cli;

use selectloop::{Bytes, ConnEvent, Connection, DefaultSelector, Selector};
use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

struct Args {
    addr: String,
    count: Option<u64>,
    connections: usize,
    size: Option<usize>,
    timeout: Duration,
}

const USAGE: &str = "usage: echo_client [ADDR] [--count N [--connections C] [--size BYTES]] \
[--timeout SECS]

  ADDR              the server (default 127.0.0.1:8088); without --count, lines typed are sent
                    and lines received printed as they come
  --count N         send N lines and check each echo, then exit
  --connections C   C connections at once, N lines each (default 1)
  --size BYTES      lines of exactly BYTES bytes (newline included, at least 2), digits only
  --timeout SECS    give up after SECS with no echo (default 10; may be fractional); typing,
                    how long to wait for the server to close after Ctrl-D
Exit status: 0 if every echo came back intact, 1 otherwise, 2 for a bad command line.";

fn parse_args(parser: &mut lexopt::Parser) -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut addr = None;
    let mut args = Args {
        addr: String::new(),
        count: None,
        connections: 1,
        size: None,
        timeout: Duration::from_secs(10),
    };
    while let Some(arg) = parser.next()? {
        match arg {
            Long("count") => args.count = Some(cli::number(parser, "--count", ..)?),
            Long("connections") => args.connections = cli::number(parser, "--connections", 1..)?,
            Long("size") => args.size = Some(cli::number(parser, "--size", 2..)?),
            Long("timeout") => args.timeout = cli::secs(parser, "--timeout")?,
            Value(value) if addr.is_none() => addr = Some(cli::addr(value)?),
            Short('h') | Long("help") => cli::help(USAGE),
            _ => return Err(arg.unexpected()),
        }
    }
    if args.timeout.is_zero() {
        return Err("--timeout: must be above 0 seconds".into());
    }
    args.addr = addr.unwrap_or_else(|| "127.0.0.1:8088".into());
    Ok(args)
}

fn main() -> ExitCode {
    let args = cli::parse(USAGE, parse_args);
    let result = match args.count {
        Some(n) => load(&args, n),
        None => interactive(&args.addr, args.timeout),
    };
    cli::status(result)
}

/// Sends each line typed on stdin and prints each line the server sends as it arrives, like
/// `nc`: an echo server's replies, or a chat server's messages from others (which come whether
/// or not this user types). Plain blocking sockets and a thread for the server's side, which
/// is all one interactive connection needs. At the end of stdin (Ctrl-D) it half-closes and
/// prints what still comes until the server closes, for at most `timeout`.
fn interactive(addr: &str, timeout: Duration) -> io::Result<()> {
    let mut conn = TcpStream::connect(addr).map_err(cli::about(addr))?;
    let reader = BufReader::new(conn.try_clone()?);
    let (done, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = reader.lines().try_for_each(|line| {
            println!("received: {}", line?);
            Ok(())
        });
        let _ = done.send(result);
    });
    eprintln!("connected to {addr}; type lines, Ctrl-D to quit");
    for line in io::stdin().lock().lines() {
        writeln!(conn, "{}", line?)?;
    }
    conn.shutdown(std::net::Shutdown::Write)?;
    match printed.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => {
            let _ = conn.shutdown(std::net::Shutdown::Both); // ends the printer's read
            let msg = format!("the server did not close within {timeout:?} of the end of input");
            Err(io::Error::new(ErrorKind::TimedOut, msg))
        }
    }
}

/// The `i`th of `n` lines: "line i of n", or exactly `size` bytes: `i` in zero-padded digits
/// (its last `size - 1` digits if it has more) and a newline.
fn line(i: u64, n: u64, size: Option<usize>) -> Vec<u8> {
    match size {
        None => format!("line {i} of {n}\n").into_bytes(),
        Some(size) => {
            let digits = format!("{i:0width$}", width = size - 1);
            format!("{}\n", &digits[digits.len() - (size - 1)..]).into_bytes()
        }
    }
}

/// What the connections share: the results so far.
struct Load {
    n: u64,
    size: Option<usize>,
    /// Round-trip times of every echo so far.
    latencies: RefCell<Histogram>,
    /// Connections that did their `n` round trips and closed.
    finished: Cell<usize>,
    /// The first failure; it ends the run.
    failure: RefCell<Option<io::Error>>,
    /// When the last echo (or connection) completed: the watchdog's reference.
    progress: Cell<Instant>,
}

impl Load {
    fn fail(&self, sel: &mut Selector, e: io::Error) {
        self.failure.borrow_mut().get_or_insert(e);
        sel.stop();
    }
}

/// One connection's state: its round trips so far, the line in flight and what came back.
struct Client {
    id: usize,
    done: u64,
    line: Vec<u8>,
    echo: Vec<u8>,
    sent_at: Instant,
}

type Conn = Connection<TcpStream, Bytes>;

/// Runs `args.connections` connections at once, each checking `n` echoes; prints the totals.
fn load(args: &Args, n: u64) -> io::Result<()> {
    let addr = cli::resolve(&args.addr).map_err(cli::about(&args.addr))?;
    let mut sel = DefaultSelector::new()?;
    let load = Rc::new(Load {
        n,
        size: args.size,
        latencies: RefCell::new(Histogram::default()),
        finished: Cell::new(0),
        failure: RefCell::new(None),
        progress: Cell::new(Instant::now()),
    });
    let start = Instant::now();
    for id in 0..args.connections {
        let load = load.clone();
        sel.connect(addr, args.timeout, move |sel, result| match result {
            Ok(stream) => {
                if let Err(e) = start_client(sel, &load, stream, id) {
                    load.fail(sel, e);
                }
            }
            Err(e) => load.fail(
                sel,
                io::Error::new(e.kind(), format!("connection {id}: {e}")),
            ),
        })?;
    }
    // The watchdog: a server that stops answering fails the run instead of hanging it.
    let (watch, timeout, connections) = (load.clone(), args.timeout, args.connections);
    let watchdog = sel.call_repeating(Duration::from_millis(100), move |sel| {
        if watch.progress.get().elapsed() > timeout {
            let waiting = connections - watch.finished.get();
            let msg = format!("no echo for {timeout:?}; {waiting} connection(s) still waiting");
            watch.fail(sel, io::Error::new(ErrorKind::TimedOut, msg));
        }
    });
    while load.finished.get() < args.connections && load.failure.borrow().is_none() {
        sel.run_once(None)?;
    }
    watchdog.cancel();
    if let Some(e) = load.failure.borrow_mut().take() {
        return Err(e);
    }
    let took = start.elapsed();
    let latencies = load.latencies.borrow();
    let total = latencies.count;
    let rate = total as f64 / took.as_secs_f64();
    println!(
        "{total} lines echoed intact over {} connection(s) in {took:.2?} ({rate:.0}/s)",
        args.connections
    );
    if total > 0 {
        let us = |q: f64| latencies.quantile(q) as f64 / 1e3;
        println!(
            "round trip (µs): p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            us(0.5),
            us(0.9),
            us(0.99),
            latencies.max as f64 / 1e3
        );
    }
    Ok(())
}

/// A connected stream becomes a connection that sends its first line.
fn start_client(
    sel: &mut Selector,
    load: &Rc<Load>,
    stream: TcpStream,
    id: usize,
) -> io::Result<()> {
    stream.set_nodelay(true)?; // one small line at a time: no waiting to coalesce
    let mut client = Client {
        id,
        done: 0,
        line: line(0, load.n, load.size),
        echo: Vec::new(),
        sent_at: Instant::now(),
    };
    let first = (load.n > 0).then(|| client.line.clone());
    let shared = load.clone();
    let key = Connection::new(stream, Bytes).register(sel, move |sel, conn, event| {
        if let Err(e) = on_event(&shared, &mut client, conn, event) {
            shared.fail(sel, e);
        }
        Ok(())
    })?;
    Conn::with(sel, &key, |conn| match first {
        Some(line) => conn.send(&line),
        None => {
            conn.close(); // --count 0: connect, then close
            Ok(())
        }
    })?
}

/// One connection's events: each piece of echo is checked as it comes; a whole echo sends the
/// next line, the last one closes the connection.
fn on_event(
    load: &Load,
    client: &mut Client,
    conn: &mut Conn,
    event: ConnEvent<&[u8]>,
) -> io::Result<()> {
    let id = client.id;
    match event {
        ConnEvent::Frame(data) => {
            client.echo.extend_from_slice(data);
            let (got, sent) = (&client.echo, &client.line);
            if got.len() > sent.len() || !sent.starts_with(got) {
                let msg = format!(
                    "connection {id}, line {}: sent {:?}, got back {:?}",
                    client.done,
                    String::from_utf8_lossy(sent),
                    String::from_utf8_lossy(got)
                );
                return Err(io::Error::new(ErrorKind::InvalidData, msg));
            }
            if got.len() < sent.len() {
                return Ok(()); // the rest of the echo is on its way
            }
            let now = Instant::now();
            let took = (now - client.sent_at).as_nanos();
            load.latencies
                .borrow_mut()
                .record(u64::try_from(took).unwrap_or(u64::MAX));
            load.progress.set(now);
            client.done += 1;
            client.echo.clear();
            if client.done == load.n {
                conn.close(); // graceful: the server reads end of file
            } else {
                client.line = line(client.done, load.n, load.size);
                client.sent_at = Instant::now();
                conn.send(&client.line)?;
            }
        }
        ConnEvent::PeerClosed if client.done < load.n => {
            let msg = format!(
                "connection {id}: the server closed it after {} of {} echoes",
                client.done, load.n
            );
            return Err(io::Error::new(ErrorKind::UnexpectedEof, msg));
        }
        ConnEvent::PeerClosed | ConnEvent::Drained => {} // one line in flight: nothing to refill
        ConnEvent::Closed(None) if client.done == load.n => {
            load.finished.set(load.finished.get() + 1);
            load.progress.set(Instant::now());
        }
        ConnEvent::Closed(None) => {
            let msg = format!(
                "connection {id}: closed after {} of {} echoes",
                client.done, load.n
            );
            return Err(io::Error::new(ErrorKind::UnexpectedEof, msg));
        }
        ConnEvent::Closed(Some(e)) => {
            let msg = format!(
                "connection {id}, after {} of {} echoes: {e}",
                client.done, load.n
            );
            return Err(io::Error::new(e.kind(), msg));
        }
        _ => {} // events added in later versions of selectloop
    }
    Ok(())
}

/// Round-trip times in a log-linear histogram (HdrHistogram's idea): 64 buckets per power of
/// two, so a percentile is within 1.6% of the true value, in 30 KiB whatever the count (a
/// list of every time would take 8 bytes per message).
struct Histogram {
    counts: Vec<u64>,
    count: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; 59 * 64],
            count: 0,
            max: 0,
        }
    }
}

impl Histogram {
    /// Values below 64 have a bucket each; above, bucket `(e - 5) * 64 + m - 64` holds the
    /// values whose top 7 bits are `m` (64 to 127) and whose highest bit is bit `e`.
    fn bucket(value: u64) -> usize {
        if value < 64 {
            return value as usize;
        }
        let e = 63 - value.leading_zeros() as usize; // 6 to 63
        (e - 5) * 64 + (value >> (e - 6)) as usize - 64
    }

    /// The smallest value in bucket `i`, and the width of the bucket.
    fn range(i: usize) -> (u64, u64) {
        if i < 64 {
            return (i as u64, 1);
        }
        let (block, m) = (i / 64, (64 + i % 64) as u64);
        (m << (block - 1), 1 << (block - 1))
    }

    fn record(&mut self, value: u64) {
        self.counts[Self::bucket(value)] += 1;
        self.count += 1;
        self.max = self.max.max(value);
    }

    /// The value at quantile `q` (0 to 1): the middle of its bucket, at most the maximum.
    fn quantile(&self, q: f64) -> u64 {
        let rank = ((self.count as f64 * q).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, width) = Self::range(i);
                return (low + width / 2).min(self.max);
            }
        }
        self.max
    }
}
