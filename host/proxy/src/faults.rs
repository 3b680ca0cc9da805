//! Fault injection for negative tests (`--fault KIND`, repeatable). Each
//! fault applies to EVERY matching message, so no retry can get past it:
//!
//! | kind | what the image sees |
//! | --- | --- |
//! | `corrupt-http` | every HTTP response: one bit of the middle byte of the body flipped (of the encoded message's last byte when the body is empty) |
//! | `truncate-http` | every HTTP response payload cut to half its length |
//! | `drop-http` | no response to any HTTP request (the request is not relayed) |
//! | `reorder` | every response is the previous response (its type, status, payload and request id) published under the new sequence number; the first carries the request id before the current one |
//! | `corrupt-header` | every response's `resp.type` lacks the response bit |
//! | `corrupt-slot` | every SLOT_READ of a present slot: one bit of the middle byte of the slot data flipped |
//! | `tamper-report` | every `POST /kbs/v0/attest`: byte 0 of the report's MEASUREMENT (report offset 0x90) flipped before the broker sees it |
//! | `record-attest=FILE` | every `POST /kbs/v0/attest` body saved to FILE (the latest one) |
//! | `replay-attest=FILE` | every `POST /kbs/v0/attest` body replaced by FILE's contents (read at start) |
//!
//! `reorder` keeps the current sequence number: the image only reads a
//! response whose `resp.seq` is its `req.seq`, so a response under an old
//! one would be indistinguishable from a dropped one; the stale request id
//! and payload are what it must catch.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde_json::Value;

/// Offset of MEASUREMENT in the attestation report.
pub const REPORT_MEASUREMENT: usize = 0x90;

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `corrupt-http`.
    CorruptHttp,
    /// `truncate-http`.
    TruncateHttp,
    /// `drop-http`.
    DropHttp,
    /// `reorder`.
    Reorder,
    /// `corrupt-header`.
    CorruptHeader,
    /// `corrupt-slot`.
    CorruptSlot,
    /// `tamper-report`.
    TamperReport,
    /// `record-attest=FILE`.
    RecordAttest(PathBuf),
    /// `replay-attest=FILE`.
    ReplayAttest(PathBuf),
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Fault, String> {
        let file = |f: &str, kind: &str| {
            if f.is_empty() {
                Err(format!("{kind}= needs a file name"))
            } else {
                Ok(PathBuf::from(f))
            }
        };
        Ok(match s.split_once('=') {
            None => match s {
                "corrupt-http" => Fault::CorruptHttp,
                "truncate-http" => Fault::TruncateHttp,
                "drop-http" => Fault::DropHttp,
                "reorder" => Fault::Reorder,
                "corrupt-header" => Fault::CorruptHeader,
                "corrupt-slot" => Fault::CorruptSlot,
                "tamper-report" => Fault::TamperReport,
                _ => return Err(unknown(s)),
            },
            Some(("record-attest", f)) => Fault::RecordAttest(file(f, "record-attest")?),
            Some(("replay-attest", f)) => Fault::ReplayAttest(file(f, "replay-attest")?),
            Some(_) => return Err(unknown(s)),
        })
    }
}

fn unknown(s: &str) -> String {
    format!(
        "unknown fault {s:?} (known: corrupt-http, truncate-http, drop-http, reorder, \
         corrupt-header, corrupt-slot, tamper-report, record-attest=FILE, replay-attest=FILE)"
    )
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::CorruptHttp => f.write_str("corrupt-http"),
            Fault::TruncateHttp => f.write_str("truncate-http"),
            Fault::DropHttp => f.write_str("drop-http"),
            Fault::Reorder => f.write_str("reorder"),
            Fault::CorruptHeader => f.write_str("corrupt-header"),
            Fault::CorruptSlot => f.write_str("corrupt-slot"),
            Fault::TamperReport => f.write_str("tamper-report"),
            Fault::RecordAttest(p) => write!(f, "record-attest={}", p.display()),
            Fault::ReplayAttest(p) => write!(f, "replay-attest={}", p.display()),
        }
    }
}

/// The faults in force, with the replayed body loaded.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    list: Vec<Fault>,
    replay_body: Option<Vec<u8>>,
}

impl Faults {
    /// The faults `list`; reads the `replay-attest` file now, so a missing
    /// one is a start-up error.
    pub fn new(list: Vec<Fault>) -> anyhow::Result<Faults> {
        let mut replay_body = None;
        for f in &list {
            if let Fault::ReplayAttest(p) = f {
                replay_body = Some(std::fs::read(p).map_err(|e| {
                    anyhow::anyhow!("--fault replay-attest: reading {}: {e}", p.display())
                })?);
            }
        }
        Ok(Faults { list, replay_body })
    }

    /// Whether `fault` (one without a file) is in force.
    pub fn has(&self, fault: &Fault) -> bool {
        self.list.contains(fault)
    }

    /// The faults in force.
    pub fn list(&self) -> &[Fault] {
        &self.list
    }

    /// Where to record attest bodies.
    pub fn record_attest(&self) -> Option<&PathBuf> {
        self.list.iter().find_map(|f| match f {
            Fault::RecordAttest(p) => Some(p),
            _ => None,
        })
    }

    /// The body to send instead of each attest body.
    pub fn replay_body(&self) -> Option<&[u8]> {
        self.replay_body.as_deref()
    }
}

/// Flips bit 0 of `bytes[bytes.len() / 2]` (nothing if empty).
pub fn flip_middle(bytes: &mut [u8]) {
    let mid = bytes.len() / 2;
    if let Some(b) = bytes.get_mut(mid) {
        *b ^= 1;
    }
}

