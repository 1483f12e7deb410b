//! Ping-pong benchmark: what dispatching through selectloop costs over a bare `polling` loop.
//!
//! For N = 1, 64 and 1024 non-blocking Unix socketpairs, one end of each pair is watched by the
//! loop under test, whose handler echoes every message it reads. The other ends are driven by
//! the same thread in rounds: write one 32-byte message to every pair, run the loop until it
//! has echoed all N, then read the N replies back. Only the loop phase is timed, so the driver's
//! syscalls do not dilute the comparison, and both loops do exactly the same syscalls per round
//! (one `Poller::wait`, then N `read`s and N `write`s), which the `polls/round` column checks.
//!
//! - `run_once`: `DefaultSelector` with one `register(end, EVENT_READ, echo)` per pair, driven
//!   by `run_once(None)`.
//! - `select+dispatch`: the same registrations, driven by the README's loop,
//!   `for (key, mask) in sel.select(None)? { sel.dispatch(&key, mask)?; }`.
//! - bare `polling`: a `polling::Poller` with `add_with_mode(.., PollMode::Level)`, an `Events`
//!   buffer of the capacity selectloop picks, and the event key used as an index into a `Vec`
//!   of streams: the same user code (`echo`) on the crate selectloop builds on.
//! - bare epoll (Linux): `epoll_wait` through rustix into one reused buffer, the key an index:
//!   the floor a hand-written C loop would reach.
//!
//! Per N, each run builds every variant on fresh sockets, warms them up, then alternates them
//! in `CHUNKS` chunks so that drift hits all alike; the best of `RUNS` runs is reported as ns
//! per event, with the same-run ratios of both selectloop loops to the bare `polling` loop (and
//! to bare epoll). The spread column is the slowest run's ns/event over the best's, for the
//! select+dispatch loop. A counting global allocator reports the allocations made during
//! selectloop's measured phases (driver included): 0 means both loops are allocation-free in
//! steady state. On Linux `DefaultSelector` waits with one `epoll_wait` where `polling` makes
//! five system calls, so it can beat the bare `polling` loop.
//!
//! Run it with `cargo bench --bench pingpong`; `PINGPONG_EVENTS=40000` shortens it.
//! `PINGPONG_VARIANT=select+dispatch PINGPONG_SIZES=1` (any variant and sizes) runs that one
//! variant alone, once, and prints nothing but a line per size: `scripts/count.sh --pingpong`
//! runs it under callgrind to count instructions per event.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counts every allocation of the process (`alloc_zeroed` and `realloc` default to `alloc`).
static ALLOCS: AtomicU64 = AtomicU64::new(0);

struct Counting;

// SAFETY: forwards every call to `System` unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[cfg(unix)]
mod bench {
    use super::ALLOCS;
    use polling::{Event, PollMode, Poller};
    use selectloop::{DefaultSelector, ErrorAction, EVENT_READ};
    use std::io::{self, ErrorKind, Read, Write};
    use std::num::NonZeroUsize;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::{Duration, Instant};

    const SIZES: [usize; 3] = [1, 64, 1024];
    /// Default events per variant and run (`PINGPONG_EVENTS` overrides): about 1 s here.
    const EVENTS: usize = 400_000;
    /// Each run alternates the variants this many times, `events / CHUNKS` events each.
    const CHUNKS: usize = 10;
    const RUNS: usize = 3;
    const MSG: &[u8; 32] = b"ping-pong: a 32-byte message....";

    /// Time, events, polls and allocations of one variant's measured phases.
    #[derive(Default, Clone, Copy)]
    struct Sample {
        busy: Duration,
        events: usize,
        polls: usize,
        allocs: u64,
    }

    /// A loop under test: `serve(n)` echoes `n` pending messages and returns its poll count.
    trait Loop {
        fn serve(&mut self, n: usize) -> io::Result<usize>;
    }

