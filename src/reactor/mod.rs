//! The reactor: Python's `selectors`, owning its sources.
//!
//! `selector.rs` is the loop (`select`, `dispatch`, `run_once`, `run`) and the place to start
//! reading; `registry.rs` adds and removes registrations, each a slab entry holding a
//! `registration.rs` box (the source and its callback); `key.rs` is the `SelectorKey` and the
//! token that ties an OS event back to its registration; `ready.rs` the list `select` returns; `failure.rs` what happens when a callback fails.

pub(crate) mod batch;
pub(crate) mod failure;
pub(crate) mod key;
pub(crate) mod register;
pub(crate) mod registration;
pub(crate) mod registry;
pub(crate) mod scheduling;
pub(crate) mod selector;
