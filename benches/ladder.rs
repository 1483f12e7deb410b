//! The I/O-model ladder, measured: every server of `examples/model_*.rs` (and `echo_server`, the
//! selectloop rung) driven by the same load generator at C = 1, 10, 100 and 1,000 clients.
//!
//! For each model and C, `LADDER_RUNS` times (default 3), in fresh processes:
//!
//! 1. the release build of the example starts on `127.0.0.1:0` (`RUST_LOG=warn`: no log line
//!    per connection), pinned to CPU 0 with `taskset` when there are two CPUs or more;
//! 2. `echo_client ADDR --connections C --count M/C --size 64`, pinned to CPU 1, opens the C
//!    connections at once from one thread (selectloop's non-blocking connect) and ping-pongs on
//!    each — one 64-byte line in flight per connection, the next sent when its echo is back —
//!    until M messages in all (`LADDER_MESSAGES`, default 30,000) have come back intact. It
//!    prints the messages per second (from the first connect to the last echo: connecting is
//!    part of the work) and the round-trip latency percentiles;
//! 3. meanwhile the server's peak threads, processes and resident memory are sampled from
//!    `/proc` (every 100 ms; 250 ms for `model_fork`, whose children are found by scanning
//!    `/proc`), and its CPU time is read before and after (user + system, its reaped children
//!    included: `model_fork` is waited for until its children are gone). Peak RSS is the
//!    server's high-water mark (`VmHWM`) or, with child processes, the largest sum of their RSS
//!    seen — which counts the pages they share once per process.
//!
//! Each cell prints the median of the runs and the spread (smallest and largest) of messages/s
//! and p99. A run that fails (a client error, a server that cannot take C) is printed as such,
//! with the client's error. Before the table, each server's CPU while idle is measured over
//! one second: with no client, then with 100 idle connections.
//!
//! ```text
//! cargo bench --bench ladder     # builds the release examples first; several minutes
//! ```
//!
//! Environment: `LADDER_MODELS=model_select,model_poll` and `LADDER_CLIENTS=1,100` pick the
//! rows, `LADDER_MESSAGES` and `LADDER_RUNS` the size, `LADDER_IDLE=0` skips the idle
//! measurement, `LADDER_PIN=0` the pinning. Linux only: it reads `/proc`.

