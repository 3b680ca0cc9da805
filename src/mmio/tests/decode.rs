//! Decoder tests: hand-encoded instructions for each supported form in 16-,
//! 32- and 64-bit code. Each hand encoding is checked against the iced-x86
//! assembler's encoding of the same instruction (where it has one) and
//! against the iced-x86 decoder, so the expectations do not rest on this
//! decoder's own reading of the opcode tables.

use iced_x86::code_asm::*;

use super::iced::{agree, bitness};
use crate::mmio::regs::{
    CodeSize, GuestState, RegOperand, SegReg, RAX, RBP, RBX, RCX, RDI, RDX, RSI, RSP,
};
use crate::mmio::{decode, Extend, Instruction, MemOperand, MmioError, Operation, Source};

type Asm = fn(&mut CodeAssembler) -> Result<(), IcedError>;

fn assemble(bits: u32, f: Asm) -> Vec<u8> {
    let mut a = CodeAssembler::new(bits).unwrap();
    f(&mut a).unwrap();
    a.assemble(0).unwrap()
}

fn mem(segment: SegReg, base: Option<u8>, index: Option<u8>, scale: u8, disp: i64) -> MemOperand {
    MemOperand {
        segment,
        base,
        index,
        scale,
        disp: disp as u64,
        rip_relative: false,
    }
}

fn ds(base: u8) -> MemOperand {
    mem(SegReg::Ds, Some(base), None, 1, 0)
}

fn load(dst: RegOperand, ext: Extend, mem: MemOperand) -> Operation {
    Operation::Load { dst, ext, mem }
}

fn store_reg(src: RegOperand, mem: MemOperand) -> Operation {
    Operation::Store {
        src: Source::Reg(src),
        mem,
    }
}

fn store_imm(imm: u64, mem: MemOperand) -> Operation {
    Operation::Store {
        src: Source::Imm(imm),
        mem,
    }
}

fn r(index: u8, size: u8) -> RegOperand {
    RegOperand::new(index, size)
}

/// A test case: the hand encoding, the same instruction through the iced
/// assembler (if it can express it), and the expected decode.
struct Case {
    bytes: &'static [u8],
    asm: Option<Asm>,
    op: Operation,
    width: u8,
    address_size: u8,
    segment_override: Option<SegReg>,
}

fn case(bytes: &'static [u8], asm: Asm, op: Operation, width: u8, address_size: u8) -> Case {
    Case {
        bytes,
        asm: Some(asm),
        op,
        width,
        address_size,
        segment_override: None,
    }
}

fn run(code: CodeSize, cases: &[Case]) {
    let state = GuestState::default();
    for c in cases {
        if let Some(f) = c.asm {
            assert_eq!(
                assemble(bitness(code), f),
                c.bytes,
                "assembler disagrees with hand encoding"
            );
        }
        let expected = Instruction {
            len: c.bytes.len() as u8,
            op: c.op,
            width: c.width,
            address_size: c.address_size,
            segment_override: c.segment_override,
        };
        assert_eq!(decode(c.bytes, code), Ok(expected), "{:02X?}", c.bytes);
        // Trailing bytes (the next instruction) do not change the decode.
        let mut longer = c.bytes.to_vec();
        longer.extend_from_slice(&[0x90; 15]);
        assert_eq!(decode(&longer, code), Ok(expected));
        assert!(
            agree(code, c.bytes, &state),
            "iced does not see a supported form"
        );
    }
}

