//! A key-value server speaking the Redis protocol (RESP2, and RESP3 after `HELLO 3`), on
//! selectloop: `redis-cli`,
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
//! `PING [msg]`, `ECHO msg`, `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT unix-s |
//! PXAT unix-ms | KEEPTTL]` (Redis 7.0's combinations: `NX GET` is allowed, two deadlines or
//! one with `KEEPTTL` are a syntax error), `GET key`, `GETSET key value`, `GETDEL key`,
//! `STRLEN key`, `APPEND key value` (up to `--max-bulk` in all), `DEL key...`,
//! `EXISTS key...`, `INCR key`, `DECR key`, `INCRBY key n`, `DECRBY key n`, `MGET key...`,
//! `MSET key value...`, `EXPIRE key s [NX | XX | GT | LT]`, `PEXPIRE key ms [NX | XX | GT |
//! LT]`, `TTL key`, `PTTL key`, `PERSIST key`, `KEYS pattern`, `SCAN cursor [MATCH pattern]
//! [COUNT n] [TYPE type]` (Redis's glob patterns, `glob.rs`; a key present from a scan's
//! first call to its last is given at least once, each call looking at about `COUNT` keys),
//! `DBSIZE`, `FLUSHDB [ASYNC | SYNC]`, `FLUSHALL [ASYNC | SYNC]`, `SELECT db` (16 databases,
//! 0 to 15, as Redis by default), `MULTI`, `EXEC`, `DISCARD` (see Transactions below),
//! `TYPE key` (`string` or `none`), `TIME`, `INFO [section ...]`, `CLIENT SETNAME name` (the connection's; empty clears it; only bytes
//! `!` to `~`), `CLIENT GETNAME`, `CLIENT ID` (unique, increasing across the loops of
//! `--threads`), `HELLO [2 | 3 [AUTH user password] [SETNAME name]]` (Redis's handshake
//! reply, its `version` INFO's `7.0.0` and its `id` `CLIENT ID`'s; `HELLO 3` switches the
//! connection to RESP3, as redis-py 8 asks on every connection: nulls are `_`, `HELLO`'s and
//! `CONFIG GET`'s replies maps, `INFO`'s a verbatim text, the rest as in RESP2; any other
//! version is `-NOPROTO unsupported protocol version`; `AUTH` succeeds for the user
//! `default`, with any password, as in a Redis without a password),
//! `QUIT` (replies `+OK`, then closes once the replies are written); and for the tools'
//! start-up, `COMMAND` (an empty array: no command table) and `CONFIG GET` (`save` is empty
//! and `appendonly` is `no`; other parameters are not listed). Names are case-insensitive;
//! replies and errors are Redis's, byte for byte (checked against redis-server 7.0): `-ERR
//! wrong number of arguments for 'get' command`, `-ERR unknown command 'FOO', with args
//! beginning with: 'a' `, `-ERR syntax error`, `-ERR value is not an integer or out of
//! range`...
//!
//! `INFO` answers as Redis 7.0 does (`redis_version:7.0.0`, the protocol level imitated), in
//! its layout, with the sections `server`, `clients`, `memory`, `stats`, `cluster` and `keyspace`
//! (`default`, `all` or none for all of them; several at once), and only the fields
//! kv_server has a true value for: connections, commands run (and per second, sampled as
//! Redis samples it), expired keys, keyspace hits and misses, keys and keys with a deadline,
//! the store's memory and the resident set size; so `redis-cli info` and `redis-cli --stat`
//! work. The counters are shared by the loops of `--threads`. See `info.rs`.
//!
//! # Protocol
//!
//! Requests are RESP arrays of bulk strings, or inline commands (a line typed in telnet, with
//! Redis's quoting). Requests may be pipelined: the requests of one read run in order, and
//! their replies go out in one write (`Connection::send` only queues; the connection writes
//! after the read's callbacks). While more than the connection's high-water mark (1 MiB) of a
//! client's replies waits to be written, its next requests wait too, and run, in order, as it
//! reads (`ConnEvent::Drained`): a client that pipelines many GETs of large values and reads
//! slowly gets every reply, and costs the server about one read's requests and 1 MiB of
//! replies plus one, not the replies of all it sent. A malformed request is answered as Redis answers
//! it (`-ERR Protocol error: invalid bulk length`, ...), after the requests before it, and the
//! connection is closed once that is written. See `resp.rs`.
//!
//! # Transactions
//!
//! After `MULTI`, a client's commands are checked (name, number of arguments, subcommand) and
//! queued (`+QUEUED`); one refused gets its error, and dooms the transaction: `EXEC` then
//! discards it all (`-EXECABORT`), as Redis does. `EXEC` runs the queue with every shard of
//! the store locked, so no other loop of `--threads` sees the store between two of its
//! commands, and answers their replies in one array (each command's error in its place, the
//! others still run: Redis has no rollback). `DISCARD` drops the queue. `WATCH` is not
//! supported (unknown command). A transaction may queue up to `--max-request` bytes, and its
//! replies together are bounded as any reply (see Limits): over either, one error answers it.
//!
//! # Limits
//!
//! A client cannot make the server allocate what it merely declares: every length is checked
//! against its limit as its header arrives, and memory is taken only for bytes received.
//! A request over `--max-bulk` or `--max-request` is read to its end and dropped, storing
//! nothing, and then answered with its error, and the connection closed: a client that
//! writes its whole request before reading (`redis-cli -x SET k < big`) gets the error,
//! where closing at once would reset it mid-write (one declaring over 1 GiB is refused at
//! once; see `resp.rs`).
//! - `--max-bulk BYTES`: the longest argument (default 16 MiB; Redis: 512 MB);
//! - `--max-args N`: the most arguments in a request (default 1 Mi, as Redis 6);
//! - `--max-inline BYTES`: the longest inline request (default 64 KiB, Redis's);
//! - `--max-request BYTES`: the most bytes of one request, all its arguments together
//!   (default 64 MiB; Redis's `client-query-buffer-limit` is 1 GiB), and of the commands one
//!   transaction queues;
//! - `--max-output BYTES`: the most replies queued for a client (default 256 MiB; Redis has
//!   no cap for ordinary clients). Since a request runs only while at most 1 MiB is queued,
//!   the cap bounds one reply: a reply larger than the cap less 1 MiB (an MGET of many large
//!   values) is not sent, nor the command run; the client gets one error reply instead
//!   (`-ERR reply of N bytes is over the M-byte limit ...`), logged at warn, and stays in
//!   step (see `commands.rs`). The cap must leave room for the largest GET reply: at least
//!   `--max-bulk` plus 1 MiB and 32 bytes;
//! - `--idle-timeout`, `--frame-timeout`, `--send-timeout SECS`: close a client silent that
//!   long (Redis's `timeout`), slower than that to send a request (slowloris), or that
//!   accepts no reply for that long (each off unless given, as in Redis).
//!
//! The key space itself has no limit (Redis's `maxmemory` is off by default too).
//!
//! # Expiry
//!
//! A key past its deadline is gone for every command at once (checked on each access, and
//! deleted then), and a sweep deletes expired keys nobody asks for, as Redis's active expiry
//! does: every 100 ms it samples keys with a deadline, and goes on while samples find more
//! than 10% expired, for at most 25 ms. A sweep that runs out of time is followed by fast
//! sweeps of 1 ms every 2 ms on its loop, and by the next tick of any loop, until it has
//! caught up: keys expiring as fast as the server takes them are swept as fast, and the loop
//! is kept from its clients for at most a slow sweep's 25 ms at a time. See `store.rs`, and
//! `docs/kv_expiry.md` for the figures.
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
mod glob;
mod info;
mod resp;
mod store;

