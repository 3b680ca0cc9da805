//! End-to-end exit handling: fetch through the guest page tables, decode,
//! device access and register updates, including the string copies Linux's
//! memcpy_toio/memcpy_fromio compile to.

use super::fake::{code16, code32, BusOp, FakeMemory, Format, RecordingBus, Tables, NX, P, RW};
use crate::mmio::regs::{GuestState, CR0_PE, CR0_WP, RAX, RBX, RCX, RDI, RFLAGS_DF, RSI, RSP};
use crate::mmio::walk::{PF_PRESENT, PF_WRITE};
use crate::mmio::{handle_mmio_exit, Completion, Emulator, Exception, MmioError, MmioWindow};

/// Where the guest's code page lives (linear) and its frame.
const CODE: u64 = 0x40_0000;
const CODE_PHYS: u64 = 0x9000;
/// An ioremap-style mapping of the TPM window (not identity).
const IO: u64 = 0xFFFF_C900_0001_0000;
const TPM: u64 = 0xFED4_0000;
/// A kernel buffer spanning two pages whose frames are not adjacent.
const BUF: u64 = 0xFFFF_8880_0010_0000;
const BUF_PHYS: [u64; 2] = [0x20_0000, 0x50_0000];

struct Rig {
    mem: FakeMemory,
    tables: Tables,
    state: GuestState,
    bus: RecordingBus,
    emu: Emulator,
}

impl Rig {
    /// 64-bit long mode with 4-level paging.
    fn long() -> Self {
        let mut mem = FakeMemory::default();
        let mut tables = Tables::new(&mut mem, Format::Long(4), 0x10_0000);
        tables.map(&mut mem, CODE, CODE_PHYS, 1, P);
        for i in 0..5 {
            tables.map(&mut mem, IO + i * 0x1000, TPM + i * 0x1000, 1, P | RW | NX);
        }
        for (i, phys) in BUF_PHYS.iter().enumerate() {
            tables.map(&mut mem, BUF + i as u64 * 0x1000, *phys, 1, P | RW | NX);
            mem.map(*phys);
        }
        let mut state = tables.state();
        state.regs.rip = CODE;
        state.regs.gpr = [0xDEAD_BEEF_CAFE_F00D; 16];
        Self {
            mem,
            tables,
            state,
            bus: RecordingBus::default(),
            emu: Emulator::new(MmioWindow::TPM, 40),
        }
    }

    /// Flat 32-bit protected mode without paging (OVMF PEI on IA32).
    fn flat32() -> Self {
        let mut rig = Self::long();
        rig.state = GuestState {
            cr0: CR0_PE,
            ..GuestState::default()
        };
        rig.state.segs.cs = code32();
        rig.state.regs.rip = CODE_PHYS;
        rig
    }

    /// Places `code` at RIP (through the current translation).
    fn place(&mut self, code: &[u8]) {
        let paging = crate::mmio::Paging::new(&self.state, 40);
        let cs = self.state.segment_base(crate::mmio::SegReg::Cs);
        let ip = match self.state.code_size() {
            crate::mmio::CodeSize::Bits16 => self.state.regs.rip & 0xFFFF,
            _ => self.state.regs.rip,
        };
        let lin = paging.linear(cs, ip).unwrap();
        let access = paging.access(crate::mmio::AccessKind::Read);
        let gpa = paging.translate(&self.mem, lin, access).unwrap();
        self.mem.put(gpa, code);
    }

    fn exit(&mut self, code: &[u8], fault_gpa: u64) -> Result<Completion, MmioError> {
        self.place(code);
        handle_mmio_exit(
            &self.emu,
            &mut self.state,
            &mut self.mem,
            &mut self.bus,
            fault_gpa,
        )
    }

    fn gpr(&self, r: u8) -> u64 {
        self.state.regs.gpr[usize::from(r)]
    }

    fn set(&mut self, r: u8, v: u64) {
        self.state.regs.gpr[usize::from(r)] = v;
    }
}

