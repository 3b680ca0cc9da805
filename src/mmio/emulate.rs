//! Performs a decoded MMIO instruction: the device access through an
//! [`MmioBus`], the RAM side of string operations through the guest page
//! tables, and the guest register updates (destination register, rSI/rDI/rCX,
//! RIP).
//!
//! Plain loads and stores access the device at the faulting GPA of the exit.
//! String operations translate every element's linear addresses through the
//! walk (the MMIO mapping is not assumed to be identity); the first element
//! must land on the faulting GPA. A REP string operation runs element by
//! element and stops early, leaving RIP at the instruction so the guest
//! resumes it exactly like an interrupted REP, when an element touches no
//! MMIO (the CPU can do RAM-to-RAM elements itself) or after
//! [`Emulator::max_rep`] elements (bounding the time spent in one exit).
//! Otherwise the whole REP completes in one exit. Either way the result equals
//! element-by-element execution.
//!
//! Both sides of an element are translated (and permission-checked) before
//! either is accessed, so a page fault never consumes a device read. Only a
//! guest-RAM write that fails after a device read (the page tables point at
//! memory that is not guest RAM, [`MmioError::GuestMemory`]) loses that read.
//!
//! Not modelled: segment limit checks, single-step traps (RFLAGS.TF), and
//! accessed/dirty bit updates.

use super::decode::{Extend, Instruction, Operation, Source};
use super::regs::{sign_extend, width_mask, GuestState, RegOperand, SegReg, RAX, RCX, RDI, RSI};
use super::walk::{AccessKind, GuestMemory, Paging};
use super::MmioError;

/// The device behind the intercepted window.
pub trait MmioBus {
    /// A read of `size` bytes (1, 2, 4 or 8) at `gpa`, zero-extended.
    fn read(&mut self, gpa: u64, size: u8) -> u64;
    /// A write of the low `size` bytes of `value` at `gpa`.
    fn write(&mut self, gpa: u64, size: u8, value: u64);
}

/// The guest-physical range whose accesses go to the [`MmioBus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioWindow {
    /// First byte of the window.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl MmioWindow {
    /// The TPM window: localities 0..=4 at 0xFED40000, 0x1000 bytes each.
    pub const TPM: Self = Self {
        base: 0xFED4_0000,
        size: 0x5000,
    };

    /// Whether `gpa` lies inside the window.
    pub const fn contains(&self, gpa: u64) -> bool {
        gpa >= self.base && gpa - self.base < self.size
    }
}

/// Elements of a REP string operation performed in one exit by default.
pub const DEFAULT_MAX_REP: u64 = 4096;

/// Emulator configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Emulator {
    /// The intercepted window.
    pub window: MmioWindow,
    /// The CPU's MAXPHYADDR (bounds valid physical addresses in guest PTEs).
    pub phys_addr_bits: u8,
    /// Most REP elements performed per exit (at least one always is).
    pub max_rep: u64,
}

impl Emulator {
    /// An emulator for `window` on a CPU with `phys_addr_bits` physical
    /// address bits, performing up to [`DEFAULT_MAX_REP`] elements per exit.
    pub const fn new(window: MmioWindow, phys_addr_bits: u8) -> Self {
        Self {
            window,
            phys_addr_bits,
            max_rep: DEFAULT_MAX_REP,
        }
    }
}

/// How far an emulated instruction got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The instruction completed; RIP points past it.
    Done,
    /// A REP string operation made progress but is not finished; RIP still
    /// points at it and the guest resumes it.
    Partial,
}

/// Performs `inst` (fetched at the guest's RIP) for a nested page fault at
/// `fault_gpa`, updating `state`. See the module documentation for REP
/// handling; on error, `state` reflects the elements already completed and
/// RIP is unchanged.
pub fn emulate<M: GuestMemory + ?Sized, B: MmioBus + ?Sized>(
    emu: &Emulator,
    paging: &Paging,
    state: &mut GuestState,
    inst: &Instruction,
    mem: &mut M,
    bus: &mut B,
    fault_gpa: u64,
) -> Result<Completion, MmioError> {
    match inst.op {
        Operation::Load { dst, ext, mem: m } => {
            let linear = operand_linear(paging, state, inst, m.segment)?;
            check_single(linear, inst.width, fault_gpa)?;
            let raw = bus.read(fault_gpa, inst.width) & width_mask(inst.width);
            let value = match ext {
                Extend::None | Extend::Zero => raw,
                Extend::Sign => sign_extend(raw, inst.width),
            };
            state.regs.write(dst, value);
        }
        Operation::Store { src, mem: m } => {
            let linear = operand_linear(paging, state, inst, m.segment)?;
            check_single(linear, inst.width, fault_gpa)?;
            let value = match src {
                Source::Reg(r) => state.regs.read(r),
                Source::Imm(i) => i,
            } & width_mask(inst.width);
            bus.write(fault_gpa, inst.width, value);
        }
        Operation::Movs { rep } | Operation::Stos { rep } => {
            let strop = StringOp {
                emu,
                paging,
                inst,
                rep,
                fault_gpa,
            };
            if strop.run(state, mem, bus)? == Completion::Partial {
                return Ok(Completion::Partial);
            }
        }
    }
    state.regs.rip = state.rip_after(inst.len);
    Ok(Completion::Done)
}

/// The linear address of a load/store memory operand.
fn operand_linear(
    paging: &Paging,
    state: &GuestState,
    inst: &Instruction,
    segment: SegReg,
) -> Result<u64, MmioError> {
    // Load/Store always have a memory operand; 0 is never reached.
    let offset = inst.effective_address(&state.regs).unwrap_or(0);
    paging.linear(state.segment_base(segment), offset)
}

