//! RESP2, the Redis protocol: the request parser (a [`Codec`] for `Connection`) and the reply
//! encoders.
//!
//! Requests come in two shapes, told apart by their first byte, as Redis does:
//! - **multibulk** (`*`): `*<count>\r\n` then `count` times `$<len>\r\n<len bytes>\r\n`, what
//!   clients send;
//! - **inline**: anything else, one line ended by `\n` (a `\r` before it is dropped), split into
//!   words with Redis's quoting rules (`"a b\x41"`, `'it''s'`): what one types in telnet.
//!
//! One [`decode`](RespCodec::decode) parses every complete request the connection has
//! received and returns them as one [`Batch`]: one buffer holding every argument, and their
//! ranges in it — three allocations per read, none per argument, and the whole read's replies
//! go out in one write. A request still incomplete is remembered (how far it was parsed), so a
//! large one arriving in many pieces is parsed once, not once per piece.
//!
//! Memory is bounded by [`RespLimits`], never by what a client declares: a length or count is
//! checked against its limit as soon as its header arrives, and nothing is reserved for it
//! ahead of the bytes themselves. Malformed input is answered as Redis answers it
//! (`-ERR Protocol error: invalid bulk length`, ...): the [`Batch`] carries the error after the
//! requests that came before it, and the server replies and closes. Nothing here panics on any
//! input.
//!
//! A request refused for its size only — a well-formed bulk header over `max_bulk`, or a
//! request passing `max_request` — is not refused at once, but once its bytes have arrived:
//! the rest of that bulk, then each argument still to come (its `$N` header parsed, its `N + 2`
//! bytes dropped), are read and dropped, nothing stored (the codec holds a few counters
//! meanwhile), and only then does the error come. A client that writes its whole request
//! before reading (`redis-cli -x SET k < big`) would otherwise be reset in the middle of its
//! write, the error unread. The complete requests before it go at once, each read's dropped
//! bytes are consumed with an empty batch, and the last byte received is always left
//! undecoded, so that the connection's frame timeout runs while the client is silent and
//! `decode_eof` gives the error if it half-closes. Bounds: a request declaring more than
//! [`RespLimits::max_discard`] bytes in all, or a header that is malformed on the way (its own
//! error then), is refused at once, as before; an invalid length (`$-5`, `$x`) always is.

use selectloop::Codec;
use std::io;
use std::mem;
use std::ops::Range;

/// The parser's bounds (the server's `--max-*` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RespLimits {
    /// The longest argument, in bytes (Redis's `proto-max-bulk-len`, 512 MB there).
    pub max_bulk: usize,
    /// The most arguments in one request (the multibulk count; Redis 6 refused over 1 Mi).
    pub max_args: usize,
    /// The longest inline request: Redis's 64 KiB.
    pub max_inline: usize,
    /// The most bytes one request may take on the wire, all its arguments together (Redis has
    /// `client-query-buffer-limit`, 1 GiB).
    pub max_request: usize,
    /// A request refused for a bulk over `max_bulk` or for passing `max_request` is read to its
    /// end and dropped before the error is sent (see the module docs), if the bytes it declares
    /// on the wire, all its arguments together, are at most this many; else, or if 0, it is
    /// refused at once and the connection closed (a client still sending is then reset).
    /// 1 GiB by default: Redis's `client-query-buffer-limit`, the most a Redis client can send
    /// in one request and get an answer. Fixed rather than a multiple of `max_request`, as the
    /// size of a client's value has nothing to do with our limits (a server with a 1 MiB limit
    /// should answer a 100 MB SET as cleanly); and dropping costs no memory, only the
    /// bandwidth the client itself spends, so its bound is on how long one request may keep
    /// a connection busy.
    pub max_discard: usize,
}

impl Default for RespLimits {
    fn default() -> Self {
        RespLimits {
            max_bulk: 16 << 20,
            max_args: 1 << 20,
            max_inline: 64 << 10,
            max_request: 64 << 20,
            max_discard: 1 << 30,
        }
    }
}

/// Why a request was refused; the connection is answered `-ERR Protocol error: <why>` and
/// closed. The texts are Redis's, but for `TooBigRequest`, which Redis does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    InvalidMultibulkLength,
    InvalidBulkLength,
    /// The byte found where a `$` should start an argument.
    ExpectedDollar(u8),
    TooBigInline,
    TooBigMbulkCount,
    TooBigBulkCount,
    UnbalancedQuotes,
    TooBigRequest,
}

