//! Decoder for the x86 instructions guest drivers use on MMIO.
//!
//! The supported set is the one Linux's own MMIO decoder handles:
//! `mov` in all its memory forms (88, 89, 8A, 8B, C6 /0, C7 /0, and the
//! moffs forms A0..A3), `movzx`/`movsx` (0F B6, B7, BE, BF) and the string
//! moves `movs` (A4, A5) and `stos` (AA, AB) with or without REP (F3; F2
//! acts the same on these). Prefixes: operand size (66), address size (67),
//! REX (W/R/X/B, 64-bit mode only, effective only directly before the
//! opcode), segment overrides (recorded), REP/REPNE. ModRM/SIB memory forms
//! are decoded in full for 16-, 32- and 64-bit addressing, RIP-relative
//! included. LOCK, register-only forms and every other opcode are rejected.

use super::regs::{
    sign_extend, width_mask, CodeSize, GuestRegs, RegOperand, SegReg, RAX, RBP, RBX, RDI, RSI, RSP,
};
use super::MmioError;

/// The architectural maximum length of an x86 instruction.
pub const MAX_INSTRUCTION_LEN: usize = 15;

/// How a load widens the value read from memory into its register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extend {
    /// Plain `mov`: the register has the access width.
    None,
    /// `movzx`: zero-extend into the (wider) register.
    Zero,
    /// `movsx`: sign-extend into the (wider) register.
    Sign,
}

/// The value a store writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A register of the access width.
    Reg(RegOperand),
    /// An immediate, already extended to the access width as the CPU does
    /// (imm32 sign-extended for a 64-bit `mov r/m64, imm32`).
    Imm(u64),
}

/// A ModRM/SIB or moffs memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemOperand {
    /// The segment used: the override if any, else DS (SS for rBP/rSP bases).
    pub segment: SegReg,
    /// Base register number, if any.
    pub base: Option<u8>,
    /// Index register number, if any.
    pub index: Option<u8>,
    /// Index scale: 1, 2, 4 or 8.
    pub scale: u8,
    /// Displacement (sign-extended; a moffs offset as given).
    pub disp: u64,
    /// The displacement is relative to the next instruction's RIP.
    pub rip_relative: bool,
}

/// What the instruction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Memory -> register (`mov r, m`, `movzx`, `movsx`, `mov AL/eAX, moffs`).
    Load {
        /// Destination register (its `size` may exceed the access width).
        dst: RegOperand,
        /// Widening of the loaded value.
        ext: Extend,
        /// The memory operand.
        mem: MemOperand,
    },
    /// Register or immediate -> memory.
    Store {
        /// The value written.
        src: Source,
        /// The memory operand.
        mem: MemOperand,
    },
    /// `movs`: `[seg:rSI]` -> `[ES:rDI]`, seg = override or DS.
    Movs {
        /// REP (or REPNE) prefix present: repeat rCX times.
        rep: bool,
    },
    /// `stos`: rAX (access width) -> `[ES:rDI]`.
    Stos {
        /// REP (or REPNE) prefix present: repeat rCX times.
        rep: bool,
    },
}

/// A decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instruction {
    /// Length in bytes, prefixes included.
    pub len: u8,
    /// The operation.
    pub op: Operation,
    /// Width of each memory access in bytes: 1, 2, 4 or 8.
    pub width: u8,
    /// Effective address size in bytes: 2, 4 or 8.
    pub address_size: u8,
    /// The last segment-override prefix, if any.
    pub segment_override: Option<SegReg>,
}

impl Instruction {
    /// The memory operand of a load or store (string operations address
    /// memory through rSI/rDI instead).
    pub fn mem(&self) -> Option<&MemOperand> {
        match &self.op {
            Operation::Load { mem, .. } | Operation::Store { mem, .. } => Some(mem),
            Operation::Movs { .. } | Operation::Stos { .. } => None,
        }
    }

    /// The segment-relative offset the memory operand addresses, given the
    /// registers before the instruction runs (RIP at the instruction).
    pub fn effective_address(&self, regs: &GuestRegs) -> Option<u64> {
        let mem = self.mem()?;
        let mut ea = mem.disp;
        if mem.rip_relative {
            ea = ea.wrapping_add(regs.rip.wrapping_add(u64::from(self.len)));
        }
        if let Some(base) = mem.base {
            ea = ea.wrapping_add(regs.gpr[usize::from(base & 15)]);
        }
        if let Some(index) = mem.index {
            let scaled = regs.gpr[usize::from(index & 15)].wrapping_mul(u64::from(mem.scale));
            ea = ea.wrapping_add(scaled);
        }
        Some(ea & width_mask(self.address_size))
    }
}

/// A bounded reader over the instruction bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, MmioError> {
        if self.pos >= MAX_INSTRUCTION_LEN {
            return Err(MmioError::TooLong);
        }
        let b = *self.bytes.get(self.pos).ok_or(MmioError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// A little-endian immediate of `n` bytes (1, 2, 4 or 8), zero-extended.
    fn le(&mut self, n: u8) -> Result<u64, MmioError> {
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.byte()?) << (8 * u32::from(i));
        }
        Ok(v)
    }
}

