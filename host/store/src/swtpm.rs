//! Decoding swtpm's state files (`tpm2-00.permall`, `tpm2-00.volatilestate`)
//! and the blobs `swtpm_ioctl --save` writes, plain or encrypted with a
//! state key (`swtpm --key`, `swtpm_setup --keyfile`).
//!
//! Layout (big-endian), as swtpm 0.7 writes it (`swtpm_nvstore.c`):
//! ```text
//! header: u8 version (2) | u8 min_version (1) | u16 header size (10)
//!         | u16 flags | u32 total length (header included)
//! then TLVs: u16 tag | u32 length | value
//! ```
//! Flags: 0x01 encrypted with the state key, 0x02 encrypted with a migration
//! key, 0x04 migration container (what `--save` writes), 0x08 256-bit state
//! key, 0x10 256-bit migration key. Tags: 1 plain data, 2 encrypted data,
//! 3 HMAC, 4 migration data, 5 encrypted migration data, 6 IV of 2, 7 IV of 5.
//!
//! Encryption: AES-128- or AES-256-CBC with the key itself, IV = first 16
//! bytes of tag 6 (whose length equals the key length; all-zero if absent),
//! the plaintext padded to a multiple of the KEY length with n bytes of value
//! n (1..=key length). Integrity: HMAC-SHA256, keyed with the same key, over
//! ciphertext || IV (the whole tag-6 value). Checked before decrypting.
//!
//! This decoder is strict: every TLV must lie inside the file, no tag may
//! repeat, unknown tags and unsupported flags are refused. Files written by
//! swtpm's passphrase mode (`--key pwdfile=`) decode with the derived key,
//! which this module does not derive.

use std::fmt;

use aes::cipher::{BlockDecryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

const HEADER_LEN: usize = 10;
const VERSION: u8 = 2;

const FLAG_ENCRYPTED: u16 = 0x01;
const FLAG_MIGRATION_ENCRYPTED: u16 = 0x02;
const FLAG_MIGRATION_DATA: u16 = 0x04;
const FLAG_256BIT_KEY: u16 = 0x08;
const FLAG_MIGRATION_256BIT_KEY: u16 = 0x10;
const KNOWN_FLAGS: u16 = FLAG_ENCRYPTED
    | FLAG_MIGRATION_ENCRYPTED
    | FLAG_MIGRATION_DATA
    | FLAG_256BIT_KEY
    | FLAG_MIGRATION_256BIT_KEY;

const TAG_DATA: u16 = 1;
const TAG_ENCRYPTED_DATA: u16 = 2;
const TAG_HMAC: u16 = 3;
const TAG_MIGRATION_DATA: u16 = 4;
const TAG_IVEC: u16 = 6;
const KNOWN_TAGS: [u16; 7] = [1, 2, 3, 4, 5, 6, 7];

const HMAC_LEN: usize = 32;
const BLOCK: usize = 16;

/// libtpms' magic at offset 2 of a `permall` blob (after a u16 version).
pub const PERMALL_MAGIC: u32 = 0xAB36_4723;

/// Why an swtpm file or key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwtpmError {
    /// Shorter than the 10-byte header.
    Truncated,
    /// Header version other than 2 (or a minimum version above 2).
    UnsupportedVersion {
        /// Header version.
        version: u8,
        /// Minimum reader version it asks for.
        min_version: u8,
    },
    /// Header size field is not 10.
    BadHeaderSize(u16),
    /// The total-length field disagrees with the file size.
    BadTotalLength {
        /// Declared length.
        declared: u32,
        /// File size.
        actual: usize,
    },
    /// Flags this decoder does not know or handle.
    UnsupportedFlags(u16),
    /// A TLV runs past the end of its container.
    BadTlv,
    /// A tag this decoder does not know.
    UnknownTag(u16),
    /// A tag appears twice.
    DuplicateTag(u16),
    /// A tag the file needs is missing.
    MissingTag(u16),
    /// The file is encrypted and no key was given.
    KeyRequired,
    /// A key was given but the file is not encrypted.
    NotEncrypted,
    /// The file was encrypted with a key of another size.
    KeySizeMismatch {
        /// Key size the file says, in bits.
        file_bits: usize,
        /// Size of the key given, in bits.
        key_bits: usize,
    },
    /// The IV's length is not the key's length.
    BadIvLength(usize),
    /// The ciphertext is empty, not whole blocks, or shorter than the key.
    BadCiphertextLength(usize),
    /// The HMAC does not verify: wrong key, or the file was altered.
    HmacMismatch,
    /// The decrypted padding is malformed.
    BadPadding,
    /// A key is not 16 or 32 bytes (32 or 64 hex digits).
    BadKey,
}

