//! Memory per connection: what an idle client costs a server, in resident memory.
//!
//! A server process (this binary run again with `--server KIND`) listens on loopback; this
//! process opens N connections to it (10,000 by default) one after another and, depending on
//! the row, exchanges one line on each (writes it and reads the reply before opening the next)
//! or nothing. Once the server has accepted all N (and answered every line), it lets its loop
//! idle for 100 ms, then reports its resident set size (`VmRSS` in `/proc/self/status`) next to
//! the one it had before the first connection; the difference over N is the memory per
//! connection. Socket buffers are kernel memory and not counted: only what the server program
//! itself holds. The rows:
//!
//! - **bare `polling` server**: a `polling::Poller` with one level-triggered registration per
//!   connection in a `slab::Slab<TcpStream>`, echoing each line upper-cased from a buffer on
//!   the stack — the floor: what the kernel objects' user-space handles and the poller cost;
//! - **`Connection`, fresh**: `DefaultSelector`, each connection a `Connection` with
//!   `LineCodec::new(4096)` replying upper-cased lines (as `examples/uppercase_server.rs`),
//!   never sent anything;
//! - **`Connection`, one line each**: the same server after one exchange per connection.
//!
//! The last two rows' difference is what a connection keeps after traffic; the goal is at most
//! 4 KiB.
//!
//! ```text
//! cargo bench --bench memory    # about 10 s; CONN_MEMORY_N=1000 shortens it
//! ```
//!
//! Linux only (`/proc`); needs `ulimit -n` above N (each process holds N descriptors).

