//! The SVM instructions and the state they leave to software: enabling SVM
//! (EFER.SVME, the host save area), VMRUN wrapped in the VMLOAD/VMSAVE
//! sequence that swaps FS/GS/TR/LDTR and the syscall MSRs, and the guest's
//! x87/SSE/AVX state, which VMRUN does not switch and libcrypto would
//! clobber.
// VMRUN/VMLOAD/VMSAVE, EFER and VM_HSAVE_PA, XSAVE/XRSTOR.
#![allow(unsafe_code)]

use alloc::boxed::Box;

use super::state::Gprs;
use super::vmcb::{Vmcb, EFER_SVME};
use crate::arch::cpu::{self, cpuid};

use super::msr::{EFER as MSR_EFER, VM_CR as MSR_VM_CR, VM_HSAVE_PA as MSR_VM_HSAVE_PA};

/// What the CPU lacks for the svm platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvmError {
    /// No SVM (CPUID 0x80000001 ECX bit 2): use `-cpu max` or `+svm`.
    NoSvm,
    /// No nested paging (CPUID 0x8000000A EDX bit 0): add `+npt`.
    NoNestedPaging,
    /// SVM is disabled in VM_CR.
    Disabled,
    /// The XSAVE area the CPU needs is larger than the image provides.
    XsaveTooLarge(u32),
}

/// One page for VMSAVE/VMLOAD of the host's FS/GS/TR/LDTR state, and the
/// host save area VMRUN uses.
#[repr(C, align(4096))]
#[derive(Debug)]
struct Page([u8; 4096]);

/// SVM enabled on this CPU.
#[derive(Debug)]
pub struct Svm {
    _hsave: Box<Page>,
    host_state: Box<Page>,
    /// Whether nested tables may use 1 GiB pages.
    pub huge_1g: bool,
}

impl Svm {
    /// Checks for SVM and nested paging, sets EFER.SVME and VM_HSAVE_PA,
    /// and saves the host's VMLOAD state (call after the GDT, TSS and FS
    /// base are final).
    pub fn enable() -> Result<Self, SvmError> {
        if cpuid(0x8000_0001, 0).ecx & (1 << 2) == 0 {
            return Err(SvmError::NoSvm);
        }
        if cpuid(0x8000_000A, 0).edx & 1 == 0 {
            return Err(SvmError::NoNestedPaging);
        }
        // SAFETY: VM_CR exists on every CPU with SVM; reading it has no
        // side effect.
        if unsafe { cpu::rdmsr(MSR_VM_CR) } & (1 << 4) != 0 {
            return Err(SvmError::Disabled);
        }
        let hsave = Box::new(Page([0; 4096]));
        let host_state = Box::new(Page([0; 4096]));
        let hsave_pa = (&*hsave as *const Page) as u64;
        let host_pa = (&*host_state as *const Page) as u64;
        // SAFETY: EFER.SVME only enables the SVM instructions; the host
        // save area is a page owned by `Svm` for as long as SVM is used
        // (the image never disables it); VMSAVE writes only that page.
        unsafe {
            let efer = cpu::rdmsr(MSR_EFER);
            cpu::wrmsr(MSR_EFER, efer | EFER_SVME);
            cpu::wrmsr(MSR_VM_HSAVE_PA, hsave_pa);
            core::arch::asm!("vmsave rax", in("rax") host_pa, options(nostack));
        }
        Ok(Self {
            _hsave: hsave,
            host_state,
            huge_1g: cpuid(0x8000_0001, 0).edx & (1 << 26) != 0,
        })
    }

    /// Runs the guest described by `vmcb` until the next #VMEXIT.
    pub fn run(&mut self, vmcb: &mut Vmcb, gprs: &mut Gprs) {
        vmcb.save.efer |= EFER_SVME;
        let host_pa = (&*self.host_state as *const Page) as u64;
        // SAFETY: `vmcb` is a valid, page-aligned VMCB in identity-mapped
        // memory (its address is its physical address) describing a guest
        // whose nested tables map none of the image; `gprs` is valid for
        // the asm to read and write; the host state page was filled by
        // VMSAVE in `enable`. The guest's FS/GS/TR are in force only between
        // the two VMLOADs, where no Rust code runs.
        unsafe { svtpm_vmrun(gprs, (vmcb as *mut Vmcb) as u64, host_pa) };
    }
}

