//! The commands: each request's arguments in, its reply out, in Redis's words (the error
//! texts were checked against redis-server 7.0).
//!
//! # Replies too large
//!
//! A reply goes out whole or not at all: a client reading a reply cut short would take the
//! next one for the rest of it. The server caps what it queues for a client (`--max-output`)
//! and runs a request only while at most the high-water mark is queued (`main.rs`), so a reply
//! of up to `max_reply` (the cap less that mark) always fits. A command whose reply could be
//! larger computes its size first, under the locks it then writes it under, and if it is over
//! `max_reply` answers `-ERR reply of N bytes is over the M-byte limit (--max-output less the
//! high-water mark)` instead, having changed nothing a client could see: MGET (many large
//! values), CONFIG GET (its arguments echoed) and INFO (under 1 KiB, but `--max-bulk` may be
//! set smaller). Redis has no such limit for ordinary clients. GET, ECHO and PING reply with
//! at most one argument's worth (`--max-bulk`), which `--max-output` must leave room for.

use crate::info;
use crate::resp::{self, array, bulk, error, integer, null, ok, parse_i64, Args, Sink};
use crate::store::{Clock, Found, Session, Shard};

/// What the connection does after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// `QUIT`: reply, then close once the replies are written.
    Quit,
    /// Not run: its reply would have been `size` bytes, over the limit. An error reply was
    /// written instead.
    TooLarge {
        size: usize,
    },
}

const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const SYNTAX: &str = "ERR syntax error";
const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

/// A connection's own state, for `CLIENT` and `HELLO`.
#[derive(Debug)]
pub struct Client {
    /// `CLIENT ID`: unique to the connection, increasing with every connection to any loop
    /// (`Stats::next_client_id`).
    id: u64,
    /// `CLIENT SETNAME`'s, if any.
    name: Option<Vec<u8>>,
}

impl Client {
    pub fn new(id: u64) -> Client {
        Client { id, name: None }
    }
}

/// Runs one request, writing its reply to `out`; a reply over `max_reply` bytes is refused
/// (see the module docs). A command run is counted (`INFO`'s `total_commands_processed`) once
/// it has run, as in Redis; one refused before it runs (unknown, a wrong number of
/// arguments, an unknown subcommand) is not.
pub fn execute(
    cmd: Args<'_>,
    db: &mut Session<'_>,
    out: &mut impl Sink,
    client: &mut Client,
    max_reply: usize,
) -> Flow {
    match dispatch(cmd, db, out, client, max_reply) {
        Some(flow) => {
            db.count_command();
            flow
        }
        None => Flow::Continue,
    }
}

