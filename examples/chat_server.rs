//! A chat server: every line a client sends goes to every other client. The program the
//! selectors tutorials write after the echo server, with what they leave out: a client that
//! never reads is dropped once its backlog passes a cap, instead of holding the server's memory
//! (or, with Python's `sendall`, blocking everyone).
//!
//! ```text
//! cargo run --example chat_server -- [ADDR]           # default 127.0.0.1:8092
//! cargo run --example echo_client 127.0.0.1:8092      # in two terminals or more: type lines
//! ```
//!
//! Commands: `/nick NAME` (1 to 32 letters, digits, `_` or `-`, not taken), `/quit`. Joins,
//! leaves and renames are announced as lines starting with `* `. A line over 4 KiB ends its
//! sender's connection (logged); a last line without its newline, before the client
//! disconnects, is still passed on. Ctrl-C or SIGTERM stops the server: what is queued goes out,
//! then every client reads end of file.
//!
//! The Python twin, on `selectors` (it blocks every client while `sendall` waits for a slow
//! one, and keeps no limit):
//!
//! ```python
//! import selectors, socket
//! sel, names = selectors.DefaultSelector(), {}
//!
//! def broadcast(line, skip=None):
//!     for sock in names:
//!         if sock is not skip:
//!             sock.sendall(line)
//!
//! def accept(listener):
//!     sock, _ = listener.accept()
//!     sock.setblocking(False)
//!     names[sock] = f"guest{sock.fileno()}"
//!     sel.register(sock, selectors.EVENT_READ, read)
//!     sock.sendall(f"* welcome, {names[sock]}\n".encode())
//!     broadcast(f"* {names[sock]} joined\n".encode(), skip=sock)
//!
//! def read(sock):
//!     data = sock.recv(4096)        # and lines split across reads? and /nick?
//!     if not data:
//!         sel.unregister(sock)
//!         name = names.pop(sock)
//!         sock.close()
//!         broadcast(f"* {name} left\n".encode())
//!     else:
//!         broadcast(f"{names[sock]}: ".encode() + data, skip=sock)
//!
//! listener = socket.create_server(("127.0.0.1", 8092))
//! listener.setblocking(False)
//! sel.register(listener, selectors.EVENT_READ, accept)
//! while True:
//!     for key, mask in sel.select():
//!         key.data(key.fileobj)
//! ```

#[path = "common/cli.rs"]
mod cli;
#[path = "common/shutdown.rs"]
mod shutdown;

use selectloop::{ConnEvent, ConnKey, Connection, DefaultSelector, Limits, LineCodec, Selector};
use selectloop::{Events, EVENT_READ};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

type Conn = Connection<TcpStream, LineCodec>;
type Key = ConnKey<TcpStream, LineCodec>;

const MAX_LINE: usize = 4096;

/// A client's backlog of lines from the others: reading from a client stops at 64 KiB queued
/// for it; a client that does not read for 10 s with over 256 KiB queued, or that reaches
/// 1 MiB, is dropped.
const LIMITS: Limits = Limits {
    high_water: 64 << 10,
    low_water: 16 << 10,
    read_chunk: 16 << 10,
    hard_cap: 1 << 20,
    soft_cap: 256 << 10,
    soft_cap_for: Duration::from_secs(10),
};

/// Who is here: each client's name, by the key of its connection.
#[derive(Default)]
struct Room {
    names: HashMap<Key, String>,
    guests: u64,
}

impl Room {
    /// Queues `line` for every client but `skip`. A client that is closing or over its cap is
    /// skipped; its own callback hears of its end (`Closed`) and announces it.
    fn broadcast(&self, sel: &mut Selector, line: &[u8], skip: Option<Key>) {
        for key in self.names.keys().filter(|&&key| Some(key) != skip) {
            key.send(sel, line);
        }
    }
}

fn accept(sel: &mut Selector, sock: &mut TcpListener, room: &Rc<RefCell<Room>>) -> io::Result<()> {
    let (stream, addr) = sock.accept()?;
    stream.set_nonblocking(true)?;
    let mut conn = Connection::new(stream, LineCodec::new(MAX_LINE)).with_limits(LIMITS)?;
    let name = {
        let mut room = room.borrow_mut();
        room.guests += 1;
        format!("guest{}", room.guests)
    };
    conn.send(format!("* welcome, {name}; /nick NAME to rename, /quit to leave\n").as_bytes())?;
    let r = room.clone();
    let key = conn.register(sel, move |sel, conn, event| on_event(sel, conn, event, &r))?;
    log::info!("{addr} joined as {name}");
    let mut room = room.borrow_mut();
    room.broadcast(sel, format!("* {name} joined\n").as_bytes(), None);
    room.names.insert(key, name);
    Ok(())
}