unsafe extern "C" {
    /// VMLOAD guest, load guest GPRs, VMRUN, store guest GPRs, VMSAVE
    /// guest, VMLOAD host.
    fn svtpm_vmrun(gprs: *mut Gprs, vmcb_pa: u64, host_state_pa: u64);
}

core::arch::global_asm!(
    r#"
    .pushsection .text.svtpm_vmrun, "ax", @progbits
    .globl svtpm_vmrun
svtpm_vmrun:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    push %rdi
    push %rdx
    push %rsi
    mov %rsi, %rax
    vmload %rax
    mov 8(%rdi), %rcx
    mov 16(%rdi), %rdx
    mov 24(%rdi), %rbx
    mov 40(%rdi), %rbp
    mov 48(%rdi), %rsi
    mov 64(%rdi), %r8
    mov 72(%rdi), %r9
    mov 80(%rdi), %r10
    mov 88(%rdi), %r11
    mov 96(%rdi), %r12
    mov 104(%rdi), %r13
    mov 112(%rdi), %r14
    mov 120(%rdi), %r15
    mov 56(%rdi), %rdi
    vmrun %rax
    push %rdi
    mov 24(%rsp), %rdi
    mov %rcx, 8(%rdi)
    mov %rdx, 16(%rdi)
    mov %rbx, 24(%rdi)
    mov %rbp, 40(%rdi)
    mov %rsi, 48(%rdi)
    mov %r8, 64(%rdi)
    mov %r9, 72(%rdi)
    mov %r10, 80(%rdi)
    mov %r11, 88(%rdi)
    mov %r12, 96(%rdi)
    mov %r13, 104(%rdi)
    mov %r14, 112(%rdi)
    mov %r15, 120(%rdi)
    pop %rax
    mov %rax, 56(%rdi)
    pop %rax
    vmsave %rax
    pop %rax
    vmload %rax
    pop %rdi
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret
    .popsection
"#,
    options(att_syntax)
);

/// Largest XSAVE area supported.
const XSAVE_MAX: usize = 8192;

#[repr(C, align(64))]
struct Area([u8; XSAVE_MAX]);

/// The guest's x87/SSE/AVX register state while the hypervisor runs.
pub struct GuestFpu {
    area: Box<Area>,
    xsave: bool,
}

impl core::fmt::Debug for GuestFpu {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GuestFpu")
            .field("xsave", &self.xsave)
            .finish()
    }
}

impl GuestFpu {
    /// The state after RESET (FCW 0x37F, MXCSR 0x1F80, all else initial).
    pub fn new() -> Result<Self, SvmError> {
        let xsave = cpu::has_xsave();
        if xsave {
            let need = cpuid(0xD, 0).ecx;
            if need as usize > XSAVE_MAX {
                return Err(SvmError::XsaveTooLarge(need));
            }
        }
        let mut area = Box::new(Area([0; XSAVE_MAX]));
        area.0[0..2].copy_from_slice(&0x37Fu16.to_le_bytes());
        area.0[24..28].copy_from_slice(&0x1F80u32.to_le_bytes());
        Ok(Self { area, xsave })
    }

    /// Loads the guest's state into the CPU (just before VMRUN).
    pub fn restore(&self) {
        let p = self.area.0.as_ptr();
        // SAFETY: the area is 64-byte aligned, large enough for every
        // component the CPU supports (checked in `new`), and holds either
        // the initial image or what `save` stored; the mask loads every
        // component XCR0 enables.
        unsafe {
            if self.xsave {
                core::arch::asm!("xrstor64 [{}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack, readonly));
            } else {
                core::arch::asm!("fxrstor64 [{}]", in(reg) p, options(nostack, readonly));
            }
        }
    }

    /// Saves the guest's state (just after #VMEXIT) and gives the
    /// hypervisor clean x87/SSE control words.
    pub fn save(&mut self) {
        let p = self.area.0.as_mut_ptr();
        let mxcsr: u32 = 0x1F80;
        // SAFETY: as in `restore`; XSAVE/FXSAVE only write the area. The
        // control words loaded afterwards are the architectural defaults.
        unsafe {
            if self.xsave {
                core::arch::asm!("xsave64 [{}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack));
            } else {
                core::arch::asm!("fxsave64 [{}]", in(reg) p, options(nostack));
            }
            core::arch::asm!("fninit", "ldmxcsr [{}]", in(reg) &mxcsr, options(nostack, readonly));
        }
    }
}
