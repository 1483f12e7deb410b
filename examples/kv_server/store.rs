//! The key space: byte-string keys and values, with optional expiry, shared by every loop.
//!
//! [`Store`] holds Redis's 16 databases, each a few [`Shard`]s, each a hash map behind a
//! `Mutex`; a key lives in the shard of its database its hash picks. With one loop a
//! database is one shard, locked once per batch of requests (see [`Session`]): the lock is an
//! uncontended atomic per read, nothing per request. With more loops there are 16 shards per
//! loop (up to 256) in each database, so that two loops rarely want the same one. The map is
//! an `IndexMap`: its entries in a `Vec` give `SCAN` a cursor that holds while keys come and
//! go ([`Shard::scan`]).
//!
//! Expiry, as Redis does it: a key past its deadline is gone for every command at once (each
//! access checks, and deletes it), and a sweep deletes those nobody asks for, as Redis 7's
//! `activeExpireCycle` does. A round samples 20 random keys among those with a deadline (each
//! shard keeps them in a `Vec` with their deadlines, each entry knowing its slot, so that
//! sampling, judging a key and removing it are O(1), with no lookup for a key not due) and
//! deletes the expired ones; rounds go on while a round finds more than 10% of its sample
//! expired (Redis 7's default), so that once the sweep has caught up, expired keys are about a
//! tenth of those with a deadline at most. A sweep is bounded in time (25 ms every 100 ms, and
//! 1 ms fast sweeps while it falls behind: see `main.rs`): the clock is read every 16 rounds
//! (320 keys), not per key, and a shard stays locked for those 16 rounds at most, then the
//! next shard with work gets its turn; a sweep cut short resumes at the shard it stopped at.
//! Deleting a key costs about what setting it does (`docs/kv_expiry.md`: about 1.1 µs of CPU
//! with a million keys, mostly cache misses), so keys expiring as fast as the server takes
//! them are swept as fast: 430,000–580,000 a second with one loop on a busy 2-core VM, where
//! the old sweep, at most 16 rounds per shard every 100 ms, took 3,200.
//!
//! Time is in milliseconds on a monotonic clock, in Unix time's range (the wall clock at start
//! plus the time since), so that the overflow checks on `EX`/`EXPIRE` refuse what Redis refuses.
//!
//! Each shard keeps, under its lock, what `INFO` reports of it (see `info.rs`): the bytes its
//! keys and values hold, the keys deleted because their deadline had passed (`expired_keys`:
//! on access, by the sweep, or overwritten by `SET`/`MSET`, where Redis counts them too), and
//! the lookups of `GET`, `MGET`, `EXISTS`, `TTL`, `PTTL`, `STRLEN`, `GETDEL`, `GETSET` and
//! `SET ... GET` that found a key or not (`keyspace_hits`, `keyspace_misses`: the commands
//! Redis counts them for). Plain integers, no atomics: the shard is locked for the change
//! anyway.

use crate::info::Stats;
use indexmap::IndexMap;
use std::hash::BuildHasher;
use std::mem;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Keys sampled in one round of the sweep (Redis's `ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP`).
const SAMPLE: usize = 20;

/// Another round follows while more than this percentage of a round's sample was expired
/// (Redis 7's `active-expire-effort` 1).
const STALE_PERCENT: usize = 10;

/// Rounds between two readings of the clock, and the most a shard stays locked for in a row
/// (Redis reads the clock every 16 rounds).
const ROUNDS_PER_SLICE: usize = 16;

/// A value and its deadline.
#[derive(Debug)]
pub struct Entry {
    pub value: Vec<u8>,
    expiry: Option<Expiry>,
}

impl Entry {
    /// Its deadline (ms), if it has one.
    pub fn expires_at(&self) -> Option<i64> {
        self.expiry.map(|e| e.at)
    }
}

#[derive(Clone, Copy, Debug)]
struct Expiry {
    at: i64,
    /// Where the key is in its shard's `volatile`.
    slot: usize,
}

/// What a lookup found. (`Expired` is left for the caller to remove: the borrow checker does
/// not let one function both return an entry and remove it on another path.)
pub enum Found<'a> {
    Live(&'a mut Entry),
    Expired,
    Missing,
}

/// One part of the key space.
#[derive(Debug, Default)]
pub struct Shard {
    /// The keys, in a hash table over a `Vec` of entries: the `Vec`'s order gives `SCAN` its
    /// cursor (see [`Shard::scan`]).
    map: IndexMap<Vec<u8>, Entry>,
    /// The keys with a deadline, each with its deadline (the same as its entry's), for the
    /// sweep to sample: a key is judged without looking it up in `map`.
    volatile: Vec<Volatile>,
    /// The bytes the keys and values hold (their buffers' capacity: in `map`, and the copies
    /// of the keys in `volatile`), kept up to date by every change.
    bytes: usize,
    /// Keys deleted because their deadline had passed (see the module docs).
    expired: u64,
    /// Lookups by `GET`, `MGET`, `EXISTS`, `TTL`... (see the module docs) that found a live
    /// key, and that did not.
    hits: u64,
    misses: u64,
}

/// What `INFO` reports of one shard, or of the store (their sum).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardInfo {
    /// Keys, expired ones not deleted yet included (as Redis's `db0:keys=`).
    pub keys: usize,
    /// Keys with a deadline (`expires=`).
    pub volatile: usize,
    /// An estimate of the heap bytes the shard holds: see [`Shard::memory`].
    pub memory: usize,
    pub expired: u64,
    pub hits: u64,
    pub misses: u64,
}

