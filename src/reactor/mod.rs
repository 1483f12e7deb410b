//! The reactor: Python's `selectors`, owning its sources.
//!
//! `selector.rs` is the loop (`select`, `dispatch`, `run_once`, `run`) and the place to start
//! reading. Its parts, from the bottom up: `key.rs` (the `SelectorKey`, and the token that ties
//! an OS event back to its registration), `registration.rs` (a source and its callback, boxed
//! once), `batch.rs` (the reports of a wait, delivered exactly once, and the `Ready` list
//! `select` returns), `registry.rs` (the table of registrations), `failure.rs` (what happens
//! when a callback fails), `metrics.rs` (what the loop counts), `hooks.rs` (the hooks around
//! the wait). Above the loop, its public calls: `register.rs` (register, unregister, modify,
//! the lookups), `scheduling.rs` (timers, calls, the `Handle`, the executor, signals, through
//! `services/`) and `observe.rs` (metrics, slow-callback warnings, the hooks). Nothing here imports a file above it.

pub(crate) mod batch;
pub(crate) mod failure;
pub(crate) mod hooks;
pub(crate) mod key;
pub(crate) mod metrics;
pub(crate) mod observe;
pub(crate) mod register;
pub(crate) mod registration;
pub(crate) mod registry;
pub(crate) mod scheduling;
#[cfg(test)]
mod scripted_tests;
pub(crate) mod selector;
