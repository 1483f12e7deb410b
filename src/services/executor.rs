//! Blocking work on a thread pool, with its completion called on the loop thread.
//!
//! The seeds' "simulated asynchronous I/O" — a `ThreadPoolExecutor` task whose
//! `add_done_callback` fires when a blocking read finishes — without its trap: Python runs that
//! callback on the worker thread. Here `work` runs on a worker, and `done` is sent back through
//! the selector's cross-thread queue, so it runs on the loop thread with `&mut Selector`, like
//! every other callback.
//!
//! The pool starts on first use with a fixed number of threads (default: the number of CPUs,
//! at most 1024);
//! its queue is unbounded. Work that has not started can be cancelled; `done` then receives an
//! `Interrupted` error, as libuv's `uv_cancel` reports `UV_ECANCELED`. A panic in `work` is caught
//! on the worker and delivered to `done` as an error.
//!
//! Shutdown, when the selector is closed or dropped: work not yet started is dropped unrun,
//! work running is waited for, and no `done` callback runs (there is no loop left to run it).

use crossbeam_channel::Sender;
use std::any::Any;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// What a job produced: its boxed value, or why there is none (cancelled, panicked).
pub(crate) type Outcome = Result<Box<dyn Any + Send>, io::Error>;

/// The completion of a job, typed at `run_in_executor` and kept on the loop thread (`L`).
pub(crate) type Done<L> = Box<dyn FnOnce(&mut L, Outcome)>;

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

pub(crate) struct Pool {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    shutdown: Arc<AtomicBool>,
    /// Jobs running now (`job` counts them).
    running: Arc<AtomicUsize>,
}

/// The most threads [`Selector::set_executor_threads`](crate::Selector::set_executor_threads)
/// accepts. Every thread is started with
/// the pool, so the limit keeps a typo (or `usize::MAX`) from trying to start millions.
pub(crate) const MAX_THREADS: usize = 1024;

impl Pool {
    /// Starts `threads` workers (at most [`MAX_THREADS`]). If one cannot be started, those
    /// already started are stopped and joined before the error is returned.
    pub(crate) fn new(threads: usize) -> io::Result<Pool> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let mut pool = Pool {
            jobs: Some(jobs),
            workers: Vec::with_capacity(threads.min(MAX_THREADS)),
            shutdown: Arc::new(AtomicBool::new(false)),
            running: Arc::new(AtomicUsize::new(0)),
        };
        for i in 0..threads.min(MAX_THREADS) {
            let (queue, shutdown) = (queue.clone(), pool.shutdown.clone());
            let worker = std::thread::Builder::new()
                .name(format!("selectloop-worker-{i}"))
                .spawn(move || {
                    for job in queue.iter() {
                        if shutdown.load(Ordering::Acquire) {
                            break;
                        }
                        job();
                    }
                })
                .map_err(|e| {
                    let msg = format!("run_in_executor: starting worker thread {i}: {e}");
                    io::Error::new(e.kind(), msg)
                })?; // `pool`'s drop stops and joins the workers started so far
            pool.workers.push(worker);
        }
        Ok(pool)
    }

    /// Jobs waiting for a worker (cancelled ones included, until a worker drops them), and
    /// jobs running.
    pub(crate) fn load(&self) -> (usize, usize) {
        let queued = self.jobs.as_ref().map_or(0, |jobs| jobs.len());
        (queued, self.running.load(Ordering::Acquire))
    }

    /// The counter of running jobs, for [`job`].
    pub(crate) fn running(&self) -> Arc<AtomicUsize> {
        self.running.clone()
    }

    pub(crate) fn submit(&self, job: Job) -> io::Result<()> {
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("executor shut down"))?;
        jobs.send(job)
            .map_err(|_| io::Error::other("executor shut down"))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Release);
        self.jobs = None; // workers finish their current job, then see the queue closed
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

/// The state of one job, shared by the worker that runs it, its `WorkHandle` and the loop.
pub(crate) type JobState = Arc<AtomicU8>;

/// A new job's state: pending.
pub(crate) fn pending() -> JobState {
    Arc::new(AtomicU8::new(PENDING))
}

/// Cancels the job of `state` if it has not started; true if it was cancelled.
pub(crate) fn cancel(state: &AtomicU8) -> bool {
    state
        .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// What a `WorkHandle`'s `Debug` says of its job.
pub(crate) fn describe(state: &AtomicU8) -> &'static str {
    match state.load(Ordering::Acquire) {
        PENDING => "pending",
        RUNNING => "running or done",
        _ => "cancelled",
    }
}

/// `work` as a job for the pool: unless cancelled first, it runs (counted in `running`
/// meanwhile), a panic is caught, and its outcome goes to `reply` (on the worker thread).
pub(crate) fn job<T, W>(
    work: W,
    state: JobState,
    running: Arc<AtomicUsize>,
    reply: impl FnOnce(Outcome) + Send + 'static,
) -> Job
where
    T: Send + 'static,
    W: FnOnce() -> T + Send + 'static,
{
    Box::new(move || {
        if state
            .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return; // cancelled: `cancel` already reported it
        }
        running.fetch_add(1, Ordering::AcqRel);
        let outcome: Outcome = match panic::catch_unwind(AssertUnwindSafe(work)) {
            Ok(value) => Ok(Box::new(value)),
            Err(payload) => Err(io::Error::other(format!(
                "work panicked: {}",
                panic_message(&*payload)
            ))),
        };
        running.fetch_sub(1, Ordering::AcqRel); // before the loop can hear it is done
        reply(outcome);
    })
}

/// `done` as a completion: the job's boxed value is handed over as the `T` it was.
pub(crate) fn completion<L, T: 'static>(
    done: impl FnOnce(&mut L, io::Result<T>) + 'static,
) -> Done<L> {
    Box::new(move |l, outcome| match outcome.map(|v| v.downcast::<T>()) {
        Ok(Ok(value)) => done(l, Ok(*value)),
        Err(e) => done(l, Err(e)),
        Ok(Err(_)) => log::error!("executor: a result of the wrong type was dropped"),
    })
}
