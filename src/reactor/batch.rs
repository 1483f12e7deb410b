//! The reports of one wait, and the rule that delivers each exactly once; and `Ready`, the list
//! `select()` returns — Python's `[(key, events), ...]` without an allocation per call.
//!
//! **Exactly once.** A wait fills the [`Batch`]: one report `(key, mask)` per ready key (kqueue
//! reports READ and WRITE separately: they merge into one). Each report is delivered at most
//! once: dispatching it marks it delivered. If a dispatch stops the batch early (a callback
//! panicked, or the error handler said `Stop`), the reports after it are *owed*: the next
//! `select` or `run_once` delivers them first, without waiting — an edge-triggered source would
//! otherwise never be reported again — leaving out those whose registration is gone or no
//! longer waits for those events, and those delivered meanwhile. Each registration notes which
//! batch last reported it, and where ([`Report`]), so that merging and marking cost no search.
//!
//! **`Ready`.** Python's `select()` builds a new list every time; so did ours, and in an echo
//! server the two allocations per `select` (the list and its growth) cost more than the rest of
//! the dispatch. A `Ready` owns its buffer while the caller iterates it — it cannot borrow the
//! selector, since the loop calls `sel.dispatch(..)` (a `&mut` borrow) inside the `for` — and
//! gives the buffer back to the batch when dropped, so the next `select` reuses it. The loop
//! reads exactly as in Python, and a steady-state loop allocates nothing.

use crate::reactor::key::SelectorKey;
use crate::sys::events::Events;
use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

pub(crate) type Pair = (SelectorKey, Events);

/// Where a batch keeps the buffer its `Ready` lists borrow and give back.
pub(crate) type Spare = Rc<Cell<Vec<Pair>>>;

/// Where a registration was last reported: the batch's number and its place in it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Report {
    batch: u64,
    slot: usize,
}

/// The reports of the last wait (see the module docs).
#[derive(Default)]
pub(crate) struct Batch {
    /// Numbers each wait, so that two reports for one key in one wait merge into one.
    number: u64,
    /// One report per ready key, the key as it was at the wait. A report's mask is emptied
    /// once delivered. Keeping the whole key makes `select`'s list a copy of this one.
    reports: Vec<Pair>,
    /// The buffer of the `Ready` lists `select` returns: lent out, given back when dropped.
    spare: Spare,
    /// Set when a dispatch stopped early: the reports from `reports[owed..]` are owed.
    owed: Option<usize>,
}

impl Batch {
    /// Starts the reports of a new wait.
    #[inline]
    pub(crate) fn begin(&mut self) {
        self.reports.clear();
        self.number += 1;
    }

    /// Adds a report of `key` (last reported at `report`): a new one, or merged into the one
    /// this wait made already.
    #[inline]
    pub(crate) fn add(&mut self, report: &mut Report, key: SelectorKey, mask: Events) {
        if report.batch == self.number {
            self.reports[report.slot].1 |= mask; // kqueue: READ and WRITE come separately
        } else {
            *report = Report {
                batch: self.number,
                slot: self.reports.len(),
            };
            self.reports.push((key, mask));
        }
    }

    /// True if the last wait reported nothing.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }

    /// The number of reports of the last wait.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.reports.len()
    }

    /// Report `i` of the last wait.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Pair {
        self.reports[i]
    }

    /// Marks the report of a registration last reported at `report` delivered, if it is one of
    /// this batch, and returns its place: a report is not delivered again.
    #[inline]
    pub(crate) fn deliver(&mut self, report: Report) -> Option<usize> {
        if report.batch != self.number {
            return None;
        }
        if let Some(pair) = self.reports.get_mut(report.slot) {
            pair.1 = Events::NONE;
        }
        Some(report.slot)
    }

    /// The batch stopped after the report at `slot` (a panic, or `Stop`): the reports after it
    /// are owed.
    pub(crate) fn owe_after(&mut self, slot: Option<usize>) {
        if let Some(slot) = slot {
            self.owed = Some(slot + 1);
        }
    }

    /// Where the owed reports start, if any is still deliverable: `live` gives a report's key
    /// and mask as they are now (`None` if its registration is gone or no longer waits for
    /// those events). Taking them clears the debt.
    pub(crate) fn take_owed(&mut self, live: impl Fn(Pair) -> Option<Pair>) -> Option<usize> {
        let from = self.owed.take()?;
        let owed = self.reports.get(from..)?;
        owed.iter()
            .any(|&pair| live(pair).is_some())
            .then_some(from)
    }

    /// The list `select` returns: the reports from `from` on, as `live` gives them now (all of
    /// them as they are when `from` is 0: a wait just filled them).
    pub(crate) fn ready(&mut self, from: usize, live: impl Fn(Pair) -> Option<Pair>) -> Ready {
        let mut pairs = self.spare.take(); // the buffer the last `Ready` gave back
        if from == 0 {
            // Just polled: every report names a live registration, its mask within its events.
            pairs.extend_from_slice(&self.reports);
        } else {
            pairs.extend(self.reports[from..].iter().filter_map(|&pair| live(pair)));
        }
        Ready::new(pairs, Rc::clone(&self.spare))
    }
}

