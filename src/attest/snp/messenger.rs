//! The guest side of the SNP guest request protocol: sealing a request
//! with a VMPCK and opening the firmware's response, as pure functions over
//! byte buffers. How the pages travel (the GHCB guest request exit
//! 0x80000011 on SNP, the host channel to the simulated PSP on the SVM
//! platform) is behind [`GuestRequestTransport`].
//!
//! Sequence numbers: a request carries `n`, its response `n + 1`, the next
//! request `n + 2`. The sequence number is the AES-GCM IV, so an IV must
//! never protect two different plaintexts under one key. Once a request
//! has been released, any failure (transport error, or a response that
//! fails a check) leaves the firmware's counter unknown; re-encrypting
//! another request with the same number would reuse the IV. So, as Linux's
//! sev-guest driver does, the messenger then wipes its VMPCK and refuses
//! all further use. A transport may resend the *same* request bytes while
//! the firmware is busy: that repeats a ciphertext, it does not reuse an
//! IV for new data.

use alloc::vec;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use zerocopy::byteorder::little_endian::{U16, U64};
use zerocopy::{FromBytes, FromZeros, IntoBytes};
use zeroize::{Zeroize, Zeroizing};

use super::error::{SnpError, TransportError};
use super::header::{
    iv, MsgHeader, MsgType, ALGO_AES_256_GCM, HDR_VERSION, HEADER_LEN, MAX_PAYLOAD_LEN,
    MSG_VERSION, PAGE_LEN, TAG_LEN, VMPCK_COUNT, VMPCK_LEN,
};
use super::payload::{parse_report_response, ReportRequest};
use super::report::AttestationReport;

/// Carries one sealed request to the firmware and its response back.
pub trait GuestRequestTransport {
    /// Delivers `request` (header and ciphertext, at most one page) and
    /// fills `response` (one page, [`PAGE_LEN`] bytes) with the firmware's
    /// response message.
    ///
    /// Implementations copy the response out of shared memory exactly once
    /// into `response`, which is private: the messenger must never read
    /// memory the host can change while it checks it. While the firmware
    /// reports busy, an implementation may resend the same `request` bytes.
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<(), TransportError>;
}

/// Where the messenger is in the request/response cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The next request may be sealed.
    Ready,
    /// A request was sealed; only its response may be opened.
    Pending { msg_type: u8, msg_version: u8 },
    /// The VMPCK was wiped; nothing more is possible.
    Disabled,
}

/// The guest's end of the message channel keyed by one VMPCK.
pub struct GuestMessenger {
    vmpck: Zeroizing<[u8; VMPCK_LEN]>,
    vmpck_id: u8,
    /// Sequence number of the next request; 0 once exhausted.
    seqno: u64,
    state: State,
}

