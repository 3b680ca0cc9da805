//! The PVH boot ABI (Xen's `hvm_start_info`, as QEMU's `pvh.bin` option ROM
//! builds it): the command line and the memory map the image is started
//! with. Parsing reads physical memory through a caller-given function, so
//! it runs in host tests on a byte array.

use alloc::string::String;
use alloc::vec::Vec;

use super::e820::{Entry, Kind, MemoryMap};

/// `hvm_start_info.magic`.
pub const START_INFO_MAGIC: u32 = 0x336E_C578;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: the ELF note type giving the 32-bit entry.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// Longest command line accepted.
pub const MAX_CMDLINE: usize = 4096;
/// Most memory-map entries accepted.
pub const MAX_MEMMAP: u32 = 256;

/// Why the start info could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvhError {
    /// Memory at this address could not be read.
    Unreadable(u64),
    /// The magic number is wrong.
    BadMagic(u32),
    /// Version 0 has no memory map.
    NoMemoryMap,
    /// More memory-map entries than [`MAX_MEMMAP`].
    TooManyEntries(u32),
}

/// What the image learns from the start info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartInfo {
    /// The kernel command line (`-append`), lossily decoded as UTF-8.
    pub cmdline: String,
    /// The E820 memory map.
    pub memory: MemoryMap,
    /// Physical address of the ACPI RSDP (0 if none).
    pub rsdp: u64,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(w)
}

