//! Chipset state the pre-boot firmware leaves behind that the guest
//! firmware must not inherit. QEMU boots the image through SeaBIOS and its
//! PVH option ROM, which enable the PIIX4 power-management I/O block at
//! 0x600; OVMF then keeps that block (it programs its own base, 0xB000,
//! only when the block is disabled) while its reset library still writes
//! its shutdown request to 0xB004, so `ResetSystem(Shutdown)` hangs. The
//! block is disabled again before the guest starts, as after a reset.
// PCI configuration space through ports 0xCF8/0xCFC.
#![allow(unsafe_code)]

use x86_64::instructions::port::Port;

/// The type-1 configuration address of bus 0, `device`, `function`, `reg`.
pub const fn config_address(device: u8, function: u8, reg: u8) -> u32 {
    0x8000_0000 | ((device as u32) << 11) | ((function as u32) << 8) | (reg as u32 & 0xFC)
}

fn read32(device: u8, function: u8, reg: u8) -> u32 {
    // SAFETY: PCI configuration mechanism #1: selecting an address and
    // reading the data port has no side effect on the devices read here.
    unsafe {
        Port::<u32>::new(0xCF8).write(config_address(device, function, reg));
        Port::<u32>::new(0xCFC).read()
    }
}

fn write8(device: u8, function: u8, reg: u8, value: u8) {
    // SAFETY: as for `read32`; the callers write only the PM enable bit.
    unsafe {
        Port::<u32>::new(0xCF8).write(config_address(device, function, reg));
        Port::<u8>::new(0xCFC + u16::from(reg & 3)).write(value);
    }
}

fn read8(device: u8, function: u8, reg: u8) -> u8 {
    (read32(device, function, reg) >> (u32::from(reg & 3) * 8)) as u8
}

/// PIIX4 PM (00:01.3, 8086:7113): PMREGMISC (0x80) bit 0 enables the PM
/// I/O block.
const PIIX4_PM: (u8, u8) = (1, 3);
const PIIX4_PM_ID: u32 = 0x7113_8086;
const PIIX4_PMREGMISC: u8 = 0x80;
/// ICH9 LPC (00:1F.0, 8086:2918): ACPI_CNTL (0x44) bit 7 enables it.
const ICH9_LPC: (u8, u8) = (0x1F, 0);
const ICH9_LPC_ID: u32 = 0x2918_8086;
const ICH9_ACPI_CNTL: u8 = 0x44;

/// Disables the ACPI power-management I/O block (PIIX4 or ICH9), so the
/// guest firmware programs it as after a reset. Returns whether one was
/// found enabled.
pub fn reset_pm_block() -> bool {
    let (dev, func) = PIIX4_PM;
    if read32(dev, func, 0) == PIIX4_PM_ID {
        let v = read8(dev, func, PIIX4_PMREGMISC);
        write8(dev, func, PIIX4_PMREGMISC, v & !1);
        return v & 1 != 0;
    }
    let (dev, func) = ICH9_LPC;
    if read32(dev, func, 0) == ICH9_LPC_ID {
        let v = read8(dev, func, ICH9_ACPI_CNTL);
        write8(dev, func, ICH9_ACPI_CNTL, v & !0x80);
        return v & 0x80 != 0;
    }
    false
}