#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
mod bench {
    use crate::common::cpu::{self, CpuTicks};
    use crate::common::process::{self, Proc};
    use crate::common::procfs::{self, Pid};
    use crate::common::table::{median, Spread, Table};
    use std::io;
    use std::net::{SocketAddr, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    /// The rungs, in ladder order: the example and what it is.
    const MODELS: &[(&str, &str)] = &[
        ("model_blocking", "1 iterative"),
        ("model_thread_per_conn", "2 thread per conn"),
        ("model_thread_pool", "3 pool of 3 threads"),
        ("model_fork", "4 process per conn"),
        ("model_nonblocking_busy", "5 busy polling"),
        ("model_select", "6 select(2)"),
        ("model_poll", "6 poll(2)"),
        ("model_epoll_edge", "7 epoll, edge"),
        ("echo_server", "9 selectloop"),
    ];

    struct Config {
        models: Vec<(&'static str, &'static str)>,
        clients: Vec<usize>,
        messages: usize,
        runs: usize,
        pin: bool,
        idle: bool,
        examples: PathBuf,
    }

    fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    fn config() -> io::Result<Config> {
        let models = match std::env::var("LADDER_MODELS") {
            Ok(list) => {
                let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
                MODELS
                    .iter()
                    .copied()
                    .filter(|(name, _)| wanted.contains(name))
                    .collect()
            }
            Err(_) => MODELS.to_vec(),
        };
        let clients = std::env::var("LADDER_CLIENTS").unwrap_or("1,10,100,1000".into());
        let clients = clients
            .split(',')
            .filter_map(|c| c.trim().parse().ok())
            .collect();
        Ok(Config {
            models,
            clients,
            messages: env_or("LADDER_MESSAGES", 30_000),
            runs: env_or("LADDER_RUNS", 3).max(1),
            pin: env_or("LADDER_PIN", 1) != 0 && cpu::can_pin(),
            idle: env_or("LADDER_IDLE", 1) != 0,
            // The release examples, built next to this binary.
            examples: process::profile_dir()?.join("examples"),
        })
    }

    /// A command for `bin` with `args`, pinned to `cpu` if given, with no log line per
    /// connection (`RUST_LOG=warn`).
    fn command(bin: &Path, args: &[&str], cpu: Option<usize>) -> Command {
        let mut cmd = cpu::pinned(bin, cpu);
        cmd.args(args).env("RUST_LOG", "warn").stdin(Stdio::null());
        cmd
    }

    /// A model server, killed when dropped. Its stderr is drained all along (kept for errors).
    struct Server {
        proc: Proc,
        addr: SocketAddr,
        forks: bool,
    }

    impl Server {
        fn start(cfg: &Config, name: &str) -> io::Result<Server> {
            let mut cmd = command(
                &cfg.examples.join(name),
                &["127.0.0.1:0"],
                cfg.pin.then_some(0),
            );
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
            let proc = Proc::spawn(name, cmd)?;
            let addr = proc.address(Duration::from_secs(10))?;
            Ok(Server {
                proc,
                addr,
                forks: name == "model_fork",
            })
        }

        fn pid(&self) -> u32 {
            self.proc.id()
        }

        /// CPU seconds so far: user + system, with the reaped children's.
        fn cpu(&self) -> f64 {
            let ticks = CpuTicks::of(Pid::Id(self.pid()));
            ticks.map_or(f64::NAN, |t| cpu::seconds(t.own() + t.children()))
        }

        /// Waits (polling `/proc`: nothing else tells) until the server has no child left,
        /// so that their CPU time is in its own; at most 10 s.
        fn wait_for_children(&self) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.forks
                && !procfs::children_of(self.pid()).is_empty()
                && Instant::now() < deadline
            {
                thread::sleep(Duration::from_millis(10));
            }
        }

        /// The last warning in what the server printed after its address line.
        fn last_warning(&self) -> Option<String> {
            let lines = self.proc.unread();
            lines.into_iter().rev().find(|l| l.contains("WARN"))
        }
    }

    /// The CPU seconds of this process's reaped children so far.
    fn children_cpu() -> f64 {
        let ticks = CpuTicks::of(Pid::Current);
        ticks.map_or(f64::NAN, |t| cpu::seconds(t.children()))
    }

    /// Peaks seen by the sampler.
    #[derive(Default, Clone, Copy)]
    struct Peaks {
        threads: u64,
        procs: u64,
        rss_kib: u64,
    }

    /// Samples the server's threads, processes and memory until `stop` is set.
    fn sample(pid: u32, forks: bool, stop: Arc<AtomicBool>) -> thread::JoinHandle<Peaks> {
        thread::spawn(move || {
            let mut peaks = Peaks::default();
            let every = Duration::from_millis(if forks { 250 } else { 100 });
            let status = |pid: u32, field: &str| procfs::status_field(Pid::Id(pid), field).ok();
            loop {
                let children = if forks {
                    procfs::children_of(pid)
                } else {
                    Vec::new()
                };
                let rss: u64 = std::iter::once(pid)
                    .chain(children.iter().copied())
                    .filter_map(|p| status(p, "VmRSS"))
                    .sum();
                peaks.rss_kib = peaks.rss_kib.max(rss);
                peaks.threads = peaks.threads.max(status(pid, "Threads").unwrap_or(0));
                peaks.procs = peaks.procs.max(1 + children.len() as u64);
                // Checked after a sample, so that even a short run has one.
                if stop.load(Ordering::Relaxed) {
                    return peaks;
                }
                thread::sleep(every);
            }
        })
    }

    /// One run's figures.
    #[derive(Clone, Copy)]
    struct Run {
        rate: f64,
        p50: f64,
        p99: f64,
        cpu: f64,
        /// echo_client's CPU seconds: near the run's length, the client was the limit.
        client_cpu: f64,
        peaks: Peaks,
    }