/// Parses the start info at `pa`; `read(pa, buf)` fills `buf` from physical
/// memory and says whether it could.
pub fn parse(pa: u64, read: impl Fn(u64, &mut [u8]) -> bool) -> Result<StartInfo, PvhError> {
    let mut hdr = [0u8; 56];
    if !read(pa, &mut hdr) {
        return Err(PvhError::Unreadable(pa));
    }
    let magic = u32_at(&hdr, 0);
    if magic != START_INFO_MAGIC {
        return Err(PvhError::BadMagic(magic));
    }
    if u32_at(&hdr, 4) < 1 {
        return Err(PvhError::NoMemoryMap);
    }
    let cmdline_pa = u64_at(&hdr, 24);
    let rsdp = u64_at(&hdr, 32);
    let memmap_pa = u64_at(&hdr, 40);
    let count = u32_at(&hdr, 48);
    if count > MAX_MEMMAP {
        return Err(PvhError::TooManyEntries(count));
    }

    let mut entries = Vec::new();
    for i in 0..u64::from(count) {
        let at = memmap_pa.wrapping_add(i * 24);
        let mut e = [0u8; 24];
        if !read(at, &mut e) {
            return Err(PvhError::Unreadable(at));
        }
        entries.push(Entry {
            base: u64_at(&e, 0),
            size: u64_at(&e, 8),
            kind: Kind::from_code(u32_at(&e, 16)),
        });
    }

    let mut cmdline = Vec::new();
    if cmdline_pa != 0 {
        let mut chunk = [0u8; 64];
        'read: while cmdline.len() < MAX_CMDLINE {
            let at = cmdline_pa.wrapping_add(cmdline.len() as u64);
            if !read(at, &mut chunk) {
                return Err(PvhError::Unreadable(at));
            }
            for &c in &chunk {
                if c == 0 || cmdline.len() == MAX_CMDLINE {
                    break 'read;
                }
                cmdline.push(c);
            }
        }
    }
    Ok(StartInfo {
        cmdline: String::from_utf8_lossy(&cmdline).into_owned(),
        memory: MemoryMap::new(entries),
        rsdp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake physical memory: `(base, bytes)` pieces.
    struct Phys(Vec<(u64, Vec<u8>)>);

    impl Phys {
        fn read(&self, pa: u64, buf: &mut [u8]) -> bool {
            for (base, bytes) in &self.0 {
                if pa >= *base && pa - base + buf.len() as u64 <= bytes.len() as u64 {
                    let off = (pa - base) as usize;
                    buf.copy_from_slice(&bytes[off..off + buf.len()]);
                    return true;
                }
            }
            false
        }
    }

    fn start_info(version: u32, count: u32) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&START_INFO_MAGIC.to_le_bytes());
        s.extend_from_slice(&version.to_le_bytes());
        s.extend_from_slice(&0u32.to_le_bytes()); // flags
        s.extend_from_slice(&0u32.to_le_bytes()); // nr_modules
        s.extend_from_slice(&0u64.to_le_bytes()); // modlist
        s.extend_from_slice(&0x2000u64.to_le_bytes()); // cmdline
        s.extend_from_slice(&0xF_0000u64.to_le_bytes()); // rsdp
        s.extend_from_slice(&0x3000u64.to_le_bytes()); // memmap
        s.extend_from_slice(&count.to_le_bytes());
        s.extend_from_slice(&0u32.to_le_bytes());
        s
    }

    fn memmap() -> Vec<u8> {
        let mut m = Vec::new();
        for (base, size, kind) in [(0u64, 0x9_FC00u64, 1u32), (0x10_0000, 0x1FF0_0000, 1)] {
            m.extend_from_slice(&base.to_le_bytes());
            m.extend_from_slice(&size.to_le_bytes());
            m.extend_from_slice(&kind.to_le_bytes());
            m.extend_from_slice(&0u32.to_le_bytes());
        }
        m
    }

    fn cmdline(text: &[u8]) -> Vec<u8> {
        let mut c = text.to_vec();
        c.push(0);
        c.resize(c.len() + 64, 0xAA);
        c
    }

    #[test]
    fn parses_what_qemu_builds() {
        let phys = Phys(vec![
            (0x1000, start_info(1, 2)),
            (0x2000, cmdline(b"svtpm.interface=crb console")),
            (0x3000, memmap()),
        ]);
        let info = parse(0x1000, |pa, b| phys.read(pa, b)).unwrap();
        assert_eq!(info.cmdline, "svtpm.interface=crb console");
        assert_eq!(info.rsdp, 0xF_0000);
        assert_eq!(info.memory.entries().len(), 2);
        assert_eq!(info.memory.ram_end(), 0x2000_0000);
    }

    #[test]
    fn rejects_bad_headers() {
        let mut bad = start_info(1, 2);
        bad[0] ^= 1;
        let phys = Phys(vec![(0x1000, bad), (0x3000, memmap())]);
        assert!(matches!(
            parse(0x1000, |pa, b| phys.read(pa, b)),
            Err(PvhError::BadMagic(_))
        ));
        let phys = Phys(vec![(0x1000, start_info(0, 2))]);
        assert_eq!(
            parse(0x1000, |pa, b| phys.read(pa, b)),
            Err(PvhError::NoMemoryMap)
        );
        let phys = Phys(vec![(0x1000, start_info(1, 100_000))]);
        assert_eq!(
            parse(0x1000, |pa, b| phys.read(pa, b)),
            Err(PvhError::TooManyEntries(100_000))
        );
        // The memory map points at nothing readable.
        let phys = Phys(vec![(0x1000, start_info(1, 2)), (0x2000, cmdline(b""))]);
        assert_eq!(
            parse(0x1000, |pa, b| phys.read(pa, b)),
            Err(PvhError::Unreadable(0x3000))
        );
        assert_eq!(
            parse(0x9000, |pa, b| phys.read(pa, b)),
            Err(PvhError::Unreadable(0x9000))
        );
    }

    #[test]
    fn long_cmdline_is_cut() {
        let long = vec![b'x'; MAX_CMDLINE + 500];
        let phys = Phys(vec![
            (0x1000, start_info(1, 2)),
            (0x2000, cmdline(&long)),
            (0x3000, memmap()),
        ]);
        let info = parse(0x1000, |pa, b| phys.read(pa, b)).unwrap();
        assert_eq!(info.cmdline.len(), MAX_CMDLINE);
    }
}