impl std::ops::AddAssign for ShardInfo {
    fn add_assign(&mut self, other: ShardInfo) {
        self.keys += other.keys;
        self.volatile += other.volatile;
        self.memory += other.memory;
        self.expired += other.expired;
        self.hits += other.hits;
        self.misses += other.misses;
    }
}

/// A key with a deadline, in its shard's `volatile`.
#[derive(Debug)]
struct Volatile {
    at: i64,
    key: Vec<u8>,
}

impl Shard {
    /// The number of keys, those expired but not deleted yet included (as Redis's `DBSIZE`).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// What `INFO` reports of this shard.
    pub fn info(&self) -> ShardInfo {
        ShardInfo {
            keys: self.map.len(),
            volatile: self.volatile.len(),
            memory: self.memory(),
            expired: self.expired,
            hits: self.hits,
            misses: self.misses,
        }
    }

    /// An estimate of the heap bytes the shard holds, cheap to compute (no walk over the keys):
    /// the keys' and values' buffers (`bytes`, counted exactly), plus the map's entries (each
    /// a key, an entry and its hash) and its hash table's slots (an index and one control
    /// byte; the table keeps about an eighth of them free: 8/7 of its capacity), and the
    /// deadline list's, at their capacity. The allocator's own overhead is not known here, and
    /// not counted.
    pub fn memory(&self) -> usize {
        let entry = mem::size_of::<(Vec<u8>, Entry)>() + mem::size_of::<u64>();
        let slot = mem::size_of::<usize>() + 1;
        let entries = self.map.capacity() * entry;
        let slots = self.map.capacity() * 8 / 7 * slot;
        self.bytes + entries + slots + self.volatile.capacity() * mem::size_of::<Volatile>()
    }

    /// Counts a lookup of a command Redis counts (`keyspace_hits`, `_misses`; see the module
    /// docs).
    pub fn count_lookup(&mut self, hit: bool) {
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
    }

    /// Deletes `key`, found past its deadline (`Found::Expired`), and counts it as expired.
    pub fn remove_expired(&mut self, key: &[u8]) {
        if self.remove(key) {
            self.expired += 1;
        }
    }

    /// Notes that a live entry's value, changed in place (`INCR`), went from a buffer of
    /// `before` bytes to one of `after`.
    pub fn value_resized(&mut self, before: usize, after: usize) {
        self.bytes = self.bytes - before + after;
    }

