//! The module's heap: one free list per power-of-two size class, over
//! `memory.grow`.
//!
//! The `.wasm` is `no_std`, so wasi-libc's dlmalloc (about 11 KiB of code,
//! which V8 compiles in every sidecar) is not linked; this is a few hundred
//! bytes. A block is never split or merged: a freed block waits on its
//! class's list for the next allocation of that class. The filter's heap
//! follows its rule set (built whole on configure, dropped whole on the next
//! one) and its streams (a few fixed shapes), so blocks are reused as they
//! are freed; the cost is up to half of a block's class left unused.
//! wasm memory never shrinks, whichever allocator runs.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32::{memory_grow, memory_size};
use core::cell::UnsafeCell;
use core::ptr::null_mut;

use super::Single;

/// The smallest block: 16 bytes (2^4), room for a free-list link and
/// aligned for any scalar.
const MIN_SHIFT: usize = 4;
/// Size classes 2^4 ..= 2^31: every size a wasm32 `Layout` can hold.
const CLASSES: usize = 32 - MIN_SHIFT;
/// A block is aligned to its size, up to this (a larger request fails).
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

/// The class of a layout: `log2(block size) - MIN_SHIFT`.
fn class(layout: Layout) -> Option<usize> {
    if layout.align() > MAX_ALIGN {
        return None;
    }
    let size = layout
        .size()
        .max(layout.align())
        .checked_next_power_of_two()?;
    Some((size.trailing_zeros() as usize).saturating_sub(MIN_SHIFT))
}

impl Heap {
    /// A block of class `c` from the untouched memory, growing it by whole
    /// pages when it is too short.
    fn carve(&mut self, c: usize) -> *mut u8 {
        if self.end == 0 {
            // The address of a linker-defined symbol; never read.
            self.next = core::ptr::addr_of!(__heap_base) as usize;
            self.end = memory_size(0) * PAGE;
        }
        let size = 1usize << (c + MIN_SHIFT);
        let align = size.min(MAX_ALIGN);
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
// re-enters the allocator. A block of class `c` is `2^(c + 4)` bytes aligned
// to `min(that, MAX_ALIGN)`, which covers any layout of that class; a block
// is on at most one free list, and only while it is free.
unsafe impl GlobalAlloc for Single<UnsafeCell<Heap>> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let heap = &mut *self.0.get();
        let Some(c) = class(layout) else {
            return null_mut();
        };
        match heap.free.get_mut(c) {
            Some(head) if !head.is_null() => {
                let block = *head;
                *head = *block.cast::<*mut u8>();
                block
            }
            Some(_) => heap.carve(c),
            None => null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let heap = &mut *self.0.get();
        if let Some(head) = class(layout).and_then(|c| heap.free.get_mut(c)) {
            *ptr.cast::<*mut u8>() = *head;
            *head = ptr;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new) = Layout::from_size_align(new_size, layout.align()) else {
            return null_mut();
        };
        if class(new) == class(layout) {
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
