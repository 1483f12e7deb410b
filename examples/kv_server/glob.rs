//! Redis's glob patterns, the ones KEYS and SCAN ... MATCH take.
//!
//! [`matches()`] gives the answers Redis 7.0's `stringmatchlen` (case-sensitive) gives, as
//! redis-server 7.0.15 on x86-64 (Debian's build) was seen to give them; the tests hold the
//! cases checked against it:
//!
//! - `*` matches any run of bytes, the empty one too; `?` matches exactly one byte. Matching is
//!   on bytes, not characters: `?` matches one byte of a multi-byte UTF-8 character.
//! - `[...]` matches one byte in the class, `[^...]` one byte not in it. Inside a class,
//!   `x-y` is a range (a reversed one, `z-a`, is swapped). Ranges compare bytes as C's `char`,
//!   which is signed on x86-64, so a range with a byte of 0x80 or above in it is not what it
//!   looks like: `[a-\xff]` is `[\xff-a]`, which holds `0` but not `b`. The third byte of a
//!   range is taken as it is, even a `]`: `[a-]` is the range from `]` to `a`, with the class
//!   still open. `\` escapes the next byte, a `]` that comes first closes an empty class (`[]`
//!   matches nothing, `[^]` any byte), and the end of the pattern closes a class left open
//!   (`[a` is `[a]`, `[` matches nothing, `[^` any byte).
//! - `\` outside a class makes the next byte a literal; a `\` at the end of the pattern is a
//!   literal `\`.
//! - An empty name matches only the empty pattern, and the pattern `*` (which KEYS and SCAN
//!   take as "everything" without matching).
//! - A pattern needing more than [`MAX_STAR_GROUPS`] runs of `*` before its end matches
//!   nothing (Redis stops its recursion at that depth).
//!
//! Why the work is bounded: the server runs every command on its one event loop, so a client's
//! pattern must not stall it. A naive backtracking matcher takes exponential time on a pattern
//! such as `a*a*a*a*a*a*a*a*b` against a long run of `a`s, and a recursive one overflows the
//! stack on a long pattern. The matcher here is a loop with no recursion, which never goes
//! back further than the latest `*`: it does at most `(pattern.len() + 2) * (name.len() + 1)`
//! steps (linear on `a*a*a*a*a*a*a*a*b`) and uses constant memory, whatever the pattern.

/// The most runs of `*` a pattern may go through before its end and still match anything.
///
/// redis-server 7.0.15 as Debian ships it (with the fix for CVE-2024-31228 backported) stops
/// recursing, and fails, one `*` run deeper than this; a run of `*` at the very end of the
/// pattern does not count.
pub const MAX_STAR_GROUPS: usize = 1000;

/// Whether `name` matches the glob `pattern` as Redis's KEYS, SCAN MATCH ... match it.
///
/// See the module documentation for the rules. Takes any bytes, never panics, and does
/// `O(pattern.len() * name.len())` work at most.
pub fn matches(pattern: &[u8], name: &[u8]) -> bool {
    let mut steps = 0;
    matches_counting(pattern, name, &mut steps)
}

/// [`matches()`], adding to `steps` one for each turn of the matching loop (the tests check the
/// bound on work with it).
fn matches_counting(pattern: &[u8], name: &[u8], steps: &mut u64) -> bool {
    // KEYS and SCAN take a lone `*` as "every key" without matching, so it takes the empty
    // name too, which the matcher itself only lets the empty pattern match.
    if pattern == b"*" {
        return true;
    }
    if name.is_empty() {
        return pattern.is_empty();
    }
    // Positions in the pattern and the name.
    let (mut p, mut s) = (0, 0);
    // After a mismatch, where to start again: just after the latest run of `*` in the
    // pattern, and the name's position that the run matched up to (not included). Going back
    // there, the run takes one more byte. Going back to an earlier run is never needed: the
    // part of the pattern between two runs matches a fixed number of bytes, so letting an
    // earlier run take more could only leave the latest one less of the name to try.
    let mut retry: Option<(usize, usize)> = None;
    let mut star_groups = 0;
    loop {
        *steps += 1;
        if s == name.len() {
            // The name is used up: what is left of the pattern must be `*`s only.
            p += run_of_stars(&pattern[p..]);
            return p == pattern.len();
        }
        if p < pattern.len() && pattern[p] == b'*' {
            p += run_of_stars(&pattern[p..]);
            if p == pattern.len() {
                // A `*` at the end takes all the rest of the name.
                return true;
            }
            star_groups += 1;
            if star_groups > MAX_STAR_GROUPS {
                return false;
            }
            // Try the run matching nothing first.
            retry = Some((p, s));
            continue;
        }
        if p < pattern.len() {
            let (matched, next) = match_one(pattern, p, name[s]);
            if matched {
                p = next;
                s += 1;
                continue;
            }
        }
        // A mismatch, or the pattern is used up before the name.
        match retry {
            Some((after_star, run_end)) => {
                retry = Some((after_star, run_end + 1));
                p = after_star;
                s = run_end + 1;
            }
            None => return false,
        }
    }
}

