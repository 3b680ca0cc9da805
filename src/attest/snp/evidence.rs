//! SEV-SNP evidence for the key broker: [`SnpEvidence`] asks the PSP for an
//! attestation report of VMPL0 carrying the broker's REPORT_DATA, takes the
//! certificate table the host returned with it, and encodes both as the
//! `primary_evidence` JSON of Trustee's SNP verifier:
//!
//! ```text
//! {"attestation_report": [<0x4A0 report bytes>],
//!  "cert_chain": [{"cert_type": "VCEK", "data": [<DER bytes>]}, ...]}
//! ```
//!
//! `cert_chain` has the shape of the virtee `sev` crate's `CertTableEntry`
//! list, which Trustee deserializes. The report is the raw report as a
//! byte array, which the development broker reads; a stock Trustee reads
//! the `sev` crate's field-by-field form instead (see `docs/kbs.md`).
//!
//! The transport must also hand over the certificate table
//! ([`CertTableSource`]): on SNP that is the extended guest request's
//! certificate buffer, on the development platform the host channel's
//! SNP_GUEST_REQUEST answer. Both come from the host and prove nothing by
//! themselves: the broker checks the certificates against its own ARK.

use alloc::vec::Vec;
use core::fmt;

use serde::Serialize;
use zerocopy::IntoBytes;

use super::certs::{parse_cert_table, CertEntry, CertTableError};
use super::error::SnpError;
use super::messenger::{GuestMessenger, GuestRequestTransport};
use super::payload::KEY_SEL_DEFAULT;
use super::report::AttestationReport;
use crate::attest::kbs::{EvidenceSource, KbsError};
use crate::hostchan::{ChannelGuestRequest, Region};

/// The VMPL svtpm attests as: only VMPL0 may receive the state key.
pub const REPORT_VMPL: u32 = 0;

/// A guest request transport that also returns the certificate table the
/// host supplied with the most recent request.
pub trait CertTableSource {
    /// The certificate table of the most recent guest request (empty if
    /// the host supplied none), handed over once: until the next request,
    /// a second call returns an empty table.
    fn take_cert_table(&mut self) -> Vec<u8>;
}

impl<T: CertTableSource + ?Sized> CertTableSource for &mut T {
    fn take_cert_table(&mut self) -> Vec<u8> {
        (**self).take_cert_table()
    }
}

/// The host channel's SNP_GUEST_REQUEST adapter (development platform):
/// the table is the one that came back with the last answer.
impl<R: Region> CertTableSource for ChannelGuestRequest<'_, R> {
    fn take_cert_table(&mut self) -> Vec<u8> {
        ChannelGuestRequest::take_cert_table(self)
    }
}

/// Why no evidence was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceError {
    /// The report request failed (transport, response checks, firmware
    /// status).
    Report(SnpError),
    /// The firmware's report does not carry the REPORT_DATA asked for.
    ReportDataMismatch,
    /// The firmware's report is not of the VMPL asked for.
    VmplMismatch {
        /// The report's VMPL.
        found: u32,
    },
    /// The host's certificate table is malformed.
    CertTable(CertTableError),
    /// The evidence could not be encoded as JSON.
    Encoding,
}

impl EvidenceError {
    /// A fixed description, for [`KbsError::Evidence`].
    pub const fn reason(&self) -> &'static str {
        match self {
            EvidenceError::Report(_) => "the PSP did not return an attestation report",
            EvidenceError::ReportDataMismatch => {
                "the PSP's report does not carry the requested REPORT_DATA"
            }
            EvidenceError::VmplMismatch { .. } => "the PSP's report is not of VMPL0",
            EvidenceError::CertTable(_) => "the host's certificate table is malformed",
            EvidenceError::Encoding => "the evidence cannot be encoded",
        }
    }
}

impl fmt::Display for EvidenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvidenceError::Report(e) => write!(f, "attestation report request failed: {e}"),
            EvidenceError::ReportDataMismatch => f.write_str(self.reason()),
            EvidenceError::VmplMismatch { found } => {
                write!(
                    f,
                    "the PSP's report is of VMPL {found}, VMPL0 was requested"
                )
            }
            EvidenceError::CertTable(e) => write!(f, "the host's certificate table: {e}"),
            EvidenceError::Encoding => f.write_str(self.reason()),
        }
    }
}

impl core::error::Error for EvidenceError {}

impl From<SnpError> for EvidenceError {
    fn from(e: SnpError) -> Self {
        EvidenceError::Report(e)
    }
}

impl From<CertTableError> for EvidenceError {
    fn from(e: CertTableError) -> Self {
        EvidenceError::CertTable(e)
    }
}

