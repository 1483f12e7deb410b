//! `INFO [section ...]`: the server's state and counters, in Redis 7.0's layout, so that
//! `redis-cli info` and `redis-cli --stat` work.
//!
//! The reply is one bulk string: for each section, `# Name` then its `field:value` lines, each
//! line ended by `\r\n`, and an empty line (`\r\n`) between two sections; an empty section is
//! its header alone (`# Keyspace\r\n` with no keys). `INFO` alone, `INFO default`, `INFO all`
//! and `INFO everything` give every section; `INFO clients keyspace` (names case-insensitive,
//! several allowed, as in Redis 7) gives those, in Redis's order whatever the order asked;
//! unknown names are ignored, and nothing known asked gives an empty bulk string — each as
//! redis-server 7.0 answers (compared with redis-server 7.0.15).
//!
//! Only Redis's fields that kv_server has a true value for are given, under Redis's names:
//!
//! - `# Server`: `redis_version:7.0.0` (the protocol level kv_server imitates: its replies and
//!   errors are checked against redis-server 7.0), `redis_mode:standalone`, `os` (Rust's OS
//!   and architecture names: `linux x86_64`), `arch_bits`, `multiplexing_api` (the poller of
//!   selectloop's `DefaultSelector`: epoll, kqueue, evport, iocp or poll), `process_id`,
//!   `tcp_port`, `uptime_in_seconds`, `uptime_in_days`; and one of its own,
//!   `server_name:selectloop-kv_server` (clients read the fields they know, and skip others).
//! - `# Clients`: `connected_clients`, `blocked_clients:0` (no command blocks). No
//!   `maxclients`: kv_server has no cap on connections.
//! - `# Memory`: `used_memory` and `used_memory_human`: the store's own accounting (its keys'
//!   and values' bytes, counted as they change, plus its tables' slots: see
//!   `Shard::memory`), not the allocator's total as in Redis; `used_memory_rss` and
//!   `used_memory_rss_human`: the resident set size (`/proc/self/statm`), on Linux only, left
//!   out elsewhere.
//! - `# Stats`: `total_connections_received`, `total_commands_processed`,
//!   `instantaneous_ops_per_sec`, `rejected_connections:0` (no cap, so none refused),
//!   `expired_keys`, `keyspace_hits`, `keyspace_misses` (see `store.rs` for what counts).
//! - `# Cluster`: `cluster_enabled:0` (client libraries read it: redis-py's test suite
//!   will not start without it).
//! - `# Keyspace`: `dbN:keys=K,expires=M,avg_ttl=0` for each database `N` with keys (none
//!   when all are empty), as Redis does. `avg_ttl` is 0: kv_server keeps no estimate of it (Redis's comes from its expiry
//!   cycle's samples, and is 0 too until that has sampled).
//!
//! A command counts in `total_commands_processed` once it has run, as in Redis: `INFO`'s own
//! reply does not include itself, and a request refused before it runs (an unknown command,
//! a wrong number of arguments, an unknown `CONFIG` subcommand) does not count at all; one
//! that runs and answers an error (`INCR` of a word) does. The loops count their commands per
//! batch of requests (`Session`), and add them to one shared atomic once per batch.
//! `instantaneous_ops_per_sec` is computed as Redis computes it: every 100 ms a timer of one
//! loop takes a sample (the commands since the last sample, per second of the time since),
//! keeps the last 16, and the figure is their mean ([`OpsMeter`]).

use crate::resp::Args;
use crate::store::{self, Session, ShardInfo, Store, DATABASES};
use selectloop::DefaultSelector;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Redis version kv_server answers as: the protocol level it imitates (its replies and
/// error texts are checked against redis-server 7.0).
pub const REDIS_VERSION: &str = "7.0.0";

/// The poller of selectloop's `DefaultSelector`: the `polling` crate's, chosen as it chooses
/// it (Redis's names for them).
const MULTIPLEXING_API: &str = if cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "redox"
)) {
    "epoll"
} else if cfg!(any(target_os = "illumos", target_os = "solaris")) {
    "evport"
} else if cfg!(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)) {
    "kqueue"
} else if cfg!(windows) {
    "iocp"
} else {
    "poll"
};

