//! The GDT (flat 64-bit code and data) and the TSS whose interrupt stack
//! table gives every exception and interrupt a stack of its own: libcrypto
//! uses the red zone below RSP, so nothing may be pushed on the stack it
//! was running on.
// Loading GDTR, TR and the segment registers.
#![allow(unsafe_code)]

use spin::Once;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// IST slot (1-based, as the IDT counts) for ordinary exceptions and
/// interrupts.
pub const IST_DEFAULT: u16 = 1;
/// IST slot for #DF.
pub const IST_DOUBLE_FAULT: u16 = 2;
/// IST slot for NMI.
pub const IST_NMI: u16 = 3;
/// IST slot for #MC.
pub const IST_MACHINE_CHECK: u16 = 4;

const IST_STACK_SIZE: usize = 16 << 10;
const IST_STACKS: usize = 4;

#[repr(C, align(16))]
struct IstStacks([[u8; IST_STACK_SIZE]; IST_STACKS]);
static mut IST: IstStacks = IstStacks([[0; IST_STACK_SIZE]; IST_STACKS]);

/// The selectors the image runs with.
#[derive(Clone, Copy, Debug)]
pub struct Selectors {
    /// 64-bit code.
    pub code: SegmentSelector,
    /// Data (and stack).
    pub data: SegmentSelector,
    /// The TSS.
    pub tss: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

/// Builds and loads the GDT and TSS, reloads CS, DS, ES, SS and TR.
pub fn init() -> Selectors {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let base = (&raw const IST) as u64;
        for i in 0..IST_STACKS {
            let top = base + ((i + 1) * IST_STACK_SIZE) as u64;
            tss.interrupt_stack_table[i] = VirtAddr::new(top);
        }
        tss
    });
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let code = gdt.append(Descriptor::kernel_code_segment());
        let data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (gdt, Selectors { code, data, tss })
    });
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded; the code segment is
    // 64-bit and the data segment writable, matching what runs now.
    unsafe {
        CS::set_reg(sel.code);
        DS::set_reg(sel.data);
        ES::set_reg(sel.data);
        SS::set_reg(sel.data);
        load_tss(sel.tss);
    }
    *sel
}
