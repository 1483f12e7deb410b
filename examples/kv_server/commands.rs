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

use crate::resp::{
    self, array, bulk, error, integer, map, null, ok, parse_i64, Args, Batch, Resp3, Sink,
};
use crate::store::{Clock, Found, Locked, Session, Shard, DATABASES};
use crate::{glob, info};

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

/// A connection's own state: its id and name (`CLIENT`, `HELLO`), its database (`SELECT`)
/// and its transaction (`MULTI`).
#[derive(Debug)]
pub struct Client {
    /// `CLIENT ID`: unique to the connection, increasing with every connection to any loop
    /// (`Stats::next_client_id`).
    id: u64,
    /// `CLIENT SETNAME`'s, if any.
    name: Option<Vec<u8>>,
    /// The database selected (`SELECT`; 0 at first, as in Redis).
    db: usize,
    /// The transaction being queued, between `MULTI` and `EXEC` or `DISCARD`.
    multi: Option<Transaction>,
    /// The most bytes a transaction may queue (`--max-request`).
    max_queued: usize,
    /// Replies in RESP3 (`HELLO 3`), not RESP2.
    resp3: bool,
}

impl Client {
    /// A client numbered `id`, whose transactions may queue up to `max_queued` bytes of
    /// commands.
    pub fn new(id: u64, max_queued: usize) -> Client {
        Client {
            id,
            name: None,
            db: 0,
            multi: None,
            max_queued,
            resp3: false,
        }
    }

    /// The database selected.
    pub fn db(&self) -> usize {
        self.db
    }
}

/// The commands queued since `MULTI` (copies of their arguments), and whether one was
/// refused: then `EXEC` discards them all, as Redis does.
#[derive(Debug, Default)]
struct Transaction {
    queued: Batch,
    failed: bool,
}

/// Runs one request, writing its reply to `out`; a reply over `max_reply` bytes is refused
/// (see the module docs). In a transaction, queues it instead (see [`queue`]). A command run
/// is counted (`INFO`'s `total_commands_processed`) once it has run, as in Redis; one
/// refused before it runs (unknown, a wrong number of arguments, an unknown subcommand) is
/// not, nor one queued (it counts when `EXEC` runs it).
pub fn execute(
    cmd: Args<'_>,
    db: &mut Session<'_>,
    out: &mut impl Sink,
    client: &mut Client,
    max_reply: usize,
) -> Flow {
    let mut upper = [0u8; 8];
    let name = upper_name(cmd.get(0), &mut upper);
    if client.multi.is_some() && !matches!(name, b"EXEC" | b"DISCARD" | b"MULTI" | b"QUIT") {
        queue(name, cmd, client, out);
        return Flow::Continue;
    }
    let ran = match client.resp3 {
        false => dispatch(name, cmd, db, out, client, max_reply),
        true => dispatch(name, cmd, db, &mut Resp3(out), client, max_reply),
    };
    match ran {
        Some(flow) => {
            db.count_command();
            flow
        }
        None => {
            // A `MULTI` or `DISCARD` refused in a transaction dooms it, as any command.
            if let Some(tx) = client.multi.as_mut() {
                tx.failed = true;
            }
            Flow::Continue
        }
    }
}

/// A command name in capitals, copied to `upper` (names are case-insensitive); empty if
/// longer than any command here.
fn upper_name<'u>(name: &[u8], upper: &'u mut [u8; 8]) -> &'u [u8] {
    match upper.get_mut(..name.len()) {
        Some(upper) => {
            for (u, b) in upper.iter_mut().zip(name) {
                *u = b.to_ascii_uppercase();
            }
            upper
        }
        None => b"",
    }
}

/// Each command's number of arguments, its name included, as Redis's command table gives it:
/// `n` exactly, or `-n` for at least `n`. `None` for a command kv_server does not have.
fn arity(upper: &[u8]) -> Option<i32> {
    Some(match upper {
        b"GET" | b"ECHO" | b"INCR" | b"DECR" | b"STRLEN" | b"GETDEL" | b"PERSIST" | b"TTL"
        | b"PTTL" | b"SELECT" | b"KEYS" | b"TYPE" => 2,
        b"INCRBY" | b"DECRBY" | b"APPEND" | b"GETSET" => 3,
        b"DBSIZE" | b"MULTI" | b"EXEC" | b"DISCARD" | b"TIME" => 1,
        b"SET" | b"MSET" | b"EXPIRE" | b"PEXPIRE" => -3,
        b"DEL" | b"EXISTS" | b"MGET" | b"CONFIG" | b"CLIENT" | b"SCAN" => -2,
        b"PING" | b"FLUSHDB" | b"FLUSHALL" | b"QUIT" | b"INFO" | b"COMMAND" | b"HELLO" => -1,
        _ => return None,
    })
}