/// How often `instantaneous_ops_per_sec` takes a sample, and how many it averages (Redis:
/// every 100 ms, in its `hz 10` cron, and `STATS_METRIC_SAMPLES` 16).
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const SAMPLES: usize = 16;

/// The server's counters, shared by the loops (in the [`Store`]). Relaxed atomics: each is a
/// count on its own, and `INFO` reads each once.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    /// `total_connections_received`.
    connections: AtomicU64,
    /// `connected_clients`.
    connected: AtomicU64,
    /// `total_commands_processed` (less what the sessions running now have not added yet).
    commands: AtomicU64,
    /// `instantaneous_ops_per_sec`, as the sampler last computed it.
    ops_per_sec: AtomicU64,
    /// `tcp_port`: the listening port, noted at the first connection (0 until then).
    port: AtomicU16,
    /// A loop runs the sampler.
    sampling: AtomicBool,
    /// The next connection's `CLIENT ID` (from 1, as Redis's `next_client_id`).
    next_client_id: AtomicU64,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            started: Instant::now(),
            connections: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            ops_per_sec: AtomicU64::new(0),
            port: AtomicU16::new(0),
            sampling: AtomicBool::new(false),
            next_client_id: AtomicU64::new(1),
        }
    }

    /// A client connected.
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.connected.fetch_add(1, Ordering::Relaxed);
    }

    /// A client counted by `connection_opened` is gone.
    pub fn connection_closed(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    /// True until the listening port is noted.
    pub fn needs_port(&self) -> bool {
        self.port.load(Ordering::Relaxed) == 0
    }

    pub fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Relaxed);
    }

    /// Adds `n` commands run to `total_commands_processed`.
    pub fn add_commands(&self, n: u64) {
        if n > 0 {
            self.commands.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A new connection's `CLIENT ID`: unique, and increasing across the loops.
    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// True the first time only: the caller starts the sampler.
    pub fn claim_sampler(&self) -> bool {
        !self.sampling.swap(true, Ordering::Relaxed)
    }
}

/// `instantaneous_ops_per_sec`, as Redis 7.0's `trackInstantaneousMetric` and
/// `getInstantaneousMetric` compute it: each sample is the commands since the last sample,
/// times 1000, divided by the milliseconds since (0 if none passed); the figure is the sum of
/// the last 16 samples divided by 16, in integers (so it rises over the first 1.6 s, as
/// Redis's does).
#[derive(Clone, Debug)]
pub struct OpsMeter {
    samples: [u64; SAMPLES],
    /// Where the next sample goes (the oldest is overwritten).
    next: usize,
    /// The time (ms) and the command count at the last sample.
    last_ms: i64,
    last_count: u64,
}

impl OpsMeter {
    /// A meter starting at time `now_ms`, with `count` commands run so far.
    pub fn new(now_ms: i64, count: u64) -> OpsMeter {
        OpsMeter {
            samples: [0; SAMPLES],
            next: 0,
            last_ms: now_ms,
            last_count: count,
        }
    }

    /// Takes a sample at time `now_ms`, `count` commands having run so far.
    pub fn sample(&mut self, now_ms: i64, count: u64) {
        let ms = now_ms - self.last_ms;
        let ops = count.saturating_sub(self.last_count);
        self.samples[self.next] = match u64::try_from(ms) {
            Ok(ms) if ms > 0 => ops.saturating_mul(1000) / ms,
            _ => 0,
        };
        self.next = (self.next + 1) % SAMPLES;
        (self.last_ms, self.last_count) = (now_ms, count);
    }

    /// The mean of the last 16 samples (those not taken yet count as 0).
    pub fn per_sec(&self) -> u64 {
        self.samples.iter().sum::<u64>() / SAMPLES as u64
    }
}

/// Starts the `instantaneous_ops_per_sec` sampler on this loop's timers: a sample every
/// [`SAMPLE_EVERY`]. One loop runs it for the whole server (see [`Stats::claim_sampler`]).
pub fn start_sampler(sel: &mut DefaultSelector, store: Arc<Store>) {
    let stats = store.stats();
    let mut meter = OpsMeter::new(store::now_ms(), stats.commands.load(Ordering::Relaxed));
    sel.call_repeating(SAMPLE_EVERY, move |_sel| {
        let stats = store.stats();
        meter.sample(store::now_ms(), stats.commands.load(Ordering::Relaxed));
        stats.ops_per_sec.store(meter.per_sec(), Ordering::Relaxed);
    });
}

/// The sections, in Redis's order: their names in `INFO`'s arguments and in their headers.
const SECTIONS: [&str; 6] = [
    "Server", "Clients", "Memory", "Stats", "Cluster", "Keyspace",
];
const SERVER: usize = 0;
const CLIENTS: usize = 1;
const MEMORY: usize = 2;
const STATS: usize = 3;
const CLUSTER: usize = 4;
const KEYSPACE: usize = 5;

/// Which sections `INFO`'s arguments ask for (see the module docs).
fn wanted(cmd: Args<'_>) -> [bool; SECTIONS.len()] {
    let mut wanted = [cmd.len() == 1; SECTIONS.len()];
    for arg in cmd.iter(1) {
        if [&b"default"[..], b"all", b"everything"]
            .iter()
            .any(|all| arg.eq_ignore_ascii_case(all))
        {
            wanted = [true; SECTIONS.len()];
        } else if let Some(i) = SECTIONS
            .iter()
            .position(|name| arg.eq_ignore_ascii_case(name.as_bytes()))
        {
            wanted[i] = true;
        }
    }
    wanted
}

/// `INFO`'s reply text for request `cmd`, run in session `db`.
pub fn render(cmd: Args<'_>, db: &mut Session<'_>) -> String {
    let wanted = wanted(cmd);
    let mut store = ShardInfo::default();
    let mut dbs = [ShardInfo::default(); DATABASES];
    if wanted[MEMORY] || wanted[STATS] || wanted[KEYSPACE] {
        db.with_everything(|locked, _| locked.each(|i, shard| dbs[i] += shard.info()));
        for db in dbs {
            store += db;
        }
    }
    let stats = db.store().stats();
    let text = &mut String::new();
    for (i, name) in SECTIONS.iter().enumerate().filter(|&(i, _)| wanted[i]) {
        if !text.is_empty() {
            text.push_str("\r\n");
        }
        let _ = write!(text, "# {name}\r\n");
        match i {
            SERVER => server(text, stats),
            CLIENTS => {
                field(
                    text,
                    "connected_clients",
                    stats.connected.load(Ordering::Relaxed),
                );
                field(text, "blocked_clients", 0);
            }
            MEMORY => memory(text, &store),
            STATS => {
                let received = stats.connections.load(Ordering::Relaxed);
                // Those of this session so far count too: they have run.
                let commands = stats.commands.load(Ordering::Relaxed) + db.commands();
                field(text, "total_connections_received", received);
                field(text, "total_commands_processed", commands);
                let ops = stats.ops_per_sec.load(Ordering::Relaxed);
                field(text, "instantaneous_ops_per_sec", ops);
                field(text, "rejected_connections", 0);
                field(text, "expired_keys", store.expired);
                field(text, "keyspace_hits", store.hits);
                field(text, "keyspace_misses", store.misses);
            }
            CLUSTER => field(text, "cluster_enabled", 0),
            _ => {
                // KEYSPACE: a line for each database with keys, as in Redis.
                for (i, db) in dbs.iter().enumerate() {
                    if db.keys > 0 || db.volatile > 0 {
                        let (keys, volatile) = (db.keys, db.volatile);
                        let _ = write!(text, "db{i}:keys={keys},expires={volatile},avg_ttl=0\r\n");
                    }
                }
            }
        }
    }
    std::mem::take(text)
}

/// `name:value\r\n`
fn field(text: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(text, "{name}:{value}\r\n");
}

fn server(text: &mut String, stats: &Stats) {
    use std::env::consts::{ARCH, OS};
    let uptime = stats.started.elapsed().as_secs();
    field(text, "redis_version", REDIS_VERSION);
    field(text, "redis_mode", "standalone");
    field(text, "os", format_args!("{OS} {ARCH}"));
    field(text, "arch_bits", usize::BITS);
    field(text, "multiplexing_api", MULTIPLEXING_API);
    field(text, "process_id", std::process::id());
    field(text, "tcp_port", stats.port.load(Ordering::Relaxed));
    field(text, "uptime_in_seconds", uptime);
    field(text, "uptime_in_days", uptime / 86_400);
    field(text, "server_name", "selectloop-kv_server");
}

fn memory(text: &mut String, store: &ShardInfo) {
    let used = store.memory as u64;
    field(text, "used_memory", used);
    field(text, "used_memory_human", human(used));
    if let Some(rss) = rss_bytes() {
        field(text, "used_memory_rss", rss);
        field(text, "used_memory_rss_human", human(rss));
    }
}

/// A byte count as Redis's `bytesToHuman` writes it: `512B`, `919.63K`, `11.64M`, `1.50G`...
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut unit = 1024u64;
    for name in UNITS {
        match unit.checked_mul(1024) {
            Some(next) if n >= next => unit = next,
            _ => return format!("{:.2}{name}", n as f64 / unit as f64),
        }
    }
    format!("{n}B") // 1024 P and more, as Redis
}