#[test]
fn linux_readl_writeb_readb_writel() {
    let mut rig = Rig::long();
    // readl(STS): mov eax, [rdi]
    rig.set(RDI, IO + 0x18);
    rig.bus.replies.push_back(0x0000_0190);
    assert_eq!(rig.exit(&[0x8B, 0x07], TPM + 0x18), Ok(Completion::Done));
    assert_eq!(rig.gpr(RAX), 0x190, "32-bit load zero-extends");
    assert_eq!(rig.state.regs.rip, CODE + 2);
    assert_eq!(
        rig.bus.ops,
        [BusOp::Read {
            gpa: TPM + 0x18,
            size: 4
        }]
    );

    // writeb(0x20, STS): mov [rdi], sil
    rig.state.regs.rip = CODE;
    rig.set(RSI, 0xFFFF_FF20);
    assert_eq!(
        rig.exit(&[0x40, 0x88, 0x37], TPM + 0x18),
        Ok(Completion::Done)
    );
    assert_eq!(rig.bus.writes(), [(TPM + 0x18, 1, 0x20)]);
    assert_eq!(rig.state.regs.rip, CODE + 3);

    // readb(FIFO) into AL keeps the rest of RAX.
    rig.state.regs.rip = CODE;
    rig.set(RAX, 0x1111_2222_3333_4444);
    rig.set(RDI, IO + 0x24);
    rig.bus.replies.push_back(0xAB);
    rig.exit(&[0x8A, 0x07], TPM + 0x24).unwrap();
    assert_eq!(rig.gpr(RAX), 0x1111_2222_3333_44AB);

    // writel with a 64-bit register source writes only 32 bits.
    rig.state.regs.rip = CODE;
    rig.set(RBX, 0xFFFF_FFFF_0000_0040);
    rig.set(RDI, IO + 0x40);
    rig.exit(&[0x89, 0x1F], TPM + 0x40).unwrap();
    assert_eq!(rig.bus.writes().last(), Some(&(TPM + 0x40, 4, 0x40)));
}

#[test]
fn byte_register_loads_with_and_without_rex() {
    let mut rig = Rig::long();
    rig.set(RDI, IO);
    rig.set(RAX, 0x1111_2222_3333_4444);
    rig.bus.replies.push_back(0xA5);
    rig.exit(&[0x8A, 0x27], TPM).unwrap(); // mov ah, [rdi]
    assert_eq!(rig.gpr(RAX), 0x1111_2222_3333_A544);
    rig.state.regs.rip = CODE;
    rig.set(RSP, 0x5555_6666_7777_8888);
    rig.bus.replies.push_back(0x5A);
    rig.exit(&[0x40, 0x8A, 0x27], TPM).unwrap(); // mov spl, [rdi]
    assert_eq!(rig.gpr(RSP), 0x5555_6666_7777_885A);
    assert_eq!(rig.gpr(RAX), 0x1111_2222_3333_A544, "AH untouched");
}

#[test]
fn movzx_and_movsx_extend() {
    let mut rig = Rig::long();
    rig.set(RDI, IO + 0x19);
    let cases: [(&[u8], u64, u64); 6] = [
        (&[0x0F, 0xB6, 0x07], 0x80, 0x80),        // movzx eax, byte
        (&[0x0F, 0xBE, 0x07], 0x80, 0xFFFF_FF80), // movsx eax, byte
        (&[0x48, 0x0F, 0xBE, 0x07], 0x80, 0xFFFF_FFFF_FFFF_FF80), // movsx rax, byte
        (&[0x66, 0x0F, 0xBE, 0x07], 0x80, 0xDEAD_BEEF_CAFE_FF80), // movsx ax, byte
        (&[0x0F, 0xBF, 0x07], 0x8000, 0xFFFF_8000), // movsx eax, word
        (&[0x48, 0x0F, 0xB7, 0x07], 0xFFFF, 0xFFFF), // movzx rax, word
    ];
    for (code, reply, want) in cases {
        rig.state.regs.rip = CODE;
        rig.set(RAX, 0xDEAD_BEEF_CAFE_F00D);
        rig.bus.replies.push_back(reply);
        rig.exit(code, TPM + 0x19).unwrap();
        assert_eq!(rig.gpr(RAX), want, "{code:02X?}");
        assert_eq!(rig.state.regs.rip, CODE + code.len() as u64);
    }
    let sizes: Vec<u8> = rig
        .bus
        .ops
        .iter()
        .map(|op| match op {
            BusOp::Read { size, .. } => *size,
            BusOp::Write { .. } => 0,
        })
        .collect();
    assert_eq!(
        sizes,
        [1, 1, 1, 1, 2, 2],
        "the device sees the memory width"
    );
}

