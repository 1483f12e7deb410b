//! What a program sees of its loop: exact metrics in deterministic scenarios (after errors,
//! panics, pauses and stops too), slow-callback warnings through the test logger, time
//! metrics, and the order of every phase of one iteration with the hooks around the wait.
//! Written once for every backend (`instantiate!` at the bottom).

#[macro_use]
mod common;

use common::{logged, logged_count, run_until, select_some, selector, socketpair, Stream};
use selectloop::{
    Backend, ErrorAction, Events, Lag, Metrics, Outcomes, Selector, EVENT_READ, EVENT_WRITE,
};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The outcomes, as a tuple easy to compare: ok, spurious, kept, paused, closed, stopped,
/// panicked.
fn outcomes(m: &Metrics) -> [u64; 7] {
    let Outcomes {
        ok,
        spurious,
        kept,
        paused,
        closed,
        stopped,
        panicked,
        ..
    } = m.callbacks;
    [ok, spurious, kept, paused, closed, stopped, panicked]
}

/// The short name the warnings give the test's stream type.
fn stream_name() -> &'static str {
    std::any::type_name::<Stream>().rsplit("::").next().unwrap()
}

/// Runs a selector's `run_once` until its metrics satisfy `done`.
#[track_caller]
fn run_until_metrics<B: Backend>(
    sel: &mut Selector<B>,
    what: &str,
    done: impl Fn(&Metrics) -> bool,
) -> io::Result<()> {
    let deadline = Instant::now() + common::TIMEOUT;
    while !done(&sel.metrics()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            sel.metrics()
        );
        sel.run_once(Some(Duration::from_millis(50)))?;
    }
    Ok(())
}

// --- Counts -------------------------------------------------------------------------------

// The README loop: one select and one dispatch per message; registrations now and in total.
fn counts_of_the_plain_loop<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    assert_eq!(
        sel.metrics(),
        Metrics::default(),
        "a new selector counted something"
    );
    let (a, _a_peer) = socketpair()?;
    let key = sel.register(a, EVENT_READ, |_, _, _| Ok(()))?;
    let (b, _b_peer) = socketpair()?;
    sel.register(b, EVENT_WRITE, |_, _, _| Ok(()))?; // always ready
    sel.unregister(&key)?;
    let (c, _c_peer) = socketpair()?;
    sel.register(c, EVENT_READ, |_, _, _| Ok(()))?; // never ready
    for round in 1..=3 {
        let ready = select_some(&mut sel, "the write registration")?;
        for (key, mask) in ready {
            sel.dispatch(&key, mask)?;
        }
        let m = sel.metrics();
        assert_eq!((m.iterations, m.dispatched), (round, round), "{m:?}");
        assert_eq!(outcomes(&m), [round, 0, 0, 0, 0, 0, 0], "{m:?}");
        assert_eq!((m.registrations, m.registered), (2, 3), "{m:?}");
    }
    let before = sel.metrics().iterations;
    let _ = sel.select(Some(Duration::ZERO))?;
    assert_eq!(
        sel.metrics().iterations,
        before + 1,
        "a select is an iteration"
    );
    sel.run_once(Some(Duration::ZERO))?;
    let m = sel.metrics();
    assert_eq!(m.iterations, before + 2, "a run_once is an iteration");
    assert_eq!(
        m.dispatched, 4,
        "run_once dispatched the writable registration: {m:?}"
    );
    Ok(())
}

