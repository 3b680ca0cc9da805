//! Verifying evidence: the [`AttestationVerifier`] seam, and
//! [`SnpVerifier`] for Trustee's SNP evidence
//! `{"attestation_report": <report>, "cert_chain": <certificates>}`.
//!
//! The report is taken as its raw 0x4A0 bytes, a JSON array of byte values
//! (serde's form of a byte sequence). Whether it is authentic — the
//! ECDSA P-384 signature over bytes 0..0x2A0 by the VCEK, and the
//! VCEK -> ASK -> ARK chain up to the configured trust anchors — is decided
//! by a [`ReportSignatureCheck`]; the broker's own policy checks
//! ([`Policy::check`](crate::policy::Policy::check)) run on the parsed
//! report afterwards. Without a signature check configured every report is
//! refused ([`NoSignatureCheck`]); [`UnverifiedSignatures`] accepts them for
//! development without SNP hardware and says so in the log each time.

use std::path::PathBuf;

use kbs_types::Tee;
use log::warn;
use serde_json::Value;

use crate::refusal::Refusal;
use crate::report::{ParsedReport, REPORT_LEN};

/// Verifies evidence and returns the report it authenticates.
pub trait AttestationVerifier: Send + Sync {
    /// Checks `evidence` (the `primary_evidence` of an attestation from a
    /// `tee` guest) and returns its report. Policy is not checked here.
    fn verify(&self, tee: Tee, evidence: &Value) -> Result<ParsedReport, Refusal>;
}

/// Decides whether a raw report is authentic.
pub trait ReportSignatureCheck: Send + Sync {
    /// `report` is the raw report ([`REPORT_LEN`] bytes), `cert_chain` the
    /// evidence's certificate member, `anchors` the policy's trust anchor
    /// files. An error names the failed check.
    fn check(&self, report: &[u8], cert_chain: &Value, anchors: &[PathBuf]) -> Result<(), String>;
}

/// Refuses every report: the fail-closed default until a real check is
/// configured.
#[derive(Debug, Default)]
pub struct NoSignatureCheck;

impl ReportSignatureCheck for NoSignatureCheck {
    fn check(&self, _: &[u8], _: &Value, _: &[PathBuf]) -> Result<(), String> {
        Err("no report signature check is configured (the broker refuses all evidence)".into())
    }
}

/// Accepts every report without checking its signature. For development
/// without SNP hardware only: anyone can then forge evidence.
#[derive(Debug, Default)]
pub struct UnverifiedSignatures;

impl ReportSignatureCheck for UnverifiedSignatures {
    fn check(&self, _: &[u8], _: &Value, _: &[PathBuf]) -> Result<(), String> {
        warn!("report signature NOT verified (--insecure-unverified-reports)");
        Ok(())
    }
}

/// The SNP evidence verifier.
pub struct SnpVerifier {
    signature: Box<dyn ReportSignatureCheck>,
    anchors: Vec<PathBuf>,
}

impl std::fmt::Debug for SnpVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnpVerifier")
            .field("anchors", &self.anchors)
            .finish_non_exhaustive()
    }
}

impl SnpVerifier {
    /// A verifier using `signature` with the trust anchor files `anchors`.
    pub fn new(signature: Box<dyn ReportSignatureCheck>, anchors: Vec<PathBuf>) -> Self {
        Self { signature, anchors }
    }
}

/// Extracts the raw report and the certificate member from SNP evidence.
pub fn split_snp_evidence(evidence: &Value) -> Result<(Vec<u8>, Value), Refusal> {
    let obj = evidence.as_object().ok_or_else(|| {
        Refusal::attestation("evidence check failed: SNP evidence is not a JSON object")
    })?;
    let report = obj
        .get("attestation_report")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            Refusal::attestation(
                "evidence check failed: attestation_report is missing or not a byte array",
            )
        })?;
    if report.len() != REPORT_LEN {
        return Err(Refusal::attestation(format!(
            "evidence check failed: attestation_report is {} bytes, expected {REPORT_LEN}",
            report.len()
        )));
    }
    let raw = report
        .iter()
        .map(|v| v.as_u64().and_then(|b| u8::try_from(b).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| {
            Refusal::attestation("evidence check failed: attestation_report holds a non-byte")
        })?;
    let chain = obj.get("cert_chain").cloned().unwrap_or(Value::Null);
    Ok((raw, chain))
}

impl AttestationVerifier for SnpVerifier {
    fn verify(&self, tee: Tee, evidence: &Value) -> Result<ParsedReport, Refusal> {
        if tee != Tee::Snp {
            return Err(Refusal::attestation(format!(
                "tee check failed: this broker verifies snp evidence, the session is {tee:?}"
            )));
        }
        let (raw, chain) = split_snp_evidence(evidence)?;
        self.signature
            .check(&raw, &chain, &self.anchors)
            .map_err(|why| Refusal::attestation(format!("signature check failed: {why}")))?;
        ParsedReport::parse(&raw)
            .ok_or_else(|| Refusal::attestation("evidence check failed: report too short"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evidence_shape_is_checked() {
        let v = SnpVerifier::new(Box::new(UnverifiedSignatures), Vec::new());
        let mut raw = [0u8; REPORT_LEN];
        raw[0x30] = 1;
        let good = json!({"attestation_report": raw.to_vec(), "cert_chain": []});
        assert_eq!(v.verify(Tee::Snp, &good).unwrap().vmpl, 1);
        for (bad, check) in [
            (json!([1, 2]), "not a JSON object"),
            (json!({"attestation_report": "AAAA"}), "not a byte array"),
            (json!({"attestation_report": [1, 2, 3]}), "is 3 bytes"),
        ] {
            let r = v.verify(Tee::Snp, &bad).unwrap_err();
            assert!(r.detail.contains(check), "{}", r.detail);
        }
        let mut too_big = raw.iter().copied().map(u64::from).collect::<Vec<_>>();
        too_big[5] = 256;
        let r = v
            .verify(Tee::Snp, &json!({"attestation_report": too_big}))
            .unwrap_err();
        assert!(r.detail.contains("non-byte"), "{}", r.detail);
        assert!(v
            .verify(Tee::Tdx, &good)
            .unwrap_err()
            .detail
            .starts_with("tee check"));
        let closed = SnpVerifier::new(Box::new(NoSignatureCheck), Vec::new());
        assert!(closed
            .verify(Tee::Snp, &good)
            .unwrap_err()
            .detail
            .starts_with("signature check failed"));
    }
}
