//! The key space: byte-string keys and values, with optional expiry, shared by every loop.
//!
//! [`Store`] is a few [`Shard`]s, each a `HashMap` behind a `Mutex`; a key lives in the shard
//! its hash picks. With one loop there is one shard, locked once per batch of requests (see
//! [`Session`]): the lock is an uncontended atomic per read, nothing per request. With more
//! loops there are 16 shards per loop, so that two loops rarely want the same one.
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

use std::collections::HashMap;
use std::hash::BuildHasher;
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
    map: HashMap<Vec<u8>, Entry>,
    /// The keys with a deadline, each with its deadline (the same as its entry's), for the
    /// sweep to sample: a key is judged without looking it up in `map`.
    volatile: Vec<Volatile>,
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

    /// Looks `key` up; an expired one is `Expired` (the caller then removes it).
    pub fn find(&mut self, key: &[u8], clock: &mut Clock) -> Found<'_> {
        match self.map.get_mut(key) {
            None => Found::Missing,
            Some(e) if e.expiry.is_some_and(|x| x.at <= clock.now()) => Found::Expired,
            Some(e) => Found::Live(e),
        }
    }

    /// True if `key` is there and not expired; an expired one is deleted.
    pub fn exists(&mut self, key: &[u8], clock: &mut Clock) -> bool {
        match self.find(key, clock) {
            Found::Live(_) => true,
            Found::Expired => {
                self.remove(key);
                false
            }
            Found::Missing => false,
        }
    }

    /// Sets `key` to `value`, with deadline `at` (or none).
    pub fn set(&mut self, key: &[u8], value: &[u8], at: Option<i64>) {
        match self.map.get_mut(key) {
            Some(entry) => {
                // Reuse the value's buffer unless it is much larger than needed.
                if entry.value.capacity() / 2 > value.len() + 64 {
                    entry.value = value.to_vec();
                } else {
                    entry.value.clear();
                    entry.value.extend_from_slice(value);
                }
                if entry.expiry.is_none() && at.is_none() {
                    return;
                }
            }
            None => {
                let value = value.to_vec();
                self.map.insert(
                    key.to_vec(),
                    Entry {
                        value,
                        expiry: None,
                    },
                );
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
        match self.map.remove(key) {
            Some(entry) => {
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
        if let Some(moved) = self.volatile.get(slot) {
            let entry = self.map.get_mut(moved.key.as_slice());
            if let Some(expiry) = entry.and_then(|e| e.expiry.as_mut()) {
                expiry.slot = slot;
            }
        }
        Some(key)
    }

    /// Deletes every key.
    pub fn clear(&mut self) {
        self.map = HashMap::new();
        self.volatile = Vec::new();
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
                        self.map.remove(&key);
                    }
                    expired += 1;
                }
            }
            deleted += expired;
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

/// The key space: see the module docs.
#[derive(Debug)]
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    hasher: std::hash::RandomState,
    /// The shard the next sweep starts at: where the last one ran out of time.
    sweep_from: AtomicUsize,
}

impl Store {
    /// A store for `loops` loops: one shard for one loop, 16 per loop for more.
    pub fn new(loops: usize) -> Store {
        let shards = if loops <= 1 { 1 } else { loops * 16 };
        Store {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            hasher: std::hash::RandomState::new(),
            sweep_from: AtomicUsize::new(0),
        }
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// The shard of `key`.
    pub fn shard_of(&self, key: &[u8]) -> usize {
        match self.shards.len() {
            1 => 0,
            n => (self.hasher.hash_one(key) % n as u64) as usize,
        }
    }

    /// Locks shard `i` (a poisoned lock is taken over: a panic elsewhere cannot leave a shard
    /// half-changed, each change being one `HashMap` call).
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

/// A batch of requests' view of the store: keeps the shard it used last locked (with one
/// shard, for the whole batch), and the time once read.
pub struct Session<'a> {
    store: &'a Store,
    held: Option<(usize, MutexGuard<'a, Shard>)>,
    pub clock: Clock,
}

impl<'a> Session<'a> {
    pub fn new(store: &'a Store) -> Session<'a> {
        Session {
            store,
            held: None,
            clock: Clock::default(),
        }
    }

    /// The shard of `key`, locked, and the clock.
    pub fn shard(&mut self, key: &[u8]) -> (&mut Shard, &mut Clock) {
        let i = self.store.shard_of(key);
        if self.held.as_ref().is_some_and(|(held, _)| *held != i) {
            self.held = None; // one lock at a time: no deadlock
        }
        let store = self.store;
        let (_, guard) = self.held.get_or_insert_with(|| (i, store.lock(i)));
        (&mut **guard, &mut self.clock)
    }

    /// Runs `f` with every shard holding one of `keys` locked, so that a command on several
    /// keys is atomic. They are locked in index order, after letting the held one go: two
    /// loops can never wait for each other.
    pub fn with_keys<'k, R>(
        &mut self,
        keys: impl Iterator<Item = &'k [u8]> + Clone,
        f: impl FnOnce(&mut Locked<'_, 'a>, &mut Clock) -> R,
    ) -> R {
        if self.store.shards() == 1 {
            let (shard, clock) = self.shard(b"");
            return f(&mut Locked::One(shard), clock);
        }
        let mut indexes: Vec<usize> = keys.map(|key| self.store.shard_of(key)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        self.lock_all(indexes, f)
    }

    /// Runs `f` with every shard locked.
    pub fn with_all<R>(&mut self, f: impl FnOnce(&mut Locked<'_, 'a>, &mut Clock) -> R) -> R {
        if self.store.shards() == 1 {
            let (shard, clock) = self.shard(b"");
            return f(&mut Locked::One(shard), clock);
        }
        self.lock_all((0..self.store.shards()).collect(), f)
    }

    fn lock_all<R>(
        &mut self,
        indexes: Vec<usize>,
        f: impl FnOnce(&mut Locked<'_, 'a>, &mut Clock) -> R,
    ) -> R {
        self.held = None;
        let guards = indexes
            .into_iter()
            .map(|i| (i, self.store.lock(i)))
            .collect();
        let mut locked = Locked::Many {
            store: self.store,
            guards,
        };
        f(&mut locked, &mut self.clock)
    }
}

/// The shards a multi-key command holds.
pub enum Locked<'s, 'a> {
    One(&'s mut Shard),
    Many {
        store: &'a Store,
        /// In index order.
        guards: Vec<(usize, MutexGuard<'a, Shard>)>,
    },
}

impl Locked<'_, '_> {
    /// The shard of `key`, which must be one of the keys the shards were locked for.
    pub fn shard(&mut self, key: &[u8]) -> &mut Shard {
        match self {
            Locked::One(shard) => shard,
            Locked::Many { store, guards } => {
                let i = store.shard_of(key);
                let at = guards.binary_search_by_key(&i, |(i, _)| *i);
                &mut guards[at.unwrap_or(0)].1 // always found: locked for this very key
            }
        }
    }

    /// Calls `f` on every shard locked.
    pub fn each(&mut self, mut f: impl FnMut(&mut Shard)) {
        match self {
            Locked::One(shard) => f(shard),
            Locked::Many { guards, .. } => guards.iter_mut().for_each(|(_, g)| f(g)),
        }
    }
}