impl fmt::Display for SwtpmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwtpmError::Truncated => write!(f, "shorter than the swtpm blob header"),
            SwtpmError::UnsupportedVersion { version, min_version } => write!(
                f,
                "swtpm blob version {version} (needs reader version {min_version}); only 2 is supported"
            ),
            SwtpmError::BadHeaderSize(n) => write!(f, "swtpm header size {n}, expected 10"),
            SwtpmError::BadTotalLength { declared, actual } => {
                write!(f, "swtpm header says {declared} bytes, file has {actual}")
            }
            SwtpmError::UnsupportedFlags(x) => write!(f, "unsupported swtpm blob flags {x:#x}"),
            SwtpmError::BadTlv => write!(f, "swtpm TLV runs past its container"),
            SwtpmError::UnknownTag(t) => write!(f, "unknown swtpm TLV tag {t}"),
            SwtpmError::DuplicateTag(t) => write!(f, "swtpm TLV tag {t} repeated"),
            SwtpmError::MissingTag(t) => write!(f, "swtpm TLV tag {t} missing"),
            SwtpmError::KeyRequired => write!(f, "swtpm state is encrypted; a key is needed"),
            SwtpmError::NotEncrypted => write!(f, "a key was given but the swtpm state is not encrypted"),
            SwtpmError::KeySizeMismatch { file_bits, key_bits } => {
                write!(f, "swtpm state needs a {file_bits}-bit key, got {key_bits} bits")
            }
            SwtpmError::BadIvLength(n) => write!(f, "swtpm IV of {n} bytes does not match the key"),
            SwtpmError::BadCiphertextLength(n) => write!(f, "swtpm ciphertext of {n} bytes"),
            SwtpmError::HmacMismatch => {
                write!(f, "swtpm HMAC does not verify (wrong key or altered file)")
            }
            SwtpmError::BadPadding => write!(f, "swtpm plaintext padding is malformed"),
            SwtpmError::BadKey => write!(f, "swtpm key must be 16 or 32 bytes (32 or 64 hex digits)"),
        }
    }
}

impl std::error::Error for SwtpmError {}

/// An swtpm state key (AES-128 or AES-256). Wiped on drop; `Debug` shows
/// only its size.
#[derive(Clone)]
pub struct SwtpmKey(Zeroizing<Vec<u8>>);

impl fmt::Debug for SwtpmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SwtpmKey({} bits)", self.0.len() * 8)
    }
}

impl SwtpmKey {
    /// A raw 16- or 32-byte key (swtpm's `format=binary`).
    pub fn from_bytes(key: &[u8]) -> Result<Self, SwtpmError> {
        match key.len() {
            16 | 32 => Ok(Self(Zeroizing::new(key.to_vec()))),
            _ => Err(SwtpmError::BadKey),
        }
    }

