//! nginx's `stub_status` page (`--status PATH`), byte for byte, so that the scripts and
//! Prometheus exporters written for nginx's page read this server's:
//!
//! ```text
//! Active connections: 2 \n
//! server accepts handled requests\n
//!  5 5 17 \n
//! Reading: 0 Writing: 1 Waiting: 1 \n
//! ```
//!
//! (a space before each `\n` on lines 1, 3 and 4, one at the start of line 3, the numbers in
//! plain decimal), sent as `text/plain` with its `Content-Length`, as nginx's
//! `ngx_http_stub_status_module` sends it.
//!
//! The numbers mean what they mean in nginx, counted at the same moments:
//! - **accepts**: connections accepted; **handled**: those of them set up and served (one whose
//!   setup failed — its registration, say — is accepted but not handled: this server has no
//!   connection cap, so the two differ only then);
//! - **Active connections**: client connections open now, whatever their state;
//! - **requests**: requests received, counted — as nginx does — when the first byte of a
//!   request arrives, whether or not its head is ever completed (a request refused, cut short
//!   or timed out counts too), and the status request itself;
//! - **Reading**: connections with a request head begun and not complete;
//! - **Writing**: connections with a request being answered: from its complete head until its
//!   reply is all queued (a file: until its last chunk is), or until the connection is closed
//!   if the reply closes it. The connection asking for this page is one. (nginx counts until
//!   the reply is all handed to the kernel; a reply queued here is written as the socket takes
//!   it, at once for any reply but the last megabyte or so of a file to a slow reader: the
//!   connection has no event for its queue becoming empty.)
//! - **Waiting**: keep-alive connections between requests, and new ones that have sent nothing
//!   yet (nginx counts both the same way).
//!
//! Each connection is in one of the last three states at a time, so Reading + Writing +
//! Waiting = Active (in nginx, a connection in its lingering close is in none of them).
//!
//! Who tells: a connection's [`Tracker`] is shared by its request codec, the only one to see
//! a request's first bytes (`request.rs`'s `Watcher`), and its session, which knows when a
//! request is answered; dropped with the connection, it leaves the counts.
//!
//! Cost: a few relaxed atomic additions per request and per connection, into counters of the
//! loop that owns the connection, each loop's on a cache line of its own (so that the loops of
//! `--threads N` never write to the same line); the page adds the loops' counters up. Without
//! `--status`, nothing is counted at all.

use crate::request::Watcher;
use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// `--status PATH`: where the page is, and the counters of every loop.
pub struct Status {
    path: String,
    loops: Box<[Counters]>,
    /// The next loop to take its counters (see [`Status::for_loop`]).
    next: AtomicUsize,
}

/// One loop's counters, written only by that loop's thread, read by any thread building the
/// page. Aligned so that two loops' counters never share a cache line (128 bytes: the
/// adjacent-line prefetcher of x86 pulls lines in pairs).
#[derive(Default)]
#[repr(align(128))]
struct Counters {
    accepts: AtomicU64,
    handled: AtomicU64,
    requests: AtomicU64,
    active: AtomicU64,
    reading: AtomicU64,
    writing: AtomicU64,
    waiting: AtomicU64,
}

impl Status {
    /// The page at `path`, for a server of `loops` loops.
    pub fn new(path: String, loops: usize) -> Status {
        Status {
            path,
            loops: (0..loops.max(1)).map(|_| Counters::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// True if `path` (a request's path, without its query) is the page's.
    pub fn is_page(&self, path: &str) -> bool {
        path == self.path
    }

    /// The counters of the loop that calls this: each loop calls it once, on its own thread,
    /// and counts its connections there.
    pub fn for_loop(self: &Arc<Self>) -> LoopStatus {
        let index = self.next.fetch_add(1, Relaxed) % self.loops.len();
        LoopStatus(Rc::new((self.clone(), index)))
    }

    /// The counters of every loop, added up (each read on its own: nginx's page is no atomic
    /// snapshot either).
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for c in self.loops.iter() {
            t.accepts += c.accepts.load(Relaxed);
            t.handled += c.handled.load(Relaxed);
            t.requests += c.requests.load(Relaxed);
            t.active += c.active.load(Relaxed);
            t.reading += c.reading.load(Relaxed);
            t.writing += c.writing.load(Relaxed);
            t.waiting += c.waiting.load(Relaxed);
        }
        t
    }
}

/// What the page shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub active: u64,
    pub accepts: u64,
    pub handled: u64,
    pub requests: u64,
    pub reading: u64,
    pub writing: u64,
    pub waiting: u64,
}

impl fmt::Display for Totals {
    /// The page's body, as nginx writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Totals {
            active,
            accepts,
            handled,
            requests,
            reading,
            writing,
            waiting,
        } = self;
        write!(
            f,
            "Active connections: {active} \nserver accepts handled requests\n \
             {accepts} {handled} {requests} \nReading: {reading} Writing: {writing} \
             Waiting: {waiting} \n"
        )
    }
}