#[test]
fn immediate_stores() {
    let mut rig = Rig::long();
    rig.set(RDI, IO + 0x68);
    let cases: [(&[u8], u8, u64); 3] = [
        (
            &[0x48, 0xC7, 0x07, 0x00, 0x00, 0x00, 0x80],
            8,
            0xFFFF_FFFF_8000_0000,
        ),
        (&[0xC6, 0x07, 0x02], 1, 0x02),
        (&[0x66, 0xC7, 0x07, 0x34, 0x12], 2, 0x1234),
    ];
    for (code, size, value) in cases {
        rig.state.regs.rip = CODE;
        rig.exit(code, TPM + 0x68).unwrap();
        assert_eq!(rig.bus.writes().last(), Some(&(TPM + 0x68, size, value)));
    }
}

#[test]
fn flat_32_bit_moffs_and_rip_wrap() {
    let mut rig = Rig::flat32();
    rig.bus.replies.push_back(0x0000_2100);
    // mov eax, [0xFED40030] (INTERFACE_ID)
    rig.exit(&[0xA1, 0x30, 0x00, 0xD4, 0xFE], TPM + 0x30)
        .unwrap();
    assert_eq!(rig.gpr(RAX), 0x2100);
    assert_eq!(rig.state.regs.rip, CODE_PHYS + 5);
    // mov [0xFED40000], al
    rig.state.regs.rip = CODE_PHYS;
    rig.exit(&[0xA2, 0x00, 0x00, 0xD4, 0xFE], TPM).unwrap();
    assert_eq!(rig.bus.writes(), [(TPM, 1, 0x2100 & 0xFF)]);
}

#[test]
fn sixteen_bit_code_with_32_bit_addressing_and_segment_bases() {
    let mut rig = Rig::flat32();
    // Real mode with a big DS left over from protected mode (as firmware
    // sometimes runs): mov eax, [edi] with 66 67 prefixes.
    rig.state.cr0 = 0;
    rig.state.segs.cs = code16(0xF_0000);
    rig.state.regs.rip = 0x1_FFF0;
    rig.mem.map(0xF_F000);
    rig.set(RDI, 0xFED4_0F00);
    rig.bus.replies.push_back(0x1014);
    rig.exit(&[0x66, 0x67, 0x8B, 0x07], TPM + 0xF00).unwrap();
    assert_eq!(rig.gpr(RAX), 0x1014);
    assert_eq!(rig.state.regs.rip, 0xFFF4, "IP advanced in 16 bits");
    // mov al, [bx+si+4] with DS.base at the window.
    rig.state.regs.rip = 0xFFF0;
    rig.state.segs.ds.base = TPM;
    rig.set(RBX, 0x0010);
    rig.set(RSI, 0xFFFF_0008); // only SI counts
    rig.bus.replies.push_back(0x81);
    rig.exit(&[0x8A, 0x40, 0x04], TPM + 0x1C).unwrap();
    assert_eq!(rig.gpr(RAX) & 0xFF, 0x81);
}

#[test]
fn fs_override_and_rip_relative() {
    let mut rig = Rig::long();
    rig.state.segs.fs.base = IO + 0x1000;
    rig.set(RDI, 0x14);
    rig.exit(&[0x64, 0x8B, 0x07], TPM + 0x1014).unwrap();
    assert_eq!(
        rig.bus.ops,
        [BusOp::Read {
            gpa: TPM + 0x1014,
            size: 4
        }]
    );
    // mov [rip+disp32], eax with the target in a second mapping of the
    // window within reach of a 32-bit displacement.
    let alias = 0x1000_0000;
    rig.tables.map(&mut rig.mem, alias, TPM, 1, P | RW);
    rig.state.regs.rip = CODE;
    let disp = u32::try_from(alias + 0x4C - (CODE + 6)).unwrap();
    let mut code = vec![0x89, 0x05];
    code.extend_from_slice(&disp.to_le_bytes());
    rig.set(RAX, 1);
    rig.exit(&code, TPM + 0x4C).unwrap();
    assert_eq!(rig.bus.writes(), [(TPM + 0x4C, 4, 1)]);
}

