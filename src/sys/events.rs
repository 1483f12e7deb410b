//! The event bit set: what a registration waits for and what `select` reports.
//!
//! Python spells these as the integers `EVENT_READ = 1` and `EVENT_WRITE = 2` and checks their
//! validity at run time (`ValueError("Invalid events")`). Here the field is private, so a value
//! with bits outside `READ | WRITE` cannot be built at all; the only invalid value left is the
//! empty set, which `register` and `modify` refuse with `InvalidInput`.

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign};

/// A set of I/O events: [`EVENT_READ`], [`EVENT_WRITE`], both, or none.
///
/// Combine with `|`, intersect with `&`, test with [`contains`](Events::contains).
///
/// # Examples
///
/// ```
/// use selectloop::{Events, EVENT_READ, EVENT_WRITE};
///
/// let both = EVENT_READ | EVENT_WRITE;
/// assert!(both.contains(EVENT_READ));
/// assert_eq!(both & EVENT_WRITE, EVENT_WRITE);
/// assert!((EVENT_READ & EVENT_WRITE).is_empty());
/// assert_eq!(format!("{both:?}"), "READ | WRITE");
/// assert_eq!(Events::from_bits(3), Some(both));
/// assert_eq!(Events::from_bits(4), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Events(u8);

/// Readable: data (or end of file) can be read, or a listener has a connection to accept.
pub const EVENT_READ: Events = Events::READ;
/// Writable: the socket's send buffer has room (or a non-blocking connect finished).
pub const EVENT_WRITE: Events = Events::WRITE;

impl Events {
    /// No events. Never valid to register, but the result of intersecting disjoint sets.
    pub const NONE: Events = Events(0);
    /// Same as [`EVENT_READ`].
    pub const READ: Events = Events(1);
    /// Same as [`EVENT_WRITE`].
    pub const WRITE: Events = Events(2);
    /// `READ | WRITE`.
    pub const READ_WRITE: Events = Events(3);

    /// Builds a set from Python's integer encoding (`1` read, `2` write, `3` both, `0` none).
    ///
    /// Returns `None` if `bits` has anything outside `READ | WRITE`.
    pub const fn from_bits(bits: u8) -> Option<Events> {
        if bits & !Self::READ_WRITE.0 == 0 {
            Some(Events(bits))
        } else {
            None
        }
    }

    /// Python's integer encoding of this set.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True if every event in `other` is also in `self`.
    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True if [`EVENT_READ`] is in the set.
    pub const fn is_readable(self) -> bool {
        self.contains(Self::READ)
    }

    /// True if [`EVENT_WRITE`] is in the set.
    pub const fn is_writable(self) -> bool {
        self.contains(Self::WRITE)
    }
}

impl BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

impl BitOrAssign for Events {
    fn bitor_assign(&mut self, rhs: Events) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Events {
    type Output = Events;
    fn bitand(self, rhs: Events) -> Events {
        Events(self.0 & rhs.0)
    }
}

impl BitAndAssign for Events {
    fn bitand_assign(&mut self, rhs: Events) {
        self.0 &= rhs.0;
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match *self {
            Events::NONE => "(empty)",
            Events::READ => "READ",
            Events::WRITE => "WRITE",
            _ => "READ | WRITE",
        })
    }
}

/// How a registration reports readiness. [`Level`](Mode::Level), Python's only mode, is the
/// default; the others trade convenience for fewer wake-ups.
///
/// | mode | reported | use it when |
/// |---|---|---|
/// | `Level` | on every `select` while the source stays ready | almost always: a callback may read a little and be called again |
/// | `Edge` | once per change from not ready to ready | the callback drains the source — reads (or accepts, or writes) until `WouldBlock` — every time; otherwise data left behind is never reported again |
/// | `Oneshot` | once, then the registration is disarmed until [`modify`](crate::Selector::modify) re-arms it | the source is handed to other work (a thread pool) and must not fire meanwhile |
///
/// Only [`DefaultSelector`](crate::DefaultSelector) and `EpollSelector` support `Edge` and
/// `Oneshot` (and on Windows, where `DefaultSelector` uses IOCP, only `Oneshot`); the others
/// refuse them with `Unsupported`: poll and select are level-triggered by nature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// Reported while ready (Python's behaviour).
    #[default]
    Level,
    /// Reported when it becomes ready.
    Edge,
    /// Reported once, then disarmed until `modify` re-arms it.
    Oneshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_every_value() {
        let names: Vec<String> = (0..4)
            .map(|b| format!("{:?}", Events::from_bits(b).unwrap()))
            .collect();
        assert_eq!(names, ["(empty)", "READ", "WRITE", "READ | WRITE"]);
    }

    #[test]
    fn from_bits_rejects_unknown_bits() {
        for bits in 4..=u8::MAX {
            assert_eq!(Events::from_bits(bits), None, "bits {bits}");
        }
    }

    #[test]
    fn set_operations() {
        let mut e = Events::NONE;
        assert!(e.is_empty());
        e |= EVENT_WRITE;
        assert!(e.is_writable() && !e.is_readable());
        e |= EVENT_READ;
        assert_eq!(e, Events::READ_WRITE);
        e &= EVENT_READ;
        assert_eq!(e, EVENT_READ);
        assert!(Events::READ_WRITE.contains(Events::NONE));
        assert!(!EVENT_READ.contains(EVENT_WRITE));
    }

    #[test]
    fn or_of_overlapping_sets_keeps_every_event() {
        assert_eq!(Events::READ_WRITE | EVENT_READ, Events::READ_WRITE);
        assert_eq!(EVENT_WRITE | Events::READ_WRITE, Events::READ_WRITE);
        let mut e = Events::READ_WRITE;
        e |= EVENT_WRITE;
        assert_eq!(e, Events::READ_WRITE);
        assert_eq!(Events::READ_WRITE & Events::READ_WRITE, Events::READ_WRITE);
        let mut e = Events::READ_WRITE;
        e &= Events::READ_WRITE;
        assert_eq!(e, Events::READ_WRITE);
        assert_eq!(Events::READ_WRITE.bits(), 3);
        assert_eq!(EVENT_WRITE.bits(), 2);
    }
}
