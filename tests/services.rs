//! The loop's services: timers, deferred calls, cross-thread calls, the executor, signals.
//!
//! Tests that depend on the backend (wake-ups from other threads use each backend's own
//! mechanism) are generic and run against every selector type; the others use the default.

#[macro_use]
mod common;

use common::{run_until, selector, socketpair, TIMEOUT};
use selectloop::{Backend, DefaultSelector, Selector, EVENT_READ, EVENT_WRITE};
use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, Write};
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

type Log = Rc<RefCell<Vec<&'static str>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

/// Makes a `run()` that is never woken fail with `what` instead of hanging.
fn watchdog<B: Backend>(sel: &mut Selector<B>, what: &'static str) -> selectloop::TimerHandle {
    sel.call_later(TIMEOUT, move |_| panic!("timed out: {what}"))
}

#[test]
fn timers_fire_in_deadline_then_scheduling_order() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let order = log();
    let now = Instant::now();
    let at = |ms| now + Duration::from_millis(ms);
    for (when, name) in [
        (30, "30ms"),
        (10, "10ms a"),
        (20, "20ms"),
        (10, "10ms b"),
        (0, "now"),
    ] {
        let order = order.clone();
        sel.call_at(at(when), move |_| order.borrow_mut().push(name));
    }
    let o = order.clone();
    let cancelled = sel.call_at(at(15), move |_| o.borrow_mut().push("cancelled"));
    cancelled.cancel();
    cancelled.cancel(); // twice: harmless
    sel.run()?; // returns once every live timer fired
    assert_eq!(*order.borrow(), ["now", "10ms a", "10ms b", "20ms", "30ms"]);
    assert!(cancelled.is_cancelled());
    Ok(())
}

#[test]
fn timers_never_fire_early() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let late = Rc::new(Cell::new(0));
    for ms in [1u64, 2, 5, 13, 20, 33] {
        let (delay, late) = (Duration::from_millis(ms), late.clone());
        let scheduled = Instant::now();
        sel.call_later(delay, move |_| {
            assert!(
                scheduled.elapsed() >= delay,
                "a {delay:?} timer fired early"
            );
            late.set(late.get() + 1);
        });
    }
    sel.run()?;
    assert_eq!(late.get(), 6);
    Ok(())
}

#[test]
fn timer_scheduled_from_a_timer_fires_in_a_later_iteration() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let order = log();
    let o = order.clone();
    sel.call_later(Duration::ZERO, move |sel| {
        o.borrow_mut().push("outer");
        let o = o.clone();
        sel.call_later(Duration::ZERO, move |_| o.borrow_mut().push("inner"));
    });
    sel.run_once(Some(Duration::ZERO))?;
    assert_eq!(
        *order.borrow(),
        ["outer"],
        "a timer due now ran in the pass that scheduled it"
    );
    sel.run()?;
    assert_eq!(*order.borrow(), ["outer", "inner"]);
    Ok(())
}

#[test]
fn repeating_timer_runs_until_it_cancels_itself() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let ticks = Rc::new(Cell::new(0));
    let handle = Rc::new(RefCell::new(None));
    let (t, h) = (ticks.clone(), handle.clone());
    let start = Instant::now();
    let timer = sel.call_repeating(Duration::from_millis(5), move |_| {
        t.set(t.get() + 1);
        if t.get() == 4 {
            h.borrow().as_ref().map(selectloop::TimerHandle::cancel);
        }
    });
    *handle.borrow_mut() = Some(timer);
    sel.run()?; // returns when the timer cancelled itself
    assert_eq!(ticks.get(), 4);
    assert!(
        start.elapsed() >= Duration::from_millis(20),
        "ticks came early"
    );
    Ok(())
}

// A repeating timer whose callback stalls for more than two intervals: the ticks it missed are
// skipped (no burst of catch-up calls), and every deadline stays on the grid of the first one
// (no drift): consecutive deadlines differ by a whole number of intervals, and by exactly one
// once the timer keeps up again.
#[test]
fn repeating_timer_skips_missed_ticks_without_drift() -> io::Result<()> {
    const INTERVAL: Duration = Duration::from_millis(20);
    let mut sel = DefaultSelector::new()?;
    // (deadline of the tick, when the callback ran, when it returned)
    let calls = Rc::new(RefCell::new(Vec::<(Instant, Instant, Instant)>::new()));
    let handle = Rc::new(RefCell::new(None::<selectloop::TimerHandle>));
    let (c, h) = (calls.clone(), handle.clone());
    let timer = sel.call_repeating(INTERVAL, move |_| {
        let deadline = h.borrow().as_ref().expect("the handle").when();
        let ran = Instant::now();
        if c.borrow().is_empty() {
            thread::sleep(INTERVAL * 5 / 2); // the stall under test
        }
        c.borrow_mut().push((deadline, ran, Instant::now()));
        if c.borrow().len() == 4 {
            h.borrow().as_ref().map(selectloop::TimerHandle::cancel);
        }
    });
    *handle.borrow_mut() = Some(timer);
    sel.run()?; // until the timer cancels itself
    let calls = calls.borrow();
    let nanos = INTERVAL.as_nanos();
    for pair in calls.windows(2) {
        let ((d0, _, returned), (d1, ran, _)) = (pair[0], pair[1]);
        let step = d1 - d0;
        assert_eq!(
            step.as_nanos() % nanos,
            0,
            "a deadline drifted off the grid: {step:?}"
        );
        assert!(
            d1 > returned,
            "a tick missed while the callback ran was made up"
        );
        assert!(ran >= d1, "a call came before its deadline");
        if d0 + INTERVAL > returned + Duration::from_millis(2) {
            assert_eq!(
                step, INTERVAL,
                "a tick was skipped although the timer kept up"
            );
        }
    }
    // The stall (2.5 intervals, more where sleeps overshoot, as under Wine) made the first
    // call miss ticks: the next is the first tick after it returned. The timer is rescheduled
    // a moment after that (10 ms allowed), and a tick passing in that moment is missed too.
    let ((d0, _, returned), (d1, _, _)) = (calls[0], calls[1]);
    assert!(
        d1 - d0 >= INTERVAL * 3,
        "a tick missed in the stall was made up"
    );
    assert!(
        d1 - INTERVAL <= returned + Duration::from_millis(10),
        "not the first tick after the stall: {:?} after the first",
        d1 - d0
    );
    Ok(())
}