    /// A key in swtpm's hex format: 32 or 64 hex digits, optionally after
    /// `0x`, optionally followed by whitespace (a key file's newline).
    pub fn from_hex(text: &str) -> Result<Self, SwtpmError> {
        let digits = text.trim_end();
        let digits = digits.strip_prefix("0x").unwrap_or(digits);
        if !(digits.len() == 32 || digits.len() == 64) || !digits.is_ascii() {
            return Err(SwtpmError::BadKey);
        }
        let mut key = Zeroizing::new(Vec::with_capacity(digits.len() / 2));
        for pair in digits.as_bytes().chunks(2) {
            let s = std::str::from_utf8(pair).map_err(|_| SwtpmError::BadKey)?;
            key.push(u8::from_str_radix(s, 16).map_err(|_| SwtpmError::BadKey)?);
        }
        Ok(Self(key))
    }

    /// Key length in bytes (16 or 32).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a key has 16 or 32 bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The TLVs of one container, each tag at most once.
struct Tlvs<'a>(Vec<(u16, &'a [u8])>);

impl<'a> Tlvs<'a> {
    fn parse(mut bytes: &'a [u8]) -> Result<Self, SwtpmError> {
        let mut out: Vec<(u16, &'a [u8])> = Vec::new();
        while !bytes.is_empty() {
            if bytes.len() < 6 {
                return Err(SwtpmError::BadTlv);
            }
            let tag = u16::from_be_bytes([bytes[0], bytes[1]]);
            let len = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
            let rest = &bytes[6..];
            if len > rest.len() {
                return Err(SwtpmError::BadTlv);
            }
            if !KNOWN_TAGS.contains(&tag) {
                return Err(SwtpmError::UnknownTag(tag));
            }
            if out.iter().any(|(t, _)| *t == tag) {
                return Err(SwtpmError::DuplicateTag(tag));
            }
            out.push((tag, &rest[..len]));
            bytes = &rest[len..];
        }
        Ok(Self(out))
    }

    fn get(&self, tag: u16) -> Option<&'a [u8]> {
        self.0.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v)
    }

    fn need(&self, tag: u16) -> Result<&'a [u8], SwtpmError> {
        self.get(tag).ok_or(SwtpmError::MissingTag(tag))
    }

    /// Refuses any tag outside `allowed`.
    fn only(&self, allowed: &[u16]) -> Result<(), SwtpmError> {
        match self.0.iter().find(|(t, _)| !allowed.contains(t)) {
            Some((t, _)) => Err(SwtpmError::UnknownTag(*t)),
            None => Ok(()),
        }
    }
}

/// Decodes one swtpm blob file into the libtpms blob it holds.
///
/// `key` must be given exactly when the file is encrypted. Every check
/// (header, TLVs, HMAC, padding) passes before the plaintext is returned.
pub fn decode(file: &[u8], key: Option<&SwtpmKey>) -> Result<Zeroizing<Vec<u8>>, SwtpmError> {
    if file.len() < HEADER_LEN {
        return Err(SwtpmError::Truncated);
    }
    let (version, min_version) = (file[0], file[1]);
    if version != VERSION || min_version > VERSION {
        return Err(SwtpmError::UnsupportedVersion {
            version,
            min_version,
        });
    }
    let hdrsize = u16::from_be_bytes([file[2], file[3]]);
    if usize::from(hdrsize) != HEADER_LEN {
        return Err(SwtpmError::BadHeaderSize(hdrsize));
    }
    let flags = u16::from_be_bytes([file[4], file[5]]);
    let declared = u32::from_be_bytes([file[6], file[7], file[8], file[9]]);
    if declared as usize != file.len() {
        return Err(SwtpmError::BadTotalLength {
            declared,
            actual: file.len(),
        });
    }
    if flags & !KNOWN_FLAGS != 0
        || flags & (FLAG_MIGRATION_ENCRYPTED | FLAG_MIGRATION_256BIT_KEY) != 0
    {
        return Err(SwtpmError::UnsupportedFlags(flags));
    }
    let outer = Tlvs::parse(&file[HEADER_LEN..])?;
    // `swtpm_ioctl --save` wraps the state TLVs in a migration container.
    let inner_bytes;
    let tlvs = if flags & FLAG_MIGRATION_DATA != 0 {
        outer.only(&[TAG_MIGRATION_DATA])?;
        inner_bytes = outer.need(TAG_MIGRATION_DATA)?;
        Tlvs::parse(inner_bytes)?
    } else {
        outer
    };
    let encrypted = flags & FLAG_ENCRYPTED != 0;
    match (encrypted, key) {
        (false, None) => {
            tlvs.only(&[TAG_DATA])?;
            Ok(Zeroizing::new(tlvs.need(TAG_DATA)?.to_vec()))
        }
        (false, Some(_)) => Err(SwtpmError::NotEncrypted),
        (true, None) => Err(SwtpmError::KeyRequired),
        (true, Some(key)) => {
            tlvs.only(&[TAG_ENCRYPTED_DATA, TAG_HMAC, TAG_IVEC])?;
            let file_len = if flags & FLAG_256BIT_KEY != 0 { 32 } else { 16 };
            if key.len() != file_len {
                return Err(SwtpmError::KeySizeMismatch {
                    file_bits: file_len * 8,
                    key_bits: key.len() * 8,
                });
            }
            decrypt(
                key,
                tlvs.need(TAG_ENCRYPTED_DATA)?,
                tlvs.need(TAG_HMAC)?,
                tlvs.get(TAG_IVEC),
            )
        }
    }
}