    /// Looks `key` up; an expired one is `Expired` (the caller then removes it).
    pub fn find(&mut self, key: &[u8], clock: &mut Clock) -> Found<'_> {
        match self.map.get_mut(key) {
            None => Found::Missing,
            Some(e) if e.expiry.is_some_and(|x| x.at <= clock.now()) => Found::Expired,
            Some(e) => Found::Live(e),
        }
    }

    /// True if `key` is there and not expired; an expired one is deleted (and counted).
    pub fn exists(&mut self, key: &[u8], clock: &mut Clock) -> bool {
        match self.find(key, clock) {
            Found::Live(_) => true,
            Found::Expired => {
                self.remove_expired(key);
                false
            }
            Found::Missing => false,
        }
    }

    /// Sets `key` to `value`, with deadline `at` (or none). A key it replaces that was past
    /// its deadline counts as expired, as in Redis (the clock is read only for a key that had
    /// a deadline).
    pub fn set(&mut self, key: &[u8], value: &[u8], at: Option<i64>, clock: &mut Clock) {
        match self.map.get_mut(key) {
            Some(entry) => {
                if entry.expiry.is_some_and(|x| x.at <= clock.now()) {
                    self.expired += 1;
                }
                // Reuse the value's buffer unless it is much larger than needed.
                let before = entry.value.capacity();
                if before / 2 > value.len() + 64 {
                    entry.value = value.to_vec();
                } else {
                    entry.value.clear();
                    entry.value.extend_from_slice(value);
                }
                self.bytes = self.bytes - before + entry.value.capacity();
                if entry.expiry.is_none() && at.is_none() {
                    return;
                }
            }
            None => {
                let (key, value) = (key.to_vec(), value.to_vec());
                self.bytes += key.capacity() + value.capacity();
                let entry = Entry {
                    value,
                    expiry: None,
                };
                self.map.insert(key, entry);
                if at.is_none() {
                    return;
                }
            }
        }
        self.set_expiry(key, at);
    }

    /// Gives the existing `key` deadline `at`, or none.
    pub fn set_expiry(&mut self, key: &[u8], at: Option<i64>) {
        let Some(entry) = self.map.get_mut(key) else {
            return;
        };
        let unlink = match (&mut entry.expiry, at) {
            (Some(expiry), Some(at)) => {
                expiry.at = at;
                if let Some(volatile) = self.volatile.get_mut(expiry.slot) {
                    volatile.at = at;
                }
                None
            }
            (None, Some(at)) => {
                let key = key.to_vec();
                self.bytes += key.capacity();
                self.volatile.push(Volatile { at, key });
                let slot = self.volatile.len() - 1;
                entry.expiry = Some(Expiry { at, slot });
                None
            }
            (Some(expiry), None) => {
                let slot = expiry.slot;
                entry.expiry = None;
                Some(slot)
            }
            (None, None) => None,
        };
        if let Some(slot) = unlink {
            self.unlink(slot);
        }
    }

    /// Deletes `key`; true if it was there (expired or not).
    pub fn remove(&mut self, key: &[u8]) -> bool {
        match self.map.swap_remove_entry(key) {
            Some((key, entry)) => {
                self.bytes -= key.capacity() + entry.value.capacity();
                if let Some(expiry) = entry.expiry {
                    self.unlink(expiry.slot);
                }
                true
            }
            None => false,
        }
    }

    /// Removes slot `slot` of `volatile`; the key moved into it learns its new slot.
    fn unlink(&mut self, slot: usize) -> Option<Vec<u8>> {
        if slot >= self.volatile.len() {
            return None; // cannot happen: every deadline's slot is kept right
        }
        let key = self.volatile.swap_remove(slot).key;
        self.bytes -= key.capacity();
        if let Some(moved) = self.volatile.get(slot) {
            let entry = self.map.get_mut(moved.key.as_slice());
            if let Some(expiry) = entry.and_then(|e| e.expiry.as_mut()) {
                expiry.slot = slot;
            }
        }
        Some(key)
    }

    /// One step of `SCAN` (and all of `KEYS`, with `count` unbounded): calls `f` with each
    /// live key among the `count` entries below position `bound` of the map (0: from the
    /// top), going down, takes those it looked at off `count`, and returns the bound to go on
    /// from (0: this shard is done). Expired keys are passed over (the sweep deletes them).
    ///
    /// Why down: a key deleted leaves its place to the map's last entry. Going down from the
    /// top, that entry comes from above the cursor (seen already: it may be given twice, which
    /// `SCAN` allows) or from below it (not seen yet, and still below). Entries only ever move
    /// down, and new ones are added at the top, so a key present from the first call to the
    /// last is given at least once, as Redis promises, and each call costs `count` entries.
    pub fn scan(
        &self,
        bound: usize,
        count: &mut usize,
        clock: &mut Clock,
        mut f: impl FnMut(&[u8]),
    ) -> usize {
        let len = self.map.len();
        let top = if bound == 0 { len } else { bound.min(len) };
        let end = top.saturating_sub(*count);
        *count -= top - end;
        for i in (end..top).rev() {
            if let Some((key, entry)) = self.map.get_index(i) {
                if entry.expiry.is_none_or(|x| x.at > clock.now()) {
                    f(key);
                }
            }
        }
        end
    }

    /// Deletes every key (the counters stay: `FLUSHDB` does not reset Redis's statistics).
    pub fn clear(&mut self) {
        self.map = IndexMap::new();
        self.volatile = Vec::new();
        self.bytes = 0;
    }

    /// Up to `rounds` rounds of the sweep (see the module docs), stopping after a round that
    /// finds at most `STALE_PERCENT` of its sample expired. Returns the number of keys
    /// deleted, and whether the last round found more (so more rounds would pay).
    pub fn sweep(&mut self, now: i64, rng: &mut u64, rounds: usize) -> (usize, bool) {
        let mut deleted = 0;
        for _ in 0..rounds {
            let sample = SAMPLE.min(self.volatile.len());
            let mut expired = 0;
            for _ in 0..sample {
                if self.volatile.is_empty() {
                    break;
                }
                let slot = (next_random(rng) % self.volatile.len() as u64) as usize;
                if self.volatile[slot].at <= now {
                    if let Some(key) = self.unlink(slot) {
                        if let Some((key, entry)) = self.map.swap_remove_entry(&key) {
                            self.bytes -= key.capacity() + entry.value.capacity();
                        }
                    }
                    expired += 1;
                }
            }
            deleted += expired;
            self.expired += expired as u64;
            if sample == 0 || expired * 100 <= sample * STALE_PERCENT {
                return (deleted, false);
            }
        }
        (deleted, true)
    }
}