/// A loop's own counters (and, through them, the page).
#[derive(Clone)]
pub struct LoopStatus(Rc<(Arc<Status>, usize)>);

impl LoopStatus {
    fn counters(&self) -> &Counters {
        let (status, index) = &*self.0;
        &status.loops[*index]
    }

    /// The page's settings and every loop's counters.
    pub fn status(&self) -> &Status {
        &self.0 .0
    }

    /// A connection was accepted: counts it, and returns what follows it until it closes
    /// (call [`Tracker::handled`] once it is set up).
    pub fn accepted(&self) -> Rc<Tracker> {
        let counters = self.counters();
        counters.accepts.fetch_add(1, Relaxed);
        counters.active.fetch_add(1, Relaxed);
        counters.waiting.fetch_add(1, Relaxed);
        Rc::new(Tracker {
            status: self.clone(),
            phase: Cell::new(Phase::Waiting),
            begun: Cell::new(false),
        })
    }
}

/// Where a connection is, for the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Waiting,
    Reading,
    Writing,
}

/// One connection's state, shared by its request codec (which sees a request begin and its
/// head end) and its session (which answers it). Dropped with the connection: it then leaves
/// the counts.
pub struct Tracker {
    status: LoopStatus,
    phase: Cell<Phase>,
    /// The request at the front of the bytes received has been counted (its first byte came).
    begun: Cell<bool>,
}

impl Tracker {
    /// The connection is set up (registered): it counts as handled.
    pub fn handled(&self) {
        self.status.counters().handled.fetch_add(1, Relaxed);
    }

    /// A request is being answered.
    pub fn answering(&self) {
        self.enter(Phase::Writing);
    }

    /// Every request received is answered and the connection stays open: it reads the next
    /// one if its first bytes are here, else waits for it.
    pub fn answered(&self) {
        self.enter(match self.begun.get() {
            true => Phase::Reading,
            false => Phase::Waiting,
        });
    }

    /// The page, as it is now.
    pub fn page(&self) -> String {
        self.status.status().totals().to_string()
    }

    fn enter(&self, phase: Phase) {
        let old = self.phase.replace(phase);
        if old != phase {
            self.gauge(old).fetch_sub(1, Relaxed);
            self.gauge(phase).fetch_add(1, Relaxed);
        }
    }

    fn gauge(&self, phase: Phase) -> &AtomicU64 {
        let counters = self.status.counters();
        match phase {
            Phase::Waiting => &counters.waiting,
            Phase::Reading => &counters.reading,
            Phase::Writing => &counters.writing,
        }
    }
}

impl Watcher for Tracker {
    /// The first time for a request: counts it, and a connection that was waiting is now
    /// reading it.
    fn bytes_arrived(&self) {
        if self.begun.replace(true) {
            return;
        }
        self.status.counters().requests.fetch_add(1, Relaxed);
        if self.phase.get() == Phase::Waiting {
            self.enter(Phase::Reading);
        }
    }

    fn head_decoded(&self) {
        self.begun.set(false);
    }
}

impl Drop for Tracker {
    /// The connection is closed (or its setup failed): it leaves the counts.
    fn drop(&mut self) {
        self.gauge(self.phase.get()).fetch_sub(1, Relaxed);
        self.status.counters().active.fetch_sub(1, Relaxed);
    }
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field("phase", &self.phase.get())
            .field("begun", &self.begun.get())
            .finish_non_exhaustive()
    }
}
