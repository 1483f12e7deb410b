//! Ping-pong benchmark: what dispatching through selectloop costs over a bare `polling` loop.
//!
//! For N = 1, 64 and 1024 non-blocking Unix socketpairs, one end of each pair is watched by the
//! loop under test, whose handler echoes every message it reads. The other ends are driven by
//! the same thread in rounds: write one 32-byte message to every pair, run the loop until it
//! has echoed all N, then read the N replies back. Only the loop phase is timed, so the driver's
//! syscalls do not dilute the comparison, and both loops do exactly the same syscalls per round
//! (one `Poller::wait`, then N `read`s and N `write`s), which the `polls/round` column checks.
//!
//! - selectloop: `DefaultSelector` with one `register(end, EVENT_READ, echo)` per pair, driven
//!   by `run_once(None)`.
//! - bare: a `polling::Poller` with `add_with_mode(.., PollMode::Level)`, an `Events` buffer of
//!   the capacity selectloop picks, and the event key used as an index into a `Vec` of streams.
//!
//! Per N, each run builds both variants on fresh sockets, warms them up, then alternates
//! them in `CHUNKS` chunks so that drift hits both alike; the best of `RUNS` runs is
//! reported as ns per event, with the ratio selectloop/bare. A counting global allocator
//! reports the allocations made during selectloop's measured phases (driver included): 0 means
//! `run_once` is allocation-free in steady state.
//!
//! Run it with `cargo bench --bench pingpong`; `PINGPONG_EVENTS=40000` shortens it (e.g. under
//! `valgrind --tool=callgrind`).

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

    struct SelectLoop(DefaultSelector);

    impl SelectLoop {
        fn new(ends: Vec<UnixStream>) -> io::Result<Self> {
            let mut sel = DefaultSelector::new()?;
            sel.set_error_handler(|_, _| ErrorAction::Stop);
            for end in ends {
                sel.register(end, EVENT_READ, |_, stream: &mut UnixStream, _| {
                    echo(stream)
                })?;
            }
            Ok(SelectLoop(sel))
        }
    }

    impl Loop for SelectLoop {
        fn serve(&mut self, n: usize) -> io::Result<usize> {
            let (mut done, mut polls) = (0, 0);
            while done < n {
                done += self.0.run_once(None)?;
                polls += 1;
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
        lp: &mut impl Loop,
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

    /// One run for `n` pairs: fresh sockets for both variants, a warm-up, then `CHUNKS`
    /// alternating chunks of each. Returns (selectloop, bare).
    fn run(n: usize, events: usize) -> io::Result<(Sample, Sample)> {
        let (ends, mut sel_peers) = pairs(n)?;
        let mut sel = SelectLoop::new(ends)?;
        let (ends, mut bare_peers) = pairs(n)?;
        let mut bare = Bare::new(ends)?;
        let chunk = events / CHUNKS;
        let mut warmup = Sample::default();
        measure(&mut sel_peers, chunk / 4, &mut sel, &mut warmup)?;
        measure(&mut bare_peers, chunk / 4, &mut bare, &mut warmup)?;
        let (mut s, mut b) = (Sample::default(), Sample::default());
        for _ in 0..CHUNKS {
            measure(&mut sel_peers, chunk, &mut sel, &mut s)?;
            measure(&mut bare_peers, chunk, &mut bare, &mut b)?;
        }
        Ok((s, b))
    }

    pub fn main() -> io::Result<()> {
        let events = match std::env::var("PINGPONG_EVENTS") {
            Ok(v) => v
                .parse()
                .map_err(|e| io::Error::other(format!("PINGPONG_EVENTS: {e}")))?,
            Err(_) => EVENTS,
        };
        println!("pingpong: {events} events per variant and run, best of {RUNS} runs");
        println!(
            "{:>5} {:>17} {:>11} {:>7} {:>15} {:>16}",
            "N", "selectloop ns/ev", "bare ns/ev", "ratio", "allocs (per ev)", "polls/round s/b"
        );
        for n in SIZES {
            let runs = (0..RUNS)
                .map(|_| run(n, events))
                .collect::<io::Result<Vec<_>>>()?;
            let best = |pick: fn(&(Sample, Sample)) -> Sample| {
                runs.iter()
                    .map(pick)
                    .min_by_key(|s| s.busy)
                    .expect("RUNS > 0")
            };
            let (sel, bare) = (best(|r| r.0), best(|r| r.1));
            let allocs: u64 = runs.iter().map(|r| r.0.allocs).sum();
            let sel_events: usize = runs.iter().map(|r| r.0.events).sum();
            let ns = |x: Sample| x.busy.as_nanos() as f64 / x.events as f64;
            let polls = |x: Sample| x.polls as f64 * n as f64 / x.events as f64;
            println!(
                "{n:>5} {:>17.1} {:>11.1} {:>7.3} {allocs:>5} ({:>7.5}) {:>7.2}/{:.2}",
                ns(sel),
                ns(bare),
                ns(sel) / ns(bare),
                allocs as f64 / sel_events as f64,
                polls(sel),
                polls(bare),
            );
        }
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
