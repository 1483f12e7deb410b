//! What `/proc` says of a process and of the machine (Linux).
//!
//! The benchmarks read a server's CPU time, threads, memory and child processes here rather
//! than asking the server: reading costs the server nothing, and a server that is not ours (an
//! example program, Python) is measured the same way. Off Linux every read fails or finds
//! nothing.

use std::io;
use std::path::PathBuf;

/// A process whose `/proc` entry to read.
#[derive(Clone, Copy, Debug)]
pub enum Pid {
    /// This process: `/proc/self`.
    Current,
    /// Another process, by its id.
    Id(u32),
}

impl Pid {
    /// `/proc/PID/NAME`.
    pub fn file(self, name: &str) -> PathBuf {
        match self {
            Pid::Current => format!("/proc/self/{name}").into(),
            Pid::Id(pid) => format!("/proc/{pid}/{name}").into(),
        }
    }
}

/// A process's `/proc/PID/stat`: one line of space-separated fields, numbered from 1 in
/// proc(5) (14 is the user CPU time, 4 the parent's id...).
pub struct Stat {
    text: String,
}

impl Stat {
    pub fn of(pid: Pid) -> io::Result<Stat> {
        let path = pid.file("stat");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(Stat { text })
    }

    /// Field `n` (numbered as in proc(5), from 3 on), as a number.
    pub fn field(&self, n: usize) -> Option<u64> {
        // The command name (field 2) is in parentheses and may contain spaces and parentheses:
        // the fields after it start after the last ')'.
        let (_, after) = self.text.rsplit_once(')')?;
        after
            .split_whitespace()
            .nth(n.checked_sub(3)?)?
            .parse()
            .ok()
    }

    /// The line as read.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// A field of `/proc/PID/status` (`Threads`, `VmRSS`, `VmHWM`...) as a number: memory in KiB.
pub fn status_field(pid: Pid, field: &str) -> io::Result<u64> {
    let path = pid.file("status");
    let status = std::fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no {field} in {}", path.display())))
}

/// The child processes of `pid`, found by scanning `/proc` for their parent's id (field 4 of
/// their `stat`): not every kernel has `/proc/PID/task/PID/children`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    let ids = entries.filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok());
    ids.filter(|&child| {
        Stat::of(Pid::Id(child)).is_ok_and(|stat| stat.field(4) == Some(u64::from(pid)))
    })
    .collect()
}

/// The kernel's release (`/proc/sys/kernel/osrelease`), or "" if unknown.
pub fn kernel_release() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    release.trim().to_string()
}

/// The 1-minute load average, or "?": how busy the machine was (other work skews every
/// figure).
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("?").to_string()
}