    /// One run of `name` at `clients`: a fresh server, the load, the figures.
    fn run(cfg: &Config, name: &str, clients: usize) -> Result<Run, String> {
        let server = Server::start(cfg, name).map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample(server.pid(), server.forks, stop.clone());
        let count = (cfg.messages / clients).max(1).to_string();
        let (addr, clients_s) = (server.addr.to_string(), clients.to_string());
        let args = [
            &addr,
            "--connections",
            &clients_s,
            "--count",
            &count,
            "--size",
            "64",
            "--timeout",
            "60",
        ];
        let cpu_before = server.cpu();
        // This process's reaped children's time grows by echo_client's alone: the servers are
        // waited for only when dropped, after.
        let client_before = children_cpu();
        let out = command(
            &cfg.examples.join("echo_client"),
            &args,
            cfg.pin.then_some(1),
        )
        .output();
        let client_cpu = children_cpu() - client_before;
        server.wait_for_children();
        let cpu = server.cpu() - cpu_before;
        stop.store(true, Ordering::Relaxed);
        let mut peaks = sampler.join().expect("the sampler thread");
        peaks.rss_kib = peaks
            .rss_kib
            .max(procfs::status_field(Pid::Id(server.pid()), "VmHWM").unwrap_or(0));
        let out = out.map_err(|e| format!("echo_client: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr
                .lines()
                .last()
                .unwrap_or("")
                .trim_start_matches("echo_client: ");
            return Err(match server.last_warning() {
                Some(warning) => format!("{why} (server: {warning})"),
                None => why.to_string(),
            });
        }
        // "N lines echoed intact over C connection(s) in T (R/s)" and
        // "round trip (µs): p50 X  p90 Y  p99 Z  max W".
        let rate = stdout.find("/s)").and_then(|end| {
            let start = stdout[..end].rfind('(')? + 1;
            stdout[start..end].parse().ok()
        });
        let p50 = between(&stdout, "p50 ", " ");
        let p99 = between(&stdout, "p99 ", " ");
        match (rate, p50, p99) {
            (Some(rate), Some(p50), Some(p99)) => Ok(Run {
                rate,
                p50,
                p99,
                cpu,
                client_cpu,
                peaks,
            }),
            _ => Err(format!("cannot read echo_client's output: {stdout:?}")),
        }
    }

    /// The number between `before` and `after` in `text`.
    fn between(text: &str, before: &str, after: &str) -> Option<f64> {
        let start = text.find(before)? + before.len();
        let end = text[start..].find(after)? + start;
        text[start..end].trim().parse().ok()
    }

    /// CPU use of an idle server over one second, as a percentage of one core: with no client,
    /// then with 100 connections that send nothing.
    fn idle(cfg: &Config, name: &str) -> io::Result<(f64, f64)> {
        let server = Server::start(cfg, name)?;
        let measure = || {
            thread::sleep(Duration::from_millis(300)); // settle: accepts, thread starts
            let (before, start) = (server.cpu(), Instant::now());
            thread::sleep(Duration::from_secs(1)); // the measurement window
            (server.cpu() - before) * 100.0 / start.elapsed().as_secs_f64()
        };
        let alone = measure();
        let conns: Vec<TcpStream> = (0..100)
            .map(|_| TcpStream::connect(server.addr))
            .collect::<io::Result<_>>()?;
        let with_idle = measure();
        drop(conns);
        Ok((alone, with_idle))
    }

    pub fn main() -> io::Result<()> {
        // `cargo test --all-targets` runs a benchmark without `--bench`: it measures nothing then.
        if !std::env::args().any(|a| a == "--bench") {
            println!("ladder: a benchmark: run it with `cargo bench --bench ladder`");
            return Ok(());
        }
        let cfg = config()?;
        eprintln!("ladder: cargo build --release --examples");
        process::cargo(&["build", "--release", "--examples", "--quiet"])?;
        let pinning = match cfg.pin {
            true => "servers pinned to CPU 0, echo_client to CPU 1 (taskset)",
            false => "not pinned",
        };
        println!(
            "The I/O-model ladder: {} runs per cell, {} messages per run; {pinning}; Linux {}, \
             {} CPUs, load average {} at the start",
            cfg.runs,
            cfg.messages,
            procfs::kernel_release(),
            cpu::count(),
            procfs::load_average()
        );
        if cfg.idle {
            print_idle(&cfg);
        }
        print_ping_pong(&cfg);
        println!("load average {} at the end", procfs::load_average());
        Ok(())
    }

    /// The idle servers' table.
    fn print_idle(cfg: &Config) {
        let table = Table::new().left(22).left(22).right(10).right(22);
        println!("\nidle server CPU, % of one core over 1 s");
        println!(
            "{}",
            table.line(&[&"model", &"", &"no client", &"100 idle connections"])
        );
        for &(name, what) in &cfg.models {
            match idle(cfg, name) {
                Ok((alone, with_idle)) => {
                    let (alone, with_idle) = (format!("{alone:.1}%"), format!("{with_idle:.1}%"));
                    println!("{}", table.line(&[&name, &what, &alone, &with_idle]));
                }
                Err(e) => println!("{} failed: {e}", table.line(&[&name, &what])),
            }
        }
    }

    /// The ping-pong table: `cfg.runs` runs per model and client count.
    fn print_ping_pong(cfg: &Config) {
        println!(
            "\nping-pong: C connections at once, {} messages of 64 bytes in all (M/C per \
             connection, one in flight on each), connecting included; median of {} runs, \
             (min-max) over the runs",
            cfg.messages, cfg.runs
        );
        let table = Table::new()
            .left(22)
            .right(5)
            .right(8)
            .right(15)
            .right(8)
            .right(9)
            .right(17)
            .right(6)
            .right(6)
            .right(7)
            .right(7)
            .right(5)
            .right(6);
        let header: [&dyn std::fmt::Display; 13] = [
            &"model",
            &"C",
            &"msgs/s",
            &"(min-max)",
            &"p50 µs",
            &"p99 µs",
            &"(min-max)",
            &"CPU s",
            &"µs/msg",
            &"client s",
            &"RSS MiB",
            &"threads",
            &"procs",
        ];
        println!("{}", table.line(&header));
        for &(name, _) in &cfg.models {
            for &clients in &cfg.clients {
                let mut runs = Vec::new();
                let mut failures = Vec::new();
                for _ in 0..cfg.runs {
                    match run(cfg, name, clients) {
                        Ok(r) => runs.push(r),
                        Err(e) => failures.push(e),
                    }
                }
                if runs.is_empty() {
                    let start = table.line(&[&name, &clients]);
                    println!("{start} failed ({} runs): {}", cfg.runs, failures[0]);
                    continue;
                }
                let figures = |f: fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
                let (rate, p99) = (
                    Spread::of(&figures(|r| r.rate)),
                    Spread::of(&figures(|r| r.p99)),
                );
                let cpu = median(&figures(|r| r.cpu));
                let per_msg = cpu * 1e6 / ((cfg.messages / clients).max(1) * clients) as f64;
                let peak =
                    |f: fn(&Peaks) -> u64| runs.iter().map(|r| f(&r.peaks)).max().unwrap_or(0);
                let line = table.line(&[
                    &name,
                    &clients,
                    &format!("{:.0}", rate.median),
                    &rate.range(0),
                    &format!("{:.1}", median(&figures(|r| r.p50))),
                    &format!("{:.1}", p99.median),
                    &p99.range(0),
                    &format!("{cpu:.2}"),
                    &format!("{per_msg:.1}"),
                    &format!("{:.2}", median(&figures(|r| r.client_cpu))),
                    &format!("{:.1}", peak(|p| p.rss_kib) as f64 / 1024.0),
                    &peak(|p| p.threads),
                    &peak(|p| p.procs),
                ]);
                println!("{line}");
                for failure in &failures {
                    println!("{} one run failed: {failure}", table.line(&[&"", &""]));
                }
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    bench::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("ladder: Linux only (it reads /proc); nothing measured");
}