/// What one [`Store::sweep`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Keys deleted.
    pub deleted: usize,
    /// The time budget ran out with expired keys likely left (a shard's last round still
    /// found many, or a shard was not reached).
    pub out_of_time: bool,
}

/// xorshift64: the sweep's sampling needs no better.
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// The current time in milliseconds (see the module docs).
pub fn now_ms() -> i64 {
    static START: OnceLock<(Instant, i64)> = OnceLock::new();
    let (start, unix_ms) = START.get_or_init(|| {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH);
        let ms = since_epoch.map_or(0, |d| d.as_millis() as i64);
        (Instant::now(), ms)
    });
    unix_ms + start.elapsed().as_millis() as i64
}

/// The time, read once per batch of requests, when first needed (a batch that touches no
/// deadline reads no clock).
#[derive(Debug, Default)]
pub struct Clock(Option<i64>);

impl Clock {
    pub fn now(&mut self) -> i64 {
        *self.0.get_or_insert_with(now_ms)
    }
}

/// Databases, as a Redis server has by default (`databases 16`): `SELECT 0` to `SELECT 15`.
pub const DATABASES: usize = 16;

/// The key space: see the module docs.
#[derive(Debug)]
pub struct Store {
    /// Every database's shards: database `d`'s are `d * per_db .. (d + 1) * per_db`.
    shards: Box<[Mutex<Shard>]>,
    per_db: usize,
    hasher: std::hash::RandomState,
    /// The shard the next sweep starts at: where the last one ran out of time.
    sweep_from: AtomicUsize,
    /// The server's counters for `INFO` (connections, commands...), shared with the store by
    /// every loop.
    stats: Stats,
    /// The longest value `APPEND` may make (`--max-bulk`): a GET reply must always fit.
    max_bulk: usize,
}

impl Store {
    /// A store of [`DATABASES`] databases for `loops` loops: each database one shard for one
    /// loop, 16 per loop for more (up to 256: more would not make two loops less likely to
    /// meet on a machine's cores); no value longer than `max_bulk` (see [`Store::max_bulk`]).
    pub fn new(loops: usize, max_bulk: usize) -> Store {
        let per_db = if loops <= 1 { 1 } else { loops.min(16) * 16 };
        Store {
            shards: (0..DATABASES * per_db).map(|_| Mutex::default()).collect(),
            per_db,
            hasher: std::hash::RandomState::new(),
            sweep_from: AtomicUsize::new(0),
            stats: Stats::new(),
            max_bulk,
        }
    }

    /// The longest value a command may make of others (`APPEND`): `--max-bulk`, the longest
    /// a client may send, so that the largest GET reply is bounded as `--max-output` expects.
    pub fn max_bulk(&self) -> usize {
        self.max_bulk
    }

    /// The server's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The number of shards of one database.
    pub fn shards_per_db(&self) -> usize {
        self.per_db
    }

