//! Page-walk tests against synthetic page tables, one group per paging mode.

use super::fake::{FakeMemory, Format, Tables, NX, P, PS, RW, US};
use crate::mmio::regs::{GuestState, CR0_PE, CR0_WP, CR4_SMAP, CR4_SMEP, EFER_NXE, RFLAGS_AC};
use crate::mmio::walk::{PF_FETCH, PF_PRESENT, PF_RSVD, PF_USER, PF_WRITE};
use crate::mmio::{fetch_instruction, AccessKind, MmioError, Paging};

const PHYS_BITS: u8 = 40;

fn translate(
    mem: &FakeMemory,
    state: &GuestState,
    lin: u64,
    kind: AccessKind,
) -> Result<u64, MmioError> {
    let paging = Paging::new(state, PHYS_BITS);
    paging.translate(mem, lin, paging.access(kind))
}

fn pf(lin: u64, code: u32) -> Result<u64, MmioError> {
    Err(MmioError::PageFault {
        linear: lin,
        error_code: code,
    })
}

#[test]
fn paging_off_is_identity_wrapped_to_32_bits() {
    let mem = FakeMemory::default();
    let state = GuestState {
        cr0: CR0_PE,
        ..GuestState::default()
    };
    assert_eq!(
        translate(&mem, &state, 0xFED4_0018, AccessKind::Read),
        Ok(0xFED4_0018)
    );
    let paging = Paging::new(&state, PHYS_BITS);
    // Outside 64-bit code, base + offset wraps at 4 GiB.
    assert_eq!(paging.linear(0xFFFF_F000, 0x2000), Ok(0x1000));
}

#[test]
fn bits32_4k_pages_and_faults() {
    let mut mem = FakeMemory::default();
    let mut t = Tables::new(&mut mem, Format::Bits32, 0x10_0000);
    t.map(&mut mem, 0xC000_1000, 0x0055_5000, 1, P | RW);
    t.map(&mut mem, 0xC000_2000, 0x0066_6000, 1, P);
    let mut state = t.state();
    assert_eq!(
        translate(&mem, &state, 0xC000_1234, AccessKind::Read),
        Ok(0x0055_5234)
    );
    // A PDE that exists but a PTE that does not: not-present fault.
    assert_eq!(
        translate(&mem, &state, 0xC000_3000, AccessKind::Read),
        pf(0xC000_3000, 0)
    );
    // No PDE at all.
    assert_eq!(
        translate(&mem, &state, 0x0040_0000, AccessKind::Write),
        pf(0x0040_0000, PF_WRITE)
    );
    // Read-only page: supervisor write allowed without CR0.WP, faults with it.
    assert_eq!(
        translate(&mem, &state, 0xC000_2008, AccessKind::Write),
        Ok(0x0066_6008)
    );
    state.cr0 |= CR0_WP;
    assert_eq!(
        translate(&mem, &state, 0xC000_2008, AccessKind::Write),
        pf(0xC000_2008, PF_PRESENT | PF_WRITE)
    );
    // User access to a supervisor page.
    state.cpl = 3;
    assert_eq!(
        translate(&mem, &state, 0xC000_1000, AccessKind::Read),
        pf(0xC000_1000, PF_PRESENT | PF_USER)
    );
}

#[test]
fn bits32_pse_4m_pages() {
    let mut mem = FakeMemory::default();
    let mut t = Tables::new(&mut mem, Format::Bits32, 0x10_0000);
    t.map(&mut mem, 0xFEC0_0000, 0xFEC0_0000, 2, P | RW);
    let mut state = t.state();
    assert_eq!(
        translate(&mem, &state, 0xFED4_0024, AccessKind::Write),
        Ok(0xFED4_0024)
    );
    // PSE-36: PDE bits 13..=20 are physical address bits 32..=39.
    t.set_raw(
        &mut mem,
        0x0080_0000,
        2,
        0x0040_0000 | (0x12 << 13) | PS | P,
    );
    assert_eq!(
        translate(&mem, &state, 0x0081_2345, AccessKind::Read),
        Ok(0x12_0041_2345)
    );
    // Bit 21 is reserved in a 4 MiB PDE.
    t.set_raw(&mut mem, 0x0080_0000, 2, 0x0040_0000 | (1 << 21) | PS | P);
    assert_eq!(
        translate(&mem, &state, 0x0080_0000, AccessKind::Read),
        pf(0x0080_0000, PF_PRESENT | PF_RSVD)
    );
    // Without CR4.PSE the PS bit is ignored: the PDE points at a page table.
    state.cr4 = 0;
    let pt = 0x20_0000;
    mem.map(pt);
    mem.put_u32(pt + 4 * 0x140, 0x0077_7000 | P as u32);
    t.set_raw(&mut mem, 0xFEC0_0000, 2, pt | PS | P | RW);
    assert_eq!(
        translate(&mem, &state, 0xFED4_0024, AccessKind::Read),
        Ok(0x0077_7024)
    );
}