#[test]
fn debug_output_names_what_matters() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let (a, _peer) = socketpair()?;
    let key = sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    let handle = sel.handle()?;
    assert_eq!(format!("{handle:?}"), "Handle { closed: false, .. }");
    let shown = format!("{sel:?}");
    assert!(
        shown.starts_with("Selector {") && shown.contains(&format!("{key:?}")),
        "{shown}"
    );
    assert!(
        shown.contains("backend: PollingBackend { poller: "),
        "{shown}"
    );
    let timer = sel.call_later(Duration::from_secs(60), |_| {});
    let shown = format!("{timer:?}");
    assert!(
        shown.contains("cancelled: false") && shown.contains("pending: true"),
        "{shown}"
    );
    timer.cancel();
    assert!(format!("{timer:?}").contains("cancelled: true"));
    // Each backend says what it is: poll(2) how many descriptors it watches, select(2) which.
    let mut poll = selectloop::PollSelector::new()?;
    let (b, _peer_b) = socketpair()?;
    poll.register(b, EVENT_READ, |_, _, _| Ok(()))?;
    let shown = format!("{poll:?}");
    assert!(shown.contains("PollBackend { registered: 1"), "{shown}");
    let mut select = selectloop::SelectSelector::new()?;
    let (c, _peer_c) = socketpair()?;
    let key = select.register(c, EVENT_READ, |_, _, _| Ok(()))?;
    let shown = format!("{select:?}");
    let watched = format!("SelectBackend {{ registered: [({}, ", key.fd());
    assert!(
        shown.contains(&watched) && shown.contains("sets: Sets { .. }"),
        "{shown}"
    );
    #[cfg(target_os = "linux")]
    {
        let epoll = selectloop::EpollSelector::new()?;
        let shown = format!("{epoll:?}");
        assert!(shown.contains("backend: EpollBackend { epoll: "), "{shown}");
    }
    sel.close()?;
    assert_eq!(format!("{handle:?}"), "Handle { closed: true, .. }");
    Ok(())
}

#[test]
fn huge_delay_neither_panics_nor_fires() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let timer = sel.call_later(Duration::MAX, |_| panic!("a Duration::MAX timer fired"));
    assert_eq!(sel.run_once(Some(Duration::from_millis(5)))?, 0);
    timer.cancel();
    sel.run()?; // nothing left
    Ok(())
}

#[test]
fn zero_interval_repeating_timer_does_not_spin_the_loop() -> io::Result<()> {
    // Intervals below 1 ms are raised to 1 ms: deadlines at least 1 ms apart, never early, so
    // in E ms at most E + 1 ticks, and the loop waits between them instead of spinning.
    let mut sel = DefaultSelector::new()?;
    let ticks = Rc::new(Cell::new(0u64));
    let t = ticks.clone();
    let start = Instant::now();
    let timer = sel.call_repeating(Duration::ZERO, move |_| t.set(t.get() + 1));
    let mut iterations = 0u64;
    while start.elapsed() < Duration::from_millis(50) {
        sel.run_once(Some(Duration::from_millis(50)))?;
        iterations += 1;
    }
    let elapsed_ms = start.elapsed().as_millis() as u64;
    timer.cancel();
    assert!(
        ticks.get() >= 2,
        "the timer did not repeat: {} ticks",
        ticks.get()
    );
    assert!(
        ticks.get() <= elapsed_ms + 1,
        "{} ticks in {elapsed_ms} ms: more than one a millisecond",
        ticks.get()
    );
    // Each iteration waits for the next tick; a spinning loop makes thousands per ms.
    assert!(
        iterations <= 2 * elapsed_ms + 10,
        "{iterations} loop iterations in {elapsed_ms} ms: the loop did not wait"
    );
    Ok(())
}

#[test]
fn call_at_in_the_past_fires_in_the_next_iteration() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    let long_ago = Instant::now()
        .checked_sub(Duration::from_secs(3600))
        .unwrap_or_else(Instant::now);
    sel.call_at(long_ago, move |_| f.set(true));
    assert_eq!(sel.run_once(Some(Duration::from_secs(5)))?, 1);
    assert!(fired.get());
    Ok(())
}

#[test]
fn call_soon_runs_in_order_and_does_not_starve_io() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let order = log();
    for name in ["first", "second", "third"] {
        let order = order.clone();
        sel.call_soon(move |_| order.borrow_mut().push(name));
    }
    sel.run_once(Some(Duration::ZERO))?;
    assert_eq!(*order.borrow(), ["first", "second", "third"]);

    // A call that re-queues itself forever still lets I/O through.
    fn again(count: Rc<Cell<u32>>) -> impl FnOnce(&mut Selector) + 'static {
        move |sel| {
            count.set(count.get() + 1);
            let next = again(count.clone());
            sel.call_soon(next);
        }
    }
    let spins = Rc::new(Cell::new(0));
    sel.call_soon(again(spins.clone()));
    let (a, mut peer) = socketpair()?;
    let read = Rc::new(Cell::new(false));
    let r = read.clone();
    sel.register(a, EVENT_READ, move |_, _, _| {
        r.set(true);
        Ok(())
    })?;
    peer.write_all(b"x")?;
    run_until(&mut sel, "the I/O callback", || read.get())?;
    assert!(
        spins.get() < 1_000,
        "I/O waited for {} deferred calls",
        spins.get()
    );
    Ok(())
}

