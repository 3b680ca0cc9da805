//! [`ChainCheck`]: the real [`ReportSignatureCheck`]. The evidence's
//! `cert_chain` supplies the ASK and the VCEK (and may supply the ARK,
//! which must then be a trust anchor byte for byte); the policy's trust
//! anchors supply the ARK. `svtpm-snp-verify` then checks ARK -> ASK ->
//! VCEK ([`verify_chain`]) and the report against the VCEK
//! ([`verify_report`]): signature, `CHIP_ID`, `REPORTED_TCB`.
//!
//! `cert_chain` is read in the form Trustee reads it, the `sev` crate's
//! `CertTableEntry` list: `[{"cert_type": "VCEK", "data": [<DER bytes>]},
//! ...]`, with `cert_type` one of `"ARK"`, `"ASK"`, `"VCEK"`, `"VLEK"`,
//! `"CRL"`, `"Empty"` or `{"OTHER": "<uuid>"}`. This broker does not fetch
//! missing certificates from AMD's key distribution service: evidence
//! without an ASK and a VCEK is refused.
//!
//! Each refusal starts with the check that failed: `chain check failed`,
//! `signature check failed`, `chip id check failed`, `tcb check failed`,
//! or `evidence check failed` for a malformed report.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{bail, Context};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;
use svtpm::attest::snp::SnpError;
use svtpm_snp_verify::{verify_chain, verify_report, Cert, Role, TrustAnchor, Vcek, VerifyError};

use crate::verifier::ReportSignatureCheck;

/// `cert_type` of a `CertTableEntry`, as the `sev` crate serializes it.
#[derive(Debug, Deserialize)]
enum CertType {
    Empty,
    #[serde(rename = "ARK")]
    Ark,
    #[serde(rename = "ASK")]
    Ask,
    #[serde(rename = "VCEK")]
    Vcek,
    #[serde(rename = "VLEK")]
    Vlek,
    #[serde(rename = "CRL")]
    Crl,
    #[serde(rename = "OTHER")]
    Other(IgnoredAny),
}

#[derive(Deserialize)]
struct CertTableEntry {
    cert_type: CertType,
    data: Vec<u8>,
}

/// The certificates evidence presented.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PresentedChain {
    /// The ARK, if presented.
    pub ark: Option<Vec<u8>>,
    /// The ASK.
    pub ask: Option<Vec<u8>>,
    /// The VCEK.
    pub vcek: Option<Vec<u8>>,
    /// Whether a VLEK was presented.
    pub vlek: bool,
}

fn chain_refusal(why: impl std::fmt::Display) -> String {
    format!("chain check failed: {why}")
}

/// Reads the evidence's `cert_chain` member (`null` or absent: none).
pub fn parse_cert_chain(cert_chain: &Value) -> Result<PresentedChain, String> {
    let entries: Option<Vec<CertTableEntry>> = serde_json::from_value(cert_chain.clone())
        .map_err(|e| chain_refusal(format!("cert_chain is not a certificate table: {e}")))?;
    let mut out = PresentedChain::default();
    for entry in entries.unwrap_or_default() {
        let (slot, name) = match entry.cert_type {
            CertType::Ark => (&mut out.ark, "ARK"),
            CertType::Ask => (&mut out.ask, "ASK"),
            CertType::Vcek => (&mut out.vcek, "VCEK"),
            CertType::Vlek => {
                out.vlek = true;
                continue;
            }
            CertType::Empty | CertType::Crl | CertType::Other(_) => continue,
        };
        if slot.is_some() {
            return Err(chain_refusal(format!(
                "cert_chain holds more than one {name} certificate"
            )));
        }
        *slot = Some(entry.data);
    }
    Ok(out)
}

/// Checks reports against the AMD chain, up to the configured ARKs.
#[derive(Debug)]
pub struct ChainCheck {
    anchors: Vec<TrustAnchor>,
}

impl ChainCheck {
    /// A check trusting `anchors` (at least one).
    pub fn new(anchors: Vec<TrustAnchor>) -> anyhow::Result<Self> {
        if anchors.is_empty() {
            bail!("a report check needs at least one trust anchor (an ARK)");
        }
        Ok(Self { anchors })
    }

