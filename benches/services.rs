//! Loop services benchmark: timers, cross-thread calls and the executor, against baselines.
//!
//! 1. **Timers**: N = 1,000,000 boxed callbacks (each bumps a shared counter), deadlines spaced
//!    as in libuv's `million_timers` (1,000 per ms). selectloop's `call_at` against a plain
//!    `BinaryHeap` of `(Instant, seq, Box<dyn FnOnce()>)`, which has no cancel: its push is the
//!    baseline of `schedule`, its pop that of *reclaim* (selectloop cancels in O(1) and drops
//!    cancelled timers in the next `run_once`), push + pop that of a whole cycle. Rows:
//!    schedule N, cancel them all, the `run_once` that reclaims them; N schedule-then-cancel
//!    pairs (an idle timeout reset per message); fire N due timers with one `run_once`
//!    (baseline: one clock reading, then pop and call each). Each variant runs in a process of
//!    its own: run second in one process, it would allocate from a million scattered freed
//!    chunks, a cache miss each (push measured 56 or 566 ns/timer depending on the order).
//! 2. **Cross-thread calls**: 1 or 2 producer threads flood `Handle::call_soon_threadsafe`
//!    (boxed closures holding a `u64`) into a loop on `run_once` until a fixed total; "1 in
//!    flight": the producer waits for each call to have run before sending the next, so each
//!    is one wake-up of a sleeping loop (and one back). Per backend, as their wake-ups differ:
//!    `polling`'s notify, an eventfd (EpollSelector), a self-pipe (PollSelector). Baseline:
//!    the same closures through a bare `std::sync::mpsc` channel, received and called.
//! 3. **Executor**: `run_in_executor(tiny work, done)`, `done` submitting the next job so that
//!    K jobs stay in flight, until a fixed total; default pool (one thread per CPU).
//!
//! A `run_once` that sleeps through its 1 s timeout with calls queued fails the run (a lost
//! wake-up). Figures are the best of 3 runs. The libuv column is a reference, not measured by
//! this program: figures from the project's issue #4, measured with libuv on a 2-core VM of
//! this kind (0.56 µs to insert a timer, 0.76 µs to fire one, 111k-688k cross-thread wake-ups/s,
//! 30k-65k thread-pool jobs/s); compare with care.
//!
//! Run it with `cargo bench --bench services` (about 50 s); `SERVICES_SCALE=0.1` scales every
//! count down.

use selectloop::{Backend, DefaultSelector, PollBackend, PollingBackend, Selector};
use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::io;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const RUNS: usize = 3;
const TIMERS: f64 = 1e6;
const CALLS: f64 = 1e6;
const PINGS: f64 = 20e3;
const JOBS: f64 = 100e3;

/// The baseline heap's entry: due first compares greatest, as in selectloop's heap.
struct Entry(Instant, u64, Box<dyn FnOnce()>);
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.0, other.1).cmp(&(self.0, self.1))
    }
}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for Entry {}

fn bump(count: &Rc<Cell<u64>>) -> impl FnOnce() {
    let c = count.clone();
    move || c.set(c.get() + 1)
}