/// One `cert_chain` member, as the `sev` crate serializes `CertTableEntry`.
#[derive(Serialize)]
struct ChainEntry<'a> {
    cert_type: &'static str,
    data: &'a [u8],
}

#[derive(Serialize)]
struct Evidence<'a> {
    attestation_report: &'a [u8],
    cert_chain: Vec<ChainEntry<'a>>,
}

/// Encodes a report and its certificates as SNP evidence JSON (see the
/// module documentation).
pub fn encode_evidence(
    report: &AttestationReport,
    certs: &[CertEntry<'_>],
) -> Result<Vec<u8>, EvidenceError> {
    let evidence = Evidence {
        attestation_report: report.as_bytes(),
        cert_chain: certs
            .iter()
            .map(|c| ChainEntry {
                cert_type: c.kind.trustee_name(),
                data: c.data,
            })
            .collect(),
    };
    serde_json::to_vec(&evidence).map_err(|_| EvidenceError::Encoding)
}

/// The SEV-SNP [`EvidenceSource`]: reports from the PSP through
/// `messenger` (which holds VMPCK0) over `transport`.
pub struct SnpEvidence<'a, T: ?Sized> {
    messenger: &'a mut GuestMessenger,
    transport: &'a mut T,
    key_sel: u32,
    last_error: Option<EvidenceError>,
}

impl<T: ?Sized> fmt::Debug for SnpEvidence<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnpEvidence")
            .field("messenger", &self.messenger)
            .field("key_sel", &self.key_sel)
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

impl<'a, T: GuestRequestTransport + CertTableSource + ?Sized> SnpEvidence<'a, T> {
    /// Evidence from reports requested through `messenger` over
    /// `transport`, signed with the key the firmware chooses
    /// (`KEY_SEL` 0: the VLEK if the host loaded one, else the VCEK).
    pub fn new(messenger: &'a mut GuestMessenger, transport: &'a mut T) -> Self {
        SnpEvidence {
            messenger,
            transport,
            key_sel: KEY_SEL_DEFAULT,
            last_error: None,
        }
    }

    /// Asks for reports signed with the key `key_sel` selects
    /// (`payload::KEY_SEL_*`).
    pub fn with_key_sel(mut self, key_sel: u32) -> Self {
        self.key_sel = key_sel;
        self
    }

    /// Why the last [`EvidenceSource::evidence`] call failed, in full (the
    /// [`KbsError`] it returned carries only a fixed reason).
    pub fn last_error(&self) -> Option<EvidenceError> {
        self.last_error
    }

    /// Requests a VMPL0 report binding `report_data` and encodes it with
    /// the host's certificate table.
    pub fn collect(&mut self, report_data: &[u8; 64]) -> Result<Vec<u8>, EvidenceError> {
        // A table left from an earlier request must not be taken for this
        // report's.
        drop(self.transport.take_cert_table());
        let report = self.messenger.request_report(
            &mut *self.transport,
            report_data,
            REPORT_VMPL,
            self.key_sel,
        )?;
        let table = self.transport.take_cert_table();
        if report.report_data != *report_data {
            return Err(EvidenceError::ReportDataMismatch);
        }
        if report.vmpl.get() != REPORT_VMPL {
            return Err(EvidenceError::VmplMismatch {
                found: report.vmpl.get(),
            });
        }
        let certs = parse_cert_table(&table)?;
        encode_evidence(&report, &certs)
    }
}

