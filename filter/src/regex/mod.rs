//! The filter's own regex engine: regex-lite 0.1.9's syntax and errors
//! (`RegexBuilder` with `\A(?:pattern)\z`, one byte to a character, as
//! `matcher.rs` used it), read by [`parse`], compiled by [`compile`] and run
//! by [`vm`], a Pike VM: time linear in the value, no allocation per match
//! once a regex has matched once. `tests.rs` proves it equal to regex-lite.
//!
//! Only `core` and `alloc`.

mod compile;
mod err;
mod parse;
#[cfg(test)]
mod tests;
mod vm;

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::limits;

/// A set of bytes (a class), one bit each.
type Set = [u32; 8];

/// Deepest nesting (regex-lite's `nest_limit`).
const NEST: u32 = limits::MAX_REGEX_NESTING;
/// Largest program, and what each instruction and class counts towards it
/// (see `limits::MAX_REGEX_PROGRAM_BYTES`).
const PROGRAM_BYTES: usize = limits::MAX_REGEX_PROGRAM_BYTES;
const UNIT_BYTES: usize = 32;

/// A compiled regex: matches a whole value, one byte to a character.
pub struct Regex {
    prog: Box<[compile::Inst]>,
    sets: Box<[Set]>,
    /// The scratch a match uses, claimed by `busy`; a match that finds it
    /// claimed (another thread's) uses one of its own.
    busy: AtomicBool,
    scratch: UnsafeCell<vm::Scratch>,
}

// SAFETY: `scratch` is only touched by the one match that set `busy`.
unsafe impl Sync for Regex {}

impl Regex {
    /// Compiles `pattern` as regex-lite compiles `\A(?:pattern)\z` (each
    /// byte a character), within the nesting and size limits; an error is
    /// regex-lite's message.
    pub fn new(pattern: &[u8], ignore_case: bool) -> Result<Regex, &'static str> {
        let mut wrapped = alloc::vec::Vec::with_capacity(pattern.len() + 10);
        wrapped.extend_from_slice(b"\\A(?:");
        wrapped.extend_from_slice(pattern);
        wrapped.extend_from_slice(b")\\z");
        let root = parse::parse(&wrapped, ignore_case)?;
        let mut c = compile::Compiler {
            prog: alloc::vec::Vec::new(),
            sets: alloc::vec::Vec::new(),
        };
        c.node(&root)?;
        c.emit_match()?;
        Ok(Self::from_parts(c.prog.into(), c.sets.into()))
    }

    fn from_parts(prog: Box<[compile::Inst]>, sets: Box<[Set]>) -> Regex {
        Regex {
            prog,
            sets,
            busy: AtomicBool::new(false),
            scratch: UnsafeCell::new(vm::Scratch::default()),
        }
    }

    /// Whether `value` matches (the whole of it, as the pattern is
    /// anchored).
    pub fn is_match(&self, value: &[u8]) -> bool {
        if self.busy.swap(true, Ordering::Acquire) {
            return vm::run(&self.prog, &self.sets, &mut vm::Scratch::default(), value);
        }
        // SAFETY: `busy` was false and is now ours: no other reference.
        let scratch = unsafe { &mut *self.scratch.get() };
        let matched = vm::run(&self.prog, &self.sets, scratch, value);
        self.busy.store(false, Ordering::Release);
        matched
    }
}

impl Clone for Regex {
    fn clone(&self) -> Regex {
        Self::from_parts(self.prog.clone(), self.sets.clone())
    }
}

impl core::fmt::Debug for Regex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Regex")
    }
}