// A loop blocked with nothing due is woken at once by a call from another thread.
fn threadsafe_call_wakes_a_blocked_loop<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?; // something registered, never ready: run_once(None) blocks
    sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    let handle = sel.handle()?;
    let loop_thread = thread::current().id();
    let ran_on = Rc::new(Cell::new(None));
    let (tx, rx) = mpsc::channel();
    let sender = thread::spawn(move || {
        rx.recv().expect("the loop is about to block");
        handle.call_soon_threadsafe(move |sel| {
            sel.stop();
        })
    });
    let r = ran_on.clone();
    sel.call_soon(move |_| r.set(Some(thread::current().id())));
    tx.send(()).expect("the sender thread is alive");
    let start = Instant::now();
    sel.run()?; // blocks in the backend until the call arrives
    assert!(
        start.elapsed() < TIMEOUT,
        "the wake-up took {:?}",
        start.elapsed()
    );
    sender.join().expect("sender panicked")?;
    assert_eq!(ran_on.get(), Some(loop_thread));
    Ok(())
}

// 10 threads x 10,000 calls: every call runs exactly once, each thread's in its order.
fn many_threads_many_calls_all_delivered_in_order<B: Backend>() -> io::Result<()> {
    const THREADS: usize = 10;
    const CALLS: usize = 10_000;
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    let seen = Rc::new(RefCell::new(vec![Vec::new(); THREADS]));
    let total = Rc::new(Cell::new(0));
    // The calls are `Send`; they report through a channel drained on the loop thread.
    let (report, reports) = mpsc::channel::<(usize, usize)>();
    let mut senders = Vec::new();
    for t in 0..THREADS {
        let (handle, report) = (sel.handle()?, report.clone());
        senders.push(thread::spawn(move || -> io::Result<()> {
            for i in 0..CALLS {
                let report = report.clone();
                handle.call_soon_threadsafe(move |_| report.send((t, i)).expect("receiver"))?;
            }
            Ok(())
        }));
    }
    let deadline = Instant::now() + TIMEOUT * 3;
    while total.get() < THREADS * CALLS {
        assert!(
            Instant::now() < deadline,
            "only {} calls arrived",
            total.get()
        );
        sel.run_once(Some(Duration::from_millis(100)))?;
        for (t, i) in reports.try_iter() {
            seen.borrow_mut()[t].push(i);
            total.set(total.get() + 1);
        }
    }
    for sender in senders {
        sender.join().expect("sender panicked")?;
    }
    sel.run_once(Some(Duration::ZERO))?;
    assert!(reports.try_recv().is_err(), "a call ran twice");
    for (t, calls) in seen.borrow().iter().enumerate() {
        assert!(
            calls.iter().copied().eq(0..CALLS),
            "thread {t}: out of order or missing"
        );
    }
    Ok(())
}

// Handle::stop from another thread ends run() blocked on I/O.
fn handle_stop_ends_run<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    let handle = sel.handle()?;
    let stopper = thread::spawn(move || handle.stop());
    let dog = watchdog(&mut sel, "Handle::stop never woke the loop");
    sel.run()?;
    dog.cancel();
    stopper.join().expect("stopper panicked")?;
    assert_eq!(sel.len(), 1, "stop closed something");
    Ok(())
}

// select() is Python's: I/O only. A call queued from another thread neither runs in it nor
// ends it early; run_once() then runs it.
fn select_is_io_only<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    sel.register(a, EVENT_READ, |_, _, _| Ok(()))?; // never ready
    let ran = Rc::new(Cell::new(false));
    let handle = sel.handle()?;
    thread::spawn(move || handle.call_soon_threadsafe(|_| {}))
        .join()
        .expect("sender panicked")?;
    let r = ran.clone();
    sel.call_soon(move |_| r.set(true));
    let wait = Duration::from_millis(50);
    let start = Instant::now();
    assert!(sel.select(Some(wait))?.is_empty());
    assert!(
        start.elapsed() >= wait,
        "select ended early: {:?}",
        start.elapsed()
    );
    assert!(!ran.get(), "select ran a queued call");
    assert_eq!(sel.run_once(Some(TIMEOUT))?, 2, "the two queued calls");
    assert!(ran.get());
    Ok(())
}

// run_once returns how many callbacks it ran, whatever their kind.
fn run_once_counts_each_kind_of_callback<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    sel.register(a, EVENT_READ, |_, _, _| Ok(()))?; // never ready
    sel.call_later(Duration::ZERO, |_| {});
    assert_eq!(sel.run_once(Some(TIMEOUT))?, 1, "a due timer alone");
    sel.call_soon(|_| {});
    let start = Instant::now();
    assert_eq!(sel.run_once(Some(TIMEOUT))?, 1, "one call_soon alone");
    // A queued call means no waiting for I/O (the registration is never ready).
    assert!(
        start.elapsed() < TIMEOUT / 2,
        "waited {:?} with a call queued",
        start.elapsed()
    );
    let handle = sel.handle()?;
    thread::spawn(move || handle.call_soon_threadsafe(|_| {}))
        .join()
        .expect("sender panicked")?;
    assert_eq!(
        sel.run_once(Some(TIMEOUT))?,
        1,
        "one call from another thread alone"
    );
    let (w, _peer_w) = socketpair()?;
    sel.register(w, EVENT_WRITE, |_, _, _| Ok(()))?;
    assert_eq!(sel.run_once(Some(TIMEOUT))?, 1, "one I/O callback alone");
    Ok(())
}