/// How many `*` bytes `pattern` starts with.
fn run_of_stars(pattern: &[u8]) -> usize {
    pattern.iter().take_while(|&&b| b == b'*').count()
}

/// Matches the byte `c` against the element of `pattern` at `p` (a `?`, a class, an escaped
/// byte or a plain byte; not a `*`, and `p` is inside the pattern). Returns whether it matched
/// and the position of the next element, which does not depend on `c`.
fn match_one(pattern: &[u8], p: usize, c: u8) -> (bool, usize) {
    match pattern[p] {
        b'?' => (true, p + 1),
        b'[' => match_class(pattern, p + 1, c),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c, p + 2),
        // A plain byte, or a `\` ending the pattern.
        b => (b == c, p + 1),
    }
}

/// Matches the byte `c` against the class whose body starts at `p`, just after its `[`.
/// Returns whether it matched and the position after the class: after its closing `]`, or the
/// end of the pattern when no `]` closes it.
fn match_class(pattern: &[u8], mut p: usize, c: u8) -> (bool, usize) {
    let negated = pattern.get(p) == Some(&b'^');
    if negated {
        p += 1;
    }
    let mut found = false;
    loop {
        match pattern.get(p) {
            // No `]`: the end of the pattern closes the class.
            None => break,
            Some(b'\\') if p + 1 < pattern.len() => {
                found |= pattern[p + 1] == c;
                p += 2;
            }
            Some(b']') => {
                p += 1;
                break;
            }
            // A range takes the next two bytes as they are, whatever they are (a `]` too).
            Some(&first) if p + 2 < pattern.len() && pattern[p + 1] == b'-' => {
                found |= in_range(first, pattern[p + 2], c);
                p += 3;
            }
            Some(&b) => {
                found |= b == c;
                p += 1;
            }
        }
    }
    (found != negated, p)
}

/// Whether `c` is in the range from `a` to `b` (either way round), comparing the bytes as
/// signed numbers, as Redis does (its `char` is signed on x86-64): 0x80 to 0xff come before
/// 0x00.
fn in_range(a: u8, b: u8, c: u8) -> bool {
    let signed = |byte: u8| i8::from_ne_bytes([byte]);
    let (a, b, c) = (signed(a), signed(b), signed(c));
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    low <= c && c <= high
}

#[cfg(test)]
mod tests {
    use super::{matches, matches_counting, MAX_STAR_GROUPS};

