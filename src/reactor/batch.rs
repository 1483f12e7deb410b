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
//! batch last reported it, where, and whether that report was delivered ([`Report`]), so that
//! merging and marking cost no search.
//!
//! **`Ready`.** Python's `select()` builds a new list every time; so did ours, and in an echo
//! server the two allocations per `select` (the list and its growth) cost more than the rest of
//! the dispatch. A `Ready` cannot borrow the selector — the loop calls `sel.dispatch(..)` (a
//! `&mut` borrow) inside the `for` — so it shares the batch's list of reports (an `Rc`), which
//! is never changed once filled: the next wait fills it again if no `Ready` holds it any more,
//! and else a new one, so a list kept across a `select` keeps its pairs. The loop reads exactly
//! as in Python, and a steady-state loop neither allocates nor copies the list.

use crate::reactor::key::SelectorKey;
use crate::sys::events::Events;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

pub(crate) type Pair = (SelectorKey, Events);

/// Where a registration was last reported: the batch's number, its place in it, and whether
/// that report was delivered.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Report {
    batch: u64,
    slot: usize,
    delivered: bool,
}

/// The reports of the last wait (see the module docs).
#[derive(Default)]
pub(crate) struct Batch {
    /// Numbers each wait, so that two reports for one key in one wait merge into one.
    number: u64,
    /// One report per ready key, the key as it was at the wait: the list `select` returns,
    /// shared with it. Keeping the whole key makes that list this very one.
    reports: Rc<Vec<Pair>>,
    /// Set when a dispatch stopped early: the reports from `reports[owed..]` are owed.
    owed: Option<usize>,
}

/// A batch being filled by a wait.
pub(crate) struct Filling<'a> {
    number: u64,
    reports: &'a mut Vec<Pair>,
}

impl Filling<'_> {
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
                delivered: false,
            };
            self.reports.push((key, mask));
        }
    }
}