/// The resident set size: `/proc/self/statm`'s second field (pages) times the page size; on
/// Linux only (elsewhere `None`, and the fields are left out rather than made up).
#[cfg(target_os = "linux")]
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf(3) reads a configuration value; it has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page_size).ok().filter(|&size| size > 0)?)
}

#[cfg(not(target_os = "linux"))]
fn rss_bytes() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis's arithmetic: each sample is ops × 1000 / ms since the last, integer division;
    /// the figure is the sum of 16 samples / 16, the missing ones 0.
    #[test]
    fn ops_per_sec_is_the_mean_of_the_last_16_samples() {
        let mut meter = OpsMeter::new(1_000, 50);
        assert_eq!(meter.per_sec(), 0);
        meter.sample(1_100, 150); // 100 commands in 100 ms: 1000/s
        assert_eq!(meter.samples[0], 1000);
        assert_eq!(meter.per_sec(), 1000 / 16); // 62: one sample of 16 taken
        meter.sample(1_203, 150 + 7); // 7 in 103 ms: 7000 / 103 = 67 (rounded down)
        assert_eq!(meter.samples[1], 67);
        assert_eq!(meter.per_sec(), (1000 + 67) / 16);
        meter.sample(1_203, 1_000); // no time since: 0, as Redis (t > 0 ? ... : 0)
        assert_eq!(meter.samples[2], 0);
        // 16 samples of 2000/s (200 in 100 ms each): the first three are overwritten.
        let (mut now, mut count) = (1_203, 1_000);
        for _ in 0..16 {
            (now, count) = (now + 100, count + 200);
            meter.sample(now, count);
        }
        assert_eq!(meter.per_sec(), 2000);
        assert_eq!(
            meter.next, 3,
            "the 19th sample went to slot 2, the next is 3"
        );
        // Idle: each sample 0 replaces one of 2000; after 8, the mean is half.
        for _ in 0..8 {
            now += 100;
            meter.sample(now, count);
        }
        assert_eq!(meter.per_sec(), 1000);
        // A late sample (a tick of 250 ms) is a rate over its own interval: 250 commands in
        // 250 ms is 1000/s. It replaces the oldest, one of the 2000s.
        (now, count) = (now + 250, count + 250);
        meter.sample(now, count);
        assert_eq!(meter.samples[11], 1000);
        assert_eq!(meter.per_sec(), (7 * 2000 + 1000) / 16);
        // A clock gone back (never, with a monotonic one) gives 0, not a panic.
        meter.sample(now - 10, count + 600);
        assert_eq!(meter.samples[12], 0);
    }

    #[test]
    fn human_sizes_are_redis_s() {
        // Redis 7.0.15 printed used_memory:941704 as 919.63K, used_memory_rss:12201984 as
        // 11.64M.
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1024), "1.00K");
        assert_eq!(human(941_704), "919.63K");
        assert_eq!(human(12_201_984), "11.64M");
        assert_eq!(human(3 << 30), "3.00G");
        assert_eq!(human(5 << 40), "5.00T");
        assert_eq!(human(7 << 50), "7.00P");
        assert_eq!(human(u64::MAX), format!("{}B", u64::MAX));
    }
}