/// The calls queued from other threads before an iteration all run in it; a call one of them
/// queues waits for the next iteration.
fn threadsafe_calls_queued_before_an_iteration_all_run_in_it<B: Backend>() -> io::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut sel = selector::<B>()?;
    let handle = sel.handle()?;
    let ran = std::sync::Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    thread::spawn(move || -> io::Result<()> {
        for i in 0..3 {
            let (r, again) = (r.clone(), handle.clone());
            handle.call_soon_threadsafe(move |_| {
                r.fetch_add(1, Ordering::SeqCst);
                if i == 0 {
                    again
                        .call_soon_threadsafe(|_| {})
                        .expect("the loop is alive");
                }
            })?;
        }
        Ok(())
    })
    .join()
    .expect("sender panicked")?;
    assert_eq!(sel.run_once(Some(TIMEOUT))?, 3, "the three calls queued");
    assert_eq!(ran.load(Ordering::SeqCst), 3);
    assert_eq!(
        sel.run_once(Some(TIMEOUT))?,
        1,
        "the call one of them queued"
    );
    Ok(())
}

// --- dispatch_soon: a callback run without readiness ---------------------------------------

/// `dispatch_soon` runs the callback in this iteration's call phase, after the I/O callbacks
/// and the timers, with the mask as given, whatever the source's readiness; once per request.
fn dispatch_soon_calls_the_callback_without_readiness<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let order = log();
    let (a, _peer) = socketpair()?;
    let o = order.clone();
    let key = sel.register(a, EVENT_READ, move |_, _, mask| {
        o.borrow_mut().push(match mask.is_empty() {
            true => "fed, no readiness",
            false => "ready",
        });
        Ok(())
    })?;
    let (w, _peer_w) = socketpair()?;
    let o = order.clone();
    let writer = sel.register(w, EVENT_WRITE, move |sel, _, _| {
        o.borrow_mut().push("I/O");
        sel.dispatch_soon(&key, selectloop::Events::NONE); // from a callback: this iteration
        Ok(())
    })?;
    let o = order.clone();
    sel.call_later(Duration::ZERO, move |_| o.borrow_mut().push("timer"));
    assert_eq!(
        sel.run_once(Some(TIMEOUT))?,
        3,
        "I/O, the timer, the fed call"
    );
    assert_eq!(*order.borrow(), ["I/O", "timer", "fed, no readiness"]);
    sel.unregister(&writer)?;
    sel.dispatch_soon(&key, EVENT_READ); // the mask as given
    sel.dispatch_soon(&key, EVENT_READ);
    assert_eq!(sel.run_once(Some(TIMEOUT))?, 2);
    assert_eq!(order.borrow()[3..], ["ready", "ready"]);
    assert_eq!(sel.run_once(Some(Duration::ZERO))?, 0, "called again");
    Ok(())
}

/// A call made soon for a registration that is gone by then does nothing, even when a new
/// registration took its slot and its descriptor number.
fn dispatch_soon_skips_a_registration_gone_since<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let called = log();
    let (a, _peer) = socketpair()?;
    let c = called.clone();
    let old = sel.register(a, EVENT_READ, move |_, _, _| {
        c.borrow_mut().push("old");
        Ok(())
    })?;
    sel.dispatch_soon(&old, selectloop::Events::NONE);
    sel.unregister(&old)?;
    let (b, _peer_b) = socketpair()?; // may reuse the descriptor number and the slot
    let c = called.clone();
    sel.register(b, EVENT_READ, move |_, _, _| {
        c.borrow_mut().push("new");
        Ok(())
    })?;
    sel.run_once(Some(Duration::ZERO))?;
    assert!(called.borrow().is_empty(), "{:?}", called.borrow());
    Ok(())
}

/// An error from a call made soon goes to the error handler; a `Stop` comes out of
/// `run_once`, at the end of its iteration.
fn dispatch_soon_errors_go_to_the_error_handler<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    let key = sel.register(a, EVENT_READ, |_, _, _| {
        Err(io::Error::new(ErrorKind::InvalidData, "fed and failed"))
    })?;
    sel.set_error_handler(|_, _| selectloop::ErrorAction::Stop);
    sel.dispatch_soon(&key, selectloop::Events::NONE);
    let err = sel.run_once(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData);
    assert_eq!(
        sel.run_once(Some(Duration::ZERO))?,
        0,
        "the error came out once"
    );
    sel.set_error_handler(selectloop::ErrorAction::default_for);
    sel.dispatch_soon(&key, selectloop::Events::NONE);
    sel.run_once(Some(Duration::ZERO))?; // closed by the default handler
    assert!(sel.is_empty(), "not closed");
    Ok(())
}

// stop() and Handle::stop() both before run(): it returns at once, and both requests are
// spent — the next run() runs until there is nothing left to wait for.
fn both_stops_before_run<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    sel.call_later(Duration::from_millis(1), move |_| f.set(true));
    sel.stop();
    sel.handle()?.stop()?;
    sel.run()?;
    assert!(!fired.get(), "run() did not return at once");
    sel.run()?; // until the timer has fired: nothing left then
    assert!(fired.get(), "a stop request outlived its run()");
    Ok(())
}

/// The descriptors a selector opens for itself (its poller, its wake-up eventfd or pipe) are
/// close-on-exec: a child process a callback starts does not inherit them. Linux: the new
/// descriptors are those listed in /proc/self/fd after the selector is made and not before,
/// their flags come from /proc/self/fdinfo. Other tests run meanwhile: a descriptor of theirs
/// closed before it is looked at is skipped (std opens every one close-on-exec anyway), and if
/// the selector's own all reused numbers that were open at the first listing, it tries again.
#[cfg(target_os = "linux")]
fn own_descriptors_are_close_on_exec<B: Backend>() -> io::Result<()> {
    const O_CLOEXEC: u32 = 0o2_000_000;
    let open_fds = || -> io::Result<std::collections::HashSet<String>> {
        let entries = std::fs::read_dir("/proc/self/fd")?;
        entries
            .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
            .collect()
    };
    let mut checked = 0;
    for _attempt in 0..100 {
        let before = open_fds()?;
        let mut sel = selector::<B>()?;
        let _handle = sel.handle()?; // the wake-up descriptor
        let after = open_fds()?;
        for fd in after.difference(&before) {
            let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else {
                continue; // closed since the listing (the listing's own, or another test's)
            };
            let flags = info
                .lines()
                .find_map(|line| line.strip_prefix("flags:"))
                .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
                .unwrap_or_else(|| panic!("no flags in /proc/self/fdinfo/{fd}: {info}"));
            assert!(
                flags & O_CLOEXEC != 0,
                "fd {fd} is not close-on-exec: {info}"
            );
            checked += 1;
        }
        if checked > 0 {
            break;
        }
    }
    assert!(checked > 0, "no new descriptor seen in 100 selectors");
    Ok(())
}

