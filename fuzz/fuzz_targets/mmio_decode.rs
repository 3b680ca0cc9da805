//! Fuzzes the MMIO instruction decoder and emulator with random instruction
//! bytes, execution modes, register files and guest memory (page tables
//! included). Nothing may panic; and where the iced-x86 decoder sees one of
//! the supported forms with a memory operand, the decoder must accept it with
//! the same length and access width (and reject everything else).
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use iced_x86::{Code, Decoder, DecoderOptions, OpKind};
use libfuzzer_sys::fuzz_target;
use svtpm::mmio::regs::{
    CR0_PE, CR0_PG, CR0_WP, CR4_LA57, CR4_PAE, CR4_PSE, CR4_SMAP, CR4_SMEP, EFER_LMA, EFER_NXE,
};
use svtpm::mmio::{
    decode, handle_mmio_exit, AccessKind, CodeSize, Emulator, GuestMemory, GuestState, MemoryError,
    MmioBus, MmioWindow, Operation, Paging, SegReg, Segment, MAX_INSTRUCTION_LEN,
};

#[derive(Arbitrary, Debug)]
struct Input {
    mode: u8,
    bytes: [u8; MAX_INSTRUCTION_LEN],
    fetch_len: u8,
    gpr: [u64; 16],
    rip: u64,
    rflags: u64,
    cr3: u64,
    flags: u16,
    bases: [u32; 6],
    fs_gs_high: u64,
    cpl: u8,
    fault_offset: u16,
    use_rsi: bool,
    max_rep: u8,
    phys_bits: u8,
    ram: Vec<u8>,
}

const SUPPORTED: &[Code] = &[
    Code::Mov_rm8_r8,
    Code::Mov_rm16_r16,
    Code::Mov_rm32_r32,
    Code::Mov_rm64_r64,
    Code::Mov_r8_rm8,
    Code::Mov_r16_rm16,
    Code::Mov_r32_rm32,
    Code::Mov_r64_rm64,
    Code::Mov_rm8_imm8,
    Code::Mov_rm16_imm16,
    Code::Mov_rm32_imm32,
    Code::Mov_rm64_imm32,
    Code::Mov_AL_moffs8,
    Code::Mov_AX_moffs16,
    Code::Mov_EAX_moffs32,
    Code::Mov_RAX_moffs64,
    Code::Mov_moffs8_AL,
    Code::Mov_moffs16_AX,
    Code::Mov_moffs32_EAX,
    Code::Mov_moffs64_RAX,
    Code::Movzx_r16_rm8,
    Code::Movzx_r32_rm8,
    Code::Movzx_r64_rm8,
    Code::Movzx_r16_rm16,
    Code::Movzx_r32_rm16,
    Code::Movzx_r64_rm16,
    Code::Movsx_r16_rm8,
    Code::Movsx_r32_rm8,
    Code::Movsx_r64_rm8,
    Code::Movsx_r16_rm16,
    Code::Movsx_r32_rm16,
    Code::Movsx_r64_rm16,
    Code::Movsb_m8_m8,
    Code::Movsw_m16_m16,
    Code::Movsd_m32_m32,
    Code::Movsq_m64_m64,
    Code::Stosb_m8_AL,
    Code::Stosw_m16_AX,
    Code::Stosd_m32_EAX,
    Code::Stosq_m64_RAX,
];

/// Guest RAM: the fuzz bytes repeated below 2^36, nothing above; the
/// instruction bytes at one GPA; writes kept aside.
struct Memory<'a> {
    ram: &'a [u8],
    code_gpa: Option<u64>,
    code: &'a [u8],
    written: BTreeMap<u64, u8>,
}