    /// The shard of `key` in database `db`.
    pub fn shard_of(&self, db: usize, key: &[u8]) -> usize {
        db * self.per_db
            + match self.per_db {
                1 => 0,
                n => (self.hasher.hash_one(key) % n as u64) as usize,
            }
    }

    /// Locks shard `i` (a poisoned lock is taken over: a panic elsewhere cannot leave a shard
    /// half-changed, each change being one map call).
    pub fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        let shard = &self.shards[i % self.shards.len()];
        shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sweeps the shards for at most about `budget` (see the module docs): each shard in
    /// turn, from where the last sweep ran out of time, is locked for up to
    /// `ROUNDS_PER_SLICE` rounds; then again those whose last round found many expired keys,
    /// until none did or the time is up. The clock is read once per such slice.
    pub fn sweep(&self, rng: &mut u64, budget: Duration) -> Swept {
        let start = Instant::now();
        let n = self.shards.len();
        let from = self.sweep_from.load(Ordering::Relaxed) % n;
        let mut hot = vec![true; n]; // not known to be swept enough yet
        let mut swept = Swept::default();
        while hot.contains(&true) {
            for i in (from..n).chain(0..from) {
                if !hot[i] {
                    continue;
                }
                let (deleted, more) = self.lock(i).sweep(now_ms(), rng, ROUNDS_PER_SLICE);
                swept.deleted += deleted;
                hot[i] = more;
                if start.elapsed() >= budget {
                    let next = if more { i } else { (i + 1) % n };
                    self.sweep_from.store(next, Ordering::Relaxed);
                    swept.out_of_time = hot.contains(&true);
                    return swept;
                }
            }
        }
        swept
    }
}

/// A batch of requests' view of the store, in the client's selected database: keeps the
/// shard it used last locked (with one loop, the database's only shard, for the whole batch
/// unless it selects another), and the time once read. It also counts the commands run, and
/// adds them to `total_commands_processed` once, when dropped: one atomic add per batch, not
/// per command.
pub struct Session<'a> {
    store: &'a Store,
    held: Option<Held<'a>>,
    pub clock: Clock,
    /// Commands run and not yet added to the server's count.
    commands: u64,
    /// The database the commands act on (`SELECT`).
    db: usize,
}

/// The shards a session holds locked.
enum Held<'a> {
    /// Shard `.0`, the last one used.
    One(usize, MutexGuard<'a, Shard>),
    /// All of them, in index order ([`Session::exclusive`]).
    All(Vec<MutexGuard<'a, Shard>>),
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.store.stats.add_commands(self.commands);
    }
}

