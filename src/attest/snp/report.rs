//! The ATTESTATION_REPORT (SEV-SNP ABI 56860, "ATTESTATION_REPORT
//! Structure"), 0x4A0 bytes, versions 2 to 5, and building `REPORT_DATA`.
//!
//! ```text
//! 0x000 VERSION u32        0x0E0 ID_KEY_DIGEST[48]     0x1E8 CURRENT_BUILD/MINOR/MAJOR, rsvd
//! 0x004 GUEST_SVN u32      0x110 AUTHOR_KEY_DIGEST[48] 0x1EC COMMITTED_BUILD/MINOR/MAJOR, rsvd
//! 0x008 POLICY u64         0x140 REPORT_ID[32]         0x1F0 LAUNCH_TCB
//! 0x010 FAMILY_ID[16]      0x160 REPORT_ID_MA[32]      0x1F8 LAUNCH_MIT_VECTOR u64 (v5)
//! 0x020 IMAGE_ID[16]       0x180 REPORTED_TCB          0x200 CURRENT_MIT_VECTOR u64 (v5)
//! 0x030 VMPL u32           0x188 CPUID_FAM_ID (v3)     0x208 reserved[152]
//! 0x034 SIGNATURE_ALGO u32 0x189 CPUID_MOD_ID (v3)     0x2A0 SIGNATURE: R[72] S[72] LE, rsvd
//! 0x038 CURRENT_TCB        0x18A CPUID_STEP (v3)
//! 0x040 PLATFORM_INFO u64  0x18B reserved[21]
//! 0x048 flags u32          0x1A0 CHIP_ID[64]
//! 0x04C reserved           0x1E0 COMMITTED_TCB
//! 0x050 REPORT_DATA[64]
//! 0x090 MEASUREMENT[48]
//! 0x0C0 HOST_DATA[32]
//! ```
//! Fields a version does not define (CPUID before 3, the mitigation vectors
//! before 5) are zero. The signature covers bytes 0..0x2A0.

use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::error::SnpError;

/// Length of an attestation report.
pub const REPORT_LEN: usize = core::mem::size_of::<AttestationReport>();

/// Length of the signed part of a report (everything before `SIGNATURE`).
pub const SIGNED_LEN: usize = 0x2A0;

/// Oldest report version with this layout.
pub const MIN_VERSION: u32 = 2;
/// Newest report version whose layout is known.
pub const MAX_VERSION: u32 = 5;

/// `SIGNATURE_ALGO`: ECDSA P-384 with SHA-384.
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;

/// `POLICY` bit: SMT allowed.
pub const POLICY_SMT: u64 = 1 << 16;
/// `POLICY` bit 17 is reserved and must be one.
pub const POLICY_RESERVED_ONE: u64 = 1 << 17;
/// `POLICY` bit: association with a migration agent allowed.
pub const POLICY_MIGRATE_MA: u64 = 1 << 18;
/// `POLICY` bit: debugging allowed (the hypervisor can read guest memory).
pub const POLICY_DEBUG: u64 = 1 << 19;
/// `POLICY` bit: the guest may run on one socket only.
pub const POLICY_SINGLE_SOCKET: u64 = 1 << 20;

/// `PLATFORM_INFO` bit: SMT enabled.
pub const PLATFORM_SMT_EN: u64 = 1 << 0;
/// `PLATFORM_INFO` bit: TSME enabled.
pub const PLATFORM_TSME_EN: u64 = 1 << 1;
/// `PLATFORM_INFO` bit: ECC memory in use.
pub const PLATFORM_ECC_EN: u64 = 1 << 2;
/// `PLATFORM_INFO` bit: RAPL disabled.
pub const PLATFORM_RAPL_DIS: u64 = 1 << 3;
/// `PLATFORM_INFO` bit: ciphertext hiding enabled.
pub const PLATFORM_CIPHERTEXT_HIDING_EN: u64 = 1 << 4;
/// `PLATFORM_INFO` bit: the DRAM alias check completed.
pub const PLATFORM_ALIAS_CHECK_COMPLETE: u64 = 1 << 5;

/// Flags word (0x48) bit: `AUTHOR_KEY_EN`.
pub const FLAG_AUTHOR_KEY_EN: u32 = 1 << 0;
/// Flags word bit: `MASK_CHIP_KEY`.
pub const FLAG_MASK_CHIP_KEY: u32 = 1 << 1;
/// Flags word: shift of the 3-bit `SIGNING_KEY` field.
pub const FLAG_SIGNING_KEY_SHIFT: u32 = 2;

