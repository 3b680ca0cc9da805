//! Verifying evidence: the [`AttestationVerifier`] seam, and
//! [`SnpVerifier`] for Trustee's SNP evidence
//! `{"attestation_report": <report>, "cert_chain": <certificates>}`.
//!
//! The report is taken as its raw 0x4A0 bytes, a JSON array of byte values
//! (serde's form of a byte sequence). Whether it is authentic — the
//! ECDSA P-384 signature over bytes 0..0x2A0 by the VCEK, and the
//! VCEK -> ASK -> ARK chain up to the policy's trust anchors — is decided
//! by a [`ReportSignatureCheck`]: [`ChainCheck`](crate::chain_check::ChainCheck)
//! for real, or [`UnverifiedSignatures`], which accepts every report, for
//! development without SNP hardware (and says so in the log each time).
//! [`choose_signature_check`] picks one from the policy and the command
//! line. The broker's own policy checks
//! ([`Policy::check`](crate::policy::Policy::check)) run on the parsed
//! report afterwards.

use std::path::PathBuf;

use anyhow::bail;
use kbs_types::Tee;
use log::{info, warn};
use serde_json::Value;

use crate::chain_check::ChainCheck;
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
    /// evidence's certificate member (`null` if absent). An error is the
    /// refusal detail and starts with the name of the failed check
    /// (`chain check failed: ...`, `signature check failed: ...`).
    fn check(&self, report: &[u8], cert_chain: &Value) -> Result<(), String>;
}

/// Accepts every report without checking its signature. For development
/// without SNP hardware only: anyone can then forge evidence.
#[derive(Debug, Default)]
pub struct UnverifiedSignatures;

impl ReportSignatureCheck for UnverifiedSignatures {
    fn check(&self, _: &[u8], _: &Value) -> Result<(), String> {
        warn!("report signature NOT verified (--insecure-unverified-reports)");
        Ok(())
    }
}

/// The signature check `serve` uses: the chain check whenever the policy
/// names trust anchors; [`UnverifiedSignatures`] only when asked for
/// explicitly (`insecure`) and the policy names none. Refuses both and
/// neither, with the reason.
pub fn choose_signature_check(
    trust_anchors: &[PathBuf],
    insecure: bool,
) -> anyhow::Result<Box<dyn ReportSignatureCheck>> {
    match (trust_anchors.is_empty(), insecure) {
        (false, false) => {
            let check = ChainCheck::load(trust_anchors)?;
            info!(
                "report signatures and VCEK chains are verified up to {} trusted ARK(s)",
                check.anchors().len()
            );
            Ok(Box::new(check))
        }
        (true, true) => {
            warn!(
                "report signatures will NOT be verified (--insecure-unverified-reports): \
                 anyone who can reach the broker can obtain keys with forged evidence"
            );
            Ok(Box::new(UnverifiedSignatures))
        }
        (false, true) => bail!(
            "the policy names trust anchors, so report signatures are verified; \
             --insecure-unverified-reports contradicts that: drop one of the two"
        ),
        (true, false) => bail!(
            "the policy has no trust_anchors, so no report signature can be verified: \
             add the ARK certificate (AMD's for the product, or the development ark.pem \
             of `svtpm-psp-sim gen-chain`) to trust_anchors, or pass \
             --insecure-unverified-reports for development without signatures"
        ),
    }
}

/// The SNP evidence verifier.
pub struct SnpVerifier {
    signature: Box<dyn ReportSignatureCheck>,
}

impl std::fmt::Debug for SnpVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnpVerifier").finish_non_exhaustive()
    }
}

impl SnpVerifier {
    /// A verifier deciding authenticity with `signature`.
    pub fn new(signature: Box<dyn ReportSignatureCheck>) -> Self {
        Self { signature }
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
            .check(&raw, &chain)
            .map_err(Refusal::attestation)?;
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
        let v = SnpVerifier::new(Box::new(UnverifiedSignatures));
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
        struct Refuse;
        impl ReportSignatureCheck for Refuse {
            fn check(&self, _: &[u8], chain: &Value) -> Result<(), String> {
                Err(format!("signature check failed: chain {chain}"))
            }
        }
        // The check's detail is the refusal's, and an absent chain is null.
        let closed = SnpVerifier::new(Box::new(Refuse));
        let r = closed
            .verify(Tee::Snp, &json!({"attestation_report": raw.to_vec()}))
            .unwrap_err();
        assert_eq!(r.detail, "signature check failed: chain null");
        assert_eq!(r.status, 401);
    }

    #[test]
    fn the_signature_check_follows_the_policy_and_the_flag() {
        let e = choose_signature_check(&[], false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no trust_anchors"), "{e}");
        let anchors = [PathBuf::from("ark.pem")];
        let e = choose_signature_check(&anchors, true)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("contradicts"), "{e}");
        // The anchor file must exist and be an ARK.
        assert!(choose_signature_check(&anchors, false).is_err());
        assert!(choose_signature_check(&[], true).is_ok());
    }
}