impl ProtocolError {
    /// The reply: `-ERR Protocol error: ...\r\n`.
    pub fn write(self, out: &mut impl Sink) {
        out.put(b"-ERR Protocol error: ");
        let why: &[u8] = match self {
            ProtocolError::InvalidMultibulkLength => b"invalid multibulk length",
            ProtocolError::InvalidBulkLength => b"invalid bulk length",
            ProtocolError::ExpectedDollar(got) => {
                // A CR or LF would end the error line early: Redis turns them into spaces.
                let got = if got == b'\r' || got == b'\n' {
                    b' '
                } else {
                    got
                };
                out.put(b"expected '$', got '");
                out.put(&[got]);
                b"'"
            }
            ProtocolError::TooBigInline => b"too big inline request",
            ProtocolError::TooBigMbulkCount => b"too big mbulk count string",
            ProtocolError::TooBigBulkCount => b"too big bulk count string",
            ProtocolError::UnbalancedQuotes => b"unbalanced quotes in request",
            ProtocolError::TooBigRequest => b"too big request",
        };
        out.put(why);
        out.put(b"\r\n");
    }
}

/// The requests of one read: their arguments in one buffer, then a protocol error if one
/// followed them.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    /// Each argument's bytes in `data`.
    args: Vec<Range<usize>>,
    /// Where each request's arguments end in `args`.
    ends: Vec<usize>,
    /// The error after the last request, if any: nothing follows it.
    pub error: Option<ProtocolError>,
}

impl Batch {
    /// The number of requests.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True if it holds no request (but maybe an error).
    #[allow(dead_code)] // for tests/kv_resp.rs
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The requests, in order.
    #[allow(dead_code)] // for tests/kv_resp.rs
    pub fn commands(&self) -> impl Iterator<Item = Args<'_>> {
        self.commands_from(0)
    }

    /// The requests from request `from` on (0 is the first), in order.
    pub fn commands_from(&self, from: usize) -> impl Iterator<Item = Args<'_>> {
        let ends = self.ends.get(from..).unwrap_or_default();
        let first = match from {
            0 => 0,
            _ => self.ends.get(from - 1).copied().unwrap_or(0),
        };
        let starts = std::iter::once(first).chain(ends.iter().copied());
        starts.zip(ends).map(|(start, &end)| Args {
            data: &self.data,
            args: &self.args[start..end],
        })
    }

    /// The bytes of memory it holds (its buffers' capacity).
    pub fn memory(&self) -> usize {
        self.data.capacity()
            + self.args.capacity() * mem::size_of::<Range<usize>>()
            + self.ends.capacity() * mem::size_of::<usize>()
    }

    /// Adds a copy of request `cmd` (for a transaction's queue: `MULTI`).
    pub fn push(&mut self, cmd: Args<'_>) {
        for arg in cmd.iter(0) {
            self.push_arg(arg);
        }
        self.end_command();
    }

    /// The bytes its requests hold: their arguments, and a range for each.
    pub fn size(&self) -> usize {
        self.data.len() + self.args.len() * mem::size_of::<Range<usize>>()
    }

    /// Forgets the request being parsed: its arguments go.
    fn truncate(&mut self, args: usize, data: usize) {
        self.args.truncate(args);
        self.data.truncate(data);
    }

    fn push_arg(&mut self, bytes: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.args.push(start..self.data.len());
    }

    /// Ends the request whose arguments were pushed since the last one ended; a request of no
    /// arguments (`*0`, a blank line) is none, as in Redis.
    fn end_command(&mut self) {
        if self.args.len() > self.ends.last().copied().unwrap_or(0) {
            self.ends.push(self.args.len());
        }
    }
}

/// One request's arguments (the command name first; never empty).
#[derive(Clone, Copy, Debug)]
pub struct Args<'a> {
    data: &'a [u8],
    args: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    /// The number of arguments, the command name included.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// True if there are none (never, for a request from a [`Batch`]).
    #[allow(dead_code)] // clippy's `len_without_is_empty`; unused
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Argument `i` (0 is the command name); empty if there is none.
    pub fn get(&self, i: usize) -> &'a [u8] {
        let range = self.args.get(i).cloned().unwrap_or(0..0);
        self.data.get(range).unwrap_or_default()
    }

    /// The arguments from `from` on.
    pub fn iter(&self, from: usize) -> impl Iterator<Item = &'a [u8]> + Clone + '_ {
        (from..self.len()).map(|i| self.get(i))
    }
}