#[test]
fn inconsistent_and_split_accesses_are_refused() {
    let mut rig = Rig::long();
    rig.set(RDI, IO + 0x18);
    // The exit reports a different offset than the instruction addresses.
    let e = rig.exit(&[0x8B, 0x07], TPM + 0x24);
    assert_eq!(
        e,
        Err(MmioError::Inconsistent {
            fault_gpa: TPM + 0x24
        })
    );
    assert_eq!(e.unwrap_err().exception(), None);
    // A dword at the last two bytes of a page.
    rig.set(RDI, IO + 0xFFE);
    let e = rig.exit(&[0x8B, 0x07], TPM + 0xFFE).unwrap_err();
    assert_eq!(e, MmioError::SplitAccess { linear: IO + 0xFFE });
    assert_eq!(e.exception(), Some(Exception::InvalidOpcode));
    assert!(rig.bus.ops.is_empty());
    assert_eq!(rig.state.regs.rip, CODE, "RIP unchanged on error");
}

#[test]
fn lock_and_unsupported_become_ud() {
    let mut rig = Rig::long();
    rig.set(RDI, IO);
    let e = rig.exit(&[0xF0, 0x89, 0x07], TPM).unwrap_err();
    assert_eq!(e.exception(), Some(Exception::InvalidOpcode));
    let e = rig.exit(&[0x01, 0x07], TPM).unwrap_err(); // add [rdi], eax
    assert_eq!(e.exception().map(|x| x.vector()), Some(6));
    let mut long = vec![0x66; 15];
    long.push(0x8B);
    let e = rig.exit(&long, TPM).unwrap_err();
    assert_eq!(e.exception(), Some(Exception::GeneralProtection(0)));
    assert!(rig.bus.ops.is_empty());
}

#[test]
fn fetch_faults_are_reported() {
    let mut rig = Rig::long();
    // Instruction at the end of the code page, next page unmapped: a 2-byte
    // instruction works, a longer one reports the fetch fault on page two.
    rig.state.regs.rip = CODE + 0xFFE;
    rig.set(RDI, IO);
    rig.exit(&[0x8B, 0x07], TPM).unwrap();
    rig.state.regs.rip = CODE + 0xFFE;
    let e = rig.exit(&[0x0F, 0xB6], TPM).unwrap_err();
    assert_eq!(
        e,
        MmioError::PageFault {
            linear: CODE + 0x1000,
            error_code: 0x10
        }
    );
    // RIP itself unmapped.
    rig.state.regs.rip = 0x7000_0000;
    assert!(matches!(
        handle_mmio_exit(&rig.emu, &mut rig.state, &mut rig.mem, &mut rig.bus, TPM),
        Err(MmioError::PageFault {
            linear: 0x7000_0000,
            ..
        })
    ));
}

/// Runs Linux's memcpy_toio(IO + `off`, BUF + `src_off`, `n`) instruction by
/// instruction, as arch/x86/lib/iomem.c does: `movsb` if the destination is
/// odd, `movsw` if it is then not 4-aligned, then `rep movsl` for n/4
/// dwords and `movsw`/`movsb` for the tail.
fn linux_memcpy_toio(rig: &mut Rig, off: u64, src_off: u64, mut n: u64) {
    rig.set(RDI, IO + off);
    rig.set(RSI, BUF + src_off);
    let step = |rig: &mut Rig, code: &[u8]| {
        rig.state.regs.rip = CODE;
        let gpa = TPM + (rig.gpr(RDI) - IO);
        assert_eq!(rig.exit(code, gpa), Ok(Completion::Done), "{code:02X?}");
        assert_eq!(rig.state.regs.rip, CODE + code.len() as u64);
    };
    if rig.gpr(RDI) & 1 != 0 {
        step(rig, &[0xA4]);
        n -= 1;
    }
    if n > 1 && rig.gpr(RDI) & 2 != 0 {
        step(rig, &[0x66, 0xA5]);
        n -= 2;
    }
    rig.set(RCX, n / 4);
    if n / 4 > 0 {
        step(rig, &[0xF3, 0xA5]);
        assert_eq!(rig.gpr(RCX), 0);
    }
    if n & 2 != 0 {
        step(rig, &[0x66, 0xA5]);
    }
    if n & 1 != 0 {
        step(rig, &[0xA4]);
    }
}

