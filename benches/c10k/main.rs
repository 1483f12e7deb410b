//! The C10K table: select vs poll vs epoll with N registered TCP connections, 10 of them active.
//!
//! For N = 1, 100, 1,000 and 10,000 loopback TCP connections, a server process runs
//! `Selector<B>` for each backend (`SelectSelector`, `PollSelector`, `EpollSelector`,
//! `DefaultSelector`): the listener's callback accepts and registers every connection for READ
//! with an echo callback, and the loop is `run_once(None)`. A client process (this binary
//! again, with a `client` argument) opens the N connections, then keeps 10 of them (spread
//! over the N; all of them when N < 10) ping-ponging: one 32-byte message in flight on each,
//! the next sent as soon as its echo is back. The other N − 10 stay idle but registered: the
//! question is what they cost each `select`. The server (also this binary, `serve`) is pinned
//! to CPU 0 and the client to CPU 1 with `taskset` when there are two CPUs.
//!
//! Per run, in one server process, once the N connections are set up:
//!
//! 1. a 0.2 s warm-up;
//! 2. five timed phases of `C10K_SECONDS` (default 0.6 s). Around each, the server reports
//!    its wall clock, its user and system CPU time (`/proc/self/stat`), its loop iterations
//!    and the bytes it echoed. One loop iteration is one `select` and the dispatch of what it
//!    returned, so: µs per `select` (server CPU, and wall clock), messages per `select`, CPU
//!    per message. The median phase (by CPU per `select`) is reported;
//! 3. if `strace` is installed, `strace -c -f -p SERVER` is attached for half a phase's length,
//!    so that only steady-state ping-pong is counted, not the setup; then the server exits,
//!    which ends the trace. strace slows the server, which then finds more messages ready per
//!    `select` than untraced, so the table's system calls per message are the echo's own calls
//!    per message plus the other calls per `select` (the wait, and what the backend does
//!    around it) divided by the *untraced* messages per `select`. The traced figures are
//!    printed below the table.
//!
//! Every backend must register all N; `SelectSelector` refuses descriptors from 1024
//! (`FD_SETSIZE`) on, so at N = 10,000 its row reports how many connections it had then.
//!
//! Run it with `cargo bench --bench c10k` (under a minute on a 2-core VM); it prints the table
//! and writes it as CSV to `<target dir>/c10k.csv` (or `$C10K_CSV`), which
//! `scripts/plot_c10k.py` turns into an SVG. Environment:
//! - `C10K_SECONDS=0.2` shortens the timed phases (the warm-up stays 0.2 s);
//! - `C10K_SIZES=1,100,1000` picks the N values, `C10K_BACKENDS=EpollSelector,PollSelector`
//!   the backends;
//! - `C10K_STRACE=0` skips the system calls, `C10K_PIN=0` the pinning.
//!
//! Linux only: it reads `/proc` and compares with epoll.
//!
//! The code, by job; each file imports only those above it in this list (and `common`):
//! - `protocol.rs`: what the three processes say to each other, and the message;
//! - `server.rs` and `client.rs`: the two child processes, `c10k serve` and `c10k client`;
//! - `strace.rs`: counting the server's system calls, and parsing strace's summary;
//! - `run.rs`: the configuration and one (backend, N) run, with its figures;
//! - `report.rs`: the table and the CSV;
//! - this file: which of the three processes this one is, and the coordinator's loop.
//!
//! `benches/common/` has what the other process benchmarks share: child processes, pinning and
//! CPU time, tables and CSV.

#[cfg(target_os = "linux")]
mod client;
#[cfg(target_os = "linux")]
#[path = "../common/mod.rs"]
mod common;
#[cfg(target_os = "linux")]
mod protocol;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod run;
#[cfg(target_os = "linux")]
mod server;
#[cfg(target_os = "linux")]
mod strace;

#[cfg(target_os = "linux")]
use std::{io, path::PathBuf, time::Instant};

/// Marks the descriptors this process inherited beyond stdio close-on-exec, so that the
/// servers and clients start with stdio only: otherwise whatever the shell that ran cargo
/// left open takes descriptor numbers, and so connections, from `SelectSelector`'s 1024.
#[cfg(target_os = "linux")]
fn close_inherited_on_exec() {
    use std::os::fd::{BorrowedFd, RawFd};
    let Ok(mut dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = dir
        .by_ref()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds.into_iter().filter(|&fd| fd > 2) {
        // SAFETY: `fd` was listed open, the listing's own descriptor is still open (`dir`
        // lives until below), and no other thread runs yet that could close one.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        if let Ok(flags) = rustix::io::fcntl_getfd(fd) {
            let _ = rustix::io::fcntl_setfd(fd, flags | rustix::io::FdFlags::CLOEXEC);
        }
    }
    drop(dir);
}

/// The coordinator: runs a server and a client per (backend, N), prints and saves the table.
#[cfg(target_os = "linux")]
fn coordinate() -> io::Result<()> {
    use protocol::{ACTIVE, MSG};
    use run::{Config, PHASES, WARMUP_SECONDS};
    let started = Instant::now();
    close_inherited_on_exec();
    let cfg = Config::from_env()?;
    let syscalls = match &cfg.no_strace {
        None => format!(", then {:.2} s under strace", cfg.seconds / 2.0),
        Some(_) => String::new(),
    };
    println!(
        "c10k: N loopback TCP connections, {ACTIVE} of them ping-ponging {}-byte messages \
         (one in flight each)",
        MSG.len(),
    );
    println!(
        "per run: {WARMUP_SECONDS} s warm-up, {PHASES} timed phases of {} s \
         (the median is shown){syscalls}",
        cfg.seconds
    );
    println!(
        "server CPU from /proc/self/stat; {}",
        if cfg.pin {
            "server pinned to CPU 0, client to CPU 1 (C10K_PIN=0: unpinned)"
        } else {
            "server and client not pinned"
        }
    );
    if let Some(why) = &cfg.no_strace {
        println!("system calls will not be measured: {why}");
    }
    let mut rows = Vec::new();
    for &n in &cfg.sizes {
        for &backend in &cfg.backends {
            let row = run::run(backend, n, &cfg)?;
            match (row.timing(), &row.capped) {
                (Some(t), _) => eprintln!(
                    "  {backend:<16} N={n:<6} setup {:.2} s, {} msgs, {:.1} CPU µs/select",
                    row.setup.as_secs_f64(),
                    t.messages,
                    t.cpu_us_per_select()
                ),
                (None, Some((k, _))) => eprintln!("  {backend:<16} N={n:<6} refused after {k}"),
                (None, None) => {}
            }
            rows.push(row);
        }
    }
    report::print_table(&rows, &cfg);
    let csv = std::env::var_os("C10K_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| cfg.dir.join("c10k.csv"));
    report::write_csv(&rows, &csv)?;
    println!();
    println!("CSV: {}", csv.display());
    println!("total time: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(target_os = "linux")]
fn dispatch() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => server::serve(&args[1..]),
        Some("client") => client::client(&args[1..]),
        // `cargo test --all-targets` runs a benchmark without `--bench`: it measures
        // nothing then.
        _ if !args.iter().any(|a| a == "--bench") => {
            println!("c10k: a benchmark: run it with `cargo bench --bench c10k`");
            Ok(())
        }
        _ => coordinate(),
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    if let Err(e) = dispatch() {
        eprintln!("c10k: {e}");
        std::process::exit(1);
    }
    #[cfg(not(target_os = "linux"))]
    println!("c10k: Linux only (it reads /proc and compares with epoll); nothing to measure here");
}
