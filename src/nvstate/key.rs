//! The state key: the 256-bit secret released by the key broker, and the
//! subkeys derived from it. Owns key derivation and the key identifier.
//!
//! The broker's key is never used directly. HKDF-SHA256 (no salt, the key as
//! input keying material) derives three independent values from it, each
//! under its own label:
//! - the AES-256-GCM key that encrypts the payload,
//! - the HMAC-SHA256 key that authenticates the header on its own,
//! - the 16-byte key identifier written in every header.
//!
//! Every copy of secret material lives in a [`Zeroizing`] buffer and is wiped
//! when dropped. [`StateKey`] has no `Debug` output beyond its identifier.

use core::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Length of the broker's state key and of each derived secret key, in bytes.
pub const KEY_LEN: usize = 32;

/// Length of a [`KeyId`], in bytes.
pub const KEY_ID_LEN: usize = 16;

const LABEL_AEAD: &[u8] = b"svtpm nvstate v1 aes-256-gcm key";
const LABEL_HEADER_MAC: &[u8] = b"svtpm nvstate v1 header hmac key";
const LABEL_KEY_ID: &[u8] = b"svtpm nvstate v1 key identifier";

/// Identifies the key a blob was sealed under, without revealing it: a
/// one-way derivation of the key (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why key material was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// The key is not [`KEY_LEN`] bytes long.
    BadLength {
        /// Length that was given.
        len: usize,
    },
    /// The key is all zero bytes: an unset key, never a real one.
    AllZero,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::BadLength { len } => {
                write!(f, "state key must be {KEY_LEN} bytes, got {len}")
            }
            KeyError::AllZero => write!(f, "state key is all zero (unset)"),
        }
    }
}

impl core::error::Error for KeyError {}

/// The vTPM state key, with its derived subkeys.
///
/// Cloning copies the derived keys into new zeroizing buffers; every copy is
/// wiped when dropped.
#[derive(Clone)]
pub struct StateKey {
    aead: Zeroizing<[u8; KEY_LEN]>,
    header_mac: Zeroizing<[u8; KEY_LEN]>,
    id: KeyId,
}

impl StateKey {
    /// Derives the subkeys from the broker's 32-byte key. The caller keeps
    /// (and wipes) its own copy of `master`.
    pub fn new(master: &[u8; KEY_LEN]) -> Result<Self, KeyError> {
        if master.iter().all(|&b| b == 0) {
            return Err(KeyError::AllZero);
        }
        let hk = Hkdf::<Sha256>::new(None, master);
        let mut aead = Zeroizing::new([0u8; KEY_LEN]);
        let mut header_mac = Zeroizing::new([0u8; KEY_LEN]);
        let mut id = [0u8; KEY_ID_LEN];
        // HKDF-SHA256 expands up to 255 * 32 bytes; 32 and 16 cannot fail.
        for (label, out) in [
            (LABEL_AEAD, aead.as_mut_slice()),
            (LABEL_HEADER_MAC, header_mac.as_mut_slice()),
            (LABEL_KEY_ID, &mut id[..]),
        ] {
            hk.expand(label, out)
                .unwrap_or_else(|_| unreachable!("HKDF expand of <= 32 bytes"));
        }
        Ok(Self {
            aead,
            header_mac,
            id: KeyId(id),
        })
    }

    /// Like [`StateKey::new`], from a slice that must be exactly 32 bytes.
    pub fn from_slice(master: &[u8]) -> Result<Self, KeyError> {
        let arr: &[u8; KEY_LEN] = master
            .try_into()
            .map_err(|_| KeyError::BadLength { len: master.len() })?;
        Self::new(arr)
    }

    /// The identifier written into every blob sealed under this key.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The AES-256-GCM payload key.
    pub(super) fn aead_key(&self) -> &[u8; KEY_LEN] {
        &self.aead
    }

    /// The HMAC-SHA256 header key.
    pub(super) fn header_mac_key(&self) -> &[u8; KEY_LEN] {
        &self.header_mac
    }
}

impl fmt::Debug for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn subkeys_are_distinct_and_deterministic() {
        let k1 = StateKey::new(&[7u8; 32]).unwrap();
        let k2 = StateKey::new(&[7u8; 32]).unwrap();
        assert_eq!(k1.id(), k2.id());
        assert_eq!(k1.aead_key(), k2.aead_key());
        assert_ne!(k1.aead_key(), k1.header_mac_key());
        assert_ne!(
            &k1.aead_key()[..],
            &[7u8; 32][..],
            "master key used directly"
        );
        let k3 = StateKey::new(&[8u8; 32]).unwrap();
        assert_ne!(k1.id(), k3.id());
    }

    #[test]
    fn debug_never_shows_key_material() {
        let master = [0x5au8; 32];
        let k = StateKey::new(&master).unwrap();
        let text = format!("{k:?}");
        assert!(text.contains("StateKey"));
        for secret in [&master, k.aead_key(), k.header_mac_key()] {
            let hex: alloc::string::String = secret.iter().map(|b| format!("{b:02x}")).collect();
            assert!(!text.contains(&hex), "{text}");
        }
    }

    #[test]
    fn refuses_unset_or_misshapen_keys() {
        assert_eq!(StateKey::new(&[0u8; 32]).unwrap_err(), KeyError::AllZero);
        assert_eq!(
            StateKey::from_slice(&[1u8; 16]).unwrap_err(),
            KeyError::BadLength { len: 16 }
        );
        assert!(StateKey::from_slice(&[1u8; 32]).is_ok());
    }
}
