//! The simulated PSP: answers SNP guest request messages as the firmware
//! does for SNP_GUEST_REQUEST. It keeps the four VMPCKs and a message
//! counter per VMPCK, decodes the request header from the specification's
//! byte offsets, authenticates and decrypts with the VMPCK the header
//! names, and for MSG_REPORT_REQ returns an ATTESTATION_REPORT signed by
//! the VCEK, encrypted under the same VMPCK with sequence number + 1.
//!
//! Like the firmware, it fails the whole command (no response message)
//! when the request itself is bad: wrong header, unknown key, out-of-order
//! sequence number, failed authentication. A well-formed request whose
//! contents are refused (a VMPL below the key's, a VLEK selection) gets an
//! authentic response with a non-zero `STATUS`.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use p384::ecdsa::signature::Signer;
use svtpm::attest::snp::payload::{
    KEY_SEL_DEFAULT, KEY_SEL_VCEK, KEY_SEL_VLEK, STATUS_INVALID_KEY, STATUS_INVALID_PARAM,
    STATUS_SUCCESS,
};
use svtpm::attest::snp::report::SIG_ALGO_ECDSA_P384_SHA384;
use svtpm::attest::snp::signature::encode_signature;
use svtpm::attest::snp::{AttestationReport, SecretsPage};
use zerocopy::{FromZeros, IntoBytes};
use zeroize::Zeroizing;

use crate::config::PspConfig;

/// Length of the message header.
const HDR: usize = 0x60;
/// Largest payload in a one-page message.
const MAX_PAYLOAD: usize = 4096 - HDR;
/// MSG_REPORT_REQ / MSG_REPORT_RSP.
const MSG_REPORT_REQ: u8 = 5;
/// Length of MSG_REPORT_REQ.
const REPORT_REQ_LEN: usize = 0x60;
/// Length of the report.
const REPORT_LEN: usize = 0x4A0;

/// Why the simulated firmware failed a guest request command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PspError {
    /// Shorter than a header, or than the payload it declares.
    Length,
    /// ALGO, HDR_VERSION or HDR_SIZE is not what the specification
    /// defines (offset of the field).
    Header(usize),
    /// MSG_VMPCK names no key, or a key that was never provisioned.
    Vmpck(u8),
    /// MSG_SEQNO is not one past the last message on this VMPCK.
    Seqno {
        /// Sequence number expected.
        expected: u64,
        /// Sequence number found.
        found: u64,
    },
    /// The request failed AES-GCM authentication.
    Authentication,
    /// A message type or version the simulator does not implement.
    Unsupported {
        /// MSG_TYPE.
        msg_type: u8,
        /// MSG_VERSION.
        msg_version: u8,
    },
    /// The response buffer is smaller than a page.
    ResponseBuffer,
}

impl PspError {
    /// A non-zero code for the transport to report (like the firmware
    /// error the hypervisor returns in `SW_EXITINFO2`).
    pub fn code(&self) -> u64 {
        match self {
            PspError::Length => 1,
            PspError::Header(_) => 2,
            PspError::Vmpck(_) => 3,
            PspError::Seqno { .. } => 4,
            PspError::Authentication => 5,
            PspError::Unsupported { .. } => 6,
            PspError::ResponseBuffer => 7,
        }
    }
}

impl std::fmt::Display for PspError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "simulated PSP refused the guest request: {self:?}")
    }
}

impl std::error::Error for PspError {}

/// The simulated PSP.
pub struct Psp {
    vmpck: [Zeroizing<[u8; 32]>; 4],
    /// Sequence number of the last message (response) on each VMPCK.
    last_seqno: [u64; 4],
    config: PspConfig,
    vcek: p384::ecdsa::SigningKey,
}

impl std::fmt::Debug for Psp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Psp")
            .field("last_seqno", &self.last_seqno)
            .finish_non_exhaustive()
    }
}

fn le_u64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn nonce(seqno: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&seqno.to_le_bytes());
    n
}

