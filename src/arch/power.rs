//! Stopping: QEMU's isa-debug-exit device (`-device
//! isa-debug-exit,iobase=0xf4,iosize=0x04`) turns a write of `v` into
//! QEMU's exit status `(v << 1) | 1`; without it the CPU halts.
// Port I/O and HLT.
#![allow(unsafe_code)]

use x86_64::instructions::port::PortWriteOnly;

/// isa-debug-exit I/O port.
pub const DEBUG_EXIT_PORT: u16 = 0xF4;
/// Value written on success: QEMU exits with status 33.
pub const EXIT_SUCCESS: u8 = 0x10;
/// Value written on failure: QEMU exits with status 35.
pub const EXIT_FAILURE: u8 = 0x11;
/// QEMU's exit status for [`EXIT_SUCCESS`].
pub const QEMU_STATUS_SUCCESS: i32 = ((EXIT_SUCCESS as i32) << 1) | 1;

/// Ends the run: exits QEMU with the success or failure status, else halts.
pub fn exit(ok: bool) -> ! {
    let v = if ok { EXIT_SUCCESS } else { EXIT_FAILURE };
    // SAFETY: the isa-debug-exit port; elsewhere an unused port.
    unsafe { PortWriteOnly::<u8>::new(DEBUG_EXIT_PORT).write(v) };
    halt()
}

/// Stops the CPU for good.
pub fn halt() -> ! {
    loop {
        // SAFETY: stops the CPU with interrupts masked.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