impl<T: GuestRequestTransport + CertTableSource + ?Sized> EvidenceSource for SnpEvidence<'_, T> {
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Vec<u8>, KbsError> {
        let result = self.collect(report_data);
        self.last_error = result.as_ref().err().copied();
        result.map_err(|e| {
            log::warn!("SNP evidence: {e}");
            KbsError::Evidence { reason: e.reason() }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::snp::certs::{CertKind, ENTRY_LEN, GUID_ARK, GUID_ASK, GUID_VCEK};
    use crate::attest::snp::TransportError;
    use aes_gcm::aead::AeadInPlace;
    use aes_gcm::{Aes256Gcm, KeyInit};
    use alloc::vec;
    use serde_json::Value;
    use zeroize::Zeroizing;

    const KEY: [u8; 32] = [0x42; 32];

    /// A stand-in firmware from the specification's byte offsets: answers
    /// MSG_REPORT_REQ with an (unsigned) report, and returns `table` as
    /// the host's certificate table.
    struct Firmware {
        table: Vec<u8>,
        pending_table: Vec<u8>,
        /// XORed into the REPORT_DATA of the report it returns.
        flip_report_data: u8,
        /// The VMPL it reports instead of the requested one.
        vmpl_override: Option<u32>,
        fail: bool,
        requests: usize,
    }

    impl Firmware {
        fn new(table: Vec<u8>) -> Self {
            Firmware {
                table,
                pending_table: Vec::new(),
                flip_report_data: 0,
                vmpl_override: None,
                fail: false,
                requests: 0,
            }
        }
    }

    impl GuestRequestTransport for Firmware {
        fn exchange(&mut self, req: &[u8], rsp: &mut [u8]) -> Result<(), TransportError> {
            self.requests += 1;
            if self.fail {
                return Err(TransportError { code: 7 });
            }
            let cipher = Aes256Gcm::new(&KEY.into());
            let seqno = u64::from_le_bytes(req[0x20..0x28].try_into().unwrap());
            let mut iv = [0u8; 12];
            iv[..8].copy_from_slice(&seqno.to_le_bytes());
            let mut payload = req[0x60..].to_vec();
            cipher
                .decrypt_in_place_detached(
                    &iv.into(),
                    &req[0x30..0x60],
                    &mut payload,
                    req[..16].into(),
                )
                .unwrap();
            let mut report = vec![0u8; 0x4A0];
            report[0] = 3; // version
            report[0x34] = 1; // ECDSA P-384
            report[0x50..0x90].copy_from_slice(&payload[..64]);
            report[0x50] ^= self.flip_report_data;
            let vmpl = self
                .vmpl_override
                .unwrap_or(u32::from_le_bytes(payload[0x40..0x44].try_into().unwrap()));
            report[0x30..0x34].copy_from_slice(&vmpl.to_le_bytes());
            report[0x90..0xC0].fill(0x4d);
            let mut body = vec![0u8; 0x20];
            body[4..8].copy_from_slice(&0x4A0u32.to_le_bytes());
            body.extend_from_slice(&report);

            rsp.fill(0);
            let rsp_seqno = seqno + 1;
            rsp[0x20..0x28].copy_from_slice(&rsp_seqno.to_le_bytes());
            rsp[0x30] = 1;
            rsp[0x31] = 1;
            rsp[0x32] = 0x60;
            rsp[0x34] = 6;
            rsp[0x35] = 1;
            rsp[0x36..0x38].copy_from_slice(&(body.len() as u16).to_le_bytes());
            iv[..8].copy_from_slice(&rsp_seqno.to_le_bytes());
            let aad = rsp[0x30..0x60].to_vec();
            let tag = cipher
                .encrypt_in_place_detached(&iv.into(), &aad, &mut body)
                .unwrap();
            rsp[..16].copy_from_slice(&tag);
            rsp[0x60..0x60 + body.len()].copy_from_slice(&body);
            self.pending_table = self.table.clone();
            Ok(())
        }
    }

    impl CertTableSource for Firmware {
        fn take_cert_table(&mut self) -> Vec<u8> {
            core::mem::take(&mut self.pending_table)
        }
    }

    fn messenger() -> GuestMessenger {
        GuestMessenger::new(Zeroizing::new(KEY), 0, GuestMessenger::FIRST_SEQNO).unwrap()
    }

    fn table(entries: &[([u8; 16], &[u8])]) -> Vec<u8> {
        let mut head = Vec::new();
        let mut body = Vec::new();
        for (guid, data) in entries {
            let offset = (entries.len() + 1) * ENTRY_LEN + body.len();
            head.extend_from_slice(guid);
            head.extend_from_slice(&(offset as u32).to_le_bytes());
            head.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(data);
        }
        head.extend_from_slice(&[0; ENTRY_LEN]);
        head.extend_from_slice(&body);
        head
    }

    fn bytes(v: &Value) -> Vec<u8> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn evidence_is_trustee_shaped_and_binds_report_data() {
        let mut fw = Firmware::new(table(&[
            (GUID_VCEK, &[0x30, 0x82, 1, 2][..]),
            (GUID_ASK, &[0x30, 0x82, 3][..]),
            (GUID_ARK, &[0x30, 0x82, 4, 5, 6][..]),
        ]));
        let mut m = messenger();
        let mut source = SnpEvidence::new(&mut m, &mut fw);
        let data = [0xA5; 64];
        let json = source.evidence(&data).unwrap();
        assert_eq!(source.last_error(), None);
        let v: Value = serde_json::from_slice(&json).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 2, "{v}");
        let report = bytes(&v["attestation_report"]);
        assert_eq!(report.len(), 0x4A0);
        assert_eq!(report[0x50..0x90], data);
        assert_eq!(report[0x30..0x34], [0, 0, 0, 0], "VMPL0 was asked for");
        let chain = v["cert_chain"].as_array().unwrap();
        let got: Vec<(&str, Vec<u8>)> = chain
            .iter()
            .map(|e| {
                assert_eq!(e.as_object().unwrap().len(), 2);
                (e["cert_type"].as_str().unwrap(), bytes(&e["data"]))
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("VCEK", vec![0x30, 0x82, 1, 2]),
                ("ASK", vec![0x30, 0x82, 3]),
                ("ARK", vec![0x30, 0x82, 4, 5, 6]),
            ]
        );
        // The messenger moved on by one exchange.
        assert_eq!(m.next_seqno(), GuestMessenger::FIRST_SEQNO + 2);
    }

    #[test]
    fn no_table_gives_an_empty_chain_and_stale_tables_are_dropped() {
        let mut fw = Firmware::new(Vec::new());
        // Left over from some earlier request: must not be used.
        fw.pending_table = table(&[(GUID_VCEK, b"stale")]);
        let mut m = messenger();
        let json = SnpEvidence::new(&mut m, &mut fw)
            .evidence(&[1; 64])
            .unwrap();
        let v: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["cert_chain"], Value::Array(Vec::new()));
    }

    #[test]
    fn each_failure_is_named() {
        let mut m = messenger();
        let mut fw = Firmware::new(vec![0xff; 40]);
        let mut s = SnpEvidence::new(&mut m, &mut fw);
        let e = s.evidence(&[2; 64]).unwrap_err();
        assert_eq!(
            e,
            KbsError::Evidence {
                reason: "the host's certificate table is malformed"
            }
        );
        assert_eq!(
            s.last_error(),
            Some(EvidenceError::CertTable(CertTableError::Unterminated))
        );

        let mut m = messenger();
        let mut fw = Firmware::new(Vec::new());
        fw.flip_report_data = 1;
        let mut s = SnpEvidence::new(&mut m, &mut fw);
        assert!(s.evidence(&[2; 64]).is_err());
        assert_eq!(s.last_error(), Some(EvidenceError::ReportDataMismatch));

        let mut m = messenger();
        let mut fw = Firmware::new(Vec::new());
        fw.vmpl_override = Some(1);
        let mut s = SnpEvidence::new(&mut m, &mut fw);
        assert!(s.evidence(&[2; 64]).is_err());
        assert_eq!(
            s.last_error(),
            Some(EvidenceError::VmplMismatch { found: 1 })
        );

        let mut m = messenger();
        let mut fw = Firmware::new(Vec::new());
        fw.fail = true;
        let mut s = SnpEvidence::new(&mut m, &mut fw);
        let e = s.evidence(&[2; 64]).unwrap_err();
        assert_eq!(
            e,
            KbsError::Evidence {
                reason: "the PSP did not return an attestation report"
            }
        );
        assert_eq!(
            s.last_error(),
            Some(EvidenceError::Report(SnpError::Transport(TransportError {
                code: 7
            })))
        );
        // The messenger wiped its key: a retry cannot reuse the IV.
        assert_eq!(
            s.evidence(&[2; 64]).unwrap_err(),
            KbsError::Evidence {
                reason: "the PSP did not return an attestation report"
            }
        );
        assert_eq!(
            s.last_error(),
            Some(EvidenceError::Report(SnpError::Disabled))
        );
        assert_eq!(fw.requests, 1);
        assert!(m.is_disabled());
    }

    #[test]
    fn success_clears_the_last_error() {
        let mut m = messenger();
        let mut fw = Firmware::new(vec![0xff; 40]);
        let mut s = SnpEvidence::new(&mut m, &mut fw);
        assert!(s.evidence(&[3; 64]).is_err());
        s.transport.table = Vec::new();
        s.evidence(&[3; 64]).unwrap();
        assert_eq!(s.last_error(), None);
    }

    #[test]
    fn encodes_every_kind_by_trustee_name() {
        let report = {
            let mut raw = vec![0u8; 0x4A0];
            raw[0] = 2;
            raw[0x34] = 1;
            raw
        };
        let report = AttestationReport::parse(&report).unwrap();
        let certs: Vec<CertEntry<'_>> = CertKind::ALL
            .iter()
            .map(|&kind| CertEntry { kind, data: b"x" })
            .collect();
        let v: Value = serde_json::from_slice(&encode_evidence(report, &certs).unwrap()).unwrap();
        let names: Vec<&str> = v["cert_chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["cert_type"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ARK", "ASK", "VCEK", "VLEK", "CRL"]);
    }
}