/// Which key signed a report (`SIGNING_KEY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKey {
    /// The chip's VCEK.
    Vcek,
    /// A VLEK loaded by the cloud provider.
    Vlek,
    /// Not signed.
    None,
    /// A value the specification reserves.
    Reserved(u8),
}

/// A TCB_VERSION as Milan and Genoa lay it out: boot loader, TEE, four
/// reserved bytes, SNP, microcode security patch levels.
#[derive(
    FromBytes,
    IntoBytes,
    KnownLayout,
    Immutable,
    Unaligned,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
)]
#[repr(transparent)]
pub struct TcbVersion(pub [u8; 8]);

impl TcbVersion {
    /// A TCB version from its SPLs.
    pub const fn new(boot_loader: u8, tee: u8, snp: u8, microcode: u8) -> Self {
        TcbVersion([boot_loader, tee, 0, 0, 0, 0, snp, microcode])
    }

    /// Boot loader SPL.
    pub const fn boot_loader(&self) -> u8 {
        self.0[0]
    }

    /// PSP OS (TEE) SPL.
    pub const fn tee(&self) -> u8 {
        self.0[1]
    }

    /// SNP firmware SPL.
    pub const fn snp(&self) -> u8 {
        self.0[6]
    }

    /// Microcode SPL.
    pub const fn microcode(&self) -> u8 {
        self.0[7]
    }

    /// The version as the u64 the specification shows.
    pub const fn raw(&self) -> u64 {
        u64::from_le_bytes(self.0)
    }
}

/// The report signature: r and s little endian, zero-extended to 72 bytes.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Debug)]
#[repr(C)]
pub struct ReportSignature {
    /// r, little endian.
    pub r: [u8; 72],
    /// s, little endian.
    pub s: [u8; 72],
    /// Reserved.
    pub reserved: [u8; 368],
}

/// The attestation report.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Debug)]
#[repr(C)]
pub struct AttestationReport {
    /// Report format version.
    pub version: U32,
    /// Guest SVN from the ID block.
    pub guest_svn: U32,
    /// Guest policy.
    pub policy: U64,
    /// Family ID from the ID block.
    pub family_id: [u8; 16],
    /// Image ID from the ID block.
    pub image_id: [u8; 16],
    /// VMPL the report attests (from the request).
    pub vmpl: U32,
    /// Signature algorithm.
    pub signature_algo: U32,
    /// The platform's current TCB.
    pub current_tcb: TcbVersion,
    /// Platform configuration bits.
    pub platform_info: U64,
    /// `AUTHOR_KEY_EN`, `MASK_CHIP_KEY`, `SIGNING_KEY`.
    pub flags: U32,
    /// Reserved.
    pub reserved0: [u8; 4],
    /// Guest-provided data.
    pub report_data: [u8; 64],
    /// Launch measurement.
    pub measurement: [u8; 48],
    /// Hypervisor-provided data from launch.
    pub host_data: [u8; 32],
    /// SHA-384 of the ID key.
    pub id_key_digest: [u8; 48],
    /// SHA-384 of the author key.
    pub author_key_digest: [u8; 48],
    /// Report ID of this guest.
    pub report_id: [u8; 32],
    /// Report ID of the guest's migration agent.
    pub report_id_ma: [u8; 32],
    /// TCB version the signing key was derived from.
    pub reported_tcb: TcbVersion,
    /// CPUID family (version 3 and later).
    pub cpuid_fam_id: u8,
    /// CPUID model (version 3 and later).
    pub cpuid_mod_id: u8,
    /// CPUID stepping (version 3 and later).
    pub cpuid_step: u8,
    /// Reserved.
    pub reserved1: [u8; 21],
    /// Chip identifier (zero if `MASK_CHIP_ID`).
    pub chip_id: [u8; 64],
    /// The platform's committed TCB.
    pub committed_tcb: TcbVersion,
    /// Build of the running firmware.
    pub current_build: u8,
    /// Minor version of the running firmware.
    pub current_minor: u8,
    /// Major version of the running firmware.
    pub current_major: u8,
    /// Reserved.
    pub reserved2: u8,
    /// Build of the committed firmware.
    pub committed_build: u8,
    /// Minor version of the committed firmware.
    pub committed_minor: u8,
    /// Major version of the committed firmware.
    pub committed_major: u8,
    /// Reserved.
    pub reserved3: u8,
    /// Current TCB when the guest was launched.
    pub launch_tcb: TcbVersion,
    /// Verified mitigation vector at launch (version 5 and later).
    pub launch_mit_vector: U64,
    /// Current verified mitigation vector (version 5 and later).
    pub current_mit_vector: U64,
    /// Reserved.
    pub reserved4: [u8; 152],
    /// Signature over bytes 0..0x2A0.
    pub signature: ReportSignature,
}

