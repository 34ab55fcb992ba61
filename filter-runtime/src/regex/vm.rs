//! The Pike VM: every thread of the program advances over the value in
//! step, one byte at a time, in a set with no duplicates: time is at most
//! program length × value length, whatever the pattern.

use alloc::vec::Vec;

use super::compile::Inst;
use super::parse::{has, START};
use super::Set;

/// The threads of this byte and of the next, the closure's stack, and the
/// step at which each instruction last joined the next byte's threads
/// (steps are numbered on from one match to the next, so `seen` is never
/// cleared but when the number wraps). Sized to the program on the first
/// match, then reused.
#[derive(Default)]
pub(super) struct Scratch {
    curr: Vec<u32>,
    next: Vec<u32>,
    stack: Vec<u32>,
    seen: Vec<u32>,
    step: u32,
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

/// The threads being built for the next byte: `seen[pc] == step` once
/// `pc` joined this step, `next[..len]` the threads that wait for a byte.
struct Lists<'a> {
    /// Instructions visited so far, in every step.
    visits: usize,
    seen: &'a mut [u32],
    stack: &'a mut [u32],
    next: &'a mut [u32],
}

/// Adds the thread at `pc` and all it reaches without a byte, at `at`, to
/// `l.next[*len..]`; whether one of them is the match. Each instruction
/// joins at most once a step, so neither list outgrows the program. The
/// lists are unpacked into locals: stores into them cannot then be taken
/// for changes of the lists themselves, which would reload them.
#[inline(never)]
fn add(
    prog: &[Inst],
    hay: &[u8],
    at: usize,
    pc: u32,
    step: u32,
    l: &mut Lists<'_>,
    len: &mut usize,
) -> bool {
    let (seen, stack, next) = (&mut *l.seen, &mut *l.stack, &mut *l.next);
    let mut sp = 0usize;
    let mut visits = 0;
    let mut n = *len;
    macro_rules! push {
        ($pc:expr) => {
            let pc: u32 = $pc;
            if let (Some(s), Some(slot)) = (seen.get_mut(pc as usize), stack.get_mut(sp)) {
                if *s != step {
                    *s = step;
                    *slot = pc;
                    sp += 1;
                    visits += 1;
                }
            }
        };
    }
    push!(pc);
    let mut matched = false;
    while let Some(&pc) = sp.checked_sub(1).and_then(|i| stack.get(i)) {
        sp -= 1;
        match prog.get(pc as usize) {
            Some(Inst::Jmp(to)) => {
                push!(*to);
            }
            Some(Inst::Split(x, y)) => {
                push!(*y);
                push!(*x);
            }
            Some(Inst::Look(k)) if look(*k, hay, at) => {
                push!(pc + 1);
            }
            Some(Inst::Look(_)) => {}
            Some(Inst::Match) => {
                matched = true;
                break;
            }
            Some(_) => {
                if let Some(slot) = next.get_mut(n) {
                    *slot = pc;
                    n += 1;
                }
            }
            None => {}
        }
    }
    *len = n;
    l.visits += visits;
    matched
}

/// Whether the program matches somewhere in `hay` (it is anchored by its
/// own `\A` and `\z`); false, too, once the match has visited more than
/// `steps` instructions (counted over every byte: at most the program's
/// length more are visited before the count is seen).
pub(super) fn run(prog: &[Inst], sets: &[Set], s: &mut Scratch, hay: &[u8], steps: usize) -> bool {
    let n = prog.len();
    // A value of more than 2^32 - 2^24 bytes never gets here (the filter
    // refuses values over 4 KiB).
    if s.seen.len() != n || s.step > u32::MAX - (1 << 24) {
        for v in [&mut s.curr, &mut s.next, &mut s.stack, &mut s.seen] {
            v.clear();
            v.resize(n, 0);
        }
        s.step = 0;
    }
    let mut step = s.step + 1;
    // A program that starts with `\A` starts at 0 only.
    let anchored = matches!(prog.first(), Some(Inst::Look(START)));
    let mut curr: &mut [u32] = &mut s.curr;
    let mut l = Lists {
        visits: 0,
        seen: &mut s.seen,
        stack: &mut s.stack,
        next: &mut s.next,
    };
    let mut len = 0;
    let mut at = 0;
    let matched = loop {
        // `next` holds this byte's threads.
        if (at == 0 || !anchored) && add(prog, hay, at, 0, step, &mut l, &mut len) {
            break true;
        }
        if len == 0 && anchored || l.visits > steps {
            break false;
        }
        let Some(&b) = hay.get(at) else {
            break false;
        };
        core::mem::swap(&mut curr, &mut l.next);
        let threads = len;
        len = 0;
        step += 1;
        let mut hit_match = false;
        for &pc in curr.get(..threads).unwrap_or_default() {
            let hit = match prog.get(pc as usize) {
                Some(Inst::Byte(c)) => *c == u16::from(b),
                Some(Inst::Class(k)) => sets.get(*k as usize).is_some_and(|t| has(t, u32::from(b))),
                _ => false,
            };
            if hit && add(prog, hay, at + 1, pc + 1, step, &mut l, &mut len) {
                hit_match = true;
                break;
            }
        }
        if hit_match {
            break true;
        }
        at += 1;
    };
    s.step = step;
    matched
}
