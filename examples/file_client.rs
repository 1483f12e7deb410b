//! The file server's client: an interactive menu as in the Python tutorials, or one command.
//!
//! ```text
//! cargo run --example file_client -- ADDR                      # menu: list, get, put, delete, quit
//! cargo run --example file_client -- ADDR list
//! cargo run --example file_client -- ADDR get NAME [--out PATH]
//! cargo run --example file_client -- ADDR put PATH [--as NAME]
//! cargo run --example file_client -- ADDR delete NAME
//! ```
//!
//! A download goes to `PATH.part` and is renamed to `PATH` once its CRC-32 matches; if it is
//! interrupted, the same command resumes it from the end of `PATH.part` (`GET` with an
//! offset). An upload is stored by the server only when complete and verified. Transfers show
//! a progress bar on a terminal. Any failure ends with a message and exit status 1; a bad
//! command line with the usage line and exit status 2.
//!
//! A blocking client (the server is the showcase): plain `TcpStream`s with timeouts.

#[path = "common/cli.rs"]
mod cli;
#[path = "file_server/protocol.rs"]
mod protocol;

use indicatif::{ProgressBar, ProgressStyle};
use protocol::{check_name, read_body, read_reply, write_body, write_frame, Reply, Request};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, ErrorKind, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// An `ERR` reply: the request failed, the connection is fine.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

fn refused(code: &str, message: &str) -> io::Error {
    io::Error::other(Refused(format!("{message} ({code})")))
}

fn is_refusal(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Refused>())
}

fn unexpected(reply: Reply) -> io::Error {
    match reply {
        Reply::Err { code, message } => refused(&code, &message),
        other => protocol::invalid_data(format!("unexpected reply {other:?}")),
    }
}

