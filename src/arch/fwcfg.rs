//! QEMU's firmware configuration device (fw_cfg): the formats the image
//! reads and polices, with no hardware access (that is in `fwcfg_io`).
//!
//! - the file directory (selector 0x19): big-endian count, then 64-byte
//!   entries `{be32 size, be16 select, be16 reserved, name[56]}`;
//! - the DMA access descriptor: `{be32 control, be32 length, be64
//!   address}`, whose physical address the guest writes to ports
//!   0x514 (high half) and 0x518 (low half, which starts the transfer).

use alloc::string::String;
use alloc::vec::Vec;

/// Selector register (16-bit port).
pub const PORT_SELECTOR: u16 = 0x510;
/// Data register (8-bit port).
pub const PORT_DATA: u16 = 0x511;
/// DMA address register: high 32 bits at 0x514, low at 0x518 (big endian).
pub const PORT_DMA: u16 = 0x514;
/// Number of DMA address ports (0x514..0x51C).
pub const PORT_DMA_LEN: u16 = 8;

/// Selector of the "QEMU" signature.
pub const SEL_SIGNATURE: u16 = 0x00;
/// Selector of the feature bitmap.
pub const SEL_ID: u16 = 0x01;
/// Selector of the number of boot CPUs (16-bit, little endian).
pub const SEL_NB_CPUS: u16 = 0x05;
/// Selector of the maximum number of CPUs (16-bit, little endian).
pub const SEL_MAX_CPUS: u16 = 0x0F;
/// Selector of the file directory.
pub const SEL_FILE_DIR: u16 = 0x19;
/// Feature bit: the DMA interface exists.
pub const ID_DMA: u32 = 1 << 1;

/// DMA control: the device reports an error.
pub const DMA_ERROR: u32 = 0x01;
/// DMA control: read the selected item into memory.
pub const DMA_READ: u32 = 0x02;
/// DMA control: skip bytes of the selected item.
pub const DMA_SKIP: u32 = 0x04;
/// DMA control: select the item in the high 16 bits first.
pub const DMA_SELECT: u32 = 0x08;
/// DMA control: write memory into the selected item.
pub const DMA_WRITE: u32 = 0x10;

/// Size of a directory entry.
pub const DIR_ENTRY_LEN: usize = 64;
/// Most directory entries accepted.
pub const MAX_FILES: u32 = 4096;

/// Why fw_cfg data could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwCfgError {
    /// No fw_cfg device (wrong signature).
    Absent,
    /// The directory is shorter than its count says, or the count is absurd.
    BadDirectory,
    /// No file of that name.
    NotFound,
    /// The file does not fit the buffer it is read into.
    TooLarge {
        /// The file's size.
        size: u32,
    },
    /// The device reported a DMA error.
    Dma,
}

/// One file of the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// Size in bytes.
    pub size: u32,
    /// Selector to read it with.
    pub select: u16,
    /// Name (up to 55 bytes, NUL-terminated in the directory).
    pub name: String,
}

/// The number of entries announced by the first four directory bytes.
pub fn dir_count(head: [u8; 4]) -> u32 {
    u32::from_be_bytes(head)
}

/// Parses a complete directory (count included).
pub fn parse_dir(bytes: &[u8]) -> Result<Vec<File>, FwCfgError> {
    let head: [u8; 4] = bytes
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or(FwCfgError::BadDirectory)?;
    let count = dir_count(head);
    if count > MAX_FILES {
        return Err(FwCfgError::BadDirectory);
    }
    let body = &bytes[4..];
    let mut files = Vec::new();
    for i in 0..count as usize {
        let e = body
            .get(i * DIR_ENTRY_LEN..(i + 1) * DIR_ENTRY_LEN)
            .ok_or(FwCfgError::BadDirectory)?;
        let name = &e[8..];
        let len = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        files.push(File {
            size: u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
            select: u16::from_be_bytes([e[4], e[5]]),
            name: String::from_utf8_lossy(&name[..len]).into_owned(),
        });
    }
    Ok(files)
}

/// Finds `name` in a directory.
pub fn find<'a>(files: &'a [File], name: &str) -> Result<&'a File, FwCfgError> {
    files
        .iter()
        .find(|f| f.name == name)
        .ok_or(FwCfgError::NotFound)
}