/// Prefix state collected before the opcode.
#[derive(Default)]
struct Prefixes {
    lock: bool,
    rep: bool,
    opsize: bool,
    addrsize: bool,
    segment: Option<SegReg>,
    /// The REX byte, if it directly precedes the opcode.
    rex: Option<u8>,
}

impl Prefixes {
    fn rex_bit(&self, bit: u8) -> u8 {
        self.rex.map_or(0, |r| (r >> bit) & 1)
    }
    fn w(&self) -> bool {
        self.rex_bit(3) != 0
    }
    fn r(&self) -> u8 {
        self.rex_bit(2) << 3
    }
    fn x(&self) -> u8 {
        self.rex_bit(1) << 3
    }
    fn b(&self) -> u8 {
        self.rex_bit(0) << 3
    }
}

/// Decodes the instruction at the start of `bytes` (at most 15 are looked at)
/// for code of size `code`.
pub fn decode(bytes: &[u8], code: CodeSize) -> Result<Instruction, MmioError> {
    let mut cur = Cursor { bytes, pos: 0 };
    let mut p = Prefixes::default();
    let opcode = loop {
        let b = cur.byte()?;
        let seg = match b {
            0x26 => Some(SegReg::Es),
            0x2E => Some(SegReg::Cs),
            0x36 => Some(SegReg::Ss),
            0x3E => Some(SegReg::Ds),
            0x64 => Some(SegReg::Fs),
            0x65 => Some(SegReg::Gs),
            _ => None,
        };
        match b {
            // In 64-bit mode ES/CS/SS/DS overrides are ignored: they do not
            // displace an earlier FS/GS override.
            _ if seg.is_some() => {
                let null = !matches!(seg, Some(SegReg::Fs | SegReg::Gs));
                let keep = code == CodeSize::Bits64
                    && null
                    && matches!(p.segment, Some(SegReg::Fs | SegReg::Gs));
                if !keep {
                    p.segment = seg;
                }
            }
            0xF0 => p.lock = true,
            0xF2 | 0xF3 => p.rep = true,
            0x66 => p.opsize = true,
            0x67 => p.addrsize = true,
            0x40..=0x4F if code == CodeSize::Bits64 => {
                p.rex = Some(b);
                continue;
            }
            _ => break b,
        }
        // A REX prefix followed by a legacy prefix has no effect.
        p.rex = None;
    };
    if p.lock {
        return Err(MmioError::Lock);
    }

    let opsize: u8 = match code {
        CodeSize::Bits64 if p.w() => 8,
        CodeSize::Bits16 => {
            if p.opsize {
                4
            } else {
                2
            }
        }
        _ => {
            if p.opsize {
                2
            } else {
                4
            }
        }
    };
    let address_size: u8 = match (code, p.addrsize) {
        (CodeSize::Bits16, false) | (CodeSize::Bits32, true) => 2,
        (CodeSize::Bits16, true) | (CodeSize::Bits32, false) | (CodeSize::Bits64, true) => 4,
        (CodeSize::Bits64, false) => 8,
    };
    let has_rex = p.rex.is_some();
    let ctx = Ctx {
        code,
        address_size,
        prefixes: &p,
    };

    let (op, width) = match opcode {
        0x88..=0x8B => {
            let (reg, mem) = ctx.modrm(&mut cur)?;
            let width = if opcode & 1 == 0 { 1 } else { opsize };
            let r = if width == 1 {
                RegOperand::byte(reg, has_rex)
            } else {
                RegOperand::new(reg, width)
            };
            let op = if opcode & 2 == 0 {
                Operation::Store {
                    src: Source::Reg(r),
                    mem,
                }
            } else {
                Operation::Load {
                    dst: r,
                    ext: Extend::None,
                    mem,
                }
            };
            (op, width)
        }
        0xC6 | 0xC7 => {
            let (reg, mem) = ctx.modrm(&mut cur)?;
            if reg & 7 != 0 {
                return Err(MmioError::Unsupported {
                    opcode: u16::from(opcode),
                });
            }
            let width = if opcode == 0xC6 { 1 } else { opsize };
            let imm = match width {
                1 => cur.le(1)?,
                2 => cur.le(2)?,
                4 => cur.le(4)?,
                _ => sign_extend(cur.le(4)?, 4),
            };
            let op = Operation::Store {
                src: Source::Imm(imm),
                mem,
            };
            (op, width)
        }
        0xA0..=0xA3 => {
            let disp = cur.le(address_size)?;
            let width = if opcode & 1 == 0 { 1 } else { opsize };
            let mem = MemOperand {
                segment: p.segment.unwrap_or(SegReg::Ds),
                base: None,
                index: None,
                scale: 1,
                disp,
                rip_relative: false,
            };
            let reg = RegOperand::new(RAX, width);
            let op = if opcode & 2 == 0 {
                Operation::Load {
                    dst: reg,
                    ext: Extend::None,
                    mem,
                }
            } else {
                Operation::Store {
                    src: Source::Reg(reg),
                    mem,
                }
            };
            (op, width)
        }
        0xA4 | 0xA5 => {
            let width = if opcode == 0xA4 { 1 } else { opsize };
            (Operation::Movs { rep: p.rep }, width)
        }
        0xAA | 0xAB => {
            let width = if opcode == 0xAA { 1 } else { opsize };
            (Operation::Stos { rep: p.rep }, width)
        }
        0x0F => {
            let op2 = cur.byte()?;
            let (width, ext) = match op2 {
                0xB6 => (1, Extend::Zero),
                0xB7 => (2, Extend::Zero),
                0xBE => (1, Extend::Sign),
                0xBF => (2, Extend::Sign),
                _ => {
                    return Err(MmioError::Unsupported {
                        opcode: 0x0F00 | u16::from(op2),
                    })
                }
            };
            let (reg, mem) = ctx.modrm(&mut cur)?;
            let op = Operation::Load {
                dst: RegOperand::new(reg, opsize),
                ext,
                mem,
            };
            (op, width)
        }
        _ => {
            return Err(MmioError::Unsupported {
                opcode: u16::from(opcode),
            })
        }
    };

    Ok(Instruction {
        // The cursor never passes MAX_INSTRUCTION_LEN.
        len: cur.pos as u8,
        op,
        width,
        address_size,
        segment_override: p.segment,
    })
}