/// One variant, in this process: ns per timer of schedule, cancel, reclaim, pair, fire (the
/// heap: push, -, pop, push+pop, pop+call).
fn timers_child(variant: &str, n: usize) -> io::Result<[f64; 5]> {
    let count = Rc::new(Cell::new(0u64));
    let at = |base: Instant| (0..n).map(move |i| base + Duration::from_millis(i as u64 / 1000));
    let (later, past) = (
        at(Instant::now() + Duration::from_secs(3600)),
        at(Instant::now() - Duration::from_secs(2)),
    );
    let mut d = [Duration::ZERO; 5];
    let mut lap = |i: usize, t: &mut Instant| (d[i], *t) = (t.elapsed(), Instant::now());
    let mut t = Instant::now();
    if variant == "selectloop" {
        let mut sel = DefaultSelector::new()?;
        let schedule = |sel: &mut DefaultSelector, when| {
            let f = bump(&count);
            sel.call_at(when, move |_| f())
        };
        let handles: Vec<_> = later.clone().map(|w| schedule(&mut sel, w)).collect();
        lap(0, &mut t);
        handles.iter().for_each(|h| h.cancel());
        lap(1, &mut t);
        sel.run_once(Some(Duration::ZERO))?; // drops the N cancelled timers
        drop(handles);
        lap(2, &mut t);
        later.for_each(|w| schedule(&mut sel, w).cancel());
        lap(3, &mut t);
        sel.run_once(Some(Duration::ZERO))?;
        past.for_each(|w| drop(schedule(&mut sel, w)));
        t = Instant::now();
        sel.run_once(Some(Duration::ZERO))?; // fires all N
        lap(4, &mut t);
    } else {
        let mut heap = BinaryHeap::new();
        let entry = |(seq, when)| Entry(when, seq as u64, Box::new(bump(&count)));
        later.clone().enumerate().for_each(|e| heap.push(entry(e)));
        lap(0, &mut t);
        lap(1, &mut t);
        while heap.pop().is_some() {}
        lap(2, &mut t);
        for e in later.enumerate() {
            heap.push(entry(e));
            black_box(heap.pop());
        }
        lap(3, &mut t);
        past.enumerate().for_each(|e| heap.push(entry(e)));
        t = Instant::now();
        let now = Instant::now();
        while heap.peek().is_some_and(|e| e.0 <= now) {
            (heap.pop().expect("peeked").2)();
        }
        lap(4, &mut t);
    }
    assert_eq!(count.get(), n as u64, "a timer did not fire");
    Ok(d.map(|d| d.as_nanos() as f64 / n as f64))
}

/// The best of `RUNS` runs of each variant, each in a process of its own: [selectloop, heap].
fn timers(n: usize) -> io::Result<[[f64; 5]; 2]> {
    let mut best = [[f64::MAX; 5]; 2];
    for run in 0..2 * RUNS {
        let variant = ["selectloop", "heap"][run % 2];
        let out = std::process::Command::new(std::env::current_exe()?)
            .env("SERVICES_TIMERS", format!("{variant} {n}"))
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let figures: Vec<f64> = text
            .split(' ')
            .filter_map(|x| x.trim().parse().ok())
            .collect();
        if !out.status.success() || figures.len() != 5 {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(io::Error::other(format!("{variant} child: {text}{err}")));
        }
        for (b, f) in best[run % 2].iter_mut().zip(figures) {
            *b = b.min(f);
        }
    }
    Ok(best)
}

/// Starts `threads` producers sending `total` calls between them with `send(i, ack)`; with
/// `in_flight`, each waits for its call's `ack` before sending the next.
fn producers<F>(threads: usize, total: usize, in_flight: bool, send: F) -> Vec<JoinHandle<()>>
where
    F: Fn(usize, Option<mpsc::Sender<()>>) -> io::Result<()> + Clone + Send + 'static,
{
    let start = Arc::new(Barrier::new(threads + 1));
    let spawn = |p: usize| {
        let (send, start) = (send.clone(), start.clone());
        thread::spawn(move || {
            let (ack, acked) = mpsc::channel();
            start.wait();
            for i in (p..total).step_by(threads) {
                send(i, in_flight.then(|| ack.clone())).expect("send a call");
                if in_flight {
                    acked.recv().expect("the call ran");
                }
            }
        })
    };
    let workers = (0..threads).map(spawn).collect();
    start.wait();
    workers
}

/// Runs `run_once` until `done(callbacks run)`; returns the iterations. A `run_once` that
/// waits out its 1 s timeout means calls sat queued while the loop slept: a lost wake-up.
fn drive<B: Backend>(sel: &mut Selector<B>, done: impl Fn(usize) -> bool) -> io::Result<usize> {
    let (mut ran, mut iterations) = (0, 0);
    while !done(ran) {
        let t = Instant::now();
        ran += sel.run_once(Some(Duration::from_secs(1)))?;
        iterations += 1;
        if t.elapsed() >= Duration::from_secs(1) {
            let msg = format!("lost wake-up: the loop slept 1 s with calls queued ({ran} ran)");
            return Err(io::Error::other(msg));
        }
    }
    Ok(iterations)
}

