//! The Concat KDF of NIST SP 800-56A with SHA-256, as JWA uses it for
//! ECDH-ES (RFC 7518 §4.6.2): the key-wrapping key is derived from the
//! ECDH shared secret `Z` and the OtherInfo
//! `AlgorithmID || PartyUInfo || PartyVInfo || SuppPubInfo`, each of the
//! first three a 32-bit big-endian length followed by its bytes, and
//! SuppPubInfo the key length in bits (32-bit big-endian). SuppPrivInfo is
//! empty.
//!
//! Only single-round output (up to 32 bytes) is needed here: the
//! key-wrapping key of `ECDH-ES+A256KW` is 256 bits.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::KbsError;

/// Longest `apu`/`apv` accepted (bytes); JWE producers use short party
/// names, and Trustee sends none.
pub const MAX_PARTY_INFO: usize = 1024;

/// Derives `N` (at most 32) bytes from `z` for the JWA algorithm `alg`
/// (for key agreement with key wrapping: the `alg` header, e.g.
/// `"ECDH-ES+A256KW"`) and the party infos `apu`, `apv` (decoded).
pub fn derive<const N: usize>(
    z: &[u8],
    alg: &str,
    apu: &[u8],
    apv: &[u8],
) -> Result<Zeroizing<[u8; N]>, KbsError> {
    if N > 32 || apu.len() > MAX_PARTY_INFO || apv.len() > MAX_PARTY_INFO || alg.len() > 64 {
        return Err(KbsError::JweUnsupported {
            what: "key agreement parameters",
        });
    }
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes()); // round counter
    h.update(z);
    for field in [alg.as_bytes(), apu, apv] {
        // Bounded above, so the length fits in 32 bits.
        h.update((field.len() as u32).to_be_bytes());
        h.update(field);
    }
    h.update(((N as u32) * 8).to_be_bytes());
    let digest = Zeroizing::new(h.finalize());
    let mut out = Zeroizing::new([0u8; N]);
    out.copy_from_slice(&digest[..N]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7518 Appendix C: ECDH-ES with `enc` A128GCM, apu "Alice",
    /// apv "Bob"; Z is the one computed there from the example keys.
    #[test]
    fn rfc7518_appendix_c() {
        let z: [u8; 32] = [
            158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49,
            110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
        ];
        let key = derive::<16>(&z, "A128GCM", b"Alice", b"Bob").unwrap();
        assert_eq!(
            *key,
            [86, 170, 141, 234, 248, 35, 109, 32, 92, 34, 40, 205, 113, 167, 16, 26]
        );
        // Every input is bound: another party name gives another key.
        assert_ne!(
            *derive::<16>(&z, "A128GCM", b"Alice", b"Eve").unwrap(),
            *key
        );
        assert_ne!(
            derive::<16>(&z, "A128GCM", b"Alice", b"Bob").unwrap()[..],
            derive::<32>(&z, "A128GCM", b"Alice", b"Bob").unwrap()[..16],
            "key length is part of OtherInfo"
        );
    }
}