/// Runs one request; `None` if it was refused before running (its error is written).
fn dispatch(
    cmd: Args<'_>,
    db: &mut Session<'_>,
    out: &mut impl Sink,
    client: &mut Client,
    max_reply: usize,
) -> Option<Flow> {
    let (name, argc) = (cmd.get(0), cmd.len());
    // Command names are case-insensitive: matched in capitals, copied to the stack.
    let mut upper = [0u8; 8];
    let name = match upper.get_mut(..name.len()) {
        Some(upper) => {
            for (u, b) in upper.iter_mut().zip(name) {
                *u = b.to_ascii_uppercase();
            }
            &*upper
        }
        None => b"", // longer than any command here
    };
    match name {
        b"GET" if argc == 2 => get(db, cmd.get(1), out),
        b"SET" if argc >= 3 => set(db, cmd, out),
        b"PING" if argc <= 2 => match argc {
            1 => out.put(b"+PONG\r\n"),
            _ => bulk(out, cmd.get(1)),
        },
        b"ECHO" if argc == 2 => bulk(out, cmd.get(1)),
        b"INCR" if argc == 2 => incr_by(db, cmd.get(1), 1, out),
        b"DECR" if argc == 2 => incr_by(db, cmd.get(1), -1, out),
        b"INCRBY" if argc == 3 => match parse_i64(cmd.get(2)) {
            Some(by) => incr_by(db, cmd.get(1), by, out),
            None => error(out, NOT_INTEGER),
        },
        b"DECRBY" if argc == 3 => match parse_i64(cmd.get(2)) {
            // Redis refuses to negate the least i64 before looking at the key.
            Some(i64::MIN) => error(out, "ERR decrement would overflow"),
            Some(by) => incr_by(db, cmd.get(1), -by, out),
            None => error(out, NOT_INTEGER),
        },
        b"STRLEN" if argc == 2 => strlen(db, cmd.get(1), out),
        b"APPEND" if argc == 3 => append(db, cmd.get(1), cmd.get(2), out),
        b"GETDEL" if argc == 2 => getdel(db, cmd.get(1), out),
        b"GETSET" if argc == 3 => getset(db, cmd.get(1), cmd.get(2), out),
        b"PERSIST" if argc == 2 => persist(db, cmd.get(1), out),
        b"DEL" if argc >= 2 => del(db, cmd, out),
        b"EXISTS" if argc >= 2 => exists(db, cmd, out),
        b"MGET" if argc >= 2 => return Some(mget(db, cmd, out, max_reply)),
        b"MSET" if argc >= 3 && argc % 2 == 1 => mset(db, cmd, out),
        b"EXPIRE" if argc >= 3 => expire(db, cmd, 1000, out),
        b"PEXPIRE" if argc >= 3 => expire(db, cmd, 1, out),
        b"TTL" if argc == 2 => ttl(db, cmd.get(1), 1000, out),
        b"PTTL" if argc == 2 => ttl(db, cmd.get(1), 1, out),
        b"DBSIZE" if argc == 1 => {
            let mut keys = 0;
            db.with_all(|locked, _| locked.each(|shard| keys += shard.len()));
            integer(out, keys as i64);
        }
        b"FLUSHDB" => flushdb(db, cmd, out),
        b"QUIT" => {
            ok(out);
            return Some(Flow::Quit);
        }
        b"INFO" => return Some(info(cmd, db, out, max_reply)),
        // redis-cli and redis-benchmark ask for the command table at start: there is none.
        b"COMMAND" => array(out, 0),
        b"CONFIG" if argc >= 2 => return config(cmd, out, max_reply),
        b"CLIENT" if argc >= 2 => return client_command(cmd, client, out),
        b"HELLO" => return Some(hello(cmd, client, out, max_reply)),
        b"GET" | b"SET" | b"PING" | b"ECHO" | b"INCR" | b"DECR" | b"DEL" | b"EXISTS" | b"MGET"
        | b"MSET" | b"EXPIRE" | b"TTL" | b"DBSIZE" | b"CONFIG" | b"INCRBY" | b"DECRBY"
        | b"STRLEN" | b"APPEND" | b"GETDEL" | b"GETSET" | b"PERSIST" | b"PEXPIRE" | b"PTTL"
        | b"CLIENT" => {
            wrong_arity(out, name);
            return None;
        }
        _ => {
            unknown(cmd, out);
            return None;
        }
    }
    Some(Flow::Continue)
}

fn get(db: &mut Session<'_>, key: &[u8], out: &mut impl Sink) {
    let (shard, clock) = db.shard(key);
    reply_value(shard, key, clock, out);
}

/// GET's reply for `key` (and each of MGET's): its value, or nil; an expired key is deleted.
/// Counted as a keyspace hit or miss.
fn reply_value(shard: &mut Shard, key: &[u8], clock: &mut Clock, out: &mut impl Sink) {
    let hit = match shard.find(key, clock) {
        Found::Live(entry) => {
            bulk(out, &entry.value);
            true
        }
        Found::Expired => {
            shard.remove_expired(key);
            null(out);
            false
        }
        Found::Missing => {
            null(out);
            false
        }
    };
    shard.count_lookup(hit);
}

