//! The IDT: every vector goes to a stub that records the vector and error
//! code, saves the general-purpose registers and calls [`fatal`], which
//! prints them and exits. svtpm expects no exception and no interrupt
//! (interrupts stay masked, and while a guest runs they go to the guest),
//! so every one is a bug or a hardware error worth stopping for.
// The stub assembly and loading IDTR.
#![allow(unsafe_code)]

use spin::Once;
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::VirtAddr;

use super::gdt::{IST_DEFAULT, IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI};

/// Bytes per stub (each is aligned to this).
const STUB_SIZE: u64 = 16;

core::arch::global_asm!(
    r#"
    .pushsection .text.svtpm_isr, "ax", @progbits
    .balign 16
    .globl svtpm_isr_stubs
svtpm_isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    pushq $vec
    .else
    pushq $0
    pushq $vec
    .endif
    jmp svtpm_isr_common
    .set vec, vec + 1
    .endr

svtpm_isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    mov %rsp, %rdi
    and $-16, %rsp
    call {fatal}
    ud2
    .popsection
"#,
    fatal = sym fatal,
    options(att_syntax)
);

unsafe extern "C" {
    /// The first of 256 stubs, [`STUB_SIZE`] bytes apart.
    static svtpm_isr_stubs: u8;
}

/// What the stub and the CPU pushed, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct Frame {
    /// R15 .. RAX as pushed (R15 lowest).
    pub gpr: [u64; 15],
    /// The vector.
    pub vector: u64,
    /// The error code (0 where the CPU pushes none).
    pub error: u64,
    /// Interrupted RIP.
    pub rip: u64,
    /// Interrupted CS.
    pub cs: u64,
    /// Interrupted RFLAGS.
    pub rflags: u64,
    /// Interrupted RSP.
    pub rsp: u64,
    /// Interrupted SS.
    pub ss: u64,
}

const NAMES: [&str; 15] = [
    "r15", "r14", "r13", "r12", "r11", "r10", "r9", "r8", "rbp", "rdi", "rsi", "rdx", "rcx", "rbx",
    "rax",
];

/// Prints the exception and the registers, then exits QEMU with failure.
extern "C" fn fatal(frame: &Frame) -> ! {
    use super::serial::write_fmt_force as out;
    let cr2: u64;
    // SAFETY: reading CR2 has no side effect.
    unsafe { core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack)) };
    out(format_args!(
        "\nsvtpm: exception {} error {:#x} at rip {:#x} (cs {:#x} rflags {:#x} rsp {:#x} ss {:#x}) cr2 {:#x}\n",
        frame.vector, frame.error, frame.rip, frame.cs, frame.rflags, frame.rsp, frame.ss, cr2
    ));
    for (i, (name, value)) in NAMES.iter().zip(frame.gpr).rev().enumerate() {
        out(format_args!("  {name:>3} {value:#018x}"));
        if i % 4 == 3 {
            out(format_args!("\n"));
        }
    }
    out(format_args!("\n"));
    super::power::exit(false)
}

static IDT: Once<InterruptDescriptorTable> = Once::new();

/// Builds and loads the IDT. Needs the TSS from [`super::gdt::init`].
pub fn init() {
    let idt = IDT.call_once(|| {
        let base = (&raw const svtpm_isr_stubs) as u64;
        let at = |v: u64| VirtAddr::new(base + v * STUB_SIZE);
        let mut idt = InterruptDescriptorTable::new();
        macro_rules! set {
            ($($field:ident = $vec:expr, $ist:expr;)*) => {$(
                // SAFETY: the stub for this vector exists, never returns,
                // and runs on its own IST stack.
                unsafe { idt.$field.set_handler_addr(at($vec)).set_stack_index($ist - 1) };
            )*};
        }
        set! {
            divide_error = 0, IST_DEFAULT;
            debug = 1, IST_DEFAULT;
            non_maskable_interrupt = 2, IST_NMI;
            breakpoint = 3, IST_DEFAULT;
            overflow = 4, IST_DEFAULT;
            bound_range_exceeded = 5, IST_DEFAULT;
            invalid_opcode = 6, IST_DEFAULT;
            device_not_available = 7, IST_DEFAULT;
            double_fault = 8, IST_DOUBLE_FAULT;
            invalid_tss = 10, IST_DEFAULT;
            segment_not_present = 11, IST_DEFAULT;
            stack_segment_fault = 12, IST_DEFAULT;
            general_protection_fault = 13, IST_DEFAULT;
            page_fault = 14, IST_DEFAULT;
            x87_floating_point = 16, IST_DEFAULT;
            alignment_check = 17, IST_DEFAULT;
            machine_check = 18, IST_MACHINE_CHECK;
            simd_floating_point = 19, IST_DEFAULT;
            virtualization = 20, IST_DEFAULT;
            cp_protection_exception = 21, IST_DEFAULT;
            hv_injection_exception = 28, IST_DEFAULT;
            vmm_communication_exception = 29, IST_DEFAULT;
            security_exception = 30, IST_DEFAULT;
        }
        for (i, entry) in idt.slice_mut(32..).iter_mut().enumerate() {
            // SAFETY: as above, for the interrupt vectors 32..=255.
            unsafe {
                entry
                    .set_handler_addr(at(32 + i as u64))
                    .set_stack_index(IST_DEFAULT - 1)
            };
        }
        idt
    });
    idt.load();
}
