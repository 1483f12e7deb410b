//! Streams on top of the reactor: what a server needs between raw readiness and its protocol.
//!
//! A `Connection` (`connection.rs`) is a registered byte stream with a write queue that never
//! blocks or drops, back-pressure, and a `Codec` (`codec.rs`) that cuts the bytes into frames;
//! it orchestrates parts that each do one job and import none of the others: `read_buffer.rs`
//! (what was received and not decoded yet, lent to the callback as frames), `write_queue.rs`
//! (what it sends until the socket takes it), `deadlines.rs` (its timeouts as instants, and
//! its one timer) and `lifecycle.rs` (where it is between registered and closed).
//! `limits.rs` says what it may cost and how long its peer may take. `connect.rs` is the
//! client side: `Selector::connect`, a non-blocking TCP connect with a timeout.

pub(crate) mod codec;
pub(crate) mod connect;
pub(crate) mod connection;
pub(crate) mod deadlines;
pub(crate) mod lifecycle;
pub(crate) mod limits;
pub(crate) mod read_buffer;
pub(crate) mod write_queue;
