//! Stopping a server as Ctrl-C and SIGTERM should, shared by the example servers built on
//! `Connection` (included with `#[path]`, as `cli.rs` is): stop accepting, let every
//! connection send what it has queued — the replies already written go out whole, then the
//! client reads end of file — and say how many connections there were.
//!
//! A client that never reads would hold the server up forever, so after [`GRACE`] whatever
//! is left is closed regardless (its queued bytes dropped).

#![allow(dead_code)] // each example uses its own subset

use selectloop::{ByteStream, Codec, Connection, DefaultSelector, SelectorKey};
use std::io;
use std::time::{Duration, Instant};

/// How long connections get to send what they have queued once the server is stopping.
pub const GRACE: Duration = Duration::from_secs(5);

/// Makes SIGINT (Ctrl-C) and SIGTERM (what `kill` and service managers send) stop
/// `sel.run()`: on every platform (on Windows, the console's Ctrl-C and its close).
pub fn stop_on_signals(sel: &mut DefaultSelector) -> io::Result<()> {
    for signal in [selectloop::signals::SIGINT, selectloop::signals::SIGTERM] {
        sel.add_signal_handler(signal, |sel, _| sel.stop())?;
    }
    Ok(())
}

/// Once the loop has stopped: unregisters `listeners` (no new connection), asks every
/// `Connection<S, C>` to close once what it has queued is written (`Connection::close`: no
/// more requests are read), and runs the loop until they are all gone or [`GRACE`] has
/// passed. Returns how many connections there were.
pub fn drain<S: ByteStream, C: Codec>(
    sel: &mut DefaultSelector,
    listeners: &[SelectorKey],
) -> io::Result<usize> {
    for listener in listeners {
        sel.unregister(listener)?;
    }
    let keys: Vec<SelectorKey> = sel.get_map().iter().collect();
    let mut open: Vec<SelectorKey> = keys
        .into_iter()
        .filter(|key| Connection::<S, C>::with(sel, key, Connection::close).is_ok())
        .collect();
    let count = open.len();
    let deadline = Instant::now() + GRACE;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        open.retain(|key| sel.get_key(key).is_ok());
        if open.is_empty() {
            break;
        }
        sel.run_once(Some(left))?;
    }
    if !open.is_empty() {
        log::warn!(
            "{} connection(s) still sending after {} s: closed with their replies unsent",
            open.len(),
            GRACE.as_secs()
        );
    }
    Ok(count)
}

/// [`drain`], then closes the selector (and whatever is left) and reports
/// `interrupted: closed N connection(s)`.
pub fn close<S: ByteStream, C: Codec>(
    mut sel: DefaultSelector,
    listeners: &[SelectorKey],
) -> io::Result<()> {
    let connections = drain::<S, C>(&mut sel, listeners)?;
    sel.close()?;
    eprintln!("interrupted: closed {connections} connection(s)");
    Ok(())
}
