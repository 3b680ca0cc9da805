//! Where attestation evidence comes from: the [`EvidenceSource`] seam.
//!
//! On SEV-SNP the source asks the PSP for an attestation report carrying the
//! given REPORT_DATA and returns Trustee's SNP evidence JSON,
//! `{"attestation_report": .., "cert_chain": ..}` (the shape Trustee's
//! `snp` verifier deserializes). The KBS client only embeds the bytes as
//! the `primary_evidence`; it never looks inside, so sources for other
//! platforms (or tests) plug in the same way.

use alloc::vec::Vec;

use sha2::{Digest, Sha384};

use super::{canonical, KbsError};
use serde_json::Value;

/// Produces TEE evidence bound to `report_data`.
pub trait EvidenceSource {
    /// Evidence whose hardware-signed report carries `report_data`, as the
    /// JSON text of the `primary_evidence` value. Failures use
    /// [`KbsError::Evidence`].
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Vec<u8>, KbsError>;
}

impl<T: EvidenceSource + ?Sized> EvidenceSource for &mut T {
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Vec<u8>, KbsError> {
        (**self).evidence(report_data)
    }
}

/// The REPORT_DATA that binds a runtime-data object: SHA-384 of its RFC 8785
/// canonical form, zero-padded to 64 bytes (what Trustee's SNP verifier
/// compares against).
pub fn report_data_for(binding: &Value) -> Result<[u8; 64], KbsError> {
    let bytes = canonical::to_vec(binding)?;
    let digest = Sha384::digest(&bytes);
    let mut out = [0u8; 64];
    out[..48].copy_from_slice(&digest);
    Ok(out)
}
