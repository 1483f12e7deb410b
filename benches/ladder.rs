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
mod bench {
    use std::io::{self, BufRead, BufReader};
    use std::net::{SocketAddr, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
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
        let cpus = thread::available_parallelism().map_or(1, |n| n.get());
        let taskset = Command::new("taskset").arg("-V").output().is_ok();
        // This binary is target/release/deps/ladder-HASH; the examples are built next to it.
        let exe = std::env::current_exe()?;
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .ok_or(io::ErrorKind::NotFound)?;
        Ok(Config {
            models,
            clients,
            messages: env_or("LADDER_MESSAGES", 30_000),
            runs: env_or("LADDER_RUNS", 3).max(1),
            pin: env_or("LADDER_PIN", 1) != 0 && cpus >= 2 && taskset,
            idle: env_or("LADDER_IDLE", 1) != 0,
            examples: profile.join("examples"),
        })
    }

    /// `cargo build --release --examples`, with the cargo that runs this benchmark.
    fn build_examples() -> io::Result<()> {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--examples", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "cargo build --release --examples: {status}"
            )));
        }
        Ok(())
    }

    /// A command for `bin` with `args`, pinned to `cpu` through `taskset` (which execs it: the
    /// process id is the program's).
    fn command(bin: &Path, args: &[&str], cpu: Option<usize>) -> Command {
        let mut cmd = match cpu {
            Some(cpu) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(cpu.to_string()).arg(bin);
                cmd
            }
            None => Command::new(bin),
        };
        cmd.args(args).env("RUST_LOG", "warn").stdin(Stdio::null());
        cmd
    }

    /// A model server, killed when dropped. Its stderr is drained all along (kept for errors).
    struct Server {
        child: Child,
        pid: u32,
        addr: SocketAddr,
        stderr: Arc<Mutex<String>>,
        forks: bool,
    }

    impl Server {
        fn start(cfg: &Config, name: &str) -> io::Result<Server> {
            let bin = cfg.examples.join(name);
            let mut child = command(&bin, &["127.0.0.1:0"], cfg.pin.then_some(0))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", bin.display())))?;
            let pipe = child.stderr.take().expect("piped");
            let stderr = Arc::new(Mutex::new(String::new()));
            let (first, first_line) = mpsc::channel();
            let text = stderr.clone();
            thread::spawn(move || {
                let mut lines = BufReader::new(pipe).lines();
                if let Some(Ok(line)) = lines.next() {
                    let _ = first.send(line.clone());
                    text.lock().unwrap().push_str(&line);
                }
                for line in lines.map_while(Result::ok) {
                    let mut text = text.lock().unwrap();
                    if text.len() < 1 << 20 {
                        text.push('\n');
                        text.push_str(&line);
                    }
                }
            });
            let line = first_line
                .recv_timeout(Duration::from_secs(10))
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, format!("{name}: no address line"))
                })?;
            let addr = line
                .split_whitespace()
                .find_map(|w| w.trim_matches(|c: char| ",;()".contains(c)).parse().ok())
                .ok_or_else(|| io::Error::other(format!("{name}: no address in {line:?}")))?;
            let pid = child.id();
            Ok(Server {
                child,
                pid,
                addr,
                stderr,
                forks: name == "model_fork",
            })
        }

        /// CPU seconds so far: user + system, with the reaped children's.
        fn cpu(&self) -> f64 {
            cpu_seconds(&format!("/proc/{}/stat", self.pid), 14..=17)
        }

        /// Waits (polling `/proc`: nothing else tells) until the server has no child left,
        /// so that their CPU time is in its own; at most 10 s.
        fn wait_for_children(&self) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.forks && !children_of(self.pid).is_empty() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// The sum of fields `fields` of a `/proc/.../stat` file (clock ticks), in seconds: 14 and
    /// 15 are the process's user and system time, 16 and 17 those of its reaped children.
    fn cpu_seconds(path: &str, fields: std::ops::RangeInclusive<usize>) -> f64 {
        let Ok(stat) = std::fs::read_to_string(path) else {
            return f64::NAN;
        };
        let values = stat_fields(&stat); // values[0] is field 3, the state
        let ticks: u64 = fields
            .filter_map(|n| values.get(n - 3)?.parse::<u64>().ok())
            .sum();
        ticks as f64 / clock_ticks()
    }

    /// The fields of `/proc/PID/stat` after the command name (which may contain spaces).
    fn stat_fields(stat: &str) -> Vec<&str> {
        let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
        after.split_whitespace().collect()
    }

    fn clock_ticks() -> f64 {
        static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
        *TICKS.get_or_init(|| {
            let out = Command::new("getconf").arg("CLK_TCK").output();
            let text = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
            text.ok().and_then(|t| t.parse().ok()).unwrap_or(100.0)
        })
    }

    /// The child processes of `pid` (this kernel has no `/proc/PID/task/PID/children`).
    fn children_of(pid: u32) -> Vec<u32> {
        let mut children = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if stat_fields(&stat)
                .get(1)
                .and_then(|p| p.parse::<u32>().ok())
                == Some(pid)
            {
                children.push(child);
            }
        }
        children
    }

    /// A field of `/proc/PID/status` (`Threads`, `VmRSS`, `VmHWM`...), as a number.
    fn status_field(pid: u32, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status
            .lines()
            .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
        line[field.len() + 1..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
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
            loop {
                let children = if forks { children_of(pid) } else { Vec::new() };
                let rss: u64 = std::iter::once(pid)
                    .chain(children.iter().copied())
                    .filter_map(|p| status_field(p, "VmRSS"))
                    .sum();
                peaks.rss_kib = peaks.rss_kib.max(rss);
                peaks.threads = peaks.threads.max(status_field(pid, "Threads").unwrap_or(0));
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
        let sampler = sample(server.pid, server.forks, stop.clone());
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
        let client_before = cpu_seconds("/proc/self/stat", 16..=17);
        let out = command(
            &cfg.examples.join("echo_client"),
            &args,
            cfg.pin.then_some(1),
        )
        .output();
        let client_cpu = cpu_seconds("/proc/self/stat", 16..=17) - client_before;
        server.wait_for_children();
        let cpu = server.cpu() - cpu_before;
        stop.store(true, Ordering::Relaxed);
        let mut peaks = sampler.join().expect("the sampler thread");
        peaks.rss_kib = peaks
            .rss_kib
            .max(status_field(server.pid, "VmHWM").unwrap_or(0));
        let out = out.map_err(|e| format!("echo_client: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let why = stderr
                .lines()
                .last()
                .unwrap_or("")
                .trim_start_matches("echo_client: ");
            let server_said = server
                .stderr
                .lock()
                .unwrap()
                .lines()
                .rev()
                .find(|l| l.contains("WARN"))
                .map(str::to_string);
            return Err(match server_said {
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

    fn median(mut values: Vec<f64>) -> f64 {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        match n % 2 {
            1 => values[n / 2],
            _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
        }
    }

    fn range(values: &[f64]) -> (f64, f64) {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (min, max)
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
        build_examples()?;
        let pinning = match cfg.pin {
            true => "servers pinned to CPU 0, echo_client to CPU 1 (taskset)",
            false => "not pinned",
        };
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let cpus = thread::available_parallelism().map_or(0, |n| n.get());
        println!(
            "The I/O-model ladder: {} runs per cell, {} messages per run; {pinning}; Linux {}, \
             {cpus} CPUs, load average {} at the start",
            cfg.runs,
            cfg.messages,
            kernel.trim(),
            load_average()
        );
        if cfg.idle {
            println!("\nidle server CPU, % of one core over 1 s");
            println!(
                "{:<22} {:<22} {:>10} {:>22}",
                "model", "", "no client", "100 idle connections"
            );
            for &(name, what) in &cfg.models {
                match idle(&cfg, name) {
                    Ok((alone, with_idle)) => {
                        println!("{name:<22} {what:<22} {alone:>9.1}% {with_idle:>21.1}%")
                    }
                    Err(e) => println!("{name:<22} {what:<22} failed: {e}"),
                }
            }
        }
        println!(
            "\nping-pong: C connections at once, {} messages of 64 bytes in all (M/C per \
             connection, one in flight on each), connecting included; median of {} runs, \
             (min-max) over the runs",
            cfg.messages, cfg.runs
        );
        println!(
            "{:<22} {:>5} {:>8} {:>15} {:>8} {:>9} {:>17} {:>6} {:>6} {:>7} {:>7} {:>5} {:>6}",
            "model",
            "C",
            "msgs/s",
            "(min-max)",
            "p50 µs",
            "p99 µs",
            "(min-max)",
            "CPU s",
            "µs/msg",
            "client s",
            "RSS MiB",
            "threads",
            "procs"
        );
        for &(name, _) in &cfg.models {
            for &clients in &cfg.clients {
                let mut runs = Vec::new();
                let mut failures = Vec::new();
                for _ in 0..cfg.runs {
                    match run(&cfg, name, clients) {
                        Ok(r) => runs.push(r),
                        Err(e) => failures.push(e),
                    }
                }
                if runs.is_empty() {
                    println!(
                        "{name:<22} {clients:>5} failed ({} runs): {}",
                        cfg.runs, failures[0]
                    );
                    continue;
                }
                let rates: Vec<f64> = runs.iter().map(|r| r.rate).collect();
                let p99s: Vec<f64> = runs.iter().map(|r| r.p99).collect();
                let ((rate_lo, rate_hi), (p99_lo, p99_hi)) = (range(&rates), range(&p99s));
                let cpu = median(runs.iter().map(|r| r.cpu).collect());
                let per_msg = cpu * 1e6 / ((cfg.messages / clients).max(1) * clients) as f64;
                let peak =
                    |f: fn(&Peaks) -> u64| runs.iter().map(|r| f(&r.peaks)).max().unwrap_or(0);
                let client_cpu = median(runs.iter().map(|r| r.client_cpu).collect());
                println!(
                    "{name:<22} {clients:>5} {:>8.0} {:>15} {:>8.1} {:>9.1} {:>17} {cpu:>6.2} {per_msg:>6.1} {client_cpu:>7.2} {:>7.1} {:>5} {:>6}",
                    median(rates.clone()),
                    format!("({rate_lo:.0}-{rate_hi:.0})"),
                    median(runs.iter().map(|r| r.p50).collect()),
                    median(p99s.clone()),
                    format!("({p99_lo:.0}-{p99_hi:.0})"),
                    peak(|p| p.rss_kib) as f64 / 1024.0,
                    peak(|p| p.threads),
                    peak(|p| p.procs),
                );
                for failure in &failures {
                    println!("{:<22} {:>5} one run failed: {failure}", "", "");
                }
            }
        }
        println!("load average {} at the end", load_average());
        Ok(())
    }

    /// The 1-minute load average: how busy the machine was (other work skews every figure).
    fn load_average() -> String {
        let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        text.split_whitespace().next().unwrap_or("?").to_string()
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
