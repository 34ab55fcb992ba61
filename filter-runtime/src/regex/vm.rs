//! The Pike VM: every thread of the program advances over the value in
//! step, one byte at a time, in a set with no duplicates: time is at most
//! program length × value length, whatever the pattern.

use alloc::vec::Vec;

use super::compile::Inst;
use super::parse::{has, START};
use super::Set;

/// The threads of this byte and of the next, the closure's stack, and which
/// instructions the next byte's threads already hold (one bit each). Grown
/// to the program's size on the first match, then reused.
#[derive(Default)]
pub(super) struct Scratch {
    curr: Vec<u32>,
    next: Vec<u32>,
    stack: Vec<u32>,
    seen: Vec<u64>,
}

fn is_word(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Whether assertion `k` holds before `hay[at]` (regex-lite's `Look`).
fn look(k: u8, hay: &[u8], at: usize) -> bool {
    let before = at.checked_sub(1).and_then(|i| hay.get(i));
    let after = hay.get(at);
    let (wb, wa) = (is_word(before), is_word(after));
    let (b, a) = (before.copied(), after.copied());
    match k {
        START => b.is_none(),
        1 => a.is_none(),
        2 => b.is_none() || b == Some(b'\n'),
        3 => a.is_none() || a == Some(b'\n'),
        4 => b.is_none() || b == Some(b'\n') || b == Some(b'\r') && a != Some(b'\n'),
        5 => a.is_none() || a == Some(b'\r') || a == Some(b'\n') && b != Some(b'\r'),
        6 => wb != wa,
        7 => wb == wa,
        8 => !wb && wa,
        9 => wb && !wa,
        10 => !wb,
        _ => !wa,
    }
}

fn push(seen: &mut [u64], stack: &mut Vec<u32>, pc: u32) {
    if let Some(w) = seen.get_mut(pc as usize / 64) {
        let bit = 1 << (pc % 64);
        if *w & bit == 0 {
            *w |= bit;
            stack.push(pc);
        }
    }
}

/// Adds the thread at `pc` and all it reaches without a byte, at `at`, to
/// `list`; whether one of them is the match.
fn add(prog: &[Inst], hay: &[u8], at: usize, pc: u32, s: &mut Scratch) -> bool {
    push(&mut s.seen, &mut s.stack, pc);
    while let Some(pc) = s.stack.pop() {
        match prog.get(pc as usize) {
            Some(Inst::Jmp(to)) => push(&mut s.seen, &mut s.stack, *to),
            Some(Inst::Split(x, y)) => {
                push(&mut s.seen, &mut s.stack, *y);
                push(&mut s.seen, &mut s.stack, *x);
            }
            Some(Inst::Look(k)) if look(*k, hay, at) => push(&mut s.seen, &mut s.stack, pc + 1),
            Some(Inst::Look(_)) => {}
            Some(Inst::Match) => return true,
            Some(_) => s.next.push(pc),
            None => {}
        }
    }
    false
}

/// Whether the program matches somewhere in `hay` (it is anchored by its
/// own `\A` and `\z`).
pub(super) fn run(prog: &[Inst], sets: &[Set], s: &mut Scratch, hay: &[u8]) -> bool {
    let n = prog.len();
    for v in [&mut s.curr, &mut s.next, &mut s.stack] {
        v.clear();
        v.reserve(n);
    }
    s.seen.clear();
    s.seen.resize(n / 64 + 1, 0);
    // A program that starts with `\A` starts at 0 only.
    let anchored = matches!(prog.first(), Some(Inst::Look(START)));
    let mut at = 0;
    loop {
        // `next` holds this byte's threads, `seen` still says which.
        if (at == 0 || !anchored) && add(prog, hay, at, 0, s) {
            return true;
        }
        if s.next.is_empty() && anchored {
            return false;
        }
        let Some(&b) = hay.get(at) else {
            return false;
        };
        core::mem::swap(&mut s.curr, &mut s.next);
        s.next.clear();
        s.seen.fill(0);
        for i in 0..s.curr.len() {
            let pc = s.curr.get(i).copied().unwrap_or_default();
            let hit = match prog.get(pc as usize) {
                Some(Inst::Byte(c)) => *c == u16::from(b),
                Some(Inst::Class(k)) => sets.get(*k as usize).is_some_and(|t| has(t, u32::from(b))),
                _ => false,
            };
            if hit && add(prog, hay, at + 1, pc + 1, s) {
                return true;
            }
        }
        at += 1;
    }
}
