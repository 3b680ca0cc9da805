//! Nested page tables: the guest-physical to host-physical map, built from
//! a list of regions (identity, translated, or unmapped) with the largest
//! pages each region's alignment allows (1 GiB only where the CPU has
//! them, 2 MiB, 4 KiB).
//!
//! Tables are boxes on the heap whose addresses are used as physical
//! addresses: right in the image, whose memory is identity-mapped. Host
//! tests walk the tables by looking those addresses up among the boxes.
//!
//! Every leaf is present, writable and user (QEMU's nested walk treats the
//! guest's accesses as user accesses: without U every fetch faults).

use alloc::boxed::Box;
use alloc::vec::Vec;

/// Entry bits.
const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const PS: u64 = 1 << 7;
const ADDR: u64 = 0x000F_FFFF_FFFF_F000;

const KIB4: u64 = 1 << 12;
const MIB2: u64 = 1 << 21;
const GIB1: u64 = 1 << 30;
const GIB512: u64 = 1 << 39;

/// How a region of guest-physical space is backed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Map {
    /// Guest-physical = host-physical.
    Identity,
    /// Host-physical = the given address + offset into the region.
    To(u64),
    /// Not mapped: every access exits with a nested page fault.
    Unmapped,
}

/// A half-open guest-physical range and its backing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First byte (4 KiB aligned).
    pub start: u64,
    /// One past the last byte (4 KiB aligned).
    pub end: u64,
    /// Backing.
    pub map: Map,
}

/// Why the tables could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NptError {
    /// Regions are not 4 KiB aligned, overlap, or are not sorted.
    BadRegions,
    /// The limit is above 512 GiB times 512 (4-level tables).
    TooLarge,
}

/// One table.
#[repr(C, align(4096))]
#[derive(Debug)]
pub struct Table(pub [u64; 512]);

/// The built tables; the first is the root (N_CR3).
#[derive(Debug)]
pub struct Npt {
    tables: Vec<Box<Table>>,
}

fn region_at(regions: &[Region], gpa: u64) -> Option<&Region> {
    let i = regions.partition_point(|r| r.end <= gpa);
    regions.get(i).filter(|r| r.start <= gpa)
}

impl Npt {
    /// Builds tables for `regions` (sorted, disjoint, 4 KiB aligned; gaps
    /// and everything from `limit` up are unmapped). `huge_1g`: the CPU
    /// supports 1 GiB pages in nested tables.
    pub fn build(regions: &[Region], limit: u64, huge_1g: bool) -> Result<Self, NptError> {
        let mut prev_end = 0;
        for r in regions {
            if r.start % KIB4 != 0 || r.end % KIB4 != 0 || r.start >= r.end || r.start < prev_end {
                return Err(NptError::BadRegions);
            }
            if let Map::To(h) = r.map {
                if h % KIB4 != 0 {
                    return Err(NptError::BadRegions);
                }
            }
            prev_end = r.end;
        }
        if limit > GIB512 * 512 {
            return Err(NptError::TooLarge);
        }
        let mut npt = Self {
            tables: alloc::vec![Box::new(Table([0; 512]))],
        };
        let ctx = Ctx {
            regions,
            limit,
            huge_1g,
        };
        npt.fill(&ctx, 0, 0, GIB512);
        Ok(npt)
    }

    /// Physical address of the root table (for N_CR3).
    pub fn root(&self) -> u64 {
        table_pa(&self.tables[0])
    }

    /// Number of tables.
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }

    /// Fills table `t`, whose entries each cover `size` bytes from `base`.
    fn fill(&mut self, ctx: &Ctx<'_>, t: usize, base: u64, size: u64) {
        for i in 0..512u64 {
            let start = base + i * size;
            if start >= ctx.limit {
                break;
            }
            let entry = match ctx.uniform(start, size) {
                Some(Map::Unmapped) => 0,
                Some(m) if ctx.leaf_ok(size) => {
                    hpa(m, ctx, start) | P | RW | US | if size > KIB4 { PS } else { 0 }
                }
                _ => {
                    let child = self.tables.len();
                    self.tables.push(Box::new(Table([0; 512])));
                    self.fill(ctx, child, start, size / 512);
                    table_pa(&self.tables[child]) | P | RW | US
                }
            };
            self.tables[t].0[i as usize] = entry;
        }
    }

    /// Translates `gpa` like the CPU's nested walk: the host-physical
    /// address, or `None` if unmapped.
    pub fn translate(&self, gpa: u64) -> Option<u64> {
        let mut table = &self.tables[0];
        let mut size = GIB512;
        loop {
            let i = ((gpa / size) % 512) as usize;
            let e = table.0[i];
            if e & P == 0 {
                return None;
            }
            if e & PS != 0 || size == KIB4 {
                return Some((e & ADDR & !(size - 1)) + gpa % size);
            }
            let pa = e & ADDR;
            table = self.tables.iter().find(|t| table_pa(t) == pa)?;
            size /= 512;
        }
    }
}

fn table_pa(t: &Table) -> u64 {
    (t as *const Table) as u64
}

fn hpa(m: Map, ctx: &Ctx<'_>, start: u64) -> u64 {
    match m {
        Map::To(h) => {
            let r = region_at(ctx.regions, start).map_or(start, |r| r.start);
            h + (start - r)
        }
        _ => start,
    }
}

struct Ctx<'a> {
    regions: &'a [Region],
    limit: u64,
    huge_1g: bool,
}

