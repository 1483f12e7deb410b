//! File server throughput: `examples/file_server` (files read on the loop thread, and with
//! `--executor`) against the Python tutorials' thread-per-client server
//! (`benches/file_server_baseline.py`), with `cp` of the same data as the ceiling; and each
//! server's peak resident memory.
//!
//! ```text
//! cargo bench --bench file_server                      # 64 MiB, and 100 files of 64 KiB
//! FILE_BENCH_FULL=1 cargo bench --bench file_server    # 1 GiB, and 1,000 files of 64 KiB
//! ```
//!
//! Workloads: one large file, and many files of 64 KiB; each downloaded and uploaded by 1
//! client, and by 20 clients at once that share the same data (each its 1/20th: 20 files of
//! 1/20 of the large one, or 1/20 of the small files), so that every row moves the same bytes
//! and `cp` can copy the same files (one `cp` per client, in parallel). Clients run in this
//! process, one thread each, on blocking sockets: a download is read and dropped (its CRC
//! checked, for selectloop), an upload is sent from memory. The servers' directory is in
//! `FILE_BENCH_DIR` (default `/dev/shm` where it exists: the disk is not what is measured).
//! `FILE_BENCH_RUNS` runs per row (default 3): the median, and the range. Each server is
//! started afresh for each row; its peak RSS (VmHWM, Linux) is read when the row is done.

mod common;
#[path = "../examples/file_server/protocol.rs"]
mod protocol;

use common::process::{self, Proc};
use common::procfs::{self, Pid};
use common::table::{Spread, Table};
use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const CLIENT_COUNTS: [usize; 2] = [1, 20];

#[derive(Clone, Copy, PartialEq)]
enum Server {
    Selectloop,
    Executor,
    Python,
    Cp,
}

/// A data set: file sizes, cut into one share per client.
struct Workload {
    name: String,
    sizes: Vec<u64>,
}

/// `len` bytes without a '#' (the baseline's end marker): a 1 MiB random block repeated.
fn block() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match (x >> 56) as u8 {
                b'#' => b'$',
                b => b,
            }
        })
        .collect()
}

/// A reader of `len` bytes of the block, repeated.
struct Pattern<'a> {
    block: &'a [u8],
    at: usize,
    left: u64,
}

impl Read for Pattern<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(self.block.len() - self.at)
            .min(self.left as usize);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at = (self.at + n) % self.block.len();
        self.left -= n as u64;
        Ok(n)
    }
}

fn write_file(path: &Path, len: u64, block: &[u8]) {
    let mut file = BufWriter::new(fs::File::create(path).unwrap());
    let mut source = Pattern {
        block,
        at: 0,
        left: len,
    };
    io::copy(&mut source, &mut file).unwrap();
}

/// The files of client `k` of `clients`: `(name, size)`.
fn share(work: &Workload, clients: usize, k: usize) -> Vec<(String, u64)> {
    if work.sizes.len() == 1 {
        let size = work.sizes[0] / clients as u64;
        return vec![(format!("c{k}-0"), size)];
    }
    let per = work.sizes.len() / clients;
    (0..per)
        .map(|i| (format!("c{k}-{i}"), work.sizes[k * per + i]))
        .collect()
}

/// A server process (killed when dropped) and its address.
struct Running {
    proc: Proc,
    addr: SocketAddr,
}

impl Running {
    fn start(server: Server, root: &Path) -> Running {
        let examples = process::profile_dir().unwrap().join("examples");
        let mut command = match server {
            Server::Python => {
                let mut c = Command::new("python3");
                c.arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/benches/file_server_baseline.py"
                ));
                c.arg(root);
                c
            }
            _ => {
                let mut c = Command::new(examples.join("file_server"));
                c.args(["--listen", "127.0.0.1:0", "--root"]).arg(root);
                if server == Server::Executor {
                    c.arg("--executor");
                }
                c.env("RUST_LOG", "warn");
                c
            }
        };
        let python = server == Server::Python;
        command.stdin(Stdio::null());
        if python {
            command.stdout(Stdio::piped()).stderr(Stdio::null());
        } else {
            command.stdout(Stdio::null()).stderr(Stdio::piped());
        }
        let name = if python {
            "the python server"
        } else {
            "file_server"
        };
        let proc = Proc::spawn(name, command).expect("start the server");
        // Its first line: "listening on ADDR" (python), "file server on ADDR, ..." (selectloop).
        let addr = proc.address(Duration::from_secs(30)).unwrap();
        Running { proc, addr }
    }

    /// Peak resident memory so far, in MiB (VmHWM; Linux only).
    fn peak_rss_mib(&self) -> Option<f64> {
        let kib = procfs::status_field(Pid::Id(self.proc.id()), "VmHWM").ok()?;
        Some(kib as f64 / 1024.0)
    }
}

