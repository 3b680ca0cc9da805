//! The SEV-SNP launch digest of the svtpm image, computed as the PSP does
//! while the host loads a guest with SNP_LAUNCH_UPDATE (AMD SEV-SNP
//! Firmware ABI 56860, "PAGE_INFO" and the launch digest): starting from 48
//! zero bytes, every page added updates
//!
//! ```text
//! LD = SHA-384(PAGE_INFO { DIGEST_CUR = LD, CONTENTS, LENGTH = 0x70,
//!                          PAGE_TYPE, IMI_PAGE = 0, VMPL3/2/1_PERMS = 0, GPA })
//! ```
//!
//! where CONTENTS is SHA-384 of the page for NORMAL pages and 48 zero bytes
//! for ZERO and SECRETS pages.
//!
//! The image is the ELF the svm platform boots. Every 4 KiB page touched
//! by a PT_LOAD segment, at the segment's physical address, is measured in
//! ascending GPA order: a page holding any byte from the file as a NORMAL
//! page (the file bytes, zero elsewhere in the page), a page of the
//! segment's zero-filled tail (`.bss`) as a ZERO page. Nothing outside the
//! PT_LOAD segments (section headers, symbols, debug information) counts.
//! Last comes one SECRETS page at [`SECRETS_GPA`].
//!
//! `sev-snp-measure`'s `GCTX` (PyPI) computes the same chain; the unit
//! tests hold a digest it produced.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context, Result};
use goblin::elf::program_header::PT_LOAD;
use goblin::elf::Elf;
use sha2::{Digest, Sha384};
use zerocopy::little_endian::{U16, U64};
use zerocopy::{Immutable, IntoBytes, KnownLayout};

/// Page size of the launch: 4 KiB.
pub const PAGE_SIZE: u64 = 0x1000;

/// Where the simulated launch places the secrets page: the last page of
/// the 64 MiB region at 4 GiB that holds svtpm on the svm platform (its
/// pc-dimm, hidden from the guest), right below the host channel at
/// 0x1_0400_0000 and above the image's loaded pages, as an SVSM keeps its
/// secrets page inside its own memory. (The svm platform itself receives
/// the page through fw_cfg; the GPA only enters the digest.) An image
/// whose pages reach it is refused.
pub const SECRETS_GPA: u64 = 0x1_03FF_F000;

/// Highest GPA a page may have: GPAs are 52-bit.
const MAX_GPA: u64 = (1 << 52) - PAGE_SIZE;

/// Length of a launch digest.
pub const DIGEST_LEN: usize = 48;

/// `PAGE_TYPE` of PAGE_INFO (ABI 56860, SNP_LAUNCH_UPDATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    /// A page of data, measured by its SHA-384.
    Normal = 1,
    /// A VMSA page (GPA 0xFFFFFFFFF000).
    Vmsa = 2,
    /// A page of zeros.
    Zero = 3,
    /// A page whose contents are not measured.
    Unmeasured = 4,
    /// The secrets page.
    Secrets = 5,
    /// The CPUID page.
    Cpuid = 6,
}

/// PAGE_INFO: what the firmware hashes for each page (0x70 bytes).
#[derive(Debug, Clone, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PageInfo {
    /// 0x00: the launch digest before this page.
    pub digest_cur: [u8; 48],
    /// 0x30: SHA-384 of the page (NORMAL, VMSA) or zeros.
    pub contents: [u8; 48],
    /// 0x60: length of this structure, 0x70.
    pub length: U16,
    /// 0x62: [`PageType`].
    pub page_type: u8,
    /// 0x63: bit 0 IMI_PAGE (pages of a migration image; 0 here).
    pub imi_page: u8,
    /// 0x64: permissions given to VMPL3.
    pub vmpl3_perms: u8,
    /// 0x65: permissions given to VMPL2.
    pub vmpl2_perms: u8,
    /// 0x66: permissions given to VMPL1.
    pub vmpl1_perms: u8,
    /// 0x67: reserved, zero.
    pub reserved: u8,
    /// 0x68: the page's guest physical address.
    pub gpa: U64,
}

/// Size of [`PageInfo`].
pub const PAGE_INFO_LEN: u16 = 0x70;

/// A launch digest being built, page by page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchDigest {
    ld: [u8; DIGEST_LEN],
}

impl Default for LaunchDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl LaunchDigest {
    /// The digest at launch start: 48 zero bytes.
    pub fn new() -> Self {
        Self {
            ld: [0; DIGEST_LEN],
        }
    }

    /// The current digest.
    pub fn digest(&self) -> [u8; DIGEST_LEN] {
        self.ld
    }

