//! Decoding of a guest access to the CRB window: which locality page, which
//! offset inside it, and whether the access is one this interface serves.
//!
//! Served: widths of 1, 2, 4 or 8 bytes, naturally aligned (offset a
//! multiple of the width), inside an implemented locality page. Such an
//! access never crosses a page or the control-area/data-buffer boundary
//! (0x80 is 8-aligned). Everything else gets the answer `TpmMmio` defines
//! for unsupported accesses: reads return all-ones, writes are dropped.
//! Linux and edk2 only issue naturally aligned accesses.

use super::regs::PAGE_SIZE;

/// A served access, split into page and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The locality whose page is addressed.
    pub locality: u8,
    /// Offset inside the page (0..0x1000).
    pub offset: u16,
    /// Width in bytes (1, 2, 4 or 8).
    pub size: u8,
}

/// Decodes an access at `offset` (relative to the window base) of `size`
/// bytes, with `pages` locality pages implemented.
pub fn decode(offset: u64, size: u8, pages: u8) -> Option<Access> {
    if !matches!(size, 1 | 2 | 4 | 8) || !offset.is_multiple_of(u64::from(size)) {
        return None;
    }
    let end = offset.checked_add(u64::from(size))?;
    if end > u64::from(pages) * PAGE_SIZE {
        return None;
    }
    Some(Access {
        locality: (offset / PAGE_SIZE) as u8,
        offset: (offset % PAGE_SIZE) as u16,
        size,
    })
}

/// All-ones of `size` bytes: the read value for an unsupported access.
pub fn all_ones(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * u32::from(size))) - 1
    }
}

/// One 32-bit register touched by a write: the register offset, the written
/// bits already shifted into register position, and which bits were written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegWrite {
    /// 4-aligned register offset.
    pub reg: u16,
    /// Written bits, in register position (zero outside `mask`).
    pub bits: u32,
    /// Bits covered by the write.
    pub mask: u32,
}

/// Splits a served write inside the control area into the 32-bit registers
/// it touches (one, or two for an 8-byte write), in address order.
pub fn split_register_write(access: Access, value: u64) -> impl Iterator<Item = RegWrite> {
    let first = access.offset & !3;
    let last = (access.offset + u16::from(access.size) - 1) & !3;
    (0..=(last - first) / 4).map(move |i| {
        let reg = first + 4 * i;
        let mut bits = 0u32;
        let mut mask = 0u32;
        for byte in 0..u16::from(access.size) {
            let addr = access.offset + byte;
            if addr & !3 != reg {
                continue;
            }
            let shift = 8 * u32::from(addr & 3);
            let b = ((value >> (8 * byte)) & 0xFF) as u32;
            bits |= b << shift;
            mask |= 0xFF << shift;
        }
        RegWrite { reg, bits, mask }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn decode_accepts_aligned_widths_in_implemented_pages() {
        assert_eq!(
            decode(0x1044, 4, 5),
            Some(Access {
                locality: 1,
                offset: 0x44,
                size: 4
            })
        );
        assert_eq!(
            decode(0x4FF8, 8, 5),
            Some(Access {
                locality: 4,
                offset: 0xFF8,
                size: 8
            })
        );
        assert!(decode(0x0FFF, 1, 1).is_some());
    }

    #[test]
    fn decode_rejects_bad_width_alignment_and_range() {
        for size in [0u8, 3, 5, 6, 7, 9, 16, 255] {
            assert_eq!(decode(0x40, size, 5), None, "size {size}");
        }
        assert_eq!(decode(0x42, 4, 5), None);
        assert_eq!(decode(0x41, 2, 5), None);
        assert_eq!(decode(0x5C, 8, 5), None);
        assert_eq!(decode(0x5000, 1, 5), None);
        assert_eq!(
            decode(0x1000, 4, 1),
            None,
            "page of an unimplemented locality"
        );
        assert_eq!(decode(u64::MAX - 7, 8, 5), None);
        assert_eq!(decode(u64::MAX, 1, 5), None);
    }

    #[test]
    fn all_ones_by_width() {
        assert_eq!(all_ones(1), 0xFF);
        assert_eq!(all_ones(2), 0xFFFF);
        assert_eq!(all_ones(4), 0xFFFF_FFFF);
        assert_eq!(all_ones(8), u64::MAX);
        assert_eq!(all_ones(3), 0xFF_FFFF);
        assert_eq!(all_ones(0), 0);
        assert_eq!(all_ones(200), u64::MAX);
    }

    #[test]
    fn split_places_bytes_in_register_position() {
        let byte = Access {
            locality: 0,
            offset: 0x4D,
            size: 1,
        };
        let w: Vec<_> = split_register_write(byte, 0xAB).collect();
        assert_eq!(
            w,
            [RegWrite {
                reg: 0x4C,
                bits: 0xAB00,
                mask: 0xFF00
            }]
        );

        let half = Access {
            locality: 0,
            offset: 0x36,
            size: 2,
        };
        let w: Vec<_> = split_register_write(half, 0x1234).collect();
        assert_eq!(
            w,
            [RegWrite {
                reg: 0x34,
                bits: 0x1234_0000,
                mask: 0xFFFF_0000
            }]
        );

        let quad = Access {
            locality: 0,
            offset: 0x68,
            size: 8,
        };
        let w: Vec<_> = split_register_write(quad, 0x1122_3344_5566_7788).collect();
        assert_eq!(
            w,
            [
                RegWrite {
                    reg: 0x68,
                    bits: 0x5566_7788,
                    mask: u32::MAX
                },
                RegWrite {
                    reg: 0x6C,
                    bits: 0x1122_3344,
                    mask: u32::MAX
                },
            ]
        );
    }
}
