//! One echo server, five loops: what selectloop's loop costs against the pollers it wraps, in a
//! server process of its own, as `scripts/count.sh --loops` measures it (instructions and
//! system calls per message, under callgrind and strace).
//!
//! ```text
//! cargo bench --bench echo_loops --no-run     # then run the printed binary:
//! echo_loops LOOP ADDR --clients C            # LOOP: select, run_once, epoll-select,
//!                                             #       bare-polling, bare-epoll
//! ```
//!
//! Every loop runs the same user code for a ready connection: read into a zeroed 1 KiB buffer
//! (`[0u8; 1024]`, as the README's first program did; aligned here, see `Buf`) and write back
//! what was read, or close on end of file; a listener accepts one connection per readiness. That
//! is the tutorial's program, whose `write` can take only part of the data on a full socket — a
//! benchmark client sends one 64-byte line at a time and waits for it, so here it never does,
//! and a short write ends the server with an error rather than losing data silently (real
//! servers queue: see `Connection`).
//!
//! - `select`: `DefaultSelector`, the README's `for (key, mask) in sel.select(None)?` loop;
//! - `run_once`: the same selector, driven by `run_once(None)`;
//! - `epoll-select`: `EpollSelector` (Linux), the README's loop;
//! - `bare-polling`: a `polling::Poller` (level-triggered) and a `Vec` of connections indexed by
//!   the event key — the crate selectloop builds on, used by hand;
//! - `bare-epoll` (Linux): `epoll_wait` through rustix into one reused buffer.
//!
//! With `ECHO_LOOPS_SLOW=1` in its environment, the selectloop loops run with a slow-callback
//! threshold (1 s, which no callback reaches): what timing every wait and callback costs
//! (`ECHO_LOOPS_SLOW=1 COUNT_LOOPS=select bash scripts/count.sh --loops`).
//!
//! The server exits once `--clients C` connections have come and gone, so the measured process
//! ends by itself (bare pollers cannot be woken by a signal handler: `polling` retries `EINTR`).