impl<'a> Session<'a> {
    /// A session on database `db` (below [`DATABASES`]).
    pub fn new(store: &'a Store, db: usize) -> Session<'a> {
        Session {
            store,
            held: None,
            clock: Clock::default(),
            commands: 0,
            db: db % DATABASES,
        }
    }

    /// The store.
    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// Makes the next commands act on database `db` (below [`DATABASES`]).
    pub fn select(&mut self, db: usize) {
        self.db = db % DATABASES;
    }

    /// Counts a command run (see the type's docs).
    pub fn count_command(&mut self) {
        self.commands += 1;
    }

    /// The commands this session ran so far (not yet in the server's count).
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// The shard of `key`, locked, and the clock.
    pub fn shard(&mut self, key: &[u8]) -> (&mut Shard, &mut Clock) {
        self.shard_at(self.store.shard_of(self.db, key))
    }

    /// Shard `i` of the selected database (below [`Store::shards_per_db`]), locked, and the
    /// clock (`SCAN` walks them in turn).
    pub fn shard_of_db(&mut self, i: usize) -> (&mut Shard, &mut Clock) {
        self.shard_at(self.db * self.store.per_db + i % self.store.per_db)
    }

    /// Runs `f` with every shard locked, so that what it does is atomic: no other loop sees
    /// the store between two of its commands (`EXEC`). Within, the session's calls use those
    /// locks.
    pub fn exclusive<R>(&mut self, f: impl FnOnce(&mut Session<'a>) -> R) -> R {
        // Locked in index order, as `lock_all`: two loops never wait for each other.
        self.held = None;
        let store = self.store;
        self.held = Some(Held::All(
            (0..store.shards.len()).map(|i| store.lock(i)).collect(),
        ));
        let result = f(self);
        self.held = None;
        result
    }

    /// Runs `f` with every shard holding one of `keys` (in the selected database) locked, so
    /// that a command on several keys is atomic. They are locked in index order, after
    /// letting the held one go: two loops can never wait for each other.
    pub fn with_keys<'k, R>(
        &mut self,
        keys: impl Iterator<Item = &'k [u8]> + Clone,
        f: impl FnOnce(&mut Locked<'_, 'a>, &mut Clock) -> R,
    ) -> R {
        if self.store.per_db == 1 || matches!(self.held, Some(Held::All(_))) {
            return self.with_range(self.db_range(), f);
        }
        let db = self.db;
        let mut indexes: Vec<usize> = keys.map(|key| self.store.shard_of(db, key)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        self.lock_all(indexes, f)
    }

    /// Runs `f` with every shard of the selected database locked.
    pub fn with_db<R>(&mut self, f: impl FnOnce(&mut Locked<'_, 'a>, &mut Clock) -> R) -> R {
        self.with_range(self.db_range(), f)
    }

    /// Runs `f` with every shard of every database locked.
    pub fn with_everything<R>(
        &mut self,
        f: impl FnOnce(&mut Locked<'_, 'a>, &mut Clock) -> R,
    ) -> R {
        self.with_range(0..self.store.shards.len(), f)
    }

    /// The selected database's shards.
    fn db_range(&self) -> std::ops::Range<usize> {
        self.db * self.store.per_db..(self.db + 1) * self.store.per_db
    }

    /// Runs `f` with shards `range` locked: those held if all are (`exclusive`), the one held
    /// if it is the only one, else locked now.
    fn with_range<R>(
        &mut self,
        range: std::ops::Range<usize>,
        f: impl FnOnce(&mut Locked<'_, 'a>, &mut Clock) -> R,
    ) -> R {
        let (store, db) = (self.store, self.db);
        match &mut self.held {
            Some(Held::All(guards)) => {
                let shards = guards[range.clone()].iter_mut().map(|g| &mut **g);
                let shards = Shards::Many(range.clone().zip(shards).collect());
                f(&mut Locked { store, db, shards }, &mut self.clock)
            }
            _ if range.len() == 1 => {
                let (shard, clock) = self.shard_at(range.start);
                let shards = Shards::One(range.start, shard);
                f(&mut Locked { store, db, shards }, clock)
            }
            _ => self.lock_all(range.collect(), f),
        }
    }

    /// Shard `i`, locked, and the clock.
    fn shard_at(&mut self, i: usize) -> (&mut Shard, &mut Clock) {
        if matches!(&self.held, Some(Held::One(held, _)) if *held != i) {
            self.held = None; // one lock at a time: no deadlock
        }
        let store = self.store;
        let shard = match self.held.get_or_insert_with(|| Held::One(i, store.lock(i))) {
            Held::One(_, guard) => &mut **guard,
            Held::All(guards) => &mut *guards[i],
        };
        (shard, &mut self.clock)
    }

    fn lock_all<R>(
        &mut self,
        indexes: Vec<usize>,
        f: impl FnOnce(&mut Locked<'_, 'a>, &mut Clock) -> R,
    ) -> R {
        self.held = None;
        let mut guards: Vec<(usize, MutexGuard<'a, Shard>)> = indexes
            .into_iter()
            .map(|i| (i, self.store.lock(i)))
            .collect();
        let shards = Shards::Many(guards.iter_mut().map(|(i, g)| (*i, &mut **g)).collect());
        let (store, db) = (self.store, self.db);
        f(&mut Locked { store, db, shards }, &mut self.clock)
    }
}

/// The shards a command holds.
pub struct Locked<'s, 'a> {
    store: &'a Store,
    /// The database the keys are looked up in.
    db: usize,
    shards: Shards<'s>,
}

/// The shards of a [`Locked`], by index.
enum Shards<'s> {
    /// One (a database's only shard): no allocation.
    One(usize, &'s mut Shard),
    /// In index order.
    Many(Vec<(usize, &'s mut Shard)>),
}

impl Locked<'_, '_> {
    /// The shard of `key` in the session's database, which must be one of the keys the
    /// shards were locked for.
    pub fn shard(&mut self, key: &[u8]) -> &mut Shard {
        match &mut self.shards {
            Shards::One(_, shard) => shard,
            Shards::Many(shards) => {
                let i = self.store.shard_of(self.db, key);
                let at = shards.binary_search_by_key(&i, |(i, _)| *i);
                shards[at.unwrap_or(0)].1 // always found: locked for this very key
            }
        }
    }

    /// Calls `f` on every shard locked, with its database.
    pub fn each(&mut self, mut f: impl FnMut(usize, &mut Shard)) {
        let per_db = self.store.per_db;
        match &mut self.shards {
            Shards::One(i, shard) => f(*i / per_db, shard),
            Shards::Many(shards) => shards
                .iter_mut()
                .for_each(|(i, shard)| f(*i / per_db, shard)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes the shard's keys and values hold, counted afresh.
    fn recount(shard: &Shard) -> usize {
        let map: usize = (shard.map.iter())
            .map(|(key, entry)| key.capacity() + entry.value.capacity())
            .sum();
        map + shard
            .volatile
            .iter()
            .map(|v| v.key.capacity())
            .sum::<usize>()
    }

    /// `bytes` is kept exact through every kind of change: new keys, overwrites (a buffer kept
    /// or replaced), deadlines set and cleared, deletions, expiry on access and by the sweep,
    /// values changed in place (`INCR`), and `FLUSHDB`.
    #[test]
    fn byte_accounting_follows_every_change() {
        let mut shard = Shard::default();
        let mut rng = 0x9e37_79b9_7f4a_7c15;
        for i in 0..20_000i64 {
            let mut clock = Clock(Some(1_000 + i / 10));
            let r = next_random(&mut rng);
            let key = format!("key{}", r % 300).into_bytes();
            let value = vec![b'v'; (r >> 16) as usize % 300];
            let deadline = clock.now() + (r >> 40) as i64 % 200;
            match (r >> 8) % 8 {
                0 | 1 => shard.set(&key, &value, None, &mut clock),
                2 => shard.set(&key, &value, Some(deadline), &mut clock),
                3 => {
                    shard.remove(&key);
                }
                4 => shard.set_expiry(&key, (r & 1 == 1).then_some(deadline)),
                5 => match shard.find(&key, &mut clock) {
                    // As INCR changes a value in place.
                    Found::Live(entry) => {
                        let before = entry.value.capacity();
                        entry.value.clear();
                        entry.value.extend_from_slice(&value[..value.len() % 21]);
                        let after = entry.value.capacity();
                        shard.value_resized(before, after);
                    }
                    Found::Expired => shard.remove_expired(&key),
                    Found::Missing => {}
                },
                6 => {
                    shard.exists(&key, &mut clock);
                }
                _ => {
                    shard.sweep(clock.now(), &mut rng, 4);
                }
            }
            if i % 5_000 == 4_999 {
                shard.clear();
            }
            assert_eq!(shard.bytes, recount(&shard), "after change {i}");
        }
        assert!(
            shard.info().expired > 0,
            "no key expired: the test missed a path"
        );
    }

    /// A key past its deadline counts as expired whichever way it goes (on access, overwritten
    /// by SET, by the sweep), as in Redis; a deletion (DEL, EXPIRE in the past, FLUSHDB) and an
    /// overwrite before the deadline do not.
    #[test]
    fn keys_past_their_deadline_count_as_expired_however_they_go() {
        let mut shard = Shard::default();
        let mut early = Clock(Some(1_000));
        for key in [b"a", b"b", b"c", b"d", b"e"] {
            shard.set(key, b"v", Some(1_500), &mut early);
        }
        shard.set(b"f", b"v", Some(5_000), &mut early);
        shard.set(b"g", b"v", Some(5_000), &mut early);
        let mut late = Clock(Some(2_000));
        assert!(!shard.exists(b"a", &mut late)); // on access: 1
        shard.set(b"b", b"w", None, &mut late); // overwritten by SET: 2
        assert!(matches!(shard.find(b"c", &mut late), Found::Expired));
        shard.remove_expired(b"c"); // as GET does: 3
        shard.set(b"f", b"w", None, &mut late); // before its deadline: not counted
        assert!(shard.remove(b"g")); // deleted: not counted
        assert_eq!(shard.info().expired, 3);
        let (deleted, _) = shard.sweep(late.now(), &mut 1, 100); // d and e: 5
        assert_eq!(deleted, 2);
        let info = shard.info();
        assert_eq!((info.keys, info.volatile, info.expired), (2, 0, 5));
        shard.clear();
        assert_eq!(shard.info().expired, 5, "FLUSHDB keeps the count");
        assert_eq!(shard.info().memory, 0, "nothing held after FLUSHDB");
    }
}
