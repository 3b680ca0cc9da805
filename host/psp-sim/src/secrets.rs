//! The secrets page the simulated firmware "installs" at launch: four
//! random VMPCKs (the simulator keeps the same keys), and the SVSM fields
//! a launch with svtpm at VMPL0 fills in. Written as a 4096-byte image for
//! the SVM platform to load where SNP would have a secrets page.

use rand_core::{OsRng, RngCore};
use svtpm::attest::snp::SecretsPage;
use zerocopy::{FromZeros, IntoBytes};

/// Secrets page format version the SVSM fields need.
pub const SECRETS_VERSION: u32 = 3;

/// Where svtpm's memory and calling area are, for the SVSM fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvsmFields {
    /// SVSM_BASE.
    pub base: u64,
    /// SVSM_SIZE.
    pub size: u64,
    /// SVSM_CAA of the boot CPU.
    pub caa: u64,
    /// SVSM_MAX_VERSION.
    pub max_version: u32,
    /// SVSM_GUEST_VMPL.
    pub guest_vmpl: u8,
}

/// A fresh secrets page with random VMPCK0..3 and `svsm`'s fields.
pub fn generate(svsm: &SvsmFields) -> SecretsPage {
    let mut page = SecretsPage::new_zeroed();
    page.version.set(SECRETS_VERSION);
    for key in page.vmpck.iter_mut() {
        // A zero key means "none": draw until not all zero.
        while key.iter().all(|&b| b == 0) {
            OsRng.fill_bytes(key);
        }
    }
    page.svsm_base.set(svsm.base);
    page.svsm_size.set(svsm.size);
    page.svsm_caa.set(svsm.caa);
    page.svsm_max_version.set(svsm.max_version);
    page.svsm_guest_vmpl = svsm.guest_vmpl;
    page
}

/// The page as the 4096 bytes the firmware would place in guest memory.
pub fn image(page: &SecretsPage) -> &[u8] {
    page.as_bytes()
}