/// The `(key, mask)` pairs returned by [`Selector::select`](crate::Selector::select).
///
/// Use it as Python's list: iterate it (`for (key, mask) in sel.select(None)?`), index it
/// (`ready[0]`), measure it (`ready.len()`, `ready.is_empty()`), sort it, compare it with an
/// array or a `Vec`, or copy it out with `to_vec()`. It derefs to a slice of pairs. When it is
/// dropped (or its iterator is), its buffer goes back to the selector for the next `select`.
///
/// # Examples
///
/// ```
/// use selectloop::{DefaultSelector, EVENT_WRITE};
/// use std::net::{TcpListener, TcpStream};
/// use std::time::Duration;
///
/// let mut sel = DefaultSelector::new()?;
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let conn = TcpStream::connect(listener.local_addr()?)?;
/// let key = sel.register(conn, EVENT_WRITE, |_, _, _| Ok(()))?;
/// let ready = sel.select(Some(Duration::from_secs(5)))?;
/// assert_eq!(ready.len(), 1);
/// assert_eq!(ready[0], (key, EVENT_WRITE));
/// assert_eq!(ready, [(key, EVENT_WRITE)]);
/// for (key, mask) in ready {
///     sel.dispatch(&key, mask)?;
/// }
/// # std::io::Result::Ok(())
/// ```
pub struct Ready {
    pairs: Vec<Pair>,
    home: Spare,
}

impl Ready {
    pub(crate) fn new(pairs: Vec<Pair>, home: Spare) -> Ready {
        Ready { pairs, home }
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        let mut pairs = std::mem::take(&mut self.pairs);
        pairs.clear();
        self.home.set(pairs);
    }
}

impl Deref for Ready {
    type Target = [Pair];
    fn deref(&self) -> &[Pair] {
        &self.pairs
    }
}

impl DerefMut for Ready {
    fn deref_mut(&mut self) -> &mut [Pair] {
        &mut self.pairs
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Ready {
    fn eq(&self, other: &Ready) -> bool {
        self.pairs == other.pairs
    }
}

impl PartialEq<[Pair]> for Ready {
    fn eq(&self, other: &[Pair]) -> bool {
        self.pairs == other
    }
}

impl<const N: usize> PartialEq<[Pair; N]> for Ready {
    fn eq(&self, other: &[Pair; N]) -> bool {
        self.pairs == other
    }
}

impl PartialEq<Vec<Pair>> for Ready {
    fn eq(&self, other: &Vec<Pair>) -> bool {
        &self.pairs == other
    }
}

impl IntoIterator for Ready {
    type Item = Pair;
    type IntoIter = IntoIter;
    fn into_iter(self) -> IntoIter {
        IntoIter {
            ready: self,
            next: 0,
        }
    }
}

impl<'a> IntoIterator for &'a Ready {
    type Item = &'a Pair;
    type IntoIter = std::slice::Iter<'a, Pair>;
    fn into_iter(self) -> Self::IntoIter {
        self.pairs.iter()
    }
}

/// The iterator of `for (key, mask) in ready`: yields the pairs in order, then gives the buffer
/// back to the selector when dropped.
#[derive(Debug)]
pub struct IntoIter {
    ready: Ready,
    next: usize,
}

impl Iterator for IntoIter {
    type Item = Pair;

    fn next(&mut self) -> Option<Pair> {
        let pair = *self.ready.pairs.get(self.next)?;
        self.next += 1;
        Some(pair)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.ready.pairs.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for IntoIter {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::key::Token;
    use crate::sys::events::{Mode, EVENT_READ, EVENT_WRITE};

    fn key(fd: i32) -> SelectorKey {
        SelectorKey {
            fd: fd as _,
            events: Events::READ_WRITE,
            mode: Mode::Level,
            token: Token::new(fd as usize, 1),
            listener: false,
        }
    }

    fn ready(pairs: &[Pair], home: &Spare) -> Ready {
        Ready::new(pairs.to_vec(), Rc::clone(home))
    }

    #[test]
    fn compares_like_a_list_of_pairs() {
        let home = Spare::default();
        let (a, b) = ((key(1), EVENT_READ), (key(2), EVENT_WRITE));
        let ab = ready(&[a, b], &home);
        assert_eq!(ab, ready(&[a, b], &home));
        assert_ne!(ab, ready(&[a], &home));
        assert_ne!(ab, ready(&[b, a], &home));
        assert!(ab == [a, b] && ab != [b, a] && ab != [a]);
        assert!(ab == vec![a, b] && ab != vec![a]);
        assert!(ab == *[a, b].as_slice() && ab != *[b].as_slice());
        let refs: Vec<&Pair> = (&ab).into_iter().collect();
        assert_eq!(refs, [&a, &b]);
        assert_eq!(format!("{:?}", ready(&[a], &home)), format!("[{a:?}]"));
    }

    #[test]
    fn gives_its_buffer_back_when_dropped() {
        let home = Spare::default();
        let mut pairs = Vec::with_capacity(32);
        pairs.push((key(1), EVENT_READ));
        drop(Ready::new(pairs, Rc::clone(&home)));
        let back = home.take();
        assert!(
            back.is_empty() && back.capacity() >= 32,
            "not given back, or not cleared"
        );
        // Through its iterator, too, however far it was iterated.
        let mut iter = ready(&[(key(1), EVENT_READ), (key(2), EVENT_READ)], &home).into_iter();
        assert_eq!(iter.len(), 2);
        assert_eq!(iter.next(), Some((key(1), EVENT_READ)));
        assert_eq!(iter.size_hint(), (1, Some(1)));
        drop(iter);
        assert!(
            home.take().capacity() >= 2,
            "the iterator did not give it back"
        );
    }
}