#[test]
fn forms_in_64_bit_code() {
    let moffs = mem(SegReg::Ds, None, None, 1, 0xFED4_0018);
    run(
        CodeSize::Bits64,
        &[
            // readl: mov eax, [rdi]
            case(
                &[0x8B, 0x07],
                |a| a.mov(eax, dword_ptr(rdi)),
                load(r(RAX, 4), Extend::None, ds(RDI)),
                4,
                8,
            ),
            // readb: mov al, [rdi]
            case(
                &[0x8A, 0x07],
                |a| a.mov(al, byte_ptr(rdi)),
                load(r(RAX, 1), Extend::None, ds(RDI)),
                1,
                8,
            ),
            // writeb with SIL needs a bare REX
            case(
                &[0x40, 0x88, 0x37],
                |a| a.mov(byte_ptr(rdi), sil),
                store_reg(r(RSI, 1), ds(RDI)),
                1,
                8,
            ),
            // without REX, reg 6 in a byte form is DH
            case(
                &[0x88, 0x37],
                |a| a.mov(byte_ptr(rdi), dh),
                store_reg(RegOperand::byte(6, false), ds(RDI)),
                1,
                8,
            ),
            // mov r9d, [r12 + r13*8 - 0x80]
            case(
                &[0x47, 0x8B, 0x4C, 0xEC, 0x80],
                |a| a.mov(r9d, dword_ptr(r12 + r13 * 8 - 0x80)),
                load(
                    r(9, 4),
                    Extend::None,
                    mem(SegReg::Ds, Some(12), Some(13), 8, -0x80),
                ),
                4,
                8,
            ),
            // mov [r15 + rax*2], spl
            case(
                &[0x41, 0x88, 0x24, 0x47],
                |a| a.mov(byte_ptr(r15 + rax * 2), spl),
                store_reg(r(RSP, 1), mem(SegReg::Ds, Some(15), Some(RAX), 2, 0)),
                1,
                8,
            ),
            // mov r8b, [rax]
            case(
                &[0x44, 0x8A, 0x00],
                |a| a.mov(r8b, byte_ptr(rax)),
                load(r(8, 1), Extend::None, ds(RAX)),
                1,
                8,
            ),
            // mov dword [rax], 0xDEADBEEF
            case(
                &[0xC7, 0x00, 0xEF, 0xBE, 0xAD, 0xDE],
                |a| a.mov(dword_ptr(rax), 0xDEAD_BEEFu32),
                store_imm(0xDEAD_BEEF, ds(RAX)),
                4,
                8,
            ),
            // mov qword [rax], -2: imm32 sign-extended to 64 bits
            case(
                &[0x48, 0xC7, 0x00, 0xFE, 0xFF, 0xFF, 0xFF],
                |a| a.mov(qword_ptr(rax), -2),
                store_imm(0xFFFF_FFFF_FFFF_FFFE, ds(RAX)),
                8,
                8,
            ),
            // mov word [rax+0x10], 0x1234
            case(
                &[0x66, 0xC7, 0x40, 0x10, 0x34, 0x12],
                |a| a.mov(word_ptr(rax + 0x10), 0x1234u32),
                store_imm(0x1234, mem(SegReg::Ds, Some(RAX), None, 1, 0x10)),
                2,
                8,
            ),
            // mov byte [rbx], 0x5A
            case(
                &[0xC6, 0x03, 0x5A],
                |a| a.mov(byte_ptr(rbx), 0x5Au32),
                store_imm(0x5A, ds(RBX)),
                1,
                8,
            ),
            // movzx eax, byte [rdi+0x19] (burstCount byte read)
            case(
                &[0x0F, 0xB6, 0x47, 0x19],
                |a| a.movzx(eax, byte_ptr(rdi + 0x19)),
                load(
                    r(RAX, 4),
                    Extend::Zero,
                    mem(SegReg::Ds, Some(RDI), None, 1, 0x19),
                ),
                1,
                8,
            ),
            // movzx rcx, word [rsi]
            case(
                &[0x48, 0x0F, 0xB7, 0x0E],
                |a| a.movzx(rcx, word_ptr(rsi)),
                load(r(RCX, 8), Extend::Zero, ds(RSI)),
                2,
                8,
            ),
            // movsx edx, byte [rbp]: rBP base means SS
            case(
                &[0x0F, 0xBE, 0x55, 0x00],
                |a| a.movsx(edx, byte_ptr(rbp)),
                load(
                    r(RDX, 4),
                    Extend::Sign,
                    mem(SegReg::Ss, Some(RBP), None, 1, 0),
                ),
                1,
                8,
            ),
            // movsx r8, word [rsp+8]
            case(
                &[0x4C, 0x0F, 0xBF, 0x44, 0x24, 0x08],
                |a| a.movsx(r8, word_ptr(rsp + 8)),
                load(
                    r(8, 8),
                    Extend::Sign,
                    mem(SegReg::Ss, Some(RSP), None, 1, 8),
                ),
                2,
                8,
            ),
            // mov eax, [0xFED40018]: not reachable by disp32, so moffs64
            case(
                &[0xA1, 0x18, 0x00, 0xD4, 0xFE, 0, 0, 0, 0],
                |a| a.mov(eax, dword_ptr(0xFED4_0018u64)),
                load(r(RAX, 4), Extend::None, moffs),
                4,
                8,
            ),
            case(
                &[0xA2, 0x18, 0x00, 0xD4, 0xFE, 0, 0, 0, 0],
                |a| a.mov(byte_ptr(0xFED4_0018u64), al),
                store_reg(r(RAX, 1), moffs),
                1,
                8,
            ),
            // mov [ebx], eax with an address-size prefix
            case(
                &[0x67, 0x89, 0x03],
                |a| a.mov(dword_ptr(ebx), eax),
                store_reg(r(RAX, 4), ds(RBX)),
                4,
                4,
            ),
        ],
    );
}

