//! The SNP secrets page (SEV-SNP ABI 56860, "Secrets Page Format",
//! version 2/3, with the SVSM fields of the SVSM specification 58019).
//! The firmware fills it at launch; it lives in private guest memory, so
//! VMPL0 reads it directly. svtpm takes VMPCK0 from it and hands lower
//! VMPLs a copy with VMPCK0 zeroed.
//!
//! ```text
//! 0x000 VERSION u32       0x0A0 OS area (96): MSG_SEQNO_0..3 u32, AP jump table,
//! 0x004 IMI_EN (bit 0)          reserved[40], guest usage[32]
//! 0x008 FMS u32           0x100 VMSA tweak bitmap[64]
//! 0x00C reserved          0x140 SVSM_BASE u64    0x150 SVSM_CAA u64
//! 0x010 GOSVW[16]         0x148 SVSM_SIZE u64    0x158 SVSM_MAX_VERSION u32
//! 0x020 VMPCK0[32]        0x15C SVSM_GUEST_VMPL u8, reserved[3]
//! 0x040 VMPCK1[32]        0x160 TSC_FACTOR u32
//! 0x060 VMPCK2[32]        0x164 reserved to 0x1000
//! 0x080 VMPCK3[32]
//! ```

use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};
use zeroize::{Zeroize, Zeroizing};

use super::error::SnpError;
use super::header::{PAGE_LEN, VMPCK_COUNT, VMPCK_LEN};

/// The guest-OS area of the secrets page (layout from the GHCB
/// specification); Linux keeps its message sequence numbers here.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Debug)]
#[repr(C)]
pub struct OsArea {
    /// Last sequence number used with each VMPCK.
    pub msg_seqno: [U32; VMPCK_COUNT],
    /// AP jump table physical address.
    pub ap_jump_table_pa: U64,
    /// Reserved.
    pub reserved: [u8; 40],
    /// Free for the guest.
    pub guest_usage: [u8; 32],
}

/// The secrets page.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone)]
#[repr(C)]
pub struct SecretsPage {
    /// Page format version.
    pub version: U32,
    /// Bit 0: the guest was launched by a migration agent (IMI).
    pub imi_en: U32,
    /// CPUID family/model/stepping of the platform.
    pub fms: U32,
    /// Reserved.
    pub reserved0: [u8; 4],
    /// Guest OS visible workarounds.
    pub gosvw: [u8; 16],
    /// VMPCK0..3.
    pub vmpck: [[u8; VMPCK_LEN]; VMPCK_COUNT],
    /// Guest OS area.
    pub os_area: OsArea,
    /// VMSA register protection tweak bitmap.
    pub vmsa_tweak_bitmap: [u8; 64],
    /// Base of the SVSM's memory.
    pub svsm_base: U64,
    /// Size of the SVSM's memory.
    pub svsm_size: U64,
    /// Calling area of the boot CPU.
    pub svsm_caa: U64,
    /// Highest SVSM protocol version supported.
    pub svsm_max_version: U32,
    /// VMPL the guest runs at.
    pub svsm_guest_vmpl: u8,
    /// Reserved.
    pub reserved1: [u8; 3],
    /// Mean TSC frequency decrease, in units of 0.001 %.
    pub tsc_factor: U32,
    /// Remainder of the page.
    pub reserved2: [u8; 3740],
}

const _: () = assert!(core::mem::size_of::<SecretsPage>() == PAGE_LEN);
const _: () = assert!(core::mem::size_of::<OsArea>() == 96);

impl core::fmt::Debug for SecretsPage {
    // The VMPCKs are never printed.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecretsPage")
            .field("version", &self.version.get())
            .field("svsm_base", &self.svsm_base.get())
            .field("svsm_size", &self.svsm_size.get())
            .field("svsm_caa", &self.svsm_caa.get())
            .field("svsm_guest_vmpl", &self.svsm_guest_vmpl)
            .finish_non_exhaustive()
    }
}

