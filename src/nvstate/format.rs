//! The sealed blob's byte layout: the fixed header, its constants, and the
//! structural checks that run before any cryptography. Owns [`BlobError`],
//! every reason a blob can be refused.
//!
//! ```text
//! off len field
//!   0   8 magic           "SVTPMNV\0"
//!   8   2 version         u16 LE, 1
//!  10   2 header_len      u16 LE, 88
//!  12   4 flags           u32 LE, 0 (reserved)
//!  16   8 generation      u64 LE, 1 for a freshly provisioned state
//!  24  16 key_id          KeyId of the sealing key
//!  40  12 nonce           random AES-GCM nonce
//!  52   4 ciphertext_len  u32 LE, payload length + 16
//!  56  32 header_mac      HMAC-SHA256(header key, bytes 0..56)
//!  88   . ciphertext      AES-256-GCM(payload), AAD = bytes 0..88
//! end-16 16 tag           GCM tag
//! ```

use core::fmt;

use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::entropy::NONCE_LEN;
use super::key::{KeyId, KEY_ID_LEN};
use super::payload::{PayloadError, MAX_PAYLOAD_LEN};

/// First eight bytes of every sealed blob.
pub const MAGIC: [u8; 8] = *b"SVTPMNV\0";

/// The only format version this code writes and reads.
pub const VERSION: u16 = 1;

/// Length of the header, in bytes.
pub const HEADER_LEN: usize = core::mem::size_of::<RawHeader>();

/// Length of the bytes covered by the header MAC (all fields before it).
pub const MACED_LEN: usize = HEADER_LEN - MAC_LEN;

/// Length of the header MAC, in bytes.
pub const MAC_LEN: usize = 32;

/// Length of the AES-GCM tag, in bytes.
pub const TAG_LEN: usize = 16;

/// Largest sealed blob: header + largest payload + tag.
pub const MAX_BLOB_LEN: usize = HEADER_LEN + MAX_PAYLOAD_LEN + TAG_LEN;

/// The header as laid out on storage.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Debug)]
#[repr(C)]
pub struct RawHeader {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: U16,
    /// [`HEADER_LEN`].
    pub header_len: U16,
    /// Reserved, zero.
    pub flags: U32,
    /// Commit counter; never goes backwards.
    pub generation: U64,
    /// Identifier of the sealing key.
    pub key_id: [u8; KEY_ID_LEN],
    /// AES-GCM nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Length of ciphertext + tag.
    pub ciphertext_len: U32,
    /// HMAC-SHA256 over the fields above.
    pub header_mac: [u8; MAC_LEN],
}

const _: () = assert!(HEADER_LEN == 88);

/// Every reason a sealed blob is refused. Checked in this order, so the
/// first failing check names the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobError {
    /// Shorter than its header or than the length its header declares
    /// (typically a torn write).
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// Does not start with [`MAGIC`]: not a sealed state blob.
    BadMagic,
    /// A format version this code does not know (a newer writer).
    UnknownVersion(u16),
    /// The header's length fields disagree with the layout or the blob size.
    BadLength,
    /// Sealed under a different key than the one given.
    WrongKey {
        /// Identifier of the key that was given.
        expected: KeyId,
        /// Identifier written in the blob.
        found: KeyId,
    },
    /// The header MAC does not verify: the header was altered.
    TamperedHeader,
    /// The GCM tag does not verify: the ciphertext or tag was altered.
    TamperedCiphertext,
    /// Authentic header with reserved flag bits set (a newer writer).
    UnsupportedFlags(u32),
    /// Authentic blob whose payload does not decode.
    BadPayload(PayloadError),
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobError::Truncated { len, needed } => {
                write!(f, "blob truncated: {len} bytes of {needed}")
            }
            BlobError::BadMagic => write!(f, "not a sealed vTPM state blob (bad magic)"),
            BlobError::UnknownVersion(v) => write!(f, "unknown state format version {v}"),
            BlobError::BadLength => write!(f, "blob length fields are inconsistent"),
            BlobError::WrongKey { expected, found } => {
                write!(f, "sealed under key {found}, not the given key {expected}")
            }
            BlobError::TamperedHeader => write!(f, "header authentication failed"),
            BlobError::TamperedCiphertext => write!(f, "ciphertext authentication failed"),
            BlobError::UnsupportedFlags(x) => write!(f, "unsupported header flags {x:#x}"),
            BlobError::BadPayload(e) => write!(f, "authentic blob with bad payload: {e}"),
        }
    }
}

impl core::error::Error for BlobError {}

/// A header that passed the structural checks, and where its ciphertext is.
#[derive(Debug)]
pub struct Framed<'a> {
    /// The header fields.
    pub header: &'a RawHeader,
    /// The header bytes (MAC input and GCM associated data).
    pub header_bytes: &'a [u8],
    /// Ciphertext without the tag.
    pub ciphertext: &'a [u8],
    /// The GCM tag.
    pub tag: &'a [u8; TAG_LEN],
}

/// Structural checks on untrusted bytes: magic, version, header and blob
/// lengths. No key needed; nothing here is authenticated yet.
pub fn frame(blob: &[u8]) -> Result<Framed<'_>, BlobError> {
    // Magic and version come first so a foreign or newer blob is named as
    // such even when it is shorter than our header.
    let m = blob.len().min(MAGIC.len());
    if blob[..m] != MAGIC[..m] {
        return Err(BlobError::BadMagic);
    }
    if blob.len() < 10 {
        return Err(BlobError::Truncated {
            len: blob.len(),
            needed: HEADER_LEN,
        });
    }
    let version = u16::from_le_bytes([blob[8], blob[9]]);
    if version != VERSION {
        return Err(BlobError::UnknownVersion(version));
    }
    let (header, body) = RawHeader::ref_from_prefix(blob).map_err(|_| BlobError::Truncated {
        len: blob.len(),
        needed: HEADER_LEN,
    })?;
    if usize::from(header.header_len.get()) != HEADER_LEN {
        return Err(BlobError::BadLength);
    }
    let ct_len = header.ciphertext_len.get() as usize;
    if !(TAG_LEN..=MAX_PAYLOAD_LEN + TAG_LEN).contains(&ct_len) {
        return Err(BlobError::BadLength);
    }
    if body.len() < ct_len {
        return Err(BlobError::Truncated {
            len: blob.len(),
            needed: HEADER_LEN + ct_len,
        });
    }
    if body.len() > ct_len {
        return Err(BlobError::BadLength);
    }
    let (ciphertext, tag) = body.split_at(ct_len - TAG_LEN);
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| BlobError::BadLength)?;
    Ok(Framed {
        header,
        header_bytes: &blob[..HEADER_LEN],
        ciphertext,
        tag,
    })
}

/// What a blob's header says, unauthenticated: for logs and tools only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Claimed generation.
    pub generation: u64,
    /// Claimed sealing key.
    pub key_id: KeyId,
    /// Total blob length.
    pub len: usize,
}

/// Reads a blob's header after the structural checks, without a key. The
/// result is NOT authenticated.
pub fn inspect(blob: &[u8]) -> Result<HeaderInfo, BlobError> {
    let f = frame(blob)?;
    Ok(HeaderInfo {
        generation: f.header.generation.get(),
        key_id: KeyId(f.header.key_id),
        len: blob.len(),
    })
}