#[test]
fn pae_4k_and_2m_pages() {
    let mut mem = FakeMemory::default();
    let mut t = Tables::new(&mut mem, Format::Pae, 0x10_0000);
    t.map(&mut mem, 0x8000_5000, 0x1_2345_6000, 1, P | RW);
    t.map(&mut mem, 0xFEC0_0000, 0xFEC0_0000, 2, P | RW | NX);
    let state = t.state();
    assert_eq!(
        translate(&mem, &state, 0x8000_5FFF, AccessKind::Read),
        Ok(0x1_2345_6FFF)
    );
    assert_eq!(
        translate(&mem, &state, 0xFED4_4FFC, AccessKind::Write),
        Ok(0xFED4_4FFC)
    );
    // NX page: fetch faults with the I/D bit (EFER.NXE is set).
    assert_eq!(
        translate(&mem, &state, 0xFED4_0000, AccessKind::Fetch),
        pf(0xFED4_0000, PF_PRESENT | PF_FETCH)
    );
    // Unmapped PDPT slot.
    assert_eq!(
        translate(&mem, &state, 0x4000_0000, AccessKind::Read),
        pf(0x4000_0000, 0)
    );
}

#[test]
fn pae_reserved_bits() {
    let mut mem = FakeMemory::default();
    let mut t = Tables::new(&mut mem, Format::Pae, 0x10_0000);
    t.map(&mut mem, 0x0020_0000, 0x0020_0000, 2, P | RW | NX);
    let mut state = t.state();
    let rsvd = pf(0x0020_0000, PF_PRESENT | PF_RSVD);
    // NX is reserved when EFER.NXE is clear.
    state.efer &= !EFER_NXE;
    assert_eq!(translate(&mem, &state, 0x0020_0000, AccessKind::Read), rsvd);
    state.efer |= EFER_NXE;
    assert_eq!(
        translate(&mem, &state, 0x0020_0000, AccessKind::Read),
        Ok(0x0020_0000)
    );
    // A 2 MiB page with a low address bit set (bit 13) is reserved.
    t.map(&mut mem, 0x0020_0000, 0x0020_2000, 2, P | RW);
    assert_eq!(translate(&mem, &state, 0x0020_0000, AccessKind::Read), rsvd);
    // Physical address above MAXPHYADDR (40 bits).
    t.map(&mut mem, 0x0020_0000, 1 << 41, 2, P | RW);
    assert_eq!(translate(&mem, &state, 0x0020_0000, AccessKind::Read), rsvd);
    // PDPTE bits 1/2 (R/W, U/S in other formats) are reserved here.
    let pdpte = t.entry_addr(&mut mem, 0, 3);
    let mut raw = [0u8; 8];
    crate::mmio::GuestMemory::read(&mem, pdpte, &mut raw).unwrap();
    mem.put_u64(pdpte, u64::from_le_bytes(raw) | RW);
    assert_eq!(translate(&mem, &state, 0x0020_0000, AccessKind::Read), rsvd);
}