/// Cross-thread calls into a `Selector<B>`: (elapsed, `run_once` iterations).
fn calls<B: Backend>(threads: usize, flight: bool, total: usize) -> io::Result<(Duration, usize)> {
    let mut sel = Selector::<B>::new()?;
    let handle = sel.handle()?;
    let workers = producers(threads, total, flight, move |i, ack| match ack {
        None => handle.call_soon_threadsafe(move |_| _ = black_box(i)),
        Some(ack) => handle.call_soon_threadsafe(move |_| _ = ack.send(())),
    });
    let t = Instant::now();
    let iterations = drive(&mut sel, |ran| ran >= total)?;
    let elapsed = t.elapsed();
    workers
        .into_iter()
        .try_for_each(|w| w.join())
        .expect("producer");
    Ok((elapsed, iterations))
}

/// The baseline: the same calls through a bare channel, received and called one by one.
fn channel(threads: usize, flight: bool, total: usize) -> io::Result<(Duration, usize)> {
    let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
    let workers = producers(threads, total, flight, move |i, ack| {
        let call: Box<dyn FnOnce() + Send> = match ack {
            None => Box::new(move || _ = black_box(i)),
            Some(ack) => Box::new(move || _ = ack.send(())),
        };
        tx.send(call).map_err(|_| io::Error::other("receiver gone"))
    });
    let t = Instant::now();
    for _ in 0..total {
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(io::Error::other)?();
    }
    let elapsed = t.elapsed();
    workers
        .into_iter()
        .try_for_each(|w| w.join())
        .expect("producer");
    Ok((elapsed, total))
}

/// Executor round trips: `total` tiny jobs, `k` in flight. Returns the elapsed time.
fn executor<B: Backend>(k: usize, total: usize) -> io::Result<Duration> {
    fn submit<B: Backend>(sel: &mut Selector<B>, left: Rc<Cell<usize>>) -> io::Result<()> {
        left.set(left.get() - 1);
        let work = || black_box(21u64) * 2;
        sel.run_in_executor(work, move |sel, result| {
            assert_eq!(result.expect("the work ran"), 42);
            if left.get() > 0 {
                submit(sel, left).expect("submit");
            }
        })?;
        Ok(())
    }
    let mut sel = Selector::<B>::new()?;
    sel.run_in_executor(|| (), |_, _| {})?; // start the pool before the clock
    drive(&mut sel, |ran| ran >= 1)?;
    let (left, t) = (Rc::new(Cell::new(total)), Instant::now());
    for _ in 0..k {
        submit(&mut sel, left.clone())?;
    }
    drive(&mut sel, |ran| ran >= total)?; // each `done` is one call from a worker
    Ok(t.elapsed())
}

/// Runs `f` `RUNS` times; returns the shortest time and its other result.
fn best<T>(mut f: impl FnMut() -> io::Result<(Duration, T)>) -> io::Result<(Duration, T)> {
    let runs = (0..RUNS).map(|_| f()).collect::<io::Result<Vec<_>>>()?;
    Ok(runs.into_iter().min_by_key(|r| r.0).expect("RUNS > 0"))
}

/// Where `x` (per second) falls against libuv's reference range `lo..=hi` (measured on
/// another run, not this one: see the module docs).
fn versus(x: f64, lo: f64, hi: f64) -> String {
    let k = |v: f64| format!("{:.0}k", v / 1e3);
    match x {
        _ if x > hi => format!("above the reference {}-{}", k(lo), k(hi)),
        _ if x >= lo => format!("within the reference {}-{}", k(lo), k(hi)),
        _ => format!("below the reference {}", k(lo)),
    }
}

type Calls = fn(usize, bool, usize) -> io::Result<(Duration, usize)>;
type Exec = fn(usize, usize) -> io::Result<Duration>;

fn selector<B: Backend>(name: &'static str) -> (&'static str, Calls, Option<Exec>) {
    (name, calls::<B>, Some(executor::<B>))
}

