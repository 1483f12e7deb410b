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

use crate::services::remote::Handle;
use crate::sys::{Backend, PollingBackend};
use crate::reactor::selector::Selector;
use crossbeam_channel::Sender;
use std::any::Any;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// What a job produced: its boxed value, or why there is none (cancelled, panicked).
type Outcome = Result<Box<dyn Any + Send>, io::Error>;

/// The completion of a job, typed at `run_in_executor` and kept on the loop thread.
pub(crate) type Done<B> = Box<dyn FnOnce(&mut Selector<B>, Outcome)>;

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

pub(crate) struct Pool {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    shutdown: Arc<AtomicBool>,
}

/// The most threads [`Selector::set_executor_threads`] accepts. Every thread is started with
/// the pool, so the limit keeps a typo (or `usize::MAX`) from trying to start millions.
const MAX_THREADS: usize = 1024;

impl Pool {
    /// Starts `threads` workers (at most [`MAX_THREADS`]). If one cannot be started, those
    /// already started are stopped and joined before the error is returned.
    pub(crate) fn new(threads: usize) -> io::Result<Pool> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let mut pool = Pool {
            jobs: Some(jobs),
            workers: Vec::with_capacity(threads.min(MAX_THREADS)),
            shutdown: Arc::new(AtomicBool::new(false)),
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

    fn submit(&self, job: Job) -> io::Result<()> {
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

/// A handle to work submitted with [`Selector::run_in_executor`]: it can cancel the work
/// before it starts. `Send + Sync`, so any thread may cancel.
pub struct WorkHandle<B: Backend = PollingBackend> {
    state: Arc<AtomicU8>,
    id: usize,
    loop_handle: Handle<B>,
}

impl<B: Backend> WorkHandle<B> {
    /// Cancels the work if it has not started. Returns true if it was cancelled: its `done`
    /// callback then runs on the loop thread with an `Interrupted` error. Returns false if the
    /// work already started (it will finish and `done` gets its result) or was cancelled before.
    pub fn cancel(&self) -> bool {
        let cancelled = self
            .state
            .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if cancelled {
            let id = self.id;
            // If the selector is gone there is nobody left to tell.
            let _ = self.loop_handle.send(Box::new(move |sel| {
                let err = io::Error::new(io::ErrorKind::Interrupted, "cancelled before it started");
                sel.finish_job(id, Err(err));
            }));
        }
        cancelled
    }
}

impl<B: Backend> fmt::Debug for WorkHandle<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state.load(Ordering::Acquire) {
            PENDING => "pending",
            RUNNING => "running or done",
            _ => "cancelled",
        };
        f.debug_struct("WorkHandle").field("state", &state).finish()
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

impl<B: Backend> Selector<B> {
    /// Runs `work` on the selector's thread pool, then `done(selector, result)` on the loop
    /// thread (Python: `executor.submit(work).add_done_callback(done)`, but on the right thread).
    ///
    /// `result` is `Ok` with what `work` returned, or an error: `Interrupted` if the work was
    /// cancelled through the returned handle before it started, `Other` if it panicked (the
    /// message says so). The pool starts on first use; see
    /// [`set_executor_threads`](Self::set_executor_threads). While work is in flight,
    /// [`run`](Self::run) keeps running.
    ///
    /// # Errors
    ///
    /// If the pool's threads or the loop's wake-up cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// let loop_thread = std::thread::current().id();
    /// sel.run_in_executor(
    ///     || std::fs::metadata(".").map(|m| m.is_dir()), // blocking work, on a worker
    ///     move |sel, result| {
    ///         assert_eq!(std::thread::current().id(), loop_thread); // done: on the loop
    ///         assert!(result.expect("the work ran").expect("metadata"));
    ///         sel.stop();
    ///     },
    /// )?;
    /// sel.run()?;
    /// # std::io::Result::Ok(())
    /// ```
    pub fn run_in_executor<T, W, D>(&mut self, work: W, done: D) -> io::Result<WorkHandle<B>>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
        D: FnOnce(&mut Selector<B>, io::Result<T>) + 'static,
    {
        let loop_handle = self.handle()?;
        if self.pool.is_none() {
            self.pool = Some(Pool::new(self.pool_threads)?);
        }
        let done: Done<B> =
            Box::new(
                move |sel, outcome| match outcome.map(|v| v.downcast::<T>()) {
                    Ok(Ok(value)) => done(sel, Ok(*value)),
                    Err(e) => done(sel, Err(e)),
                    Ok(Err(_)) => log::error!("executor: a result of the wrong type was dropped"),
                },
            );
        let id = self.jobs.insert(done);
        let state = Arc::new(AtomicU8::new(PENDING));
        let (job_state, reply) = (state.clone(), loop_handle.clone());
        let job: Job = Box::new(move || {
            if job_state
                .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return; // cancelled: `cancel` already reported it
            }
            let outcome: Outcome = match panic::catch_unwind(AssertUnwindSafe(work)) {
                Ok(value) => Ok(Box::new(value)),
                Err(payload) => Err(io::Error::other(format!(
                    "work panicked: {}",
                    panic_message(&*payload)
                ))),
            };
            // If the selector is gone, so is `done`: nothing to deliver to.
            let _ = reply.send(Box::new(move |sel| sel.finish_job(id, outcome)));
        });
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| io::Error::other("no executor"))?;
        if let Err(e) = pool.submit(job) {
            drop(self.jobs.remove(id));
            return Err(e);
        }
        Ok(WorkHandle {
            state,
            id,
            loop_handle,
        })
    }

    /// Sets the number of executor threads (default: the number of CPUs), from 1 to 1024.
    /// Only before the first [`run_in_executor`](Self::run_in_executor), which starts them all.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `threads` is 0 or more than 1024 (the selector is unchanged);
    /// `ResourceBusy` if the pool already started.
    ///
    /// # Examples
    ///
    /// ```
    /// use selectloop::DefaultSelector;
    /// use std::io::ErrorKind;
    ///
    /// let mut sel = DefaultSelector::new()?;
    /// sel.set_executor_threads(2)?;
    /// let err = sel.set_executor_threads(usize::MAX).unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidInput);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn set_executor_threads(&mut self, threads: usize) -> io::Result<()> {
        if threads == 0 || threads > MAX_THREADS {
            let msg = format!(
                "set_executor_threads: {threads} threads; the executor takes 1 to {MAX_THREADS}"
            );
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
        if self.pool.is_some() {
            let msg =
                "set_executor_threads: the pool already started; set its size before the first job";
            return Err(io::Error::new(io::ErrorKind::ResourceBusy, msg));
        }
        self.pool_threads = threads;
        Ok(())
    }

    /// Runs the `done` callback of job `id`. Exactly one completion arrives per job: the
    /// worker's, or (if the job was cancelled before it started, and so never runs) `cancel`'s.
    fn finish_job(&mut self, id: usize, outcome: Outcome) {
        match self.jobs.try_remove(id) {
            Some(done) => done(self, outcome),
            None => log::error!("executor: completion for unknown job {id}"),
        }
    }
}