/// What ModRM decoding depends on.
struct Ctx<'p> {
    code: CodeSize,
    address_size: u8,
    prefixes: &'p Prefixes,
}

impl Ctx<'_> {
    /// Decodes ModRM (+ SIB + displacement); returns the reg field extended
    /// by REX.R and the memory operand. Register-only forms are rejected.
    fn modrm(&self, cur: &mut Cursor<'_>) -> Result<(u8, MemOperand), MmioError> {
        let modrm = cur.byte()?;
        let md = modrm >> 6;
        let reg = ((modrm >> 3) & 7) | self.prefixes.r();
        let rm = modrm & 7;
        if md == 3 {
            return Err(MmioError::NoMemoryOperand);
        }
        let (mut mem, stack) = if self.address_size == 2 {
            self.modrm16(cur, md, rm)?
        } else {
            self.modrm32(cur, md, rm)?
        };
        mem.segment = match self.prefixes.segment {
            Some(seg) => seg,
            None if stack => SegReg::Ss,
            None => SegReg::Ds,
        };
        Ok((reg, mem))
    }

    /// 16-bit addressing; returns the operand and whether rBP is the base.
    fn modrm16(
        &self,
        cur: &mut Cursor<'_>,
        md: u8,
        rm: u8,
    ) -> Result<(MemOperand, bool), MmioError> {
        let (base, index) = match rm {
            0 => (Some(RBX), Some(RSI)),
            1 => (Some(RBX), Some(RDI)),
            2 => (Some(RBP), Some(RSI)),
            3 => (Some(RBP), Some(RDI)),
            4 => (Some(RSI), None),
            5 => (Some(RDI), None),
            6 if md == 0 => (None, None),
            6 => (Some(RBP), None),
            _ => (Some(RBX), None),
        };
        let disp = match md {
            0 if rm == 6 => sign_extend(cur.le(2)?, 2),
            0 => 0,
            1 => sign_extend(cur.le(1)?, 1),
            _ => sign_extend(cur.le(2)?, 2),
        };
        let mem = MemOperand {
            segment: SegReg::Ds,
            base,
            index,
            scale: 1,
            disp,
            rip_relative: false,
        };
        Ok((mem, base == Some(RBP)))
    }

    /// 32/64-bit addressing; returns the operand and whether rSP/rBP is the base.
    fn modrm32(
        &self,
        cur: &mut Cursor<'_>,
        md: u8,
        rm: u8,
    ) -> Result<(MemOperand, bool), MmioError> {
        let p = self.prefixes;
        let mut mem = MemOperand {
            segment: SegReg::Ds,
            base: None,
            index: None,
            scale: 1,
            disp: 0,
            rip_relative: false,
        };
        let mut disp32 = md == 2;
        if rm == 4 {
            let sib = cur.byte()?;
            let index = ((sib >> 3) & 7) | p.x();
            if index != RSP {
                mem.index = Some(index);
                mem.scale = 1 << (sib >> 6);
            }
            let base = sib & 7;
            if base == 5 && md == 0 {
                disp32 = true;
            } else {
                mem.base = Some(base | p.b());
            }
        } else if rm == 5 && md == 0 {
            disp32 = true;
            mem.rip_relative = self.code == CodeSize::Bits64;
        } else {
            mem.base = Some(rm | p.b());
        }
        mem.disp = if disp32 {
            sign_extend(cur.le(4)?, 4)
        } else if md == 1 {
            sign_extend(cur.le(1)?, 1)
        } else {
            0
        };
        let stack = matches!(mem.base, Some(RSP | RBP));
        Ok((mem, stack))
    }
}