impl Batch {
    /// Starts the reports of a new wait: the list of the last one is emptied, or, if a
    /// `Ready` still holds it, left to it and replaced.
    #[inline(always)]
    pub(crate) fn begin(&mut self) -> Filling<'_> {
        self.number += 1;
        if Rc::get_mut(&mut self.reports).is_none() {
            self.reports = Rc::new(Vec::with_capacity(self.reports.capacity()));
        }
        let reports = Rc::make_mut(&mut self.reports); // not shared now: no copy
        reports.clear();
        Filling {
            number: self.number,
            reports,
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
    pub(crate) fn deliver(&self, report: &mut Report) -> Option<usize> {
        if report.batch != self.number {
            return None;
        }
        report.delivered = true;
        Some(report.slot)
    }

    /// True if `report` is of this batch and not delivered yet: owed, if the batch stopped.
    pub(crate) fn undelivered(&self, report: &Report) -> bool {
        report.batch == self.number && !report.delivered
    }

    /// The batch stopped after the report at `slot` (a panic, or `Stop`): the reports after it
    /// are owed.
    pub(crate) fn owe_after(&mut self, slot: Option<usize>) {
        if let Some(slot) = slot {
            self.owed = Some(slot + 1);
        }
    }

    /// Where the owed reports start, if any is still deliverable: `live` gives a report's key
    /// and mask as they are now (`None` if it was delivered, its registration is gone or no
    /// longer waits for those events). Taking them clears the debt.
    pub(crate) fn take_owed(
        &mut self,
        live: impl Fn(&Batch, Pair) -> Option<Pair>,
    ) -> Option<usize> {
        let from = self.owed.take()?;
        let owed = self.reports.get(from..)?;
        owed.iter()
            .any(|&pair| live(self, pair).is_some())
            .then_some(from)
    }

    /// The list `select` returns: the reports from `from` on, as `live` gives them now (all of
    /// them as they are when `from` is 0: a wait just filled them; this very list then).
    pub(crate) fn ready(&self, from: usize, live: impl Fn(Pair) -> Option<Pair>) -> Ready {
        if from == 0 {
            // Just polled: every report names a live registration, its mask within its events.
            return Ready {
                pairs: Rc::clone(&self.reports),
            };
        }
        let owed = self.reports[from..].iter().filter_map(|&pair| live(pair));
        Ready {
            pairs: Rc::new(owed.collect()),
        }
    }
}

/// The `(key, mask)` pairs returned by [`Selector::select`](crate::Selector::select).
///
/// Use it as Python's list: iterate it (`for (key, mask) in sel.select(None)?`), index it
/// (`ready[0]`), measure it (`ready.len()`, `ready.is_empty()`), sort it, compare it with an
/// array or a `Vec`, or copy it out with `to_vec()`. It derefs to a slice of pairs. It shares
/// its buffer with the selector, which reuses it for a later `select` once the list (or its
/// iterator) is dropped; a list kept meanwhile keeps its pairs.
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
#[must_use = "the ready sources' callbacks run only if the pairs are dispatched"]
pub struct Ready {
    pairs: Rc<Vec<Pair>>,
}

impl Deref for Ready {
    type Target = [Pair];
    fn deref(&self) -> &[Pair] {
        &self.pairs
    }
}

impl DerefMut for Ready {
    fn deref_mut(&mut self) -> &mut [Pair] {
        Rc::make_mut(&mut self.pairs).as_mut_slice() // its own copy, if the batch shares it
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
        **self.pairs == *other
    }
}

impl<const N: usize> PartialEq<[Pair; N]> for Ready {
    fn eq(&self, other: &[Pair; N]) -> bool {
        *self.pairs == other
    }
}

impl PartialEq<Vec<Pair>> for Ready {
    fn eq(&self, other: &Vec<Pair>) -> bool {
        *self.pairs == *other
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

/// The iterator of `for (key, mask) in ready`: yields the pairs in order.
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

    fn ready(pairs: &[Pair]) -> Ready {
        Ready {
            pairs: Rc::new(pairs.to_vec()),
        }
    }

    #[test]
    fn compares_like_a_list_of_pairs() {
        let (a, b) = ((key(1), EVENT_READ), (key(2), EVENT_WRITE));
        let ab = ready(&[a, b]);
        assert_eq!(ab, ready(&[a, b]));
        assert_ne!(ab, ready(&[a]));
        assert_ne!(ab, ready(&[b, a]));
        assert!(ab == [a, b] && ab != [b, a] && ab != [a]);
        assert!(ab == vec![a, b] && ab != vec![a]);
        assert!(ab == *[a, b].as_slice() && ab != *[b].as_slice());
        let refs: Vec<&Pair> = (&ab).into_iter().collect();
        assert_eq!(refs, [&a, &b]);
        assert_eq!(format!("{:?}", ready(&[a])), format!("[{a:?}]"));
    }

    #[test]
    fn a_list_kept_across_a_wait_keeps_its_pairs_and_one_dropped_is_reused() {
        let mut batch = Batch::default();
        let (a, b) = ((key(1), EVENT_READ), (key(2), EVENT_WRITE));
        batch.begin().add(&mut Report::default(), a.0, a.1);
        let first = batch.ready(0, Some);
        batch.begin().add(&mut Report::default(), b.0, b.1); // `first` is still held
        assert_eq!(first, [a]);
        assert_eq!(batch.ready(0, Some), [b]);
        let buffer = Rc::as_ptr(&batch.reports);
        drop(first);
        let mut iter = batch.ready(0, Some).into_iter();
        assert_eq!(iter.len(), 1);
        assert_eq!(iter.next(), Some(b));
        assert_eq!(iter.size_hint(), (0, Some(0)));
        drop(iter);
        batch.begin();
        assert_eq!(
            Rc::as_ptr(&batch.reports),
            buffer,
            "not reused once dropped"
        );
        // Sorting a list shared with the batch sorts a copy of its own.
        batch.begin().add(&mut Report::default(), b.0, b.1);
        let mut list = batch.ready(0, Some);
        list.sort_by_key(|(key, _)| std::cmp::Reverse(key.fd));
        assert_eq!(batch.ready(0, Some), [b]);
    }
}