const _: () = assert!(REPORT_LEN == 0x4A0);

impl AttestationReport {
    /// Reads a report from exactly [`REPORT_LEN`] bytes and checks that its
    /// version and signature algorithm are ones this code understands. The
    /// signature itself is checked by
    /// [`verify_report_signature`](super::signature::verify_report_signature).
    pub fn parse(bytes: &[u8]) -> Result<&AttestationReport, SnpError> {
        let report = AttestationReport::ref_from_bytes(bytes)
            .map_err(|_| SnpError::ReportLength { len: bytes.len() })?;
        let version = report.version.get();
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(SnpError::ReportVersion(version));
        }
        let algo = report.signature_algo.get();
        if algo != SIG_ALGO_ECDSA_P384_SHA384 {
            return Err(SnpError::SignatureAlgorithm(algo));
        }
        Ok(report)
    }

    /// The signed bytes, 0..0x2A0.
    pub fn signed_bytes(&self) -> &[u8] {
        self.as_bytes().get(..SIGNED_LEN).unwrap_or(&[])
    }

    /// Whether the guest policy allows debugging.
    pub fn debug_allowed(&self) -> bool {
        self.policy.get() & POLICY_DEBUG != 0
    }

    /// `AUTHOR_KEY_EN`.
    pub fn author_key_en(&self) -> bool {
        self.flags.get() & FLAG_AUTHOR_KEY_EN != 0
    }

    /// `MASK_CHIP_KEY`.
    pub fn mask_chip_key(&self) -> bool {
        self.flags.get() & FLAG_MASK_CHIP_KEY != 0
    }

    /// `SIGNING_KEY`.
    pub fn signing_key(&self) -> SigningKey {
        // A 3-bit field: the cast keeps it whole.
        match ((self.flags.get() >> FLAG_SIGNING_KEY_SHIFT) & 0x7) as u8 {
            0 => SigningKey::Vcek,
            1 => SigningKey::Vlek,
            7 => SigningKey::None,
            other => SigningKey::Reserved(other),
        }
    }
}

