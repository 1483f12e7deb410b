//! A client for the echo server: interactive, or `--count N` to send N lines and check each echo.
//! Plain blocking sockets, on any platform.
//!
//! ```text
//! cargo run --example echo_client [ADDR]              # type lines, see them echoed
//! cargo run --example echo_client [ADDR] --count 1000 # exits non-zero on any mismatch
//! cargo run --example echo_client [ADDR] --count 1000 --connections 50 --size 64
//! ```
//!
//! `--connections C` runs C clients at once (a thread each), every one doing its N round trips;
//! `--size BYTES` makes every line exactly BYTES long (newline included) and of digits only,
//! so an upper-casing server returns it unchanged too. `scripts/count.sh` uses both to
//! count a server's instructions and system calls per message.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Args {
    addr: String,
    count: Option<u64>,
    connections: usize,
    size: Option<usize>,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args {
        addr: "127.0.0.1:8088".to_string(),
        count: None,
        connections: 1,
        size: None,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("count") => args.count = Some(parser.value()?.parse()?),
            Long("connections") => args.connections = parser.value()?.parse()?,
            Long("size") => args.size = Some(parser.value()?.parse()?),
            Short('h') | Long("help") => {
                println!(
                    "usage: echo_client [ADDR] [--count N [--connections C] [--size BYTES]]\n\
                     ADDR defaults to 127.0.0.1:8088; without --count, lines typed are sent.\n\
                     --count N         send N lines and check each echo, then exit\n\
                     --connections C   C clients at once, N lines each (default 1)\n\
                     --size BYTES      lines of exactly BYTES bytes, digits only"
                );
                std::process::exit(0);
            }
            Value(value) => args.addr = value.string()?,
            _ => return Err(arg.unexpected()),
        }
    }
    if args.connections == 0 || args.size.is_some_and(|size| size < 2) {
        return Err("--connections must be at least 1, --size at least 2".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("echo_client: {e}; try --help");
            return ExitCode::from(2);
        }
    };
    let result = match args.count {
        Some(n) => many_clients(&args, n),
        None => interactive(&args.addr),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn connect(addr: &str) -> io::Result<(TcpStream, BufReader<TcpStream>)> {
    let conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?; // a dead server fails, not hangs
    let reader = BufReader::new(conn.try_clone()?);
    Ok((conn, reader))
}

/// Sends each line typed on stdin and prints what comes back, like the Python tutorials' client.
fn interactive(addr: &str) -> io::Result<()> {
    let (mut conn, mut reader) = connect(addr)?;
    eprintln!("connected to {addr}; type lines, Ctrl-D to quit");
    for line in io::stdin().lock().lines() {
        let line = line?;
        writeln!(conn, "{line}")?;
        let mut echo = String::new();
        if reader.read_line(&mut echo)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed",
            ));
        }
        print!("received: {echo}");
    }
    Ok(())
}

/// Runs `args.connections` clients at once, each checking `n` echoes; prints the total.
fn many_clients(args: &Args, n: u64) -> io::Result<()> {
    let start = Instant::now();
    let clients: Vec<_> = (0..args.connections)
        .map(|_| {
            let (addr, size) = (args.addr.clone(), args.size);
            std::thread::spawn(move || check_echoes(&addr, n, size))
        })
        .collect();
    for client in clients {
        client
            .join()
            .map_err(|_| io::Error::other("a client thread panicked"))??;
    }
    let (total, took) = (n * args.connections as u64, start.elapsed());
    let rate = total as f64 / took.as_secs_f64();
    println!(
        "{total} lines echoed intact over {} connection(s) in {took:.2?} ({rate:.0}/s)",
        args.connections
    );
    Ok(())
}

/// The `i`th of `n` lines: "line i of n", or exactly `size` bytes: `i` in zero-padded digits
/// (its last `size - 1` digits if it has more) and a newline.
fn line(i: u64, n: u64, size: Option<usize>) -> String {
    match size {
        None => format!("line {i} of {n}\n"),
        Some(size) => {
            let digits = format!("{i:0width$}", width = size - 1);
            format!("{}\n", &digits[digits.len() - (size - 1)..])
        }
    }
}

/// Sends `n` lines one at a time and checks that each comes back unchanged.
fn check_echoes(addr: &str, n: u64, size: Option<usize>) -> io::Result<()> {
    let (mut conn, mut reader) = connect(addr)?;
    let mut echo = String::new();
    for i in 0..n {
        let line = line(i, n, size);
        conn.write_all(line.as_bytes())?;
        echo.clear();
        reader.read_line(&mut echo)?;
        if echo != line {
            let msg = format!("sent {line:?}, got back {echo:?}");
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
    }
    Ok(())
}
