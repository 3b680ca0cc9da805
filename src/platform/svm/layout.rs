//! The guest-physical address space the hypervisor builds:
//!
//! - everything is identity-mapped (RAM and devices pass through, so
//!   device DMA addresses stay valid) up to a limit, except
//! - the TPM window 0xFED40000..0xFED45000: unmapped, so every access exits
//!   and is emulated;
//! - the slot holding svtpm's memory (the pc-dimm at 4 GiB, left out of the
//!   E820 map): unmapped, so the guest cannot read or write a byte of it;
//! - the top of 4 GiB, where the firmware's flash lives: mapped to the RAM
//!   copy of the guest firmware.
//!
//! It also answers which guest-physical ranges the hypervisor may read and
//! write on the guest's behalf (its RAM and the firmware copy, never
//! devices) and which DMA targets are refused.

use alloc::vec::Vec;
use core::ops::Range;

use super::npt::{Map, Region};
use crate::arch::e820::{overlaps, MemoryMap};
use crate::mmio::MmioWindow;

const GIB: u64 = 1 << 30;
const FOUR_GIB: u64 = 4 * GIB;

/// Why the layout is impossible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The firmware's E820 map offers RAM inside svtpm's slot: the guest
    /// would be told to use svtpm's memory.
    RamInHiddenSlot,
    /// The firmware copy is empty, not a multiple of 4 KiB, or larger than
    /// 16 MiB.
    BadFirmwareSize(u64),
    /// The hidden slot is not 4 KiB aligned or crosses the mapping limit.
    BadHiddenSlot,
}

/// The guest's physical address space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    ram: MemoryMap,
    hidden: Range<u64>,
    flash_gpa: Range<u64>,
    flash_hpa: u64,
    tpm: MmioWindow,
    limit: u64,
}

impl Layout {
    /// The layout for guest RAM `ram`, svtpm's slot `hidden` (host-physical
    /// = guest-physical), firmware of `flash_size` bytes whose copy is at
    /// host address `flash_hpa`, mapped up to `limit`.
    pub fn new(
        ram: MemoryMap,
        hidden: Range<u64>,
        flash_hpa: u64,
        flash_size: u64,
        limit: u64,
    ) -> Result<Self, LayoutError> {
        if flash_size == 0 || !flash_size.is_multiple_of(0x1000) || flash_size > 16 << 20 {
            return Err(LayoutError::BadFirmwareSize(flash_size));
        }
        if !hidden.start.is_multiple_of(0x1000)
            || !hidden.end.is_multiple_of(0x1000)
            || hidden.start < FOUR_GIB
            || hidden.end > limit
        {
            return Err(LayoutError::BadHiddenSlot);
        }
        if ram.has_ram_in(&hidden) {
            return Err(LayoutError::RamInHiddenSlot);
        }
        Ok(Self {
            ram,
            hidden,
            flash_gpa: FOUR_GIB - flash_size..FOUR_GIB,
            flash_hpa,
            tpm: MmioWindow::TPM,
            limit,
        })
    }

    /// svtpm's slot.
    pub fn hidden(&self) -> Range<u64> {
        self.hidden.clone()
    }

    /// Where the firmware copy appears to the guest.
    pub fn flash(&self) -> Range<u64> {
        self.flash_gpa.clone()
    }

    /// The NPT regions, sorted.
    pub fn regions(&self) -> Vec<Region> {
        let tpm = self.tpm.base..self.tpm.base + self.tpm.size;
        let id = |start, end| Region {
            start,
            end,
            map: Map::Identity,
        };
        let mut v = alloc::vec![
            id(0, tpm.start),
            id(tpm.end, self.flash_gpa.start),
            Region {
                start: self.flash_gpa.start,
                end: self.flash_gpa.end,
                map: Map::To(self.flash_hpa),
            },
        ];
        if self.hidden.start > FOUR_GIB {
            v.push(id(FOUR_GIB, self.hidden.start));
        }
        if self.hidden.end < self.limit {
            v.push(id(self.hidden.end, self.limit));
        }
        v
    }

    /// The mapping limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The host address of guest memory `[gpa, gpa + len)` if the
    /// hypervisor may access it for the guest: all inside guest RAM, or
    /// all inside the firmware copy.
    pub fn host_address(&self, gpa: u64, len: u64) -> Option<u64> {
        let end = gpa.checked_add(len)?;
        if self.flash_gpa.start <= gpa && end <= self.flash_gpa.end {
            return Some(self.flash_hpa + (gpa - self.flash_gpa.start));
        }
        if overlaps(&(gpa..end), &self.hidden) || !self.ram.is_ram(gpa, len) {
            return None;
        }
        Some(gpa)
    }

    /// Whether a device may transfer `[addr, addr + len)` (host-physical:
    /// devices see the identity map): never into svtpm's slot.
    pub fn dma_allowed(&self, addr: u64, len: u64) -> bool {
        match addr.checked_add(len) {
            Some(end) => !overlaps(&(addr..end), &self.hidden),
            None => false,
        }
    }