    /// (pattern, name, whether redis-server 7.0.15 lists the key `name` for `KEYS pattern`).
    const REDIS_CASES: &[(&[u8], &[u8], bool)] = &[
        (b"", b"", true),
        (b"", b"a", false),
        (b"a", b"", false),
        (b"*", b"", true),
        (b"**", b"", false),
        (b"?", b"", false),
        (b"[a]", b"", false),
        (b"[^]", b"", false),
        (b"\\", b"", false),
        (b"*?*", b"", false),
        (b"a", b"a", true),
        (b"a", b"b", false),
        (b"abc", b"abc", true),
        (b"abc", b"ab", false),
        (b"ab", b"abc", false),
        (b"A", b"a", false),
        (b"*", b"anything", true),
        (b"**", b"a", true),
        (b"***", b"abc", true),
        (b"a*", b"a", true),
        (b"a*", b"abc", true),
        (b"a*", b"ba", false),
        (b"*a", b"a", true),
        (b"*a", b"ba", true),
        (b"*a", b"ab", false),
        (b"a*b", b"ab", true),
        (b"a*b", b"axxb", true),
        (b"a*b", b"axxbc", false),
        (b"a**b", b"ab", true),
        (b"*a*", b"xay", true),
        (b"*a*", b"xyz", false),
        (b"*aab", b"aaab", true),
        (b"*ab*cd*", b"xxabyycdzz", true),
        (b"*ab*cd*", b"xxcdyyabzz", false),
        (
            b"a*a*a*a*a*a*a*a*b",
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            false,
        ),
        (
            b"a*a*a*a*a*a*a*a*b",
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
            true,
        ),
        (b"*a*", b"a", true),
        (b"a*b*", b"ab", true),
        (b"?", b"a", true),
        (b"?", b"ab", false),
        (b"??", b"ab", true),
        (b"a?c", b"abc", true),
        (b"a?c", b"ac", false),
        (b"*?", b"a", true),
        (b"?*", b"a", true),
        (b"?", b"\xc3\xa9", false),
        (b"??", b"\xc3\xa9", true),
        (b"???", b"\xe2\x82\xac", true),
        (b"??", b"\xe2\x82\xac", false),
        (b"?", b"\xff", true),
        (b"\xff", b"\xff", true),
        (b"\xff", b"\xfe", false),
        (b"?", b"\x00", true),
        (b"a\x00b", b"a\x00b", true),
        (b"a\x00b", b"a\x00c", false),
        (b"*\x00", b"ab\x00", true),
        (b"\xc3\xa9*", b"\xc3\xa9a", true),
        (b"[\xc3\xa9]", b"\xc3\xa9", false),
        (b"[\xc3\xa9]?", b"\xc3\xa9", true),
        (b"[abc]", b"b", true),
        (b"[abc]", b"d", false),
        (b"[abc]", b"ab", false),
        (b"[^abc]", b"d", true),
        (b"[^abc]", b"a", false),
        (b"[a-c]", b"b", true),
        (b"[a-c]", b"d", false),
        (b"[c-a]", b"b", true),
        (b"[c-a]", b"d", false),
        (b"[^a-c]", b"b", false),
        (b"[^a-c]", b"z", true),
        (b"[a-a]", b"a", true),
        (b"[]", b"]", false),
        (b"[]", b"a", false),
        (b"[]a]", b"a", false),
        (b"[]a]", b"a]", false),
        (b"[^]", b"a", true),
        (b"[^]", b"]", true),
        (b"[^]", b"ab", false),
        (b"[a-]", b"-", false),
        (b"[a-]", b"a", true),
        (b"[a-]", b"]", true),
        (b"[a-]", b"_", true),
        (b"[a-]", b"b", false),
        (b"[a-]x", b"ax", false),
        (b"[a-]x", b"a", true),
        (b"[a-]]", b"a", true),
        (b"[a-]]", b"a]", false),
        (b"[-a]", b"-", true),
        (b"[-a]", b"a", true),
        (b"[-a]", b"b", false),
        (b"[a-c-e]", b"d", false),
        (b"[a-c-e]", b"-", true),
        (b"[a-c-e]", b"e", true),
        (b"[\\]]", b"]", true),
        (b"[\\]]", b"\\", false),
        (b"[\\]", b"]", true),
        (b"[\\]", b"\\", false),
        (b"[\\\\]", b"\\", true),
        (b"[\\-]", b"-", true),
        (b"[a\\-z]", b"b", false),
        (b"[a\\-z]", b"-", true),
        (b"[a-\\]", b"b", false),
        (b"[a-\\]", b"^", true),
        (b"[\\a-c]", b"b", false),
        (b"[\\a-c]", b"-", true),
        (b"[*]", b"*", true),
        (b"[*]", b"a", false),
        (b"[?]", b"?", true),
        (b"[?]", b"a", false),
        (b"[[]", b"[", true),
        (b"[^^]", b"^", false),
        (b"[^^]", b"a", true),
        (b"[\\^a]", b"^", true),
        (b"[]-a]", b"-", false),
        (b"[", b"[", false),
        (b"[", b"a", false),
        (b"[a", b"a", true),
        (b"[a", b"b", false),
        (b"[a", b"a[", false),
        (b"[^", b"x", true),
        (b"[^", b"xy", false),
        (b"a[", b"a", false),
        (b"a[", b"a[", false),
        (b"[ab", b"b", true),
        (b"[a-", b"-", true),
        (b"[a-", b"b", false),
        (b"*[", b"a[", false),
        (b"*[a", b"xa", true),
        (b"\\*", b"*", true),
        (b"\\*", b"a", false),
        (b"\\?", b"?", true),
        (b"\\?", b"a", false),
        (b"\\[", b"[", true),
        (b"\\[a]", b"[a]", true),
        (b"\\\\", b"\\", true),
        (b"\\a", b"a", true),
        (b"\\", b"\\", true),
        (b"\\", b"a", false),
        (b"a\\", b"a\\", true),
        (b"a\\", b"a", false),
        (b"*\\", b"a\\", true),
        (b"*\\", b"a", false),
        (b"*\\", b"\\", true),
        (b"\\*\\*", b"**", true),
        (b"*\\*", b"a*", true),
        (b"*\\*", b"a", false),
        (b"\\**", b"*abc", true),
        (b"\\**", b"abc", false),
        (b"[\x80-\xff]", b"\x90", true),
        (b"[\x80-\xff]", b"a", false),
        (b"[a-\xff]", b"0", true),
        (b"[a-\xff]", b"b", false),
        (b"[a-\xff]", b"\x80", false),
        (b"[\x01-\xff]", b"\x80", false),
        (b"[\x01-\xff]", b"\xff", true),
        (b"[\x01-\xff]", b"\x00", true),
        (b"[\x00-\x7f]", b"\x80", false),
        (b"[^\x80]", b"\x80", false),
        (b"[^\x80]", b"\x81", true),
        (b"[\x7f-\x80]", b"a", true),
    ];