    /// A check trusting the ARK certificates in `paths` (DER or PEM).
    pub fn load(paths: &[PathBuf]) -> anyhow::Result<Self> {
        let anchors = paths
            .iter()
            .map(|p| {
                TrustAnchor::from_file(p).with_context(|| {
                    format!(
                        "trust anchor {} is not usable (a trust anchor is an ARK: a \
                         self-signed RSA-4096 CA certificate)",
                        p.display()
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Self::new(anchors)
    }

    /// The trusted ARKs.
    pub fn anchors(&self) -> &[TrustAnchor] {
        &self.anchors
    }

    /// Checks ARK -> ASK -> VCEK for `presented` at time `at`; returns the
    /// VCEK.
    pub fn check_chain(&self, presented: &PresentedChain, at: SystemTime) -> Result<Vcek, String> {
        let vcek = match (&presented.vcek, presented.vlek) {
            (Some(v), _) => v,
            (None, true) => {
                return Err(chain_refusal(
                    "the report is endorsed by a VLEK; this broker verifies VCEK chains only",
                ))
            }
            (None, false) => {
                return Err(chain_refusal(
                    "the evidence carries no VCEK certificate (this broker does not fetch \
                     certificates from AMD's key distribution service)",
                ))
            }
        };
        let ask = presented.ask.as_ref().ok_or_else(|| {
            chain_refusal("the evidence carries no ASK certificate in cert_chain")
        })?;
        let ask = Cert::from_der(Role::Ask, ask).map_err(chain_refusal)?;
        let vcek = Cert::from_der(Role::Vcek, vcek).map_err(chain_refusal)?;
        let candidates: Vec<&TrustAnchor> = match &presented.ark {
            Some(ark) => {
                let ark = Cert::from_der(Role::Ark, ark).map_err(chain_refusal)?;
                vec![self
                    .anchors
                    .iter()
                    .find(|a| a.check_presented(&ark).is_ok())
                    .ok_or_else(|| chain_refusal(VerifyError::ArkNotAnchor))?]
            }
            None => self.anchors.iter().collect(),
        };
        let mut first_error = None;
        for anchor in candidates {
            match verify_chain(anchor, &ask, &vcek, at) {
                Ok(v) => return Ok(v),
                // With several anchors, the one that names the ASK's issuer
                // explains the failure best.
                Err(e) => {
                    let named = ask.certificate().tbs_certificate.issuer
                        == anchor.ark().certificate().tbs_certificate.subject;
                    if named || first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
        Err(chain_refusal(first_error.map_or_else(
            || "no trust anchor".to_string(),
            |e| e.to_string(),
        )))
    }
}

/// The refusal detail for a report that failed against its VCEK.
fn report_refusal(e: VerifyError) -> String {
    match e {
        VerifyError::ChipIdMismatch => format!("chip id check failed: {e}"),
        VerifyError::TcbMismatch { .. } => format!("tcb check failed: {e}"),
        VerifyError::NotVcekSigned => format!("signature check failed: {e}"),
        VerifyError::Report(SnpError::SignatureInvalid) => {
            "signature check failed: report signature does not verify under the VCEK".into()
        }
        VerifyError::Report(inner @ (SnpError::SignatureEncoding | SnpError::PublicKey)) => {
            format!("signature check failed: {inner}")
        }
        other => format!("evidence check failed: {other}"),
    }
}

impl ReportSignatureCheck for ChainCheck {
    fn check(&self, report: &[u8], cert_chain: &Value) -> Result<(), String> {
        let presented = parse_cert_chain(cert_chain)?;
        let vcek = self.check_chain(&presented, SystemTime::now())?;
        verify_report(report, &vcek).map_err(report_refusal)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cert_chain_is_read_in_the_sev_crate_form() {
        let v = json!([
            {"cert_type": "VCEK", "data": [1, 2]},
            {"cert_type": "ASK", "data": [3]},
            {"cert_type": "ARK", "data": [4]},
            {"cert_type": "CRL", "data": [5]},
            {"cert_type": {"OTHER": "11111111-2222-3333-4444-555555555555"}, "data": []},
            {"cert_type": "Empty", "data": []},
        ]);
        assert_eq!(
            parse_cert_chain(&v).unwrap(),
            PresentedChain {
                ark: Some(vec![4]),
                ask: Some(vec![3]),
                vcek: Some(vec![1, 2]),
                vlek: false,
            }
        );
        assert_eq!(
            parse_cert_chain(&Value::Null).unwrap(),
            PresentedChain::default()
        );
        assert!(
            parse_cert_chain(&json!([{"cert_type": "VLEK", "data": [9]}]))
                .unwrap()
                .vlek
        );
        for (bad, why) in [
            (json!({"VCEK": [1]}), "not a certificate table"),
            (
                json!([{"cert_type": "vcek", "data": [1]}]),
                "not a certificate table",
            ),
            (
                json!([{"cert_type": "VCEK", "data": "AQ=="}]),
                "not a certificate table",
            ),
            (
                json!([{"cert_type": "VCEK", "data": [256]}]),
                "not a certificate table",
            ),
            (
                json!([{"cert_type": "VCEK", "data": [1]}, {"cert_type": "VCEK", "data": [2]}]),
                "more than one VCEK",
            ),
        ] {
            let e = parse_cert_chain(&bad).unwrap_err();
            assert!(e.starts_with("chain check failed: "), "{e}");
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn report_failures_name_their_check() {
        for (e, check) in [
            (VerifyError::ChipIdMismatch, "chip id check failed"),
            (
                VerifyError::TcbMismatch { vcek: 1, report: 2 },
                "tcb check failed",
            ),
            (VerifyError::NotVcekSigned, "signature check failed"),
            (
                VerifyError::Report(SnpError::SignatureInvalid),
                "signature check failed",
            ),
            (
                VerifyError::Report(SnpError::ReportVersion(9)),
                "evidence check failed",
            ),
        ] {
            let detail = report_refusal(e);
            assert!(detail.starts_with(check), "{detail}");
        }
    }

    #[test]
    fn needs_an_anchor() {
        assert!(ChainCheck::new(Vec::new()).is_err());
        let e = ChainCheck::load(&[PathBuf::from("/nonexistent/ark.pem")]).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/ark.pem"), "{e:#}");
    }
}
