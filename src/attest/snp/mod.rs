//! SEV-SNP attestation: the guest request messages svtpm (at VMPL0) sends
//! to the PSP, and the attestation report they return.
//!
//! Everything here is pure and runs in host tests; the page transport is a
//! trait ([`GuestRequestTransport`]). The byte layouts are typed
//! (`zerocopy`) and every offset is tested against the SEV-SNP ABI
//! specification (56860). The message format, the sequence-number rules and
//! the development PSP simulator are described in `docs/attestation-snp.md`.
//!
//! Parts:
//! - [`error`]: [`SnpError`], every refusal;
//! - [`header`]: the message header, message types, IV and AAD;
//! - [`payload`]: MSG_REPORT_REQ / MSG_REPORT_RSP;
//! - [`report`]: the ATTESTATION_REPORT and `REPORT_DATA`;
//! - [`signature`]: the report's ECDSA P-384 signature;
//! - [`secrets`]: the secrets page and its VMPCKs;
//! - [`messenger`]: [`GuestMessenger`], sealing requests and opening
//!   responses with one VMPCK;
//! - [`certs`]: the host's certificate table (ARK, ASK, VCEK);
//! - [`evidence`]: [`SnpEvidence`], the key broker's evidence source.

pub mod certs;
pub mod error;
pub mod evidence;
pub mod header;
pub mod messenger;
pub mod payload;
pub mod report;
pub mod secrets;
pub mod signature;

pub use certs::{parse_cert_table, CertEntry, CertKind, CertTableError};
pub use error::{SnpError, TransportError};
pub use evidence::{CertTableSource, EvidenceError, SnpEvidence};
pub use header::{MsgHeader, MsgType};
pub use messenger::{GuestMessenger, GuestRequestTransport};
pub use payload::{parse_report_response, ReportRequest, ReportResponseHeader};
pub use report::{report_data_from_digest, AttestationReport, TcbVersion};
pub use secrets::SecretsPage;
pub use signature::{vcek_key_from_sec1, verify_report_signature};
