//! The guest CPU state the MMIO emulator reads and changes: general-purpose
//! registers with x86 sub-register write semantics, RIP/RFLAGS, segment
//! registers in VMCB layout, and the control registers that select the
//! execution mode.

/// Index of RAX in [`GuestRegs::gpr`] (the x86 register number).
pub const RAX: u8 = 0;
/// Index of RCX.
pub const RCX: u8 = 1;
/// Index of RDX.
pub const RDX: u8 = 2;
/// Index of RBX.
pub const RBX: u8 = 3;
/// Index of RSP.
pub const RSP: u8 = 4;
/// Index of RBP.
pub const RBP: u8 = 5;
/// Index of RSI.
pub const RSI: u8 = 6;
/// Index of RDI.
pub const RDI: u8 = 7;

/// RFLAGS.DF (direction flag): string operations walk downwards when set.
pub const RFLAGS_DF: u64 = 1 << 10;
/// RFLAGS.AC (alignment check; with CR4.SMAP, permits supervisor access to user pages).
pub const RFLAGS_AC: u64 = 1 << 18;
/// RFLAGS.VM (virtual-8086 mode).
pub const RFLAGS_VM: u64 = 1 << 17;

/// CR0.PE (protected mode enable).
pub const CR0_PE: u64 = 1 << 0;
/// CR0.WP (supervisor writes honour read-only pages).
pub const CR0_WP: u64 = 1 << 16;
/// CR0.PG (paging enable).
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PSE (4 MiB pages in 32-bit paging).
pub const CR4_PSE: u64 = 1 << 4;
/// CR4.PAE (64-bit page-table entries).
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.LA57 (5-level paging in long mode).
pub const CR4_LA57: u64 = 1 << 12;
/// CR4.SMEP (no supervisor fetches from user pages).
pub const CR4_SMEP: u64 = 1 << 20;
/// CR4.SMAP (no supervisor data accesses to user pages unless RFLAGS.AC).
pub const CR4_SMAP: u64 = 1 << 21;
/// EFER.LMA (long mode active).
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE (no-execute bit enabled in page-table entries).
pub const EFER_NXE: u64 = 1 << 11;

/// A general-purpose register operand of a given width.
///
/// `size` is 1, 2, 4 or 8 bytes. A 1-byte operand with `high_byte` set is
/// AH/CH/DH/BH (bits 8..16 of register `index` 0..=3); that form only exists
/// in instructions without a REX prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegOperand {
    /// Register number 0..=15 (RAX..R15).
    pub index: u8,
    /// Operand width in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// The legacy high-byte register (AH, CH, DH, BH).
    pub high_byte: bool,
}

impl RegOperand {
    /// The full-width-or-narrower register `index` (never a high-byte register).
    pub const fn new(index: u8, size: u8) -> Self {
        Self {
            index,
            size,
            high_byte: false,
        }
    }

    /// The 8-bit register encoded as `reg` (0..=15) in an instruction that
    /// does (`rex`) or does not carry a REX prefix: without REX, 4..=7 name
    /// AH/CH/DH/BH; with REX they name SPL/BPL/SIL/DIL.
    pub const fn byte(reg: u8, rex: bool) -> Self {
        if !rex && reg >= 4 && reg < 8 {
            Self {
                index: reg - 4,
                size: 1,
                high_byte: true,
            }
        } else {
            Self::new(reg, 1)
        }
    }
}

/// Mask of the low `size` bytes (`size` 1, 2, 4 or 8; anything larger is 8).
pub const fn width_mask(size: u8) -> u64 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        4 => 0xFFFF_FFFF,
        _ => u64::MAX,
    }
}

/// Sign-extends the low `size` bytes of `value` to 64 bits.
pub const fn sign_extend(value: u64, size: u8) -> u64 {
    match size {
        1 => value as u8 as i8 as i64 as u64,
        2 => value as u16 as i16 as i64 as u64,
        4 => value as u32 as i32 as i64 as u64,
        _ => value,
    }
}

/// General-purpose registers, RIP and RFLAGS of the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestRegs {
    /// RAX..R15 in x86 register-number order.
    pub gpr: [u64; 16],
    /// Instruction pointer (points at the faulting instruction on entry).
    pub rip: u64,
    /// RFLAGS.
    pub rflags: u64,
}

impl GuestRegs {
    /// Reads `op`, zero-extended to 64 bits.
    pub fn read(&self, op: RegOperand) -> u64 {
        let full = self.gpr[usize::from(op.index & 15)];
        if op.high_byte {
            (full >> 8) & 0xFF
        } else {
            full & width_mask(op.size)
        }
    }

