//! A regex engine with regex-lite 0.1.9's syntax and errors
//! (`RegexBuilder` with `\A(?:pattern)\z`, one byte to a character), read
//! by `parse`, compiled by `compile` and run by `vm`, a Pike VM: time
//! linear in the value, no allocation per match once a regex has matched
//! once. `tests.rs` proves it equal to regex-lite.
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
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

/// A set of bytes (a class), one bit each.
type Set = [u32; 8];

/// What each instruction and each distinct class counts towards
/// [`Options::size_limit`].
const UNIT_BYTES: usize = 32;

/// How a pattern is compiled: regex-lite's `RegexBuilder` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Letters match either case (`case_insensitive`).
    pub case_insensitive: bool,
    /// The deepest nesting of groups and repetitions (`nest_limit`); at
    /// most 250, a larger value counts as 250.
    pub nest_limit: u32,
    /// The largest compiled program, in bytes (`size_limit`), measured
    /// deterministically: 32 bytes for each instruction of the program (one
    /// per character, class, assertion, branch and jump, repetitions
    /// expanded; 32 is about what one costs: 12 bytes for itself, 16 in a
    /// match's two thread lists and stack, and its share of the rest) and 32
    /// for each distinct class (its 256-bit set). regex-lite counts 32
    /// bytes per NFA state on 64-bit hosts, so both put a bound near the
    /// same patterns. It bounds compile time and memory, and the cost of one
    /// match, which grows with program size × value length (a 1,024-byte
    /// literal compiles to about 33 KiB).
    pub size_limit: usize,
    /// The most instruction visits one match makes, over all the bytes of
    /// the value (the VM visits each instruction at most once per byte, so a
    /// match costs at most program length × value length visits): a match
    /// that needs more stops and does not match. regex-lite has no such
    /// bound; it is the one way a match may differ from regex-lite's.
    pub step_limit: usize,
}

/// Why a pattern was refused: regex-lite's message, word for word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error(&'static str);

impl Error {
    /// The message, as `Display` of regex-lite's error gives it (its last line).
    pub fn message(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl core::error::Error for Error {}

/// A compiled regex: matches a whole value, one byte to a character.
pub struct Regex {
    prog: Box<[compile::Inst]>,
    sets: Box<[Set]>,
    /// The scratch a match uses, claimed by `busy`; a match that finds it
    /// claimed (another thread's) uses one of its own.
    busy: AtomicBool,
    scratch: UnsafeCell<vm::Scratch>,
    /// [`Options::step_limit`].
    steps: usize,
}

// SAFETY: `scratch` is only touched by the one match that set `busy`.
unsafe impl Sync for Regex {}

impl Regex {
    /// Compiles `pattern` as regex-lite compiles `\A(?:pattern)\z` (each
    /// byte a character) with these options; an error is regex-lite's
    /// message.
    pub fn new(pattern: &[u8], options: &Options) -> Result<Regex, Error> {
        Self::build(pattern, options).map_err(Error)
    }

    fn build(pattern: &[u8], options: &Options) -> Result<Regex, &'static str> {
        let mut wrapped = alloc::vec::Vec::with_capacity(pattern.len() + 10);
        wrapped.extend_from_slice(b"\\A(?:");
        wrapped.extend_from_slice(pattern);
        wrapped.extend_from_slice(b")\\z");
        let nest = options.nest_limit.min(250);
        let root = parse::parse(&wrapped, options.case_insensitive, nest)?;
        let mut c = compile::Compiler {
            prog: alloc::vec::Vec::new(),
            sets: alloc::vec::Vec::new(),
            size_limit: options.size_limit,
        };
        c.node(&root)?;
        c.emit_match()?;
        Ok(Self::from_parts(
            c.prog.into(),
            c.sets.into(),
            options.step_limit,
        ))
    }

    fn from_parts(prog: Box<[compile::Inst]>, sets: Box<[Set]>, steps: usize) -> Regex {
        Regex {
            prog,
            sets,
            busy: AtomicBool::new(false),
            scratch: UnsafeCell::new(vm::Scratch::default()),
            steps,
        }
    }

    /// Whether `value` matches (the whole of it, as the pattern is
    /// anchored); false too when the match would take more than
    /// [`Options::step_limit`] visits.
    pub fn is_match(&self, value: &[u8]) -> bool {
        if self.busy.swap(true, Ordering::Acquire) {
            return vm::run(
                &self.prog,
                &self.sets,
                &mut vm::Scratch::default(),
                value,
                self.steps,
            );
        }
        // SAFETY: `busy` was false and is now ours: no other reference.
        let scratch = unsafe { &mut *self.scratch.get() };
        let matched = vm::run(&self.prog, &self.sets, scratch, value, self.steps);
        self.busy.store(false, Ordering::Release);
        matched
    }
}

impl Clone for Regex {
    fn clone(&self) -> Regex {
        Self::from_parts(self.prog.clone(), self.sets.clone(), self.steps)
    }
}

impl core::fmt::Debug for Regex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Regex")
    }
}
