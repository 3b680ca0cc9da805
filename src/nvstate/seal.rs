//! Sealing and opening one blob: AES-256-GCM over the payload with the whole
//! header as associated data, plus an HMAC over the header alone so a
//! tampered header is told apart from a tampered ciphertext. Nothing from a
//! blob is released before every check has passed.

use alloc::vec::Vec;
use core::fmt;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;
use zeroize::Zeroizing;

use super::entropy::{Nonce, NONCE_LEN};
use super::format::{self, BlobError, RawHeader, HEADER_LEN, MACED_LEN, MAGIC, TAG_LEN, VERSION};
use super::key::{KeyId, StateKey};
use super::payload::StateBlobs;

type HmacSha256 = Hmac<Sha256>;

/// Why sealing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// The AEAD refused to encrypt (only possible for oversized input).
    Encrypt,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::Encrypt => write!(f, "payload encryption failed"),
        }
    }
}

impl core::error::Error for SealError {}

/// An opened blob: its authenticated generation and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The blob's generation.
    pub generation: u64,
    /// The blob's nonce (kept so a stuck entropy source is caught).
    pub nonce: [u8; NONCE_LEN],
    /// The decrypted, decoded payload.
    pub blobs: StateBlobs,
}

fn header_mac(key: &StateKey, maced: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key.header_mac_key())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(maced);
    mac
}

/// Seals `blobs` as generation `generation` under `key` with `nonce`.
pub fn seal(
    key: &StateKey,
    generation: u64,
    nonce: &Nonce,
    blobs: &StateBlobs,
) -> Result<Vec<u8>, SealError> {
    let plain = blobs.encode();
    // `StateBlobs` keeps its encoding <= MAX_PAYLOAD_LEN (1 MiB): fits u32.
    let ct_len = u32::try_from(plain.len() + TAG_LEN).map_err(|_| SealError::Encrypt)?;
    let mut header = RawHeader {
        magic: MAGIC,
        version: U16::new(VERSION),
        header_len: U16::new(HEADER_LEN as u16),
        flags: U32::new(0),
        generation: U64::new(generation),
        key_id: key.id().0,
        nonce: *nonce.bytes(),
        ciphertext_len: U32::new(ct_len),
        header_mac: [0; 32],
    };
    let mac = header_mac(key, &header.as_bytes()[..MACED_LEN]).finalize();
    header.header_mac.copy_from_slice(&mac.into_bytes());

    let mut out = Vec::with_capacity(HEADER_LEN + ct_len as usize);
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&plain);
    drop(plain);
    let cipher = Aes256Gcm::new(key.aead_key().into());
    let (head, body) = out.split_at_mut(HEADER_LEN);
    let tag = cipher
        .encrypt_in_place_detached(nonce.bytes().into(), head, body)
        .map_err(|_| SealError::Encrypt)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a blob: structure, key identifier, header MAC, GCM tag and payload
/// encoding are all checked before the payload is returned.
pub fn open(key: &StateKey, blob: &[u8]) -> Result<Opened, BlobError> {
    let framed = format::frame(blob)?;
    let found = KeyId(framed.header.key_id);
    if found != key.id() {
        return Err(BlobError::WrongKey {
            expected: key.id(),
            found,
        });
    }
    header_mac(key, &framed.header_bytes[..MACED_LEN])
        .verify_slice(&framed.header.header_mac)
        .map_err(|_| BlobError::TamperedHeader)?;
    let flags = framed.header.flags.get();
    if flags != 0 {
        return Err(BlobError::UnsupportedFlags(flags));
    }
    let mut plain = Zeroizing::new(framed.ciphertext.to_vec());
    let cipher = Aes256Gcm::new(key.aead_key().into());
    cipher
        .decrypt_in_place_detached(
            (&framed.header.nonce).into(),
            framed.header_bytes,
            plain.as_mut_slice(),
            framed.tag.into(),
        )
        .map_err(|_| BlobError::TamperedCiphertext)?;
    let blobs = StateBlobs::decode(&plain).map_err(BlobError::BadPayload)?;
    Ok(Opened {
        generation: framed.header.generation.get(),
        nonce: framed.header.nonce,
        blobs,
    })
}
