//! Register-file semantics and execution-mode selection.

use super::fake::{code16, code32, code64};
use crate::mmio::regs::{
    sign_extend, CodeSize, GuestRegs, GuestState, RegOperand, SegReg, CR0_PE, CR0_PG, EFER_LMA,
    RFLAGS_VM,
};

const FILL: u64 = 0x1122_3344_5566_7788;

fn filled() -> GuestRegs {
    GuestRegs {
        gpr: [FILL; 16],
        ..GuestRegs::default()
    }
}

#[test]
fn writes_follow_x86_width_rules() {
    let mut regs = filled();
    regs.write(RegOperand::new(0, 1), 0xAB_CD);
    assert_eq!(
        regs.gpr[0], 0x1122_3344_5566_77CD,
        "8-bit write keeps bits 8..64"
    );
    regs.write(RegOperand::new(1, 2), 0xFFFF_ABCD);
    assert_eq!(
        regs.gpr[1], 0x1122_3344_5566_ABCD,
        "16-bit write keeps bits 16..64"
    );
    regs.write(RegOperand::new(2, 4), 0xFFFF_FFFF_8765_4321);
    assert_eq!(regs.gpr[2], 0x8765_4321, "32-bit write zero-extends");
    regs.write(RegOperand::new(15, 8), 0xDEAD_BEEF_0000_0001);
    assert_eq!(regs.gpr[15], 0xDEAD_BEEF_0000_0001);
}

#[test]
fn byte_registers_with_and_without_rex() {
    // Without REX, 4..=7 are AH, CH, DH, BH.
    let ah = RegOperand::byte(4, false);
    assert_eq!(
        ah,
        RegOperand {
            index: 0,
            size: 1,
            high_byte: true
        }
    );
    let mut regs = filled();
    regs.write(ah, 0x1EE);
    assert_eq!(regs.gpr[0], 0x1122_3344_5566_EE88);
    assert_eq!(regs.read(ah), 0xEE);
    regs.write(RegOperand::byte(7, false), 0x42); // BH
    assert_eq!(regs.gpr[3], 0x1122_3344_5566_4288);
    // With REX, 4..=7 are SPL, BPL, SIL, DIL and 8..=15 are R8B..R15B.
    let sil = RegOperand::byte(6, true);
    assert_eq!(sil, RegOperand::new(6, 1));
    regs.write(sil, 0x99);
    assert_eq!(regs.gpr[6], 0x1122_3344_5566_7799);
    assert_eq!(regs.gpr[2], FILL, "DH untouched");
    assert_eq!(RegOperand::byte(12, true), RegOperand::new(12, 1));
}

#[test]
fn reads_mask_to_width() {
    let regs = filled();
    assert_eq!(regs.read(RegOperand::new(0, 1)), 0x88);
    assert_eq!(regs.read(RegOperand::new(0, 2)), 0x7788);
    assert_eq!(regs.read(RegOperand::new(0, 4)), 0x5566_7788);
    assert_eq!(regs.read(RegOperand::new(0, 8)), FILL);
    assert_eq!(regs.read(RegOperand::byte(5, false)), 0x77); // CH
}

#[test]
fn sign_extension() {
    assert_eq!(sign_extend(0x80, 1), 0xFFFF_FFFF_FFFF_FF80);
    assert_eq!(sign_extend(0x7F, 1), 0x7F);
    assert_eq!(sign_extend(0x8000, 2), 0xFFFF_FFFF_FFFF_8000);
    assert_eq!(sign_extend(0x8000_0000, 4), 0xFFFF_FFFF_8000_0000);
}

#[test]
fn code_size_from_mode() {
    let mut s = GuestState {
        segs: crate::mmio::regs::Segments {
            cs: code16(0xF_0000),
            ..Default::default()
        },
        ..GuestState::default()
    };
    assert_eq!(s.code_size(), CodeSize::Bits16, "real mode");
    // A D=1 CS cache left over from protected mode runs 32-bit code.
    s.segs.cs = code32();
    assert_eq!(s.code_size(), CodeSize::Bits32);
    s.cr0 = CR0_PE;
    assert_eq!(s.code_size(), CodeSize::Bits32);
    s.regs.rflags = RFLAGS_VM;
    assert_eq!(s.code_size(), CodeSize::Bits16, "virtual-8086");
    s.regs.rflags = 0;
    s.cr0 |= CR0_PG;
    s.efer = EFER_LMA;
    assert_eq!(s.code_size(), CodeSize::Bits32, "compatibility mode");
    s.segs.cs = code64();
    assert_eq!(s.code_size(), CodeSize::Bits64);
    // In 64-bit mode only FS/GS bases count.
    s.segs.ds.base = 0x1000;
    s.segs.fs.base = 0x2000;
    assert_eq!(s.segment_base(SegReg::Ds), 0);
    assert_eq!(s.segment_base(SegReg::Fs), 0x2000);
}

#[test]
fn rip_wraps_with_code_size() {
    let mut s = GuestState::default();
    s.segs.cs = code16(0);
    s.regs.rip = 0xFFFE;
    assert_eq!(s.rip_after(3), 0x1);
    s.cr0 = CR0_PE;
    s.segs.cs = code32();
    s.regs.rip = 0xFFFF_FFFE;
    assert_eq!(s.rip_after(3), 0x1);
    s.cr0 |= CR0_PG;
    s.efer = EFER_LMA;
    s.segs.cs = code64();
    assert_eq!(s.rip_after(3), 0x1_0000_0001);
}