#[test]
fn memcpy_toio_matches_a_byte_copy() {
    for (off, src_off, n) in [
        (0x81, 0xFF5, 23),
        (0x80, 0x10, 16),
        (0x83, 0xFFE, 6),
        (0x80, 0, 0xF80),
    ] {
        let mut rig = Rig::long();
        let data: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
        for (i, b) in data.iter().enumerate() {
            let lin = BUF + src_off + i as u64;
            let phys = BUF_PHYS[((lin - BUF) / 0x1000) as usize] + (lin & 0xFFF);
            rig.mem.put(phys, &[*b]);
        }
        linux_memcpy_toio(&mut rig, off, src_off, n);
        // Reassemble what the device received; every write is inside the
        // window, in ascending order, and the bytes equal the source.
        let mut got = Vec::new();
        let mut next = TPM + off;
        for (gpa, size, value) in rig.bus.writes() {
            assert_eq!(gpa, next, "contiguous ascending writes");
            got.extend_from_slice(&value.to_le_bytes()[..usize::from(size)]);
            next += u64::from(size);
        }
        assert_eq!(got, data);
        assert_eq!(rig.gpr(RSI), BUF + src_off + n);
        assert_eq!(rig.gpr(RDI), IO + off + n);
    }
}

#[test]
fn memcpy_fromio_fills_ram() {
    let mut rig = Rig::long();
    // CRB response buffer at +0x80, 30 bytes: rep movsl (7), then movsw.
    rig.set(RSI, IO + 0x80);
    rig.set(RDI, BUF + 0xFF0); // crosses into the second (non-adjacent) page
    rig.set(RCX, 7);
    rig.exit(&[0xF3, 0xA5], TPM + 0x80).unwrap();
    rig.state.regs.rip = CODE;
    rig.exit(&[0x66, 0xA5], TPM + 0x9C).unwrap();
    let reads: Vec<BusOp> = (0..7)
        .map(|i| BusOp::Read {
            gpa: TPM + 0x80 + 4 * i,
            size: 4,
        })
        .chain([BusOp::Read {
            gpa: TPM + 0x9C,
            size: 2,
        }])
        .collect();
    assert_eq!(rig.bus.ops, reads);
    let mut ram = rig.mem.get(BUF_PHYS[0] + 0xFF0, 16);
    ram.extend(rig.mem.get(BUF_PHYS[1], 14));
    let want: Vec<u8> = (0..30)
        .map(|i| ((TPM + 0x80 + i + 0x11) & 0xFF) as u8)
        .collect();
    assert_eq!(ram, want);
    assert_eq!(
        (rig.gpr(RSI), rig.gpr(RDI)),
        (IO + 0x80 + 30, BUF + 0xFF0 + 30)
    );
}