    /// Writes the low `op.size` bytes of `value` to `op` with x86 semantics:
    /// 8- and 16-bit writes keep the other bits, a 32-bit write clears bits
    /// 32..64, a 64-bit write replaces the register.
    pub fn write(&mut self, op: RegOperand, value: u64) {
        let slot = &mut self.gpr[usize::from(op.index & 15)];
        *slot = if op.high_byte {
            (*slot & !0xFF00) | ((value & 0xFF) << 8)
        } else {
            match op.size {
                1 | 2 => {
                    let mask = width_mask(op.size);
                    (*slot & !mask) | (value & mask)
                }
                4 => value & 0xFFFF_FFFF,
                _ => value,
            }
        };
    }

    /// The direction flag: `true` when string operations decrement.
    pub fn direction_down(&self) -> bool {
        self.rflags & RFLAGS_DF != 0
    }
}

/// A segment register as the VMCB stores it.
///
/// `attrib` is the VMCB's packed form of descriptor bits: 0..=3 type, 4 S,
/// 5..=6 DPL, 7 P, 8 AVL, 9 L, 10 D/B, 11 G.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// Packed attributes (VMCB layout, see the type's documentation).
    pub attrib: u16,
    /// Limit (unused by the emulator: no segment-limit checks).
    pub limit: u32,
    /// Base address.
    pub base: u64,
}

impl Segment {
    /// The L bit (64-bit code segment).
    pub const fn long(&self) -> bool {
        self.attrib & (1 << 9) != 0
    }

    /// The D/B bit (32-bit default operand and address size for CS).
    pub const fn default_big(&self) -> bool {
        self.attrib & (1 << 10) != 0
    }
}

/// The six segment registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegReg {
    /// ES (prefix 0x26); always the destination segment of string stores.
    Es,
    /// CS (prefix 0x2E).
    Cs,
    /// SS (prefix 0x36).
    Ss,
    /// DS (prefix 0x3E); the default data segment.
    Ds,
    /// FS (prefix 0x64).
    Fs,
    /// GS (prefix 0x65).
    Gs,
}

/// All segment registers of the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segments {
    /// ES.
    pub es: Segment,
    /// CS.
    pub cs: Segment,
    /// SS.
    pub ss: Segment,
    /// DS.
    pub ds: Segment,
    /// FS.
    pub fs: Segment,
    /// GS.
    pub gs: Segment,
}

impl Segments {
    /// The segment register `seg`.
    pub const fn get(&self, seg: SegReg) -> &Segment {
        match seg {
            SegReg::Es => &self.es,
            SegReg::Cs => &self.cs,
            SegReg::Ss => &self.ss,
            SegReg::Ds => &self.ds,
            SegReg::Fs => &self.fs,
            SegReg::Gs => &self.gs,
        }
    }
}

/// Default operand/address size of the code being executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeSize {
    /// Real mode, virtual-8086 mode, or a 16-bit protected-mode code segment.
    Bits16,
    /// A 32-bit protected-mode or compatibility-mode code segment.
    Bits32,
    /// 64-bit mode (long mode with CS.L set).
    Bits64,
}

/// Everything about the guest vCPU the emulator needs: registers, segments,
/// control registers and the current privilege level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestState {
    /// General-purpose registers, RIP, RFLAGS.
    pub regs: GuestRegs,
    /// Segment registers.
    pub segs: Segments,
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER.
    pub efer: u64,
    /// Current privilege level (VMCB CPL field); 3 makes accesses "user".
    pub cpl: u8,
}

impl GuestState {
    /// The code size selected by RFLAGS.VM, EFER.LMA and CS.L/D.
    ///
    /// In real mode the cached CS.D bit still counts (it is 0 after reset
    /// and after any real-mode CS load; a D=1 cache left over from protected
    /// mode runs 32-bit code, as on the CPUs QEMU models).
    pub fn code_size(&self) -> CodeSize {
        if self.regs.rflags & RFLAGS_VM != 0 && self.cr0 & CR0_PE != 0 {
            CodeSize::Bits16
        } else if self.efer & EFER_LMA != 0 && self.segs.cs.long() {
            CodeSize::Bits64
        } else if self.segs.cs.default_big() {
            CodeSize::Bits32
        } else {
            CodeSize::Bits16
        }
    }

    /// The base address of `seg` as used for linear-address formation: in
    /// 64-bit mode only FS and GS have a base, all others count as 0.
    pub fn segment_base(&self, seg: SegReg) -> u64 {
        match (self.code_size(), seg) {
            (CodeSize::Bits64, SegReg::Fs | SegReg::Gs) => self.segs.get(seg).base,
            (CodeSize::Bits64, _) => 0,
            _ => self.segs.get(seg).base,
        }
    }

    /// The instruction pointer after advancing by `len` bytes, wrapped to the
    /// width of IP/EIP/RIP for the current code size.
    pub fn rip_after(&self, len: u8) -> u64 {
        let next = self.regs.rip.wrapping_add(u64::from(len));
        match self.code_size() {
            CodeSize::Bits16 => next & 0xFFFF,
            CodeSize::Bits32 => next & 0xFFFF_FFFF,
            CodeSize::Bits64 => next,
        }
    }
}