#[test]
fn segment_override_and_rip_relative_in_64_bit_code() {
    // mov ecx, fs:[rax]
    run(
        CodeSize::Bits64,
        &[Case {
            bytes: &[0x64, 0x8B, 0x08],
            asm: Some(|a| a.mov(ecx, dword_ptr(rax).fs())),
            op: load(
                r(RCX, 4),
                Extend::None,
                mem(SegReg::Fs, Some(RAX), None, 1, 0),
            ),
            width: 4,
            address_size: 8,
            segment_override: Some(SegReg::Fs),
        }],
    );
    // mov [rip+0x1000], rax (7 bytes; RIP-relative to the next instruction)
    let bytes = [0x48, 0x89, 0x05, 0x00, 0x10, 0x00, 0x00];
    let inst = decode(&bytes, CodeSize::Bits64).unwrap();
    let mut m = mem(SegReg::Ds, None, None, 1, 0x1000);
    m.rip_relative = true;
    assert_eq!(inst.op, store_reg(r(RAX, 8), m));
    let mut state = GuestState::default();
    state.regs.rip = 0xFFFF_FFFF_8100_0000;
    assert_eq!(
        inst.effective_address(&state.regs),
        Some(0xFFFF_FFFF_8100_1007)
    );
    assert!(agree(CodeSize::Bits64, &bytes, &state));
    // FS then DS: the DS override is ignored in 64-bit mode, FS stays.
    let inst = decode(&[0x64, 0x3E, 0x8B, 0x08], CodeSize::Bits64).unwrap();
    assert_eq!(inst.mem().unwrap().segment, SegReg::Fs);
    // ...but in 32-bit code the last override wins.
    let inst = decode(&[0x64, 0x3E, 0x8B, 0x08], CodeSize::Bits32).unwrap();
    assert_eq!(inst.mem().unwrap().segment, SegReg::Ds);
}

#[test]
fn forms_in_32_bit_code() {
    run(
        CodeSize::Bits32,
        &[
            case(
                &[0x8B, 0x84, 0xB3, 0x00, 0x01, 0x00, 0x00],
                |a| a.mov(eax, dword_ptr(ebx + esi * 4 + 0x100)),
                load(
                    r(RAX, 4),
                    Extend::None,
                    mem(SegReg::Ds, Some(RBX), Some(RSI), 4, 0x100),
                ),
                4,
                4,
            ),
            // moffs32 with EAX is the short form the assembler picks
            case(
                &[0xA3, 0x18, 0x00, 0xD4, 0xFE],
                |a| a.mov(dword_ptr(0xFED4_0018u32), eax),
                store_reg(r(RAX, 4), mem(SegReg::Ds, None, None, 1, 0xFED4_0018)),
                4,
                4,
            ),
            // mod=00 rm=101 is an absolute disp32 (not RIP-relative) here
            case(
                &[0x8B, 0x0D, 0x18, 0x00, 0xD4, 0xFE],
                |a| a.mov(ecx, dword_ptr(0xFED4_0018u32)),
                load(
                    r(RCX, 4),
                    Extend::None,
                    mem(SegReg::Ds, None, None, 1, -0x12B_FFE8),
                ),
                4,
                4,
            ),
            case(
                &[0x66, 0x8B, 0x06],
                |a| a.mov(ax, word_ptr(esi)),
                load(r(RAX, 2), Extend::None, ds(RSI)),
                2,
                4,
            ),
            case(
                &[0x0F, 0xB7, 0x47, 0x02],
                |a| a.movzx(eax, word_ptr(edi + 2)),
                load(
                    r(RAX, 4),
                    Extend::Zero,
                    mem(SegReg::Ds, Some(RDI), None, 1, 2),
                ),
                2,
                4,
            ),
            case(
                &[0xC7, 0x45, 0xFC, 0x01, 0x00, 0x00, 0x00],
                |a| a.mov(dword_ptr(ebp - 4), 1u32),
                store_imm(1, mem(SegReg::Ss, Some(RBP), None, 1, -4)),
                4,
                4,
            ),
            // 16-bit addressing in 32-bit code
            case(
                &[0x67, 0x88, 0x00],
                |a| a.mov(byte_ptr(bx + si), al),
                store_reg(r(RAX, 1), mem(SegReg::Ds, Some(RBX), Some(RSI), 1, 0)),
                1,
                2,
            ),
        ],
    );
}