impl GuestMemory for Memory<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        for (i, b) in buf.iter_mut().enumerate() {
            let a = gpa.wrapping_add(i as u64);
            if a >= 1 << 36 {
                return Err(MemoryError { gpa: a });
            }
            *b = match self.code_gpa {
                Some(c) if a >= c && a - c < self.code.len() as u64 => self.code[(a - c) as usize],
                _ => match self.written.get(&a) {
                    Some(v) => *v,
                    None if self.ram.is_empty() => 0,
                    None => self.ram[(a % self.ram.len() as u64) as usize],
                },
            };
        }
        Ok(())
    }

    fn write(&mut self, gpa: u64, buf: &[u8]) -> Result<(), MemoryError> {
        if gpa
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > 1 << 36)
        {
            return Err(MemoryError { gpa });
        }
        for (i, b) in buf.iter().enumerate() {
            self.written.insert(gpa + i as u64, *b);
        }
        Ok(())
    }
}

/// A device that answers reads from the address and counts accesses.
struct Bus {
    accesses: usize,
}

impl MmioBus for Bus {
    fn read(&mut self, gpa: u64, size: u8) -> u64 {
        assert!(matches!(size, 1 | 2 | 4 | 8));
        self.accesses += 1;
        gpa.rotate_left(17) ^ 0x5A5A_5A5A_5A5A_5A5A
    }

    fn write(&mut self, _gpa: u64, size: u8, _value: u64) {
        assert!(matches!(size, 1 | 2 | 4 | 8));
        self.accesses += 1;
    }
}

fn segment(base: u64, attrib: u16) -> Segment {
    Segment {
        selector: 0,
        attrib,
        limit: u32::MAX,
        base,
    }
}

fn state_for(input: &Input) -> GuestState {
    let f = input.flags;
    let mut s = GuestState::default();
    s.regs.gpr = input.gpr;
    s.regs.rip = input.rip;
    s.regs.rflags = input.rflags;
    s.cr3 = input.cr3;
    s.cpl = input.cpl & 3;
    let b = |i: usize| u64::from(input.bases[i]);
    s.segs.es = segment(b(0), 0x93);
    s.segs.ss = segment(b(2), 0x93);
    s.segs.ds = segment(b(3), 0x93);
    s.segs.fs = segment(b(4) | (input.fs_gs_high & 0xFFFF_0000_0000_0000), 0x93);
    s.segs.gs = segment(b(5), 0x93);
    // Modes: real, 16-bit PM, 32-bit unpaged, 32-bit paging, PAE,
    // compatibility, long 4-level, long 5-level.
    let (cr0, cr4, efer, cs_attrib) = match input.mode % 8 {
        0 => (0, 0, 0, 0x9B),
        1 => (CR0_PE, 0, 0, 0x9B),
        2 => (CR0_PE, 0, 0, 0xC9B),
        3 => (CR0_PE | CR0_PG, CR4_PSE, 0, 0xC9B),
        4 => (CR0_PE | CR0_PG, CR4_PAE, EFER_NXE, 0xC9B),
        5 => (CR0_PE | CR0_PG, CR4_PAE, EFER_LMA | EFER_NXE, 0xC9B),
        6 => (CR0_PE | CR0_PG, CR4_PAE, EFER_LMA | EFER_NXE, 0x29B),
        _ => (CR0_PE | CR0_PG, CR4_PAE | CR4_LA57, EFER_LMA, 0x29B),
    };
    s.cr0 = cr0 | if f & 1 != 0 { CR0_WP } else { 0 };
    s.cr4 = cr4 | if f & 2 != 0 { CR4_SMEP } else { 0 } | if f & 4 != 0 { CR4_SMAP } else { 0 };
    s.efer = efer ^ if f & 8 != 0 { EFER_NXE } else { 0 };
    s.segs.cs = segment(b(1), cs_attrib);
    s
}

fn bitness(code: CodeSize) -> u32 {
    match code {
        CodeSize::Bits16 => 16,
        CodeSize::Bits32 => 32,
        CodeSize::Bits64 => 64,
    }
}

