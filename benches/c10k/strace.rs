//! The system calls of a run: `strace -c -f -p SERVER` attached to the running server for one
//! ping-pong phase, and its summary parsed into calls per message and per `select`.
//!
//! strace slows the traced server, which then finds more messages ready per `select` than it
//! does untraced; so the figures are split into the echo's own calls per message and the other
//! calls (the wait, and what the backend does around it) per `select`, which
//! [`Syscalls::per_msg_at`] weighs again at the untraced batch size.

use crate::common::process::Proc;
use crate::protocol::arg;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Why the system calls cannot be counted (`C10K_STRACE=0`, or no working `strace`), if they
/// cannot.
pub fn unavailable() -> Option<String> {
    if std::env::var("C10K_STRACE").is_ok_and(|v| v == "0") {
        return Some("C10K_STRACE=0".to_string());
    }
    match Command::new("strace").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!("strace -V failed: {}", out.status)),
        Err(e) => Some(format!(
            "strace not found ({e}); install it with `apt-get install -y strace`"
        )),
    }
}

/// Attaches `strace -c` to the running server, writing its summary to `file`, for one
/// ping-pong phase of `seconds`; then makes the server exit, which ends the trace and writes
/// the summary.
pub fn count(
    server: &mut Proc,
    client: &mut Proc,
    file: &Path,
    seconds: f64,
) -> io::Result<Syscalls> {
    let mut cmd = Command::new("strace");
    cmd.args(["-c", "-f", "-o"])
        .arg(file)
        .args(["-p", &server.id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let tracer = Proc::spawn(format!("strace of {}", server.name()), cmd)?;
    let attached = |line: &str| line.contains("attached");
    tracer.expect_line(attached, &["attached"], Duration::from_secs(10))?;
    client.send(&format!("run {seconds}"))?;
    let done = client.expect(&["done"], Duration::from_secs_f64(seconds * 100.0 + 60.0))?;
    let messages = arg(&done, 1, "done count")?;
    server.send("quit")?;
    let status = tracer.finish(Duration::from_secs(30))?;
    if !status.success() {
        return Err(io::Error::other(format!("strace exited with {status}")));
    }
    Syscalls::parse(&std::fs::read_to_string(file)?, messages)
}

/// The system-call phase of one run: strace's counts over `messages` echoes.
pub struct Syscalls {
    pub messages: u64,
    total: u64,
    by_name: BTreeMap<String, u64>,
}

impl Syscalls {
    fn calls(&self, names: &[&str]) -> u64 {
        names.iter().filter_map(|n| self.by_name.get(*n)).sum()
    }

    /// Per message, as traced.
    pub fn per_msg(&self) -> f64 {
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

    pub fn msgs_per_select(&self) -> f64 {
        self.messages as f64 / self.waits() as f64
    }

    /// The echo's own calls (`read` and `write` on a `TcpStream` are `recvfrom` and
    /// `sendto`), per message.
    pub fn io_per_msg(&self) -> f64 {
        let io = ["recvfrom", "sendto", "recvmsg", "sendmsg"];
        self.calls(&io) as f64 / self.messages as f64
    }

    /// Everything else (the wait and whatever the backend does around it), per `select`.
    pub fn per_select(&self) -> f64 {
        (self.total as f64 - self.io_per_msg() * self.messages as f64) / self.waits() as f64
    }

    /// Per message at another batch size: strace slows the server down, so it finds more
    /// messages ready per `select` than it does untraced; this re-weights the per-select
    /// calls by the untraced loop's messages per `select`.
    pub fn per_msg_at(&self, msgs_per_select: f64) -> f64 {
        self.io_per_msg() + self.per_select() / msgs_per_select
    }

    /// `name calls/message` for each system call, most frequent first.
    pub fn breakdown(&self) -> String {
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
    pub fn parse(summary: &str, messages: u64) -> io::Result<Syscalls> {
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
