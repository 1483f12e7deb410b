//! `FdMap`: a hash map keyed by descriptor, hashed with one multiplication.
//!
//! The standard `HashMap` hashes with SipHash under a random key, so that keys chosen by an
//! attacker cannot all fall into one bucket. Descriptors are chosen by the OS, never by a peer,
//! so that protection buys nothing here, and SipHash is most of the cost of a lookup by file
//! object — which a `Connection` makes after every callback (`get_key`), as do `modify` and
//! `unregister`. One multiplication by an odd constant (Knuth's multiplicative hashing) spreads
//! consecutive descriptors (Unix: the lowest free number) and Windows socket handles (multiples
//! of 4) over the buckets as well as SipHash's random placement does (see the tests).

use super::RawSource;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from descriptor to `V`.
pub(crate) type FdMap<V> = HashMap<RawSource, V, BuildHasherDefault<FdHasher>>;

/// 2^64 divided by the golden ratio, made odd: its products spread the input's bits upwards.
const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// The hasher of [`FdMap`]: multiplies each integer written into the state by [`K`].
#[derive(Default)]
pub(crate) struct FdHasher(u64);

impl FdHasher {
    #[inline]
    fn add(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(K);
    }
}

impl Hasher for FdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Descriptors are integers and come through the methods below; this serves any other
        // key type all the same.
        for &byte in bytes {
            self.add(u64::from(byte));
        }
    }

    #[inline]
    fn write_i32(&mut self, n: i32) {
        self.add(u64::from(n as u32));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The table takes its bucket from the low bits and a tag from the top 7. A product's
        // low bits depend on the input's low bits only (all 0 in multiples of 4), so fold the
        // well-mixed high half into them.
        self.0 ^ (self.0 >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::BuildHasher;

    fn hash(fd: RawSource) -> u64 {
        BuildHasherDefault::<FdHasher>::default().hash_one(fd)
    }

    /// How many buckets of a table of 1,024 `fds` fall into, and how many distinct tags (the
    /// top 7 bits, of 128) they get.
    fn spread(fds: impl Iterator<Item = RawSource>) -> (usize, usize) {
        let hashes: Vec<u64> = fds.map(hash).collect();
        let buckets: HashSet<u64> = hashes.iter().map(|h| h & 1023).collect();
        let tags: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        (buckets.len(), tags.len())
    }

    #[test]
    fn consecutive_descriptors_spread_over_buckets_and_tags() {
        // Random placement (SipHash's) would reach 63% of the buckets.
        let (buckets, tags) = spread(3..1027);
        assert!(
            buckets > 600,
            "1,024 fds in only {buckets} of 1,024 buckets"
        );
        assert!(tags >= 120, "only {tags} tags of 128");
    }

    #[test]
    fn multiples_of_four_spread_over_buckets_and_tags() {
        // Windows socket handles are multiples of 4: a hash whose low bits stayed 0 would use
        // a quarter of the buckets.
        let (buckets, tags) = spread((1..1025).map(|i| i * 4));
        assert!(
            buckets > 600,
            "1,024 handles in only {buckets} of 1,024 buckets"
        );
        assert!(tags >= 120, "only {tags} tags of 128");
    }

    #[test]
    fn a_map_finds_what_it_holds_and_nothing_else() {
        let mut map = FdMap::default();
        for fd in 0..2000 {
            map.insert(fd * 4, fd);
        }
        assert!((0..2000).all(|fd| map.get(&(fd * 4)) == Some(&fd)));
        assert!((0..2000).all(|fd| !map.contains_key(&(fd * 4 + 1))));
    }

    #[test]
    fn windows_socket_handles_spread_on_every_platform() {
        // `RawSocket` is a u64: hashed through `write_u64`, whatever `RawSource` is here.
        let hasher = BuildHasherDefault::<FdHasher>::default();
        let buckets: HashSet<u64> = (1..1025u64)
            .map(|h| hasher.hash_one(h * 4) & 1023)
            .collect();
        assert!(
            buckets.len() > 600,
            "in only {} of 1,024 buckets",
            buckets.len()
        );
    }

    #[test]
    fn every_byte_written_changes_the_hash() {
        let hash_bytes = |bytes: &[u8]| {
            let mut hasher = FdHasher::default();
            hasher.write(bytes);
            hasher.finish()
        };
        assert_ne!(hash_bytes(b"ab"), hash_bytes(b"ba"));
        assert_ne!(hash_bytes(b"a"), hash_bytes(b""));
        // After any first byte, the 256 possible second bytes give 256 hashes: the state
        // mixes each new byte in without losing any of its bits.
        let hashes: HashSet<u64> = (0..=255u8).map(|b| hash_bytes(&[7, b])).collect();
        assert_eq!(hashes.len(), 256);
    }
}