/// `REPORT_DATA` binding `digest` (at most 64 bytes), zero-padded: what the
/// Trustee KBS protocol expects for a SHA-384 of its runtime data.
pub fn report_data_from_digest(digest: &[u8]) -> Result<[u8; 64], SnpError> {
    let mut data = [0u8; 64];
    data.get_mut(..digest.len())
        .ok_or(SnpError::ReportDataLength(digest.len()))?
        .copy_from_slice(digest);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn offsets_match_the_abi_table() {
        type R = AttestationReport;
        let expect: &[(&str, usize, usize)] = &[
            ("version", offset_of!(R, version), 0x000),
            ("guest_svn", offset_of!(R, guest_svn), 0x004),
            ("policy", offset_of!(R, policy), 0x008),
            ("family_id", offset_of!(R, family_id), 0x010),
            ("image_id", offset_of!(R, image_id), 0x020),
            ("vmpl", offset_of!(R, vmpl), 0x030),
            ("signature_algo", offset_of!(R, signature_algo), 0x034),
            ("current_tcb", offset_of!(R, current_tcb), 0x038),
            ("platform_info", offset_of!(R, platform_info), 0x040),
            ("flags", offset_of!(R, flags), 0x048),
            ("reserved0", offset_of!(R, reserved0), 0x04C),
            ("report_data", offset_of!(R, report_data), 0x050),
            ("measurement", offset_of!(R, measurement), 0x090),
            ("host_data", offset_of!(R, host_data), 0x0C0),
            ("id_key_digest", offset_of!(R, id_key_digest), 0x0E0),
            ("author_key_digest", offset_of!(R, author_key_digest), 0x110),
            ("report_id", offset_of!(R, report_id), 0x140),
            ("report_id_ma", offset_of!(R, report_id_ma), 0x160),
            ("reported_tcb", offset_of!(R, reported_tcb), 0x180),
            ("cpuid_fam_id", offset_of!(R, cpuid_fam_id), 0x188),
            ("cpuid_mod_id", offset_of!(R, cpuid_mod_id), 0x189),
            ("cpuid_step", offset_of!(R, cpuid_step), 0x18A),
            ("reserved1", offset_of!(R, reserved1), 0x18B),
            ("chip_id", offset_of!(R, chip_id), 0x1A0),
            ("committed_tcb", offset_of!(R, committed_tcb), 0x1E0),
            ("current_build", offset_of!(R, current_build), 0x1E8),
            ("current_minor", offset_of!(R, current_minor), 0x1E9),
            ("current_major", offset_of!(R, current_major), 0x1EA),
            ("reserved2", offset_of!(R, reserved2), 0x1EB),
            ("committed_build", offset_of!(R, committed_build), 0x1EC),
            ("committed_minor", offset_of!(R, committed_minor), 0x1ED),
            ("committed_major", offset_of!(R, committed_major), 0x1EE),
            ("reserved3", offset_of!(R, reserved3), 0x1EF),
            ("launch_tcb", offset_of!(R, launch_tcb), 0x1F0),
            ("launch_mit_vector", offset_of!(R, launch_mit_vector), 0x1F8),
            (
                "current_mit_vector",
                offset_of!(R, current_mit_vector),
                0x200,
            ),
            ("reserved4", offset_of!(R, reserved4), 0x208),
            ("signature", offset_of!(R, signature), 0x2A0),
        ];
        for (name, got, want) in expect {
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(offset_of!(ReportSignature, r), 0);
        assert_eq!(offset_of!(ReportSignature, s), 0x48);
        assert_eq!(core::mem::size_of::<ReportSignature>(), 0x200);
        assert_eq!(core::mem::size_of::<AttestationReport>(), 0x4A0);
        assert_eq!(core::mem::size_of::<TcbVersion>(), 8);
    }

    fn report_bytes(version: u32, algo: u32) -> [u8; REPORT_LEN] {
        let mut b = [0u8; REPORT_LEN];
        b[0..4].copy_from_slice(&version.to_le_bytes());
        b[0x34..0x38].copy_from_slice(&algo.to_le_bytes());
        b
    }

    #[test]
    fn parse_reads_fields_at_their_offsets() {
        let mut b = report_bytes(3, 1);
        b[0x30] = 2; // VMPL
        b[0x50] = 0x5A; // REPORT_DATA[0]
        b[0x90 + 47] = 0x4D; // MEASUREMENT[47]
        b[0x180..0x188].copy_from_slice(&[3, 0, 0, 0, 0, 0, 8, 115]);
        b[0x48] = 0b1_0110; // MASK_CHIP_KEY (bit 1), SIGNING_KEY = 0b101 (reserved)
        let r = AttestationReport::parse(&b).unwrap();
        assert_eq!(r.vmpl.get(), 2);
        assert_eq!(r.report_data[0], 0x5A);
        assert_eq!(r.measurement[47], 0x4D);
        assert_eq!(r.reported_tcb.boot_loader(), 3);
        assert_eq!(r.reported_tcb.snp(), 8);
        assert_eq!(r.reported_tcb.microcode(), 115);
        assert!(r.mask_chip_key());
        assert!(!r.author_key_en());
        assert_eq!(r.signing_key(), SigningKey::Reserved(5));
    }

    #[test]
    fn parse_refuses_wrong_length_version_and_algorithm() {
        let b = report_bytes(2, 1);
        assert_eq!(
            AttestationReport::parse(&b[..REPORT_LEN - 1]).unwrap_err(),
            SnpError::ReportLength {
                len: REPORT_LEN - 1
            }
        );
        let mut long = [0u8; REPORT_LEN + 1];
        long[..REPORT_LEN].copy_from_slice(&b);
        assert_eq!(
            AttestationReport::parse(&long).unwrap_err(),
            SnpError::ReportLength {
                len: REPORT_LEN + 1
            }
        );
        for v in [0, 1, 6, u32::MAX] {
            assert_eq!(
                AttestationReport::parse(&report_bytes(v, 1)).unwrap_err(),
                SnpError::ReportVersion(v)
            );
        }
        assert_eq!(
            AttestationReport::parse(&report_bytes(5, 2)).unwrap_err(),
            SnpError::SignatureAlgorithm(2)
        );
        for v in MIN_VERSION..=MAX_VERSION {
            assert!(AttestationReport::parse(&report_bytes(v, 1)).is_ok());
        }
    }

    #[test]
    fn report_data_pads_and_bounds() {
        let d = report_data_from_digest(&[7u8; 48]).unwrap();
        assert_eq!(&d[..48], &[7u8; 48]);
        assert_eq!(&d[48..], &[0u8; 16]);
        assert_eq!(report_data_from_digest(&[1u8; 64]).unwrap(), [1u8; 64]);
        assert_eq!(
            report_data_from_digest(&[0u8; 65]).unwrap_err(),
            SnpError::ReportDataLength(65)
        );
    }
}
