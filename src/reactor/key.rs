//! `SelectorKey`, and the token that ties an OS event back to its registration.
//!
//! A token packs the registration's slab index (low half) with a generation number (high half).
//! The generation changes with every registration, so an event that was queued for a source
//! unregistered meanwhile can never be delivered to a new registration that reuses the same slab
//! slot or the same fd number: its token no longer matches. The index is capped below the all-ones
//! value, so a token is never `usize::MAX`, which `polling` reserves for itself.

use crate::sys::events::{Events, Mode};
use crate::sys::{FileObj, RawSource};
use std::fmt;
use std::hash::{Hash, Hasher};

const INDEX_BITS: u32 = usize::BITS / 2;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

/// The largest slab index a token can carry (all ones is left out, see the module docs).
pub(crate) const MAX_INDEX: usize = INDEX_MASK - 1;

/// Slab index + generation, as passed to and from the OS poller.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(crate) struct Token(pub(crate) usize);

impl Token {
    /// Packs `index` (at most [`MAX_INDEX`]) with the low bits of `generation`.
    pub(crate) fn new(index: usize, generation: usize) -> Token {
        debug_assert!(index <= MAX_INDEX);
        Token((generation << INDEX_BITS) | index)
    }

    /// The slab index.
    pub(crate) fn index(self) -> usize {
        self.0 & INDEX_MASK
    }
}

/// What the selector knows of one registration: Python's `SelectorKey`, minus the parts Rust
/// keeps elsewhere.
///
/// Python's key also carries `fileobj` and `data`; here the selector owns the source and the
/// callback, and hands them to the callback as arguments instead. A key is a snapshot: after
/// `modify` or `unregister`, earlier copies still show the old values.
///
/// A key is also a [`FileObj`](crate::FileObj), so it can be passed back to
/// [`unregister`](crate::Selector::unregister), [`modify`](crate::Selector::modify) and the
/// other lookups. It names its registration only: once that is unregistered, lookups by the key
/// fail with `NotFound`, even if a new registration reuses the fd number.
///
/// Keys of one selector compare and hash by the registration they name, not by their
/// snapshot (keys of two selectors are not to be compared: their registrations may be
/// numbered alike). The key
/// `register` returned and the one [`get_key`](crate::Selector::get_key) returns after a
/// [`modify`](crate::Selector::modify) are equal, so a key can index a `HashMap` or `HashSet`
/// of connections for as long as it is registered. A new registration of the same fd gets a
/// key unequal to the old one. (Python's `SelectorKey` is a namedtuple, equal when every field
/// is: there, the keys before and after `modify` differ.)
///
/// # Examples
///
/// ```
/// use selectloop::{DefaultSelector, EVENT_READ, EVENT_WRITE};
/// use std::collections::HashSet;
/// use std::net::UdpSocket;
///
/// let mut sel = DefaultSelector::new()?;
/// let key = sel.register(UdpSocket::bind("127.0.0.1:0")?, EVENT_READ, |_, _, _| Ok(()))?;
/// let peers = HashSet::from([key]);
/// let now = sel.modify(&key, EVENT_READ | EVENT_WRITE)?;
/// assert_ne!(now.events(), key.events()); // a snapshot each
/// assert!(peers.contains(&now)); // the same registration
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone, Copy)]
pub struct SelectorKey {
    pub(crate) fd: RawSource,
    pub(crate) events: Events,
    pub(crate) mode: Mode,
    pub(crate) token: Token,
    /// The source is a `TcpListener` or `UnixListener` (see `ErrorAction::default_for`).
    pub(crate) listener: bool,
}

impl SelectorKey {
    /// The registered descriptor: a `RawFd` on Unix, a `RawSocket` on Windows.
    pub fn fd(&self) -> RawSource {
        self.fd
    }

    /// The events the registration waits for.
    pub fn events(&self) -> Events {
        self.events
    }

    /// How the registration reports readiness ([`Mode::Level`] unless registered otherwise).
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

/// Equal when they name the same registration (see the type's docs).
impl PartialEq for SelectorKey {
    fn eq(&self, other: &SelectorKey) -> bool {
        self.token == other.token
    }
}

impl Eq for SelectorKey {}

impl Hash for SelectorKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.token.hash(state);
    }
}

impl fmt::Debug for SelectorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectorKey")
            .field("fd", &self.fd)
            .field("events", &self.events)
            .field("mode", &self.mode)
            .finish()
    }
}

impl FileObj for SelectorKey {
    fn fileno(&self) -> RawSource {
        self.fd
    }

    fn registration(&self) -> Option<usize> {
        Some(self.token.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_never_usize_max() {
        for generation in [0, 1, usize::MAX >> INDEX_BITS, usize::MAX] {
            for index in [0, 1, MAX_INDEX] {
                let token = Token::new(index, generation);
                assert_ne!(token.0, usize::MAX, "index {index} generation {generation}");
                assert_eq!(token.index(), index);
            }
        }
    }

    #[test]
    fn debug_shows_fd_events_and_mode() {
        let key = SelectorKey {
            fd: 7,
            events: Events::READ_WRITE,
            mode: Mode::Edge,
            token: Token::new(3, 1),
            listener: false,
        };
        assert_eq!(
            format!("{key:?}"),
            "SelectorKey { fd: 7, events: READ | WRITE, mode: Edge }"
        );
    }

    #[test]
    fn keys_are_equal_and_hash_alike_by_registration_alone() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |key: &SelectorKey| {
            let mut h = DefaultHasher::new();
            key.hash(&mut h);
            h.finish()
        };
        let key = |fd, events, token| SelectorKey {
            fd,
            events,
            mode: Mode::Level,
            token,
            listener: false,
        };
        let registered = key(7, Events::READ, Token::new(3, 1));
        let modified = key(7, Events::READ_WRITE, Token::new(3, 1));
        assert_eq!(registered, modified);
        assert_eq!(hash(&registered), hash(&modified));
        let again = key(7, Events::READ, Token::new(3, 2)); // the fd and slot, registered anew
        assert_ne!(registered, again);
        assert_ne!(hash(&registered), hash(&again));
    }

    #[test]
    fn generations_tell_slot_reuse_apart() {
        assert_ne!(Token::new(7, 1), Token::new(7, 2));
    }
}