#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
mod bench {
    use crate::common::process::Proc;
    use crate::common::procfs::{status_field, Pid};
    use selectloop::{ConnEvent, Connection, DefaultSelector, LineCodec, EVENT_READ};
    use std::cell::Cell;
    use std::io::{self, ErrorKind, Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    const LINE: &[u8] = b"hello, memory\n";
    const SETTLE: Duration = Duration::from_millis(100);

    /// The resident set size of this process, in KiB.
    fn rss_kib() -> io::Result<u64> {
        status_field(Pid::Current, "VmRSS")
    }

    /// A listener with a backlog of 4096 (std's is 128), so that N connections opened in a row
    /// are not refused while the server accepts them.
    fn listener() -> io::Result<TcpListener> {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        let listener: TcpListener = socket.into();
        listener.set_nonblocking(true)?;
        Ok(listener)
    }

    /// The server's side: `KIND` is `connection` or `bare`. Prints its address, then, once it
    /// has `expect` connections and has answered `lines` lines, "RSS_BEFORE RSS_AFTER" (KiB);
    /// then waits for its standard input to close.
    fn server(kind: &str, expect: usize, lines: usize) -> io::Result<()> {
        let listener = listener()?;
        println!("{}", listener.local_addr()?);
        io::stdout().flush()?;
        let before = rss_kib()?;
        match kind {
            "connection" => serve_connections(listener, expect, lines)?,
            "bare" => serve_bare(listener, expect, lines)?,
            _ => return Err(io::Error::other(format!("unknown server kind {kind:?}"))),
        }
        println!("{before} {}", rss_kib()?);
        io::stdout().flush()?;
        io::stdin().read_to_end(&mut Vec::new())?; // until the parent is done
        Ok(())
    }

    fn serve_connections(listener: TcpListener, expect: usize, lines: usize) -> io::Result<()> {
        let mut sel = DefaultSelector::new()?;
        let (accepted, answered) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let (a, n) = (accepted.clone(), answered.clone());
        sel.register(listener, EVENT_READ, move |sel, sock, _| loop {
            let (conn, _) = match sock.accept() {
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                result => result?,
            };
            conn.set_nonblocking(true)?;
            a.set(a.get() + 1);
            let n = n.clone();
            let conn = Connection::new(conn, LineCodec::new(4096));
            conn.register(sel, move |_, conn, event| {
                if let ConnEvent::Frame(line) = event {
                    conn.send_frame(&line.to_ascii_uppercase())?;
                    n.set(n.get() + 1);
                }
                Ok(())
            })?;
        })?;
        while accepted.get() < expect || answered.get() < lines {
            sel.run_once(Some(Duration::from_millis(10)))?;
        }
        let settled = Instant::now() + SETTLE;
        while Instant::now() < settled {
            sel.run_once(Some(Duration::from_millis(10)))?;
        }
        std::mem::forget(sel); // keep every connection (and its memory) until the process exits
        Ok(())
    }

    fn serve_bare(listener: TcpListener, expect: usize, lines: usize) -> io::Result<()> {
        use polling::{Event, Events, PollMode, Poller};
        let poller = Poller::new()?;
        // SAFETY: the listener and the connections are never closed before the process exits
        // (they are forgotten below), so the poller never watches a closed descriptor.
        unsafe { poller.add_with_mode(&listener, Event::readable(0), PollMode::Level)? };
        let mut conns = slab::Slab::new();
        let mut events = Events::new();
        let mut answered = 0;
        let settled = loop {
            events.clear();
            poller.wait(&mut events, Some(Duration::from_millis(10)))?;
            for ev in events.iter() {
                if ev.key == 0 {
                    loop {
                        let (conn, _) = match listener.accept() {
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            result => result?,
                        };
                        conn.set_nonblocking(true)?;
                        let entry = conns.vacant_entry();
                        // SAFETY: as above.
                        let event = Event::readable(entry.key() + 1);
                        unsafe { poller.add_with_mode(&conn, event, PollMode::Level)? };
                        entry.insert(conn);
                    }
                } else if let Some(conn) = conns.get_mut(ev.key - 1) {
                    let mut buf = [0u8; 4096];
                    match conn.read(&mut buf) {
                        Ok(n) if n > 0 => {
                            conn.write_all(&buf[..n].to_ascii_uppercase())?; // a few bytes
                            answered += buf[..n].iter().filter(|&&b| b == b'\n').count();
                        }
                        _ => {} // end of file or spurious: the parent closes nothing early
                    }
                }
            }
            if conns.len() >= expect && answered >= lines {
                break Instant::now() + SETTLE;
            }
        };
        while Instant::now() < settled {
            events.clear();
            poller.wait(&mut events, Some(Duration::from_millis(10)))?;
        }
        std::mem::forget((poller, conns, listener));
        Ok(())
    }

    /// One row: starts a server of `kind`, opens `n` connections (each exchanging a line if
    /// `exchange`), and returns the server's RSS growth per connection in KiB.
    fn row(kind: &str, n: usize, exchange: bool) -> io::Result<f64> {
        let lines = if exchange { n } else { 0 };
        let args = ["--server", kind, &n.to_string(), &lines.to_string()];
        let server = Proc::this_exe(format!("the {kind} server"), &args, None)?;
        let addr = server.address(Duration::from_secs(10))?;
        let mut conns = Vec::with_capacity(n);
        let mut reply = vec![0u8; LINE.len()];
        for _ in 0..n {
            let mut conn = TcpStream::connect(addr)?;
            if exchange {
                conn.write_all(LINE)?;
                conn.read_exact(&mut reply)?;
                assert_eq!(reply, LINE.to_ascii_uppercase(), "a wrong reply");
            }
            conns.push(conn);
        }
        // Once it has them all, and has let its loop idle.
        let line = server.next_line(Duration::from_secs(60))?;
        let figures: Vec<f64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [before, after] = figures[..] else {
            return Err(io::Error::other(format!("the {kind} server said {line:?}")));
        };
        drop(server); // killed before the clients close: the server's side takes the TIME_WAITs
        drop(conns);
        Ok((after - before) / n as f64)
    }

    pub fn main() -> io::Result<()> {
        let args: Vec<String> = std::env::args().collect();
        if let Some(at) = args.iter().position(|a| a == "--server") {
            let arg = |i: usize| args.get(at + i).map(String::as_str).unwrap_or("");
            let number = |i: usize| arg(i).parse::<usize>().map_err(io::Error::other);
            return server(arg(1), number(2)?, number(3)?);
        }
        // `cargo test --all-targets` runs a benchmark without `--bench`: it measures nothing then.
        if !std::env::args().any(|a| a == "--bench") {
            println!("memory: a benchmark: run it with `cargo bench --bench memory`");
            return Ok(());
        }
        let n: usize = match std::env::var("CONN_MEMORY_N") {
            Ok(v) => v
                .parse()
                .map_err(|e| io::Error::other(format!("CONN_MEMORY_N: {e}")))?,
            Err(_) => 10_000,
        };
        println!("memory per connection: {n} idle loopback TCP connections; server RSS growth / N");
        println!("server                                  KiB per connection");
        let bare = row("bare", n, true)?;
        println!("{:<40}{bare:>10.2}", "bare polling server, one line each");
        let fresh = row("connection", n, false)?;
        println!("{:<40}{fresh:>10.2}", "Connection, fresh");
        let used = row("connection", n, true)?;
        println!("{:<40}{used:>10.2}", "Connection, one line each");
        println!(
            "after one line: {:+.2} KiB per connection over fresh, {:+.2} over the bare server",
            used - fresh,
            used - bare
        );
        Ok(())
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    if let Err(e) = bench::main() {
        eprintln!("memory: {e}");
        std::process::exit(1);
    }
    #[cfg(not(target_os = "linux"))]
    println!("memory: Linux only (/proc/self/status); nothing to measure on this platform");
}