fn connect(addr: SocketAddr) -> (BufReader<TcpStream>, BufWriter<TcpStream>) {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    // Small: a body's 64 KiB chunks bypass it (read straight into the caller's buffer).
    let reader = BufReader::with_capacity(16 << 10, stream.try_clone().unwrap());
    (reader, BufWriter::with_capacity(256 << 10, stream))
}

/// One client's share, through the selectloop server's protocol.
fn selectloop_client(addr: SocketAddr, files: &[(String, u64)], upload: bool, block: &[u8]) {
    let (mut r, mut w) = connect(addr);
    for (name, size) in files {
        if upload {
            let header = format!("PUT {size} {name}");
            protocol::write_frame(&mut w, header.as_bytes()).unwrap();
            w.flush().unwrap();
            assert_eq!(
                protocol::read_reply(&mut r).unwrap(),
                protocol::Reply::Ready
            );
            let mut source = Pattern {
                block,
                at: 0,
                left: *size,
            };
            protocol::write_body(&mut w, &mut source, *size, |_| {}).unwrap();
            w.flush().unwrap();
            let reply = protocol::read_reply(&mut r).unwrap();
            assert_eq!(reply, protocol::Reply::Ok(Some(*size)), "{name}");
        } else {
            protocol::write_frame(&mut w, format!("GET 0 {name}").as_bytes()).unwrap();
            w.flush().unwrap();
            let reply = protocol::read_reply(&mut r).unwrap();
            assert_eq!(reply, protocol::Reply::Data(*size), "{name}");
            protocol::read_body(&mut r, *size, |_| Ok(())).unwrap();
        }
    }
}

/// One client's share, through the baseline's protocol.
fn python_client(addr: SocketAddr, files: &[(String, u64)], upload: bool, block: &[u8]) {
    let (mut r, mut w) = connect(addr);
    let mut buf = vec![0u8; 256 << 10];
    for (name, size) in files {
        if upload {
            w.write_all(format!("put {name}\n").as_bytes()).unwrap();
            let mut source = Pattern {
                block,
                at: 0,
                left: *size,
            };
            io::copy(&mut source, &mut w).unwrap();
            w.write_all(b"##").unwrap();
            w.flush().unwrap();
            let mut ok = [0u8; 2];
            r.read_exact(&mut ok).unwrap();
            assert_eq!(&ok, b"ok");
        } else {
            w.write_all(format!("get {name}\n").as_bytes()).unwrap();
            w.flush().unwrap();
            let (mut got, mut tail) = (0u64, [0u8; 2]);
            while tail != *b"##" || got < size + 2 {
                let n = r.read(&mut buf).unwrap();
                assert!(n > 0, "{name}: end of file after {got} bytes");
                got += n as u64;
                if n >= 2 {
                    tail = [buf[n - 2], buf[n - 1]];
                } else {
                    tail = [tail[1], buf[0]];
                }
            }
            assert_eq!(got, size + 2, "{name}");
        }
    }
}