/// How `SET` was told to set a deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    /// `EX seconds`, `PX milliseconds`: from now.
    Ex,
    Px,
    /// `EXAT`, `PXAT`: a Unix time, in seconds or milliseconds.
    ExAt,
    PxAt,
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT unix-s | PXAT unix-ms | KEEPTTL]`,
/// options in any order, as Redis 7.0 parses them: the same option twice is allowed (the last
/// value counts), two kinds of deadline or a deadline with `KEEPTTL` are a syntax error, and
/// `GET` goes with `NX` or `XX` (Redis 7.0 allows `NX GET`: the old value is answered, and
/// the key left as it is when it exists). With `GET` the reply is the old value (or nil), and
/// the lookup counts as a keyspace hit or miss, as GET's.
fn set(db: &mut Session<'_>, cmd: Args<'_>, out: &mut impl Sink) {
    let (mut nx, mut xx, mut get, mut keep_ttl) = (false, false, false, false);
    let mut expire: Option<(&[u8], Deadline)> = None;
    let mut j = 3;
    while j < cmd.len() {
        let (opt, has_next) = (cmd.get(j), j + 1 < cmd.len());
        let kind = [
            (&b"EX"[..], Deadline::Ex),
            (b"PX", Deadline::Px),
            (b"EXAT", Deadline::ExAt),
            (b"PXAT", Deadline::PxAt),
        ]
        .into_iter()
        .find(|(name, _)| opt.eq_ignore_ascii_case(name))
        .map(|(_, kind)| kind);
        if opt.eq_ignore_ascii_case(b"NX") && !xx {
            nx = true;
        } else if opt.eq_ignore_ascii_case(b"XX") && !nx {
            xx = true;
        } else if opt.eq_ignore_ascii_case(b"GET") {
            get = true;
        } else if opt.eq_ignore_ascii_case(b"KEEPTTL") && expire.is_none() {
            keep_ttl = true;
        } else if let Some(kind) =
            kind.filter(|&kind| !keep_ttl && has_next && expire.is_none_or(|(_, set)| set == kind))
        {
            expire = Some((cmd.get(j + 1), kind));
            j += 1;
        } else {
            return error(out, SYNTAX);
        }
        j += 1;
    }
    let at = match expire {
        None => None,
        Some((value, kind)) => {
            let invalid = "ERR invalid expire time in 'set' command";
            let Some(n) = parse_i64(value) else {
                return error(out, NOT_INTEGER);
            };
            if n <= 0 {
                return error(out, invalid);
            }
            let ms = match kind {
                Deadline::Ex | Deadline::ExAt => n.checked_mul(1000),
                Deadline::Px | Deadline::PxAt => Some(n),
            };
            let at = match kind {
                Deadline::Ex | Deadline::Px => ms.and_then(|ms| ms.checked_add(db.clock.now())),
                Deadline::ExAt | Deadline::PxAt => ms,
            };
            match at {
                Some(at) => Some(at),
                None => return error(out, invalid),
            }
        }
    };
    let key = cmd.get(1);
    let (shard, clock) = db.shard(key);
    if get {
        reply_value(shard, key, clock, out); // deletes the key if expired
    }
    let mut at = at;
    if nx || xx || keep_ttl {
        // `Some(deadline)` if the key exists.
        let current = match shard.find(key, clock) {
            Found::Live(entry) => Some(entry.expires_at()),
            Found::Expired => {
                shard.remove_expired(key);
                None
            }
            Found::Missing => None,
        };
        if (nx || xx) && current.is_some() != xx {
            // NX and it exists, or XX and it does not: not set.
            if !get {
                null(out);
            }
            return;
        }
        if keep_ttl {
            at = current.flatten();
        }
    }
    shard.set(key, cmd.get(2), at, clock);
    if !get {
        ok(out);
    }
}

/// `now` plus `n` units of `unit` ms, unless that overflows.
fn deadline(n: i64, unit: i64, now: i64) -> Option<i64> {
    n.checked_mul(unit)?.checked_add(now)
}

fn incr_by(db: &mut Session<'_>, key: &[u8], by: i64, out: &mut impl Sink) {
    let (shard, clock) = db.shard(key);
    match shard.find(key, clock) {
        Found::Live(entry) => {
            let Some(n) = parse_i64(&entry.value) else {
                return error(out, NOT_INTEGER);
            };
            let Some(n) = n.checked_add(by) else {
                return error(out, "ERR increment or decrement would overflow");
            };
            let before = entry.value.capacity();
            entry.value.clear();
            entry.value.extend_from_slice(resp::itoa(n, &mut [0; 20]));
            let after = entry.value.capacity();
            shard.value_resized(before, after);
            return integer(out, n); // its deadline stays, as in Redis
        }
        Found::Expired => shard.remove_expired(key),
        Found::Missing => {}
    }
    shard.set(key, resp::itoa(by, &mut [0; 20]), None, clock);
    integer(out, by);
}

fn del(db: &mut Session<'_>, cmd: Args<'_>, out: &mut impl Sink) {
    let deleted = db.with_keys(cmd.iter(1), |locked, clock| {
        // An expired key counts as already gone (`exists` deletes it).
        let mut gone = |key: &[u8]| {
            let shard = locked.shard(key);
            shard.exists(key, clock) && shard.remove(key)
        };
        cmd.iter(1).filter(|key| gone(key)).count()
    });
    integer(out, deleted as i64);
}

fn exists(db: &mut Session<'_>, cmd: Args<'_>, out: &mut impl Sink) {
    let found = db.with_keys(cmd.iter(1), |locked, clock| {
        let mut exists = |key: &[u8]| {
            let shard = locked.shard(key);
            let found = shard.exists(key, clock);
            shard.count_lookup(found);
            found
        };
        cmd.iter(1).filter(|key| exists(key)).count()
    });
    integer(out, found as i64); // a key named twice counts twice, as in Redis
}

/// The size of [`reply_value`]'s reply for `key`; an expired key is deleted.
fn value_size(shard: &mut Shard, key: &[u8], clock: &mut Clock) -> usize {
    match shard.find(key, clock) {
        Found::Live(entry) => resp::bulk_size(entry.value.len()),
        Found::Expired => {
            shard.remove_expired(key);
            resp::NULL_SIZE
        }
        Found::Missing => resp::NULL_SIZE,
    }
}

/// MGET's reply is sized first, under the same locks (so the same values), and written only
/// if it fits: never a header followed by fewer items. (The keyspace hits and misses are
/// counted as it is written: a refused MGET counts none.)
fn mget(db: &mut Session<'_>, cmd: Args<'_>, out: &mut impl Sink, max_reply: usize) -> Flow {
    db.with_keys(cmd.iter(1), |locked, clock| {
        let mut size = resp::array_size(cmd.len() - 1);
        for key in cmd.iter(1) {
            size = size.saturating_add(value_size(locked.shard(key), key, clock));
        }
        if size > max_reply {
            return too_large(out, size, max_reply);
        }
        array(out, cmd.len() - 1);
        for key in cmd.iter(1) {
            reply_value(locked.shard(key), key, clock, out);
        }
        Flow::Continue
    })
}

/// The error for a reply of `size` bytes, over `max_reply`.
fn too_large(out: &mut impl Sink, size: usize, max_reply: usize) -> Flow {
    let text = format!(
        "ERR reply of {size} bytes is over the {max_reply}-byte limit (--max-output less the \
         high-water mark)"
    );
    error(out, &text);
    Flow::TooLarge { size }
}

fn mset(db: &mut Session<'_>, cmd: Args<'_>, out: &mut impl Sink) {
    let keys = cmd.iter(1).step_by(2);
    db.with_keys(keys, |locked, clock| {
        for i in (1..cmd.len()).step_by(2) {
            let key = cmd.get(i);
            locked.shard(key).set(key, cmd.get(i + 1), None, clock);
        }
    });
    ok(out);
}

/// `EXPIRE key seconds [NX | XX | GT | LT]` (`unit` 1000) and `PEXPIRE key ms [...]` (`unit`
/// 1): 1 if the deadline was set, 0 if there is no key or the option said no (`NX`: it has a
/// deadline; `XX`: it has none; `GT`: the new one is not later, no deadline counting as
/// infinite; `LT`: not earlier). A deadline already past deletes the key (and answers 1). The
/// options are checked first, then the number, as Redis 7.0 does.
fn expire(db: &mut Session<'_>, cmd: Args<'_>, unit: i64, out: &mut impl Sink) {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in cmd.iter(3) {
        if opt.eq_ignore_ascii_case(b"NX") {
            nx = true;
        } else if opt.eq_ignore_ascii_case(b"XX") {
            xx = true;
        } else if opt.eq_ignore_ascii_case(b"GT") {
            gt = true;
        } else if opt.eq_ignore_ascii_case(b"LT") {
            lt = true;
        } else {
            out.put(b"-ERR Unsupported option ");
            put_sanitized(out, c_string(opt), usize::MAX);
            out.put(b"\r\n");
            return;
        }
    }
    if nx && (xx || gt || lt) {
        return error(
            out,
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        );
    }
    if gt && lt {
        return error(
            out,
            "ERR GT and LT options at the same time are not compatible",
        );
    }
    let Some(n) = parse_i64(cmd.get(2)) else {
        return error(out, NOT_INTEGER);
    };
    let Some(at) = deadline(n, unit, db.clock.now()) else {
        return error(
            out,
            if unit == 1 {
                "ERR invalid expire time in 'pexpire' command"
            } else {
                "ERR invalid expire time in 'expire' command"
            },
        );
    };
    let key = cmd.get(1);
    let (shard, clock) = db.shard(key);
    let current = match shard.find(key, clock) {
        Found::Live(entry) => entry.expires_at(),
        Found::Expired => {
            shard.remove_expired(key);
            return integer(out, 0);
        }
        Found::Missing => return integer(out, 0),
    };
    let refused = match current {
        Some(current) => nx || (gt && at <= current) || (lt && at >= current),
        None => xx || gt, // no deadline: infinite, so never GT, always LT
    };
    if refused {
        return integer(out, 0);
    }
    if at <= clock.now() {
        shard.remove(key);
    } else {
        shard.set_expiry(key, Some(at));
    }
    integer(out, 1);
}

/// `TTL` (`unit` 1000: seconds left, rounded) and `PTTL` (`unit` 1: milliseconds left); -1
/// for no deadline, -2 for no key.
fn ttl(db: &mut Session<'_>, key: &[u8], unit: i64, out: &mut impl Sink) {
    let (shard, clock) = db.shard(key);
    let ttl = match shard.find(key, clock) {
        Found::Live(entry) => match entry.expires_at() {
            Some(at) => (at - clock.now() + unit / 2) / unit,
            None => -1,
        },
        Found::Expired => {
            shard.remove_expired(key);
            -2
        }
        Found::Missing => -2,
    };
    shard.count_lookup(ttl != -2);
    integer(out, ttl);
}

/// `STRLEN key`: the value's length, 0 for no key (a keyspace hit or miss, as in Redis).
fn strlen(db: &mut Session<'_>, key: &[u8], out: &mut impl Sink) {
    let (shard, clock) = db.shard(key);
    let len = match shard.find(key, clock) {
        Found::Live(entry) => Some(entry.value.len()),
        Found::Expired => {
            shard.remove_expired(key);
            None
        }
        Found::Missing => None,
    };
    shard.count_lookup(len.is_some());
    integer(out, len.unwrap_or(0) as i64);
}

/// `APPEND key value`: the new length. The deadline stays. A value may not grow past
/// `--max-bulk` (Redis: `proto-max-bulk-len`), so that a GET of it always fits (see the module
/// docs). Not a keyspace lookup, as in Redis.
fn append(db: &mut Session<'_>, key: &[u8], value: &[u8], out: &mut impl Sink) {
    let max_bulk = db.store().max_bulk();
    let (shard, clock) = db.shard(key);
    match shard.find(key, clock) {
        Found::Live(entry) => {
            let len = entry.value.len().saturating_add(value.len());
            if len > max_bulk {
                return error(
                    out,
                    "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                );
            }
            let before = entry.value.capacity();
            entry.value.extend_from_slice(value);
            let after = entry.value.capacity();
            shard.value_resized(before, after);
            return integer(out, len as i64);
        }
        Found::Expired => shard.remove_expired(key),
        Found::Missing => {}
    }
    shard.set(key, value, None, clock);
    integer(out, value.len() as i64);
}

/// `GETDEL key`: the value (or nil), and the key deleted; a keyspace hit or miss.
fn getdel(db: &mut Session<'_>, key: &[u8], out: &mut impl Sink) {
    let (shard, clock) = db.shard(key);
    reply_value(shard, key, clock, out); // an expired key is deleted there
    shard.remove(key);
}

/// `GETSET key value`: the old value (or nil), and the key set, its deadline cleared (as
/// `SET key value GET`); a keyspace hit or miss.
fn getset(db: &mut Session<'_>, key: &[u8], value: &[u8], out: &mut impl Sink) {
    let (shard, clock) = db.shard(key);
    reply_value(shard, key, clock, out);
    shard.set(key, value, None, clock);
}

/// `PERSIST key`: 1 if the key had a deadline (now gone), else 0. Not a keyspace lookup.
fn persist(db: &mut Session<'_>, key: &[u8], out: &mut impl Sink) {
    let (shard, clock) = db.shard(key);
    let had = match shard.find(key, clock) {
        Found::Live(entry) => entry.expires_at().is_some(),
        Found::Expired => {
            shard.remove_expired(key);
            false
        }
        Found::Missing => false,
    };
    if had {
        shard.set_expiry(key, None);
    }
    integer(out, had as i64);
}

/// `FLUSHDB [ASYNC | SYNC]` (both synchronous here).
fn flushdb(db: &mut Session<'_>, cmd: Args<'_>, out: &mut impl Sink) {
    let mode = cmd.get(1);
    let valid = cmd.len() == 1
        || (cmd.len() == 2
            && (mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC")));
    if !valid {
        return error(out, SYNTAX);
    }
    db.with_all(|locked, _| locked.each(|shard| shard.clear()));
    ok(out);
}

/// `INFO [section ...]`: see `info.rs`.
fn info(cmd: Args<'_>, db: &mut Session<'_>, out: &mut impl Sink, max_reply: usize) -> Flow {
    let text = info::render(cmd, db);
    let size = resp::bulk_size(text.len());
    if size > max_reply {
        return too_large(out, size, max_reply);
    }
    bulk(out, text.as_bytes());
    Flow::Continue
}

/// `CONFIG GET parameter...`: what redis-benchmark asks (`save`, `appendonly`), with the
/// values of a server that never writes to disk; other parameters are not listed. Each one
/// named is echoed, so the reply is sized first. `None` if refused before running (an unknown
/// subcommand, no parameter), as Redis refuses it.
fn config(cmd: Args<'_>, out: &mut impl Sink, max_reply: usize) -> Option<Flow> {
    let sub = cmd.get(1);
    if !sub.eq_ignore_ascii_case(b"GET") {
        out.put(b"-ERR unknown subcommand '");
        put_sanitized(out, c_string(sub), 128);
        out.put(b"'. Try CONFIG HELP.\r\n");
        return None;
    }
    if cmd.len() < 3 {
        error(
            out,
            "ERR wrong number of arguments for 'config|get' command",
        );
        return None;
    }
    let value = |name: &[u8]| -> Option<&'static [u8]> {
        if name.eq_ignore_ascii_case(b"save") {
            Some(b"")
        } else if name.eq_ignore_ascii_case(b"appendonly") {
            Some(b"no")
        } else {
            None
        }
    };
    let (mut known, mut size) = (0, 0usize);
    for name in cmd.iter(2) {
        if let Some(value) = value(name) {
            known += 1;
            size = size.saturating_add(resp::bulk_size(name.len()) + resp::bulk_size(value.len()));
        }
    }
    let size = size.saturating_add(resp::array_size(2 * known));
    if size > max_reply {
        return Some(too_large(out, size, max_reply));
    }
    array(out, 2 * known);
    for name in cmd.iter(2) {
        if let Some(value) = value(name) {
            bulk(out, name);
            bulk(out, value);
        }
    }
    Some(Flow::Continue)
}

/// `CLIENT SETNAME name`, `CLIENT GETNAME`, `CLIENT ID`, of this connection. `None` if
/// refused before running (an unknown subcommand, a wrong number of arguments), as Redis
/// refuses it.
fn client_command(cmd: Args<'_>, client: &mut Client, out: &mut impl Sink) -> Option<Flow> {
    let sub = cmd.get(1);
    let (name, arity) = if sub.eq_ignore_ascii_case(b"SETNAME") {
        ("setname", 3)
    } else if sub.eq_ignore_ascii_case(b"GETNAME") {
        ("getname", 2)
    } else if sub.eq_ignore_ascii_case(b"ID") {
        ("id", 2)
    } else {
        out.put(b"-ERR unknown subcommand '");
        put_sanitized(out, c_string(sub), 128);
        out.put(b"'. Try CLIENT HELP.\r\n");
        return None;
    };
    if cmd.len() != arity {
        out.put(b"-ERR wrong number of arguments for 'client|");
        out.put(name.as_bytes());
        out.put(b"' command\r\n");
        return None;
    }
    match name {
        "setname" => {
            if set_name(client, cmd.get(2), out) {
                ok(out);
            }
        }
        "getname" => match &client.name {
            Some(name) => bulk(out, name),
            None => null(out),
        },
        _ => integer(out, client.id as i64),
    }
    Some(Flow::Continue)
}

/// Names the connection (an empty name clears it), as Redis's `clientSetName`: true, or
/// false with the error written if `name` has a byte outside `!`..`~`.
fn set_name(client: &mut Client, name: &[u8], out: &mut impl Sink) -> bool {
    if !name.iter().all(|b| (b'!'..=b'~').contains(b)) {
        error(out, BAD_NAME);
        return false;
    }
    client.name = (!name.is_empty()).then(|| name.to_vec());
    true
}

/// `HELLO [protover [AUTH username password] [SETNAME name]]`, RESP2 only: Redis 7.0's reply
/// for protocol 2 (the id is `CLIENT ID`'s, the version `INFO`'s), and its errors; any other
/// version is `-NOPROTO`, as Redis answers one it does not speak. The options are taken in
/// order, as Redis takes them, each acting at once (a name is set even if a later option is a
/// syntax error); `AUTH` succeeds for the user `default`, with any password, as with Redis's
/// default configuration (no password), and fails for any other user. The syntax error
/// echoes the option whole, as Redis does, so it is sized first.
fn hello(cmd: Args<'_>, client: &mut Client, out: &mut impl Sink, max_reply: usize) -> Flow {
    if cmd.len() >= 2 {
        match parse_i64(cmd.get(1)) {
            None => {
                error(
                    out,
                    "ERR Protocol version is not an integer or out of range",
                );
                return Flow::Continue;
            }
            Some(2) => {}
            Some(_) => {
                error(out, "NOPROTO unsupported protocol version");
                return Flow::Continue;
            }
        }
    }
    let mut j = 2;
    while j < cmd.len() {
        let (option, more) = (cmd.get(j), cmd.len() - 1 - j);
        if option.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            if cmd.get(j + 1) != b"default" {
                error(
                    out,
                    "WRONGPASS invalid username-password pair or user is disabled.",
                );
                return Flow::Continue;
            }
            j += 3;
        } else if option.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            if !set_name(client, cmd.get(j + 1), out) {
                return Flow::Continue;
            }
            j += 2;
        } else {
            let (head, tail) = (&b"-ERR Syntax error in HELLO option '"[..], &b"'\r\n"[..]);
            let option = c_string(option);
            let size = head.len() + option.len() + tail.len();
            if size > max_reply {
                return too_large(out, size, max_reply);
            }
            out.put(head);
            put_sanitized(out, option, option.len());
            out.put(tail);
            return Flow::Continue;
        }
    }
    array(out, 14);
    bulk(out, b"server");
    bulk(out, b"redis");
    bulk(out, b"version");
    bulk(out, info::REDIS_VERSION.as_bytes());
    bulk(out, b"proto");
    integer(out, 2);
    bulk(out, b"id");
    integer(out, client.id as i64);
    bulk(out, b"mode");
    bulk(out, b"standalone");
    bulk(out, b"role");
    bulk(out, b"master");
    bulk(out, b"modules");
    array(out, 0);
    Flow::Continue
}

/// `-ERR wrong number of arguments for 'get' command`
fn wrong_arity(out: &mut impl Sink, upper: &[u8]) {
    out.put(b"-ERR wrong number of arguments for '");
    for &b in upper {
        out.put(&[b.to_ascii_lowercase()]);
    }
    out.put(b"' command\r\n");
}

/// `-ERR unknown command 'FOO', with args beginning with: 'a' 'b' `, cut as Redis cuts it:
/// the name to 128 bytes, the arguments to 128 bytes of text in all.
fn unknown(cmd: Args<'_>, out: &mut impl Sink) {
    out.put(b"-ERR unknown command '");
    put_sanitized(out, c_string(cmd.get(0)), 128);
    out.put(b"', with args beginning with: ");
    let mut text = 0; // the length of the argument text so far
    for arg in cmd.iter(1) {
        if text >= 128 {
            break;
        }
        let arg = c_string(arg);
        let shown = arg.len().min(128 - text);
        out.put(b"'");
        put_sanitized(out, arg, shown);
        out.put(b"' ");
        text += shown + 3;
    }
    out.put(b"\r\n");
}

/// The bytes before the first NUL: what Redis prints of an argument (a C string there).
fn c_string(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

/// At most `max` bytes of `bytes`, CR and LF as spaces (they would end the error line).
fn put_sanitized(out: &mut impl Sink, bytes: &[u8], max: usize) {
    let bytes = &bytes[..bytes.len().min(max)];
    for piece in bytes.split_inclusive(|&b| b == b'\r' || b == b'\n') {
        match piece.split_last() {
            Some((b'\r' | b'\n', rest)) => {
                out.put(rest);
                out.put(b" ");
            }
            _ => out.put(piece),
        }
    }
}