/// A DMA access descriptor, as it lies in memory (big endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaAccess {
    /// Control bits (`DMA_*`), selector in the high 16 bits with `DMA_SELECT`.
    pub control: u32,
    /// Bytes to transfer.
    pub length: u32,
    /// Physical address of the guest buffer.
    pub address: u64,
}

impl DmaAccess {
    /// Size of the descriptor in memory.
    pub const LEN: usize = 16;

    /// A read of `length` bytes of item `select` into `address`.
    pub const fn read(select: u16, length: u32, address: u64) -> Self {
        Self {
            control: ((select as u32) << 16) | DMA_SELECT | DMA_READ,
            length,
            address,
        }
    }

    /// The descriptor from its memory image.
    pub fn from_bytes(b: [u8; 16]) -> Self {
        Self {
            control: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            length: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            address: u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
        }
    }

    /// The memory image of the descriptor.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&self.control.to_be_bytes());
        b[4..8].copy_from_slice(&self.length.to_be_bytes());
        b[8..].copy_from_slice(&self.address.to_be_bytes());
        b
    }

    /// Whether the device will touch memory at `address` for this access
    /// (reads and writes do; select-only and skip do not; QEMU gives READ
    /// priority over WRITE over SKIP).
    pub const fn touches_memory(&self) -> bool {
        self.length != 0 && self.control & (DMA_READ | DMA_WRITE) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(size: u32, select: u16, name: &str) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&size.to_be_bytes());
        e.extend_from_slice(&select.to_be_bytes());
        e.extend_from_slice(&[0, 0]);
        let mut n = name.as_bytes().to_vec();
        n.resize(56, 0);
        e.extend_from_slice(&n);
        e
    }

    #[test]
    fn directory_round_trip() {
        let mut dir = 2u32.to_be_bytes().to_vec();
        dir.extend(entry(0x20_0000, 0x0020, "opt/svtpm/ovmf"));
        dir.extend(entry(80, 0x0021, "etc/e820"));
        let files = parse_dir(&dir).unwrap();
        assert_eq!(files.len(), 2);
        let ovmf = find(&files, "opt/svtpm/ovmf").unwrap();
        assert_eq!((ovmf.size, ovmf.select), (0x20_0000, 0x20));
        assert_eq!(find(&files, "etc/e820").unwrap().size, 80);
        assert_eq!(find(&files, "opt/none"), Err(FwCfgError::NotFound));
    }

    #[test]
    fn directory_truncated_or_absurd() {
        let mut dir = 3u32.to_be_bytes().to_vec();
        dir.extend(entry(1, 0x20, "a"));
        assert_eq!(parse_dir(&dir), Err(FwCfgError::BadDirectory));
        assert_eq!(parse_dir(&[0, 0]), Err(FwCfgError::BadDirectory));
        assert_eq!(
            parse_dir(&(MAX_FILES + 1).to_be_bytes()),
            Err(FwCfgError::BadDirectory)
        );
        assert_eq!(parse_dir(&0u32.to_be_bytes()), Ok(Vec::new()));
    }

    #[test]
    fn name_without_terminator() {
        let mut dir = 1u32.to_be_bytes().to_vec();
        dir.extend(entry(1, 0x20, &"n".repeat(56)));
        assert_eq!(parse_dir(&dir).unwrap()[0].name.len(), 56);
    }

    #[test]
    fn dma_descriptor_layout() {
        let d = DmaAccess::read(0x0020, 0x1234, 0x1_0000_2000);
        let b = d.to_bytes();
        assert_eq!(&b[..4], &[0x00, 0x20, 0x00, 0x0A]);
        assert_eq!(&b[4..8], &[0, 0, 0x12, 0x34]);
        assert_eq!(&b[8..], &[0, 0, 0, 1, 0, 0, 0x20, 0]);
        assert_eq!(DmaAccess::from_bytes(b), d);
        assert!(d.touches_memory());
        let select_only = DmaAccess {
            control: (5 << 16) | DMA_SELECT,
            length: 100,
            address: 0,
        };
        assert!(!select_only.touches_memory());
        let skip = DmaAccess {
            control: DMA_SKIP,
            length: 100,
            address: 0,
        };
        assert!(!skip.touches_memory());
        let write = DmaAccess {
            control: DMA_WRITE,
            length: 1,
            address: 0,
        };
        assert!(write.touches_memory());
    }
}