    /// The handler both loops run: read the message, write it back.
    fn echo(stream: &mut UnixStream) -> io::Result<()> {
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf)?;
        stream.write_all(&buf[..n])
    }

    /// `n` non-blocking socketpairs, as (loop ends, driver ends).
    fn pairs(n: usize) -> io::Result<(Vec<UnixStream>, Vec<UnixStream>)> {
        let (mut ends, mut peers) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let (a, b) = UnixStream::pair()?;
            a.set_nonblocking(true)?;
            b.set_nonblocking(true)?;
            ends.push(a);
            peers.push(b);
        }
        Ok((ends, peers))
    }

    /// `DefaultSelector`, driven by `run_once` or (`select`) by the README's loop.
    struct SelectLoop {
        sel: DefaultSelector,
        select: bool,
    }

    impl SelectLoop {
        fn new(ends: Vec<UnixStream>, select: bool) -> io::Result<Self> {
            let mut sel = DefaultSelector::new()?;
            sel.set_error_handler(|_, _| ErrorAction::Stop);
            for end in ends {
                sel.register(end, EVENT_READ, |_, stream: &mut UnixStream, _| {
                    echo(stream)
                })?;
            }
            Ok(SelectLoop { sel, select })
        }
    }

    impl Loop for SelectLoop {
        fn serve(&mut self, n: usize) -> io::Result<usize> {
            let (mut done, mut polls) = (0, 0);
            while done < n {
                if self.select {
                    let ready = self.sel.select(None)?;
                    done += ready.len();
                    for (key, mask) in ready {
                        self.sel.dispatch(&key, mask)?;
                    }
                } else {
                    done += self.sel.run_once(None)?;
                }
                polls += 1;
            }
            Ok(polls)
        }
    }

    /// epoll by hand (Linux): one `epoll_wait` into a reused buffer, the key an index.
    #[cfg(target_os = "linux")]
    struct BareEpoll {
        epoll: std::os::fd::OwnedFd,
        events: Vec<rustix::event::epoll::Event>,
        ends: Vec<UnixStream>,
    }

    #[cfg(target_os = "linux")]
    impl BareEpoll {
        fn new(ends: Vec<UnixStream>) -> io::Result<Self> {
            use rustix::event::epoll;
            let fd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
            for (i, end) in ends.iter().enumerate() {
                let data = epoll::EventData::new_u64(i as u64);
                epoll::add(&fd, end, data, epoll::EventFlags::IN)?;
            }
            let events = Vec::with_capacity(ends.len().next_power_of_two());
            Ok(BareEpoll {
                epoll: fd,
                events,
                ends,
            })
        }
    }

    #[cfg(target_os = "linux")]
    impl Loop for BareEpoll {
        fn serve(&mut self, n: usize) -> io::Result<usize> {
            let (mut done, mut polls) = (0, 0);
            while done < n {
                self.events.clear();
                let buffer = rustix::buffer::spare_capacity(&mut self.events);
                rustix::event::epoll::wait(&self.epoll, buffer, None)?;
                polls += 1;
                for ev in &self.events {
                    if let Some(stream) = self.ends.get_mut(ev.data.u64() as usize) {
                        match echo(stream) {
                            Err(e) if e.kind() != ErrorKind::WouldBlock => return Err(e),
                            _ => done += 1,
                        }
                    }
                }
            }
            Ok(polls)
        }
    }

    struct Bare {
        poller: Poller,
        events: polling::Events,
        ends: Vec<UnixStream>,
    }

    impl Bare {
        fn new(ends: Vec<UnixStream>) -> io::Result<Self> {
            let poller = Poller::new()?;
            for (i, end) in ends.iter().enumerate() {
                // SAFETY: `drop` deletes every end from the poller before the ends are dropped.
                unsafe { poller.add_with_mode(end, Event::readable(i), PollMode::Level)? };
            }
            // The capacity selectloop's backend reserves for this many registrations.
            let capacity = (2 * ends.len()).next_power_of_two();
            let capacity = NonZeroUsize::new(capacity).expect("at least one pair");
            let events = polling::Events::with_capacity(capacity);
            Ok(Bare {
                poller,
                events,
                ends,
            })
        }
    }

    impl Loop for Bare {
        fn serve(&mut self, n: usize) -> io::Result<usize> {
            let (mut done, mut polls) = (0, 0);
            while done < n {
                self.events.clear();
                self.poller.wait(&mut self.events, None)?;
                polls += 1;
                for ev in self.events.iter() {
                    if let Some(stream) = self.ends.get_mut(ev.key) {
                        match echo(stream) {
                            Err(e) if e.kind() != ErrorKind::WouldBlock => return Err(e),
                            _ => done += 1,
                        }
                    }
                }
            }
            Ok(polls)
        }
    }

    impl Drop for Bare {
        fn drop(&mut self) {
            for end in &self.ends {
                let _ = self.poller.delete(end);
            }
        }
    }

    /// Runs ping-pong rounds until `events` messages were echoed, adding to `sample`: write one
    /// message to every peer, let the loop echo them all (timed), read the replies back.
    fn measure(
        peers: &mut [UnixStream],
        events: usize,
        lp: &mut dyn Loop,
        sample: &mut Sample,
    ) -> io::Result<()> {
        let n = peers.len();
        let mut buf = [0u8; 64];
        let allocs = ALLOCS.load(Relaxed);
        for _ in 0..events.div_ceil(n) {
            for peer in peers.iter_mut() {
                peer.write_all(MSG)?;
            }
            let start = Instant::now();
            sample.polls += lp.serve(n)?;
            sample.busy += start.elapsed();
            sample.events += n;
            for peer in peers.iter_mut() {
                let got = peer.read(&mut buf)?;
                assert_eq!(&buf[..got], MSG, "bad echo");
            }
        }
        sample.allocs += ALLOCS.load(Relaxed) - allocs;
        Ok(())
    }

    /// The variants, in the order of `run`'s result.
    const VARIANTS: [&str; 4] = ["run_once", "select+dispatch", "bare polling", "bare epoll"];

    /// The loop of variant `name` over `n` fresh pairs, with its peers.
    fn variant(name: &str, n: usize) -> io::Result<(Box<dyn Loop>, Vec<UnixStream>)> {
        let (ends, peers) = pairs(n)?;
        let lp: Box<dyn Loop> = match name {
            "run_once" => Box::new(SelectLoop::new(ends, false)?),
            "select+dispatch" => Box::new(SelectLoop::new(ends, true)?),
            "bare polling" => Box::new(Bare::new(ends)?),
            #[cfg(target_os = "linux")]
            "bare epoll" => Box::new(BareEpoll::new(ends)?),
            _ => return Err(io::Error::other(format!("no variant {name:?} here"))),
        };
        Ok((lp, peers))
    }

    /// One run for `n` pairs: fresh sockets for every variant, a warm-up, then `CHUNKS`
    /// alternating chunks of each. Returns one sample per variant (bare epoll: Linux only).
    fn run(n: usize, events: usize) -> io::Result<Vec<Sample>> {
        let here = if cfg!(target_os = "linux") { 4 } else { 3 };
        let mut loops = VARIANTS[..here]
            .iter()
            .map(|name| variant(name, n))
            .collect::<io::Result<Vec<_>>>()?;
        let chunk = events / CHUNKS;
        let mut samples = vec![Sample::default(); loops.len()];
        for (lp, peers) in &mut loops {
            measure(peers, chunk / 4, lp.as_mut(), &mut Sample::default())?; // warm-up
        }
        for _ in 0..CHUNKS {
            for ((lp, peers), sample) in loops.iter_mut().zip(&mut samples) {
                measure(peers, chunk, lp.as_mut(), sample)?;
            }
        }
        Ok(samples)
    }

    /// `PINGPONG_VARIANT`: `events` events of one variant at each of `sizes`, nothing else.
    fn one_variant(name: &str, events: usize) -> io::Result<()> {
        let sizes = std::env::var("PINGPONG_SIZES").unwrap_or_else(|_| "1".into());
        for n in sizes.split(',') {
            let n: usize = n
                .trim()
                .parse()
                .map_err(|e| io::Error::other(format!("PINGPONG_SIZES: {e}")))?;
            let (mut lp, mut peers) = variant(name, n)?;
            let mut sample = Sample::default();
            measure(&mut peers, events, lp.as_mut(), &mut sample)?;
            println!("{name}: N = {n}: {} events", sample.events);
        }
        Ok(())
    }

    pub fn main() -> io::Result<()> {
        let events = match std::env::var("PINGPONG_EVENTS") {
            Ok(v) => v
                .parse()
                .map_err(|e| io::Error::other(format!("PINGPONG_EVENTS: {e}")))?,
            Err(_) => EVENTS,
        };
        if let Ok(name) = std::env::var("PINGPONG_VARIANT") {
            return one_variant(&name, events);
        }
        // `cargo test --all-targets` runs a benchmark without `--bench`: it measures nothing then.
        if !std::env::args().any(|a| a == "--bench") {
            println!("pingpong: a benchmark: run it with `cargo bench --bench pingpong`");
            return Ok(());
        }
        println!(
            "pingpong: {events} events per variant and run, best of {RUNS} runs; ns per event"
        );
        println!(
            "{:>5} {:>9} {:>16} {:>13} {:>11} {:>22} {:>14} {:>8} {:>15}",
            "N",
            VARIANTS[0],
            VARIANTS[1],
            VARIANTS[2],
            VARIANTS[3],
            "ratios to bare polling",
            "to bare epoll",
            "spread",
            "allocs (per ev)"
        );
        for n in SIZES {
            let runs = (0..RUNS)
                .map(|_| run(n, events))
                .collect::<io::Result<Vec<_>>>()?;
            let ns = |x: &Sample| x.busy.as_nanos() as f64 / x.events as f64;
            let best: Vec<f64> = (0..runs[0].len())
                .map(|v| runs.iter().map(|r| ns(&r[v])).fold(f64::INFINITY, f64::min))
                .collect();
            let worst_select = runs.iter().map(|r| ns(&r[1])).fold(0.0, f64::max);
            let allocs: u64 = runs.iter().map(|r| r[0].allocs + r[1].allocs).sum();
            let sel_events: usize = runs.iter().map(|r| r[0].events + r[1].events).sum();
            let epoll = best.get(3).copied();
            let show = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.1}"));
            let ratio =
                |a: f64, b: Option<f64>| b.map_or("-".to_string(), |b| format!("{:.2}", a / b));
            println!(
                "{n:>5} {:>9.1} {:>16.1} {:>13.1} {:>11} {:>10} / {:>9} {:>5} / {:>6} {:>7.2}x {allocs:>5} ({:.5})",
                best[0],
                best[1],
                best[2],
                show(epoll),
                ratio(best[0], Some(best[2])),
                ratio(best[1], Some(best[2])),
                ratio(best[0], epoll),
                ratio(best[1], epoll),
                worst_select / best[1],
                allocs as f64 / sel_events as f64,
            );
        }
        println!("ratios: run_once / select+dispatch, each to the bare loop of the same run; spread: slowest / best select+dispatch run");
        Ok(())
    }
}

fn main() {
    #[cfg(unix)]
    if let Err(e) = bench::main() {
        eprintln!("pingpong: {e}");
        std::process::exit(1);
    }
    #[cfg(not(unix))]
    println!("pingpong: Unix only (socketpairs); nothing to measure on this platform");
}
