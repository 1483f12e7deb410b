//! One run per (backend, N): the configuration from the environment, a fresh server and client
//! for the run, its timed phases and its system calls, and the figures derived from them.
//!
//! This is the coordinator's measuring half; `report.rs` prints and saves what it measured.

use crate::common::cpu;
use crate::common::process::{self, Proc};
use crate::protocol::{arg, invalid, Mark, ACTIVE, BACKENDS, MSG};
use crate::strace::{self, Syscalls};
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The N values.
const SIZES: [usize; 4] = [1, 100, 1000, 10_000];
/// Default length of each timed phase (`C10K_SECONDS` overrides); the strace phase lasts
/// half as long.
const SECONDS: f64 = 0.6;
/// Timed phases per run; the median (by CPU per `select`) is reported.
pub const PHASES: usize = 5;
pub const WARMUP_SECONDS: f64 = 0.2;
/// How long setting up 10,000 connections may take before the run is abandoned.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Config {
    pub seconds: f64,
    pub sizes: Vec<usize>,
    pub backends: Vec<&'static str>,
    /// The reason the system calls are not counted, if they are not.
    pub no_strace: Option<String>,
    /// Whether the server runs on CPU 0 and the client on CPU 1.
    pub pin: bool,
    /// The cargo target directory: the CSV and the strace summaries go there.
    pub dir: PathBuf,
}

fn env_list<T>(var: &str, parse: impl Fn(&str) -> Option<T>) -> io::Result<Option<Vec<T>>> {
    let Ok(value) = std::env::var(var) else {
        return Ok(None);
    };
    let items = value.split(',').map(str::trim).filter(|s| !s.is_empty());
    let items = items
        .map(|s| parse(s).ok_or_else(|| invalid(format!("{var}: bad item {s:?}"))))
        .collect::<io::Result<Vec<T>>>()?;
    Ok(Some(items))
}

impl Config {
    pub fn from_env() -> io::Result<Config> {
        let seconds = match std::env::var("C10K_SECONDS") {
            Ok(s) => s
                .parse()
                .ok()
                .filter(|&s: &f64| s > 0.0)
                .ok_or_else(|| invalid(format!("C10K_SECONDS: {s:?}")))?,
            Err(_) => SECONDS,
        };
        let sizes = env_list("C10K_SIZES", |s| s.parse().ok().filter(|&n| n > 0))?
            .unwrap_or(SIZES.to_vec());
        let backends = env_list("C10K_BACKENDS", |s| {
            BACKENDS.iter().copied().find(|b| *b == s)
        })?
        .unwrap_or(BACKENDS.to_vec());
        // Pinned, a wake-up always crosses CPUs; unpinned, the scheduler sometimes puts the
        // server and the client on one CPU, which makes a run at N = 1 twice as fast.
        let pin = std::env::var("C10K_PIN").map_or(true, |v| v != "0") && cpu::can_pin();
        Ok(Config {
            seconds,
            sizes,
            backends,
            no_strace: strace::unavailable(),
            pin,
            dir: process::target_dir(),
        })
    }
}

/// One timed phase: the server's counters between two marks.
pub struct Timing {
    pub messages: u64,
    pub selects: u64,
    pub wall: Duration,
    user_ticks: u64,
    sys_ticks: u64,
}

impl Timing {
    fn new(start: Mark, end: Mark) -> Timing {
        Timing {
            messages: (end.bytes - start.bytes) / MSG.len() as u64,
            // The iteration that answered the first `mark` served no message.
            selects: (end.iterations - start.iterations).saturating_sub(1),
            wall: Duration::from_nanos(end.wall_ns - start.wall_ns),
            user_ticks: end.user - start.user,
            sys_ticks: end.sys - start.sys,
        }
    }

    pub fn per_sec(&self) -> f64 {
        self.messages as f64 / self.wall.as_secs_f64()
    }
    pub fn msgs_per_select(&self) -> f64 {
        self.messages as f64 / self.selects as f64
    }
    pub fn wall_us_per_select(&self) -> f64 {
        self.wall.as_secs_f64() * 1e6 / self.selects as f64
    }
    fn us(ticks: u64) -> f64 {
        cpu::seconds(ticks) * 1e6
    }
    pub fn cpu_us_per_select(&self) -> f64 {
        Self::us(self.user_ticks + self.sys_ticks) / self.selects as f64
    }
    pub fn user_us_per_msg(&self) -> f64 {
        Self::us(self.user_ticks) / self.messages as f64
    }
    pub fn sys_us_per_msg(&self) -> f64 {
        Self::us(self.sys_ticks) / self.messages as f64
    }
    pub fn cpu_us_per_msg(&self) -> f64 {
        self.user_us_per_msg() + self.sys_us_per_msg()
    }
}