fn decrypt(
    key: &SwtpmKey,
    ciphertext: &[u8],
    mac: &[u8],
    ivec: Option<&[u8]>,
) -> Result<Zeroizing<Vec<u8>>, SwtpmError> {
    let klen = key.len();
    if let Some(iv) = ivec {
        if iv.len() != klen {
            return Err(SwtpmError::BadIvLength(iv.len()));
        }
    }
    let n = ciphertext.len();
    if n == 0 || !n.is_multiple_of(BLOCK) || n < klen {
        return Err(SwtpmError::BadCiphertextLength(n));
    }
    if mac.len() != HMAC_LEN {
        return Err(SwtpmError::HmacMismatch);
    }
    let mut h = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).map_err(|_| SwtpmError::BadKey)?;
    h.update(ciphertext);
    if let Some(iv) = ivec {
        h.update(iv);
    }
    h.verify_slice(mac).map_err(|_| SwtpmError::HmacMismatch)?;

    let mut iv16 = [0u8; BLOCK];
    if let Some(iv) = ivec {
        iv16.copy_from_slice(&iv[..BLOCK]);
    }
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    cbc_decrypt(&key.0, &iv16, &mut buf)?;
    let pad = usize::from(buf[n - 1]);
    if pad == 0 || pad > klen || buf[n - pad..].iter().any(|&b| usize::from(b) != pad) {
        return Err(SwtpmError::BadPadding);
    }
    buf.truncate(n - pad);
    Ok(buf)
}

/// AES-CBC decryption in place of whole blocks, no padding removal.
fn cbc_decrypt(key: &[u8], iv: &[u8; BLOCK], buf: &mut [u8]) -> Result<(), SwtpmError> {
    use aes::cipher::block_padding::NoPadding;
    let done = match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| SwtpmError::BadKey)?
            .decrypt_padded_mut::<NoPadding>(buf)
            .map(|p| p.len()),
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| SwtpmError::BadKey)?
            .decrypt_padded_mut::<NoPadding>(buf)
            .map(|p| p.len()),
        _ => return Err(SwtpmError::BadKey),
    };
    match done {
        Ok(len) if len == buf.len() => Ok(()),
        _ => Err(SwtpmError::BadCiphertextLength(buf.len())),
    }
}

/// Whether `blob` starts like a libtpms `permall` blob (u16 version, then
/// [`PERMALL_MAGIC`]).
pub fn looks_like_permall(blob: &[u8]) -> bool {
    blob.len() >= 8 && blob[2..6] == PERMALL_MAGIC.to_be_bytes()
}