use commands::{Client, Flow};
use resp::{RespCodec, RespLimits, Sink};
use selectloop::{ConnEvent, Connection, DefaultSelector, Limits, Timeouts};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::rc::Rc;
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

/// How often the expiry sweep runs...
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// ...and the most time one sweep takes: a quarter of the period, as Redis's slow cycle.
const SWEEP_BUDGET: Duration = Duration::from_millis(25);

/// After a sweep that ran out of time, a fast sweep of at most this long follows on the same
/// loop `FAST_GAP` later, and so on while they run out of time too (Redis's fast cycle: 1 ms,
/// not more often than every 2 ms). The loop then answers within about 1 ms between two fast
/// sweeps, and gives them half its time.
const FAST_BUDGET: Duration = Duration::from_millis(1);
const FAST_GAP: Duration = Duration::from_millis(1);

impl Sink for Conn {
    fn put(&mut self, bytes: &[u8]) {
        // Fails only once the connection is closing, when replies no longer matter.
        let _ = self.send(bytes);
    }
}

/// A client's requests received and not run yet, in order: whole batches (one per read), the
/// first begun at request `next`. They wait while more than the high-water mark of replies
/// is queued (see `serve`).
#[derive(Debug, Default)]
struct Backlog {
    batches: VecDeque<resp::Batch>,
    next: usize,
    /// `QUIT` ran, or a protocol error was answered: nothing more runs.
    ended: bool,
}

