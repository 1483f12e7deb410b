//! Helpers shared by the benchmarks that measure processes (`c10k`, `ladder`, `memory`,
//! `file_server`): each used to carry its own copy of these, and one copy keeps them measuring
//! and reporting alike.
//!
//! - [`process`]: child processes whose output lines arrive on a channel (a server's address
//!   line, a command's answer), stopped when dropped; where cargo put this benchmark;
//! - [`cpu`]: pinning a process to a CPU (`taskset`), a process's CPU time, the CPU count;
//! - [`procfs`]: what `/proc` says of a process (its `stat` and `status` fields, its children)
//!   and of the machine (kernel, load average);
//! - [`table`]: aligned text tables, the median and spread of repeated runs, CSV.
//!
//! A benchmark takes it with `mod common;` (from `benches/NAME.rs`) or
//! `#[path = "../common/mod.rs"] mod common;` (from `benches/NAME/main.rs`). This directory is
//! no benchmark of its own: cargo discovers `benches/*.rs` and `benches/*/main.rs` only, and
//! there is no `main.rs` here.
//!
//! Everything here builds on every platform, with std alone: reading `/proc` fails (or finds
//! nothing) off Linux, and pinning is off where `taskset` is missing.

#![allow(dead_code)] // each benchmark uses its own subset

pub mod cpu;
pub mod process;
pub mod procfs;
pub mod table;
