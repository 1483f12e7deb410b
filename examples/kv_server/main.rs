//! A key-value server speaking the Redis protocol (RESP2), on selectloop: `redis-cli`,
//! `redis-benchmark` and Redis client libraries talk to it. Strings only, in memory, no
//! persistence. Runs wherever selectloop does; Ctrl-C or SIGTERM stops it cleanly and reports
//! how many connections it closed.
//!
//! ```text
//! cargo run --release --example kv_server -- [ADDR] [--threads N] [flags]  # 127.0.0.1:6380
//! redis-cli -p 6380 set greeting hello          # then: redis-cli -p 6380 get greeting
//! redis-benchmark -p 6380 -q -t ping,set,get,incr,mset -n 100000 -c 50 -P 16
//! telnet 127.0.0.1 6380                         # inline commands: type PING, SET a 1...
//! ```
//!
//! (Port 6380, not Redis's 6379, so as not to collide with a real redis-server.)
//!
//! # Commands
//!
//! `PING [msg]`, `ECHO msg`, `SET key value [EX s | PX ms] [NX | XX]`, `GET key`,
//! `DEL key...`, `EXISTS key...`, `INCR key`, `DECR key`, `MGET key...`, `MSET key value...`,
//! `EXPIRE key s`, `TTL key`, `DBSIZE`, `FLUSHDB [ASYNC | SYNC]`, `QUIT` (replies `+OK`, then
//! closes once the replies are written); and for the tools' start-up, `COMMAND` (an empty
//! array: no command table) and `CONFIG GET` (`save` is empty and `appendonly` is `no`; other
//! parameters are not listed). Names are case-insensitive; replies and errors are Redis's,
//! byte for byte (checked against redis-server 7.0): `-ERR wrong number of arguments for 'get'
//! command`, `-ERR unknown command 'FOO', with args beginning with: 'a' `, `-ERR syntax error`,
//! `-ERR value is not an integer or out of range`...
//!
//! # Protocol
//!
//! Requests are RESP arrays of bulk strings, or inline commands (a line typed in telnet, with
//! Redis's quoting). Requests may be pipelined: every request of one read is run, and their
//! replies go out in one write (`Connection::send` only queues; the connection writes after
//! the read's callbacks). A malformed request is answered as Redis answers it (`-ERR Protocol
//! error: invalid bulk length`, ...), after the requests before it, and the connection is
//! closed once that is written. See `resp.rs`.
//!
//! # Limits
//!
//! A client cannot make the server allocate what it merely declares: every length is checked
//! against its limit as its header arrives, and memory is taken only for bytes received.
//! - `--max-bulk BYTES`: the longest argument (default 16 MiB; Redis: 512 MB);
//! - `--max-args N`: the most arguments in a request (default 1 Mi, as Redis 6);
//! - `--max-inline BYTES`: the longest inline request (default 64 KiB, Redis's);
//! - `--max-request BYTES`: the most bytes of one request, all its arguments together
//!   (default 64 MiB; Redis's `client-query-buffer-limit` is 1 GiB);
//! - `--max-output BYTES`: the most replies queued for a client (default 256 MiB; Redis has
//!   no cap for ordinary clients): a client that pipelines `GET`s of large values without
//!   reading is closed. Reading from a client pauses while 1 MiB of its replies wait (the
//!   connection's back-pressure), so a slow reader never gets near the cap;
//! - `--idle-timeout`, `--frame-timeout`, `--send-timeout SECS`: close a client silent that
//!   long (Redis's `timeout`), slower than that to send a request (slowloris), or that
//!   accepts no reply for that long (each off unless given, as in Redis).
//!
//! The key space itself has no limit (Redis's `maxmemory` is off by default too).
//!
//! # Expiry
//!
//! A key past its deadline is gone for every command at once (checked on each access, and
//! deleted then), and a sweep every 100 ms deletes expired keys nobody asks for, sampling as
//! Redis does so that a sweep is bounded work: see `store.rs`.
//!
//! # Threads
//!
//! `--threads N` runs N loops, one per thread (`examples/common/loops.rs`: `SO_REUSEPORT`
//! listeners on Linux, else one acceptor handing connections out; `--no-reuseport` forces the
//! latter). They share one store: a `Mutex` per shard, one shard with one loop (locked once per
//! read, not per request), 16 per loop with more. A multi-key command locks all its keys'
//! shards (in order, so no two loops wait for each other), so it stays atomic.