fn on_event(
    sel: &mut Selector,
    conn: &mut Conn,
    event: ConnEvent<&[u8]>,
    room: &RefCell<Room>,
) -> io::Result<()> {
    let me = conn.key()?;
    let mut room = room.borrow_mut();
    match event {
        ConnEvent::Frame(line) => {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line == b"/quit" {
                conn.send(b"* bye\n")?;
                conn.close(); // then `Closed`, which announces it
            } else if let Some(new) = line.strip_prefix(b"/nick ") {
                rename(sel, conn, &mut room, me, new)?;
            } else if line.starts_with(b"/") {
                conn.send(b"* unknown command; try /nick NAME or /quit\n")?;
            } else {
                let name = room.names.get(&me).map_or("?", String::as_str);
                let mut said = format!("{name}: ").into_bytes();
                said.extend_from_slice(line);
                said.push(b'\n');
                room.broadcast(sel, &said, Some(me));
            }
        }
        ConnEvent::Closed(reason) => {
            let Some(name) = room.names.remove(&me) else {
                return Ok(());
            };
            match reason {
                None => log::info!("{name} left"),
                Some(e) => log::info!("{name} dropped: {e}"),
            }
            room.broadcast(sel, format!("* {name} left\n").as_bytes(), None);
        }
        _ => {} // Drained: nothing waits to be sent; PeerClosed: `Closed` follows
    }
    Ok(())
}

/// `/nick NAME`: renames the client if NAME is valid and free, and tells everyone.
fn rename(
    sel: &mut Selector,
    conn: &mut Conn,
    room: &mut Room,
    me: Key,
    new: &[u8],
) -> io::Result<()> {
    let valid = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-';
    if new.is_empty() || new.len() > 32 || !new.iter().all(valid) {
        return conn.send(b"* a name is 1 to 32 letters, digits, _ or -\n");
    }
    let new = String::from_utf8_lossy(new).into_owned(); // ASCII: checked above
    if room.names.values().any(|name| *name == new) {
        return conn.send(format!("* {new} is taken\n").as_bytes());
    }
    let Some(name) = room.names.get_mut(&me) else {
        return Ok(()); // not in the room: cannot happen before `Closed`
    };
    let notice = format!("* {name} is now {new}\n");
    log::info!("{name} is now {new}");
    *name = new;
    room.broadcast(sel, notice.as_bytes(), Some(me));
    conn.send(notice.as_bytes()) // to itself directly: its key is for the others
}

const USAGE: &str = "usage: chat_server [ADDR]

  ADDR  where to listen (default 127.0.0.1:8092)

Every line a client sends goes to the others. Commands: /nick NAME, /quit. A client that
does not read what it is sent is dropped once 1 MiB waits for it (or 256 KiB for 10 s).
Ctrl-C or SIGTERM stops it, reporting how many connections it closed.";

fn parse_args(parser: &mut lexopt::Parser) -> Result<String, lexopt::Error> {
    use lexopt::prelude::*;
    let mut addr = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Value(value) if addr.is_none() => addr = Some(cli::addr(value)?),
            Short('h') | Long("help") => cli::help(USAGE),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(addr.unwrap_or_else(|| "127.0.0.1:8092".into()))
}

fn main() -> ExitCode {
    let addr = cli::parse(USAGE, parse_args);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli::status(serve(&addr))
}

fn serve(addr: &str) -> io::Result<()> {
    let mut sel = DefaultSelector::new()?;
    let sock = TcpListener::bind(addr).map_err(cli::about(addr))?;
    sock.set_nonblocking(true)?;
    let addr = sock.local_addr()?; // the real port, if ADDR asked for port 0
    let room = Rc::new(RefCell::new(Room::default()));
    let listener = sel.register(sock, EVENT_READ, move |sel, sock, _: Events| {
        accept(sel, sock, &room)
    })?;
    shutdown::stop_on_signals(&mut sel)?;
    eprintln!("chat server on {addr}; try: cargo run --example echo_client {addr}");

    sel.run()?; // until Ctrl-C or SIGTERM; `run`, not `select`, fires the soft cap's timer
    shutdown::close::<TcpStream, LineCodec>(sel, &[listener])
}
