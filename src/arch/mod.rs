//! Bring-up of the freestanding image on an x86-64 machine (QEMU's pc
//! machine, PVH boot): from the 32-bit entry to a 64-bit Rust environment
//! with a GDT/TSS, an IDT whose every vector runs on an IST stack, the
//! image's own identity page tables, SSE/XSAVE, the FS block holding the
//! stack-protector canary, a heap, the COM1 console and logger, the CPU
//! entropy source and a calibrated TSC clock.
//!
//! Pure formats and arithmetic are host-tested modules: [`e820`], [`pvh`],
//! [`fwcfg`], [`tsc`]. The rest touches hardware and exists only in the
//! image (`target_os = "none"`).

pub mod e820;
pub mod fwcfg;
pub mod pvh;
pub mod tsc;

#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
mod boot;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub mod clock;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub mod cpu;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub mod entropy;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub mod fwcfg_io;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub mod gdt;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub mod heap;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub mod idt;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
mod init;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub mod paging;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub mod power;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub mod serial;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
use init::start;
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
pub use init::{image_range, Boot};

/// Size of the boot stack (libtpms needs about 11 KiB; ample room left).
pub const STACK_SIZE: usize = 256 << 10;

/// Prints to COM1 (image only).
#[cfg(all(target_os = "none", not(svtpm_linux_user)))]
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::arch::serial::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}
