//! The examples' command line, shared so that every program behaves the same way: flags parsed
//! with `lexopt`, `-h`/`--help` wherever it comes, and errors that name the program, what they
//! are about and what went wrong, never as a Rust `Debug` struct:
//!
//! ```text
//! $ echo_server 8088
//! echo_server: 8088: not a socket address (expected HOST:PORT, e.g. 127.0.0.1:8088) (try --help)
//! usage: echo_server [ADDR]
//! $ echo_server 127.0.0.1:8088       # while another program listens there
//! echo_server: 127.0.0.1:8088: Address already in use (os error 98)
//! ```
//!
//! A usage error (an unknown flag, an extra argument, a bad value) exits with status 2 before
//! anything starts, a run-time error (the address in use, a missing directory) with status 1.
//!
//! Each example includes it as it includes `loops.rs`: `#[path = "common/cli.rs"] mod cli;`
//! (`"../common/cli.rs"` from an example that is a folder). Plain functions:
//!
//! ```text
//! fn parse_args(parser: &mut lexopt::Parser) -> Result<(String, Duration), lexopt::Error> {
//!     use lexopt::prelude::*;
//!     let (mut addr, mut idle) = (None, Duration::from_secs(10));
//!     while let Some(arg) = parser.next()? {
//!         match arg {
//!             Long("idle-timeout") => idle = cli::secs(parser, "--idle-timeout")?,
//!             Value(value) if addr.is_none() => addr = Some(cli::addr(value)?),
//!             Short('h') | Long("help") => cli::help(USAGE),
//!             _ => return Err(arg.unexpected()), // an unknown flag, an extra argument
//!         }
//!     }
//!     Ok((addr.unwrap_or_else(|| "127.0.0.1:8088".into()), idle))
//! }
//!
//! fn main() -> ExitCode {
//!     let (addr, idle) = cli::parse(USAGE, parse_args);  // exits 2 on a usage error
//!     cli::status(serve(&addr, idle))                    // 0, or 1 after "PROG: error"
//! }
//! ```
//!
//! A server that takes only `[ADDR]` needs no parser of its own:
//! `cli::parse(USAGE, cli::addr_only(USAGE))`.

#![allow(dead_code)] // each example uses its own subset

use lexopt::ValueExt;
use std::ffi::OsString;
use std::fmt::Display;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::{Bound, RangeBounds};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

/// The program's name in its messages: the example's (its crate's) name.
pub const PROG: &str = env!("CARGO_CRATE_NAME");

/// Runs `parse` over the command line and returns what it found.
///
/// On a usage error, prints `PROG: <the error> (try --help)` and the synopsis — `usage` up to
/// its first blank line — on stderr, and exits with status 2.
pub fn parse<T>(
    usage: &str,
    parse: impl FnOnce(&mut lexopt::Parser) -> Result<T, lexopt::Error>,
) -> T {
    let mut parser = lexopt::Parser::from_env();
    match parse(&mut parser) {
        Ok(parsed) => parsed,
        Err(e) => {
            let synopsis = usage.split("\n\n").next().unwrap_or(usage);
            eprintln!("{PROG}: {e} (try --help)\n{synopsis}");
            std::process::exit(2)
        }
    }
}

/// The whole command line of a server that takes only `[ADDR]` (and `--help`), for
/// [`parse`]: the address given, or `127.0.0.1:8088`.
pub fn addr_only(
    usage: &'static str,
) -> impl FnOnce(&mut lexopt::Parser) -> Result<String, lexopt::Error> {
    move |parser| {
        use lexopt::prelude::*;
        let mut addr = None;
        while let Some(arg) = parser.next()? {
            match arg {
                Value(value) if addr.is_none() => addr = Some(self::addr(value)?),
                Short('h') | Long("help") => help(usage),
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(addr.unwrap_or_else(|| "127.0.0.1:8088".into()))
    }
}

/// `-h`, `--help`: prints `usage` on stdout and exits with status 0.
pub fn help(usage: &str) -> ! {
    println!("{usage}");
    std::process::exit(0)
}

/// ADDR, where to listen or connect: `HOST:PORT` (`127.0.0.1:8088`, `[::1]:8088`,
/// `localhost:8088`). Only its form is checked here: a host name is looked up when it is used
/// (see [`resolve`]), and a failure then is a run-time error.
pub fn addr(value: OsString) -> Result<String, lexopt::Error> {
    let text = value.string()?;
    let host_port = text.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok()
    });
    if host_port || text.parse::<SocketAddr>().is_ok() {
        return Ok(text);
    }
    // A port alone (`8088`) is the usual slip: suggest it with a host.
    let port = text.parse::<u16>().unwrap_or(8088);
    let text = shown(&text);
    Err(format!("{text}: not a socket address (expected HOST:PORT, e.g. 127.0.0.1:{port})").into())
}