// Timers that never fire, and timeouts too large for the clock or the system call, make every
// backend wait (without error, and without returning early) until something happens.
fn huge_timeouts_wait_without_error<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let never = sel.call_later(Duration::MAX, |_| panic!("a Duration::MAX timer fired"));
    let never_again = sel.call_repeating(Duration::MAX, |_| panic!("a Duration::MAX timer fired"));
    let (a, mut peer) = socketpair()?;
    let readable = Rc::new(Cell::new(0));
    let r = readable.clone();
    let key = sel.register(a, EVENT_READ, move |_, a, _| {
        let mut buf = [0u8; 16];
        let _ = io::Read::read(a, &mut buf)?;
        r.set(r.get() + 1);
        Ok(())
    })?;
    let handle = sel.handle()?;
    // A bounded helper: a few calls from another thread, 30 ms apart, until one is seen.
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls = {
        let seen = seen.clone();
        thread::spawn(move || -> io::Result<()> {
            let deadline = Instant::now() + TIMEOUT;
            while !seen.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(30));
                let seen = seen.clone();
                handle.call_soon_threadsafe(move |_| {
                    seen.store(true, std::sync::atomic::Ordering::SeqCst)
                })?;
            }
            Ok(())
        })
    };
    // run_once(None) and run_once(Some(Duration::MAX)): the only deadline is the "never" one.
    for timeout in [None, Some(Duration::MAX)] {
        seen.store(false, std::sync::atomic::Ordering::SeqCst);
        let (start, mut iterations) = (Instant::now(), 0);
        while !seen.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(start.elapsed() < TIMEOUT, "the call never arrived");
            sel.run_once(timeout)?;
            iterations += 1;
        }
        // Woken by the call, not returning at once on a timeout read as 0.
        assert!(
            iterations <= 3,
            "{timeout:?}: {iterations} iterations: no real wait"
        );
    }
    seen.store(true, std::sync::atomic::Ordering::SeqCst); // ends the helper
    calls.join().expect("helper panicked")?;
    // select(Some(Duration::MAX)) waits for I/O.
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        peer.write_all(b"x").map(|()| peer)
    });
    let ready = sel.select(Some(Duration::MAX))?;
    assert_eq!(ready, [(key, EVENT_READ)]);
    let _peer = writer.join().expect("writer panicked")?;
    assert!(!never.is_cancelled() && !never_again.is_cancelled());
    never.cancel();
    never_again.cancel();
    Ok(())
}

#[test]
fn calls_after_close_are_refused() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let handle = sel.handle()?;
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = ran.clone();
    handle.call_soon_threadsafe(move |_| r.store(true, std::sync::atomic::Ordering::SeqCst))?;
    sel.close()?; // the queued call is dropped unrun
    let err = handle.call_soon_threadsafe(|_| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    assert_eq!(handle.stop().unwrap_err().kind(), ErrorKind::BrokenPipe);
    assert!(
        !ran.load(std::sync::atomic::Ordering::SeqCst),
        "a call ran after close()"
    );
    Ok(())
}

#[test]
fn executor_done_runs_on_the_loop_thread() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let loop_thread = thread::current().id();
    let results = Rc::new(RefCell::new(Vec::new()));
    for i in 0..8u64 {
        let results = results.clone();
        sel.run_in_executor(
            move || (i * i, thread::current().id()),
            move |_, result| {
                assert_eq!(
                    thread::current().id(),
                    loop_thread,
                    "done ran off the loop thread"
                );
                let (square, worker) = result.expect("work ran");
                assert_ne!(worker, loop_thread, "work ran on the loop thread");
                results.borrow_mut().push(square);
            },
        )?;
    }
    sel.run()?; // keeps running while jobs are in flight
    let mut got = results.borrow().clone();
    got.sort_unstable();
    assert_eq!(got, [0, 1, 4, 9, 16, 25, 36, 49]);
    Ok(())
}

#[test]
fn executor_reports_panics_and_cancellation() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    sel.set_executor_threads(1)?;
    let outcomes = Rc::new(RefCell::new(Vec::new()));
    // The only worker is held by the first job, so the second cannot start before it is
    // cancelled.
    let (release, gate) = mpsc::channel::<()>();
    let (started, wait_started) = mpsc::channel();
    let o = outcomes.clone();
    let first = sel.run_in_executor(
        move || {
            started.send(()).expect("test alive");
            gate.recv_timeout(TIMEOUT).is_ok()
        },
        move |_, r: io::Result<bool>| o.borrow_mut().push(format!("first: {:?}", r.ok())),
    )?;
    let o = outcomes.clone();
    let second = sel.run_in_executor(
        || unreachable!("cancelled work ran"),
        move |_, r: io::Result<()>| {
            let e = r.unwrap_err();
            o.borrow_mut().push(format!("second: {:?} {e}", e.kind()));
        },
    )?;
    wait_started
        .recv_timeout(TIMEOUT)
        .expect("the first job did not start");
    // A handle's Debug says where its work is.
    assert_eq!(
        format!("{first:?}"),
        r#"WorkHandle { state: "running or done" }"#
    );
    assert_eq!(format!("{second:?}"), r#"WorkHandle { state: "pending" }"#);
    assert!(second.cancel());
    assert!(!second.cancel(), "cancelled twice");
    assert_eq!(
        format!("{second:?}"),
        r#"WorkHandle { state: "cancelled" }"#
    );
    assert!(!first.cancel(), "running work was cancelled");
    release.send(()).expect("worker alive");
    let o = outcomes.clone();
    sel.run_in_executor(
        || -> u8 { panic!("work panic (expected by the test)") },
        move |_, r| {
            let e = r.unwrap_err();
            o.borrow_mut().push(format!("third: {:?} {e}", e.kind()));
        },
    )?;
    sel.run()?;
    let mut got = outcomes.borrow().clone();
    got.sort();
    assert_eq!(
        got,
        [
            "first: Some(true)",
            "second: Interrupted cancelled before it started",
            "third: Other work panicked: work panic (expected by the test)",
        ]
    );
    assert_eq!(
        sel.set_executor_threads(4).unwrap_err().kind(),
        ErrorKind::ResourceBusy
    );
    Ok(())
}