// Timers, calls, calls from another thread and dispatch_soon, each counted where it belongs.
fn counts_of_the_services<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    let key = sel.register(a, EVENT_READ, |_, _, _| Ok(()))?; // never ready
    sel.call_later(Duration::ZERO, |_| {});
    sel.call_at(Instant::now(), |_| {});
    let cancelled = sel.call_later(Duration::ZERO, |_| {});
    cancelled.cancel();
    for _ in 0..3 {
        sel.call_soon(|_| {});
    }
    sel.dispatch_soon(&key, Events::NONE);
    sel.handle()?.call_soon_threadsafe(|_| {})?;
    run_until_metrics(&mut sel, "two timers, four calls, a remote call", |m| {
        m.timers_fired == 2 && m.calls == 4 && m.remote_calls == 1
    })?;
    let m = sel.metrics();
    assert_eq!(m.timer_lag.count, 2, "{m:?}");
    assert_eq!(m.timer_lag.buckets.iter().sum::<u64>(), 2, "{m:?}");
    assert!(m.timer_lag.max >= m.timer_lag.mean(), "{m:?}");
    assert_eq!(
        m.dispatched, 0,
        "dispatch_soon is not a report of a wait: {m:?}"
    );
    assert_eq!(
        outcomes(&m),
        [1, 0, 0, 0, 0, 0, 0],
        "the fed callback: {m:?}"
    );
    assert_eq!(
        (m.wait_time, m.callback_time),
        (Duration::ZERO, Duration::ZERO)
    );
    Ok(())
}

// Every outcome: ok, spurious, kept, paused (and a Keep twice in a row), closed, stopped,
// panicked; the counts hold after the stop and the panic, and the selector runs on.
fn counts_by_outcome<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    sel.set_error_handler(|key, err| match err.kind() {
        ErrorKind::InvalidData => ErrorAction::Keep,
        ErrorKind::PermissionDenied => ErrorAction::Stop,
        ErrorKind::Other => ErrorAction::Close,
        _ => ErrorAction::default_for(key, err), // OutOfMemory: Pause
    });
    // An always-writable registration that ends each call as the script says.
    let script: Rc<RefCell<VecDeque<Option<ErrorKind>>>> = Rc::default();
    let steps = script.clone();
    let (a, _peer) = socketpair()?;
    sel.register(a, EVENT_WRITE, move |_, _, _| {
        match steps
            .borrow_mut()
            .pop_front()
            .expect("a step of the script")
        {
            None => Ok(()),
            Some(ErrorKind::Unsupported) => panic!("scripted panic (expected by the test)"),
            Some(kind) => Err(io::Error::new(kind, "scripted")),
        }
    })?;
    let mut expect = [0u64; 7];
    let steps: [(Option<ErrorKind>, usize); 9] = [
        (None, 0),                              // ok
        (Some(ErrorKind::WouldBlock), 1),       // spurious
        (Some(ErrorKind::InvalidData), 2),      // kept
        (Some(ErrorKind::InvalidData), 3),      // a Keep twice in a row: paused
        (None, 0),                              // ok again, once resumed
        (Some(ErrorKind::OutOfMemory), 3),      // paused
        (None, 0),                              // ok
        (Some(ErrorKind::PermissionDenied), 5), // stopped
        (Some(ErrorKind::Unsupported), 6),      // panicked: the registration is removed
    ];
    for (i, (step, field)) in steps.into_iter().enumerate() {
        script.borrow_mut().push_back(step);
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            run_until(&mut sel, "the scripted call", || script.borrow().is_empty())
        }));
        match step {
            Some(ErrorKind::PermissionDenied) => {
                let err = result.expect("no panic").unwrap_err();
                assert_eq!(err.kind(), ErrorKind::PermissionDenied);
            }
            Some(ErrorKind::Unsupported) => assert!(result.is_err(), "the panic propagates"),
            _ => result.expect("no panic")?,
        }
        expect[field] += 1;
        let m = sel.metrics();
        assert_eq!(outcomes(&m), expect, "after step {i} ({step:?}): {m:?}");
        assert_eq!(m.dispatched, i as u64 + 1, "after step {i}: {m:?}");
    }
    assert_eq!(
        sel.metrics().registrations,
        0,
        "the panicking registration is gone"
    );
    // Closed: by the handler, and (counted the same) after unregistering itself first.
    let (b, _b_peer) = socketpair()?;
    sel.register(b, EVENT_WRITE, |_, _, _| Err(io::Error::other("closed")))?;
    let (c, _c_peer) = socketpair()?;
    sel.register(c, EVENT_WRITE, |sel, s, _| {
        sel.unregister(s)?;
        Err(io::Error::new(
            ErrorKind::InvalidData,
            "after unregistering",
        ))
    })?;
    // Spurious after unregistering itself: still only "not ready after all".
    let (d, _d_peer) = socketpair()?;
    sel.register(d, EVENT_WRITE, |sel, s, _| {
        sel.unregister(s)?;
        Err(io::Error::from(ErrorKind::WouldBlock))
    })?;
    run_until_metrics(&mut sel, "both to close", |m| m.callbacks.closed == 2)?;
    run_until_metrics(&mut sel, "the spurious one", |m| m.callbacks.spurious == 2)?;
    expect[4] += 2;
    expect[1] += 1;
    let m = sel.metrics();
    assert_eq!(outcomes(&m), expect, "{m:?}");
    assert_eq!(m.registrations, 0, "{m:?}");
    Ok(())
}