    #[test]
    fn agrees_with_redis() {
        let wrong: Vec<_> = REDIS_CASES
            .iter()
            .filter(|&&(pattern, name, expected)| matches(pattern, name) != expected)
            .map(|&(pattern, name, expected)| {
                format!(
                    "{:?} against {:?}: expected {expected}",
                    String::from_utf8_lossy(pattern),
                    String::from_utf8_lossy(name)
                )
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "{} wrong:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }

    /// Long patterns, each answer checked against redis-server 7.0.15 too.
    #[test]
    fn long_patterns_agree_with_redis() {
        let a = |n: usize| b"a".repeat(n);
        let cases: Vec<(Vec<u8>, Vec<u8>, bool)> = vec![
            // The limit on runs of `*`: 1000 are fine, 1001 fail, one at the end is free.
            (b"*a".repeat(MAX_STAR_GROUPS), a(1000), true),
            (b"*a".repeat(MAX_STAR_GROUPS + 1), a(1001), false),
            ([b"*a".repeat(1000), b"*".to_vec()].concat(), a(1000), true),
            ([b"*a".repeat(1001), b"*".to_vec()].concat(), a(1001), false),
            (b"a*".repeat(1001), a(1001), true),
            (b"a*".repeat(1002), a(1002), false),
            (b"a*".repeat(1002), a(5), false),
            // Escaped stars are plain bytes, not runs.
            (b"\\*".repeat(2000), b"*".repeat(2000), true),
            // 1 MB patterns: no recursion, no stack overflow.
            (b"*".repeat(1_000_000), b"abc".to_vec(), true),
            (
                [b"*".repeat(1_000_000), b"b".to_vec()].concat(),
                b"abc".to_vec(),
                false,
            ),
            (
                [b"*".repeat(1_000_000), b"c".to_vec()].concat(),
                b"abc".to_vec(),
                true,
            ),
            (a(1_000_000), a(1_000_000), true),
            (a(1_000_000), [a(999_999), b"b".to_vec()].concat(), false),
            ([b"[".to_vec(), a(1_000_000)].concat(), b"a".to_vec(), true),
            (
                [b"[".to_vec(), b"\\]".repeat(500_000), b"]".to_vec()].concat(),
                b"]".to_vec(),
                true,
            ),
            // Patterns a naive backtracking matcher takes exponential time on.
            (b"a*a*a*a*a*a*a*a*b".to_vec(), a(10_000), false),
            (
                [b"*".to_vec(), a(100), b"b".to_vec()].concat(),
                a(10_000),
                false,
            ),
            (
                [b"*a".repeat(900), b"b".to_vec()].concat(),
                a(10_000),
                false,
            ),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(
                matches(&pattern, &name),
                expected,
                "pattern of {} bytes against a name of {} bytes",
                pattern.len(),
                name.len()
            );
        }
    }

    /// The work is at most `(pattern.len() + 2) * (name.len() + 1)` steps, and linear on the
    /// patterns that make a naive matcher exponential.
    #[test]
    fn work_is_bounded() {
        let a = |n: usize| b"a".repeat(n);
        let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"a*a*a*a*a*a*a*a*b".to_vec(), a(10_000)),
            (
                b"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b".to_vec(),
                a(10_000),
            ),
            ([b"*".to_vec(), a(100), b"b".to_vec()].concat(), a(10_000)),
            ([b"*a".repeat(900), b"b".to_vec()].concat(), a(10_000)),
            (b"*[a-z]?[^b]*\\a*?b".to_vec(), a(10_000)),
            (a(10_000), a(10_000)),
            (b"*".repeat(10_000), a(10_000)),
        ];
        for (pattern, name) in cases {
            let mut steps = 0;
            matches_counting(&pattern, &name, &mut steps);
            let bound = (pattern.len() as u64 + 2) * (name.len() as u64 + 1);
            assert!(steps <= bound, "{steps} steps, more than {bound}");
        }
        // `a*a*...*b` against `a`s: each run of `*` is given up for good once the part after
        // it has failed everywhere, so the work stays linear.
        let name = a(10_000);
        let mut steps = 0;
        assert!(!matches_counting(b"a*a*a*a*a*a*a*a*b", &name, &mut steps));
        assert!(steps <= 3 * name.len() as u64, "{steps} steps");
    }
}
