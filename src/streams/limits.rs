//! What a connection may cost, and how long a peer may take: [`Limits`] and [`Timeouts`].
//!
//! A server meets two kinds of peer that cost it without doing anything wrong at the protocol
//! level. One does not read: what the server sends it piles up (Redis answers with
//! `client-output-buffer-limit`: a hard cap on a client's queued output, and a soft cap it may
//! stay above only for so long). The other is slow on purpose or by accident: it sends a
//! request one byte a second (slowloris, which nginx's `client_header_timeout` defends
//! against), accepts nothing while output is queued (nginx's `send_timeout`), or sits idle
//! forever (`keepalive_timeout`, Redis's `timeout`). Each defence is optional and off by
//! default, as in Redis for ordinary clients and in Python, asyncio and libuv: a connection
//! cannot know how much its program means to send (a whole file in one `send` is legitimate)
//! nor how slow its peers may be. The examples show sensible values.

use std::io::{self, ErrorKind};
use std::time::Duration;

/// Buffer sizes and output caps of a [`Connection`](crate::Connection), set with
/// [`Connection::with_limits`](crate::Connection::with_limits).
///
/// Every combination with `low_water <= high_water` and `read_chunk > 0` is valid, the extremes
/// included; `with_limits` refuses the others with `InvalidInput`.
///
/// # Examples
///
/// ```
/// use selectloop::Limits;
/// use std::time::Duration;
///
/// // Never stop reading, however much is queued for the peer (a trusted peer only: the
/// // write queue is then unbounded), and read at most 4 KiB at a time.
/// let trusting = Limits { high_water: usize::MAX, read_chunk: 4096, ..Limits::default() };
///
/// // Redis's limits for pub/sub clients: close one with more than 32 MiB queued, or with more
/// // than 8 MiB queued for a whole minute.
/// let pubsub = Limits {
///     hard_cap: 32 << 20,
///     soft_cap: 8 << 20,
///     soft_cap_for: Duration::from_secs(60),
///     ..Limits::default()
/// };
/// # let _ = (trusting, pubsub);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Stop reading from the peer, and handing frames already received to the callback, while
    /// more than this many bytes wait to be written (default 1 MiB). `usize::MAX` means never
    /// stop; `0` means stop while anything at all is queued.
    pub high_water: usize,
    /// Resume reading (and handing frames over) once the queue is at most this (default
    /// 256 KiB). At most `high_water`.
    /// [`ConnEvent::Drained`](crate::ConnEvent::Drained) comes when the queue falls to it.
    pub low_water: usize,
    /// How much one read may take (default 64 KiB); also how much the read buffer grows by
    /// when a long frame needs more room. Not 0. Values above [`Limits::MAX_READ_CHUNK`]
    /// (16 MiB) are lowered to it, so `usize::MAX` means "as much as allowed".
    pub read_chunk: usize,
    /// The most bytes that may stay queued for the peer (default `usize::MAX`: no cap). More,
    /// once the connection has written what the socket takes, closes it at once: the queue is
    /// dropped and the callback gets `Closed(Some(error))` of kind `OutOfMemory`. Nothing is
    /// ever cut short silently. It is checked after each frame handed to the callback (no
    /// frame follows a reply that passed it) and when the callback (or
    /// [`with`](crate::Connection::with)) returns, so one callback's sends may pass it in the
    /// meantime.
    pub hard_cap: usize,
    /// A queue above this many bytes for `soft_cap_for` closes the connection as the hard cap
    /// does (default `usize::MAX`: no cap). Meant to be below `hard_cap`.
    pub soft_cap: usize,
    /// How long the queue may stay above `soft_cap` (default 0: at once, on the connection's
    /// next timer; see [`Timeouts`] on what runs the timers).
    pub soft_cap_for: Duration,
}

impl Limits {
    /// The largest `read_chunk` used (16 MiB): larger values are lowered to it. A socket
    /// rarely returns more in one read, and the read buffer is allocated in such chunks.
    pub const MAX_READ_CHUNK: usize = 16 << 20;

    /// These limits with `read_chunk` lowered to [`MAX_READ_CHUNK`](Self::MAX_READ_CHUNK), or
    /// `InvalidInput` if they contradict each other.
    pub(crate) fn checked(self) -> io::Result<Limits> {
        let invalid = |what: String| {
            let msg = format!("Connection::with_limits: {what}");
            Err(io::Error::new(ErrorKind::InvalidInput, msg))
        };
        if self.low_water > self.high_water {
            return invalid(format!(
                "low_water ({}) is above high_water ({}): reading would never resume",
                self.low_water, self.high_water
            ));
        }
        if self.read_chunk == 0 {
            return invalid("read_chunk of 0: a read could never take a byte".to_string());
        }
        Ok(Limits {
            read_chunk: self.read_chunk.min(Self::MAX_READ_CHUNK),
            ..self
        })
    }

    /// True if the soft cap is on.
    pub(crate) fn soft_capped(&self) -> bool {
        self.soft_cap != usize::MAX
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            high_water: 1 << 20,
            low_water: 256 << 10,
            read_chunk: 64 << 10,
            hard_cap: usize::MAX,
            soft_cap: usize::MAX,
            soft_cap_for: Duration::ZERO,
        }
    }
}

/// How long a [`Connection`](crate::Connection)'s peer may take, set with
/// [`Connection::with_timeouts`](crate::Connection::with_timeouts). Each is off (`None`) by
/// default.
///
/// A connection that times out is closed at once (what is queued is dropped) and its callback
/// gets `Closed(Some(error))` of kind `TimedOut`, whatever its socket's readiness.
///
/// The timeouts run on the loop's timers, one per connection, which
/// [`run_once`](crate::Selector::run_once) and [`run`](crate::Selector::run) fire. A
/// hand-written `select()`/`dispatch()` loop runs no timers, as in Python: there, no timeout
/// (nor the soft cap) ever fires.
///
/// They cost no system call per message: the connection reads the clock once per callback
/// (vDSO on Linux, no system call) and notes when bytes moved; its one timer is scheduled for
/// the earliest deadline and, when it fires early (the peer was active meanwhile), looks at
/// those notes and schedules itself again for the rest.
///
/// # Examples
///
/// ```
/// use selectloop::Timeouts;
/// use std::time::Duration;
///
/// // nginx's defaults for its keep-alive, client header and send timeouts.
/// let timeouts = Timeouts {
///     idle: Some(Duration::from_secs(75)),
///     frame: Some(Duration::from_secs(60)),
///     send: Some(Duration::from_secs(60)),
/// };
/// # let _ = timeouts;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// No byte received nor sent for this long: the peer is gone or has nothing to say.
    pub idle: Option<Duration>,
    /// A frame that has begun (some of its bytes received) not complete this long after its
    /// first byte: the slowloris defence. It counts while the connection reads only: not while
    /// reading is paused for back-pressure (the clock starts again when reading resumes), nor
    /// once the peer has closed its side or the connection is closing.
    pub frame: Option<Duration>,
    /// Bytes queued for the peer and none accepted by it for this long: a peer that does not
    /// read. A peer that reads slowly but steadily is not affected. A program that sends on
    /// [`Drained`](crate::ConnEvent::Drained) counts as having bytes queued while a `Drained`
    /// is owed: the socket took the whole queue, and the next `Drained` waits for it to have
    /// room again.
    pub send: Option<Duration>,
}

impl Timeouts {
    /// True if any timeout is set.
    pub(crate) fn any(&self) -> bool {
        self.idle.is_some() || self.frame.is_some() || self.send.is_some()
    }
}
