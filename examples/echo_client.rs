//! A client for the echo server: interactive, or `--count N` to send N lines and check each echo.
//! Plain blocking sockets, on any platform.
//!
//! ```text
//! cargo run --example echo_client [ADDR]              # type lines, see them echoed
//! cargo run --example echo_client [ADDR] --count 1000 # exits non-zero on any mismatch
//! ```

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn parse_args() -> Result<(String, Option<u64>), lexopt::Error> {
    use lexopt::prelude::*;
    let (mut addr, mut count) = ("127.0.0.1:8088".to_string(), None);
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("count") => count = Some(parser.value()?.parse()?),
            Short('h') | Long("help") => {
                println!(
                    "usage: echo_client [ADDR] [--count N]   (ADDR defaults to 127.0.0.1:8088)"
                );
                std::process::exit(0);
            }
            Value(value) => addr = value.string()?,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok((addr, count))
}

fn main() -> ExitCode {
    let (addr, count) = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("echo_client: {e}; try --help");
            return ExitCode::from(2);
        }
    };
    let result = match count {
        Some(n) => check_echoes(&addr, n),
        None => interactive(&addr),
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

/// Sends `n` numbered lines one at a time and checks that each comes back unchanged.
fn check_echoes(addr: &str, n: u64) -> io::Result<()> {
    let (mut conn, mut reader) = connect(addr)?;
    let start = Instant::now();
    let mut echo = String::new();
    for i in 0..n {
        let line = format!("line {i} of {n}\n");
        conn.write_all(line.as_bytes())?;
        echo.clear();
        reader.read_line(&mut echo)?;
        if echo != line {
            let msg = format!("sent {line:?}, got back {echo:?}");
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
    }
    let took = start.elapsed();
    println!("{n} lines echoed intact in {took:.2?}");
    Ok(())
}