struct Client {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

impl Client {
    fn connect(addr: &str, timeout: Duration) -> io::Result<Client> {
        let addrs: Vec<_> = addr.to_socket_addrs().map_err(cli::about(addr))?.collect();
        let mut last = io::Error::new(ErrorKind::InvalidInput, format!("{addr}: no address"));
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(timeout))?;
                    stream.set_write_timeout(Some(timeout))?;
                    stream.set_nodelay(true)?;
                    return Ok(Client {
                        // Small: a body's 64 KiB chunks bypass it (no extra copy).
                        reader: BufReader::with_capacity(16 << 10, stream.try_clone()?),
                        writer: BufWriter::with_capacity(256 << 10, stream),
                    });
                }
                Err(e) => last = io::Error::new(e.kind(), format!("connecting to {a}: {e}")),
            }
        }
        Err(last)
    }

    fn request(&mut self, request: &Request) -> io::Result<Reply> {
        write_frame(&mut self.writer, request.to_string().as_bytes())?;
        self.writer.flush()?;
        read_reply(&mut self.reader)
    }

    fn list(&mut self) -> io::Result<String> {
        let len = match self.request(&Request::List)? {
            Reply::Data(len) => len,
            other => return Err(unexpected(other)),
        };
        let mut text = Vec::new();
        read_body(&mut self.reader, len, |chunk| {
            text.extend_from_slice(chunk);
            Ok(())
        })?;
        String::from_utf8(text).map_err(|_| protocol::invalid_data("a listing that is not UTF-8"))
    }

    /// Downloads `name` to `out` through `out.part`, resuming from the end of that file.
    fn get(&mut self, name: &str, out: &Path) -> io::Result<()> {
        let part = part_path(out);
        let offset = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        if offset > 0 {
            eprintln!("resuming at byte {offset} ({} exists)", part.display());
        }
        let request = Request::Get {
            name: name.to_string(),
            offset,
        };
        let len = match self.request(&request)? {
            Reply::Data(len) => len,
            Reply::Err { code, message } if code == "range" => {
                let msg = format!(
                    "{message}; {} is longer than the file: delete it to download anew",
                    part.display()
                );
                return Err(refused(&code, &msg));
            }
            other => return Err(unexpected(other)),
        };
        let file = OpenOptions::new().create(true).append(true).open(&part)?;
        let mut file = BufWriter::with_capacity(256 << 10, file);
        let bar = progress_bar(offset + len, name);
        bar.set_position(offset);
        let started = Instant::now();
        let got = read_body(&mut self.reader, len, |chunk| {
            bar.inc(chunk.len() as u64);
            file.write_all(chunk)
        })
        .and_then(|()| file.flush());
        bar.finish_and_clear();
        drop(file); // flushes what was received (a BufWriter flushes when dropped)
        if let Err(e) = got {
            if e.kind() == ErrorKind::InvalidData {
                // A corrupted body: what this transfer wrote cannot be trusted.
                let _ = fs::remove_file(&part);
                let msg = format!("{e}; removed {}: download again", part.display());
                return Err(io::Error::new(e.kind(), msg));
            }
            let have = fs::metadata(&part).map_or(offset, |m| m.len());
            let msg = format!(
                "{e}; interrupted at byte {have} of {}: {} is kept, run the same command to \
                 resume",
                offset + len,
                part.display()
            );
            return Err(io::Error::new(e.kind(), msg));
        }
        fs::rename(&part, out)?;
        report("got", name, offset + len, len, started);
        Ok(())
    }

    /// Uploads the file at `path` as `name`.
    fn put(&mut self, path: &Path, name: &str) -> io::Result<()> {
        check_name(name).map_err(|r| io::Error::new(ErrorKind::InvalidInput, r.to_string()))?;
        let mut file = File::open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let size = file.metadata()?.len();
        let request = Request::Put {
            name: name.to_string(),
            size,
        };
        match self.request(&request)? {
            Reply::Ready => {}
            other => return Err(unexpected(other)),
        }
        let bar = progress_bar(size, name);
        let started = Instant::now();
        let sent = write_body(&mut self.writer, &mut file, size, |n| bar.inc(n))
            .and_then(|_| self.writer.flush());
        bar.finish_and_clear();
        sent?;
        match read_reply(&mut self.reader)? {
            Reply::Ok(Some(stored)) if stored == size => {}
            other => return Err(unexpected(other)),
        }
        report("put", name, size, size, started);
        Ok(())
    }

    fn delete(&mut self, name: &str) -> io::Result<()> {
        let request = Request::Delete {
            name: name.to_string(),
        };
        match self.request(&request)? {
            Reply::Ok(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Says goodbye; the server closes the connection.
    fn quit(mut self) {
        let _ = self.request(&Request::Quit);
    }
}

fn part_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    out.with_file_name(name)
}

/// A progress bar on stderr, drawn only on a terminal.
fn progress_bar(len: u64, name: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(name.to_string());
    bar
}

fn report(verb: &str, name: &str, total: u64, moved: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    let mbs = moved as f64 / secs.max(1e-9) / 1e6;
    println!("{verb} {name}: {total} bytes ({moved} transferred in {secs:.2} s, {mbs:.1} MB/s), CRC-32 ok");
}

const USAGE: &str = "usage: file_client ADDR [COMMAND] [--timeout SECS]

  ADDR                      the server, HOST:PORT (file_server's default: 127.0.0.1:8091)
  (no command)              an interactive menu: list, get NAME, put PATH, delete NAME, quit
  list                      the server's files: size and name
  get NAME [--out PATH]     download NAME to PATH (default: NAME here), resuming PATH.part
  put PATH [--as NAME]      upload PATH as NAME (default: its file name)
  delete NAME               delete NAME on the server
  --timeout SECS            how long to wait for the server (default 60; may be fractional)
Exit status: 0 on success, 1 if the command failed, 2 for a bad command line.";

enum Command {
    Menu,
    List,
    Get { name: String, out: Option<PathBuf> },
    Put { path: PathBuf, name: Option<String> },
    Delete { name: String },
}

fn parse_args(parser: &mut lexopt::Parser) -> Result<(String, Command, Duration), lexopt::Error> {
    use lexopt::prelude::*;
    let (mut addr, mut words) = (None, Vec::new());
    let (mut out, mut alias, mut timeout) = (None, None, Duration::from_secs(60));
    while let Some(arg) = parser.next()? {
        match arg {
            Long("out") => out = Some(PathBuf::from(parser.value()?)),
            Long("as") => alias = Some(parser.value()?.string()?),
            Long("timeout") => timeout = cli::secs(parser, "--timeout")?,
            Value(value) if addr.is_none() => addr = Some(cli::addr(value)?),
            Value(value) => words.push(value.string()?),
            Short('h') | Long("help") => cli::help(USAGE),
            _ => return Err(arg.unexpected()),
        }
    }
    let addr = addr.ok_or("missing ADDR, the server's address")?;
    if timeout.is_zero() {
        return Err("--timeout: must be above 0 seconds".into());
    }
    let command = match words.as_slice() {
        [] => Command::Menu,
        [list] if list == "list" => Command::List,
        [get, name] if get == "get" => Command::Get {
            name: name.clone(),
            out: out.take(),
        },
        [put, path] if put == "put" => Command::Put {
            path: PathBuf::from(path),
            name: alias.take(),
        },
        [delete, name] if delete == "delete" => Command::Delete { name: name.clone() },
        [command, ..] => {
            let takes = match command.as_str() {
                "list" => "no argument",
                "get" | "delete" => "one NAME",
                "put" => "one PATH",
                _ => return Err(format!("unknown command {command:?}").into()),
            };
            return Err(format!("{command} takes {takes}: {}", words.join(" ")).into());
        }
    };
    if out.is_some() || alias.is_some() {
        let flag = if out.is_some() { "--out" } else { "--as" };
        let command = if out.is_some() { "get" } else { "put" };
        return Err(format!("{flag} goes with {command} only").into());
    }
    Ok((addr, command, timeout))
}

/// The name a local path is uploaded as: its file name.
fn file_name(path: &Path) -> io::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            let msg = format!("{}: no file name to upload it as; use --as", path.display());
            io::Error::new(ErrorKind::InvalidInput, msg)
        })
}