    /// Whether `gpa` is in the TPM window.
    pub fn in_tpm_window(&self, gpa: u64) -> bool {
        self.tpm.contains(gpa)
    }

    /// Whether `gpa` is in svtpm's slot.
    pub fn in_hidden(&self, gpa: u64) -> bool {
        self.hidden.contains(&gpa)
    }
}

#[cfg(test)]
mod tests {
    use super::super::npt::Npt;
    use super::*;
    use crate::arch::e820::{Entry, Kind};

    const HIDDEN: Range<u64> = 0x1_0000_0000..0x1_4000_0000;
    const FLASH_HPA: u64 = 0x1_0120_0000;

    fn ram() -> MemoryMap {
        MemoryMap::new([
            Entry {
                base: 0,
                size: 0x9_FC00,
                kind: Kind::Ram,
            },
            Entry {
                base: 0x10_0000,
                size: 0x1FF0_0000,
                kind: Kind::Ram,
            },
            Entry {
                base: 0xFEFF_C000,
                size: 0x4000,
                kind: Kind::Reserved,
            },
        ])
    }

    fn layout() -> Layout {
        Layout::new(ram(), HIDDEN, FLASH_HPA, 2 << 20, 64 * GIB).unwrap()
    }

    #[test]
    fn npt_from_layout_hides_svtpm_and_the_tpm() {
        let l = layout();
        let npt = Npt::build(&l.regions(), l.limit(), false).unwrap();
        // Not one page of svtpm's slot is reachable.
        let mut gpa = HIDDEN.start;
        while gpa < HIDDEN.end {
            assert_eq!(npt.translate(gpa), None, "{gpa:#x}");
            gpa += 0x1000;
        }
        // Nor is the firmware copy's host address: the guest sees the copy
        // only at the top of 4 GiB.
        assert_eq!(npt.translate(FLASH_HPA), None);
        assert_eq!(npt.translate(0xFFFF_FFF0), Some(FLASH_HPA + 0x1F_FFF0));
        assert_eq!(npt.translate(0xFED4_0000), None);
        assert_eq!(npt.translate(0xFED4_4FFF), None);
        assert_eq!(npt.translate(0xFED4_5000), Some(0xFED4_5000));
        assert_eq!(npt.translate(0x1000), Some(0x1000));
        assert_eq!(npt.translate(0xFEBF_F000), Some(0xFEBF_F000));
        assert_eq!(npt.translate(HIDDEN.end), Some(HIDDEN.end));
        assert_eq!(npt.translate(32 * GIB), Some(32 * GIB));
    }

    #[test]
    fn host_access_only_to_guest_memory() {
        let l = layout();
        assert_eq!(l.host_address(0x7000, 16), Some(0x7000));
        assert_eq!(l.host_address(0xFFFF_FFF0, 16), Some(FLASH_HPA + 0x1F_FFF0));
        assert_eq!(l.host_address(0xFFFF_FFF8, 16), None, "runs past 4 GiB");
        assert_eq!(l.host_address(0xA_0000, 1), None, "VGA hole");
        assert_eq!(l.host_address(0xFED4_0000, 4), None, "TPM");
        assert_eq!(l.host_address(0xFEC0_0000, 4), None, "IOAPIC");
        assert_eq!(l.host_address(HIDDEN.start, 1), None);
        assert_eq!(l.host_address(FLASH_HPA, 1), None);
        assert_eq!(l.host_address(u64::MAX, 2), None);
    }

    #[test]
    fn dma_policy() {
        let l = layout();
        assert!(l.dma_allowed(0x10_0000, 0x1000));
        assert!(!l.dma_allowed(HIDDEN.start - 0x10, 0x20));
        assert!(!l.dma_allowed(FLASH_HPA, 1));
        assert!(!l.dma_allowed(HIDDEN.end - 1, 1));
        assert!(l.dma_allowed(HIDDEN.end, 1));
        assert!(!l.dma_allowed(u64::MAX - 4, 16));
    }

    #[test]
    fn refuses_impossible_layouts() {
        let mut big = ram().entries().to_vec();
        big.push(Entry {
            base: 0x1_0000_0000,
            size: 0x4000_0000,
            kind: Kind::Ram,
        });
        assert_eq!(
            Layout::new(MemoryMap::new(big), HIDDEN, FLASH_HPA, 2 << 20, 64 * GIB),
            Err(LayoutError::RamInHiddenSlot)
        );
        assert_eq!(
            Layout::new(ram(), HIDDEN, FLASH_HPA, 0x1234, 64 * GIB),
            Err(LayoutError::BadFirmwareSize(0x1234))
        );
        assert_eq!(
            Layout::new(ram(), 0x1000..0x2000, FLASH_HPA, 2 << 20, 64 * GIB),
            Err(LayoutError::BadHiddenSlot)
        );
    }
}