impl Psp {
    /// A PSP holding the VMPCKs of `secrets` (a launched guest's secrets
    /// page) and signing with `vcek`.
    pub fn new(secrets: &SecretsPage, config: PspConfig, vcek: p384::ecdsa::SigningKey) -> Psp {
        let key = |i: usize| Zeroizing::new(secrets.vmpck[i]);
        Psp {
            vmpck: [key(0), key(1), key(2), key(3)],
            last_seqno: [0; 4],
            config,
            vcek,
        }
    }

    /// The report contents this PSP uses.
    pub fn config(&self) -> &PspConfig {
        &self.config
    }

    /// Changes the report contents (e.g. a measurement for a test).
    pub fn config_mut(&mut self) -> &mut PspConfig {
        &mut self.config
    }

    /// Handles one guest request: `request` is the request page's message,
    /// `response` (at least a page) receives the response message. Returns
    /// the response length.
    pub fn handle(&mut self, request: &[u8], response: &mut [u8]) -> Result<usize, PspError> {
        if response.len() < HDR + MAX_PAYLOAD {
            return Err(PspError::ResponseBuffer);
        }
        if request.len() < HDR {
            return Err(PspError::Length);
        }
        let seqno = le_u64(request, 0x20);
        let (algo, hdr_version) = (request[0x30], request[0x31]);
        let hdr_size = u16::from_le_bytes([request[0x32], request[0x33]]);
        let (msg_type, msg_version) = (request[0x34], request[0x35]);
        let msg_size = usize::from(u16::from_le_bytes([request[0x36], request[0x37]]));
        let vmpck_id = request[0x3C];
        if algo != 1 {
            return Err(PspError::Header(0x30));
        }
        if hdr_version != 1 {
            return Err(PspError::Header(0x31));
        }
        if usize::from(hdr_size) != HDR {
            return Err(PspError::Header(0x32));
        }
        let id = usize::from(vmpck_id);
        let key = match self.vmpck.get(id) {
            Some(k) if k.iter().any(|&b| b != 0) => k.clone(),
            _ => return Err(PspError::Vmpck(vmpck_id)),
        };
        let expected = self.last_seqno[id] + 1;
        if seqno != expected {
            return Err(PspError::Seqno {
                expected,
                found: seqno,
            });
        }
        if msg_size > MAX_PAYLOAD || request.len() < HDR + msg_size {
            return Err(PspError::Length);
        }
        let cipher = Aes256Gcm::new((&*key).into());
        let mut payload = Zeroizing::new(request[HDR..HDR + msg_size].to_vec());
        let tag: [u8; 16] = request[0..16].try_into().map_err(|_| PspError::Length)?;
        cipher
            .decrypt_in_place_detached(
                &nonce(seqno).into(),
                &request[0x30..HDR],
                &mut payload,
                (&tag).into(),
            )
            .map_err(|_| PspError::Authentication)?;
        if msg_type != MSG_REPORT_REQ || msg_version != 1 {
            return Err(PspError::Unsupported {
                msg_type,
                msg_version,
            });
        }

        let body = self.report_response(&payload, vmpck_id);

        // The request was accepted: both sequence numbers are used up.
        let rsp_seqno = seqno + 1;
        self.last_seqno[id] = rsp_seqno;
        response.fill(0);
        response[0x20..0x28].copy_from_slice(&rsp_seqno.to_le_bytes());
        response[0x30] = 1;
        response[0x31] = 1;
        response[0x32..0x34].copy_from_slice(&(HDR as u16).to_le_bytes());
        response[0x34] = msg_type + 1;
        response[0x35] = msg_version;
        response[0x36..0x38].copy_from_slice(&(body.len() as u16).to_le_bytes());
        response[0x3C] = vmpck_id;
        let mut ciphertext = body;
        let aad = response[0x30..HDR].to_vec();
        let tag = cipher
            .encrypt_in_place_detached(&nonce(rsp_seqno).into(), &aad, &mut ciphertext)
            .map_err(|_| PspError::Length)?;
        response[0..16].copy_from_slice(&tag);
        response[HDR..HDR + ciphertext.len()].copy_from_slice(&ciphertext);
        Ok(HDR + ciphertext.len())
    }