/// In a transaction: queues `cmd` (`+QUEUED`), unless Redis would refuse it before running
/// it (an unknown command, a wrong number of arguments, an unknown subcommand), or it would
/// take the transaction past `--max-request` bytes (kv_server's bound on what a client may
/// make it hold; Redis has none): then its error is the reply, and the transaction is marked
/// to be discarded by `EXEC`, as Redis marks it.
fn queue(name: &[u8], cmd: Args<'_>, client: &mut Client, out: &mut impl Sink) {
    let Some(tx) = client.multi.as_mut() else {
        return;
    };
    let refused = match arity(name) {
        None => {
            unknown(cmd, out);
            true
        }
        Some(n) if n >= 0 && cmd.len() != n as usize || cmd.len() < n.unsigned_abs() as usize => {
            wrong_arity(out, name);
            true
        }
        Some(_) => match name {
            b"CLIENT" => client_subcommand(cmd, out).is_none(),
            b"CONFIG" => !config_get_valid(cmd, out),
            _ => false,
        },
    };
    if refused {
        tx.failed = true;
        return;
    }
    let size = cmd.iter(0).map(|arg| arg.len() + 16).sum::<usize>();
    if tx.queued.size().saturating_add(size) > client.max_queued {
        let text = format!(
            "ERR transaction over the {}-byte limit (--max-request): command not queued",
            client.max_queued
        );
        error(out, &text);
        tx.failed = true;
        return;
    }
    tx.queued.push(cmd);
    out.put(b"+QUEUED\r\n");
}

