//! Streams on top of the reactor: what a server needs between raw readiness and its protocol.
//!
//! A `Connection` (`connection.rs`) is a registered byte stream with a write queue that never
//! blocks or drops, back-pressure, and a `Codec` (`codec.rs`) that cuts the bytes into frames.

pub(crate) mod codec;
pub(crate) mod connection;
