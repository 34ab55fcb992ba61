//! A heap for the module: one free list per size class, over `memory.grow`.
//!
//! The `.wasm` is `no_std`, so wasi-libc's dlmalloc (about 11 KiB of code,
//! which V8 compiles in every sidecar) is not linked; this is under 1 KiB.
//! A block is never split or merged: a freed block waits on its class's
//! list for the next allocation of that class. The filter's heap follows its
//! rule set (built whole on configure, dropped whole on the next one) and
//! its streams (a few fixed shapes), so blocks are reused as they are
//! freed (`test-harness/wasm-host/tests/host_heap.rs` checks it over reloads).
//!
//! Classes are multiples of 8 bytes up to 64, then four per power of two
//! (80, 96, 112, 128, 160, …): a block is at most a quarter larger than
//! what was asked. (With power-of-two classes alone, the 1000-rule set's
//! heap peaked 55% above what it asked for.) wasm memory never shrinks,
//! whichever allocator runs.
//!
//! The memory comes through [`Memory`]: wasm's linear memory in the module
//! ([`LinearMemory`], wasm32 only), a buffer in tests, so that the heap
//! runs natively too.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;

/// Classes of 8..=64 bytes by 8, then 4 per power of two up to 2^31.
const FINE: usize = 8 + 4 * 25;
/// Then one class per power of two for layouts aligned to more than 8
/// (rare), carved at their alignment.
const CLASSES: usize = FINE + 32;
/// The largest alignment served.
const MAX_ALIGN: usize = 4096;
/// A page of wasm memory, what it grows by.
pub const PAGE: usize = 65536;

/// Where the heap's memory comes from: addresses from 0, in pages of
/// [`PAGE`] bytes, as wasm's linear memory.
pub trait Memory {
    /// The first address the heap may use, and the memory's end (read once,
    /// before the first block).
    fn bounds(&self) -> (usize, usize);
    /// Grows the memory by `pages`: its size in pages before, or
    /// `usize::MAX` when it cannot (`memory.grow`'s answer).
    fn grow(&mut self, pages: usize) -> usize;
}

/// wasm's linear memory after the module's static data and stack.
#[cfg(target_arch = "wasm32")]
pub struct LinearMemory;

#[cfg(target_arch = "wasm32")]
extern "C" {
    /// Where the linker's static data and stack end.
    static __heap_base: u8;
}

#[cfg(target_arch = "wasm32")]
impl Memory for LinearMemory {
    #[inline]
    fn bounds(&self) -> (usize, usize) {
        // The address of a linker-defined symbol; never read.
        let base = core::ptr::addr_of!(__heap_base) as usize;
        (base, core::arch::wasm32::memory_size(0) * PAGE)
    }

    #[inline]
    fn grow(&mut self, pages: usize) -> usize {
        core::arch::wasm32::memory_grow(0, pages)
    }
}

/// The heap: a `GlobalAlloc` over `M`. For one thread: it takes no lock.
pub struct Heap<M> {
    state: UnsafeCell<State<M>>,
}

struct State<M> {
    /// The first free block of each class; a free block holds the next.
    free: [*mut u8; CLASSES],
    /// The untouched memory: `next..end` (`end` 0: not read yet).
    next: usize,
    end: usize,
    memory: M,
}

impl<M> Heap<M> {
    /// An empty heap over `memory`.
    pub const fn new(memory: M) -> Self {
        Heap {
            state: UnsafeCell::new(State {
                free: [null_mut(); CLASSES],
                next: 0,
                end: 0,
                memory,
            }),
        }
    }
}

// SAFETY: on wasm32 without the atomics feature the module has one thread,
// so a `static` heap is only ever touched by it.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for Heap<LinearMemory> {}

/// A layout's class: (index, block size, block alignment); `None` for an
/// alignment over 4 KiB or a size near `usize::MAX`.
pub fn class(layout: Layout) -> Option<(usize, usize, usize)> {
    let size = layout.size().max(8);
    if layout.align() > 8 {
        if layout.align() > MAX_ALIGN {
            return None;
        }
        let block = size.max(layout.align()).checked_next_power_of_two()?;
        let index = FINE + block.trailing_zeros() as usize;
        return Some((index, block, block.min(MAX_ALIGN)));
    }
    if size <= 64 {
        let block = (size + 7) & !7;
        return Some((block / 8 - 1, block, 8));
    }
    // 2^e < size <= 2^(e+1), e >= 6; four steps of 2^(e-2) above 2^e.
    let e = (usize::BITS - 1 - (size - 1).leading_zeros()) as usize;
    let step = 1usize << (e - 2);
    let k = (size - (1 << e)).div_ceil(step);
    let block = (1usize << e).checked_add(k * step)?;
    Some((8 + (e - 6) * 4 + (k - 1), block, 8))
}

