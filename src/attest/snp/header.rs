//! The SNP guest request message header (SEV-SNP ABI 56860, "Message
//! Header Format"), the message types svtpm uses, and how the header feeds
//! AES-256-GCM: the IV is `MSG_SEQNO` little endian in 12 bytes, the AAD is
//! header bytes 0x30..0x60, the tag sits in `AUTHTAG[0..16]`.
//!
//! ```text
//! off  len field
//! 0x00  32 AUTHTAG      tag in bytes 0..16 for AES-256-GCM
//! 0x20   8 MSG_SEQNO    u64 LE
//! 0x28   8 reserved
//! 0x30   1 ALGO         1 = AES-256-GCM          <- AAD starts
//! 0x31   1 HDR_VERSION  1
//! 0x32   2 HDR_SIZE     0x60
//! 0x34   1 MSG_TYPE
//! 0x35   1 MSG_VERSION
//! 0x36   2 MSG_SIZE     payload length (ciphertext, tag excluded)
//! 0x38   4 reserved
//! 0x3C   1 MSG_VMPCK    0..=3
//! 0x3D  35 reserved                               <- AAD ends at 0x60
//! 0x60   . payload      ciphertext
//! ```

use zerocopy::byteorder::little_endian::{U16, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Length of the message header.
pub const HEADER_LEN: usize = core::mem::size_of::<MsgHeader>();

/// A message, header and payload, fills at most one 4 KiB page.
pub const PAGE_LEN: usize = 4096;

/// Largest payload a message page holds.
pub const MAX_PAYLOAD_LEN: usize = PAGE_LEN - HEADER_LEN;

/// First header byte covered by the AAD (`ALGO`).
pub const AAD_START: usize = 0x30;

/// Length of the AES-GCM tag kept in `AUTHTAG`.
pub const TAG_LEN: usize = 16;

/// Length of a VMPCK (an AES-256 key).
pub const VMPCK_LEN: usize = 32;

/// Number of VMPCKs (one per VMPL).
pub const VMPCK_COUNT: usize = 4;

/// `ALGO` value for AES-256-GCM.
pub const ALGO_AES_256_GCM: u8 = 1;

/// The only header version defined.
pub const HDR_VERSION: u8 = 1;

/// Message version of the request/response pairs defined here.
pub const MSG_VERSION: u8 = 1;

/// `MSG_TYPE` values (SEV-SNP ABI "Message Type Encodings"). A response's
/// type is its request's + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MsgType {
    /// MSG_CPUID_REQ.
    CpuidReq = 1,
    /// MSG_KEY_REQ: derive a key.
    KeyReq = 3,
    /// MSG_REPORT_REQ: produce an attestation report.
    ReportReq = 5,
    /// MSG_EXPORT_REQ.
    ExportReq = 7,
    /// MSG_IMPORT_REQ.
    ImportReq = 9,
    /// MSG_ABSORB_REQ.
    AbsorbReq = 11,
    /// MSG_VMRK_REQ.
    VmrkReq = 13,
    /// MSG_ABSORB_NOMA_REQ.
    AbsorbNomaReq = 15,
    /// MSG_TSC_INFO_REQ.
    TscInfoReq = 17,
}

impl MsgType {
    /// The type byte of this request.
    pub const fn request(self) -> u8 {
        self as u8
    }

    /// The type byte of the matching response.
    pub const fn response(self) -> u8 {
        self as u8 + 1
    }
}

/// The message header as laid out in the request and response pages.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Debug)]
#[repr(C)]
pub struct MsgHeader {
    /// Authentication tag; AES-256-GCM uses bytes 0..16.
    pub authtag: [u8; 32],
    /// Message sequence number; also the IV.
    pub seqno: U64,
    /// Reserved.
    pub reserved1: [u8; 8],
    /// AEAD algorithm, [`ALGO_AES_256_GCM`].
    pub algo: u8,
    /// [`HDR_VERSION`].
    pub hdr_version: u8,
    /// [`HEADER_LEN`].
    pub hdr_size: U16,
    /// A [`MsgType`] byte.
    pub msg_type: u8,
    /// Version of the payload layout.
    pub msg_version: u8,
    /// Payload length, the tag not included.
    pub msg_size: U16,
    /// Reserved.
    pub reserved2: [u8; 4],
    /// Index of the VMPCK that protects the message.
    pub vmpck: u8,
    /// Reserved.
    pub reserved3: [u8; 35],
}

const _: () = assert!(HEADER_LEN == 0x60);

impl MsgHeader {
    /// The header's AAD bytes (0x30..0x60).
    pub fn aad(&self) -> &[u8] {
        // HEADER_LEN > AAD_START by the assertion above: the range exists.
        self.as_bytes().get(AAD_START..).unwrap_or(&[])
    }

    /// The AES-GCM tag bytes of `AUTHTAG`.
    pub fn tag(&self) -> &[u8; TAG_LEN] {
        // 16 of the 32 bytes: always in range.
        self.authtag
            .first_chunk::<TAG_LEN>()
            .unwrap_or_else(|| unreachable!("AUTHTAG holds 32 bytes"))
    }
}

/// The AES-GCM nonce for sequence number `seqno`: its 8 little-endian bytes
/// followed by four zero bytes.
pub fn iv(seqno: u64) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[..8].copy_from_slice(&seqno.to_le_bytes());
    iv
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use zerocopy::FromZeros;

    #[test]
    fn offsets_match_the_abi_table() {
        assert_eq!(offset_of!(MsgHeader, authtag), 0x00);
        assert_eq!(offset_of!(MsgHeader, seqno), 0x20);
        assert_eq!(offset_of!(MsgHeader, reserved1), 0x28);
        assert_eq!(offset_of!(MsgHeader, algo), 0x30);
        assert_eq!(offset_of!(MsgHeader, hdr_version), 0x31);
        assert_eq!(offset_of!(MsgHeader, hdr_size), 0x32);
        assert_eq!(offset_of!(MsgHeader, msg_type), 0x34);
        assert_eq!(offset_of!(MsgHeader, msg_version), 0x35);
        assert_eq!(offset_of!(MsgHeader, msg_size), 0x36);
        assert_eq!(offset_of!(MsgHeader, reserved2), 0x38);
        assert_eq!(offset_of!(MsgHeader, vmpck), 0x3C);
        assert_eq!(offset_of!(MsgHeader, reserved3), 0x3D);
        assert_eq!(core::mem::size_of::<MsgHeader>(), 0x60);
        assert_eq!(MAX_PAYLOAD_LEN, 4000);
    }

    #[test]
    fn aad_is_the_last_48_header_bytes() {
        let mut h = MsgHeader::new_zeroed();
        h.algo = 0xA1;
        h.reserved3[34] = 0xEE;
        h.seqno = U64::new(7);
        let aad = h.aad();
        assert_eq!(aad.len(), 48);
        assert_eq!(aad[0], 0xA1);
        assert_eq!(aad[47], 0xEE);
        // The sequence number is not part of the AAD (it is the IV).
        assert!(!aad.contains(&7));
    }

    #[test]
    fn iv_is_seqno_little_endian_padded() {
        assert_eq!(
            iv(0x0102_0304_0506_0708),
            [8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0]
        );
    }

    #[test]
    fn response_type_is_request_plus_one() {
        assert_eq!(MsgType::ReportReq.response(), 6);
        assert_eq!(MsgType::KeyReq.response(), 4);
    }
}