#[test]
fn long4_4k_2m_1g_pages() {
    let mut mem = FakeMemory::default();
    let mut t = Tables::new(&mut mem, Format::Long(4), 0x10_0000);
    let ioremap = 0xFFFF_C900_0001_0000;
    t.map(&mut mem, ioremap, 0xFED4_0000, 1, P | RW | NX);
    t.map(&mut mem, 0xFFFF_8880_0020_0000, 0x0020_0000, 2, P | RW);
    t.map(&mut mem, 0x40_0000_0000, 0xC000_0000, 3, P | RW | US);
    let state = t.state();
    assert_eq!(
        translate(&mem, &state, ioremap + 0x18, AccessKind::Write),
        Ok(0xFED4_0018)
    );
    assert_eq!(
        translate(&mem, &state, 0xFFFF_8880_002F_FFF0, AccessKind::Read),
        Ok(0x002F_FFF0)
    );
    assert_eq!(
        translate(&mem, &state, 0x40_3FFF_FFFF, AccessKind::Read),
        Ok(0xFFFF_FFFF)
    );
    // SMEP/SMAP: supervisor fetch from / access to a user page.
    let mut smep = state;
    smep.cr4 |= CR4_SMEP | CR4_SMAP;
    assert_eq!(
        translate(&mem, &smep, 0x40_0000_0000, AccessKind::Fetch),
        pf(0x40_0000_0000, PF_PRESENT | PF_FETCH)
    );
    assert_eq!(
        translate(&mem, &smep, 0x40_0000_0000, AccessKind::Write),
        pf(0x40_0000_0000, PF_PRESENT | PF_WRITE)
    );
    smep.regs.rflags |= RFLAGS_AC;
    assert_eq!(
        translate(&mem, &smep, 0x40_0000_0000, AccessKind::Write),
        Ok(0xC000_0000)
    );
    // 1 GiB page with bit 13 set: reserved.
    t.map(&mut mem, 0x40_0000_0000, 0xC000_2000, 3, P | RW);
    assert_eq!(
        translate(&mem, &state, 0x40_0000_0000, AccessKind::Read),
        pf(0x40_0000_0000, PF_PRESENT | PF_RSVD)
    );
}

#[test]
fn long4_reserved_ps_in_pml4_and_non_canonical() {
    let mut mem = FakeMemory::default();
    let mut t = Tables::new(&mut mem, Format::Long(4), 0x10_0000);
    t.map(&mut mem, 0x1000, 0x5000, 1, P | RW);
    let state = t.state();
    assert_eq!(
        translate(&mem, &state, 0x1010, AccessKind::Read),
        Ok(0x5010)
    );
    let pml4e = t.entry_addr(&mut mem, 0x1000, 4);
    let mut raw = [0u8; 8];
    crate::mmio::GuestMemory::read(&mem, pml4e, &mut raw).unwrap();
    mem.put_u64(pml4e, u64::from_le_bytes(raw) | PS);
    assert_eq!(
        translate(&mem, &state, 0x1010, AccessKind::Read),
        pf(0x1010, PF_PRESENT | PF_RSVD)
    );
    let paging = Paging::new(&state, PHYS_BITS);
    assert_eq!(
        paging.linear(0, 0x0000_8000_0000_0000),
        Err(MmioError::NonCanonical {
            linear: 0x0000_8000_0000_0000
        })
    );
    assert_eq!(
        paging.linear(0, 0xFFFF_8000_0000_0000),
        Ok(0xFFFF_8000_0000_0000)
    );
}

#[test]
fn long5_uses_bits_48_to_56() {
    let mut mem = FakeMemory::default();
    let mut t5 = Tables::new(&mut mem, Format::Long(5), 0x10_0000);
    // Two addresses that differ only in bit 48 (the PML5 index) map apart.
    t5.map(&mut mem, 0x0001_0000_0000_1000, 0xA000, 1, P | RW);
    t5.map(&mut mem, 0x0000_0000_0000_1000, 0xB000, 1, P | RW);
    let state = t5.state();
    assert_eq!(
        translate(&mem, &state, 0x0001_0000_0000_1008, AccessKind::Read),
        Ok(0xA008)
    );
    assert_eq!(
        translate(&mem, &state, 0x1008, AccessKind::Read),
        Ok(0xB008)
    );
    let paging = Paging::new(&state, PHYS_BITS);
    assert_eq!(
        paging.linear(0, 0x0001_0000_0000_1000),
        Ok(0x0001_0000_0000_1000)
    );
    assert!(paging.linear(0, 0x0100_0000_0000_0000).is_err());
    // The same address is non-canonical with 4 levels.
    let mut four = state;
    four.cr4 &= !crate::mmio::regs::CR4_LA57;
    assert!(Paging::new(&four, PHYS_BITS)
        .linear(0, 0x0001_0000_0000_1000)
        .is_err());
}