#[path = "../common/cli.rs"]
mod cli;
#[path = "../common/loops.rs"]
mod loops;
#[path = "../common/shutdown.rs"]
mod shutdown;

mod commands;
mod resp;
mod store;

use commands::Flow;
use resp::{RespCodec, RespLimits, Sink};
use selectloop::{ConnEvent, Connection, DefaultSelector, Limits, Timeouts};
use std::io;
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use store::{Session, Store};

type Conn = Connection<TcpStream, RespCodec>;

/// The server's settings, from its flags.
#[derive(Clone, Copy, Debug)]
struct Options {
    threads: usize,
    reuse_port: bool,
    resp: RespLimits,
    max_output: usize,
    timeouts: Timeouts,
}

/// How often the expiry sweep runs.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

impl Sink for Conn {
    fn put(&mut self, bytes: &[u8]) {
        // Fails only once the connection is closing, when replies no longer matter.
        let _ = self.send(bytes);
    }

    fn full(&self) -> bool {
        self.queued() > self.limits().hard_cap
    }
}

/// Runs the requests of one read, in order, their replies queued on `conn`; then the protocol
/// error that followed them, if any, and the close. Nothing runs after `QUIT`.
fn serve(store: &Store, conn: &mut Conn, batch: resp::Batch, quit: &mut bool) {
    if *quit {
        return;
    }
    let mut db = Session::new(store); // the shard(s) locked for this batch
    for cmd in batch.commands() {
        if commands::execute(cmd, &mut db, conn) == Flow::Quit {
            *quit = true;
            conn.close();
            return;
        }
        if conn.full() {
            return; // over the output cap: the connection closes itself when this returns
        }
    }
    drop(db);
    if let Some(e) = batch.error {
        log::debug!("{:?}: protocol error: {e:?}", conn.get_ref().peer_addr());
        e.write(conn);
        conn.close();
    }
}

/// Wraps a new client in a connection and registers it.
fn accept(
    sel: &mut DefaultSelector,
    stream: TcpStream,
    store: &Arc<Store>,
    options: &Options,
) -> io::Result<()> {
    stream.set_nodelay(true)?; // replies go out at once, as Redis sets it
    let peer = stream.peer_addr()?;
    log::debug!("accepted {peer}");
    let limits = Limits {
        hard_cap: options.max_output,
        ..Limits::default()
    };
    let conn = Connection::new(stream, RespCodec::new(options.resp))
        .with_limits(limits)?
        .with_timeouts(options.timeouts);
    let (store, mut quit) = (store.clone(), false);
    conn.register(sel, move |_sel, conn, event| {
        match event {
            ConnEvent::Frame(batch) => serve(&store, conn, batch, &mut quit),
            ConnEvent::Drained | ConnEvent::PeerClosed => {} // the replies are flushed, then it closes
            ConnEvent::Closed(None) => log::debug!("{peer} closed"),
            ConnEvent::Closed(Some(e)) => log::debug!("{peer} closed: {e}"),
        }
        Ok(())
    })?;
    Ok(())
}

/// Starts the expiry sweep on this loop. Every loop that has had a client runs the timer, and
/// each tick the first loop to claim it (`next`, shared) sweeps the whole store: one sweep
/// every `SWEEP_EVERY` in all, as long as any loop runs.
fn start_sweeper(sel: &mut DefaultSelector, store: Arc<Store>, next: Arc<AtomicI64>) {
    let mut rng = store::now_ms() as u64 | 1;
    sel.call_repeating(SWEEP_EVERY, move |_sel| {
        let now = store::now_ms();
        let due = next.load(Ordering::Relaxed);
        let step = SWEEP_EVERY.as_millis() as i64;
        if now >= due
            && next
                .compare_exchange(due, now + step - 5, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let deleted = store.sweep(&mut rng);
            if deleted > 0 {
                log::trace!("expiry sweep: {deleted} key(s) deleted");
            }
        }
    });
}