/// The value of `flag`: a whole number in `range` (`cli::number(parser, "--workers", 1..=1024)`
/// refuses `--workers 0` with `--workers 0: must be 1 to 1024`).
pub fn number<T>(
    parser: &mut lexopt::Parser,
    flag: &str,
    range: impl RangeBounds<T>,
) -> Result<T, lexopt::Error>
where
    T: FromStr + PartialOrd + Display,
{
    let n: T = value(parser, flag, "a whole number")?;
    if range.contains(&n) {
        return Ok(n);
    }
    let allowed = match (range.start_bound(), range.end_bound()) {
        (Bound::Included(min), Bound::Included(max)) => format!("{min} to {max}"),
        (Bound::Included(min), _) => format!("at least {min}"),
        (_, Bound::Included(max)) => format!("at most {max}"),
        _ => "in range".to_string(),
    };
    Err(format!("{flag} {n}: must be {allowed}").into())
}

/// The value of `flag`: a byte count, a whole number (`1048576`).
pub fn bytes<T: FromStr>(parser: &mut lexopt::Parser, flag: &str) -> Result<T, lexopt::Error> {
    value(parser, flag, "a byte count (a whole number of bytes)")
}

/// The value of `flag`: seconds, 0 or more, fractional or not (`10`, `0.5`).
pub fn secs(parser: &mut lexopt::Parser, flag: &str) -> Result<Duration, lexopt::Error> {
    let text = parser.value()?.string()?;
    let secs = text.parse::<f64>().ok();
    secs.and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| {
            let what = "not a number of seconds (0 or more, e.g. 10 or 0.5)";
            format!("{flag} {}: {what}", shown(&text)).into()
        })
}

/// The value of `flag`, parsed; `what` says what it should have been.
fn value<T: FromStr>(
    parser: &mut lexopt::Parser,
    flag: &str,
    what: &str,
) -> Result<T, lexopt::Error> {
    let text = parser.value()?.string()?;
    text.parse()
        .map_err(|_| format!("{flag} {}: not {what}", shown(&text)).into())
}

/// A value as typed, quoted if it would not show otherwise (empty, or with spaces).
fn shown(text: &str) -> String {
    match text.is_empty() || text.contains(char::is_whitespace) {
        true => format!("{text:?}"),
        false => text.to_string(),
    }
}

/// The first address `addr` (`HOST:PORT`) stands for; a host name is looked up (blocking).
/// The error does not repeat `addr`: add it with [`about`].
pub fn resolve(addr: &str) -> io::Result<SocketAddr> {
    let mut addrs = addr.to_socket_addrs()?;
    addrs
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the name has no address"))
}

/// Says what an error is about, an address or a path, before what went wrong
/// (`127.0.0.1:8088: Address already in use (os error 98)`); the error's kind is kept. For
/// `map_err`: `TcpListener::bind(addr).map_err(cli::about(addr))?`.
pub fn about(what: impl Display) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// The exit status of a run that ended with `result`: 0, or 1 after printing `PROG: <error>`
/// on stderr (`echo_server: 127.0.0.1:8088: Address already in use (os error 98)`).
pub fn status(result: io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{PROG}: {e}");
            ExitCode::FAILURE
        }
    }
}