/// Executor jobs: one running (it waits for the test), one queued behind it on the one worker.
fn counts_of_executor_jobs<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    sel.set_executor_threads(1)?;
    let (started, is_started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let done = Rc::new(RefCell::new(0));
    let (first, second) = (done.clone(), done.clone());
    sel.run_in_executor(
        move || {
            started.send(()).expect("the test waits");
            released
                .recv_timeout(common::TIMEOUT)
                .expect("released by the test");
        },
        move |_, result| {
            result.expect("the first job");
            *first.borrow_mut() += 1;
        },
    )?;
    sel.run_in_executor(
        || (),
        move |_, result| {
            result.expect("the second job");
            *second.borrow_mut() += 1;
        },
    )?;
    is_started
        .recv_timeout(common::TIMEOUT)
        .expect("the first job to start");
    let m = sel.metrics();
    assert_eq!((m.jobs_queued, m.jobs_running), (1, 1), "{m:?}");
    release.send(()).expect("the job waits");
    run_until(&mut sel, "both completions", || *done.borrow() == 2)?;
    let m = sel.metrics();
    assert_eq!((m.jobs_queued, m.jobs_running), (0, 0), "{m:?}");
    assert_eq!(
        m.remote_calls, 2,
        "each completion is a call from a worker: {m:?}"
    );
    Ok(())
}

// --- Slow callbacks and time ----------------------------------------------------------------

/// A callback that works (sleeps, as blocking work would) for `ms` milliseconds.
fn work(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

// Over the threshold: one warning per slow callback, naming it; under it, none.
fn slow_callbacks_are_named<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    assert_eq!(sel.slow_callback_duration(), None, "off by default");
    sel.set_slow_callback_duration(Some(Duration::from_millis(1)));
    assert_eq!(sel.slow_callback_duration(), Some(Duration::from_millis(1)));
    let (a, _peer) = socketpair()?;
    let fd = sel
        .register(a, EVENT_WRITE, |sel, s, _| {
            work(3);
            sel.unregister(s).map(drop)
        })?
        .fd();
    run_until_metrics(&mut sel, "the slow registration", |m| m.dispatched == 1)?;
    let name = format!("callback for fd {fd} ({}, WRITE) took", stream_name());
    assert_eq!(logged_count(&["WARN slow callback:", &name]), 1, "{name}");

    sel.call_later(Duration::ZERO, |_| work(3));
    sel.call_soon(|_| work(3));
    sel.handle()?.call_soon_threadsafe(|_| work(3))?;
    run_until_metrics(&mut sel, "the slow services", |m| {
        m.timers_fired == 1 && m.calls == 1 && m.remote_calls == 1
    })?;
    assert_eq!(
        logged_count(&[
            "WARN slow callback: timer (fired ",
            "after its deadline) took"
        ]),
        1
    );
    assert_eq!(
        logged_count(&["WARN slow callback: call_soon call took"]),
        1
    );
    assert_eq!(
        logged_count(&["WARN slow callback: call from another thread took"]),
        1
    );

    // A registration fed by dispatch_soon runs inside a call: one warning, naming the fd.
    let (b, _b_peer) = socketpair()?;
    let key = sel.register(b, EVENT_READ, |_, _, _| {
        work(3);
        Ok(())
    })?;
    sel.dispatch_soon(&key, Events::NONE);
    run_until_metrics(&mut sel, "the fed callback", |m| m.calls == 2)?;
    let fed = format!(
        "callback for fd {} ({}, dispatch_soon) took",
        key.fd(),
        stream_name()
    );
    assert_eq!(logged_count(&["WARN slow callback:", &fed]), 1, "{fed}");
    assert_eq!(
        logged_count(&["WARN slow callback: call_soon call took"]),
        1
    );

    sel.set_before_wait(|_| work(3));
    sel.run_once(Some(Duration::ZERO))?;
    assert_eq!(
        logged_count(&["WARN slow callback: before_wait hook took"]),
        1
    );
    sel.clear_wait_hooks();

    // Fast callbacks under a high threshold, and slow ones with warnings off: nothing more.
    let warnings = logged_count(&["WARN slow callback:"]);
    sel.set_slow_callback_duration(Some(Duration::from_secs(3600)));
    sel.call_soon(|_| work(3));
    sel.run_once(Some(Duration::ZERO))?;
    sel.set_slow_callback_duration(None);
    assert_eq!(sel.slow_callback_duration(), None);
    sel.call_soon(|_| work(3));
    sel.run_once(Some(Duration::ZERO))?;
    assert_eq!(logged_count(&["WARN slow callback:"]), warnings);
    Ok(())
}