/// One (backend, N) run.
pub struct Row {
    pub backend: &'static str,
    pub n: usize,
    pub setup: Duration,
    /// `Some((connections, error))` if the backend refused a registration.
    pub capped: Option<(usize, String)>,
    /// The timed phases, sorted by CPU per `select`.
    pub phases: Vec<Timing>,
    pub syscalls: Option<Syscalls>,
    /// Why the system calls were not counted, if they were not.
    pub no_syscalls: Option<String>,
}

impl Row {
    /// The median phase.
    pub fn timing(&self) -> Option<&Timing> {
        self.phases.get(self.phases.len() / 2)
    }

    /// System calls per message at the untraced batch size.
    pub fn syscalls_per_msg(&self) -> Option<f64> {
        let (t, s) = (self.timing()?, self.syscalls.as_ref()?);
        Some(s.per_msg_at(t.msgs_per_select()))
    }
}

/// One run: a fresh server and client for `backend` with `n` connections.
pub fn run(backend: &'static str, n: usize, cfg: &Config) -> io::Result<Row> {
    let mut row = Row {
        backend,
        n,
        setup: Duration::ZERO,
        capped: None,
        phases: Vec::new(),
        syscalls: None,
        no_syscalls: cfg.no_strace.clone(),
    };
    let phase = |secs: f64| Duration::from_secs_f64(secs) + Duration::from_secs(30);
    let n_arg = n.to_string();
    let name = format!("{backend} server");
    let server_args = ["serve", backend, &n_arg];
    let mut server = Proc::this_exe(name, &server_args, cfg.pin.then_some(0))?;
    let addr = server.expect(&["listening"], Duration::from_secs(10))?[1].clone();
    let start = Instant::now();
    let active = ACTIVE.to_string();
    let name = format!("{backend} client");
    let client_args = ["client", &addr, &n_arg, &active];
    let mut client = Proc::this_exe(name, &client_args, cfg.pin.then_some(1))?;
    let setup = server.expect(&["ready", "capped"], SETUP_TIMEOUT)?;
    if setup[0] == "capped" {
        let reached = arg(&setup, 1, "capped count")?;
        row.capped = Some((reached, setup[2..].join(" ")));
        client.expect(&["refused", "connected"], Duration::from_secs(30))?;
        client.send("quit")?;
        server.send("quit")?;
        client.finish(Duration::from_secs(10))?;
        server.finish(Duration::from_secs(10))?;
        return Ok(row);
    }
    client.expect(&["connected"], Duration::from_secs(30))?;
    row.setup = start.elapsed();

    client.send(&format!("run {WARMUP_SECONDS}"))?;
    client.expect(&["done"], phase(WARMUP_SECONDS))?;

    server.send("mark")?;
    let mut mark = Mark::parse(&server.expect(&["mark"], Duration::from_secs(10))?)?;
    for _ in 0..PHASES {
        client.send(&format!("run {}", cfg.seconds))?;
        let sent: u64 = arg(&client.expect(&["done"], phase(cfg.seconds))?, 1, "count")?;
        server.send("mark")?;
        let end = Mark::parse(&server.expect(&["mark"], Duration::from_secs(10))?)?;
        let timing = Timing::new(mark, end);
        if timing.messages != sent || timing.selects == 0 {
            let msg = format!(
                "{backend} N={n}: the server echoed {} messages in {} selects, \
                 the client got {sent}",
                timing.messages, timing.selects
            );
            return Err(io::Error::other(msg));
        }
        row.phases.push(timing);
        mark = end;
    }
    row.phases
        .sort_by(|a, b| a.cpu_us_per_select().total_cmp(&b.cpu_us_per_select()));

    if cfg.no_strace.is_none() {
        let file = cfg.dir.join(format!("c10k-strace-{backend}-{n}.txt"));
        match strace::count(&mut server, &mut client, &file, cfg.seconds / 2.0) {
            Ok(syscalls) => row.syscalls = Some(syscalls),
            Err(e) => {
                eprintln!("c10k: {backend} N={n}: system calls not counted: {e}");
                row.no_syscalls = Some(e.to_string());
            }
        }
    }
    let _ = server.send("quit"); // it is gone if the strace phase made it exit
    let _ = client.send("quit");
    server.finish(Duration::from_secs(10))?;
    client.finish(Duration::from_secs(10))?;
    Ok(row)
}
