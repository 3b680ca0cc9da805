//! What the simulated platform and guest look like in a report: the
//! values a real PSP takes from the launch (measurement, policy, host
//! data, ID block) and from the platform (chip ID, TCB, firmware version).

use svtpm::attest::snp::report::{PLATFORM_SMT_EN, POLICY_RESERVED_ONE, POLICY_SMT};
use svtpm::attest::snp::TcbVersion;

/// The identity the VCEK certifies: chip and TCB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipIdentity {
    /// `CHIP_ID` / the VCEK's hwID.
    pub chip_id: [u8; 64],
    /// `REPORTED_TCB` / the VCEK's SPL extensions.
    pub reported_tcb: TcbVersion,
    /// The VCEK's productName, e.g. "Genoa-B1".
    pub product_name: String,
}

impl ChipIdentity {
    /// A development chip: random chip ID, a Genoa-like TCB.
    pub fn random() -> ChipIdentity {
        let mut chip_id = [0u8; 64];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut chip_id);
        ChipIdentity {
            chip_id,
            reported_tcb: TcbVersion::new(7, 0, 14, 72),
            product_name: "Genoa-B1".to_string(),
        }
    }
}

/// Everything the simulator puts in a report besides the request's
/// `REPORT_DATA` and `VMPL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PspConfig {
    /// Report format version (3: the CPUID fields are filled).
    pub report_version: u32,
    /// Guest SVN.
    pub guest_svn: u32,
    /// Guest policy.
    pub policy: u64,
    /// Family ID.
    pub family_id: [u8; 16],
    /// Image ID.
    pub image_id: [u8; 16],
    /// Launch measurement.
    pub measurement: [u8; 48],
    /// Host data.
    pub host_data: [u8; 32],
    /// ID key digest.
    pub id_key_digest: [u8; 48],
    /// Author key digest.
    pub author_key_digest: [u8; 48],
    /// Report ID.
    pub report_id: [u8; 32],
    /// Report ID of the migration agent (all ones: none).
    pub report_id_ma: [u8; 32],
    /// Platform info bits.
    pub platform_info: u64,
    /// Chip and reported TCB (must match the VCEK).
    pub chip: ChipIdentity,
    /// Current TCB.
    pub current_tcb: TcbVersion,
    /// Committed TCB.
    pub committed_tcb: TcbVersion,
    /// TCB at launch.
    pub launch_tcb: TcbVersion,
    /// CPUID family, model, stepping.
    pub cpuid: [u8; 3],
    /// Running firmware build, minor, major.
    pub current_version: [u8; 3],
    /// Committed firmware build, minor, major.
    pub committed_version: [u8; 3],
}

impl PspConfig {
    /// A Genoa-like platform for `chip`, with a zero measurement; set the
    /// fields a test or the host proxy cares about.
    pub fn for_chip(chip: ChipIdentity) -> PspConfig {
        let tcb = chip.reported_tcb;
        let mut report_id = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut report_id);
        PspConfig {
            report_version: 3,
            guest_svn: 0,
            policy: POLICY_SMT | POLICY_RESERVED_ONE,
            family_id: [0; 16],
            image_id: [0; 16],
            measurement: [0; 48],
            host_data: [0; 32],
            id_key_digest: [0; 48],
            author_key_digest: [0; 48],
            report_id,
            report_id_ma: [0xFF; 32],
            platform_info: PLATFORM_SMT_EN,
            chip,
            current_tcb: tcb,
            committed_tcb: tcb,
            launch_tcb: tcb,
            cpuid: [0x19, 0x11, 0x01],
            current_version: [21, 55, 1],
            committed_version: [21, 55, 1],
        }
    }
}
