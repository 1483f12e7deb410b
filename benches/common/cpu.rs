//! CPUs: pinning a child process to one, a process's CPU time, and how many there are.
//!
//! A server and its client measure best on a CPU each: pinned, every wake-up crosses from one
//! CPU to the other, where the scheduler would sometimes put both on one CPU and make a run at
//! one connection twice as fast. Pinning goes through `taskset`, which execs the program, so
//! the child's pid is the program's own and its `/proc` entry the one to read.
//!
//! CPU time is read from `/proc/PID/stat` (Linux) rather than from the process itself, so that
//! any process can be measured from outside, its reaped children included.

use super::procfs::{Pid, Stat};
use std::ffi::OsStr;
use std::io;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The CPUs this process may run on (1 if unknown).
pub fn count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether a server and a client can be pinned to CPUs 0 and 1: there are two CPUs or more,
/// and `taskset` runs a program on them.
pub fn can_pin() -> bool {
    count() >= 2
        && Command::new("taskset")
            .args(["-c", "0,1", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// A command for `program`, pinned to `cpu` if given (`taskset -c CPU PROGRAM`); its
/// arguments and standard streams are the caller's to add.
pub fn pinned(program: impl AsRef<OsStr>, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &cpu.to_string()]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// A process's CPU time so far, in clock ticks: `/proc/PID/stat` fields 14 to 17.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTicks {
    pub user: u64,
    pub system: u64,
    /// The user time of its children that have exited and been waited for.
    pub children_user: u64,
    /// The system time of those children.
    pub children_system: u64,
}

impl CpuTicks {
    pub fn of(pid: Pid) -> io::Result<CpuTicks> {
        let stat = Stat::of(pid)?;
        let field = |n| stat.field(n);
        match (field(14), field(15), field(16), field(17)) {
            (Some(user), Some(system), Some(children_user), Some(children_system)) => {
                Ok(CpuTicks {
                    user,
                    system,
                    children_user,
                    children_system,
                })
            }
            _ => Err(io::Error::other(format!(
                "cannot parse {}: {}",
                pid.file("stat").display(),
                stat.text()
            ))),
        }
    }

    /// The process's own time, user and system.
    pub fn own(&self) -> u64 {
        self.user + self.system
    }

    /// Its waited-for children's time, user and system.
    pub fn children(&self) -> u64 {
        self.children_user + self.children_system
    }
}

/// The unit of the CPU times in `/proc` (`getconf CLK_TCK`, USER_HZ): 100 per second on every
/// Linux architecture this runs on, which is also the answer if `getconf` cannot be run.
pub fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        text.ok().and_then(|t| t.parse().ok()).unwrap_or(100.0)
    })
}

/// `ticks` of CPU time in seconds.
pub fn seconds(ticks: u64) -> f64 {
    ticks as f64 / clock_ticks()
}