#[test]
fn forms_in_16_bit_code() {
    run(
        CodeSize::Bits16,
        &[
            case(
                &[0x8A, 0x40, 0x04],
                |a| a.mov(al, byte_ptr(bx + si + 4)),
                load(
                    r(RAX, 1),
                    Extend::None,
                    mem(SegReg::Ds, Some(RBX), Some(RSI), 1, 4),
                ),
                1,
                2,
            ),
            // [bp+di] defaults to SS; mod=00 rm=011
            case(
                &[0x8B, 0x03],
                |a| a.mov(ax, word_ptr(bp + di)),
                load(
                    r(RAX, 2),
                    Extend::None,
                    mem(SegReg::Ss, Some(RBP), Some(RDI), 1, 0),
                ),
                2,
                2,
            ),
            case(
                &[0xA3, 0x34, 0x12],
                |a| a.mov(word_ptr(0x1234u32), ax),
                store_reg(r(RAX, 2), mem(SegReg::Ds, None, None, 1, 0x1234)),
                2,
                2,
            ),
            // mod=00 rm=110 is disp16 alone
            case(
                &[0x8B, 0x16, 0x34, 0x12],
                |a| a.mov(dx, word_ptr(0x1234u32)),
                load(
                    r(RDX, 2),
                    Extend::None,
                    mem(SegReg::Ds, None, None, 1, 0x1234),
                ),
                2,
                2,
            ),
            case(
                &[0x66, 0x8B, 0x07],
                |a| a.mov(eax, dword_ptr(bx)),
                load(r(RAX, 4), Extend::None, ds(RBX)),
                4,
                2,
            ),
            case(
                &[0x66, 0x67, 0x8B, 0x04, 0x4B],
                |a| a.mov(eax, dword_ptr(ebx + ecx * 2)),
                load(
                    r(RAX, 4),
                    Extend::None,
                    mem(SegReg::Ds, Some(RBX), Some(RCX), 2, 0),
                ),
                4,
                4,
            ),
            case(
                &[0xC6, 0x05, 0x7F],
                |a| a.mov(byte_ptr(di), 0x7Fu32),
                store_imm(0x7F, ds(RDI)),
                1,
                2,
            ),
            case(
                &[0xC7, 0x46, 0x02, 0xFF, 0xFF],
                |a| a.mov(word_ptr(bp + 2), 0xFFFFu32),
                store_imm(0xFFFF, mem(SegReg::Ss, Some(RBP), None, 1, 2)),
                2,
                2,
            ),
            case(
                &[0x0F, 0xBE, 0x04],
                |a| a.movsx(ax, byte_ptr(si)),
                load(r(RAX, 2), Extend::Sign, ds(RSI)),
                1,
                2,
            ),
        ],
    );
}

