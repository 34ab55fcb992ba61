//! A request's headers as the stream reads them: slices of Envoy's header
//! map, kept in the hook's stack frame, so that reading them allocates
//! nothing (a request has 5 to 20 headers; more spill to the heap).

use std::mem::MaybeUninit;
use std::ops::Deref;

use super::{bytes, EnvoyHeader};
use crate::stream::Header;

/// Headers kept in place; a request with more is listed on the heap.
pub const INLINE: usize = 32;

/// A list of headers borrowed from Envoy (or from a test's fake stream):
/// up to [`INLINE`] in place, else all of them on the heap.
pub struct HeaderList<'s> {
    /// How many of `inline` are initialised (the heap unused).
    len: usize,
    inline: [MaybeUninit<Header<'s>>; INLINE],
    /// Every header, once there are more than [`INLINE`].
    heap: Vec<Header<'s>>,
}

impl Default for HeaderList<'_> {
    fn default() -> Self {
        HeaderList {
            len: 0,
            inline: [const { MaybeUninit::uninit() }; INLINE],
            heap: Vec::new(),
        }
    }
}

impl<'s> HeaderList<'s> {
    /// Appends a header.
    pub fn push(&mut self, header: Header<'s>) {
        if self.heap.is_empty() {
            if let Some(slot) = self.inline.get_mut(self.len) {
                slot.write(header);
                self.len += 1;
                return;
            }
            let mut heap = Vec::with_capacity(2 * INLINE);
            heap.extend_from_slice(self.as_slice());
            self.heap = heap;
        }
        self.heap.push(header);
    }

    /// Appends the `n` headers `fill` has Envoy write: the ABI's "size,
    /// then fill" pair of calls, `n` from the first. Envoy writes into a
    /// buffer in place for the usual few headers; false when `fill` fails.
    ///
    /// # Safety
    /// `fill` must have Envoy write exactly `n` headers at the pointer it
    /// is given (`n` is the size Envoy just reported, unchanged within the
    /// hook), and the bytes they point to must stay alive and unwritten for
    /// `'s`.
    #[inline]
    pub(super) unsafe fn fill_from(
        &mut self,
        n: usize,
        fill: impl FnOnce(*mut EnvoyHeader) -> bool,
    ) -> bool {
        let mut inline = [const { MaybeUninit::<EnvoyHeader>::uninit() }; INLINE];
        let mut heap: Vec<MaybeUninit<EnvoyHeader>> = Vec::new();
        let raw: &mut [MaybeUninit<EnvoyHeader>] = match inline.get_mut(..n) {
            Some(raw) => raw,
            None => {
                heap.resize_with(n, MaybeUninit::uninit);
                &mut heap
            }
        };
        if !fill(raw.as_mut_ptr().cast::<EnvoyHeader>()) {
            return false;
        }
        self.extend_with(raw, |h| {
            // SAFETY: `fill` had Envoy write all `n` (the caller's
            // contract), and their bytes live and stay unwritten for `'s`.
            unsafe {
                let h = h.assume_init_ref();
                (bytes(h.key_ptr, h.key_len), bytes(h.value_ptr, h.value_len))
            }
        });
        true
    }

    /// Appends `raw`'s headers, converted by `f` (one tight loop: a
    /// request's headers are read once per request).
    #[inline]
    pub(super) fn extend_with<T>(&mut self, raw: &[T], f: impl Fn(&T) -> Header<'s>) {
        let free = self.inline.get_mut(self.len..).unwrap_or_default();
        if self.heap.is_empty() && raw.len() <= free.len() {
            for (slot, r) in free.iter_mut().zip(raw) {
                slot.write(f(r));
            }
            self.len += raw.len();
        } else {
            for r in raw {
                self.push(f(r));
            }
        }
    }

    /// The headers, in order.
    pub fn as_slice(&self) -> &[Header<'s>] {
        if !self.heap.is_empty() {
            return &self.heap;
        }
        // SAFETY: the first `len` (at most INLINE) elements of `inline` were
        // written by `push` or `extend_with` and `MaybeUninit<T>` has `T`'s
        // layout; `Header` is `Copy`, so nothing needs dropping.
        unsafe { std::slice::from_raw_parts(self.inline.as_ptr().cast::<Header<'s>>(), self.len) }
    }
}

impl<'s> Deref for HeaderList<'s> {
    type Target = [Header<'s>];

    fn deref(&self) -> &[Header<'s>] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn keeps_every_header_in_order_in_place_and_past_it() {
        let names: Vec<String> = (0..3 * INLINE).map(|i| format!("h-{i}")).collect();
        let all: Vec<Header<'_>> = names.iter().map(|n| (n.as_bytes(), &b"v"[..])).collect();
        for n in [0, 1, INLINE - 1, INLINE, INLINE + 1, 3 * INLINE] {
            for first in [0, n.min(1), n / 2, n] {
                // `first` pushed one by one, the rest in one extend.
                let mut list = HeaderList::default();
                for h in &all[..first] {
                    list.push(*h);
                }
                list.extend_with(&all[first..n], |h| *h);
                assert_eq!(list.as_slice(), &all[..n], "{n} headers, {first} pushed");
            }
        }
    }
}