impl<M: Memory> State<M> {
    /// A block from the untouched memory, growing it by whole pages when it
    /// is too short.
    #[inline]
    fn carve(&mut self, size: usize, align: usize) -> *mut u8 {
        if self.end == 0 {
            (self.next, self.end) = self.memory.bounds();
        }
        loop {
            let start = (self.next + align - 1) & !(align - 1);
            let Some(end) = start.checked_add(size) else {
                return null_mut();
            };
            if end <= self.end {
                self.next = end;
                return start as *mut u8;
            }
            let pages = (end - self.end).div_ceil(PAGE);
            let old = self.memory.grow(pages);
            if old == usize::MAX {
                return null_mut();
            }
            if old * PAGE != self.end {
                // Not where the heap ended (no one else grows the memory):
                // start over at the new pages.
                self.next = old * PAGE;
            }
            self.end = (old + pages) * PAGE;
        }
    }
}

// SAFETY: one thread at a time uses a heap (`Sync` only for the module's
// single thread, above), and no allocation re-enters the allocator. A block
// of a class has that class's size and alignment, which cover every layout
// of the class; a block is on at most one free list, and only while it is
// free.
unsafe impl<M: Memory> GlobalAlloc for Heap<M> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let heap = &mut *self.state.get();
        let Some((c, size, align)) = class(layout) else {
            return null_mut();
        };
        match heap.free.get_mut(c) {
            Some(head) if !head.is_null() => {
                let block = *head;
                *head = *block.cast::<*mut u8>();
                block
            }
            Some(_) => heap.carve(size, align),
            None => null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let heap = &mut *self.state.get();
        if let Some(head) = class(layout).and_then(|(c, _, _)| heap.free.get_mut(c)) {
            *ptr.cast::<*mut u8>() = *head;
            *head = ptr;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new) = Layout::from_size_align(new_size, layout.align()) else {
            return null_mut();
        };
        if class(new).map(|c| c.0) == class(layout).map(|c| c.0) {
            return ptr;
        }
        let block = self.alloc(new);
        if !block.is_null() {
            core::ptr::copy_nonoverlapping(ptr, block, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory from a page-aligned buffer, pages handed out as it grows.
    struct Buffer {
        start: usize,
        used_pages: usize,
        pages: usize,
    }

    impl Buffer {
        fn new(pages: usize) -> (Buffer, Layout) {
            let layout = Layout::from_size_align(pages * PAGE, PAGE).unwrap();
            let start = unsafe { std::alloc::alloc(layout) } as usize;
            assert_ne!(start, 0);
            (
                Buffer {
                    start,
                    used_pages: 1,
                    pages,
                },
                layout,
            )
        }
    }

    impl Memory for Buffer {
        fn bounds(&self) -> (usize, usize) {
            (self.start + 8, self.start + self.used_pages * PAGE)
        }
        fn grow(&mut self, pages: usize) -> usize {
            if self.used_pages + pages > self.pages {
                return usize::MAX;
            }
            let old = self.start / PAGE + self.used_pages;
            self.used_pages += pages;
            old
        }
    }

    #[test]
    fn classes_cover_their_layouts_within_a_quarter() {
        for align in [1, 2, 4, 8, 16, 64, 4096] {
            for size in (0..5000).chain([65536, 1 << 20, (1 << 31) - 1]) {
                let layout = Layout::from_size_align(size, align).unwrap();
                let (c, block, block_align) = class(layout).unwrap();
                assert!(c < CLASSES && block >= size.max(8) && block_align >= align);
                assert_eq!(block % block_align, 0, "{size} {align}");
                if align <= 8 && size > 64 {
                    assert!(block <= size + size / 4, "{size}: {block}");
                }
            }
        }
        assert!(class(Layout::from_size_align(8, 8192).unwrap()).is_none());
    }

    /// The allocator's contract, on a native buffer: blocks aligned, apart,
    /// kept whole by `realloc`, reused once freed; null when memory ends.
    #[test]
    fn blocks_are_aligned_apart_and_reused() {
        let (memory, buffer) = Buffer::new(8);
        let start = memory.start;
        let heap = Heap::new(memory);
        unsafe {
            let mut live: Vec<(*mut u8, Layout)> = Vec::new();
            for (i, (size, align)) in [(1, 1), (24, 8), (100, 4), (3000, 16), (70, 2), (8, 4096)]
                .into_iter()
                .enumerate()
            {
                let layout = Layout::from_size_align(size, align).unwrap();
                let p = heap.alloc(layout);
                assert!(!p.is_null() && p as usize % align == 0, "{size} {align}");
                p.write_bytes(i as u8, size);
                live.push((p, layout));
            }
            for (i, (p, l)) in live.iter().enumerate() {
                let bytes = core::slice::from_raw_parts(*p, l.size());
                assert!(bytes.iter().all(|&b| b == i as u8), "block {i} overwritten");
            }
            let (p, l) = live[2];
            let q = heap.realloc(p, l, 1000);
            assert!(core::slice::from_raw_parts(q, 100).iter().all(|&b| b == 2));
            heap.dealloc(q, Layout::from_size_align(1000, 4).unwrap());
            let again = heap.alloc(Layout::from_size_align(990, 4).unwrap());
            assert_eq!(again, q, "a freed block is the next of its class");
            let huge = heap.alloc(Layout::from_size_align(16 * PAGE, 8).unwrap());
            assert!(huge.is_null(), "more than the buffer holds");
            let fits = heap.alloc(Layout::from_size_align(3 * PAGE, 8).unwrap());
            assert!(!fits.is_null() && (fits as usize) < start + 8 * PAGE);
            std::alloc::dealloc(start as *mut u8, buffer);
        }
    }

    /// Random allocations, frees and reallocations of random sizes and
    /// alignments, seeded (a different seed every run, printed; set
    /// `HEAP_STRESS_SEED` to replay one): every live block is aligned,
    /// inside the buffer, apart from every other, and keeps its bytes
    /// (each filled with its own pattern, checked before it is freed and
    /// after a realloc); and the heap reuses what is freed: after rounds of
    /// the same random mix, the memory it carved stops growing.
    #[test]
    fn random_alloc_free_realloc() {
        let seed = std::env::var("HEAP_STRESS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("HEAP_STRESS_SEED={seed}");
        let mut x = seed;
        let mut rnd = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let (memory, buffer) = Buffer::new(512);
        let (start, end) = (memory.start, memory.start + 512 * PAGE);
        let heap = Heap::new(memory);
        // (block, layout, fill byte)
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        let check = |p: *mut u8, l: Layout, fill: u8| unsafe {
            let bytes = core::slice::from_raw_parts(p, l.size());
            assert!(
                bytes.iter().all(|&b| b == fill),
                "block at {p:?} overwritten"
            );
        };
        let mut carved = Vec::new();
        for round in 0..12 {
            for op in 0..4000u32 {
                let fill = (op % 251) as u8 + 1;
                match rnd(10) {
                    // Allocate: mostly small, some large, a few aligned.
                    0..=4 => {
                        let size = match rnd(10) {
                            0..=6 => rnd(80),
                            7 | 8 => rnd(2000),
                            _ => rnd(40_000),
                        };
                        let align = [1, 2, 4, 8, 8, 8, 16, 64, 4096][rnd(9)];
                        let l = Layout::from_size_align(size, align).unwrap();
                        let p = unsafe { heap.alloc(l) };
                        assert!(!p.is_null(), "out of memory at round {round}");
                        assert_eq!(p as usize % align, 0);
                        assert!(p as usize >= start && p as usize + size <= end);
                        unsafe { p.write_bytes(fill, size) };
                        live.push((p, l, fill));
                    }
                    // Free one.
                    5..=7 if !live.is_empty() => {
                        let (p, l, f) = live.swap_remove(rnd(live.len()));
                        check(p, l, f);
                        unsafe { heap.dealloc(p, l) };
                    }
                    // Reallocate one, to a random size.
                    8 | 9 if !live.is_empty() => {
                        let i = rnd(live.len());
                        let (p, l, f) = live[i];
                        check(p, l, f);
                        let size = rnd(3000);
                        let q = unsafe { heap.realloc(p, l, size) };
                        assert!(!q.is_null() && q as usize % l.align() == 0);
                        let kept = Layout::from_size_align(l.size().min(size), 1).unwrap();
                        check(q, kept, f);
                        let nl = Layout::from_size_align(size, l.align()).unwrap();
                        unsafe { q.write_bytes(fill, size) };
                        live[i] = (q, nl, fill);
                    }
                    _ => {}
                }
            }
            // No two live blocks overlap.
            let mut spans: Vec<(usize, usize)> = live
                .iter()
                .map(|(p, l, _)| (*p as usize, *p as usize + l.size()))
                .collect();
            spans.sort_unstable();
            for w in spans.windows(2) {
                assert!(w[0].1 <= w[1].0, "blocks overlap: {w:?}");
            }
            // Free everything the round left, then the next round starts
            // from an empty heap: it reuses the blocks.
            for (p, l, f) in live.drain(..) {
                check(p, l, f);
                unsafe { heap.dealloc(p, l) };
            }
            carved.push(unsafe { (*heap.state.get()).next } - start);
        }
        eprintln!("memory carved after each round: {carved:?}");
        // Each round asks for a similar random mix: after the first rounds
        // the free lists hold what it needs, so the carved memory grows far
        // less than in the first round.
        let first = carved[0];
        let later = carved[carved.len() - 1] - carved[5];
        assert!(later < first / 2, "the heap does not reuse: {carved:?}");
        unsafe { std::alloc::dealloc(start as *mut u8, buffer) };
    }
}