/// One run: every client's share at once; the seconds from the start to the last one's end.
fn run(
    server: Server,
    addr: Option<SocketAddr>,
    dirs: &Dirs,
    shares: &[Vec<(String, u64)>],
    upload: bool,
) -> f64 {
    if server == Server::Cp {
        // The same files, copied by one `cp` per client, in parallel.
        let _ = fs::remove_dir_all(&dirs.copy);
        fs::create_dir(&dirs.copy).unwrap();
        let start = Instant::now();
        let children: Vec<_> = (0..shares.len())
            .map(|k| {
                let dest = dirs.copy.join(k.to_string());
                Command::new("cp")
                    .arg("-r")
                    .arg(dirs.source.join(k.to_string()))
                    .arg(dest)
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        return start.elapsed().as_secs_f64();
    }
    let addr = addr.unwrap();
    let block = Arc::new(block());
    let barrier = Arc::new(Barrier::new(shares.len() + 1));
    let threads: Vec<_> = shares
        .iter()
        .cloned()
        .map(|files| {
            let (barrier, block) = (barrier.clone(), block.clone());
            thread::spawn(move || {
                barrier.wait();
                match server {
                    Server::Python => python_client(addr, &files, upload, &block),
                    _ => selectloop_client(addr, &files, upload, &block),
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        t.join().expect("a client");
    }
    start.elapsed().as_secs_f64()
}

struct Dirs {
    /// The servers' root, with every file (for downloads).
    root: PathBuf,
    /// Each client's share, in a directory of its own (for `cp`).
    source: PathBuf,
    /// Where `cp` copies to.
    copy: PathBuf,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`
    }
    // `cargo test --all-targets` runs a benchmark without `--bench`: it measures nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("file_server: a benchmark: run it with `cargo bench --bench file_server`");
        return;
    }
    process::cargo(&["build", "--release", "--example", "file_server"]).unwrap();

    let full = std::env::var("FILE_BENCH_FULL").is_ok_and(|v| v == "1");
    let runs: usize = std::env::var("FILE_BENCH_RUNS").map_or(3, |v| v.parse().unwrap());
    let (large, small) = if full {
        (1u64 << 30, 1000)
    } else {
        (64 << 20, 100)
    };
    let workloads = [
        Workload {
            name: format!("1 file of {} MiB", large >> 20),
            sizes: vec![large],
        },
        Workload {
            name: format!("{small} files of 64 KiB"),
            sizes: vec![64 << 10; small],
        },
    ];
    let base = std::env::var_os("FILE_BENCH_DIR").map_or_else(
        || match Path::new("/dev/shm").is_dir() {
            true => PathBuf::from("/dev/shm"),
            false => std::env::temp_dir(),
        },
        PathBuf::from,
    );
    let top = base.join(format!("selectloop-file-bench-{}", std::process::id()));
    let dirs = Dirs {
        root: top.join("root"),
        source: top.join("source"),
        copy: top.join("copy"),
    };
    let block = block();
    println!(
        "file server throughput: MB/s, median of {runs} runs (min-max); data in {}",
        base.display()
    );
    let table = Table::new()
        .left(22)
        .right(7)
        .left(8)
        .gap(2)
        .right(20)
        .right(20)
        .right(20)
        .right(20)
        .gap(3)
        .left(0);
    let header = table.line(&[
        &"workload",
        &"clients",
        &"",
        &"selectloop",
        &"--executor",
        &"python threads",
        &"cp",
        &"peak RSS MiB (selectloop, --executor, python)",
    ]);
    println!("{header}");
    let servers = [
        Server::Selectloop,
        Server::Executor,
        Server::Python,
        Server::Cp,
    ];
    for work in &workloads {
        for clients in CLIENT_COUNTS {
            let shares: Vec<_> = (0..clients).map(|k| share(work, clients, k)).collect();
            let total: u64 = shares.iter().flatten().map(|(_, size)| size).sum();
            // The files: in the root (downloads), and per client (cp).
            let _ = fs::remove_dir_all(&top);
            fs::create_dir_all(&dirs.root).unwrap();
            for (k, files) in shares.iter().enumerate() {
                let dir = dirs.source.join(k.to_string());
                fs::create_dir_all(&dir).unwrap();
                for (name, size) in files {
                    write_file(&dirs.root.join(name), *size, &block);
                    fs::hard_link(dirs.root.join(name), dir.join(name)).unwrap();
                }
            }
            for upload in [false, true] {
                let mut cells = Vec::new();
                let mut rss = Vec::new();
                for server in servers {
                    if upload && server == Server::Executor {
                        cells.push("(as selectloop)".to_string());
                        rss.push("-".to_string());
                        continue;
                    }
                    let upload_root = top.join("uploads");
                    let root = if upload { &upload_root } else { &dirs.root };
                    let mut times = Vec::new();
                    let running = (server != Server::Cp).then(|| {
                        let _ = fs::remove_dir_all(&upload_root);
                        fs::create_dir_all(&upload_root).unwrap();
                        Running::start(server, root)
                    });
                    for _ in 0..runs {
                        let addr = running.as_ref().map(|r| r.addr);
                        times.push(run(server, addr, &dirs, &shares, upload));
                        if upload && server != Server::Cp {
                            for entry in fs::read_dir(&upload_root).unwrap().flatten() {
                                fs::remove_file(entry.path()).unwrap();
                            }
                        }
                    }
                    let mbs: Vec<f64> = times.iter().map(|t| total as f64 / t / 1e6).collect();
                    let mbs = Spread::of(&mbs);
                    cells.push(format!("{:.0} {}", mbs.median, mbs.range(0)));
                    if let Some(running) = running {
                        let peak = running.peak_rss_mib();
                        rss.push(peak.map_or("?".into(), |m| format!("{m:.1}")));
                    }
                }
                let direction = if upload { "upload" } else { "download" };
                let line = table.line(&[
                    &work.name,
                    &clients,
                    &direction,
                    &cells[0],
                    &cells[1],
                    &cells[2],
                    &cells[3],
                    &rss.join(", "),
                ]);
                println!("{line}");
            }
        }
    }
    let _ = fs::remove_dir_all(&top);
}
