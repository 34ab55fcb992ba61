//! The rule index: which rules of a service a request can match, found
//! from its header values and path prefixes instead of by testing every rule.

use alloc::{boxed::Box, vec::Vec};

use core::hash::{BuildHasherDefault, Hasher};

use hashbrown::HashMap;

use crate::domain::matcher::StringMatcher;
use crate::domain::pick::hash_key;

use super::decide::RequestParts;
use super::{Condition, MatchEntry, RequestView, Rule, Service};

/// At most this many distinct header names are indexed in a service; rules
/// on further names are tested for every request, like unindexed rules.
pub const MAX_INDEXED_HEADERS: usize = 64;

/// Services where at least this many rules can be filed get a [`RuleIndex`];
/// with fewer, a plain scan is as fast.
pub const INDEX_MIN_RULES: usize = 8;

/// A value's hash ([`hash_key`]) → the range of [`RuleIndex::lists`] that
/// holds the rules filed under it. The index keeps no copy of the values:
/// two values with one hash share their rules, and every candidate is
/// tested whole anyway ([`Rule::matches`]), so a collision costs a test,
/// never a wrong answer.
type ValueMap = HashMap<u64, (u32, u32), BuildHasherDefault<Prehashed>>;

/// The hasher of a [`ValueMap`]: its keys are hashes already.
#[derive(Default, Clone, Copy)]
pub(super) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Which rules can match a request. A rule whose every match entry requires
/// an exact header value (`headers: {x-user: {exact: ...}}`, the usual
/// canary rule) or a path prefix (`uri: {prefix: ...}`, `{pathPrefix: ...}` or `{exact: ...}`,
/// case-sensitive) can only match a request carrying one of those, so it is
/// filed under each `(header, value)` or path prefix; every other rule is
/// tested for every request. The first matching rule is then found by testing only the
/// rules filed under the request's own header values and the others, in rule
/// order: the cost of a decision depends on those, not on how many exact
/// header rules there are.
#[derive(Debug, Clone)]
pub(super) struct RuleIndex {
    /// Header name → (value → the rules filed there, in `lists`).
    /// At most [`MAX_INDEXED_HEADERS`] names, so that one `u64` can mark the
    /// names a request has already shown.
    pub(super) by_header: Vec<(Box<str>, ValueMap)>,
    /// For each name length `n` (the last entry: 63 bytes or more), the
    /// slots of `by_header` whose names are that long, as a bit set: most
    /// request headers are passed over on their length alone, the others
    /// are compared with one or two names.
    pub(super) slots_by_len: Box<[u64; 64]>,
    /// Bit `n` set when `slots_by_len[n]` is not empty.
    pub(super) name_lens: u64,
    /// Path prefix → the rules filed there, in `lists`.
    pub(super) by_prefix: ValueMap,
    /// The indices of the rules filed under each value, ascending, one
    /// range per value (a value's range may end before the next one starts).
    lists: Box<[u32]>,
    /// The distinct lengths of the filed prefixes, ascending.
    pub(super) prefix_lens: Vec<usize>,
    /// Indices of the rules that are not filed (ascending).
    pub(super) always: Vec<u32>,
    /// How many rules are filed.
    pub(super) filed: usize,
}

impl RuleIndex {
    /// Builds the index of a service's rules.
    #[inline(never)]
    pub(super) fn build(rules: &[Rule]) -> RuleIndex {
        let names = indexed_names(rules);
        // Slot `n` of `by_header` is `names[n]`: the names in the order the
        // rules first use them.
        let mut by_header: Vec<ValueMap> = Vec::with_capacity(names.len());
        for _ in &names {
            by_header.push(ValueMap::default());
        }
        let mut by_prefix = ValueMap::default();
        let mut always = Vec::new();
        let mut filed = 0;
        // Each rule's keys: (slot, hash of the value, its length), `None`
        // when the rule is tested for every request.
        let keys_of = |rule: &Rule| -> Option<Vec<(Option<usize>, u64, usize)>> {
            if rule.matches.is_empty() {
                return None;
            }
            let mut keys = Vec::with_capacity(rule.matches.len());
            for m in rule.matches.iter() {
                keys.push(match m.index_key()? {
                    IndexKey::Header(name, value) => (
                        Some(names.iter().position(|n| *n == name)?),
                        hash_key(value),
                        value.len(),
                    ),
                    IndexKey::PathPrefix(prefix) => (None, hash_key(prefix), prefix.len()),
                });
            }
            Some(keys)
        };
        // Two passes: count the rules of each value (room for each of a
        // rule's keys, even those it shares), then lay the lists out one
        // after the other and fill them.
        let mut lists: Vec<u32> = Vec::new();
        let mut prefix_lens: Vec<usize> = Vec::new();
        for pass in 0..2 {
            for (i, rule) in rules.iter().enumerate() {
                let i = u32::try_from(i).unwrap_or(u32::MAX);
                if !rule.reachable {
                    continue;
                }
                let Some(keys) = keys_of(rule) else {
                    if pass == 0 {
                        always.push(i);
                    }
                    continue;
                };
                filed += usize::from(pass == 0);
                for (slot, hash, len) in keys {
                    let map = match slot {
                        Some(slot) => by_header.get_mut(slot),
                        None => {
                            if let Err(at) = prefix_lens.binary_search(&len) {
                                prefix_lens.insert(at, len);
                            }
                            Some(&mut by_prefix)
                        }
                    };
                    let Some(map) = map else { continue };
                    let (start, end) = map.entry(hash).or_insert((0, 0));
                    let last = end.checked_sub(1).filter(|l| *l >= *start);
                    if pass == 1 && last.and_then(|l| lists.get(l as usize)) == Some(&i) {
                        continue;
                    }
                    if let Some(at) = lists.get_mut(*end as usize) {
                        *at = i;
                    }
                    *end += 1;
                }
            }
            if pass == 0 {
                // Counted: each value's range starts where the one before
                // it ends, empty until filled.
                let mut next = 0;
                for map in by_header.iter_mut().chain([&mut by_prefix]) {
                    for range in map.values_mut() {
                        let count = range.1;
                        *range = (next, next);
                        next += count;
                    }
                }
                lists = alloc::vec![0; next as usize];
            }
        }
        let mut slots_by_len = Box::new([0u64; 64]);
        for (slot, name) in names.iter().enumerate() {
            if let Some(set) = slots_by_len.get_mut(name.len().min(63)) {
                *set |= 1u64 << slot;
            }
        }
        for map in by_header.iter_mut().chain([&mut by_prefix]) {
            map.shrink_to_fit();
        }
        let mut name_lens = 0u64;
        for (n, slots) in slots_by_len.iter().enumerate() {
            if *slots != 0 {
                name_lens |= 1u64 << n;
            }
        }
        let mut named = Vec::with_capacity(names.len());
        for (name, map) in names.into_iter().zip(by_header) {
            named.push((Box::from(name), map));
        }
        RuleIndex {
            name_lens,
            slots_by_len,
            by_header: named,
            prefix_lens,
            by_prefix,
            lists: lists.into(),
            always,
            filed,
        }
    }