impl Ctx<'_> {
    /// The backing of `[start, start + size)` if one region (or one gap)
    /// covers it entirely and, for translated regions, the host address
    /// is aligned to `size`.
    fn uniform(&self, start: u64, size: u64) -> Option<Map> {
        let end = start + size;
        if end > self.limit {
            return if start >= self.limit {
                Some(Map::Unmapped)
            } else {
                None
            };
        }
        match region_at(self.regions, start) {
            Some(r) if end <= r.end => match r.map {
                Map::To(h) if !(h + (start - r.start)).is_multiple_of(size) => None,
                m => Some(m),
            },
            Some(_) => None,
            None => {
                // A gap: uniform if no region starts inside it.
                let next = self.regions.partition_point(|r| r.end <= start);
                match self.regions.get(next) {
                    Some(r) if r.start < end => None,
                    _ => Some(Map::Unmapped),
                }
            }
        }
    }

    fn leaf_ok(&self, size: u64) -> bool {
        size == KIB4 || size == MIB2 || (size == GIB1 && self.huge_1g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TPM: (u64, u64) = (0xFED4_0000, 0xFED4_5000);

    /// The svm platform's layout: identity except the TPM window, the
    /// image slot at 4 GiB, and a flash copy at the top of 4 GiB.
    fn platform(huge: bool) -> (Npt, u64) {
        let flash_hpa = 0x1_0120_0000;
        let regions = [
            Region {
                start: 0,
                end: TPM.0,
                map: Map::Identity,
            },
            Region {
                start: TPM.1,
                end: 0xFFE0_0000,
                map: Map::Identity,
            },
            Region {
                start: 0xFFE0_0000,
                end: 0x1_0000_0000,
                map: Map::To(flash_hpa),
            },
            Region {
                start: 0x1_4000_0000,
                end: 64 << 30,
                map: Map::Identity,
            },
        ];
        (Npt::build(&regions, 64 << 30, huge).unwrap(), flash_hpa)
    }

    #[test]
    fn layout_translates() {
        for huge in [false, true] {
            let (npt, flash) = platform(huge);
            assert_eq!(npt.translate(0), Some(0));
            assert_eq!(npt.translate(0x12_3456), Some(0x12_3456));
            assert_eq!(npt.translate(TPM.0 - 1), Some(TPM.0 - 1));
            for gpa in [TPM.0, TPM.0 + 0x18, TPM.0 + 0x4FFF] {
                assert_eq!(npt.translate(gpa), None, "{gpa:#x}");
            }
            assert_eq!(npt.translate(TPM.1), Some(TPM.1));
            assert_eq!(npt.translate(0xFEE0_0000), Some(0xFEE0_0000));
            assert_eq!(npt.translate(0xFFFF_FFF0), Some(flash + 0x1F_FFF0));
            assert_eq!(npt.translate(0xFFE0_0000), Some(flash));
            // The image slot: not a single byte.
            for gpa in (0x1_0000_0000u64..0x1_4000_0000).step_by(0x10_0000) {
                assert_eq!(npt.translate(gpa), None, "{gpa:#x}");
            }
            assert_eq!(npt.translate(0x1_3FFF_FFFF), None);
            assert_eq!(npt.translate(0x1_4000_0000), Some(0x1_4000_0000));
            assert_eq!(npt.translate((64 << 30) - 1), Some((64 << 30) - 1));
            assert_eq!(npt.translate(64 << 30), None);
            assert_eq!(npt.translate(1 << 45), None);
        }
    }

    #[test]
    fn large_pages_keep_tables_few() {
        let (npt_1g, _) = platform(true);
        let (npt_2m, _) = platform(false);
        // 1 GiB pages: root, one PDPT, the PD of 3..4 GiB and one PT for
        // the TPM window.
        assert_eq!(npt_1g.table_count(), 4);
        // 2 MiB pages: root, PDPT, one PD per mapped GiB (63), one PT.
        assert_eq!(npt_2m.table_count(), 2 + 63 + 1);
    }

    #[test]
    fn misaligned_translation_uses_small_pages() {
        let regions = [Region {
            start: 0,
            end: 4 << 20,
            map: Map::To(0x1000),
        }];
        let npt = Npt::build(&regions, 4 << 20, true).unwrap();
        assert_eq!(npt.translate(0), Some(0x1000));
        assert_eq!(npt.translate(0x20_0123), Some(0x20_1123));
        assert_eq!(npt.translate(4 << 20), None);
        assert_eq!(npt.table_count(), 1 + 1 + 1 + 2);
    }

    #[test]
    fn bad_regions() {
        let r = |start, end| Region {
            start,
            end,
            map: Map::Identity,
        };
        assert_eq!(
            Npt::build(&[r(0, 0x800)], 1 << 30, false).unwrap_err(),
            NptError::BadRegions
        );
        assert_eq!(
            Npt::build(&[r(0x2000, 0x3000), r(0x1000, 0x2000)], 1 << 30, false).unwrap_err(),
            NptError::BadRegions
        );
        assert_eq!(
            Npt::build(&[r(0x1000, 0x1000)], 1 << 30, false).unwrap_err(),
            NptError::BadRegions
        );
        assert_eq!(
            Npt::build(&[], u64::MAX, false).unwrap_err(),
            NptError::TooLarge
        );
        let unaligned = Region {
            start: 0,
            end: 0x1000,
            map: Map::To(0x10),
        };
        assert_eq!(
            Npt::build(&[unaligned], 1 << 30, false).unwrap_err(),
            NptError::BadRegions
        );
    }

    #[test]
    fn entries_are_user_writable() {
        let (npt, _) = platform(false);
        let root = &npt.tables[0].0;
        assert_eq!(root[0] & (P | RW | US), P | RW | US);
        assert_eq!(root[1], 0);
    }
}