const USAGE: &str = "usage: kv_server [ADDR] [--threads N] [--no-reuseport] [--max-bulk BYTES]
                 [--max-args N] [--max-inline BYTES] [--max-request BYTES] [--max-output BYTES]
                 [--idle-timeout SECS] [--frame-timeout SECS] [--send-timeout SECS]

  ADDR                  where to listen (default 127.0.0.1:6380)
  --threads N           loops, one per thread, sharing the store, 1 to 1024 (default 1)
  --no-reuseport        with --threads, one listener handing connections out, even on Linux
  --max-bulk BYTES      the longest argument (default 16777216: 16 MiB)
  --max-args N          the most arguments in one request (default 1048576)
  --max-inline BYTES    the longest inline request (default 65536)
  --max-request BYTES   the most bytes of one request (default 67108864: 64 MiB)
  --max-output BYTES    close a client with more replies queued (default 268435456: 256 MiB)
  --idle-timeout SECS   close a client that sent and read nothing for SECS
  --frame-timeout SECS  close a client whose request is not complete SECS after its first byte
  --send-timeout SECS   close a client that accepted none of its replies for SECS
SECS may be fractional (0.5); a timeout not given is off. Ctrl-C or SIGTERM stops it,
reporting how many connections it closed.";

fn parse_args(parser: &mut lexopt::Parser) -> Result<(String, Options), lexopt::Error> {
    use lexopt::prelude::*;
    let mut addr = None;
    let (mut threads, mut reuse_port, mut max_output) = (1, true, 256 << 20);
    let (mut resp, mut timeouts) = (RespLimits::default(), Timeouts::default());
    while let Some(arg) = parser.next()? {
        match arg {
            Long("threads") => threads = cli::number(parser, "--threads", 1..=1024)?,
            Long("no-reuseport") => reuse_port = false,
            Long("max-bulk") => resp.max_bulk = cli::bytes(parser, "--max-bulk")?,
            Long("max-args") => resp.max_args = cli::number(parser, "--max-args", ..)?,
            Long("max-inline") => resp.max_inline = cli::bytes(parser, "--max-inline")?,
            Long("max-request") => resp.max_request = cli::bytes(parser, "--max-request")?,
            Long("max-output") => max_output = cli::bytes(parser, "--max-output")?,
            Long("idle-timeout") => timeouts.idle = Some(cli::secs(parser, "--idle-timeout")?),
            Long("frame-timeout") => timeouts.frame = Some(cli::secs(parser, "--frame-timeout")?),
            Long("send-timeout") => timeouts.send = Some(cli::secs(parser, "--send-timeout")?),
            Value(value) if addr.is_none() => addr = Some(cli::addr(value)?),
            Short('h') | Long("help") => cli::help(USAGE),
            _ => return Err(arg.unexpected()),
        }
    }
    if max_output < resp.max_bulk.saturating_add(64) {
        return Err("--max-output must be above --max-bulk (a GET reply must fit)".into());
    }
    let options = Options {
        threads,
        reuse_port,
        resp,
        max_output,
        timeouts,
    };
    Ok((addr.unwrap_or_else(|| "127.0.0.1:6380".into()), options))
}

fn main() -> ExitCode {
    let (addr, options) = cli::parse(USAGE, parse_args);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli::status(run(&addr, options))
}

fn run(addr: &str, options: Options) -> io::Result<()> {
    let addr = cli::resolve(addr).map_err(cli::about(addr))?;
    let store = Arc::new(Store::new(options.threads));
    let next_sweep = Arc::new(AtomicI64::new(0));
    store::now_ms(); // starts the clock
    let factory = move || -> loops::Accepted {
        let (store, next_sweep) = (store.clone(), next_sweep.clone());
        let mut sweeping = false;
        Box::new(move |sel, stream| {
            if !sweeping {
                sweeping = true; // on this loop's first client: the loop is not at hand before
                start_sweeper(sel, store.clone(), next_sweep.clone());
            }
            accept(sel, stream, &store, &options)
        })
    };
    loops::serve::<TcpStream, RespCodec, _>(
        "kv_server",
        addr,
        options.threads,
        options.reuse_port,
        factory,
    )
}