    /// The rules filed under `value` in `map` (one of this index's), ascending.
    #[inline]
    pub(super) fn filed_under(&self, map: &ValueMap, value: &[u8]) -> &[u32] {
        map.get(&hash_key(value))
            .and_then(|&(start, end)| self.lists.get(start as usize..end as usize))
            .unwrap_or_default()
    }
}

/// The header names to index: the first [`MAX_INDEXED_HEADERS`] met in rule order.
#[inline(never)]
fn indexed_names(rules: &[Rule]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for rule in rules.iter().filter(|r| r.reachable) {
        for m in &rule.matches {
            if let Some(IndexKey::Header(name, _)) = m.index_key() {
                if !names.contains(&name) && names.len() < MAX_INDEXED_HEADERS {
                    names.push(name);
                }
            }
        }
    }
    names
}

/// What a match entry is filed under in a [`RuleIndex`].
enum IndexKey<'a> {
    /// An exact header value: `(name, value)`.
    Header(&'a str, &'a [u8]),
    /// A path prefix (from `uri.prefix` or `uri.pathPrefix`, or `uri.exact`, which implies it).
    PathPrefix(&'a [u8]),
}

impl Service {
    /// The index of the first rule that matches, if any.
    #[inline]
    pub(super) fn first_match<R: RequestView>(&self, parts: &RequestParts<'_, R>) -> Option<usize> {
        let Some(index) = &self.index else {
            return self.rules.iter().position(|r| r.matches(parts));
        };
        let mut best = usize::MAX;
        let scan = |list: &[u32], best: &mut usize| {
            for &i in list {
                let i = i as usize;
                if i >= *best {
                    break;
                }
                if self.rules.get(i).is_some_and(|r| r.matches(parts)) {
                    *best = i;
                    break;
                }
            }
        };
        if !index.by_header.is_empty() {
            // One walk of the request's headers, each name looked up among
            // the indexed ones. Every value of a repeated name is looked up:
            // a rule matches when any one of them does, as in
            // `RequestView::any_header_value`.
            let walked = parts
                .req
                .for_each_header_of_len(index.name_lens, |name, value| {
                    let mut candidates = index
                        .slots_by_len
                        .get(name.len().min(63))
                        .copied()
                        .unwrap_or(0);
                    while candidates != 0 {
                        let slot = candidates.trailing_zeros() as usize;
                        candidates &= candidates - 1;
                        let Some((n, values)) = index.by_header.get(slot) else {
                            return;
                        };
                        // Most same-length names already differ in their
                        // first byte (`x-` headers against pseudo-headers and
                        // standard ones): no call to compare them.
                        if n.as_bytes().first() == name.first() && n.as_bytes() == name {
                            scan(index.filed_under(values, value), &mut best);
                            return;
                        }
                    }
                });
            if !walked {
                for (name, values) in index.by_header.iter() {
                    parts.req.any_header_value(name, |v| {
                        scan(index.filed_under(values, v), &mut best);
                        false
                    });
                }
            }
        }
        for &len in index.prefix_lens.iter() {
            let Some(head) = parts.path.get(..len) else {
                break;
            };
            scan(index.filed_under(&index.by_prefix, head), &mut best);
        }
        scan(&index.always, &mut best);
        (best != usize::MAX).then_some(best)
    }
}

impl MatchEntry {
    /// What this entry is filed under: its first exact header condition, else
    /// a case-sensitive path prefix. A request without it cannot match.
    fn index_key(&self) -> Option<IndexKey<'_>> {
        let exact_header = self.0.iter().find_map(|c| match c {
            Condition::Header(name, StringMatcher::Exact(v)) => Some(IndexKey::Header(name, v)),
            _ => None,
        });
        exact_header.or_else(|| {
            self.0.iter().find_map(|c| match c {
                Condition::Uri(
                    StringMatcher::Prefix(p)
                    | StringMatcher::Exact(p)
                    | StringMatcher::PathPrefix(p),
                ) => Some(IndexKey::PathPrefix(p)),
                _ => None,
            })
        })
    }
}