/// Checks that a single access at `linear` stays on one page and that it is
/// the access the exit reported (same offset within the page).
fn check_single(linear: u64, width: u8, fault_gpa: u64) -> Result<(), MmioError> {
    if (linear & 0xFFF) + u64::from(width) > 0x1000 {
        return Err(MmioError::SplitAccess { linear });
    }
    if linear & 0xFFF != fault_gpa & 0xFFF {
        return Err(MmioError::Inconsistent { fault_gpa });
    }
    Ok(())
}

/// One side of a string-operation element.
#[derive(Clone, Copy)]
struct Side {
    kind: AccessKind,
    linear: u64,
    gpa: u64,
    mmio: bool,
}

/// A `movs`/`stos`, possibly repeated.
struct StringOp<'a> {
    emu: &'a Emulator,
    paging: &'a Paging,
    inst: &'a Instruction,
    rep: bool,
    fault_gpa: u64,
}

impl StringOp<'_> {
    fn run<M: GuestMemory + ?Sized, B: MmioBus + ?Sized>(
        &self,
        state: &mut GuestState,
        mem: &mut M,
        bus: &mut B,
    ) -> Result<Completion, MmioError> {
        let asize = self.inst.address_size;
        let amask = width_mask(asize);
        let width = self.inst.width;
        let step = if state.regs.direction_down() {
            u64::from(width).wrapping_neg()
        } else {
            u64::from(width)
        };
        let movs = matches!(self.inst.op, Operation::Movs { .. });
        let src_seg = self.inst.segment_override.unwrap_or(SegReg::Ds);
        let mut done = 0u64;
        loop {
            if self.rep && state.regs.gpr[usize::from(RCX)] & amask == 0 {
                return Ok(Completion::Done);
            }
            if done > 0 && done >= self.emu.max_rep {
                return Ok(Completion::Partial);
            }
            let src = if movs {
                let offset = state.regs.gpr[usize::from(RSI)] & amask;
                Some(self.side(state, mem, src_seg, offset, AccessKind::Read)?)
            } else {
                None
            };
            let offset = state.regs.gpr[usize::from(RDI)] & amask;
            let dst = self.side(state, mem, SegReg::Es, offset, AccessKind::Write)?;

            let src_mmio = src.is_some_and(|s| s.mmio);
            if done == 0 {
                let hits = |s: &Side| s.mmio && s.gpa == self.fault_gpa;
                if !(src.as_ref().is_some_and(hits) || hits(&dst)) {
                    return Err(MmioError::Inconsistent {
                        fault_gpa: self.fault_gpa,
                    });
                }
            } else if !src_mmio && !dst.mmio {
                return Ok(Completion::Partial);
            }
            for side in src.iter().chain(core::iter::once(&dst)) {
                if side.mmio {
                    self.check_span(mem, side, width)?;
                }
            }

            let value = match src {
                Some(s) if s.mmio => bus.read(s.gpa, width) & width_mask(width),
                Some(s) => {
                    let mut buf = [0u8; 8];
                    self.paging.read(
                        mem,
                        s.linear,
                        &mut buf[..usize::from(width)],
                        AccessKind::Read,
                    )?;
                    u64::from_le_bytes(buf)
                }
                None => state.regs.read(RegOperand::new(RAX, width)),
            };
            if dst.mmio {
                bus.write(dst.gpa, width, value);
            } else {
                let bytes = value.to_le_bytes();
                self.paging
                    .write(mem, dst.linear, &bytes[..usize::from(width)])?;
            }

            let regs = &mut state.regs;
            if movs {
                let rsi = regs.gpr[usize::from(RSI)].wrapping_add(step);
                regs.write(RegOperand::new(RSI, asize), rsi);
            }
            let rdi = regs.gpr[usize::from(RDI)].wrapping_add(step);
            regs.write(RegOperand::new(RDI, asize), rdi);
            done += 1;
            if !self.rep {
                return Ok(Completion::Done);
            }
            let rcx = regs.gpr[usize::from(RCX)].wrapping_sub(1);
            regs.write(RegOperand::new(RCX, asize), rcx);
        }
    }

    /// Translates one side of an element at `seg`:`offset`.
    fn side<M: GuestMemory + ?Sized>(
        &self,
        state: &GuestState,
        mem: &M,
        seg: SegReg,
        offset: u64,
        kind: AccessKind,
    ) -> Result<Side, MmioError> {
        let linear = self.paging.linear(state.segment_base(seg), offset)?;
        let gpa = self
            .paging
            .translate(mem, linear, self.paging.access(kind))?;
        Ok(Side {
            kind,
            linear,
            gpa,
            mmio: self.emu.window.contains(gpa),
        })
    }

    /// An MMIO-side element that crosses a page must continue physically.
    fn check_span<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        side: &Side,
        width: u8,
    ) -> Result<(), MmioError> {
        let last = u64::from(width) - 1;
        if (side.linear & 0xFFF) + last < 0x1000 {
            return Ok(());
        }
        let last_linear = self.paging.linear(side.linear, last)?;
        let access = self.paging.access(side.kind);
        let last_gpa = self.paging.translate(mem, last_linear, access)?;
        if last_gpa == side.gpa.wrapping_add(last) {
            Ok(())
        } else {
            Err(MmioError::SplitAccess {
                linear: side.linear,
            })
        }
    }
}