/// Sets its flag when dropped: tells whether a queued job was dropped, not run.
struct DropFlag(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn dropping_the_selector_waits_for_running_work_and_drops_queued_work_unrun() -> io::Result<()> {
    use std::sync::{atomic::AtomicBool, atomic::Ordering::SeqCst, Arc};
    for close in [false, true] {
        let mut sel = DefaultSelector::new()?;
        sel.set_executor_threads(1)?;
        let flags = || Arc::new(AtomicBool::new(false));
        let (finished, ran, dropped, done_ran) = (flags(), flags(), flags(), Rc::new(Cell::new(0)));
        // The running job ends on its own after a second: nobody releases it, and a selector
        // that waits for it must not wait forever. (The selector must be gone before then, or
        // the queued job would start: a second is far more than the two lines between.)
        let (started, wait_started) = mpsc::channel();
        let (_release, gate) = mpsc::channel::<()>();
        let f = finished.clone();
        let d = done_ran.clone();
        sel.run_in_executor(
            move || {
                started.send(()).expect("test alive");
                let _ = gate.recv_timeout(Duration::from_secs(1));
                f.store(true, SeqCst);
            },
            move |_, _| d.set(d.get() + 1),
        )?;
        let (r, flag) = (ran.clone(), DropFlag(dropped.clone()));
        let d = done_ran.clone();
        sel.run_in_executor(
            move || {
                let _flag = &flag;
                r.store(true, SeqCst);
            },
            move |_, _| d.set(d.get() + 1),
        )?;
        wait_started
            .recv_timeout(TIMEOUT)
            .expect("the first job did not start");
        match close {
            true => sel.close()?,
            false => drop(sel),
        }
        assert!(
            finished.load(SeqCst),
            "close: {close}: the selector was gone before its running job had finished"
        );
        assert!(
            !ran.load(SeqCst),
            "close: {close}: a queued job ran after the selector was gone"
        );
        assert!(
            dropped.load(SeqCst),
            "close: {close}: the queued job was not dropped"
        );
        assert_eq!(
            done_ran.get(),
            0,
            "close: {close}: a done callback ran without a loop"
        );
    }
    Ok(())
}

#[test]
fn executor_thread_counts_out_of_range_are_refused() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    sel.set_executor_threads(2)?;
    for threads in [0, 1025, usize::MAX] {
        let err = sel.set_executor_threads(threads).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{threads}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("set_executor_threads") && msg.contains(&threads.to_string()),
            "{msg}"
        );
    }
    sel.set_executor_threads(1024)?; // the largest accepted (not started: no job yet)
    sel.set_executor_threads(2)?;
    // The refused values changed nothing: the pool starts with 2 threads, and works.
    let (started, wait_started) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    let gate = std::sync::Arc::new(std::sync::Mutex::new(gate));
    let done = Rc::new(Cell::new(0));
    for _ in 0..2 {
        let (started, gate, done) = (started.clone(), gate.clone(), done.clone());
        sel.run_in_executor(
            move || {
                started.send(()).expect("test alive");
                let _ = gate.lock().expect("gate").recv_timeout(TIMEOUT);
            },
            move |_, r| {
                r.expect("work ran");
                done.set(done.get() + 1);
            },
        )?;
    }
    for _ in 0..2 {
        // Both jobs start while neither has finished: two workers.
        wait_started
            .recv_timeout(TIMEOUT)
            .expect("two jobs running at once");
    }
    release.send(()).expect("worker alive");
    release.send(()).expect("worker alive");
    sel.run()?;
    assert_eq!(done.get(), 2);
    Ok(())
}

#[cfg(unix)]
#[test]
fn signal_reaches_its_handler_on_the_loop_thread() -> io::Result<()> {
    use selectloop::signals::SIGUSR2;
    let mut sel = DefaultSelector::new()?;
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    let loop_thread = thread::current().id();
    let key = sel.add_signal_handler(SIGUSR2, move |_, signal| {
        assert_eq!(signal, SIGUSR2);
        assert_eq!(thread::current().id(), loop_thread);
        g.set(g.get() + 1);
    })?;
    signal_hook::low_level::raise(SIGUSR2)?;
    run_until(&mut sel, "the SIGUSR2 handler", || got.get() >= 1)?;
    // Readiness with no signal behind it (here, dispatched by hand) calls nobody.
    sel.dispatch(&key, EVENT_READ)?;
    assert_eq!(
        got.get(),
        1,
        "a spurious readiness called the signal handler"
    );
    let err = sel
        .add_signal_handler(signal_hook::consts::SIGKILL, |_, _| {})
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    sel.unregister(&key)?; // the handler is a registration like any other
    assert!(sel.is_empty());
    Ok(())
}

