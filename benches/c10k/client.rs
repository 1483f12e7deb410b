//! The client process, `c10k client ADDR N ACTIVE`: opens the N connections, then, on each
//! `run SECONDS`, keeps ACTIVE of them ping-ponging with the server for that long.
//!
//! A process of its own, on another CPU than the server's when pinned, so that the server's
//! CPU time is the loop's alone; it runs on `EpollSelector` whatever the server's backend, so
//! that only the server differs from row to row.

use crate::protocol::{arg, invalid, MSG};
use selectloop::{EpollSelector, ErrorAction, EVENT_READ};
use std::cell::Cell;
use std::io::{self, BufRead, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Opens `n` connections and prints `connected N` (or `refused K ERROR` if the server
/// registered only K); then, per `run SECONDS` on stdin, ping-pongs on `active` of them
/// for that long and prints `done MESSAGES`. Exits on `quit` or end of input.
pub fn client(args: &[String]) -> io::Result<()> {
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
