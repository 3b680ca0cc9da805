//! The broker's policy: which launch measurements it trusts, whether a
//! debuggable guest may get keys, where the trust anchors for report
//! signatures are, and how long sessions and tokens live. Loaded from a
//! JSON file:
//!
//! ```json
//! {
//!   "allowed_measurements": ["<96 hex digits>", "..."],
//!   "allow_debug": false,
//!   "trust_anchors": ["ark.pem", "ask.pem"],
//!   "session_lifetime_secs": 300,
//!   "token_lifetime_secs": 300
//! }
//! ```
//!
//! Relative trust anchor paths are relative to the policy file. Unknown
//! members are refused, so a misspelt check is not silently skipped.
//!
//! [`Policy::check`] applies the checks to a report whose signature has
//! already been verified: REPORT_DATA binding, VMPL 0, the debug bit, the
//! measurement allowlist. Each failure names the check.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::refusal::Refusal;
use crate::report::{hex, ParsedReport};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    allowed_measurements: Vec<String>,
    #[serde(default)]
    allow_debug: bool,
    #[serde(default)]
    trust_anchors: Vec<PathBuf>,
    #[serde(default = "default_lifetime")]
    session_lifetime_secs: u64,
    #[serde(default = "default_lifetime")]
    token_lifetime_secs: u64,
}

fn default_lifetime() -> u64 {
    300
}

/// The loaded policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Launch measurements accepted.
    pub allowed_measurements: Vec<[u8; 48]>,
    /// Whether a guest whose policy allows debugging may attest.
    pub allow_debug: bool,
    /// Trust anchor files for the signature check (absolute).
    pub trust_anchors: Vec<PathBuf>,
    /// How long a session (and its nonce) lives.
    pub session_lifetime: Duration,
    /// How long a token is valid.
    pub token_lifetime: Duration,
}

fn parse_measurement(text: &str) -> anyhow::Result<[u8; 48]> {
    let t = text.trim();
    if t.len() != 96 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("measurement {t:?} is not 96 hex digits (a SHA-384 launch digest)");
    }
    let mut m = [0u8; 48];
    for (i, byte) in m.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&t[2 * i..2 * i + 2], 16)?;
    }
    Ok(m)
}

impl Policy {
    /// A policy accepting `measurements`, debug off, 5-minute lifetimes.
    pub fn new(measurements: Vec<[u8; 48]>) -> Self {
        Self {
            allowed_measurements: measurements,
            allow_debug: false,
            trust_anchors: Vec::new(),
            session_lifetime: Duration::from_secs(default_lifetime()),
            token_lifetime: Duration::from_secs(default_lifetime()),
        }
    }

    /// Parses a policy document; relative anchor paths are taken relative
    /// to `base`.
    pub fn parse(text: &str, base: &Path) -> anyhow::Result<Self> {
        let f: PolicyFile = serde_json::from_str(text).context("policy is not valid")?;
        let allowed_measurements = f
            .allowed_measurements
            .iter()
            .map(|m| parse_measurement(m))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if f.session_lifetime_secs == 0 || f.token_lifetime_secs == 0 {
            bail!("session and token lifetimes must be at least one second");
        }
        Ok(Self {
            allowed_measurements,
            allow_debug: f.allow_debug,
            trust_anchors: f.trust_anchors.into_iter().map(|p| base.join(p)).collect(),
            session_lifetime: Duration::from_secs(f.session_lifetime_secs),
            token_lifetime: Duration::from_secs(f.token_lifetime_secs),
        })
    }

    /// Loads a policy file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read policy {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).with_context(|| format!("policy {}", path.display()))
    }

    /// Checks a verified report against the policy and the REPORT_DATA the
    /// session's runtime data must produce.
    pub fn check(
        &self,
        report: &ParsedReport,
        expected_report_data: &[u8; 64],
    ) -> Result<(), Refusal> {
        if report.report_data != *expected_report_data {
            return Err(Refusal::attestation(format!(
                "report_data check failed: report carries {}, runtime data hashes to {}",
                hex(&report.report_data),
                hex(expected_report_data)
            )));
        }
        if report.vmpl != 0 {
            return Err(Refusal::attestation(format!(
                "vmpl check failed: report is from VMPL {}, only VMPL 0 (svtpm) may attest",
                report.vmpl
            )));
        }
        if report.debug_allowed() && !self.allow_debug {
            return Err(Refusal::attestation(format!(
                "debug check failed: guest policy {:#x} allows debugging (bit 19) and the \
                 broker policy forbids it",
                report.policy
            )));
        }
        if !self.allowed_measurements.contains(&report.measurement) {
            return Err(Refusal::attestation(format!(
                "measurement check failed: launch measurement {} is not in the allowlist",
                hex(&report.measurement)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\
                     202122232425262728292a2b2c2d2e2f";

    #[test]
    fn parses_and_refuses_bad_files() {
        let p = Policy::parse(
            &format!(r#"{{"allowed_measurements":["{M}"],"trust_anchors":["ark.pem"]}}"#),
            Path::new("/etc/kbs"),
        )
        .unwrap();
        assert_eq!(p.allowed_measurements[0][47], 0x2f);
        assert!(!p.allow_debug);
        assert_eq!(p.trust_anchors, vec![PathBuf::from("/etc/kbs/ark.pem")]);
        assert_eq!(p.session_lifetime, Duration::from_secs(300));
        for bad in [
            r#"{"allowed_measurements":["00"]}"#.to_string(),
            format!(r#"{{"allowed_measurements":["{M}"],"allow_debugg":true}}"#),
            format!(r#"{{"allowed_measurements":["{M}"],"session_lifetime_secs":0}}"#),
            "{}".into(),
        ] {
            assert!(Policy::parse(&bad, Path::new(".")).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_check_names_itself() {
        let m = parse_measurement(M).unwrap();
        let policy = Policy::new(vec![m]);
        let good = ParsedReport {
            version: 2,
            guest_svn: 0,
            policy: 0x30000,
            vmpl: 0,
            sig_algo: 1,
            report_data: [9; 64],
            measurement: m,
            host_data: [0; 32],
            reported_tcb: 0,
        };
        policy.check(&good, &[9; 64]).unwrap();
        let cases: [(ParsedReport, [u8; 64], &str); 4] = [
            (good.clone(), [8; 64], "report_data check"),
            (
                ParsedReport {
                    vmpl: 1,
                    ..good.clone()
                },
                [9; 64],
                "vmpl check",
            ),
            (
                ParsedReport {
                    policy: 0x30000 | (1 << 19),
                    ..good.clone()
                },
                [9; 64],
                "debug check",
            ),
            (
                ParsedReport {
                    measurement: [0; 48],
                    ..good.clone()
                },
                [9; 64],
                "measurement check",
            ),
        ];
        for (report, expected, check) in cases {
            let r = policy.check(&report, &expected).unwrap_err();
            assert_eq!(r.status, 401);
            assert!(r.detail.starts_with(check), "{}", r.detail);
        }
        let mut lenient = policy.clone();
        lenient.allow_debug = true;
        lenient
            .check(
                &ParsedReport {
                    policy: 1 << 19,
                    ..good
                },
                &[9; 64],
            )
            .unwrap();
    }
}