fn main() -> io::Result<()> {
    if let Ok(job) = std::env::var("SERVICES_TIMERS") {
        let (variant, n) = job.split_once(' ').unwrap_or_default();
        let figures = timers_child(variant, n.parse().map_err(io::Error::other)?)?;
        println!("{}", figures.map(|x| format!("{x:.1}")).join(" "));
        return Ok(());
    }
    // `cargo test --all-targets` runs a benchmark without `--bench`: it measures nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("services: a benchmark: run it with `cargo bench --bench services`");
        return Ok(());
    }
    let scale: f64 = match std::env::var("SERVICES_SCALE") {
        Ok(v) => v
            .parse()
            .map_err(|e| io::Error::other(format!("SERVICES_SCALE: {e}")))?,
        Err(_) => 1.0,
    };
    let count = |base: f64| ((base * scale) as usize).max(1000);

    let n = count(TIMERS);
    let [s, b] = timers(n)?;
    println!("timers: N = {n}, best of {RUNS} processes each; ns per timer");
    println!("libuv: reference figures from another run (module docs), not measured here");
    println!(
        "{:37} selectloop  {:8} BinaryHeap  ratio  libuv ref.",
        "", ""
    );
    let what = [
        ("schedule (N pending)", "push"),
        ("cancel (each of N)", "-"),
        ("reclaim N cancelled (next run_once)", "pop"),
        ("schedule+cancel+reclaim, N pending", "push+pop"),
        ("schedule+cancel pair (interleaved)", "push+pop"),
        ("fire N due timers (one run_once)", "pop+call"),
    ];
    let sel = [s[0], s[1], s[2], s[0] + s[1] + s[2], s[3], s[4]];
    let heap = [b[0], f64::NAN, b[2], b[0] + b[2], b[3], b[4]];
    let libuv = [560.0, f64::NAN, f64::NAN, f64::NAN, f64::NAN, 760.0];
    for (i, (what, base)) in what.into_iter().enumerate() {
        let (s, b, uv) = (sel[i], heap[i], libuv[i]);
        let vs = match uv {
            _ if uv.is_nan() => String::new(),
            _ if s < uv => format!("below libuv's reference {uv:.0} ns"),
            _ => format!("not below libuv's reference {uv:.0} ns"),
        };
        let (b, ratio) = match b.is_nan() {
            true => ("-".into(), "-".into()),
            false => (format!("{b:.1}"), format!("{:.2}", s / b)),
        };
        let line = format!("{what:<37} {s:>10.1}  {base:<8} {b:>10} {ratio:>6}  {vs}");
        println!("{}", line.trim_end());
    }

    let (total, pings) = (count(CALLS), count(PINGS));
    println!("\ncross-thread calls: {total} flooded, {pings} one in flight; best of {RUNS}");
    println!("backend          producers      calls/s calls/iter  libuv reference (111k-688k wake-ups/s)");
    let mut backends = vec![selector::<PollingBackend>("DefaultSelector")];
    #[cfg(target_os = "linux")]
    backends.push(selector::<selectloop::EpollBackend>("EpollSelector"));
    backends.push(selector::<PollBackend>("PollSelector"));
    backends.push(("mpsc (baseline)", channel, None));
    for &(name, calls, _) in &backends {
        for (threads, flight, label) in [(1, false, "1"), (2, false, "2"), (1, true, "1 in flight")]
        {
            let total = if flight { pings } else { total };
            let (d, iterations) = best(|| calls(threads, flight, total))?;
            let rate = total as f64 / d.as_secs_f64();
            let per_iter = total as f64 / iterations as f64;
            let vs = versus(rate, 111e3, 688e3);
            println!("{name:<16} {label:<11} {rate:>10.0} {per_iter:>10.1}  {vs}");
        }
    }

    let jobs = count(JOBS);
    println!("\nexecutor: {jobs} run_in_executor jobs, default pool; best of {RUNS}");
    println!("backend            in flight     jobs/s  libuv reference (30k-65k jobs/s)");
    for (name, _, exec) in backends {
        let Some(exec) = exec else { continue };
        for k in [1, 64] {
            let (d, ()) = best(|| exec(k, jobs).map(|d| (d, ())))?;
            let rate = jobs as f64 / d.as_secs_f64();
            let vs = versus(rate, 30e3, 65e3);
            println!("{name:<16} {k:>11} {rate:>10.0}  {vs}");
        }
    }
    Ok(())
}