impl core::fmt::Debug for GuestMessenger {
    // The key is never printed.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GuestMessenger")
            .field("vmpck_id", &self.vmpck_id)
            .field("seqno", &self.seqno)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl GuestMessenger {
    /// The sequence number of the first request after launch.
    pub const FIRST_SEQNO: u64 = 1;

    /// A messenger using VMPCK `vmpck_id` whose next request carries
    /// `next_seqno` ([`Self::FIRST_SEQNO`] for the first user after launch).
    pub fn new(
        vmpck: Zeroizing<[u8; VMPCK_LEN]>,
        vmpck_id: u8,
        next_seqno: u64,
    ) -> Result<GuestMessenger, SnpError> {
        if usize::from(vmpck_id) >= VMPCK_COUNT {
            return Err(SnpError::VmpckId(vmpck_id));
        }
        if vmpck.iter().all(|&b| b == 0) {
            return Err(SnpError::VmpckEmpty);
        }
        if next_seqno == 0 || next_seqno.checked_add(1).is_none() {
            return Err(SnpError::SeqnoExhausted);
        }
        Ok(GuestMessenger {
            vmpck,
            vmpck_id,
            seqno: next_seqno,
            state: State::Ready,
        })
    }

    /// Index of the VMPCK in use.
    pub fn vmpck_id(&self) -> u8 {
        self.vmpck_id
    }

    /// Sequence number the next request will carry.
    pub fn next_seqno(&self) -> u64 {
        self.seqno
    }

    /// Whether the VMPCK was wiped after a failure.
    pub fn is_disabled(&self) -> bool {
        self.state == State::Disabled
    }

    /// Whether the key is still held (false once wiped).
    pub fn has_key(&self) -> bool {
        self.vmpck.iter().any(|&b| b != 0)
    }

    /// Gives up on a sealed request whose fate is unknown: wipes the key.
    pub fn abandon(&mut self) {
        self.disable();
    }

    fn disable(&mut self) {
        self.vmpck.zeroize();
        self.state = State::Disabled;
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.vmpck).into())
    }

    /// Seals `payload` as a message of type `msg_type` into `out` (header,
    /// then ciphertext) and returns its length. Nothing is changed if this
    /// fails: no request exists yet.
    pub fn seal_request(
        &mut self,
        msg_type: u8,
        msg_version: u8,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, SnpError> {
        match self.state {
            State::Disabled => return Err(SnpError::Disabled),
            State::Pending { .. } => return Err(SnpError::RequestPending),
            State::Ready => {}
        }
        let len = payload.len();
        let size = u16::try_from(len)
            .ok()
            .filter(|_| len <= MAX_PAYLOAD_LEN)
            .ok_or(SnpError::PayloadTooLarge {
                len,
                max: MAX_PAYLOAD_LEN,
            })?;
        let total = HEADER_LEN + len;
        let have = out.len();
        let (head, body) = out
            .get_mut(..total)
            .ok_or(SnpError::BufferTooSmall {
                needed: total,
                have,
            })?
            .split_at_mut(HEADER_LEN);
        if self.seqno == 0 {
            return Err(SnpError::SeqnoExhausted);
        }

        let mut hdr = MsgHeader::new_zeroed();
        hdr.seqno = U64::new(self.seqno);
        hdr.algo = ALGO_AES_256_GCM;
        hdr.hdr_version = HDR_VERSION;
        hdr.hdr_size = U16::new(HEADER_LEN as u16);
        hdr.msg_type = msg_type;
        hdr.msg_version = msg_version;
        hdr.msg_size = U16::new(size);
        hdr.vmpck = self.vmpck_id;

        body.copy_from_slice(payload);
        let tag =
            match self
                .cipher()
                .encrypt_in_place_detached(&iv(self.seqno).into(), hdr.aad(), body)
            {
                Ok(tag) => tag,
                Err(_) => {
                    // Only possible beyond GCM's length limit, far above a page.
                    body.zeroize();
                    return Err(SnpError::PayloadTooLarge {
                        len,
                        max: MAX_PAYLOAD_LEN,
                    });
                }
            };
        hdr.authtag[..TAG_LEN].copy_from_slice(&tag);
        head.copy_from_slice(hdr.as_bytes());
        self.state = State::Pending {
            msg_type,
            msg_version,
        };
        Ok(total)
    }

    /// Checks the response to the pending request and decrypts its payload
    /// into `out`, returning the payload length. On success the next
    /// request's sequence number is this request's + 2; on any failure the
    /// VMPCK is wiped and the messenger refuses all further use.
    pub fn open_response(&mut self, response: &[u8], out: &mut [u8]) -> Result<usize, SnpError> {
        let (msg_type, msg_version) = match self.state {
            State::Disabled => return Err(SnpError::Disabled),
            State::Ready => return Err(SnpError::NoRequestPending),
            State::Pending {
                msg_type,
                msg_version,
            } => (msg_type, msg_version),
        };
        match self.check_and_decrypt(response, out, msg_type, msg_version) {
            Ok(len) => {
                // seal_request refused a seqno without a successor; 0 marks
                // the space as exhausted for the next seal.
                self.seqno = self.seqno.checked_add(2).unwrap_or(0);
                self.state = State::Ready;
                Ok(len)
            }
            Err(e) => {
                self.disable();
                Err(e)
            }
        }
    }

    fn check_and_decrypt(
        &self,
        response: &[u8],
        out: &mut [u8],
        msg_type: u8,
        msg_version: u8,
    ) -> Result<usize, SnpError> {
        let (hdr, body) =
            MsgHeader::read_from_prefix(response).map_err(|_| SnpError::ResponseTruncated {
                len: response.len(),
            })?;
        if usize::from(hdr.hdr_size.get()) != HEADER_LEN {
            return Err(SnpError::HeaderSize(hdr.hdr_size.get()));
        }
        if hdr.hdr_version != HDR_VERSION {
            return Err(SnpError::HeaderVersion(hdr.hdr_version));
        }
        if hdr.algo != ALGO_AES_256_GCM {
            return Err(SnpError::Algorithm(hdr.algo));
        }
        let expected_type = msg_type.wrapping_add(1);
        if hdr.msg_type != expected_type {
            return Err(SnpError::MsgType {
                expected: expected_type,
                found: hdr.msg_type,
            });
        }
        if hdr.msg_version != msg_version {
            return Err(SnpError::MsgVersion {
                expected: msg_version,
                found: hdr.msg_version,
            });
        }
        if hdr.vmpck != self.vmpck_id {
            return Err(SnpError::VmpckMismatch {
                expected: self.vmpck_id,
                found: hdr.vmpck,
            });
        }
        // seal_request guaranteed seqno + 1 exists.
        let expected = self.seqno.wrapping_add(1);
        let found = hdr.seqno.get();
        if found < expected {
            return Err(SnpError::Replayed { found });
        }
        if found != expected {
            return Err(SnpError::Seqno { expected, found });
        }
        // Reserved bytes inside the AAD; the ones outside it (0x28..0x30,
        // AUTHTAG[16..]) are neither authenticated nor used.
        for (base, bytes) in [(0x38usize, &hdr.reserved2[..]), (0x3D, &hdr.reserved3[..])] {
            if let Some(i) = bytes.iter().position(|&b| b != 0) {
                return Err(SnpError::ReservedNonZero { offset: base + i });
            }
        }
        let size = usize::from(hdr.msg_size.get());
        let max = body.len().min(MAX_PAYLOAD_LEN);
        let ciphertext = body
            .get(..size)
            .filter(|_| size <= max)
            .ok_or(SnpError::MsgSize { size, max })?;
        let have = out.len();
        let plain = out
            .get_mut(..size)
            .ok_or(SnpError::BufferTooSmall { needed: size, have })?;
        plain.copy_from_slice(ciphertext);
        if self
            .cipher()
            .decrypt_in_place_detached(&iv(found).into(), hdr.aad(), plain, hdr.tag().into())
            .is_err()
        {
            plain.zeroize();
            return Err(SnpError::Authentication);
        }
        Ok(size)
    }

    /// Seals `payload`, exchanges it through `transport` and opens the
    /// response into `out`. Any failure after sealing wipes the VMPCK.
    pub fn exchange<T: GuestRequestTransport + ?Sized>(
        &mut self,
        transport: &mut T,
        msg_type: MsgType,
        msg_version: u8,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, SnpError> {
        let mut request = vec![0u8; PAGE_LEN];
        let len = self.seal_request(msg_type.request(), msg_version, payload, &mut request)?;
        let mut response = vec![0u8; PAGE_LEN];
        if let Err(e) = transport.exchange(request.get(..len).unwrap_or(&[]), &mut response) {
            self.disable();
            return Err(SnpError::Transport(e));
        }
        self.open_response(&response, out)
    }

    /// Asks the firmware for an attestation report of `vmpl` binding
    /// `report_data`, signed with the key `key_sel` selects. A firmware
    /// refusal ([`SnpError::ReportStatus`]) arrives in an authentic
    /// response: the exchange itself succeeded and the key is kept.
    pub fn request_report<T: GuestRequestTransport + ?Sized>(
        &mut self,
        transport: &mut T,
        report_data: &[u8; 64],
        vmpl: u32,
        key_sel: u32,
    ) -> Result<AttestationReport, SnpError> {
        let request = ReportRequest::new(*report_data, vmpl, key_sel);
        let mut plain = Zeroizing::new(vec![0u8; MAX_PAYLOAD_LEN]);
        let len = self.exchange(
            transport,
            MsgType::ReportReq,
            MSG_VERSION,
            request.as_bytes(),
            &mut plain,
        )?;
        parse_report_response(plain.get(..len).unwrap_or(&[]))
    }
}

#[cfg(test)]
mod tests;
