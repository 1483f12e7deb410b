//! Streams on top of the reactor: what a server needs between raw readiness and its protocol.
//!
//! A `Connection` (`connection.rs`) is a registered byte stream with a write queue that never
//! blocks or drops, back-pressure, and a `Codec` (`codec.rs`) that cuts the bytes into frames;
//! `write_queue.rs` holds what it sends until the socket takes it, and `limits.rs` says what it
//! may cost and how long its peer may take. `connect.rs` is the client
//! side: `Selector::connect`, a non-blocking TCP connect with a timeout.

pub(crate) mod codec;
pub(crate) mod connect;
pub(crate) mod connection;
pub(crate) mod deadlines;
pub(crate) mod lifecycle;
pub(crate) mod limits;
pub(crate) mod read_buffer;
pub(crate) mod write_queue;