/// Runs the client's waiting requests, then those of `new` (a batch just received), in
/// order, their replies queued on `conn`, each only while at most the high-water mark is
/// queued: the rest wait for `Drained`. So a client that pipelines more than it reads costs
/// at most about one read's requests, the high-water mark and one reply, and never reaches
/// the output cap (`--max-output`, which a reply may take up to, less the mark: see
/// `commands.rs`). (The connection reads nothing, and hands over no batch, from the moment
/// its queue passes the high-water mark until the client has read it down to the low-water
/// mark; so a client that keeps reading may have a new batch read while requests wait, one
/// read for every 768 KiB of replies it reads: it waits behind the others and costs its own
/// bytes, never its replies.) After a batch's requests, the protocol error that followed
/// them, if any, and the close. Nothing runs after `QUIT`.
#[inline(always)] // see `run`
fn serve(
    store: &Store,
    conn: &mut Conn,
    client: &mut Client,
    backlog: &mut Backlog,
    new: Option<resp::Batch>,
    peer: SocketAddr,
) {
    if backlog.ended {
        return;
    }
    // Locks a shard when a request needs it, until it returns.
    let mut db = Session::new(store, client.db());
    while let Some(batch) = backlog.batches.front() {
        match run(batch, backlog.next, &mut db, conn, client, peer) {
            Ran::Done => {
                backlog.batches.pop_front();
                backlog.next = 0;
            }
            Ran::Waiting(next) => {
                backlog.next = next;
                backlog.batches.extend(new); // behind the others
                return;
            }
            Ran::Ended => {
                *backlog = Backlog {
                    ended: true,
                    ..Backlog::default()
                };
                return;
            }
        }
    }
    // Nothing waits (the usual case): the new batch runs straight away, and is kept only if
    // some of it must wait.
    if let Some(batch) = new {
        match run(&batch, 0, &mut db, conn, client, peer) {
            Ran::Done => {}
            Ran::Waiting(next) => {
                backlog.next = next;
                backlog.batches.push_back(batch);
            }
            Ran::Ended => backlog.ended = true,
        }
    }
}

/// What running a batch's requests came to.
enum Ran {
    /// All its requests ran, and no protocol error followed them.
    Done,
    /// Request `.0` (or, past the last, the protocol error) waits: the queue is over the
    /// high-water mark.
    Waiting(usize),
    /// `QUIT` ran, or the protocol error was answered: the connection is closing.
    Ended,
}