#[test]
fn string_forms() {
    let movs = |rep| Operation::Movs { rep };
    let stos = |rep| Operation::Stos { rep };
    // Linux memcpy_toio/memcpy_fromio: movsb, movsw, rep movsl.
    run(
        CodeSize::Bits64,
        &[
            case(&[0xA4], |a| a.movsb(), movs(false), 1, 8),
            case(&[0x66, 0xA5], |a| a.movsw(), movs(false), 2, 8),
            case(&[0xF3, 0xA5], |a| a.rep().movsd(), movs(true), 4, 8),
            case(&[0xF3, 0x48, 0xA5], |a| a.rep().movsq(), movs(true), 8, 8),
            case(&[0xF3, 0xAA], |a| a.rep().stosb(), stos(true), 1, 8),
            case(&[0xF3, 0x48, 0xAB], |a| a.rep().stosq(), stos(true), 8, 8),
            case(&[0xAB], |a| a.stosd(), stos(false), 4, 8),
            // The assembler has no address-size choice for string forms.
            Case {
                bytes: &[0x67, 0xF3, 0xA5],
                asm: None,
                op: movs(true),
                width: 4,
                address_size: 4,
                segment_override: None,
            },
        ],
    );
    run(
        CodeSize::Bits16,
        &[
            case(&[0xF3, 0xA5], |a| a.rep().movsw(), movs(true), 2, 2),
            case(&[0x66, 0xAB], |a| a.stosd(), stos(false), 4, 2),
        ],
    );
    // A segment override applies to the movs source; REPNE repeats too.
    let inst = decode(&[0xF2, 0x65, 0xA4], CodeSize::Bits64).unwrap();
    assert_eq!(inst.op, movs(true));
    assert_eq!(inst.segment_override, Some(SegReg::Gs));
}

#[test]
fn rejections() {
    let d64 = |b: &[u8]| decode(b, CodeSize::Bits64);
    // LOCK is never valid on these forms.
    assert_eq!(d64(&[0xF0, 0x89, 0x07]), Err(MmioError::Lock));
    assert_eq!(d64(&[0xF0, 0xA5]), Err(MmioError::Lock));
    // Unsupported opcodes: add, mov to Sreg, lods, cmps, SSE movsd.
    assert_eq!(
        d64(&[0x01, 0x07]),
        Err(MmioError::Unsupported { opcode: 0x01 })
    );
    assert_eq!(
        d64(&[0x8E, 0x07]),
        Err(MmioError::Unsupported { opcode: 0x8E })
    );
    assert_eq!(d64(&[0xAD]), Err(MmioError::Unsupported { opcode: 0xAD }));
    assert_eq!(d64(&[0xA6]), Err(MmioError::Unsupported { opcode: 0xA6 }));
    assert_eq!(
        d64(&[0xF2, 0x0F, 0x10, 0x07]),
        Err(MmioError::Unsupported { opcode: 0x0F10 })
    );
    // C6/C7 need /0.
    assert_eq!(
        d64(&[0xC7, 0x08, 1, 2, 3, 4]),
        Err(MmioError::Unsupported { opcode: 0xC7 })
    );
    // Register forms do not access memory.
    assert_eq!(d64(&[0x89, 0xC7]), Err(MmioError::NoMemoryOperand));
    assert_eq!(d64(&[0x0F, 0xB6, 0xC0]), Err(MmioError::NoMemoryOperand));
    // Truncated: ModRM, SIB, displacement, immediate or moffs missing.
    for bytes in [
        &[0x8B][..],
        &[0x8B, 0x04],
        &[0x8B, 0x84, 0x24, 0x00],
        &[0xC7, 0x00, 0xEF, 0xBE],
        &[0xA1, 0x18, 0x00, 0xD4, 0xFE],
        &[0x0F],
        &[0x66, 0x67],
        &[],
    ] {
        assert_eq!(d64(bytes), Err(MmioError::Truncated), "{bytes:02X?}");
    }
    // More than 15 bytes: 14 prefixes + opcode + ModRM.
    let mut long = vec![0x66; 14];
    long.extend_from_slice(&[0x8B, 0x07]);
    assert_eq!(d64(&long), Err(MmioError::TooLong));
    // Exactly 15 bytes is fine.
    let mut ok = vec![0x66; 13];
    ok.extend_from_slice(&[0x8B, 0x07]);
    assert_eq!(d64(&ok).map(|i| i.len), Ok(15));
    // 0x40..0x4F are INC/DEC outside 64-bit mode, not REX.
    assert_eq!(
        decode(&[0x48, 0x8B, 0x07], CodeSize::Bits32),
        Err(MmioError::Unsupported { opcode: 0x48 })
    );
    // A REX prefix followed by a legacy prefix is void: 48 66 89 07 is a
    // 16-bit store, not a 64-bit one.
    assert_eq!(d64(&[0x48, 0x66, 0x89, 0x07]).map(|i| i.width), Ok(2));
}
