//! The C10K table: select vs poll vs epoll with N registered TCP connections, 10 of them active.
//!
//! For N = 1, 100, 1,000 and 10,000 loopback TCP connections, a server process runs
//! `Selector<B>` for each backend (`SelectSelector`, `PollSelector`, `EpollSelector`,
//! `DefaultSelector`): the listener's callback accepts and registers every connection for READ
//! with an echo callback, and the loop is `run_once(None)`. A client process (this binary
//! again, with a `client` argument) opens the N connections, then keeps 10 of them (spread
//! over the N; all of them when N < 10) ping-ponging: one 32-byte message in flight on each,
//! the next sent as soon as its echo is back. The other N − 10 stay idle but registered: the
//! question is what they cost each `select`. The server (also this binary, `serve`) is pinned
//! to CPU 0 and the client to CPU 1 with `taskset` when there are two CPUs.
//!
//! Per run, in one server process, once the N connections are set up:
//!
//! 1. a 0.2 s warm-up;
//! 2. five timed phases of `C10K_SECONDS` (default 0.6 s). Around each, the server reports
//!    its wall clock, its user and system CPU time (`/proc/self/stat`), its loop iterations
//!    and the bytes it echoed. One loop iteration is one `select` and the dispatch of what it
//!    returned, so: µs per `select` (server CPU, and wall clock), messages per `select`, CPU
//!    per message. The median phase (by CPU per `select`) is reported;
//! 3. if `strace` is installed, `strace -c -f -p SERVER` is attached for half a phase's length,
//!    so that only steady-state ping-pong is counted, not the setup; then the server exits,
//!    which ends the trace. strace slows the server, which then finds more messages ready per
//!    `select` than untraced, so the table's system calls per message are the echo's own calls
//!    per message plus the other calls per `select` (the wait, and what the backend does
//!    around it) divided by the *untraced* messages per `select`. The traced figures are
//!    printed below the table.
//!
//! Every backend must register all N; `SelectSelector` refuses descriptors from 1024
//! (`FD_SETSIZE`) on, so at N = 10,000 its row reports how many connections it had then.
//!
//! Run it with `cargo bench --bench c10k` (under a minute on a 2-core VM); it prints the table
//! and writes it as CSV to `<target dir>/c10k.csv` (or `$C10K_CSV`), which
//! `scripts/plot_c10k.py` turns into an SVG. Environment:
//! - `C10K_SECONDS=0.2` shortens the timed phases (the warm-up stays 0.2 s);
//! - `C10K_SIZES=1,100,1000` picks the N values, `C10K_BACKENDS=EpollSelector,PollSelector`
//!   the backends;
//! - `C10K_STRACE=0` skips the system calls, `C10K_PIN=0` the pinning.
//!
//! Linux only: it reads `/proc` and compares with epoll.

#[cfg(target_os = "linux")]
mod bench {
    use selectloop::{
        Backend, EpollBackend, EpollSelector, ErrorAction, Events, PollBackend, PollingBackend,
        SelectBackend, Selector, EVENT_READ,
    };
    use std::cell::Cell;
    use std::collections::BTreeMap;
    use std::fmt::Display;
    use std::fs::File;
    use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::fd::{AsFd, BorrowedFd, RawFd};
    use std::path::PathBuf;
    use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
    use std::rc::Rc;
    use std::str::FromStr;
    use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
    use std::time::{Duration, Instant};

    /// The backends, by the name of their selector type (also the server's argument).
    const BACKENDS: [&str; 4] = [
        "SelectSelector",
        "PollSelector",
        "EpollSelector",
        "DefaultSelector",
    ];
    const SIZES: [usize; 4] = [1, 100, 1000, 10_000];
    /// Connections ping-ponging; the others are idle.
    const ACTIVE: usize = 10;
    /// Default length of each timed phase (`C10K_SECONDS` overrides); the strace phase lasts
    /// half as long.
    const SECONDS: f64 = 0.6;
    /// Timed phases per run; the median (by CPU per `select`) is reported.
    const PHASES: usize = 5;
    const WARMUP_SECONDS: f64 = 0.2;
    const MSG: &[u8; 32] = b"c10k ping-pong: 32-byte message.";
    /// USER_HZ, the unit of the CPU times in `/proc/PID/stat` (`getconf CLK_TCK`): 100 on
    /// every Linux architecture this runs on.
    const TICKS_PER_SEC: u64 = 100;
    /// How long setting up 10,000 connections may take before the run is abandoned.
    const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

    fn invalid(what: impl Display) -> io::Error {
        io::Error::new(ErrorKind::InvalidInput, what.to_string())
    }

    fn arg<T: FromStr>(args: &[String], i: usize, what: &str) -> io::Result<T>
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