/// Runs `batch`'s requests from request `from` on (see `serve`). Inlined, as `serve` is into
/// the connection's callback: as calls, the two cost 3% of the instructions of a request sent
/// alone (callgrind).
#[inline(always)]
fn run(
    batch: &resp::Batch,
    from: usize,
    db: &mut Session<'_>,
    conn: &mut Conn,
    client: &mut Client,
    peer: SocketAddr,
) -> Ran {
    let limits = conn.limits();
    let max_reply = limits.hard_cap.saturating_sub(limits.high_water);
    for (i, cmd) in (from..).zip(batch.commands_from(from)) {
        // `Drained` comes once the client has read the queue down to the low-water mark.
        if conn.queued() > limits.high_water {
            return Ran::Waiting(i);
        }
        match commands::execute(cmd, db, conn, client, max_reply) {
            Flow::Continue => {}
            Flow::Quit => {
                conn.close();
                return Ran::Ended;
            }
            Flow::TooLarge { size } => log::warn!(
                "{peer}: {} refused: its reply of {size} bytes is over the {max_reply}-byte \
                 limit (--max-output {} less the high-water mark {}); answered with an error",
                String::from_utf8_lossy(cmd.get(0)),
                limits.hard_cap,
                limits.high_water
            ),
        }
    }
    let Some(e) = batch.error else {
        return Ran::Done;
    };
    if conn.queued() > limits.high_water {
        return Ran::Waiting(batch.len());
    }
    log::debug!("{peer}: protocol error: {e:?}");
    e.write(conn);
    conn.close();
    Ran::Ended
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
    let stats = store.stats();
    if stats.needs_port() {
        // INFO's tcp_port: the listener's (the address asked for may have had port 0).
        if let Ok(local) = stream.local_addr() {
            stats.set_port(local.port());
        }
    }
    let conn = Connection::new(stream, RespCodec::new(options.resp))
        .with_limits(limits)?
        .with_timeouts(options.timeouts);
    let (store, mut backlog) = (store.clone(), Backlog::default());
    let mut client = Client::new(stats.next_client_id(), options.resp.max_request);
    conn.register(sel, move |_sel, conn, event| {
        match event {
            ConnEvent::Frame(batch) => {
                serve(&store, conn, &mut client, &mut backlog, Some(batch), peer)
            }
            ConnEvent::Drained => serve(&store, conn, &mut client, &mut backlog, None, peer),
            // What is queued is flushed, and what waits runs on `Drained`; then it closes.
            ConnEvent::PeerClosed => {}
            ConnEvent::Closed(reason) => {
                backlog = Backlog::default();
                store.stats().connection_closed();
                match reason {
                    None => log::debug!("{peer} closed"),
                    Some(e) => log::debug!("{peer} closed: {e}"),
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    stats.connection_opened(); // `Closed`, the last event, comes from the loop: not before this
    Ok(())
}

/// A loop's part in the expiry sweep.
struct Sweeper {
    store: Arc<Store>,
    /// When the next sweep is due (ms, `store::now_ms`), shared by the loops.
    next: Arc<AtomicI64>,
    rng: u64,
    /// A fast sweep is scheduled on this loop.
    fast: bool,
}

/// Starts the expiry sweep on this loop. Every loop that has had a client runs the timer, and
/// each tick the first loop to claim it (`next`, shared) sweeps the store, for at most
/// `SWEEP_BUDGET`: one sweep every `SWEEP_EVERY` in all, as long as any loop runs. A sweep
/// that runs out of time with expired keys left makes the next one due at once, so that the
/// next tick of any loop sweeps too, and starts fast sweeps on its loop (see `FAST_BUDGET`):
/// keys expiring faster than a quarter of one loop can delete get more of it, and of the
/// other loops.
fn start_sweeper(sel: &mut DefaultSelector, store: Arc<Store>, next: Arc<AtomicI64>) {
    let rng = store::now_ms() as u64 | 1;
    let sweeper = Rc::new(RefCell::new(Sweeper {
        store,
        next,
        rng,
        fast: false,
    }));
    sel.call_repeating(SWEEP_EVERY, move |sel| {
        let now = store::now_ms();
        let next = sweeper.borrow().next.clone();
        let due = next.load(Ordering::Relaxed);
        let step = SWEEP_EVERY.as_millis() as i64;
        if now >= due
            && next
                .compare_exchange(due, now + step - 5, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            sweep(sel, &sweeper, SWEEP_BUDGET);
        }
    });
}

/// Sweeps the store for at most `budget`; if that ran out of time with expired keys left,
/// makes the next sweep due at once and schedules a fast one on this loop (unless one is).
fn sweep(sel: &mut DefaultSelector, sweeper: &Rc<RefCell<Sweeper>>, budget: Duration) {
    let mut state = sweeper.borrow_mut();
    let Sweeper {
        store, next, rng, ..
    } = &mut *state;
    let started = store::now_ms();
    let swept = store.sweep(rng, budget);
    if swept.deleted > 0 {
        log::trace!(
            "expiry sweep: {} key(s) deleted in {} ms{}",
            swept.deleted,
            store::now_ms() - started,
            if swept.out_of_time {
                ", out of time"
            } else {
                ""
            }
        );
    }
    if swept.out_of_time {
        next.store(store::now_ms(), Ordering::Relaxed);
        if !state.fast {
            state.fast = true;
            let sweeper = sweeper.clone();
            sel.call_later(FAST_GAP, move |sel| {
                sweeper.borrow_mut().fast = false;
                sweep(sel, &sweeper, FAST_BUDGET);
            });
        }
    }
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
  --max-output BYTES    the most replies queued for a client: a larger reply is refused
                        (default 268435456: 256 MiB; at least --max-bulk + 1 MiB + 32)
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
    // A request runs with up to the high-water mark queued: the largest GET reply must fit
    // above it (its header and CRLFs take at most 25 bytes).
    let least = resp
        .max_bulk
        .saturating_add(Limits::default().high_water + 32);
    if max_output < least {
        return Err(format!(
            "--max-output must be at least {least}: --max-bulk, plus the 1 MiB a client's \
             replies may queue before its next request waits, plus 32 (the largest GET reply \
             must fit)"
        )
        .into());
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
    cli::status(listen(&addr, options))
}

/// Serves clients at `addr` until Ctrl-C or SIGTERM.
fn listen(addr: &str, options: Options) -> io::Result<()> {
    let addr = cli::resolve(addr).map_err(cli::about(addr))?;
    let store = Arc::new(Store::new(options.threads, options.resp.max_bulk));
    let next_sweep = Arc::new(AtomicI64::new(0));
    store::now_ms(); // starts the clock
    let factory = move || -> loops::Accepted {
        let (store, next_sweep) = (store.clone(), next_sweep.clone());
        let mut sweeping = false;
        Box::new(move |sel, stream| {
            if !sweeping {
                sweeping = true; // on this loop's first client: the loop is not at hand before
                start_sweeper(sel, store.clone(), next_sweep.clone());
                if store.stats().claim_sampler() {
                    info::start_sampler(sel, store.clone()); // on one loop: the first
                }
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
