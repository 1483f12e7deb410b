//! The loop's services, run by `run_once`/`run` on the loop thread: what every server built on
//! Python's `selectors` adds (asyncio, Redis's `ae`, libuv).
//!
//! Timers (`timer.rs`), calls from other threads (`remote.rs`, the `Handle`), blocking work on
//! a thread pool with its completion back on the loop (`executor.rs`), and signals
//! (`signal.rs`, over the per-OS self-pipes in `sys/signal.rs`).

pub(crate) mod executor;
pub(crate) mod remote;
pub(crate) mod signal;
pub(crate) mod timer;