/// Runs one request, its name `name` in capitals; `None` if it was refused before running
/// (its error is written).
fn dispatch(
    name: &[u8],
    cmd: Args<'_>,
    db: &mut Session<'_>,
    out: &mut impl Sink,
    client: &mut Client,
    max_reply: usize,
) -> Option<Flow> {
    let argc = cmd.len();
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
            db.with_db(|locked, _| locked.each(|_, shard| keys += shard.len()));
            integer(out, keys as i64);
        }
        b"TIME" if argc == 1 => time(out),
        b"TYPE" if argc == 2 => key_type(db, cmd.get(1), out),
        b"FLUSHDB" => flush(db, cmd, false, out),
        b"FLUSHALL" => flush(db, cmd, true, out),
        b"SELECT" if argc == 2 => select(db, client, cmd.get(1), out),
        b"KEYS" if argc == 2 => return Some(keys(db, cmd.get(1), out, max_reply)),
        b"SCAN" if argc >= 2 => return Some(scan(db, cmd, out, max_reply)),
        b"MULTI" if argc == 1 => match client.multi {
            Some(_) => error(out, "ERR MULTI calls can not be nested"),
            None => {
                client.multi = Some(Transaction::default());
                ok(out);
            }
        },
        b"DISCARD" if argc == 1 => match client.multi.take() {
            Some(_) => ok(out),
            None => error(out, "ERR DISCARD without MULTI"),
        },
        b"EXEC" if argc == 1 => return Some(exec(db, out, client, max_reply)),
        b"EXEC" => {
            // Redis discards the transaction, if any, with this error.
            client.multi = None;
            error(
                out,
                "EXECABORT Transaction discarded because of: wrong number of arguments for \
                 'exec' command",
            );
            return None;
        }
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
        // A command's arms above take the numbers of arguments it may have: any other is
        // refused, as Redis refuses it (PING with two arguments, MSET with a key and no
        // value: Redis runs them, to the same error).
        _ if arity(name).is_some() => {
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

/// `TYPE key`: `string` (the only type here), or `none`; a keyspace hit or miss, as in
/// Redis. (`redis-cli --bigkeys` asks it of every key.)
fn key_type(db: &mut Session<'_>, key: &[u8], out: &mut impl Sink) {
    let (shard, clock) = db.shard(key);
    let found = shard.exists(key, clock);
    shard.count_lookup(found);
    out.put(if found { b"+string\r\n" } else { b"+none\r\n" });
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

/// `FLUSHDB [ASYNC | SYNC]` (the selected database), `FLUSHALL [ASYNC | SYNC]` (`all` of
/// them); both synchronous here.
fn flush(db: &mut Session<'_>, cmd: Args<'_>, all: bool, out: &mut impl Sink) {
    let mode = cmd.get(1);
    let valid = cmd.len() == 1
        || (cmd.len() == 2
            && (mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC")));
    if !valid {
        return error(out, SYNTAX);
    }
    let clear = |locked: &mut Locked<'_, '_>, _: &mut Clock| locked.each(|_, shard| shard.clear());
    if all {
        db.with_everything(clear);
    } else {
        db.with_db(clear);
    }
    ok(out);
}

/// `TIME`: the Unix time, in seconds and microseconds (as two bulk strings, as Redis).
fn time(out: &mut impl Sink) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let now = now.unwrap_or_default();
    array(out, 2);
    bulk(out, now.as_secs().to_string().as_bytes());
    bulk(out, now.subsec_micros().to_string().as_bytes());
}

/// `SELECT index`: the database the client's next commands act on, 0 to 15.
fn select(db: &mut Session<'_>, client: &mut Client, index: &[u8], out: &mut impl Sink) {
    match parse_i64(index) {
        None => error(out, NOT_INTEGER),
        Some(n) if n < 0 || n >= DATABASES as i64 => error(out, "ERR DB index is out of range"),
        Some(n) => {
            client.db = n as usize;
            db.select(client.db);
            ok(out);
        }
    }
}

/// `EXEC`: runs the commands queued since `MULTI` with every shard locked, so that no other
/// loop sees the store between two of them (one loop runs them back to back anyway), and
/// answers their replies in one array; or discards them, if one was refused while queued.
///
/// The replies are gathered before they are written, so that the array goes out whole: if
/// together they pass `max_reply`, the client gets one error instead (the commands have run:
/// their effects stay, as they would in Redis), and stays in step. Each command's own reply
/// is bounded as outside a transaction, and the gathered bytes by `max_reply` (past it, they
/// are only counted).
fn exec(db: &mut Session<'_>, out: &mut impl Sink, client: &mut Client, max_reply: usize) -> Flow {
    let Some(tx) = client.multi.take() else {
        error(out, "ERR EXEC without MULTI");
        return Flow::Continue;
    };
    if tx.failed {
        error(
            out,
            "EXECABORT Transaction discarded because of previous errors.",
        );
        return Flow::Continue;
    }
    let mut replies = Gathered::new(max_reply);
    db.exclusive(|db| {
        for cmd in tx.queued.commands() {
            execute(cmd, db, &mut replies, client, max_reply);
        }
    });
    let size = replies.array_size(tx.queued.len());
    if size > max_reply {
        let text = format!(
            "ERR EXEC ran, but its reply of {size} bytes is over the {max_reply}-byte limit \
             (--max-output less the high-water mark)"
        );
        error(out, &text);
        return Flow::TooLarge { size };
    }
    replies.write_array(out, tx.queued.len());
    Flow::Continue
}

/// Replies gathered to go out as one array (`EXEC`'s, and the keys of `KEYS` and `SCAN`), so
/// that the whole is sized before any of it is written: kept while they fit in `max` bytes,
/// only counted past it (the reply is then refused, and nothing of them sent).
struct Gathered {
    bytes: Vec<u8>,
    /// The bytes of all of them.
    size: usize,
    max: usize,
}

impl Gathered {
    fn new(max: usize) -> Gathered {
        Gathered {
            bytes: Vec::new(),
            size: 0,
            max,
        }
    }

    /// The size of their array, if they are `n` replies.
    fn array_size(&self, n: usize) -> usize {
        resp::array_size(n).saturating_add(self.size)
    }

    /// Writes them as an array of `n` replies (its size must have been checked).
    fn write_array(&self, out: &mut impl Sink, n: usize) {
        array(out, n);
        out.put(&self.bytes);
    }
}

impl Sink for Gathered {
    fn put(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len());
        if self.size <= self.max {
            self.bytes.extend_from_slice(bytes);
        }
    }
}

/// `KEYS pattern`: the selected database's live keys matching the glob `pattern` (see
/// `glob.rs`), in no particular order. The reply is sized first, as MGET's.
fn keys(db: &mut Session<'_>, pattern: &[u8], out: &mut impl Sink, max_reply: usize) -> Flow {
    let (mut keys, mut n) = (Gathered::new(max_reply), 0);
    let all = pattern == b"*";
    db.with_db(|locked, clock| {
        locked.each(|_, shard| {
            let mut left = usize::MAX;
            shard.scan(0, &mut left, clock, |key| {
                if all || glob::matches(pattern, key) {
                    bulk(&mut keys, key);
                    n += 1;
                }
            });
        })
    });
    let size = keys.array_size(n);
    if size > max_reply {
        return too_large(out, size, max_reply);
    }
    keys.write_array(out, n);
    Flow::Continue
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`: the next keys of the selected
/// database from `cursor` (0 to begin), and the cursor to go on from (0 when done). A key
/// present from the first call to the last is given at least once, maybe more; each call
/// looks at about `COUNT` (default 10) keys, in the shard order of `Shard::scan`, and gives
/// those matching (`TYPE string` matches every key, any other type none: strings only here).
/// Options and errors as Redis 7.0's; the reply is sized first.
fn scan(db: &mut Session<'_>, cmd: Args<'_>, out: &mut impl Sink, max_reply: usize) -> Flow {
    // Redis reads the cursor with strtoul: an optional sign, digits, nothing else.
    let cursor = match cmd.get(1) {
        [b'-', digits @ ..] => parse_u64(digits).map(u64::wrapping_neg),
        [b'+', digits @ ..] => parse_u64(digits),
        digits => parse_u64(digits),
    };
    let Some(cursor) = cursor else {
        error(out, "ERR invalid cursor");
        return Flow::Continue;
    };
    let (mut pattern, mut count, mut strings) = (None, 10usize, true);
    let mut j = 2;
    while j < cmd.len() {
        let (option, value) = (cmd.get(j), cmd.get(j + 1));
        if j + 1 >= cmd.len() {
            error(out, SYNTAX);
            return Flow::Continue;
        } else if option.eq_ignore_ascii_case(b"COUNT") {
            match parse_i64(value) {
                None => {
                    error(out, NOT_INTEGER);
                    return Flow::Continue;
                }
                Some(n) if n < 1 => {
                    error(out, SYNTAX);
                    return Flow::Continue;
                }
                Some(n) => count = usize::try_from(n).unwrap_or(usize::MAX),
            }
        } else if option.eq_ignore_ascii_case(b"MATCH") {
            pattern = Some(value).filter(|&p| p != b"*");
        } else if option.eq_ignore_ascii_case(b"TYPE") {
            strings = value.eq_ignore_ascii_case(b"string");
        } else {
            error(out, SYNTAX);
            return Flow::Continue;
        }
        j += 2;
    }
    // The cursor is a shard of the database and a position in it (see `Shard::scan`).
    let per_db = db.store().shards_per_db() as u64;
    let (mut shard, mut bound) = ((cursor % per_db) as usize, cursor / per_db);
    let (mut keys, mut n) = (Gathered::new(max_reply), 0);
    while count > 0 && (shard as u64) < per_db {
        let (s, clock) = db.shard_of_db(shard);
        let bound_in = usize::try_from(bound).unwrap_or(usize::MAX);
        let end = s.scan(bound_in, &mut count, clock, |key| {
            if strings && pattern.is_none_or(|p| glob::matches(p, key)) {
                bulk(&mut keys, key);
                n += 1;
            }
        });
        if end == 0 {
            shard += 1; // from its top
            bound = 0;
        } else {
            bound = end as u64;
        }
    }
    let next = if shard as u64 >= per_db {
        0
    } else {
        bound.saturating_mul(per_db).saturating_add(shard as u64)
    };
    let next = next.to_string();
    let next = next.as_bytes();
    let size =
        (resp::array_size(2) + resp::bulk_size(next.len())).saturating_add(keys.array_size(n));
    if size > max_reply {
        return too_large(out, size, max_reply);
    }
    array(out, 2);
    bulk(out, next);
    keys.write_array(out, n);
    Flow::Continue
}

/// A decimal without sign that fits in a `u64`, as Redis's cursors.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `INFO [section ...]`: see `info.rs`.
fn info(cmd: Args<'_>, db: &mut Session<'_>, out: &mut impl Sink, max_reply: usize) -> Flow {
    let text = info::render(cmd, db);
    let size = resp::text_size(out, text.len());
    if size > max_reply {
        return too_large(out, size, max_reply);
    }
    resp::text(out, text.as_bytes());
    Flow::Continue
}

/// `CONFIG GET parameter...`: what redis-benchmark asks (`save`, `appendonly`), with the
/// values of a server that never writes to disk; other parameters are not listed. Each one
/// named is echoed, so the reply is sized first. `None` if refused before running (an unknown
/// subcommand, no parameter), as Redis refuses it.
fn config(cmd: Args<'_>, out: &mut impl Sink, max_reply: usize) -> Option<Flow> {
    if !config_get_valid(cmd, out) {
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
    let size = size.saturating_add(resp::array_size(2 * known)); // a map's header is no larger
    if size > max_reply {
        return Some(too_large(out, size, max_reply));
    }
    map(out, known);
    for name in cmd.iter(2) {
        if let Some(value) = value(name) {
            bulk(out, name);
            bulk(out, value);
        }
    }
    Some(Flow::Continue)
}

/// Whether `CONFIG ...` is a `CONFIG GET` with a parameter; if not, Redis's error is written.
fn config_get_valid(cmd: Args<'_>, out: &mut impl Sink) -> bool {
    let sub = cmd.get(1);
    if !sub.eq_ignore_ascii_case(b"GET") {
        out.put(b"-ERR unknown subcommand '");
        put_sanitized(out, c_string(sub), 128);
        out.put(b"'. Try CONFIG HELP.\r\n");
        return false;
    }
    if cmd.len() < 3 {
        error(
            out,
            "ERR wrong number of arguments for 'config|get' command",
        );
        return false;
    }
    true
}

/// `CLIENT SETNAME name`, `CLIENT GETNAME`, `CLIENT ID`, of this connection. `None` if
/// refused before running (an unknown subcommand, a wrong number of arguments), as Redis
/// refuses it.
fn client_command(cmd: Args<'_>, client: &mut Client, out: &mut impl Sink) -> Option<Flow> {
    match client_subcommand(cmd, out)? {
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

/// `CLIENT ...`'s subcommand (`setname`, `getname` or `id`), if it is one kv_server has,
/// with its number of arguments; if not, Redis's error is written.
fn client_subcommand(cmd: Args<'_>, out: &mut impl Sink) -> Option<&'static str> {
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
    Some(name)
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

/// `HELLO [protover [AUTH username password] [SETNAME name]]`: switches the connection to
/// RESP2 or RESP3 and answers Redis 7.0's reply, a map (an array in RESP2) in the protocol
/// asked for (the id is `CLIENT ID`'s, the version `INFO`'s), and its errors; without a
/// version, the protocol stays; any other version is `-NOPROTO`, as Redis answers it. The options are taken in
/// order, as Redis takes them, each acting at once (a name is set even if a later option is a
/// syntax error); `AUTH` succeeds for the user `default`, with any password, as with Redis's
/// default configuration (no password), and fails for any other user. The syntax error
/// echoes the option whole, as Redis does, so it is sized first.
fn hello(cmd: Args<'_>, client: &mut Client, out: &mut impl Sink, max_reply: usize) -> Flow {
    let mut resp3 = client.resp3;
    if cmd.len() >= 2 {
        match parse_i64(cmd.get(1)) {
            None => {
                error(
                    out,
                    "ERR Protocol version is not an integer or out of range",
                );
                return Flow::Continue;
            }
            Some(version @ (2 | 3)) => resp3 = version == 3,
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
    // The options were all right: the protocol asked for is the client's from this reply on.
    client.resp3 = resp3;
    out.put(if resp3 { b"%7\r\n" } else { b"*14\r\n" }); // a map
    bulk(out, b"server");
    bulk(out, b"redis");
    bulk(out, b"version");
    bulk(out, info::REDIS_VERSION.as_bytes());
    bulk(out, b"proto");
    integer(out, if resp3 { 3 } else { 2 });
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
