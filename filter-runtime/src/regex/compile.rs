//! Syntax tree → a Pike VM program (Thompson's construction): one
//! instruction per character, class, assertion, and `Split`/`Jmp` for
//! alternation and repetition. No capture slots: only whether the value
//! matches is asked.

use alloc::vec::Vec;

use super::err::SIZE_LIMIT;
use super::parse::{Kind, Node};
use super::{Set, UNIT_BYTES};

#[derive(Clone, Copy)]
pub(super) enum Inst {
    /// This byte (256: none), then the next instruction.
    Byte(u16),
    /// A byte of this class, then the next instruction.
    Class(u32),
    /// This assertion holds here, then the next instruction.
    Look(u8),
    Split(u32, u32),
    Jmp(u32),
    Match,
}

pub(super) struct Compiler {
    pub(super) prog: Vec<Inst>,
    pub(super) sets: Vec<Set>,
    /// The largest program, in bytes (regex-lite's `size_limit`).
    pub(super) size_limit: usize,
}

impl Compiler {
    fn pc(&self) -> u32 {
        self.prog.len() as u32
    }

    /// Adds an instruction, within the size limit: each instruction and
    /// each distinct class counts [`UNIT_BYTES`].
    fn emit(&mut self, i: Inst) -> Result<u32, &'static str> {
        let pc = self.pc();
        if (self.prog.len() + self.sets.len() + 1) * UNIT_BYTES > self.size_limit {
            return Err(SIZE_LIMIT);
        }
        self.prog.push(i);
        Ok(pc)
    }

    fn patch(&mut self, at: u32, i: Inst) {
        if let Some(slot) = self.prog.get_mut(at as usize) {
            *slot = i;
        }
    }

    /// Points the second branch of each `Split` in `holes` (or each `Jmp`)
    /// at the current end.
    fn close(&mut self, holes: &[u32]) {
        let end = self.pc();
        for &h in holes {
            let i = match self.prog.get(h as usize) {
                Some(Inst::Jmp(_)) => Inst::Jmp(end),
                _ => Inst::Split(h + 1, end),
            };
            self.patch(h, i);
        }
    }

    /// Compiles `n`; every node adds at least one instruction, so that a
    /// repetition of anything runs into the size limit.
    pub(super) fn node(&mut self, n: &Node) -> Result<(), &'static str> {
        match &n.k {
            Kind::Empty => {
                let next = self.pc() + 1;
                self.emit(Inst::Jmp(next))?;
            }
            Kind::Char(c) => {
                self.emit(Inst::Byte((*c).min(256) as u16))?;
            }
            Kind::Class(s) => {
                let k = match self.sets.iter().position(|t| t == &**s) {
                    Some(k) => k,
                    None => {
                        self.sets.push(**s);
                        self.sets.len() - 1
                    }
                };
                self.emit(Inst::Class(k as u32))?;
            }
            Kind::Look(k) => {
                self.emit(Inst::Look(*k))?;
            }
            Kind::Cap(sub) => self.node(sub)?,
            Kind::Cat(v) => {
                for sub in v {
                    self.node(sub)?;
                }
            }
            Kind::Alt(v) => {
                let mut holes = Vec::new();
                let mut subs = v.iter().peekable();
                while let Some(sub) = subs.next() {
                    if subs.peek().is_none() {
                        self.node(sub)?;
                        break;
                    }
                    let split = self.emit(Inst::Split(0, 0))?;
                    self.node(sub)?;
                    holes.push(self.emit(Inst::Jmp(0))?);
                    self.close(&[split]);
                }
                self.close(&holes);
            }
            Kind::Rep(min, max, sub) => {
                let mut last = self.pc();
                for _ in 0..*min {
                    last = self.pc();
                    self.node(sub)?;
                }
                match *max {
                    None if *min == 0 => {
                        let split = self.emit(Inst::Split(0, 0))?;
                        self.node(sub)?;
                        self.emit(Inst::Jmp(split))?;
                        self.close(&[split]);
                    }
                    None => {
                        let next = self.pc() + 1;
                        self.emit(Inst::Split(last, next))?;
                    }
                    Some(max) => {
                        let mut holes = Vec::new();
                        for _ in *min..max {
                            holes.push(self.emit(Inst::Split(0, 0))?);
                            self.node(sub)?;
                        }
                        self.close(&holes);
                    }
                }
            }
        }
        Ok(())
    }
}

impl Compiler {
    pub(super) fn emit_match(&mut self) -> Result<(), &'static str> {
        self.emit(Inst::Match).map(drop)
    }
}