/// How far the request at the front of the buffer was parsed, when it was incomplete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Resume {
    /// Nothing parsed yet.
    #[default]
    Start,
    /// An inline request: no `\n` in its first `scanned` bytes.
    Inline { scanned: usize },
    /// A multibulk request: `left` arguments to come, the next one's header at `pos`; the
    /// arguments before it are in the codec's pending batch.
    Multi { left: usize, pos: usize },
}

/// What parsing the request at the front of a buffer gave.
enum Step {
    /// A complete request (maybe of no arguments) of this many bytes.
    Done(usize),
    /// Incomplete: where to go on from when more has arrived.
    Incomplete(Resume),
    Error(ProtocolError),
    /// Refused for its size: the rest is dropped (`Discard`) from byte `at` of the request on
    /// (the last byte of the header of the bulk refused).
    Discard {
        at: usize,
        state: Discard,
    },
}

/// A request refused for its size, being read and dropped before its error is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Discard {
    /// The bytes to drop before the next header (the rest of a bulk and its `\r\n`).
    skip: u64,
    /// The arguments still to come after those.
    left: usize,
    /// The bytes the request declared so far, from its `*` on: at most `max_discard`.
    declared: u64,
    /// The error to return at its end.
    error: ProtocolError,
}

/// What the codec is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Mode {
    /// Parsing requests.
    #[default]
    Parsing,
    /// Dropping a request refused for its size.
    Discarding(Discard),
    /// A protocol error was returned: nothing more is decoded (the connection is closing).
    Failed,
}

/// The RESP request codec: see the module docs.
#[derive(Debug, Default)]
pub struct RespCodec {
    limits: RespLimits,
    /// How far the incomplete request at the front of the buffer was parsed...
    resume: Resume,
    /// ...and its arguments so far (for a multibulk one).
    pending: Option<Batch>,
    /// Parsing, dropping a refused request, or done.
    mode: Mode,
    /// The sizes of the last batch returned (capped), to start the next one with room for as
    /// much: a client's batches tend to look alike, and growing three vectors from empty on
    /// every read cost more than parsing (callgrind, `redis-benchmark -P 16`).
    hint: (usize, usize, usize),
}

/// The most room a batch starts with, for its bytes, arguments and requests: a hint, not a
/// limit (a batch grows past it as it must).
const HINT_CAP: (usize, usize, usize) = (64 << 10, 4096, 1024);

impl RespCodec {
    pub fn new(limits: RespLimits) -> RespCodec {
        RespCodec {
            limits,
            ..RespCodec::default()
        }
    }

    /// The bytes of memory the codec holds between reads (an incomplete request's arguments).
    #[allow(dead_code)] // for tests/kv_resp.rs
    pub fn memory(&self) -> usize {
        self.pending.as_ref().map_or(0, Batch::memory)
    }

    /// Drops what `buf` holds of the request refused in `d` (see the module docs): the bytes
    /// used, and its error once it has all been dropped (or at once, when over a bound). Sets
    /// the mode. The last byte of `buf` is never used but at the end (there is no header of
    /// one byte): what is left undecoded keeps the frame clock running and brings
    /// `decode_eof`.
    #[cold]
    #[inline(never)]
    fn discard(&mut self, buf: &[u8], mut d: Discard) -> (usize, Option<ProtocolError>) {
        let mut pos = 0;
        let (used, error) = loop {
            let rest = buf.len().saturating_sub(pos) as u64;
            if d.skip > rest {
                // All of it goes, but the last byte: dropped next time.
                d.skip = d.skip - rest + 1;
                break (buf.len().saturating_sub(1), None);
            }
            pos += d.skip as usize; // at most `rest`
            d.skip = 0;
            if d.left == 0 {
                break (buf.len(), Some(d.error)); // the end of the request
            }
            let (line, next) = match header_line(buf, pos, ProtocolError::TooBigBulkCount) {
                Ok(Some(line)) => line,
                // The start of a header waits (maybe from the start: nothing used).
                Ok(None) if pos < buf.len() => break (pos, None),
                // Nothing of it yet: the last byte (a skipped one) is dropped next time.
                Ok(None) => {
                    d.skip = 1;
                    break (pos.saturating_sub(1), None);
                }
                Err(e) => break (buf.len(), Some(e)),
            };
            let len = match line.split_first() {
                Some((b'$', len)) => len,
                Some((&other, _)) => break (buf.len(), Some(ProtocolError::ExpectedDollar(other))),
                None => break (buf.len(), Some(ProtocolError::ExpectedDollar(b'\r'))),
            };
            let len = match parse_i64(len) {
                Some(n) if n >= 0 => n as u64,
                _ => break (buf.len(), Some(ProtocolError::InvalidBulkLength)),
            };
            let header = (next - pos) as u64;
            d.declared = d.declared.saturating_add(header).saturating_add(len + 2);
            if d.declared > self.limits.max_discard as u64 {
                break (buf.len(), Some(d.error));
            }
            (d.skip, d.left, pos) = (len + 2, d.left - 1, next);
        };
        self.mode = match error {
            Some(_) => Mode::Failed,
            None => Mode::Discarding(d),
        };
        (used, error)
    }

