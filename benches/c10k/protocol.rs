//! What the coordinator and its server and client processes say to each other, and the
//! figures they share: the message, the backends by name, the parsing of arguments and of
//! the server's `mark` lines.
//!
//! The three roles are one binary run three ways (`c10k`, `c10k serve BACKEND N`,
//! `c10k client ADDR N ACTIVE`), talking in lines over the children's stdin and stdout:
//!
//! - server: prints `listening ADDR`, then `ready N` once N connections are registered (or
//!   `capped K ERROR` if a registration was refused after K); on `mark` prints a [`Mark`];
//!   exits on `quit` or at the end of its input;
//! - client: prints `connected N` once the server has registered all N (or `refused K
//!   ERROR`); on `run SECONDS` ping-pongs for that long and prints `done MESSAGES`; exits on
//!   `quit` or at the end of its input.
//!
//! This module imports nothing of the others: the server, the client and the coordinator all
//! build on it.

use std::fmt::Display;
use std::io::{self, ErrorKind};
use std::str::FromStr;

/// The backends, by the name of their selector type (also the server's argument).
pub const BACKENDS: [&str; 4] = [
    "SelectSelector",
    "PollSelector",
    "EpollSelector",
    "DefaultSelector",
];
/// Connections ping-ponging; the others are idle.
pub const ACTIVE: usize = 10;
/// The message each active connection sends, and gets back, one at a time.
pub const MSG: &[u8; 32] = b"c10k ping-pong: 32-byte message.";

pub fn invalid(what: impl Display) -> io::Error {
    io::Error::new(ErrorKind::InvalidInput, what.to_string())
}

/// Word `i` of a command line or of an answer, parsed; `what` names it in the error.
pub fn arg<T: FromStr>(args: &[String], i: usize, what: &str) -> io::Result<T>
where
    T::Err: Display,
{
    let value = args
        .get(i)
        .ok_or_else(|| invalid(format!("missing {what}")))?;
    value
        .parse()
        .map_err(|e| invalid(format!("{what} {value:?}: {e}")))
}

/// The server's counters at one instant: its answer to `mark`,
/// `mark WALL_NS USER_TICKS SYS_TICKS ITERATIONS BYTES_ECHOED`.
#[derive(Clone, Copy)]
pub struct Mark {
    /// Since the server started.
    pub wall_ns: u64,
    /// Its CPU time (`/proc/self/stat`), in clock ticks.
    pub user: u64,
    pub sys: u64,
    /// Loop iterations: one `select` and the dispatch of what it returned, each.
    pub iterations: u64,
    pub bytes: u64,
}

impl Mark {
    /// The `mark` line.
    pub fn line(&self) -> String {
        let Mark {
            wall_ns,
            user,
            sys,
            iterations,
            bytes,
        } = self;
        format!("mark {wall_ns} {user} {sys} {iterations} {bytes}")
    }

    /// Parses the words of a `mark` line.
    pub fn parse(words: &[String]) -> io::Result<Mark> {
        let field = |i: usize| arg::<u64>(words, i, "mark field");
        Ok(Mark {
            wall_ns: field(1)?,
            user: field(2)?,
            sys: field(3)?,
            iterations: field(4)?,
            bytes: field(5)?,
        })
    }
}