/// Removing a signal handler (unregistering it, or closing the selector) removes the OS-level
/// handler and closes both ends of its pipe: 200 handlers added and removed leave no
/// descriptor behind. (Other tests open and close descriptors meanwhile: far fewer than 100.)
#[cfg(target_os = "linux")]
#[test]
fn removed_signal_handlers_leave_no_descriptor_open() -> io::Result<()> {
    use selectloop::signals::SIGWINCH;
    let open = || std::fs::read_dir("/proc/self/fd").map(|d| d.count());
    let before = open()?;
    for i in 0..200 {
        let mut sel = DefaultSelector::new()?;
        let key = sel.add_signal_handler(SIGWINCH, |_, _| {})?;
        if i % 2 == 0 {
            sel.unregister(&key)?;
        } else {
            sel.close()?;
        }
    }
    let after = open()?;
    assert!(
        after < before + 100,
        "{before} descriptors open before, {after} after 200 signal handlers came and went"
    );
    Ok(())
}

#[cfg(unix)]
#[test]
fn invalid_signal_numbers_are_refused_with_invalid_input() -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    for signal in [0, -1, i32::MIN, 65, 1000, i32::MAX] {
        let err = sel.add_signal_handler(signal, |_, _| {}).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{signal}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("add_signal_handler") && msg.contains(&signal.to_string()),
            "{msg}"
        );
    }
    assert!(sel.is_empty(), "a refused handler stayed registered");
    Ok(())
}

/// Signal handlers are process-wide (on Windows, one table of console handlers for the whole
/// process): the tests that raise signals run one at a time.
fn signals_serialised() -> std::sync::MutexGuard<'static, ()> {
    static SIGNALS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SIGNALS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Bounds a bare `select()`/`dispatch()` loop, which neither a timer nor `Handle::stop` can end
/// (Python's `select()` is I/O only): registers a socket whose callback fails the test with
/// `what`, and which a thread makes readable if the loop is still running after the common
/// timeout. Dropping the guard (once the loop has returned) ends that thread.
struct BareLoopWatchdog {
    done: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl BareLoopWatchdog {
    fn new(sel: &mut Selector, what: &'static str) -> io::Result<BareLoopWatchdog> {
        let (alarm, mut peer) = socketpair()?;
        sel.register(alarm, EVENT_READ, move |_, _, _| {
            panic!("timed out: {what}")
        })?;
        let (done, wait) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            if wait.recv_timeout(TIMEOUT) == Err(mpsc::RecvTimeoutError::Timeout) {
                peer.write_all(b"!").expect("the watchdog's socket is open");
            }
        });
        Ok(BareLoopWatchdog {
            done: Some(done),
            thread: Some(thread),
        })
    }
}

impl Drop for BareLoopWatchdog {
    fn drop(&mut self) {
        drop(self.done.take()); // the thread's wait ends at once
        if let Some(thread) = self.thread.take() {
            thread.join().expect("watchdog thread");
        }
    }
}

/// The signal the portable tests raise: Ctrl-C on Windows. On Unix a signal nobody sends by
/// hand, since `signal-hook` keeps its handler installed after the test (SIGINT would stay
/// caught in this test binary).
#[cfg(unix)]
const SIGNAL: i32 = selectloop::signals::SIGUSR1;
#[cfg(windows)]
const SIGNAL: i32 = selectloop::signals::SIGINT;

// echo_server's shape: a hand-written select()/dispatch() loop, ended by a signal handler.
#[test]
fn signal_ends_a_bare_select_loop() -> io::Result<()> {
    let _serial = signals_serialised();
    let mut sel = DefaultSelector::new()?;
    let (listener, _peer) = socketpair()?; // the echo server's listener: registered, never ready
    sel.register(listener, EVENT_READ, |_, _, _| Ok(()))?;
    let running = Rc::new(Cell::new(true));
    let r = running.clone();
    let handler = sel.add_signal_handler(SIGNAL, move |_, signal| {
        assert_eq!(signal, SIGNAL);
        r.set(false);
    })?;
    let watchdog = BareLoopWatchdog::new(&mut sel, "the signal never ended the select() loop")?;
    selectloop::signals::raise(SIGNAL)?;
    while running.get() {
        for (key, mask) in sel.select(None)? {
            sel.dispatch(&key, mask)?;
        }
    }
    drop(watchdog);
    sel.unregister(&handler)?;
    Ok(())
}

