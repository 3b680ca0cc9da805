//! The firmware memory map (E820 types, as QEMU publishes it in
//! `etc/e820` and the PVH start info copies it) and the questions the
//! image asks of it: which ranges are RAM the guest owns, and whether a
//! range is free of RAM.

use alloc::vec::Vec;
use core::ops::Range;

/// E820 range types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Usable RAM (type 1).
    Ram,
    /// Reserved (type 2).
    Reserved,
    /// ACPI reclaimable (type 3).
    Acpi,
    /// ACPI NVS (type 4).
    Nvs,
    /// Unusable (type 5).
    Unusable,
    /// Any other type code.
    Other(u32),
}

impl Kind {
    /// The kind for an E820 type code.
    pub const fn from_code(code: u32) -> Self {
        match code {
            1 => Self::Ram,
            2 => Self::Reserved,
            3 => Self::Acpi,
            4 => Self::Nvs,
            5 => Self::Unusable,
            other => Self::Other(other),
        }
    }
}

/// One memory-map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
    /// Range type.
    pub kind: Kind,
}

impl Entry {
    /// The byte range, saturated at the top of the address space.
    pub fn range(&self) -> Range<u64> {
        self.base..self.base.saturating_add(self.size)
    }
}

/// The memory map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryMap {
    entries: Vec<Entry>,
}

/// Whether two half-open ranges share a byte.
pub fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

impl MemoryMap {
    /// A map of `entries` (any order; empty entries are dropped).
    pub fn new(entries: impl IntoIterator<Item = Entry>) -> Self {
        let mut entries: Vec<Entry> = entries.into_iter().filter(|e| e.size != 0).collect();
        entries.sort_by_key(|e| e.base);
        Self { entries }
    }

    /// All entries, by base address.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The RAM ranges, by base address.
    pub fn ram(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.entries
            .iter()
            .filter(|e| e.kind == Kind::Ram)
            .map(Entry::range)
    }

    /// Whether any RAM lies inside `range`.
    pub fn has_ram_in(&self, range: &Range<u64>) -> bool {
        self.ram().any(|r| overlaps(&r, range))
    }

    /// Whether `[base, base + len)` lies entirely inside one RAM entry or
    /// in adjacent RAM entries (`len` 0 is never RAM).
    pub fn is_ram(&self, base: u64, len: u64) -> bool {
        let Some(end) = base.checked_add(len) else {
            return false;
        };
        if len == 0 {
            return false;
        }
        let mut at = base;
        for r in self.ram() {
            if r.start <= at && at < r.end {
                at = r.end;
                if at >= end {
                    return true;
                }
            }
        }
        false
    }

    /// The end of the highest RAM range (0 if there is none).
    pub fn ram_end(&self) -> u64 {
        self.ram().map(|r| r.end).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu_pc_512m() -> MemoryMap {
        // What QEMU 7.2's pc machine with -m 512M publishes.
        MemoryMap::new([
            Entry {
                base: 0x10_0000,
                size: 0x1FF0_0000,
                kind: Kind::Ram,
            },
            Entry {
                base: 0,
                size: 0x9_FC00,
                kind: Kind::Ram,
            },
            Entry {
                base: 0xFEFF_C000,
                size: 0x4000,
                kind: Kind::Reserved,
            },
            Entry {
                base: 0x5000,
                size: 0,
                kind: Kind::Ram,
            },
        ])
    }

    #[test]
    fn sorted_and_empty_dropped() {
        let map = qemu_pc_512m();
        assert_eq!(map.entries().len(), 3);
        assert_eq!(map.entries()[0].base, 0);
        assert_eq!(map.ram_end(), 0x2000_0000);
    }

    #[test]
    fn ram_queries() {
        let map = qemu_pc_512m();
        assert!(map.is_ram(0x1000, 0x1000));
        assert!(map.is_ram(0x10_0000, 0x1FF0_0000));
        assert!(!map.is_ram(0x9_F000, 0x1000)); // crosses into the EBDA hole
        assert!(!map.is_ram(0xA_0000, 1));
        assert!(!map.is_ram(0x1FFF_FFFF, 2));
        assert!(!map.is_ram(0x1000, 0));
        assert!(!map.is_ram(u64::MAX, 2));
        assert!(map.has_ram_in(&(0x1FFF_F000..0x3000_0000)));
        assert!(!map.has_ram_in(&(0x1_0000_0000..0x1_4000_0000)));
        assert!(!map.has_ram_in(&(0xA_0000..0x10_0000)));
    }

    #[test]
    fn adjacent_ram_entries_join() {
        let map = MemoryMap::new([
            Entry {
                base: 0,
                size: 0x1000,
                kind: Kind::Ram,
            },
            Entry {
                base: 0x1000,
                size: 0x1000,
                kind: Kind::Ram,
            },
        ]);
        assert!(map.is_ram(0x800, 0x1000));
        assert!(!map.is_ram(0x800, 0x2000));
    }

    #[test]
    fn kinds() {
        assert_eq!(Kind::from_code(1), Kind::Ram);
        assert_eq!(Kind::from_code(4), Kind::Nvs);
        assert_eq!(Kind::from_code(20), Kind::Other(20));
    }
}
