//! CPU identification, feature enabling (SSE, XSAVE, NX) and the MSR and
//! FS-base accesses the image needs.
// Control registers, XCR0 and MSRs.
#![allow(unsafe_code)]

use core::arch::x86_64::{__cpuid_count, CpuidResult};

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, Msr};
use x86_64::registers::xcontrol::{XCr0, XCr0Flags};

/// `CPUID` leaf `leaf`, subleaf `sub`.
pub fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
    __cpuid_count(leaf, sub)
}

/// Whether the CPU has XSAVE (CPUID.1:ECX bit 26).
pub fn has_xsave() -> bool {
    cpuid(1, 0).ecx & (1 << 26) != 0
}

/// The CPU's physical address width (CPUID 0x80000008 EAX[7:0]).
pub fn phys_addr_bits() -> u8 {
    if cpuid(0x8000_0000, 0).eax >= 0x8000_0008 {
        (cpuid(0x8000_0008, 0).eax & 0xFF) as u8
    } else {
        36
    }
}

/// Enables SSE for libcrypto (CR0.MP set, CR0.EM clear, CR0.NE set;
/// CR4.OSFXSR and CR4.OSXMMEXCPT) and, where the CPU has it, XSAVE with
/// XCR0 = x87 | SSE (so the image never uses AVX state it does not save),
/// and EFER.NXE where the CPU has NX.
pub fn enable_features() {
    // SAFETY: only FPU/SSE enable bits change; no code has used the FPU.
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR);
            f.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
        });
        Cr4::update(|f| f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
    }
    if has_xsave() {
        // SAFETY: CR4.OSXSAVE is supported (CPUID), and XCR0 = x87|SSE is
        // always a valid value once it is.
        unsafe {
            Cr4::update(|f| f.insert(Cr4Flags::OSXSAVE));
            XCr0::write(XCr0Flags::X87 | XCr0Flags::SSE);
        }
    }
    if cpuid(0x8000_0001, 0).edx & (1 << 20) != 0 {
        // SAFETY: NX is supported; setting NXE only makes bit 63 of page
        // table entries meaningful, and the boot tables leave it clear.
        unsafe { Efer::update(|f| f.insert(EferFlags::NO_EXECUTE_ENABLE)) };
    }
}

/// Whether EFER.NXE is set.
pub fn nx_enabled() -> bool {
    Efer::read().contains(EferFlags::NO_EXECUTE_ENABLE)
}

/// Reads MSR `msr`.
///
/// # Safety
/// `msr` must exist on this CPU and reading it must have no side effect
/// the caller did not intend.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    // SAFETY: per the contract.
    unsafe { Msr::new(msr).read() }
}

/// Writes `value` to MSR `msr`.
///
/// # Safety
/// `msr` must exist and `value` must be valid for it, and the write must
/// not break memory safety (e.g. by changing paging or segment bases in use).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: per the contract.
    unsafe { Msr::new(msr).write(value) }
}

const IA32_FS_BASE: u32 = 0xC000_0100;

/// Points FS at `base`.
///
/// # Safety
/// Code reading `%fs:` (the stack protector reads `%fs:0x28`) must find
/// what it expects at `base` from now on.
pub unsafe fn set_fs_base(base: u64) {
    // SAFETY: per the contract; IA32_FS_BASE exists on every x86-64 CPU.
    unsafe { wrmsr(IA32_FS_BASE, base) }
}