// A timer due while a callback works fires at least that late: the loop's lag.
fn timer_lag_is_the_time_the_loop_was_busy<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let (a, _peer) = socketpair()?;
    sel.register(a, EVENT_WRITE, |sel, s, _| {
        work(30);
        sel.unregister(s).map(drop)
    })?;
    sel.call_at(Instant::now(), |_| {}); // due now, fired after the I/O callbacks
    run_until_metrics(&mut sel, "the timer", |m| m.timers_fired == 1)?;
    let lag = sel.metrics().timer_lag;
    assert!(lag.max >= Duration::from_millis(30), "{lag:?}");
    assert_eq!((lag.count, lag.total), (1, lag.max), "{lag:?}");
    let bucket = Lag::BOUNDS.iter().take_while(|&&b| lag.max > b).count();
    let mut buckets = [0; 5];
    buckets[bucket] = 1;
    assert_eq!(lag.buckets, buckets, "{lag:?}");
    assert!(bucket >= 2, "30 ms is above the 10 ms bound: {lag:?}");
    Ok(())
}

// Time is measured only when asked for; then the wait and the callbacks add up.
fn time_is_measured_only_when_asked<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    sel.call_soon(|_| work(3));
    sel.run_once(Some(Duration::from_millis(5)))?;
    sel.run_once(Some(Duration::from_millis(5)))?; // nothing to do: waits 5 ms
    let m = sel.metrics();
    assert_eq!(
        (m.wait_time, m.callback_time),
        (Duration::ZERO, Duration::ZERO)
    );
    sel.set_time_metrics(true);
    sel.call_soon(|_| work(3));
    sel.run_once(Some(Duration::from_millis(5)))?;
    sel.run_once(Some(Duration::from_millis(5)))?;
    let m = sel.metrics();
    // The waits add up to the 5 ms, but for the instants between two of them.
    assert!(m.wait_time >= Duration::from_millis(4), "{m:?}");
    assert!(m.callback_time >= Duration::from_millis(3), "{m:?}");
    assert!(!logged(&["slow callback"]), "no threshold, no warning");
    sel.set_time_metrics(false);
    sel.call_soon(|_| work(3));
    sel.run_once(Some(Duration::from_millis(5)))?;
    let after = sel.metrics();
    assert_eq!(
        (after.wait_time, after.callback_time),
        (m.wait_time, m.callback_time)
    );
    Ok(())
}

// --- The hooks around the wait ---------------------------------------------------------------