// Below what the OS does: the console handler routine, called as the system would, through
// `signals::raise`. (The real Ctrl-C is raised in `console` below.)
#[cfg(windows)]
#[test]
fn console_events_reach_every_handler_until_unregistered() -> io::Result<()> {
    use selectloop::signals::{raise, SIGBREAK, SIGINT, SIGTERM};
    let _serial = signals_serialised();
    let mut sel = DefaultSelector::new()?;
    let calls: Rc<RefCell<Vec<(&'static str, i32)>>> = Rc::default();
    let add = |sel: &mut Selector, name: &'static str, signal: i32| {
        let calls = calls.clone();
        sel.add_signal_handler(signal, move |_, signal| {
            calls.borrow_mut().push((name, signal))
        })
    };
    let first = add(&mut sel, "first", SIGINT)?;
    let second = add(&mut sel, "second", SIGINT)?;
    let close = add(&mut sel, "close", SIGTERM)?;
    let dispatch_until = |sel: &mut Selector, what: &str, n: usize| -> io::Result<()> {
        let deadline = Instant::now() + TIMEOUT;
        while calls.borrow().len() < n {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            for (key, mask) in sel.select(Some(Duration::from_millis(50)))? {
                sel.dispatch(&key, mask)?;
            }
        }
        Ok(())
    };

    // No handler for Ctrl-Break: the routine says "not handled", for the system's default.
    assert_eq!(raise(SIGBREAK).unwrap_err().kind(), ErrorKind::NotFound);

    raise(SIGINT)?;
    raise(SIGINT)?; // before the loop ran: one call per handler
    dispatch_until(&mut sel, "both SIGINT handlers", 2)?;
    assert!(
        sel.select(Some(Duration::ZERO))?.is_empty(),
        "an arrival left"
    );
    let mut got = calls.borrow_mut().drain(..).collect::<Vec<_>>();
    got.sort_unstable();
    assert_eq!(got, [("first", SIGINT), ("second", SIGINT)]);

    raise(SIGTERM)?; // a closed console, log-off or shut-down
    dispatch_until(&mut sel, "the SIGTERM handler", 1)?;
    assert_eq!(
        calls.borrow_mut().drain(..).collect::<Vec<_>>(),
        [("close", SIGTERM)]
    );

    sel.unregister(&first)?;
    raise(SIGINT)?;
    dispatch_until(&mut sel, "the remaining SIGINT handler", 1)?;
    assert_eq!(
        calls.borrow_mut().drain(..).collect::<Vec<_>>(),
        [("second", SIGINT)]
    );

    sel.unregister(&second)?;
    sel.unregister(&close)?;
    assert_eq!(raise(SIGINT).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(raise(SIGTERM).unwrap_err().kind(), ErrorKind::NotFound);
    let sigabrt = 22; // a C runtime signal that is no console event
    let err = add(&mut sel, "abort", sigabrt).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(raise(sigabrt).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert!(sel.is_empty());
    Ok(())
}

/// A real Ctrl-C, from `GenerateConsoleCtrlEvent`, in a child process (this test binary again)
/// with a console of its own: the event goes to every process attached to the console, which
/// must not include cargo or the shell. Under Wine 8 this works for Ctrl-C only (Ctrl-Break is
/// not implemented there), and only in a process with a console, which `wine` does not give a
/// process whose output is piped.
#[cfg(windows)]
mod console {
    use super::{common::socketpair, BareLoopWatchdog, TIMEOUT};
    use selectloop::{signals::SIGINT, DefaultSelector, EVENT_READ};
    use std::cell::Cell;
    use std::io;
    use std::os::windows::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::rc::Rc;
    use std::sync::mpsc;
    use windows_sys::Win32::System::Console::{
        GenerateConsoleCtrlEvent, SetConsoleCtrlHandler, CTRL_C_EVENT,
    };
    use windows_sys::Win32::System::Threading::CREATE_NEW_CONSOLE;

    /// Set in the child's environment.
    const CHILD: &str = "SELECTLOOP_TEST_CONSOLE_CHILD";
    const NAME: &str = "console::ctrl_c_ends_a_bare_select_loop_then_the_process";
    /// What the default handler ends a process with on Windows; Wine 8's exits with 0.
    const STATUS_CONTROL_C_EXIT: i32 = 0xC000_013A_u32 as i32;

    #[test]
    fn ctrl_c_ends_a_bare_select_loop_then_the_process() -> io::Result<()> {
        if std::env::var_os(CHILD).is_some() {
            return child();
        }
        let out = Command::new(std::env::current_exe()?)
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .creation_flags(CREATE_NEW_CONSOLE)
            .stdin(Stdio::null())
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report = format!(
            "child {}\n--- stdout\n{stdout}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("handler ran; loop ended"),
            "Ctrl-C did not end the child's select() loop: {report}"
        );
        assert!(
            stdout.contains("raising Ctrl-C with no handler"),
            "the child failed after its loop ended: {report}"
        );
        assert!(
            matches!(out.status.code(), Some(0 | STATUS_CONTROL_C_EXIT))
                && !stdout.contains("survived"),
            "with no handler left, Ctrl-C did not end the process: {report}"
        );
        Ok(())
    }

    fn ctrl_c() {
        // SAFETY: plain calls with constant arguments. Group 0 is every process attached to this
        // console: only this one, which the parent started with a console of its own.
        let sent = unsafe {
            SetConsoleCtrlHandler(None, 0); // take Ctrl-C even if the parent ignored it
            GenerateConsoleCtrlEvent(CTRL_C_EVENT, 0)
        };
        let err = io::Error::last_os_error();
        assert_ne!(sent, 0, "GenerateConsoleCtrlEvent(CTRL_C_EVENT): {err}");
    }

    fn child() -> io::Result<()> {
        let mut sel = DefaultSelector::new()?;
        let (listener, _peer) = socketpair()?;
        sel.register(listener, EVENT_READ, |_, _, _| Ok(()))?;
        let running = Rc::new(Cell::new(true));
        let r = running.clone();
        let loop_thread = std::thread::current().id();
        let handler = sel.add_signal_handler(SIGINT, move |_, signal| {
            assert_eq!(signal, SIGINT);
            assert_eq!(std::thread::current().id(), loop_thread);
            r.set(false);
        })?;
        let watchdog = BareLoopWatchdog::new(&mut sel, "Ctrl-C never ended the select() loop")?;
        ctrl_c();
        while running.get() {
            for (key, mask) in sel.select(None)? {
                sel.dispatch(&key, mask)?;
            }
        }
        drop(watchdog);
        println!("handler ran; loop ended");

        // Without a handler, the routine passes Ctrl-C on to the system's, which ends the
        // process: this waits for that, and reports surviving it.
        sel.unregister(&handler)?;
        println!("raising Ctrl-C with no handler");
        ctrl_c();
        let (_keep, never) = mpsc::channel::<()>();
        let _ = never.recv_timeout(TIMEOUT);
        println!("survived");
        std::process::exit(3);
    }
}

instantiate! {
    backends: [
        default_selector = selectloop::PollingBackend,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        epoll_selector = selectloop::EpollBackend,
        poll_selector = selectloop::PollBackend,
        select_selector = selectloop::SelectBackend,
    ],
    tests: [
        threadsafe_call_wakes_a_blocked_loop,
        many_threads_many_calls_all_delivered_in_order,
        handle_stop_ends_run,
        select_is_io_only,
        run_once_counts_each_kind_of_callback,
        threadsafe_calls_queued_before_an_iteration_all_run_in_it,
        dispatch_soon_calls_the_callback_without_readiness,
        dispatch_soon_skips_a_registration_gone_since,
        dispatch_soon_errors_go_to_the_error_handler,
        both_stops_before_run,
        huge_timeouts_wait_without_error,
        #[cfg(target_os = "linux")]
        own_descriptors_are_close_on_exec,
    ]
}