#[test]
fn guest_memory_error_in_walk() {
    let mut mem = FakeMemory::default();
    let t = Tables::new(&mut mem, Format::Long(4), 0x10_0000);
    let mut state = t.state();
    state.cr3 = 0x7000_0000; // not guest RAM
    assert_eq!(
        translate(&mem, &state, 0x1000, AccessKind::Read),
        Err(MmioError::GuestMemory { gpa: 0x7000_0000 })
    );
}

#[test]
fn fetch_crosses_pages_and_reports_second_page_fault_only_when_needed() {
    let mut mem = FakeMemory::default();
    let mut t = Tables::new(&mut mem, Format::Long(4), 0x10_0000);
    // Code at the last 3 bytes of one page, continuing on a page mapped to a
    // physically unrelated frame.
    t.map(&mut mem, 0x40_0000, 0x9000, 1, P);
    t.map(&mut mem, 0x40_1000, 0x3000, 1, P);
    // mov dword [rip+0x12345678], 0xAABBCCDD  (C7 05 disp32 imm32), 10 bytes.
    let code = [0xC7, 0x05, 0x78, 0x56, 0x34, 0x12, 0xDD, 0xCC, 0xBB, 0xAA];
    mem.put(0x9FFD, &code[..3]);
    mem.put(0x3000, &code[3..]);
    let mut state = t.state();
    state.regs.rip = 0x40_0FFD;
    let paging = Paging::new(&state, PHYS_BITS);
    let f = fetch_instruction(&paging, &state, &mem).unwrap();
    assert_eq!(f.bytes().len(), 15);
    assert_eq!(&f.bytes()[..10], &code);
    let inst = crate::mmio::decode(f.bytes(), crate::mmio::CodeSize::Bits64).unwrap();
    assert_eq!(inst.len, 10);

    // Unmap the second page: the 3 bytes on the first page are fetched and
    // the fault is kept for the decoder's benefit.
    t.set_raw(&mut mem, 0x40_1000, 1, 0);
    let f = fetch_instruction(&paging, &state, &mem).unwrap();
    assert_eq!(f.bytes(), &code[..3]);
    assert_eq!(
        f.fault,
        Some(MmioError::PageFault {
            linear: 0x40_1000,
            error_code: PF_FETCH
        })
    );
    // A 2-byte instruction at the page end does not need the second page.
    mem.put(0x9FFD, &[0x8B, 0x07, 0x90]); // mov eax, [rdi]; nop
    let f = fetch_instruction(&paging, &state, &mem).unwrap();
    assert_eq!(
        crate::mmio::decode(f.bytes(), crate::mmio::CodeSize::Bits64)
            .unwrap()
            .len,
        2
    );
}

#[test]
fn real_mode_fetch_uses_cs_base_and_16_bit_ip() {
    let mut mem = FakeMemory::default();
    let mut state = GuestState::default();
    state.segs.cs = super::fake::code16(0xF_0000);
    state.regs.rip = 0x1_FFF0; // only IP (low 16 bits) counts
    mem.put(0xF_FFF0, &[0x8B, 0x07]);
    let paging = Paging::new(&state, PHYS_BITS);
    let f = fetch_instruction(&paging, &state, &mem).unwrap();
    assert_eq!(&f.bytes()[..2], &[0x8B, 0x07]);
    // IP wraps at 64 KiB: bytes from CS:FFFF continue at CS:0000.
    state.regs.rip = 0xFFFF;
    mem.put(0xF_FFFF, &[0x67]);
    mem.put(0xF_0000, &[0x8B, 0x07]);
    let f = fetch_instruction(&paging, &state, &mem).unwrap();
    assert_eq!(&f.bytes()[..3], &[0x67, 0x8B, 0x07]);
}
