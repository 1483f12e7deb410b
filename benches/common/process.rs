//! Child processes for the benchmarks: servers and clients (an example program, Python, or this
//! benchmark's own binary run again), spoken to through their standard streams.
//!
//! Each line a child prints on a piped stdout or stderr arrives on a channel, read by a thread
//! of its own: the pipe never fills and stalls the child, and the benchmark waits for the line
//! it needs (an address, a `ready`, a figure) with a timeout, instead of hanging on a child
//! that died or never answers. A child still running when its [`Proc`] is dropped is killed
//! and waited for, so that a failed run leaves no server behind.
//!
//! Also here: where cargo put this benchmark (the target directory, where the benchmarks write
//! what they produce, and the release examples next to it) and building those examples.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A child process whose output lines (those of the streams the caller piped) arrive on a
/// channel; killed if still running when dropped.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Proc {
    /// Starts `cmd` as it is set up (piped streams are read line by line); `name` says which
    /// process it is in errors.
    pub fn spawn(name: impl Into<String>, mut cmd: Command) -> io::Result<Proc> {
        let name = name.into();
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

    /// This benchmark's own binary with `args` (a server or client of its own), on `cpu` if
    /// given (see [`super::cpu::pinned`]), talking through its stdin and stdout; its stderr is
    /// this process's.
    pub fn this_exe(
        name: impl Into<String>,
        args: &[&str],
        cpu: Option<usize>,
    ) -> io::Result<Proc> {
        let mut cmd = super::cpu::pinned(std::env::current_exe()?, cpu);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        Proc::spawn(name, cmd)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (the program's own, also when pinned through `taskset`).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Writes `line` and a newline to its stdin, which must be piped.
    pub fn send(&mut self, line: &str) -> io::Result<()> {
        let stdin = self.stdin.as_mut().expect("stdin is piped");
        writeln!(stdin, "{line}")
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.name)))
    }

    /// The next line it prints, within `timeout`.
    pub fn next_line(&self, timeout: Duration) -> io::Result<String> {
        self.expect_line(|_| true, &["a line"], timeout)
    }

    /// The address in its next line, within `timeout`: the first word that parses as a socket
    /// address once trimmed of `,;()`, as in "server on 127.0.0.1:40000, ...".
    pub fn address(&self, timeout: Duration) -> io::Result<SocketAddr> {
        let no_line = |_| {
            let msg = format!("{}: no address line", self.name);
            io::Error::new(ErrorKind::TimedOut, msg)
        };
        let line = self.next_line(timeout).map_err(no_line)?;
        line.split_whitespace()
            .find_map(|w| w.trim_matches(|c: char| ",;()".contains(c)).parse().ok())
            .ok_or_else(|| io::Error::other(format!("{}: no address in {line:?}", self.name)))
    }

    /// Waits for a line whose first word is one of `words`; returns its words. The lines
    /// before it go to this process's stderr, prefixed with the child's name.
    pub fn expect(&self, words: &[&str], timeout: Duration) -> io::Result<Vec<String>> {
        let line = self.expect_line(
            |l| words.iter().any(|w| l.split(' ').next() == Some(w)),
            words,
            timeout,
        )?;
        Ok(line.split_whitespace().map(String::from).collect())
    }

    /// Waits for a line that is `wanted`; `what` names it in the error if none comes within
    /// `timeout`. The lines before it go to this process's stderr, prefixed with the child's
    /// name.
    pub fn expect_line(
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

    /// The lines it printed that nothing has read yet, without waiting.
    pub fn unread(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Waits up to `timeout` for the process to exit (after closing its stdin), or fails; it is
    /// killed when dropped then.
    pub fn finish(mut self, timeout: Duration) -> io::Result<ExitStatus> {
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

/// The directory of the build profile this benchmark was built in, `<target>/<profile>`
/// (`target/release`): the benchmark is `<target>/<profile>/deps/NAME-HASH`, and the release
/// examples are in `<target>/<profile>/examples`.
pub fn profile_dir() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile = exe.parent().and_then(|deps| deps.parent());
    profile.map(PathBuf::from).ok_or_else(|| {
        let msg = format!("no profile directory above {}", exe.display());
        io::Error::new(ErrorKind::NotFound, msg)
    })
}

/// The cargo target directory (`target/`, or `CARGO_TARGET_DIR`): where a benchmark writes
/// what it produces (CSV, traces), away from the tracked files. `target` if not found.
pub fn target_dir() -> PathBuf {
    let dir = profile_dir()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from));
    dir.unwrap_or_else(|| PathBuf::from("target"))
}

/// Runs `cargo ARGS` (`build --release --examples`...) in this package, with the cargo that
/// built this benchmark; fails if it does.
pub fn cargo(args: &[&str]) -> io::Result<()> {
    let status = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "cargo {}: {status}",
            args.join(" ")
        )));
    }
    Ok(())
}