    /// `decode` while not parsing: dropping a refused request, or done.
    #[cold]
    #[inline(never)]
    fn decode_refused(&mut self, buf: &[u8]) -> Option<(Batch, usize)> {
        let Mode::Discarding(d) = self.mode else {
            return None;
        };
        if buf.is_empty() {
            return None;
        }
        match self.discard(buf, d) {
            (0, None) => None, // the start of a header: nothing used
            (used, error) => Some((
                Batch {
                    error,
                    ..Batch::default()
                },
                used,
            )),
        }
    }
}

impl Codec for RespCodec {
    type Incoming<'a> = Batch;
    type Outgoing = [u8];

    /// Every complete request of `buf`, as one batch; `None` if there is none yet.
    fn decode(&mut self, buf: &[u8]) -> io::Result<Option<(Batch, usize)>> {
        if !matches!(self.mode, Mode::Parsing) || buf.is_empty() {
            return Ok(self.decode_refused(buf));
        }
        let mut batch = match self.pending.take() {
            Some(batch) => batch,
            None => Batch {
                data: Vec::with_capacity(self.hint.0),
                args: Vec::with_capacity(self.hint.1),
                ends: Vec::with_capacity(self.hint.2),
                error: None,
            },
        };
        let mut pos = 0;
        while pos < buf.len() {
            // Where this request's arguments begin, to drop them if it is incomplete.
            let (args, data) = match pos {
                0 => (0, 0), // the pending batch holds this request's arguments only
                _ => (batch.args.len(), batch.data.len()),
            };
            let resume = match pos {
                0 => mem::take(&mut self.resume),
                _ => Resume::Start,
            };
            match parse(&buf[pos..], resume, &self.limits, &mut batch) {
                Step::Done(used) => {
                    batch.end_command();
                    pos += used;
                }
                Step::Incomplete(resume) if pos == 0 => {
                    // Nothing complete: keep what was parsed for next time.
                    self.resume = resume;
                    self.pending = Some(batch);
                    return Ok(None);
                }
                Step::Incomplete(_) => {
                    // After complete requests: those go now, this one is parsed again next time.
                    batch.truncate(args, data);
                    break;
                }
                Step::Error(e) => {
                    batch.truncate(args, data);
                    batch.error = Some(e);
                    self.mode = Mode::Failed;
                    pos = buf.len();
                }
                Step::Discard { at, state } => {
                    // The requests before it go now, with what is here of it dropped.
                    batch.truncate(args, data);
                    let from = pos + at;
                    let (used, error) = self.discard(&buf[from..], state);
                    batch.error = error;
                    pos = from + used;
                    break;
                }
            }
        }
        self.hint = (
            batch.data.len().min(HINT_CAP.0),
            batch.args.len().min(HINT_CAP.1),
            batch.ends.len().min(HINT_CAP.2),
        );
        Ok(Some((batch, pos)))
    }