/// `corrupt-http` on an encoded HTTP response whose body is its last
/// `body_len` bytes.
pub fn corrupt_http(encoded: &mut [u8], body_len: usize) {
    let start = encoded.len().saturating_sub(body_len);
    if body_len > 0 {
        flip_middle(&mut encoded[start..]);
    } else if let Some(last) = encoded.last_mut() {
        *last ^= 1;
    }
}

/// `truncate-http` on an encoded payload.
pub fn truncate_http(encoded: &mut Vec<u8>) {
    encoded.truncate(encoded.len() / 2);
}

/// `corrupt-slot` on a SLOT_READ reply (`present` byte, then the data).
pub fn corrupt_slot_reply(reply: &mut [u8]) {
    if let [1, data @ ..] = reply {
        flip_middle(data);
    }
}

/// `tamper-report` on an attest request body: flips MEASUREMENT byte 0 of
/// the report in `tee-evidence.primary_evidence.attestation_report` (a
/// JSON array of byte values, or an object with a `measurement` array;
/// `primary_evidence` may also be JSON text in a string). The result is
/// re-serialized JSON (members may change order; the broker hashes the
/// canonical form of the runtime data, so that alone changes nothing).
pub fn tamper_report(body: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut v: Value = serde_json::from_slice(body).map_err(|_| "the body is not JSON")?;
    let evidence = v
        .get_mut("tee-evidence")
        .and_then(|t| t.get_mut("primary_evidence"))
        .ok_or("no tee-evidence.primary_evidence")?;
    if let Value::String(text) = evidence {
        let mut inner: Value =
            serde_json::from_str(text).map_err(|_| "primary_evidence text is not JSON")?;
        flip_measurement(&mut inner)?;
        *text = inner.to_string();
    } else {
        flip_measurement(evidence)?;
    }
    serde_json::to_vec(&v).map_err(|_| "cannot serialize the body")
}

fn flip_measurement(evidence: &mut Value) -> Result<(), &'static str> {
    let report = evidence
        .get_mut("attestation_report")
        .ok_or("no attestation_report")?;
    let byte = match report {
        Value::Array(bytes) => bytes.get_mut(REPORT_MEASUREMENT),
        Value::Object(fields) => fields
            .get_mut("measurement")
            .and_then(Value::as_array_mut)
            .and_then(|m| m.first_mut()),
        _ => None,
    }
    .ok_or("the report has no measurement byte")?;
    let old = byte
        .as_u64()
        .filter(|b| *b <= 0xFF)
        .ok_or("the report holds a non-byte")?;
    *byte = Value::from(old ^ 1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_every_kind_and_refuses_others() {
        for k in [
            "corrupt-http",
            "truncate-http",
            "drop-http",
            "reorder",
            "corrupt-header",
            "corrupt-slot",
            "tamper-report",
            "record-attest=/tmp/a",
            "replay-attest=b",
        ] {
            let f: Fault = k.parse().unwrap();
            assert_eq!(f.to_string(), k);
        }
        for bad in ["", "corrupt", "reorder=1", "record-attest=", "x=y"] {
            assert!(bad.parse::<Fault>().is_err(), "{bad}");
        }
        assert!(Faults::new(vec![Fault::ReplayAttest("/no/such/file".into())]).is_err());
    }

    #[test]
    fn byte_level_faults() {
        let mut e = vec![1, 2, 3, 10, 20, 30];
        corrupt_http(&mut e, 3);
        assert_eq!(e, [1, 2, 3, 10, 21, 30]);
        let mut e = vec![0, 0, 0, 0];
        corrupt_http(&mut e, 0);
        assert_eq!(e, [0, 0, 0, 1]);
        let mut e = vec![1, 2, 3, 4, 5];
        truncate_http(&mut e);
        assert_eq!(e, [1, 2]);
        let mut r = vec![1, 7, 7, 7];
        corrupt_slot_reply(&mut r);
        assert_eq!(r, [1, 7, 6, 7]);
        let mut absent = vec![0];
        corrupt_slot_reply(&mut absent);
        assert_eq!(absent, [0]);
    }

    #[test]
    fn tampers_the_measurement_only() {
        let mut report = vec![0u8; 0x4A0];
        report[REPORT_MEASUREMENT] = 0x42;
        let body = json!({
            "init-data": null,
            "runtime-data": {"nonce": "n"},
            "tee-evidence": {
                "primary_evidence": {"attestation_report": report, "cert_chain": []},
                "additional_evidence": ""
            }
        });
        let out = tamper_report(body.to_string().as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        let r = &v["tee-evidence"]["primary_evidence"]["attestation_report"];
        assert_eq!(r[REPORT_MEASUREMENT], 0x43);
        let mut expected = body.clone();
        expected["tee-evidence"]["primary_evidence"]["attestation_report"][REPORT_MEASUREMENT] =
            json!(0x43);
        assert_eq!(v, expected);

        // As JSON text inside a string, and in the object form.
        let inner = json!({"attestation_report": {"measurement": [9, 9]}});
        let body = json!({"tee-evidence": {"primary_evidence": inner.to_string()}});
        let out: Value =
            serde_json::from_slice(&tamper_report(body.to_string().as_bytes()).unwrap()).unwrap();
        let text = out["tee-evidence"]["primary_evidence"].as_str().unwrap();
        let inner: Value = serde_json::from_str(text).unwrap();
        assert_eq!(inner["attestation_report"]["measurement"], json!([8, 9]));

        assert!(tamper_report(b"not json").is_err());
        assert!(tamper_report(br#"{"tee-evidence":{}}"#).is_err());
        assert!(tamper_report(
            br#"{"tee-evidence":{"primary_evidence":{"attestation_report":[1,2]}}}"#
        )
        .is_err());
    }
}