fn run(client: &mut Client, command: Command) -> io::Result<()> {
    match command {
        Command::Menu => unreachable!("the menu runs commands one by one"),
        Command::List => print!("{}", client.list()?),
        Command::Get { name, out } => {
            if out.is_none() {
                // Saved under its own name here: a plain file name only, whatever the server.
                check_name(&name)
                    .map_err(|r| io::Error::new(ErrorKind::InvalidInput, r.to_string()))?;
            }
            let out = out.unwrap_or_else(|| PathBuf::from(&name));
            client.get(&name, &out)?;
        }
        Command::Put { path, name } => {
            let name = name.map_or_else(|| file_name(&path), Ok)?;
            client.put(&path, &name)?;
        }
        Command::Delete { name } => {
            client.delete(&name)?;
            println!("deleted {name}");
        }
    }
    Ok(())
}

/// The tutorials' menu: one command per line, until `quit` or end of input. A refused request
/// leaves the connection usable; a broken one is made anew for the next command.
fn menu(addr: &str, timeout: Duration) -> io::Result<()> {
    let mut client = Some(Client::connect(addr, timeout)?);
    let help = "commands: list | get NAME | put PATH | delete NAME | quit";
    println!("connected to {addr}; {help}");
    let mut lines = io::stdin().lock().lines();
    loop {
        print!("file> ");
        io::stdout().flush()?;
        let Some(line) = lines.next().transpose()? else {
            break;
        };
        let line = line.trim();
        let (word, arg) = line.split_once(' ').unwrap_or((line, ""));
        let command = match (word, arg.trim()) {
            ("", _) => continue,
            ("quit" | "exit", _) => break,
            ("list", "") => Command::List,
            ("get", name) if !name.is_empty() => Command::Get {
                name: name.to_string(),
                out: None,
            },
            ("put", path) if !path.is_empty() => Command::Put {
                path: PathBuf::from(path),
                name: None,
            },
            ("delete", name) if !name.is_empty() => Command::Delete {
                name: name.to_string(),
            },
            _ => {
                println!("{help}");
                continue;
            }
        };
        let conn = match client.as_mut() {
            Some(conn) => conn,
            None => client.insert(Client::connect(addr, timeout)?),
        };
        if let Err(e) = run(conn, command) {
            eprintln!("error: {e}");
            if !is_refusal(&e) {
                client = None; // reconnect for the next command
            }
        }
    }
    if let Some(client) = client {
        client.quit();
    }
    Ok(())
}

fn main() -> ExitCode {
    let (addr, command, timeout) = cli::parse(USAGE, parse_args);
    let result = match command {
        Command::Menu => menu(&addr, timeout),
        command => Client::connect(&addr, timeout).and_then(|mut client| {
            run(&mut client, command)?;
            client.quit();
            Ok(())
        }),
    };
    cli::status(result)
}