impl SecretsPage {
    /// Reads a page image of exactly 4096 bytes.
    pub fn read(bytes: &[u8]) -> Result<SecretsPage, SnpError> {
        SecretsPage::read_from_bytes(bytes)
            .map_err(|_| SnpError::SecretsPageLength { len: bytes.len() })
    }

    /// A copy of VMPCK `id`, in a buffer that is wiped when dropped.
    pub fn vmpck(&self, id: u8) -> Result<Zeroizing<[u8; VMPCK_LEN]>, SnpError> {
        let key = self
            .vmpck
            .get(usize::from(id))
            .ok_or(SnpError::VmpckId(id))?;
        Ok(Zeroizing::new(*key))
    }

    /// Zeroes VMPCK `id` in this page (before a copy is shown to a lower
    /// VMPL, or after the key was disabled).
    pub fn wipe_vmpck(&mut self, id: u8) -> Result<(), SnpError> {
        self.vmpck
            .get_mut(usize::from(id))
            .ok_or(SnpError::VmpckId(id))?
            .zeroize();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn offsets_match_the_abi_table() {
        type S = SecretsPage;
        assert_eq!(offset_of!(S, version), 0x000);
        assert_eq!(offset_of!(S, imi_en), 0x004);
        assert_eq!(offset_of!(S, fms), 0x008);
        assert_eq!(offset_of!(S, gosvw), 0x010);
        assert_eq!(offset_of!(S, vmpck), 0x020);
        assert_eq!(offset_of!(S, os_area), 0x0A0);
        assert_eq!(offset_of!(S, vmsa_tweak_bitmap), 0x100);
        assert_eq!(offset_of!(S, svsm_base), 0x140);
        assert_eq!(offset_of!(S, svsm_size), 0x148);
        assert_eq!(offset_of!(S, svsm_caa), 0x150);
        assert_eq!(offset_of!(S, svsm_max_version), 0x158);
        assert_eq!(offset_of!(S, svsm_guest_vmpl), 0x15C);
        assert_eq!(offset_of!(S, tsc_factor), 0x160);
        assert_eq!(offset_of!(S, reserved2), 0x164);
        assert_eq!(offset_of!(OsArea, ap_jump_table_pa), 0x10);
        assert_eq!(offset_of!(OsArea, guest_usage), 0x40);
        assert_eq!(core::mem::size_of::<S>(), 0x1000);
    }

    #[test]
    fn vmpcks_come_from_their_offsets_and_wipe() {
        let mut image = [0u8; PAGE_LEN];
        for id in 0..4u8 {
            let off = 0x20 + 0x20 * usize::from(id);
            image[off..off + 32].fill(0x10 + id);
        }
        image[0x15C] = 2;
        let mut page = SecretsPage::read(&image).unwrap();
        assert_eq!(*page.vmpck(0).unwrap(), [0x10; 32]);
        assert_eq!(*page.vmpck(3).unwrap(), [0x13; 32]);
        assert_eq!(page.vmpck(4).unwrap_err(), SnpError::VmpckId(4));
        assert_eq!(page.svsm_guest_vmpl, 2);
        page.wipe_vmpck(0).unwrap();
        assert_eq!(*page.vmpck(0).unwrap(), [0; 32]);
        assert_eq!(*page.vmpck(1).unwrap(), [0x11; 32]);
        assert_eq!(&page.as_bytes()[0x20..0x40], &[0u8; 32]);
        assert_eq!(
            SecretsPage::read(&image[..4095]).unwrap_err(),
            SnpError::SecretsPageLength { len: 4095 }
        );
    }

    #[test]
    fn debug_never_shows_keys() {
        let mut image = [0u8; PAGE_LEN];
        image[0x20..0x40].fill(0xC5);
        let page = SecretsPage::read(&image).unwrap();
        let text = alloc::format!("{page:?}");
        assert!(!text.contains("197")); // 0xC5
        assert!(text.contains("SecretsPage"));
    }
}