/// Our decoder against iced on the same bytes.
fn check_decoder(bytes: &[u8], code: CodeSize) {
    let ins = Decoder::new(bitness(code), bytes, DecoderOptions::NONE).decode();
    let has_mem = (0..ins.op_count()).any(|i| {
        matches!(
            ins.op_kind(i),
            OpKind::Memory | OpKind::MemoryESDI | OpKind::MemoryESEDI | OpKind::MemoryESRDI
        )
    });
    let supported = !ins.is_invalid() && has_mem && SUPPORTED.contains(&ins.code());
    match decode(bytes, code) {
        Ok(inst) => {
            assert!(
                supported,
                "accepted what iced calls {:?}: {bytes:02X?}",
                ins.code()
            );
            assert_eq!(usize::from(inst.len), ins.len(), "length of {bytes:02X?}");
            assert_eq!(
                usize::from(inst.width),
                ins.memory_size().size(),
                "width of {bytes:02X?}"
            );
        }
        Err(e) => assert!(
            !supported,
            "rejected {:?} ({e:?}): {bytes:02X?}",
            ins.code()
        ),
    }
}

fuzz_target!(|input: Input| {
    let fetch_len = usize::from(input.fetch_len).min(MAX_INSTRUCTION_LEN);
    let mut state = state_for(&input);
    let code = state.code_size();
    check_decoder(&input.bytes[..fetch_len], code);

    // Emulate: place the instruction where the guest's RIP translates (if it
    // does), and aim the fault and window at what the instruction addresses
    // so emulation gets past the consistency checks.
    let phys_bits = input.phys_bits % 24 + 32;
    let paging = Paging::new(&state, phys_bits);
    let mut mem = Memory {
        ram: &input.ram,
        code_gpa: None,
        code: &input.bytes[..fetch_len],
        written: BTreeMap::new(),
    };
    let ip_mask = match code {
        CodeSize::Bits16 => 0xFFFF,
        CodeSize::Bits32 => 0xFFFF_FFFF,
        CodeSize::Bits64 => u64::MAX,
    };
    let cs_base = state.segment_base(SegReg::Cs);
    mem.code_gpa = paging
        .linear(cs_base, state.regs.rip & ip_mask)
        .and_then(|lin| paging.translate(&mem, lin, paging.access(AccessKind::Fetch)))
        .ok();
    let mut fault_gpa = 0xFED4_0000 + u64::from(input.fault_offset);
    if let Ok(inst) = decode(&input.bytes[..fetch_len], code) {
        let target = match inst.op {
            Operation::Load { mem: m, .. } | Operation::Store { mem: m, .. } => inst
                .effective_address(&state.regs)
                .map(|ea| (state.segment_base(m.segment), ea)),
            Operation::Movs { .. } | Operation::Stos { .. } => {
                let amask = svtpm::mmio::regs::width_mask(inst.address_size);
                Some(if input.use_rsi {
                    let seg = inst.segment_override.unwrap_or(SegReg::Ds);
                    (state.segment_base(seg), state.regs.gpr[6] & amask)
                } else {
                    (state.segment_base(SegReg::Es), state.regs.gpr[7] & amask)
                })
            }
        };
        if let Some((base, offset)) = target {
            let gpa = paging
                .linear(base, offset)
                .and_then(|lin| paging.translate(&mem, lin, paging.access(AccessKind::Read)));
            if let Ok(gpa) = gpa {
                fault_gpa = gpa;
            }
        }
    }
    let window = MmioWindow {
        base: fault_gpa & !0xFFF,
        size: 0x5000,
    };
    let mut emu = Emulator::new(window, phys_bits);
    emu.max_rep = u64::from(input.max_rep);
    let mut bus = Bus { accesses: 0 };
    let rip_before = state.regs.rip;
    let result = handle_mmio_exit(&emu, &mut state, &mut mem, &mut bus, fault_gpa);
    match result {
        Ok(_) => {}
        Err(e) => {
            let _ = e.exception();
            assert_eq!(state.regs.rip, rip_before, "RIP moved on error {e:?}");
        }
    }
    // Each element is at most one read and one write.
    assert!(bus.accesses <= 2 * (usize::from(input.max_rep) + 1));
});