    /// At end of file, an incomplete last request is dropped (as Redis drops it), after the
    /// complete ones; the error of a refused one being dropped goes out (the client
    /// half-closed: it reads).
    fn decode_eof(&mut self, buf: &[u8]) -> io::Result<Option<(Batch, usize)>> {
        let decoded = self.decode(buf)?;
        if let Mode::Discarding(d) = self.mode {
            self.mode = Mode::Failed;
            let mut batch = decoded.map_or_else(Batch::default, |(batch, _)| batch);
            batch.error = Some(d.error);
            return Ok(Some((batch, buf.len())));
        }
        if decoded.is_none() {
            (self.resume, self.pending) = (Resume::Start, None);
        }
        Ok(decoded)
    }

    /// Replies are written with the functions below; this sends bytes as they are.
    fn encode(&mut self, frame: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.extend_from_slice(frame);
        Ok(())
    }
}

/// Parses the request at the front of `buf` (resuming at `resume`), pushing its arguments to
/// `batch`.
fn parse(buf: &[u8], resume: Resume, limits: &RespLimits, batch: &mut Batch) -> Step {
    match resume {
        Resume::Start if buf.first() == Some(&b'*') => parse_multibulk(buf, limits, batch),
        Resume::Start => parse_inline(buf, 0, limits, batch),
        Resume::Inline { scanned } => parse_inline(buf, scanned, limits, batch),
        Resume::Multi { left, pos } => parse_bulks(buf, left, pos, limits, batch),
    }
}

/// A request refused with `error` at a bulk of `len` bytes whose header ends at `start`, `left`
/// arguments to come with it: dropped (`Step::Discard`) if all it declared so far is at most
/// `max_discard`, else refused at once.
#[cold]
#[inline(never)]
fn refuse(error: ProtocolError, len: u64, start: usize, left: usize, limits: &RespLimits) -> Step {
    let declared = (start as u64).saturating_add(len).saturating_add(2);
    match start.checked_sub(1) {
        Some(at) if declared <= limits.max_discard as u64 => Step::Discard {
            at,
            state: Discard {
                skip: len + 3, // the header's last byte, the bulk and its `\r\n`
                left: left.saturating_sub(1),
                declared,
                error,
            },
        },
        _ => Step::Error(error),
    }
}

/// The longest count line (`*N`, `$N`) accepted: an `i64` has at most 20 characters, so a
/// longer line can never be valid. (Redis waits for up to 64 KiB of it; a small bound keeps a
/// line arriving byte by byte cheap to scan again, and the error the same whatever pieces the
/// line arrives in.)
const MAX_COUNT_LINE: usize = 64;

/// A header line at `pos` (`*N` or `$N`): its text, type byte included, and where the next
/// line begins. As in Redis, it ends at the first `\r`, and the byte after it (meant to be
/// `\n`) is skipped unseen. `Ok(None)`: not complete yet.
fn header_line(
    buf: &[u8],
    pos: usize,
    too_big: ProtocolError,
) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = buf.get(pos..).unwrap_or_default();
    let searched = &rest[..rest.len().min(MAX_COUNT_LINE + 1)];
    match searched.iter().position(|&b| b == b'\r') {
        Some(cr) if cr + 1 < rest.len() => Ok(Some((&rest[..cr], pos + cr + 2))),
        Some(_) => Ok(None),
        None if rest.len() > MAX_COUNT_LINE => Err(too_big),
        None => Ok(None),
    }
}

fn parse_multibulk(buf: &[u8], limits: &RespLimits, batch: &mut Batch) -> Step {
    let (count, pos) = match header_line(buf, 0, ProtocolError::TooBigMbulkCount) {
        Ok(Some(line)) => line,
        Ok(None) => return Step::Incomplete(Resume::Start),
        Err(e) => return Step::Error(e),
    };
    match parse_i64(count.get(1..).unwrap_or_default()) {
        Some(n) if n <= 0 => Step::Done(pos), // `*0`, `*-1`: nothing, as in Redis
        Some(n) if n as u64 <= limits.max_args as u64 => {
            parse_bulks(buf, n as usize, pos, limits, batch)
        }
        _ => Step::Error(ProtocolError::InvalidMultibulkLength),
    }
}

