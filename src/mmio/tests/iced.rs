//! Cross-check of the decoder against the iced-x86 decoder, an independent
//! reference: for any byte string, either both reject it or both accept it as
//! the same supported form with the same length, access width, register
//! operand, immediate and linear address.

use iced_x86::{Code, Decoder, DecoderOptions, OpKind, Register};

use super::fake::Rng;
use crate::mmio::regs::{CodeSize, GuestState, RegOperand, SegReg, RSI};
use crate::mmio::{decode, Extend, Operation, Source};

/// The iced codes that make up the supported set (memory forms only).
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

pub fn bitness(code: CodeSize) -> u32 {
    match code {
        CodeSize::Bits16 => 16,
        CodeSize::Bits32 => 32,
        CodeSize::Bits64 => 64,
    }
}

/// Our register operand for an iced GPR.
fn reg_operand(r: Register) -> RegOperand {
    if (Register::AH..=Register::BH).contains(&r) {
        return RegOperand {
            index: (r as u32 - Register::AH as u32) as u8,
            size: 1,
            high_byte: true,
        };
    }
    RegOperand::new(r.full_register().number() as u8, r.size() as u8)
}

fn iced_seg(r: Register) -> Option<SegReg> {
    Some(match r {
        Register::ES => SegReg::Es,
        Register::CS => SegReg::Cs,
        Register::SS => SegReg::Ss,
        Register::DS => SegReg::Ds,
        Register::FS => SegReg::Fs,
        Register::GS => SegReg::Gs,
        _ => return None,
    })
}

/// Register values as iced asks for them (any width, segment bases).
fn value_of(state: &GuestState, r: Register) -> Option<u64> {
    if let Some(seg) = iced_seg(r) {
        return Some(state.segment_base(seg));
    }
    if (Register::AH..=Register::BH).contains(&r) {
        return Some((state.regs.gpr[(r as u32 - Register::AH as u32) as usize] >> 8) & 0xFF);
    }
    match r {
        Register::RIP | Register::EIP => Some(0),
        _ => {
            let full = state.regs.gpr[r.full_register().number() & 15];
            let size = r.size();
            Some(if size >= 8 {
                full
            } else {
                full & ((1u64 << (8 * size)) - 1)
            })
        }
    }
}

/// Decodes `bytes` with both decoders and asserts agreement. Returns `true`
/// when the bytes are a supported instruction.
pub fn agree(code: CodeSize, bytes: &[u8], state: &GuestState) -> bool {
    let mut dec = Decoder::with_ip(bitness(code), bytes, state.regs.rip, DecoderOptions::NONE);
    let ins = dec.decode();
    let ours = decode(bytes, code);
    let mem_op = (0..ins.op_count()).find(|&i| {
        matches!(
            ins.op_kind(i),
            OpKind::Memory | OpKind::MemoryESDI | OpKind::MemoryESEDI | OpKind::MemoryESRDI
        )
    });
    let supported = !ins.is_invalid() && SUPPORTED.contains(&ins.code()) && mem_op.is_some();
    let ctx = || {
        format!(
            "{bytes:02X?} in {code:?}: iced {:?}, ours {ours:?}",
            ins.code()
        )
    };
    if !supported {
        assert!(
            ours.is_err(),
            "accepted an instruction iced rejects: {}",
            ctx()
        );
        return false;
    }
    let inst = ours.unwrap_or_else(|e| panic!("rejected ({e:?}) a supported form: {}", ctx()));
    assert_eq!(usize::from(inst.len), ins.len(), "length: {}", ctx());
    assert_eq!(
        usize::from(inst.width),
        ins.memory_size().size(),
        "width: {}",
        ctx()
    );
    let mem_index = mem_op.unwrap_or(0);
    let linear_mask = if code == CodeSize::Bits64 {
        u64::MAX
    } else {
        0xFFFF_FFFF
    };
    let iced_linear = ins
        .virtual_address(mem_index, 0, |r, _, _| value_of(state, r))
        .unwrap_or_else(|| panic!("no address: {}", ctx()))
        & linear_mask;
    let other = (0..ins.op_count()).find(|&i| i != mem_index);
    match inst.op {
        Operation::Load { dst, ext, mem } => {
            let ea = inst.effective_address(&state.regs).unwrap();
            let ours_linear = state.segment_base(mem.segment).wrapping_add(ea) & linear_mask;
            assert_eq!(ours_linear, iced_linear, "address: {}", ctx());
            let r = ins.op_register(other.unwrap());
            assert_eq!(dst, reg_operand(r), "dst: {}", ctx());
            let name = format!("{:?}", ins.code());
            let want = if name.starts_with("Movzx") {
                Extend::Zero
            } else if name.starts_with("Movsx") {
                Extend::Sign
            } else {
                Extend::None
            };
            assert_eq!(ext, want, "extension: {}", ctx());
        }
        Operation::Store { src, mem } => {
            let ea = inst.effective_address(&state.regs).unwrap();
            let ours_linear = state.segment_base(mem.segment).wrapping_add(ea) & linear_mask;
            assert_eq!(ours_linear, iced_linear, "address: {}", ctx());
            let i = other.unwrap();
            match (src, ins.op_kind(i)) {
                (Source::Reg(r), OpKind::Register) => {
                    assert_eq!(r, reg_operand(ins.op_register(i)), "src: {}", ctx())
                }
                (Source::Imm(v), _) => {
                    let mask = crate::mmio::regs::width_mask(inst.width);
                    assert_eq!(v & mask, ins.immediate(i) & mask, "imm: {}", ctx());
                    assert_eq!(v, ins.immediate(i), "imm extension: {}", ctx());
                }
                _ => panic!("source kind: {}", ctx()),
            }
        }
        Operation::Movs { rep } | Operation::Stos { rep } => {
            assert_eq!(
                rep,
                ins.has_rep_prefix() || ins.has_repne_prefix(),
                "rep: {}",
                ctx()
            );
            // Destination: ES:rDI with the address size.
            let amask = crate::mmio::regs::width_mask(inst.address_size);
            let rdi = state.regs.gpr[7] & amask;
            let dst = state.segment_base(SegReg::Es).wrapping_add(rdi) & linear_mask;
            assert_eq!(dst, iced_linear, "destination: {}", ctx());
            if let Operation::Movs { .. } = inst.op {
                let seg = inst.segment_override.unwrap_or(SegReg::Ds);
                let rsi = state.regs.gpr[usize::from(RSI)] & amask;
                let src = state.segment_base(seg).wrapping_add(rsi) & linear_mask;
                let iced_src = ins
                    .virtual_address(1, 0, |r, _, _| value_of(state, r))
                    .unwrap()
                    & linear_mask;
                assert_eq!(src, iced_src, "source: {}", ctx());
            }
        }
    }
    true
}