#[test]
fn direction_flag_walks_down() {
    let mut rig = Rig::long();
    rig.state.regs.rflags |= RFLAGS_DF;
    rig.mem
        .put(BUF_PHYS[0] + 0x100, &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
    rig.set(RSI, BUF + 0x108);
    rig.set(RDI, IO + 0x88);
    rig.set(RCX, 3);
    rig.exit(&[0xF3, 0xA5], TPM + 0x88).unwrap();
    assert_eq!(
        rig.bus.writes(),
        [(TPM + 0x88, 4, 3), (TPM + 0x84, 4, 2), (TPM + 0x80, 4, 1)]
    );
    assert_eq!(
        (rig.gpr(RSI), rig.gpr(RDI), rig.gpr(RCX)),
        (BUF + 0xFC, IO + 0x7C, 0)
    );
}

#[test]
fn rep_stos_to_mmio() {
    let mut rig = Rig::long();
    rig.set(RAX, 0x1122_3344_5566_7788);
    rig.set(RDI, IO + 0x80);
    rig.set(RCX, 3);
    rig.exit(&[0xF3, 0xAB], TPM + 0x80).unwrap();
    assert_eq!(
        rig.bus.writes(),
        [
            (TPM + 0x80, 4, 0x5566_7788),
            (TPM + 0x84, 4, 0x5566_7788),
            (TPM + 0x88, 4, 0x5566_7788)
        ]
    );
    rig.state.regs.rip = CODE;
    rig.set(RCX, 1);
    rig.exit(&[0xF3, 0x48, 0xAB], TPM + 0x8C).unwrap();
    assert_eq!(
        rig.bus.writes().last(),
        Some(&(TPM + 0x8C, 8, 0x1122_3344_5566_7788))
    );
    // rep with rCX = 0 does nothing but advance RIP.
    rig.state.regs.rip = CODE;
    let before = rig.bus.ops.len();
    rig.exit(&[0xF3, 0xAA], TPM + 0x94).unwrap();
    assert_eq!(rig.bus.ops.len(), before);
    assert_eq!(rig.state.regs.rip, CODE + 2);
}

#[test]
fn address_size_32_in_64_bit_mode() {
    let mut rig = Rig::long();
    // Identity-map the window below 4 GiB so 32-bit addresses reach it.
    for i in 0..5 {
        rig.tables
            .map(&mut rig.mem, TPM + i * 0x1000, TPM + i * 0x1000, 1, P | RW);
    }
    rig.tables.map(&mut rig.mem, 0x1000, 0x1000, 1, P | RW);
    rig.mem.put(0x1FFE, &[0xAA, 0xBB, 0xCC]);
    rig.set(RSI, 0xFFFF_FFFF_0000_1FFE); // ESI = 0x1FFE
    rig.set(RDI, 0x1234_5678_FED4_0024);
    rig.set(RCX, 0xFFFF_FFFF_0000_0002); // ECX = 2
    rig.exit(&[0x67, 0xF3, 0xA4], TPM + 0x24).unwrap();
    assert_eq!(
        rig.bus.writes(),
        [(TPM + 0x24, 1, 0xAA), (TPM + 0x25, 1, 0xBB)]
    );
    // 32-bit register updates clear the upper halves.
    assert_eq!(
        (rig.gpr(RSI), rig.gpr(RDI), rig.gpr(RCX)),
        (0x2000, 0xFED4_0026, 0)
    );
}

#[test]
fn address_size_16_wraps_si() {
    let mut rig = Rig::flat32();
    rig.state.cr0 = 0;
    rig.state.segs.cs = code16(0xF_0000);
    rig.state.regs.rip = 0x100;
    rig.mem.map(0xF_0000);
    rig.state.segs.ds.base = 0x2_0000;
    rig.state.segs.es.base = TPM; // big ES from protected mode
    rig.mem.put(0x2_FFFF, &[0x11]);
    rig.mem.put(0x2_0000, &[0x22, 0x33]);
    rig.set(RSI, 0xABCD_FFFF);
    rig.set(RDI, 0x0000_0024);
    rig.set(RCX, 0x7777_0003);
    rig.exit(&[0xF3, 0xA4], TPM + 0x24).unwrap();
    assert_eq!(
        rig.bus.writes(),
        [
            (TPM + 0x24, 1, 0x11),
            (TPM + 0x25, 1, 0x22),
            (TPM + 0x26, 1, 0x33)
        ]
    );
    // SI wrapped to 2; bits above 16 are untouched.
    assert_eq!((rig.gpr(RSI), rig.gpr(RCX)), (0xABCD_0002, 0x7777_0000));
    assert_eq!(rig.state.regs.rip, 0x102);
}

#[test]
fn long_rep_is_split_across_exits() {
    let mut rig = Rig::long();
    rig.emu.max_rep = 3;
    rig.set(RAX, 0x41);
    rig.set(RDI, IO + 0x24);
    rig.set(RCX, 8);
    let mut exits = 0;
    loop {
        exits += 1;
        let gpa = TPM + (rig.gpr(RDI) - IO);
        match rig.exit(&[0xF3, 0xAA], gpa).unwrap() {
            Completion::Partial => assert_eq!(rig.state.regs.rip, CODE, "resumes the rep"),
            Completion::Done => break,
        }
    }
    assert_eq!(exits, 3);
    let writes = rig.bus.writes();
    assert_eq!(writes.len(), 8);
    assert!(writes
        .iter()
        .enumerate()
        .all(|(i, w)| *w == (TPM + 0x24 + i as u64, 1, 0x41)));
    assert_eq!(rig.state.regs.rip, CODE + 2);
}

#[test]
fn rep_stops_where_mmio_ends() {
    let mut rig = Rig::long();
    // The page after the window's mapping is ordinary RAM.
    rig.tables
        .map(&mut rig.mem, IO + 0x5000, 0x60_0000, 1, P | RW);
    rig.mem.map(0x60_0000);
    rig.set(RAX, 0xEEEE_EEEE);
    rig.set(RDI, IO + 0x4FF8);
    rig.set(RCX, 4);
    assert_eq!(
        rig.exit(&[0xF3, 0xAB], TPM + 0x4FF8),
        Ok(Completion::Partial)
    );
    assert_eq!(
        rig.bus.writes().len(),
        2,
        "only window elements reach the device"
    );
    assert_eq!(rig.gpr(RCX), 2);
    assert_eq!(rig.gpr(RDI), IO + 0x5000);
    assert_eq!(
        rig.mem.get(0x60_0000, 4),
        [0, 0, 0, 0],
        "the CPU does the RAM part"
    );
    assert_eq!(rig.state.regs.rip, CODE);
}

#[test]
fn page_fault_mid_rep_keeps_progress() {
    let mut rig = Rig::long();
    // Source runs off the end of the buffer into an unmapped page.
    rig.mem.put(BUF_PHYS[1] + 0xFF8, &[1, 2, 3, 4, 5, 6, 7, 8]);
    rig.set(RSI, BUF + 0x1FF8);
    rig.set(RDI, IO + 0x80);
    rig.set(RCX, 4);
    let e = rig.exit(&[0xF3, 0xA5], TPM + 0x80).unwrap_err();
    assert_eq!(
        e,
        MmioError::PageFault {
            linear: BUF + 0x2000,
            error_code: 0
        }
    );
    assert_eq!(
        e.exception(),
        Some(Exception::PageFault {
            error_code: 0,
            cr2: BUF + 0x2000
        })
    );
    assert_eq!(
        rig.bus.writes(),
        [(TPM + 0x80, 4, 0x0403_0201), (TPM + 0x84, 4, 0x0807_0605)]
    );
    assert_eq!(
        (rig.gpr(RCX), rig.gpr(RSI), rig.gpr(RDI)),
        (2, BUF + 0x2000, IO + 0x88)
    );
    assert_eq!(rig.state.regs.rip, CODE);
}

#[test]
fn read_only_destination_faults_before_the_device_is_touched() {
    let mut rig = Rig::long();
    rig.state.cr0 |= CR0_WP;
    rig.tables.map(&mut rig.mem, BUF, BUF_PHYS[0], 1, P | NX);
    rig.set(RSI, IO + 0x24);
    rig.set(RDI, BUF);
    let e = rig.exit(&[0xA4], TPM + 0x24).unwrap_err();
    assert_eq!(
        e,
        MmioError::PageFault {
            linear: BUF,
            error_code: PF_PRESENT | PF_WRITE
        }
    );
    assert!(rig.bus.ops.is_empty(), "a FIFO read must not be lost");
}

#[test]
fn string_ops_check_the_fault_address_and_copy_mmio_to_mmio() {
    let mut rig = Rig::long();
    rig.set(RSI, BUF);
    rig.set(RDI, IO + 0x80);
    assert_eq!(
        rig.exit(&[0xA4], TPM + 0x81),
        Err(MmioError::Inconsistent {
            fault_gpa: TPM + 0x81
        })
    );
    rig.set(RSI, IO + 0x1080);
    rig.set(RDI, IO + 0x80);
    rig.exit(&[0xA5], TPM + 0x1080).unwrap();
    assert_eq!(
        rig.bus.ops,
        [
            BusOp::Read {
                gpa: TPM + 0x1080,
                size: 4
            },
            BusOp::Write {
                gpa: TPM + 0x80,
                size: 4,
                value: RecordingBus::pattern(TPM + 0x1080, 4)
            }
        ]
    );
}
