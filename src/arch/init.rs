//! The first Rust code: brings the CPU and the environment up in order,
//! then hands over to the image's `svtpm_image_main`.
// Raw physical reads of the PVH start info, the FS block, the extern
// image entry point.
#![allow(unsafe_code)]

use core::ops::Range;

use libtpms_sys::shim;

use super::{clock, cpu, entropy, gdt, heap, idt, paging, power, pvh, serial};

unsafe extern "C" {
    static __image_start: u8;
    static __private_end: u8;
    static __guest_flash: u8;
    static __image_end: u8;
}

/// What the image is started with.
#[derive(Debug)]
pub struct Boot {
    /// The PVH start info: command line and memory map.
    pub info: pvh::StartInfo,
    /// TSC rate in Hz.
    pub tsc_hz: u64,
}

/// The image's memory: `(private, guest_flash)`; the first is svtpm's own
/// memory, the second the 2 MiB-aligned area reserved for the guest's
/// firmware copy.
pub fn image_range() -> (Range<u64>, Range<u64>) {
    let a = |s: *const u8| s as u64;
    (
        a(&raw const __image_start)..a(&raw const __private_end),
        a(&raw const __guest_flash)..a(&raw const __image_end),
    )
}

unsafe extern "Rust" {
    /// The image's main function, defined by the `svtpm` binary.
    fn svtpm_image_main(boot: Boot) -> !;
}

/// The block FS points at: the stack protector of the C archives reads its
/// canary at `%fs:0x28` (the glibc TCB layout they were compiled for).
#[repr(C, align(64))]
struct Tcb([u64; 8]);
static mut TCB: Tcb = Tcb([0; 8]);

/// Reads low physical memory (below 4 GiB) through the identity map.
fn read_low(pa: u64, buf: &mut [u8]) -> bool {
    let Some(end) = pa.checked_add(buf.len() as u64) else {
        return false;
    };
    if pa == 0 || end > 1 << 32 {
        return false;
    }
    // SAFETY: the range is identity-mapped RAM or ROM written by QEMU's PVH
    // loader; it is copied out, never referenced.
    unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
    true
}

fn refuse(why: core::fmt::Arguments<'_>) -> ! {
    serial::write_fmt_force(format_args!("svtpm: refusing to start: {why}\n"));
    power::exit(false)
}

/// Entered from the boot stub in 64-bit mode on the boot stack, with the
/// PVH start info's physical address.
pub(super) extern "C" fn start(start_info: u64) -> ! {
    serial::init();
    serial::init_logger(log::LevelFilter::Info);
    gdt::init();
    idt::init();
    cpu::enable_features();
    let (private, flash) = image_range();
    if let Err(e) = paging::init(flash.end) {
        refuse(format_args!("{e:?}"));
    }
    heap::init();

    let Some(source) = entropy::source() else {
        refuse(format_args!(
            "the CPU has neither RDSEED nor RDRAND (use -cpu max or +rdrand)"
        ));
    };
    let mut canary = [0u8; 8];
    if !entropy::fill(&mut canary) {
        refuse(format_args!("{source:?} returns no entropy"));
    }
    // SAFETY: TCB is only the FS block; nothing has read %fs:0x28 yet
    // (only the C archives do), so the canary can still be set.
    unsafe {
        (&raw mut TCB)
            .cast::<u64>()
            .add(5)
            .write(u64::from_le_bytes(canary));
        cpu::set_fs_base((&raw const TCB) as u64);
    }

    let info = match pvh::parse(start_info, read_low) {
        Ok(info) => info,
        Err(e) => refuse(format_args!("bad PVH start info: {e:?}")),
    };
    if let Some(level) = info
        .cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("svtpm.log="))
    {
        let level = match level {
            "error" => log::LevelFilter::Error,
            "warn" => log::LevelFilter::Warn,
            "debug" => log::LevelFilter::Debug,
            "trace" => log::LevelFilter::Trace,
            _ => log::LevelFilter::Info,
        };
        log::set_max_level(level);
    }
    let tsc_hz = match clock::init() {
        Ok(hz) => hz,
        Err(e) => refuse(format_args!(
            "TSC calibration against the PIT failed: {e:?}"
        )),
    };
    shim::set_entropy_source(Some(entropy::fill));
    shim::set_time_source(Some(clock::time_source));
    log::info!(
        "image {:#x}..{:#x}, guest firmware area {:#x}..{:#x}, entropy {source:?}, TSC {} MHz",
        private.start,
        private.end,
        flash.start,
        flash.end,
        tsc_hz / 1_000_000
    );
    // SAFETY: the binary defines this function with this signature.
    unsafe { svtpm_image_main(Boot { info, tsc_hz }) }
}