// Every phase of one iteration, in order. The I/O callback schedules the timer and the calls,
// so that the iteration waits for its readiness.
fn one_iteration_in_order<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let phases: Arc<Mutex<Vec<&str>>> = Arc::default();
    let log = |name: &'static str| {
        let phases = phases.clone();
        move || phases.lock().unwrap().push(name)
    };
    let (before, after, io_cb) = (log("before_wait"), log("after_wait"), log("I/O"));
    let (timer, soon, remote) = (log("timer"), log("call_soon"), log("call from a thread"));
    sel.set_before_wait(move |_| before());
    sel.set_after_wait(move |_| after());
    let (a, _peer) = socketpair()?;
    let handle = sel.handle()?;
    let mut once = Some((timer, soon, remote));
    sel.register(a, EVENT_WRITE, move |sel, s, _| {
        io_cb();
        let (timer, soon, remote) = once.take().expect("called once");
        handle.call_soon_threadsafe(move |_| remote())?;
        sel.call_soon(move |_| soon());
        sel.call_at(Instant::now(), move |_| timer());
        sel.unregister(s).map(drop)
    })?;
    sel.run_once(Some(common::TIMEOUT))?;
    assert_eq!(
        *phases.lock().unwrap(),
        [
            "before_wait",
            "after_wait",
            "I/O",
            "timer",
            "call_soon",
            "call from a thread"
        ]
    );
    // select() is Python's bare wait: no hooks.
    phases.lock().unwrap().clear();
    let _ = sel.select(Some(Duration::ZERO))?;
    assert!(phases.lock().unwrap().is_empty());
    Ok(())
}

// A hook that queues a call ends the wait at once; hooks replace and clear themselves.
fn hooks_replace_and_clear_themselves<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let calls: Rc<RefCell<Vec<&str>>> = Rc::default();
    let seen = calls.clone();
    sel.set_before_wait(move |sel| {
        seen.borrow_mut().push("first");
        let seen = seen.clone();
        sel.set_before_wait(move |sel| {
            seen.borrow_mut().push("second");
            let seen = seen.clone();
            sel.call_soon(move |_| seen.borrow_mut().push("call"));
            sel.clear_wait_hooks();
        });
    });
    let started = Instant::now();
    sel.run_once(Some(Duration::ZERO))?;
    sel.run_once(Some(common::TIMEOUT))?; // the call queued by the hook ends the wait
    assert!(
        started.elapsed() < common::TIMEOUT,
        "the hook's call did not end the wait"
    );
    sel.run_once(Some(Duration::ZERO))?;
    assert_eq!(*calls.borrow(), ["first", "second", "call"]);
    // A hook that sets the other keeps its own place.
    let seen = calls.clone();
    sel.set_after_wait(move |sel| {
        seen.borrow_mut().push("after");
        let seen = seen.clone();
        sel.set_before_wait(move |_| seen.borrow_mut().push("before"));
    });
    sel.run_once(Some(Duration::ZERO))?;
    sel.run_once(Some(Duration::ZERO))?;
    assert_eq!(calls.borrow()[3..], ["after", "before", "after"]);
    Ok(())
}

// A panicking hook propagates and is dropped; the loop runs on without it.
fn a_panicking_hook_is_dropped<B: Backend>() -> io::Result<()> {
    let mut sel = selector::<B>()?;
    let runs = Rc::new(RefCell::new(0));
    let count = runs.clone();
    sel.set_after_wait(move |_| {
        *count.borrow_mut() += 1;
        panic!("hook panic (expected by the test)");
    });
    let result = panic::catch_unwind(AssertUnwindSafe(|| sel.run_once(Some(Duration::ZERO))));
    assert!(result.is_err(), "the hook's panic propagates");
    sel.run_once(Some(Duration::ZERO))?;
    assert_eq!(*runs.borrow(), 1, "the panicking hook ran again");
    Ok(())
}

#[test]
fn a_snapshot_can_be_sent_to_another_thread() {
    fn is_send<T: Send + Sync + 'static>(_: &T) {}
    let sel = selector::<selectloop::PollingBackend>().unwrap();
    let m = sel.metrics();
    is_send(&m);
    let there = std::thread::spawn(move || m.iterations).join().unwrap();
    assert_eq!(there, 0);
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
        counts_of_the_plain_loop,
        counts_of_the_services,
        counts_by_outcome,
        counts_of_executor_jobs,
        slow_callbacks_are_named,
        timer_lag_is_the_time_the_loop_was_busy,
        time_is_measured_only_when_asked,
        one_iteration_in_order,
        hooks_replace_and_clear_themselves,
        a_panicking_hook_is_dropped,
    ]
}