/// The `left` arguments of a multibulk request, the first one's header at `pos`.
fn parse_bulks(
    buf: &[u8],
    mut left: usize,
    mut pos: usize,
    limits: &RespLimits,
    batch: &mut Batch,
) -> Step {
    while left > 0 {
        let (line, start) = match header_line(buf, pos, ProtocolError::TooBigBulkCount) {
            Ok(Some(line)) => line,
            Ok(None) => return Step::Incomplete(Resume::Multi { left, pos }),
            Err(e) => return Step::Error(e),
        };
        let len = match line.split_first() {
            Some((b'$', len)) => len,
            Some((&other, _)) => return Step::Error(ProtocolError::ExpectedDollar(other)),
            None => return Step::Error(ProtocolError::ExpectedDollar(b'\r')),
        };
        let len = match parse_i64(len) {
            Some(n) if n >= 0 && n as u64 <= limits.max_bulk as u64 => n as usize,
            Some(n) if n >= 0 => {
                let error = ProtocolError::InvalidBulkLength;
                return refuse(error, n as u64, start, left, limits);
            }
            _ => return Step::Error(ProtocolError::InvalidBulkLength),
        };
        // The bulk and the two bytes after it (`\r\n`, skipped unseen, as Redis does).
        let end = start.saturating_add(len).saturating_add(2);
        if end > limits.max_request {
            let error = ProtocolError::TooBigRequest;
            return refuse(error, len as u64, start, left, limits);
        }
        let Some(bulk) = buf.get(start..start + len).filter(|_| end <= buf.len()) else {
            return Step::Incomplete(Resume::Multi { left, pos });
        };
        batch.push_arg(bulk);
        (pos, left) = (end, left - 1);
    }
    Step::Done(pos)
}

/// An inline request: one line, its `\n` not in the first `scanned` bytes.
fn parse_inline(buf: &[u8], scanned: usize, limits: &RespLimits, batch: &mut Batch) -> Step {
    let limit = buf.len().min(limits.max_inline.saturating_add(1));
    let from = scanned.min(limit);
    let Some(nl) = buf[from..limit].iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline {
            return Step::Error(ProtocolError::TooBigInline);
        }
        return Step::Incomplete(Resume::Inline { scanned: buf.len() });
    };
    let end = from + nl;
    let mut line = &buf[..end];
    if let Some(stripped) = line.strip_suffix(b"\r") {
        line = stripped;
    }
    match split_args(line, batch) {
        Ok(()) => Step::Done(end + 1),
        Err(e) => Step::Error(e),
    }
}

/// Splits an inline line into arguments as Redis's `sdssplitargs` does: words separated by
/// white space; `"..."` with the escapes `\xHH \n \r \t \b \a \\ \"`; `'...'` with `\'`; a
/// closing quote must be followed by white space. The line ends at a NUL byte (a C string
/// there).
fn split_args(line: &[u8], batch: &mut Batch) -> Result<(), ProtocolError> {
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p == line.len() {
            return Ok(());
        }
        let start = batch.data.len();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            let c = line.get(p).copied();
            let next = line.get(p + 1).copied();
            if in_dq {
                match (c, next) {
                    (None, _) => return Err(ProtocolError::UnbalancedQuotes),
                    (Some(b'\\'), Some(b'x')) => {
                        let digits = (line.get(p + 2).and_then(|&b| hex(b)))
                            .zip(line.get(p + 3).and_then(|&b| hex(b)));
                        if let Some((hi, lo)) = digits {
                            batch.data.push(hi * 16 + lo);
                            p += 3;
                        } else {
                            batch.data.push(b'x'); // `\x` without two hex digits: `x`
                            p += 1;
                        }
                    }
                    (Some(b'\\'), Some(escaped)) => {
                        batch.data.push(match escaped {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        p += 1;
                    }
                    (Some(b'"'), next) => {
                        if next.is_some_and(|b| !is_space(b)) {
                            return Err(ProtocolError::UnbalancedQuotes);
                        }
                        p += 1;
                        break;
                    }
                    (Some(c), _) => batch.data.push(c),
                }
            } else if in_sq {
                match (c, next) {
                    (None, _) => return Err(ProtocolError::UnbalancedQuotes),
                    (Some(b'\\'), Some(b'\'')) => {
                        batch.data.push(b'\'');
                        p += 1;
                    }
                    (Some(b'\''), next) => {
                        if next.is_some_and(|b| !is_space(b)) {
                            return Err(ProtocolError::UnbalancedQuotes);
                        }
                        p += 1;
                        break;
                    }
                    (Some(c), _) => batch.data.push(c),
                }
            } else {
                match c {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t') => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(c) => batch.data.push(c),
                }
            }
            p += 1;
        }
        batch.args.push(start..batch.data.len());
    }
}

