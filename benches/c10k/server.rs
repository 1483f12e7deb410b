//! The server process, `c10k serve BACKEND N`: a `Selector` of one backend that accepts N
//! connections and echoes on them, and reports its counters when the coordinator asks.
//!
//! It is a process of its own so that its CPU time (`/proc/self/stat`) and its system calls
//! (`strace -p`) are the loop's alone, and so that each run starts from a fresh process with
//! descriptors numbered from 3 (`SelectSelector` refuses those from 1024 on).

use crate::common::cpu::CpuTicks;
use crate::common::procfs::Pid;
use crate::protocol::{arg, invalid, Mark};
use selectloop::{
    Backend, EpollBackend, ErrorAction, Events, PollBackend, PollingBackend, SelectBackend,
    Selector, EVENT_READ,
};
use std::cell::Cell;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::Instant;

/// `c10k serve BACKEND N`: `args` are the words after `serve`.
pub fn serve(args: &[String]) -> io::Result<()> {
    let n = arg(args, 1, "N")?;
    match args.first().map(String::as_str) {
        Some("SelectSelector") => serve_with::<SelectBackend>(n),
        Some("PollSelector") => serve_with::<PollBackend>(n),
        Some("EpollSelector") => serve_with::<EpollBackend>(n),
        Some("DefaultSelector") => serve_with::<PollingBackend>(n),
        other => Err(invalid(format!("unknown backend {other:?}"))),
    }
}

/// Accepts `n` connections, then echoes forever; stdin takes `mark` and `quit`.
///
/// Prints `listening ADDR`, then `ready N` once `n` connections are registered, or
/// `capped K ERROR` if a registration was refused after K. Each `mark` prints a [`Mark`].
fn serve_with<B: Backend>(n: usize) -> io::Result<()> {
    let start = Instant::now();
    let mut sel = Selector::<B>::new()?;
    sel.set_error_handler(|key, err| {
        eprintln!("c10k server: fd {}: {err}", key.fd());
        ErrorAction::Stop
    });
    let echoed = Rc::new(Cell::new(0u64));
    let iterations = Rc::new(Cell::new(0u64));

    // The control channel: a copy of stdin, watched by the loop itself.
    let control = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let (bytes, loops) = (echoed.clone(), iterations.clone());
    let mut pending = Vec::new();
    sel.register(control, EVENT_READ, move |_, control: &mut File, _| {
        let mut buf = [0u8; 256];
        let got = control.read(&mut buf)?;
        if got == 0 {
            std::process::exit(0); // the coordinator is gone
        }
        pending.extend_from_slice(&buf[..got]);
        while let Some(end) = pending.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            match line.trim_ascii() {
                b"mark" => {
                    let cpu = CpuTicks::of(Pid::Current)?;
                    let mark = Mark {
                        wall_ns: start.elapsed().as_nanos() as u64,
                        user: cpu.user,
                        sys: cpu.system,
                        iterations: loops.get(),
                        bytes: bytes.get(),
                    };
                    println!("{}", mark.line());
                }
                // Exit at once: closing N sockets one by one would only add to the trace.
                b"quit" => std::process::exit(0),
                other => {
                    let other = String::from_utf8_lossy(other);
                    return Err(invalid(format!("unknown command {other:?}")));
                }
            }
        }
        Ok(())
    })?;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    println!("listening {}", listener.local_addr()?);
    let mut accepted = 0;
    sel.register(
        listener,
        EVENT_READ,
        move |sel, sock: &mut TcpListener, _| {
            loop {
                let conn = match sock.accept() {
                    Ok((conn, _addr)) => conn,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                };
                conn.set_nonblocking(true)?;
                conn.set_nodelay(true)?;
                let bytes = echoed.clone();
                let echo = move |sel: &mut Selector<B>, conn: &mut TcpStream, _: Events| {
                    let mut buf = [0u8; 1024];
                    match conn.read(&mut buf)? {
                        0 => {
                            sel.unregister(&*conn)?;
                        }
                        got => {
                            conn.write_all(&buf[..got])?;
                            bytes.set(bytes.get() + got as u64);
                        }
                    }
                    Ok(())
                };
                if let Err(e) = sel.register(conn, EVENT_READ, echo) {
                    println!("capped {accepted} {e}");
                    sel.unregister(&*sock)?; // closed when this callback returns
                    return Ok(());
                }
                accepted += 1;
                if accepted == n {
                    println!("ready {accepted}");
                    sel.unregister(&*sock)?;
                    return Ok(());
                }
            }
        },
    )?;

    loop {
        sel.run_once(None)?;
        iterations.set(iterations.get() + 1);
    }
}