#[cfg(unix)]
mod server {
    use selectloop::{Backend, Events, Selector, EVENT_READ};
    use std::cell::Cell;
    use std::io::{self, ErrorKind, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::rc::Rc;

    /// The read buffer, aligned: `memset` takes more instructions to zero an unaligned buffer,
    /// and where a plain array lands depends on the stack frames above `echo`, which differ
    /// from loop to loop and from build to build. Aligned, that cost is the same in every loop
    /// (docs/performance.md).
    #[repr(align(64))]
    struct Buf([u8; 1024]);

    /// The user code: echo what can be read, `Ok(false)` at end of file.
    fn echo(conn: &mut TcpStream) -> io::Result<bool> {
        let Buf(buf) = &mut Buf([0u8; 1024]);
        let n = conn.read(buf)?;
        if n > 0 && conn.write(&buf[..n])? != n {
            return Err(io::Error::other(
                "a short write: this benchmark's client sends too much",
            ));
        }
        Ok(n > 0)
    }

    /// Clients served so far, and how many to serve before exiting.
    #[derive(Clone)]
    struct Count {
        done: Rc<Cell<usize>>,
        clients: usize,
    }

    impl Count {
        fn finished(&self) -> bool {
            self.done.get() >= self.clients
        }
    }

    fn selector_loop<B: Backend>(
        listener: TcpListener,
        count: Count,
        select: bool,
    ) -> io::Result<()> {
        let mut sel = Selector::<B>::new()?;
        // What the stopwatch costs when it runs: a slow-callback threshold no callback reaches.
        if std::env::var_os("ECHO_LOOPS_SLOW").is_some() {
            sel.set_slow_callback_duration(Some(std::time::Duration::from_secs(1)));
        }
        let c = count.clone();
        sel.register(listener, EVENT_READ, move |sel, sock, _: Events| {
            let (conn, _) = sock.accept()?;
            conn.set_nonblocking(true)?;
            let c = c.clone();
            sel.register(conn, EVENT_READ, move |sel, conn, _| {
                if !echo(conn)? {
                    sel.unregister(conn)?;
                    c.done.set(c.done.get() + 1);
                }
                Ok(())
            })?;
            Ok(())
        })?;
        while !count.finished() {
            if select {
                for (key, mask) in sel.select(None)? {
                    sel.dispatch(&key, mask)?;
                }
            } else {
                sel.run_once(None)?;
            }
        }
        Ok(())
    }

    fn bare_polling(listener: TcpListener, count: Count) -> io::Result<()> {
        use polling::{Event, PollMode, Poller};
        let poller = Poller::new()?;
        let mut conns: Vec<Option<TcpStream>> = Vec::new();
        const LISTENER: usize = usize::MAX - 1;
        // SAFETY: the listener outlives the poller's use of it (deleted before it is dropped).
        unsafe { poller.add_with_mode(&listener, Event::readable(LISTENER), PollMode::Level)? };
        let mut events = polling::Events::new();
        while !count.finished() {
            events.clear();
            poller.wait(&mut events, None)?;
            for ev in events.iter() {
                if ev.key == LISTENER {
                    let (conn, _) = listener.accept()?;
                    conn.set_nonblocking(true)?;
                    let key = conns.len();
                    // SAFETY: deleted from the poller before it is dropped (below).
                    unsafe { poller.add_with_mode(&conn, Event::readable(key), PollMode::Level)? };
                    conns.push(Some(conn));
                } else if let Some(conn) = conns.get_mut(ev.key).and_then(Option::as_mut) {
                    match echo(conn) {
                        Ok(true) => {}
                        Ok(false) => {
                            poller.delete(&*conn)?;
                            conns[ev.key] = None;
                            count.done.set(count.done.get() + 1);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        poller.delete(&listener)?;
        for conn in conns.iter().flatten() {
            poller.delete(conn)?;
        }
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn bare_epoll(listener: TcpListener, count: Count) -> io::Result<()> {
        use rustix::event::epoll::{self, EventData, EventFlags};
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let mut conns: Vec<Option<TcpStream>> = Vec::new();
        const LISTENER: u64 = u64::MAX;
        epoll::add(&ep, &listener, EventData::new_u64(LISTENER), EventFlags::IN)?;
        let mut events = Vec::with_capacity(1024);
        while !count.finished() {
            events.clear();
            epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), None)?;
            for ev in &events {
                let key = ev.data.u64();
                if key == LISTENER {
                    let (conn, _) = listener.accept()?;
                    conn.set_nonblocking(true)?;
                    let data = EventData::new_u64(conns.len() as u64);
                    epoll::add(&ep, &conn, data, EventFlags::IN)?;
                    conns.push(Some(conn));
                } else if let Some(slot) = conns.get_mut(key as usize) {
                    let Some(conn) = slot.as_mut() else { continue };
                    match echo(conn) {
                        Ok(true) => {}
                        Ok(false) => {
                            epoll::delete(&ep, &*conn)?;
                            *slot = None;
                            count.done.set(count.done.get() + 1);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    pub fn main() -> io::Result<()> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let usage = "usage: echo_loops LOOP ADDR --clients C \
                     (LOOP: select, run_once, epoll-select, bare-polling, bare-epoll)";
        let (name, addr, clients) = match args.as_slice() {
            [name, addr, flag, c] if flag == "--clients" => (
                name.as_str(),
                addr.as_str(),
                c.parse().map_err(io::Error::other)?,
            ),
            // `cargo bench` (`--bench`), `cargo test --all-targets` (nothing): nothing to serve.
            _ if args.iter().all(|a| a == "--bench") => {
                println!("echo_loops: a server for scripts/count.sh --loops; {usage}");
                return Ok(());
            }
            _ => return Err(io::Error::new(ErrorKind::InvalidInput, usage)),
        };
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        eprintln!("echo_loops {name} on {}", listener.local_addr()?);
        let count = Count {
            done: Rc::default(),
            clients,
        };
        match name {
            "select" => selector_loop::<selectloop::PollingBackend>(listener, count, true),
            "run_once" => selector_loop::<selectloop::PollingBackend>(listener, count, false),
            #[cfg(target_os = "linux")]
            "epoll-select" => selector_loop::<selectloop::EpollBackend>(listener, count, true),
            "bare-polling" => bare_polling(listener, count),
            #[cfg(target_os = "linux")]
            "bare-epoll" => bare_epoll(listener, count),
            _ => Err(io::Error::new(ErrorKind::InvalidInput, usage)),
        }
    }
}

fn main() {
    #[cfg(unix)]
    if let Err(e) = server::main() {
        eprintln!("echo_loops: {e}");
        std::process::exit(1);
    }
    #[cfg(not(unix))]
    println!("echo_loops: Unix only; nothing to measure on this platform");
}