/// A state with random registers and segment bases for code size `code`.
pub fn random_state(rng: &mut Rng, code: CodeSize) -> GuestState {
    let mut s = GuestState::default();
    for r in s.regs.gpr.iter_mut() {
        *r = rng.next();
    }
    s.regs.rip = rng.next();
    for seg in [
        &mut s.segs.es,
        &mut s.segs.ss,
        &mut s.segs.ds,
        &mut s.segs.fs,
        &mut s.segs.gs,
    ] {
        seg.base = rng.next() & 0xFFFF_FFFF;
    }
    match code {
        CodeSize::Bits16 => s.segs.cs = super::fake::code16(0xF_0000),
        CodeSize::Bits32 => {
            s.cr0 = crate::mmio::regs::CR0_PE;
            s.segs.cs = super::fake::code32();
        }
        CodeSize::Bits64 => {
            s.cr0 = crate::mmio::regs::CR0_PE | crate::mmio::regs::CR0_PG;
            s.efer = crate::mmio::regs::EFER_LMA;
            s.segs.cs = super::fake::code64();
        }
    }
    s
}

/// Random instruction bytes biased towards the supported opcodes and the
/// prefixes that modify them.
pub fn random_bytes(rng: &mut Rng) -> [u8; 16] {
    const PREFIXES: &[u8] = &[
        0x66, 0x67, 0xF3, 0xF2, 0xF0, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x40, 0x41, 0x44, 0x48,
        0x4C, 0x4F, 0x42,
    ];
    const OPCODES: &[u8] = &[
        0x88, 0x89, 0x8A, 0x8B, 0xC6, 0xC7, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xAA, 0xAB, 0x0F,
        0x8C, 0x8E, 0xA6, 0xAC, 0x63,
    ];
    let mut b = [0u8; 16];
    for x in b.iter_mut() {
        *x = rng.next() as u8;
    }
    let nprefix = match rng.below(8) {
        0..=3 => rng.below(3),
        4..=6 => rng.below(5),
        _ => rng.below(16),
    } as usize;
    for x in b.iter_mut().take(nprefix) {
        *x = rng.pick(PREFIXES);
    }
    if nprefix < 16 && rng.below(8) != 0 {
        b[nprefix] = rng.pick(OPCODES);
        if b[nprefix] == 0x0F && nprefix + 1 < 16 && rng.below(4) != 0 {
            b[nprefix + 1] = rng.pick(&[0xB6, 0xB7, 0xBE, 0xBF]);
        }
    }
    b
}

#[test]
fn random_sweep_agrees_with_iced() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut supported = [0usize; 3];
    for i in 0..300_000 {
        let code = [CodeSize::Bits16, CodeSize::Bits32, CodeSize::Bits64][i % 3];
        let state = random_state(&mut rng, code);
        let bytes = random_bytes(&mut rng);
        // Sometimes offer fewer bytes than an instruction needs.
        let len = if rng.below(10) == 0 {
            rng.below(16) as usize
        } else {
            15
        };
        if agree(code, &bytes[..len], &state) {
            supported[i % 3] += 1;
        }
    }
    // The generator must actually reach the supported forms in every mode.
    for n in supported {
        assert!(
            n > 20_000,
            "too few supported forms exercised: {supported:?}"
        );
    }
}