/// Parses a whole decimal `i64` as Redis's `string2ll` does: no sign but `-`, no leading
/// zeros, no spaces, not `-0`; `None` otherwise or on overflow.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ if digits.len() > 19 => return None,
        _ => {}
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(n)
    } else {
        i64::try_from(n).ok()
    }
}

// --- Replies ---------------------------------------------------------------------------------

/// Where replies go: the connection's write queue (or a `Vec`, in tests). Whatever is put
/// goes out whole: a command that could not send its whole reply must not start it (see
/// `commands.rs` on replies too large).
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);

    /// Whether the replies are RESP3's (the client said `HELLO 3`): a null, a map and a
    /// verbatim string are written differently ([`null`], [`map`], [`text`]); everything else
    /// is the same in both.
    fn resp3(&self) -> bool {
        false
    }
}

/// A sink whose replies are RESP3's (see [`Sink::resp3`]).
pub struct Resp3<'a, S>(pub &'a mut S);

impl<S: Sink> Sink for Resp3<'_, S> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.0.put(bytes);
    }

    fn resp3(&self) -> bool {
        true
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// `n` in decimal, in the end of `buf`: the digits' slice.
pub fn itoa(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

/// `<kind><n>\r\n`: an integer (`:`), a bulk's (`$`) or an array's (`*`) header.
fn header(out: &mut impl Sink, kind: u8, n: i64) {
    let mut digits = [0u8; 20];
    let digits = itoa(n, &mut digits);
    let mut buf = [0u8; 23];
    let len = digits.len();
    buf[0] = kind;
    buf[1..1 + len].copy_from_slice(digits);
    buf[1 + len..3 + len].copy_from_slice(b"\r\n");
    out.put(&buf[..3 + len]);
}

/// The length of `header`'s line for `n` (`n` not negative).
fn header_size(n: usize) -> usize {
    let digits = n.checked_ilog10().map_or(1, |log| log as usize + 1);
    digits + 3
}

/// The length of [`bulk`]'s reply for a value of `len` bytes.
pub fn bulk_size(len: usize) -> usize {
    header_size(len).saturating_add(len).saturating_add(2)
}

/// The length of [`array`]'s header for `n` items.
pub fn array_size(n: usize) -> usize {
    header_size(n)
}

/// The length of [`null`]'s reply.
pub const NULL_SIZE: usize = 5;

/// `:n`
pub fn integer(out: &mut impl Sink, n: i64) {
    header(out, b':', n);
}

/// `$len\r\nbytes\r\n`
pub fn bulk(out: &mut impl Sink, bytes: &[u8]) {
    header(out, b'$', bytes.len() as i64);
    out.put(bytes);
    out.put(b"\r\n");
}

/// No value: `$-1` (RESP3: `_`).
pub fn null(out: &mut impl Sink) {
    out.put(if out.resp3() { b"_\r\n" } else { b"$-1\r\n" });
}

/// A map of the `n` key-value pairs that follow: `%n` (RESP2: an array of `2n` replies).
pub fn map(out: &mut impl Sink, n: usize) {
    match out.resp3() {
        true => header(out, b'%', n as i64),
        false => array(out, 2 * n),
    }
}

/// A text (`INFO`'s): a bulk string (RESP3: a verbatim string of format `txt`).
pub fn text(out: &mut impl Sink, text: &[u8]) {
    if !out.resp3() {
        return bulk(out, text);
    }
    header(out, b'=', text.len() as i64 + 4);
    out.put(b"txt:");
    out.put(text);
    out.put(b"\r\n");
}

/// The bytes of [`text`]'s reply for a text of `len` bytes.
pub fn text_size(out: &impl Sink, len: usize) -> usize {
    bulk_size(len.saturating_add(if out.resp3() { 4 } else { 0 }))
}

/// `*n`: an array of the `n` replies that follow.
pub fn array(out: &mut impl Sink, n: usize) {
    header(out, b'*', n as i64);
}

/// `+OK`
pub fn ok(out: &mut impl Sink) {
    out.put(b"+OK\r\n");
}

/// `-<message>`: the message is a constant of ours, with no line break.
pub fn error(out: &mut impl Sink, message: &str) {
    out.put(b"-");
    out.put(message.as_bytes());
    out.put(b"\r\n");
}
