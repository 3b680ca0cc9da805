//! A report checked against a verified VCEK.

use svtpm::attest::snp::report::SigningKey;
use svtpm::attest::snp::{verify_report_signature, AttestationReport};

use crate::error::VerifyError;
use crate::vcek::Vcek;

/// Checks that `report` (exactly 0x4A0 bytes) is a well-formed report
/// signed by `vcek`, for `vcek`'s chip and TCB, and returns it. The
/// report's contents are left to the caller's policy.
pub fn verify_report(report: &[u8], vcek: &Vcek) -> Result<AttestationReport, VerifyError> {
    let r = AttestationReport::parse(report)?;
    if r.signing_key() != SigningKey::Vcek {
        return Err(VerifyError::NotVcekSigned);
    }
    verify_report_signature(r, vcek.key())?;
    if &r.chip_id != vcek.hwid() {
        return Err(VerifyError::ChipIdMismatch);
    }
    if r.reported_tcb != vcek.tcb() {
        return Err(VerifyError::TcbMismatch {
            vcek: vcek.tcb().raw(),
            report: r.reported_tcb.raw(),
        });
    }
    Ok(r.clone())
}
