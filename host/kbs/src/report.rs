//! The fields of an SEV-SNP attestation report (AMD SEV-SNP ABI, table
//! "ATTESTATION_REPORT", 0x4A0 bytes) that the broker's policy looks at,
//! read from the raw little-endian report.

use std::fmt;

/// Size of an attestation report.
pub const REPORT_LEN: usize = 0x4A0;
/// Bytes covered by the report signature (0x000..0x2A0).
pub const SIGNED_LEN: usize = 0x2A0;
/// Guest policy bit: debugging allowed.
pub const POLICY_DEBUG: u64 = 1 << 19;

const VERSION: usize = 0x00;
const GUEST_SVN: usize = 0x04;
const POLICY: usize = 0x08;
const VMPL: usize = 0x30;
const SIG_ALGO: usize = 0x34;
const REPORT_DATA: usize = 0x50;
const MEASUREMENT: usize = 0x90;
const HOST_DATA: usize = 0xC0;
const REPORTED_TCB: usize = 0x180;

/// A report's policy-relevant fields.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedReport {
    /// Report format version.
    pub version: u32,
    /// Guest SVN.
    pub guest_svn: u32,
    /// Guest policy.
    pub policy: u64,
    /// VMPL of the requester.
    pub vmpl: u32,
    /// Signature algorithm (1 = ECDSA P-384 with SHA-384).
    pub sig_algo: u32,
    /// REPORT_DATA.
    pub report_data: [u8; 64],
    /// Launch measurement.
    pub measurement: [u8; 48],
    /// HOST_DATA.
    pub host_data: [u8; 32],
    /// Reported TCB version.
    pub reported_tcb: u64,
}

impl ParsedReport {
    /// Reads the fields from a raw report (at least [`REPORT_LEN`] bytes).
    pub fn parse(raw: &[u8]) -> Option<Self> {
        if raw.len() < REPORT_LEN {
            return None;
        }
        let u32_at = |o: usize| u32::from_le_bytes([raw[o], raw[o + 1], raw[o + 2], raw[o + 3]]);
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let mut report_data = [0u8; 64];
        report_data.copy_from_slice(&raw[REPORT_DATA..REPORT_DATA + 64]);
        let mut measurement = [0u8; 48];
        measurement.copy_from_slice(&raw[MEASUREMENT..MEASUREMENT + 48]);
        let mut host_data = [0u8; 32];
        host_data.copy_from_slice(&raw[HOST_DATA..HOST_DATA + 32]);
        Some(Self {
            version: u32_at(VERSION),
            guest_svn: u32_at(GUEST_SVN),
            policy: u64_at(POLICY),
            vmpl: u32_at(VMPL),
            sig_algo: u32_at(SIG_ALGO),
            report_data,
            measurement,
            host_data,
            reported_tcb: u64_at(REPORTED_TCB),
        })
    }

    /// Writes the fields into a raw report (for test evidence sources).
    pub fn write(&self, raw: &mut [u8; REPORT_LEN]) {
        raw[VERSION..VERSION + 4].copy_from_slice(&self.version.to_le_bytes());
        raw[GUEST_SVN..GUEST_SVN + 4].copy_from_slice(&self.guest_svn.to_le_bytes());
        raw[POLICY..POLICY + 8].copy_from_slice(&self.policy.to_le_bytes());
        raw[VMPL..VMPL + 4].copy_from_slice(&self.vmpl.to_le_bytes());
        raw[SIG_ALGO..SIG_ALGO + 4].copy_from_slice(&self.sig_algo.to_le_bytes());
        raw[REPORT_DATA..REPORT_DATA + 64].copy_from_slice(&self.report_data);
        raw[MEASUREMENT..MEASUREMENT + 48].copy_from_slice(&self.measurement);
        raw[HOST_DATA..HOST_DATA + 32].copy_from_slice(&self.host_data);
        raw[REPORTED_TCB..REPORTED_TCB + 8].copy_from_slice(&self.reported_tcb.to_le_bytes());
    }

    /// True if the guest policy allows debugging.
    pub fn debug_allowed(&self) -> bool {
        self.policy & POLICY_DEBUG != 0
    }
}

impl fmt::Debug for ParsedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedReport")
            .field("version", &self.version)
            .field("policy", &format_args!("{:#x}", self.policy))
            .field("vmpl", &self.vmpl)
            .field("measurement", &hex(&self.measurement))
            .finish_non_exhaustive()
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip() {
        let r = ParsedReport {
            version: 2,
            guest_svn: 7,
            policy: 0x30000 | POLICY_DEBUG,
            vmpl: 1,
            sig_algo: 1,
            report_data: [3; 64],
            measurement: [4; 48],
            host_data: [5; 32],
            reported_tcb: 0x1122_3344_5566_7788,
        };
        let mut raw = [0u8; REPORT_LEN];
        r.write(&mut raw);
        // Spot checks against the ABI offsets.
        assert_eq!(raw[0x08..0x0B], [0x00, 0x00, 0x0B]);
        assert_eq!(raw[0x30], 1);
        assert_eq!(raw[0x50], 3);
        assert_eq!(raw[0x8F], 3);
        assert_eq!(raw[0x90], 4);
        assert_eq!(raw[0xBF], 4);
        assert_eq!(raw[0xC0], 5);
        assert_eq!(raw[0x180], 0x88);
        let back = ParsedReport::parse(&raw).unwrap();
        assert!(back == r);
        assert!(back.debug_allowed());
        assert!(ParsedReport::parse(&raw[..REPORT_LEN - 1]).is_none());
    }
}