    /// The PAGE_INFO the next update would hash.
    pub fn page_info(&self, page_type: PageType, gpa: u64, contents: [u8; 48]) -> PageInfo {
        PageInfo {
            digest_cur: self.ld,
            contents,
            length: PAGE_INFO_LEN.into(),
            page_type: page_type as u8,
            imi_page: 0,
            vmpl3_perms: 0,
            vmpl2_perms: 0,
            vmpl1_perms: 0,
            reserved: 0,
            gpa: gpa.into(),
        }
    }

    fn update(&mut self, page_type: PageType, gpa: u64, contents: [u8; 48]) {
        let info = self.page_info(page_type, gpa, contents);
        self.ld = Sha384::digest(info.as_bytes()).into();
    }

    /// Adds a NORMAL page with `data` (one page).
    pub fn normal_page(&mut self, gpa: u64, data: &[u8; PAGE_SIZE as usize]) {
        self.update(PageType::Normal, gpa, Sha384::digest(data).into());
    }

    /// Adds a ZERO page.
    pub fn zero_page(&mut self, gpa: u64) {
        self.update(PageType::Zero, gpa, [0; 48]);
    }

    /// Adds the SECRETS page (its contents are not measured).
    pub fn secrets_page(&mut self, gpa: u64) {
        self.update(PageType::Secrets, gpa, [0; 48]);
    }
}

/// One page of the loaded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImagePage {
    /// A page holding bytes from the file.
    Normal(Box<[u8; PAGE_SIZE as usize]>),
    /// A page only of zero-filled memory.
    Zero,
}

/// The pages the image's PT_LOAD segments occupy, by GPA (page aligned).
/// Refuses overlapping segments, a file size above the memory size, data
/// outside the file, and addresses beyond 52 bits.
pub fn image_pages(elf: &[u8]) -> Result<BTreeMap<u64, ImagePage>> {
    let parsed = Elf::parse(elf).context("not an ELF file")?;
    ensure!(parsed.is_64, "the image must be a 64-bit ELF");
    let mut segments: Vec<_> = parsed
        .program_headers
        .iter()
        .filter(|ph| ph.p_type == PT_LOAD && ph.p_memsz > 0)
        .collect();
    ensure!(!segments.is_empty(), "the image has no PT_LOAD segment");
    segments.sort_by_key(|ph| ph.p_paddr);

    let mut pages = BTreeMap::new();
    let mut prev_end = 0u64;
    for ph in segments {
        let start = ph.p_paddr;
        let end = start
            .checked_add(ph.p_memsz)
            .filter(|&e| e <= MAX_GPA + PAGE_SIZE)
            .with_context(|| format!("segment at {start:#x} reaches past 52-bit addresses"))?;
        ensure!(
            ph.p_filesz <= ph.p_memsz,
            "segment at {start:#x}: file size {:#x} exceeds memory size {:#x}",
            ph.p_filesz,
            ph.p_memsz
        );
        ensure!(
            start >= prev_end,
            "segment at {start:#x} overlaps the previous one (ends at {prev_end:#x})"
        );
        prev_end = end;
        let offset = usize::try_from(ph.p_offset)?;
        let filesz = usize::try_from(ph.p_filesz)?;
        let data = offset
            .checked_add(filesz)
            .and_then(|e| elf.get(offset..e))
            .with_context(|| format!("segment at {start:#x}: file data past the end of the ELF"))?;

        let mut page = start & !(PAGE_SIZE - 1);
        while page < end {
            let entry = pages.entry(page).or_insert(ImagePage::Zero);
            // The file bytes of this segment within this page.
            let lo = page.max(start);
            let hi = (page + PAGE_SIZE).min(start + ph.p_filesz);
            if lo < hi {
                if let ImagePage::Zero = entry {
                    *entry = ImagePage::Normal(Box::new([0; PAGE_SIZE as usize]));
                }
                if let ImagePage::Normal(bytes) = entry {
                    let src = (lo - start) as usize..(hi - start) as usize;
                    let dst = (lo - page) as usize..(hi - page) as usize;
                    bytes[dst].copy_from_slice(&data[src]);
                }
            }
            page += PAGE_SIZE;
        }
    }
    Ok(pages)
}

/// The launch digest of the image `elf`: its loaded pages, then the
/// secrets page at [`SECRETS_GPA`].
pub fn launch_digest(elf: &[u8]) -> Result<[u8; DIGEST_LEN]> {
    let pages = image_pages(elf)?;
    if pages.contains_key(&SECRETS_GPA) {
        bail!("the image's memory covers the secrets page at {SECRETS_GPA:#x}");
    }
    let mut ld = LaunchDigest::new();
    for (&gpa, page) in &pages {
        match page {
            ImagePage::Normal(bytes) => ld.normal_page(gpa, bytes),
            ImagePage::Zero => ld.zero_page(gpa),
        }
    }
    ld.secrets_page(SECRETS_GPA);
    Ok(ld.digest())
}

/// A digest as lowercase hex (96 digits).
pub fn to_hex(digest: &[u8; DIGEST_LEN]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