    /// MSG_REPORT_RSP for a decrypted MSG_REPORT_REQ from VMPCK `vmpck_id`.
    fn report_response(&self, req: &[u8], vmpck_id: u8) -> Vec<u8> {
        let mut rsp = vec![0u8; 0x20 + REPORT_LEN];
        let status = match self.check_report_request(req, vmpck_id) {
            Ok(()) => STATUS_SUCCESS,
            Err(status) => status,
        };
        rsp[0..4].copy_from_slice(&status.to_le_bytes());
        if status == STATUS_SUCCESS {
            let mut report_data = [0u8; 64];
            report_data.copy_from_slice(&req[..64]);
            let report = self.report(&report_data, le_u32(req, 0x40));
            rsp[4..8].copy_from_slice(&(REPORT_LEN as u32).to_le_bytes());
            rsp[0x20..].copy_from_slice(report.as_bytes());
        }
        rsp
    }

    /// The firmware's checks of MSG_REPORT_REQ; `Err` carries the STATUS.
    fn check_report_request(&self, req: &[u8], vmpck_id: u8) -> Result<(), u32> {
        if req.len() != REPORT_REQ_LEN {
            return Err(STATUS_INVALID_PARAM);
        }
        let vmpl = le_u32(req, 0x40);
        // VMPCKn belongs to VMPLn: it may ask for its own VMPL or a less
        // privileged one.
        if vmpl > 3 || vmpl < u32::from(vmpck_id) {
            return Err(STATUS_INVALID_PARAM);
        }
        let key_sel = le_u32(req, 0x44);
        if key_sel & !0x3 != 0 || req[0x48..].iter().any(|&b| b != 0) {
            return Err(STATUS_INVALID_PARAM);
        }
        match key_sel {
            KEY_SEL_DEFAULT | KEY_SEL_VCEK => Ok(()),
            KEY_SEL_VLEK => Err(STATUS_INVALID_KEY),
            _ => Err(STATUS_INVALID_PARAM),
        }
    }

    /// A signed report of `vmpl` binding `report_data`.
    pub fn report(&self, report_data: &[u8; 64], vmpl: u32) -> AttestationReport {
        let c = &self.config;
        let mut r = AttestationReport::new_zeroed();
        r.version.set(c.report_version);
        r.guest_svn.set(c.guest_svn);
        r.policy.set(c.policy);
        r.family_id = c.family_id;
        r.image_id = c.image_id;
        r.vmpl.set(vmpl);
        r.signature_algo.set(SIG_ALGO_ECDSA_P384_SHA384);
        r.current_tcb = c.current_tcb;
        r.platform_info.set(c.platform_info);
        r.flags.set(0); // VCEK-signed, chip key not masked, no author key
        r.report_data = *report_data;
        r.measurement = c.measurement;
        r.host_data = c.host_data;
        r.id_key_digest = c.id_key_digest;
        r.author_key_digest = c.author_key_digest;
        r.report_id = c.report_id;
        r.report_id_ma = c.report_id_ma;
        r.reported_tcb = c.chip.reported_tcb;
        [r.cpuid_fam_id, r.cpuid_mod_id, r.cpuid_step] = c.cpuid;
        r.chip_id = c.chip.chip_id;
        r.committed_tcb = c.committed_tcb;
        [r.current_build, r.current_minor, r.current_major] = c.current_version;
        [r.committed_build, r.committed_minor, r.committed_major] = c.committed_version;
        r.launch_tcb = c.launch_tcb;
        let sig: p384::ecdsa::Signature = self.vcek.sign(r.signed_bytes());
        r.signature = encode_signature(&sig);
        r
    }
}
