//! The module's heap: one free list per size class, over `memory.grow`.
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

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32::{memory_grow, memory_size};
use core::cell::UnsafeCell;
use core::ptr::null_mut;

use super::Single;

/// Classes of 8..=64 bytes by 8, then 4 per power of two up to 2^31.
const FINE: usize = 8 + 4 * 25;
/// Then one class per power of two for layouts aligned to more than 8
/// (rare), carved at their alignment.
const CLASSES: usize = FINE + 32;
/// The largest alignment served.
const MAX_ALIGN: usize = 4096;
const PAGE: usize = 65536;

struct Heap {
    /// The first free block of each class; a free block holds the next.
    free: [*mut u8; CLASSES],
    /// The untouched memory: `next..end`.
    next: usize,
    end: usize,
}

#[global_allocator]
static HEAP: Single<UnsafeCell<Heap>> = Single(UnsafeCell::new(Heap {
    free: [null_mut(); CLASSES],
    next: 0,
    end: 0,
}));

extern "C" {
    /// Where the linker's static data and stack end.
    static __heap_base: u8;
}

/// A layout's class: (index, block size, block alignment).
fn class(layout: Layout) -> Option<(usize, usize, usize)> {
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

impl Heap {
    /// A block from the untouched memory, growing it by whole pages when it
    /// is too short.
    fn carve(&mut self, size: usize, align: usize) -> *mut u8 {
        if self.end == 0 {
            // The address of a linker-defined symbol; never read.
            self.next = core::ptr::addr_of!(__heap_base) as usize;
            self.end = memory_size(0) * PAGE;
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
            let old = memory_grow(0, pages);
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

// SAFETY: the module runs on one thread (see `Single`), and no allocation
// re-enters the allocator. A block of a class has that class's size and
// alignment, which cover every layout of the class; a block is on at most
// one free list, and only while it is free.
unsafe impl GlobalAlloc for Single<UnsafeCell<Heap>> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let heap = &mut *self.0.get();
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
        let heap = &mut *self.0.get();
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