    // ---------------------------------------------------------------------------------------
    // The server process: `c10k serve BACKEND N`.
    // ---------------------------------------------------------------------------------------

    fn serve(args: &[String]) -> io::Result<()> {
        let n = arg(args, 1, "N")?;
        match args.first().map(String::as_str) {
            Some("SelectSelector") => serve_with::<SelectBackend>(n),
            Some("PollSelector") => serve_with::<PollBackend>(n),
            Some("EpollSelector") => serve_with::<EpollBackend>(n),
            Some("DefaultSelector") => serve_with::<PollingBackend>(n),
            other => Err(invalid(format!("unknown backend {other:?}"))),
        }
    }

    /// This process's user and system CPU time so far, in ticks (`/proc/self/stat` fields 14
    /// and 15).
    fn cpu_ticks() -> io::Result<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/self/stat")?;
        // The command name (field 2) is in parentheses and may contain spaces.
        let rest = stat.rsplit_once(')').map(|(_, rest)| rest);
        let fields: Vec<&str> = rest.unwrap_or("").split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse().ok());
        match (field(14), field(15)) {
            (Some(user), Some(sys)) => Ok((user, sys)),
            _ => Err(io::Error::other(format!(
                "cannot parse /proc/self/stat: {stat}"
            ))),
        }
    }

    /// Accepts `n` connections, then echoes forever; stdin takes `mark` and `quit`.
    ///
    /// Prints `listening ADDR`, then `ready N` once `n` connections are registered, or
    /// `capped K ERROR` if a registration was refused after K. Each `mark` prints
    /// `mark WALL_NS USER_TICKS SYS_TICKS ITERATIONS BYTES_ECHOED`.
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
                        let (user, sys) = cpu_ticks()?;
                        let wall = start.elapsed().as_nanos();
                        println!("mark {wall} {user} {sys} {} {}", loops.get(), bytes.get());
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

    // ---------------------------------------------------------------------------------------
    // The client process: `c10k client ADDR N ACTIVE`.
    // ---------------------------------------------------------------------------------------

    /// Opens `n` connections and prints `connected N` (or `refused K ERROR` if the server
    /// registered only K); then, per `run SECONDS` on stdin, ping-pongs on `active` of them
    /// for that long and prints `done MESSAGES`. Exits on `quit` or end of input.
    fn client(args: &[String]) -> io::Result<()> {
        let addr: SocketAddr = arg(args, 0, "address")?;
        let n: usize = arg(args, 1, "N")?;
        let active: usize = arg(args, 2, "active count")?;
        // Each connection sends one byte, which the server echoes once it has registered the
        // connection: at most WINDOW connections wait for that at a time, so the listen backlog
        // (128) never overflows (which would stall the setup in SYN-ACK retransmits), and a
        // refused registration shows as the connection closing instead.
        const WINDOW: usize = 64;
        let mut conns = Vec::with_capacity(n);
        let (mut registered, mut connect_error) = (0, None);
        let refused = loop {
            if registered == n {
                break None;
            }
            if connect_error.is_none() && conns.len() < n && conns.len() - registered < WINDOW {
                match TcpStream::connect(addr).and_then(|mut c| c.write_all(b"+").map(|()| c)) {
                    Ok(conn) => {
                        conns.push(conn);
                        continue;
                    }
                    Err(e) => connect_error = Some(format!("connect: {e}")),
                }
            }
            if registered == conns.len() {
                break connect_error; // nothing pending, and connecting failed
            }
            let mut ack = [0u8; 1];
            match conns[registered].read(&mut ack) {
                Ok(1) => registered += 1,
                Ok(_) => break Some("closed by the server".to_string()),
                Err(e) => break Some(e.to_string()),
            }
        };
        let mut stdin = io::stdin().lock();
        let mut line = String::new();
        if let Some(why) = refused {
            println!("refused {registered} {why}");
            return stdin.read_line(&mut line).map(drop); // wait for `quit`
        }

        let active = active.min(n);
        let picked: Vec<usize> = (0..active).map(|i| i * n / active).collect();
        let mut sel = EpollSelector::new()?;
        sel.set_error_handler(|key, err| {
            eprintln!("c10k client: fd {}: {err}", key.fd());
            ErrorAction::Stop
        });
        let done = Rc::new(Cell::new(0u64));
        let in_flight = Rc::new(Cell::new(0usize));
        let deadline = Rc::new(Cell::new(Instant::now()));
        let mut kicks = Vec::with_capacity(active);
        let mut idle = Vec::with_capacity(n - active);
        for (i, conn) in conns.into_iter().enumerate() {
            if !picked.contains(&i) {
                idle.push(conn);
                continue;
            }
            conn.set_nonblocking(true)?;
            conn.set_nodelay(true)?;
            kicks.push(conn.try_clone()?);
            let (done, in_flight, deadline) = (done.clone(), in_flight.clone(), deadline.clone());
            let (mut buf, mut got) = ([0u8; MSG.len()], 0);
            sel.register(conn, EVENT_READ, move |_, conn: &mut TcpStream, _| {
                match conn.read(&mut buf[got..])? {
                    0 => return Err(io::Error::from(ErrorKind::UnexpectedEof)),
                    n => got += n,
                }
                if got < MSG.len() {
                    return Ok(());
                }
                if &buf != MSG {
                    return Err(io::Error::new(ErrorKind::InvalidData, "bad echo"));
                }
                got = 0;
                done.set(done.get() + 1);
                in_flight.set(in_flight.get() - 1);
                if Instant::now() < deadline.get() {
                    conn.write_all(MSG)?;
                    in_flight.set(in_flight.get() + 1);
                }
                Ok(())
            })?;
        }
        println!("connected {}", idle.len() + kicks.len());

        loop {
            line.clear();
            if stdin.read_line(&mut line)? == 0 {
                return Ok(());
            }
            match line.split_whitespace().collect::<Vec<_>>()[..] {
                ["run", secs] => {
                    let secs: f64 = secs.parse().map_err(invalid)?;
                    done.set(0);
                    deadline.set(Instant::now() + Duration::from_secs_f64(secs));
                    for conn in &mut kicks {
                        conn.write_all(MSG)?;
                    }
                    in_flight.set(kicks.len());
                    while in_flight.get() > 0 {
                        sel.run_once(None)?;
                    }
                    println!("done {}", done.get());
                }
                ["quit"] => return Ok(()),
                _ => return Err(invalid(format!("unknown command {line:?}"))),
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // The coordinator: runs a server and a client per (backend, N), prints and saves the table.
    // ---------------------------------------------------------------------------------------

    /// A child process whose output lines (stdout, and stderr if piped) arrive on a channel.
    struct Proc {
        name: String,
        child: Child,
        stdin: Option<ChildStdin>,
        lines: Receiver<String>,
    }

    impl Proc {
        fn spawn(name: String, mut cmd: Command) -> io::Result<Proc> {
            let mut child = cmd
                .spawn()
                .map_err(|e| io::Error::new(e.kind(), format!("cannot start {name}: {e}")))?;
            let (tx, lines) = mpsc::channel();
            let outputs: [Option<Box<dyn Read + Send>>; 2] = [
                child.stdout.take().map(|o| Box::new(o) as _),
                child.stderr.take().map(|o| Box::new(o) as _),
            ];
            for output in outputs.into_iter().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(output).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                });
            }
            let stdin = child.stdin.take();
            Ok(Proc {
                name,
                child,
                stdin,
                lines,
            })
        }

        /// A server or client: this binary with `args`, talking through pipes, on `cpu` if
        /// given (through `taskset`, which execs it: the pid is the same).
        fn this_exe(name: String, args: &[&str], cpu: Option<usize>) -> io::Result<Proc> {
            let exe = std::env::current_exe()?;
            let mut cmd = match cpu {
                Some(cpu) => {
                    let mut cmd = Command::new("taskset");
                    cmd.args(["-c", &cpu.to_string()]).arg(exe);
                    cmd
                }
                None => Command::new(exe),
            };
            cmd.args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            Proc::spawn(name, cmd)
        }

        fn send(&mut self, line: &str) -> io::Result<()> {
            let stdin = self.stdin.as_mut().expect("stdin is piped");
            writeln!(stdin, "{line}")
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.name)))
        }

        /// Waits for a line whose first word is one of `words`; returns its words.
        fn expect(&self, words: &[&str], timeout: Duration) -> io::Result<Vec<String>> {
            let line = self.expect_line(
                |l| words.iter().any(|w| l.split(' ').next() == Some(w)),
                words,
                timeout,
            )?;
            Ok(line.split_whitespace().map(String::from).collect())
        }

        fn expect_line(
            &self,
            wanted: impl Fn(&str) -> bool,
            what: &[&str],
            timeout: Duration,
        ) -> io::Result<String> {
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(line) if wanted(&line) => return Ok(line),
                    Ok(line) => eprintln!("{}: {line}", self.name),
                    Err(RecvTimeoutError::Timeout) => {
                        let msg = format!("{}: no {what:?} within {timeout:?}", self.name);
                        return Err(io::Error::new(ErrorKind::TimedOut, msg));
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        let msg = format!("{}: exited before {what:?}", self.name);
                        return Err(io::Error::new(ErrorKind::UnexpectedEof, msg));
                    }
                }
            }
        }

        /// Waits up to `timeout` for the process to exit (after closing its stdin), then kills it.
        fn finish(mut self, timeout: Duration) -> io::Result<ExitStatus> {
            drop(self.stdin.take());
            let deadline = Instant::now() + timeout;
            loop {
                if let Some(status) = self.child.try_wait()? {
                    return Ok(status);
                }
                if Instant::now() >= deadline {
                    let msg = format!("{} did not exit within {timeout:?}", self.name);
                    return Err(io::Error::new(ErrorKind::TimedOut, msg));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    impl Drop for Proc {
        fn drop(&mut self) {
            drop(self.stdin.take());
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
    }

    /// The server's counters at one instant (a `mark` line).
    #[derive(Clone, Copy)]
    struct Mark {
        wall_ns: u64,
        user: u64,
        sys: u64,
        iterations: u64,
        bytes: u64,
    }

    impl Mark {
        fn parse(words: &[String]) -> io::Result<Mark> {
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

    /// One timed phase: the server's counters between two marks.
    struct Timing {
        messages: u64,
        selects: u64,
        wall: Duration,
        user_ticks: u64,
        sys_ticks: u64,
    }

    impl Timing {
        fn new(start: Mark, end: Mark) -> Timing {
            Timing {
                messages: (end.bytes - start.bytes) / MSG.len() as u64,
                // The iteration that answered the first `mark` served no message.
                selects: (end.iterations - start.iterations).saturating_sub(1),
                wall: Duration::from_nanos(end.wall_ns - start.wall_ns),
                user_ticks: end.user - start.user,
                sys_ticks: end.sys - start.sys,
            }
        }

        fn per_sec(&self) -> f64 {
            self.messages as f64 / self.wall.as_secs_f64()
        }
        fn msgs_per_select(&self) -> f64 {
            self.messages as f64 / self.selects as f64
        }
        fn wall_us_per_select(&self) -> f64 {
            self.wall.as_secs_f64() * 1e6 / self.selects as f64
        }
        fn us(ticks: u64) -> f64 {
            ticks as f64 * 1e6 / TICKS_PER_SEC as f64
        }
        fn cpu_us_per_select(&self) -> f64 {
            Self::us(self.user_ticks + self.sys_ticks) / self.selects as f64
        }
        fn user_us_per_msg(&self) -> f64 {
            Self::us(self.user_ticks) / self.messages as f64
        }
        fn sys_us_per_msg(&self) -> f64 {
            Self::us(self.sys_ticks) / self.messages as f64
        }
        fn cpu_us_per_msg(&self) -> f64 {
            self.user_us_per_msg() + self.sys_us_per_msg()
        }
    }

    /// The system-call phase of one run: strace's counts over `messages` echoes.
    struct Syscalls {
        messages: u64,
        total: u64,
        by_name: BTreeMap<String, u64>,
    }

    impl Syscalls {
        fn calls(&self, names: &[&str]) -> u64 {
            names.iter().filter_map(|n| self.by_name.get(*n)).sum()
        }

        /// Per message, as traced.
        fn per_msg(&self) -> f64 {
            self.total as f64 / self.messages as f64
        }

        /// The wait calls: one per `select`.
        fn waits(&self) -> u64 {
            let waits = [
                "epoll_wait",
                "epoll_pwait",
                "epoll_pwait2",
                "poll",
                "ppoll",
                "select",
                "pselect6",
            ];
            self.calls(&waits).max(1)
        }

        fn msgs_per_select(&self) -> f64 {
            self.messages as f64 / self.waits() as f64
        }

        /// The echo's own calls (`read` and `write` on a `TcpStream` are `recvfrom` and
        /// `sendto`), per message.
        fn io_per_msg(&self) -> f64 {
            let io = ["recvfrom", "sendto", "recvmsg", "sendmsg"];
            self.calls(&io) as f64 / self.messages as f64
        }

        /// Everything else (the wait and whatever the backend does around it), per `select`.
        fn per_select(&self) -> f64 {
            (self.total as f64 - self.io_per_msg() * self.messages as f64) / self.waits() as f64
        }

        /// Per message at another batch size: strace slows the server down, so it finds more
        /// messages ready per `select` than it does untraced; this re-weights the per-select
        /// calls by the untraced loop's messages per `select`.
        fn per_msg_at(&self, msgs_per_select: f64) -> f64 {
            self.io_per_msg() + self.per_select() / msgs_per_select
        }

        /// `name calls/message` for each system call, most frequent first.
        fn breakdown(&self) -> String {
            let mut calls: Vec<_> = self.by_name.iter().collect();
            calls.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let per = |c: u64| c as f64 / self.messages as f64;
            calls
                .iter()
                .filter(|(_, &c)| per(c) >= 0.005)
                .map(|(name, &c)| format!("{name} {:.2}", per(c)))
                .collect::<Vec<_>>()
                .join(" + ")
        }

        /// Parses `strace -c` output: `% time  seconds  usecs/call  calls  [errors]  syscall`.
        fn parse(summary: &str, messages: u64) -> io::Result<Syscalls> {
            let mut by_name = BTreeMap::new();
            let mut total = None;
            for line in summary.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if words.len() < 5 || words[0].parse::<f64>().is_err() {
                    continue;
                }
                let (Ok(calls), Some(&name)) = (words[3].parse::<u64>(), words.last()) else {
                    continue;
                };
                if name == "total" {
                    total = Some(calls);
                } else {
                    by_name.insert(name.to_string(), calls);
                }
            }
            let total = total.ok_or_else(|| {
                io::Error::other(format!("no total in the strace summary:\n{summary}"))
            })?;
            if messages == 0 {
                return Err(io::Error::other("no message was echoed under strace"));
            }
            Ok(Syscalls {
                messages,
                total,
                by_name,
            })
        }
    }

    /// One (backend, N) run.
    struct Row {
        backend: &'static str,
        n: usize,
        setup: Duration,
        /// `Some((connections, error))` if the backend refused a registration.
        capped: Option<(usize, String)>,
        /// The timed phases, sorted by CPU per `select`.
        phases: Vec<Timing>,
        syscalls: Option<Syscalls>,
        /// Why the system calls were not counted, if they were not.
        no_syscalls: Option<String>,
    }

    impl Row {
        /// The median phase.
        fn timing(&self) -> Option<&Timing> {
            self.phases.get(self.phases.len() / 2)
        }

        /// System calls per message at the untraced batch size.
        fn syscalls_per_msg(&self) -> Option<f64> {
            let (t, s) = (self.timing()?, self.syscalls.as_ref()?);
            Some(s.per_msg_at(t.msgs_per_select()))
        }
    }

    struct Config {
        seconds: f64,
        sizes: Vec<usize>,
        backends: Vec<&'static str>,
        /// The reason the system calls are not counted, if they are not.
        no_strace: Option<String>,
        /// Whether the server runs on CPU 0 and the client on CPU 1.
        pin: bool,
        dir: PathBuf,
    }

    fn env_list<T>(var: &str, parse: impl Fn(&str) -> Option<T>) -> io::Result<Option<Vec<T>>> {
        let Ok(value) = std::env::var(var) else {
            return Ok(None);
        };
        let items = value.split(',').map(str::trim).filter(|s| !s.is_empty());
        let items = items
            .map(|s| parse(s).ok_or_else(|| invalid(format!("{var}: bad item {s:?}"))))
            .collect::<io::Result<Vec<T>>>()?;
        Ok(Some(items))
    }

    impl Config {
        fn from_env() -> io::Result<Config> {
            let seconds = match std::env::var("C10K_SECONDS") {
                Ok(s) => s
                    .parse()
                    .ok()
                    .filter(|&s: &f64| s > 0.0)
                    .ok_or_else(|| invalid(format!("C10K_SECONDS: {s:?}")))?,
                Err(_) => SECONDS,
            };
            let sizes = env_list("C10K_SIZES", |s| s.parse().ok().filter(|&n| n > 0))?
                .unwrap_or(SIZES.to_vec());
            let backends = env_list("C10K_BACKENDS", |s| {
                BACKENDS.iter().copied().find(|b| *b == s)
            })?
            .unwrap_or(BACKENDS.to_vec());
            let no_strace = if std::env::var("C10K_STRACE").is_ok_and(|v| v == "0") {
                Some("C10K_STRACE=0".to_string())
            } else {
                match Command::new("strace").arg("-V").output() {
                    Ok(out) if out.status.success() => None,
                    Ok(out) => Some(format!("strace -V failed: {}", out.status)),
                    Err(e) => Some(format!(
                        "strace not found ({e}); install it with `apt-get install -y strace`"
                    )),
                }
            };
            // Pinned, a wake-up always crosses CPUs; unpinned, the scheduler sometimes puts the
            // server and the client on one CPU, which makes a run at N = 1 twice as fast.
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            let pin = cpus >= 2
                && std::env::var("C10K_PIN").map_or(true, |v| v != "0")
                && Command::new("taskset")
                    .args(["-c", "0", "true"])
                    .status()
                    .is_ok_and(|s| s.success());
            // <target>/<profile>/deps/c10k-HASH: write next to <profile>.
            let exe = std::env::current_exe()?;
            let dir = exe
                .ancestors()
                .nth(3)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("target"));
            Ok(Config {
                seconds,
                sizes,
                backends,
                no_strace,
                pin,
                dir,
            })
        }
    }

    /// One run: a fresh server and client for `backend` with `n` connections.
    fn run(backend: &'static str, n: usize, cfg: &Config) -> io::Result<Row> {
        let mut row = Row {
            backend,
            n,
            setup: Duration::ZERO,
            capped: None,
            phases: Vec::new(),
            syscalls: None,
            no_syscalls: cfg.no_strace.clone(),
        };
        let phase = |secs: f64| Duration::from_secs_f64(secs) + Duration::from_secs(30);
        let n_arg = n.to_string();
        let name = format!("{backend} server");
        let server_args = ["serve", backend, &n_arg];
        let mut server = Proc::this_exe(name, &server_args, cfg.pin.then_some(0))?;
        let addr = server.expect(&["listening"], Duration::from_secs(10))?[1].clone();
        let start = Instant::now();
        let active = ACTIVE.to_string();
        let name = format!("{backend} client");
        let client_args = ["client", &addr, &n_arg, &active];
        let mut client = Proc::this_exe(name, &client_args, cfg.pin.then_some(1))?;
        let setup = server.expect(&["ready", "capped"], SETUP_TIMEOUT)?;
        if setup[0] == "capped" {
            let reached = arg(&setup, 1, "capped count")?;
            row.capped = Some((reached, setup[2..].join(" ")));
            client.expect(&["refused", "connected"], Duration::from_secs(30))?;
            client.send("quit")?;
            server.send("quit")?;
            client.finish(Duration::from_secs(10))?;
            server.finish(Duration::from_secs(10))?;
            return Ok(row);
        }
        client.expect(&["connected"], Duration::from_secs(30))?;
        row.setup = start.elapsed();

        client.send(&format!("run {WARMUP_SECONDS}"))?;
        client.expect(&["done"], phase(WARMUP_SECONDS))?;

        server.send("mark")?;
        let mut mark = Mark::parse(&server.expect(&["mark"], Duration::from_secs(10))?)?;
        for _ in 0..PHASES {
            client.send(&format!("run {}", cfg.seconds))?;
            let sent: u64 = arg(&client.expect(&["done"], phase(cfg.seconds))?, 1, "count")?;
            server.send("mark")?;
            let end = Mark::parse(&server.expect(&["mark"], Duration::from_secs(10))?)?;
            let timing = Timing::new(mark, end);
            if timing.messages != sent || timing.selects == 0 {
                let msg = format!(
                    "{backend} N={n}: the server echoed {} messages in {} selects, \
                     the client got {sent}",
                    timing.messages, timing.selects
                );
                return Err(io::Error::other(msg));
            }
            row.phases.push(timing);
            mark = end;
        }
        row.phases
            .sort_by(|a, b| a.cpu_us_per_select().total_cmp(&b.cpu_us_per_select()));

        if cfg.no_strace.is_none() {
            match count_syscalls(&mut server, &mut client, cfg, backend, n) {
                Ok(syscalls) => row.syscalls = Some(syscalls),
                Err(e) => {
                    eprintln!("c10k: {backend} N={n}: system calls not counted: {e}");
                    row.no_syscalls = Some(e.to_string());
                }
            }
        }
        let _ = server.send("quit"); // it is gone if the strace phase made it exit
        let _ = client.send("quit");
        server.finish(Duration::from_secs(10))?;
        client.finish(Duration::from_secs(10))?;
        Ok(row)
    }

    /// Attaches `strace -c` to the running server for one ping-pong phase, then makes the
    /// server exit, which ends the trace and writes the summary.
    fn count_syscalls(
        server: &mut Proc,
        client: &mut Proc,
        cfg: &Config,
        backend: &str,
        n: usize,
    ) -> io::Result<Syscalls> {
        let file = cfg.dir.join(format!("c10k-strace-{backend}-{n}.txt"));
        let mut cmd = Command::new("strace");
        cmd.args(["-c", "-f", "-o"])
            .arg(&file)
            .args(["-p", &server.child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let tracer = Proc::spawn(format!("strace of {backend} server"), cmd)?;
        let attached = |line: &str| line.contains("attached");
        tracer.expect_line(attached, &["attached"], Duration::from_secs(10))?;
        let secs = cfg.seconds / 2.0;
        client.send(&format!("run {secs}"))?;
        let done = client.expect(&["done"], Duration::from_secs_f64(secs * 100.0 + 60.0))?;
        let messages = arg(&done, 1, "done count")?;
        server.send("quit")?;
        let status = tracer.finish(Duration::from_secs(30))?;
        if !status.success() {
            return Err(io::Error::other(format!("strace exited with {status}")));
        }
        Syscalls::parse(&std::fs::read_to_string(&file)?, messages)
    }

    fn print_table(rows: &[Row], cfg: &Config) {
        println!();
        println!(
            "{:<16} {:>6} {:>8} {:>28} {:>35}",
            "", "", "", "----------- per select -----------", "----------- per message -----------"
        );
        println!(
            "{:<16} {:>6} {:>8} {:>9} {:>11} {:>11} {:>21} {:>13}",
            "backend",
            "N",
            "msgs/s",
            "messages",
            "CPU µs",
            "wall µs",
            "CPU µs (user+sys)",
            "syscalls"
        );
        for row in rows {
            print!("{:<16} {:>6} ", row.backend, row.n);
            if let Some((reached, _)) = &row.capped {
                println!("refused: fd 1024 is past FD_SETSIZE (after {reached} connections)");
                continue;
            }
            let Some(t) = row.timing() else {
                println!();
                continue;
            };
            let cpu = format!(
                "{:.1} ({:.1}+{:.1})",
                t.cpu_us_per_msg(),
                t.user_us_per_msg(),
                t.sys_us_per_msg()
            );
            let calls = row
                .syscalls_per_msg()
                .map_or("-".to_string(), |c| format!("{c:.2}"));
            println!(
                "{:>8.0} {:>9.2} {:>11.1} {:>11.1} {:>21} {:>13}",
                t.per_sec(),
                t.msgs_per_select(),
                t.cpu_us_per_select(),
                t.wall_us_per_select(),
                cpu,
                calls
            );
        }
        println!();
        println!("peak connections registered (the largest N run):");
        for backend in &cfg.backends {
            let runs = || rows.iter().filter(|r| r.backend == *backend);
            match runs().find_map(|r| r.capped.as_ref()) {
                Some((reached, err)) => println!("  {backend:<16} {reached:>6}  ({err})"),
                None => {
                    let peak = runs().filter(|r| r.timing().is_some()).map(|r| r.n).max();
                    println!("  {backend:<16} {:>6}", peak.unwrap_or(0));
                }
            }
        }
        println!();
        match &cfg.no_strace {
            Some(why) => println!("system calls were not measured: {why}"),
            None => {
                println!(
                    "system calls (strace -c -f -p SERVER, steady state only), per message as \
                     traced;\nstrace slows the server, so it batches more messages per select \
                     than untraced:\n\"syscalls\" above is the echo's calls + the calls per \
                     select / the untraced batch"
                );
                for row in rows {
                    if let Some(s) = &row.syscalls {
                        println!(
                            "  {:<16} {:>6}: {:.2} = {}  ({} msgs, {:.1} per select; \
                             {:.2} calls per select + {:.2} per message)",
                            row.backend,
                            row.n,
                            s.per_msg(),
                            s.breakdown(),
                            s.messages,
                            s.msgs_per_select(),
                            s.per_select(),
                            s.io_per_msg(),
                        );
                    } else if let (Some(why), None) = (&row.no_syscalls, &row.capped) {
                        println!("  {:<16} {:>6}: not measured: {why}", row.backend, row.n);
                    }
                }
            }
        }
    }

    fn write_csv(rows: &[Row], path: &PathBuf) -> io::Result<()> {
        let columns = [
            "backend",
            "n",
            "active",
            "setup_s",
            "messages",
            "seconds",
            "msgs_per_sec",
            "selects",
            "msgs_per_select",
            "cpu_us_per_select",
            "cpu_us_per_select_min",
            "cpu_us_per_select_max",
            "wall_us_per_select",
            "cpu_us_per_msg",
            "user_us_per_msg",
            "sys_us_per_msg",
            "syscalls_per_msg",
            "strace_syscalls_per_msg",
            "strace_messages",
            "strace_msgs_per_select",
            "syscalls_per_select",
            "syscall_breakdown",
            "capped_at",
        ];
        let mut out = columns.join(",") + "\n";
        for row in rows {
            let mut cells = vec![
                row.backend.to_string(),
                row.n.to_string(),
                ACTIVE.min(row.n).to_string(),
            ];
            let blank =
                |cells: &mut Vec<String>, k| cells.extend(std::iter::repeat_n(String::new(), k));
            match row.timing() {
                Some(t) => cells.extend([
                    format!("{:.3}", row.setup.as_secs_f64()),
                    t.messages.to_string(),
                    format!("{:.3}", t.wall.as_secs_f64()),
                    format!("{:.0}", t.per_sec()),
                    t.selects.to_string(),
                    format!("{:.3}", t.msgs_per_select()),
                    format!("{:.2}", t.cpu_us_per_select()),
                    format!("{:.2}", row.phases[0].cpu_us_per_select()),
                    format!(
                        "{:.2}",
                        row.phases[row.phases.len() - 1].cpu_us_per_select()
                    ),
                    format!("{:.2}", t.wall_us_per_select()),
                    format!("{:.3}", t.cpu_us_per_msg()),
                    format!("{:.3}", t.user_us_per_msg()),
                    format!("{:.3}", t.sys_us_per_msg()),
                ]),
                None => blank(&mut cells, 13),
            }
            match (&row.syscalls, row.syscalls_per_msg()) {
                (Some(s), Some(per_msg)) => cells.extend([
                    format!("{per_msg:.3}"),
                    format!("{:.3}", s.per_msg()),
                    s.messages.to_string(),
                    format!("{:.3}", s.msgs_per_select()),
                    format!("{:.3}", s.per_select()),
                    s.breakdown(),
                ]),
                _ => blank(&mut cells, 6),
            }
            cells.push(
                row.capped
                    .as_ref()
                    .map(|c| c.0.to_string())
                    .unwrap_or_default(),
            );
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        std::fs::write(path, out)
    }

    /// Marks the descriptors this process inherited beyond stdio close-on-exec, so that the
    /// servers and clients start with stdio only: otherwise whatever the shell that ran cargo
    /// left open takes descriptor numbers, and so connections, from `SelectSelector`'s 1024.
    fn close_inherited_on_exec() {
        let Ok(mut dir) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        let fds: Vec<RawFd> = dir
            .by_ref()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        for fd in fds.into_iter().filter(|&fd| fd > 2) {
            // SAFETY: `fd` was listed open, the listing's own descriptor is still open (`dir`
            // lives until below), and no other thread runs yet that could close one.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            if let Ok(flags) = rustix::io::fcntl_getfd(fd) {
                let _ = rustix::io::fcntl_setfd(fd, flags | rustix::io::FdFlags::CLOEXEC);
            }
        }
        drop(dir);
    }

    fn coordinate() -> io::Result<()> {
        let started = Instant::now();
        close_inherited_on_exec();
        let cfg = Config::from_env()?;
        let syscalls = match &cfg.no_strace {
            None => format!(", then {:.2} s under strace", cfg.seconds / 2.0),
            Some(_) => String::new(),
        };
        println!(
            "c10k: N loopback TCP connections, {ACTIVE} of them ping-ponging {}-byte messages \
             (one in flight each)",
            MSG.len(),
        );
        println!(
            "per run: {WARMUP_SECONDS} s warm-up, {PHASES} timed phases of {} s \
             (the median is shown){syscalls}",
            cfg.seconds
        );
        println!(
            "server CPU from /proc/self/stat; {}",
            if cfg.pin {
                "server pinned to CPU 0, client to CPU 1 (C10K_PIN=0: unpinned)"
            } else {
                "server and client not pinned"
            }
        );
        if let Some(why) = &cfg.no_strace {
            println!("system calls will not be measured: {why}");
        }
        let mut rows = Vec::new();
        for &n in &cfg.sizes {
            for &backend in &cfg.backends {
                let row = run(backend, n, &cfg)?;
                match (row.timing(), &row.capped) {
                    (Some(t), _) => eprintln!(
                        "  {backend:<16} N={n:<6} setup {:.2} s, {} msgs, {:.1} CPU µs/select",
                        row.setup.as_secs_f64(),
                        t.messages,
                        t.cpu_us_per_select()
                    ),
                    (None, Some((k, _))) => eprintln!("  {backend:<16} N={n:<6} refused after {k}"),
                    (None, None) => {}
                }
                rows.push(row);
            }
        }
        print_table(&rows, &cfg);
        let csv = std::env::var_os("C10K_CSV")
            .map(PathBuf::from)
            .unwrap_or_else(|| cfg.dir.join("c10k.csv"));
        write_csv(&rows, &csv)?;
        println!();
        println!("CSV: {}", csv.display());
        println!("total time: {:.1} s", started.elapsed().as_secs_f64());
        Ok(())
    }

    pub fn main() -> io::Result<()> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match args.first().map(String::as_str) {
            Some("serve") => serve(&args[1..]),
            Some("client") => client(&args[1..]),
            // `cargo test --all-targets` runs a benchmark without `--bench`: it measures
            // nothing then.
            _ if !args.iter().any(|a| a == "--bench") => {
                println!("c10k: a benchmark: run it with `cargo bench --bench c10k`");
                Ok(())
            }
            _ => coordinate(),
        }
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    if let Err(e) = bench::main() {
        eprintln!("c10k: {e}");
        std::process::exit(1);
    }
    #[cfg(not(target_os = "linux"))]
    println!("c10k: Linux only (it reads /proc and compares with epoll); nothing to measure here");
}
