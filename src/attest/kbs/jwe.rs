//! Opening the broker's resource responses: JWE in the flattened JSON
//! serialization (RFC 7516 §7.2.2) with
//! - `alg` = `ECDH-ES+A256KW`: ECDH between the TEE key and the sender's
//!   ephemeral `epk` (P-256), Concat KDF (SHA-256; AlgorithmID = the `alg`
//!   value, PartyUInfo/PartyVInfo = the decoded `apu`/`apv` or empty,
//!   256-bit output) giving the key-wrapping key, then AES key unwrap
//!   (RFC 3394) of `encrypted_key` into the content key;
//! - `enc` = `A256GCM`: AES-256-GCM with the 96-bit `iv` and 128-bit `tag`,
//!   additional authenticated data = the ASCII of the `protected` member as
//!   received (followed by `.` and the `aad` member when one is present,
//!   RFC 7516 §5.2 step 14).
//!
//! Everything else is refused: other algorithms, compression (`zip`),
//! critical extensions (`crit`), unprotected headers (whose values would
//! not be authenticated), and members of the wrong size. Every step that
//! depends on the secret key fails with [`KbsError::JweDecrypt`], without
//! saying more.

use alloc::string::String;
use alloc::vec::Vec;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use super::{base64url, concat_kdf, KbsError, Secret, TeeKeyPair};

/// JWE `alg` accepted.
pub const ALG: &str = "ECDH-ES+A256KW";
/// JWE `enc` accepted.
pub const ENC: &str = "A256GCM";
/// Largest JWE response accepted, in bytes of JSON.
pub const MAX_JWE_LEN: usize = 64 * 1024;
/// Largest protected header accepted, in bytes of base64url.
const MAX_PROTECTED_LEN: usize = 2048;
/// Largest plaintext accepted, in bytes.
pub const MAX_PLAINTEXT: usize = 32 * 1024;

/// The flattened JSON serialization's members. Unknown members are ignored
/// except the two that carry unauthenticated header parameters.
#[derive(Deserialize)]
struct Flattened {
    protected: String,
    encrypted_key: String,
    iv: String,
    ciphertext: String,
    tag: String,
    #[serde(default)]
    aad: Option<String>,
    #[serde(default)]
    unprotected: Option<Value>,
    #[serde(default)]
    header: Option<Value>,
}

/// The protected header fields this client uses.
#[derive(Deserialize)]
struct Header {
    alg: String,
    enc: String,
    epk: Epk,
    #[serde(default)]
    apu: Option<String>,
    #[serde(default)]
    apv: Option<String>,
    #[serde(default)]
    zip: Option<Value>,
    #[serde(default)]
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct Epk {
    kty: String,
    crv: String,
    x: String,
    y: String,
}

/// A parsed, not yet decrypted, JWE.
pub struct Jwe {
    aad: Vec<u8>,
    header: Header,
    encrypted_key: [u8; 40],
    iv: [u8; 12],
    ciphertext: Vec<u8>,
    tag: [u8; 16],
}

impl core::fmt::Debug for Jwe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Jwe")
            .field("alg", &self.header.alg)
            .field("enc", &self.header.enc)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// Parses a flattened JWE and checks its header and member sizes.
pub fn parse(body: &[u8]) -> Result<Jwe, KbsError> {
    if body.len() > MAX_JWE_LEN {
        return Err(KbsError::TooLarge {
            what: "JWE",
            len: body.len(),
            max: MAX_JWE_LEN,
        });
    }
    let f: Flattened =
        serde_json::from_slice(body).map_err(|_| KbsError::Malformed { what: "JWE JSON" })?;
    if f.unprotected.is_some() || f.header.is_some() {
        return Err(KbsError::JweUnsupported {
            what: "unprotected header",
        });
    }
    if f.protected.len() > MAX_PROTECTED_LEN {
        return Err(KbsError::TooLarge {
            what: "JWE protected header",
            len: f.protected.len(),
            max: MAX_PROTECTED_LEN,
        });
    }
    let header_json = base64url::decode(&f.protected, MAX_PROTECTED_LEN, "JWE protected")?;
    let header: Header = serde_json::from_slice(&header_json).map_err(|_| KbsError::Malformed {
        what: "JWE protected header JSON",
    })?;
    if header.alg != ALG {
        return Err(KbsError::JweUnsupported { what: "alg" });
    }
    if header.enc != ENC {
        return Err(KbsError::JweUnsupported { what: "enc" });
    }
    if header.zip.is_some() {
        return Err(KbsError::JweUnsupported { what: "zip" });
    }
    if header.crit.is_some() {
        return Err(KbsError::JweUnsupported { what: "crit" });
    }
    if header.epk.kty != "EC" || header.epk.crv != "P-256" {
        return Err(KbsError::JweUnsupported { what: "epk curve" });
    }
    let mut aad = f.protected.into_bytes();
    if let Some(extra) = &f.aad {
        // Checked to be base64url (its bytes are authenticated as text).
        base64url::decode(extra, MAX_PLAINTEXT, "JWE aad")?;
        aad.push(b'.');
        aad.extend_from_slice(extra.as_bytes());
    }
    let ciphertext = base64url::decode(&f.ciphertext, MAX_PLAINTEXT, "JWE ciphertext")?;
    Ok(Jwe {
        aad,
        header,
        encrypted_key: base64url::decode_array(&f.encrypted_key, "JWE encrypted_key")?,
        iv: base64url::decode_array(&f.iv, "JWE iv")?,
        ciphertext,
        tag: base64url::decode_array(&f.tag, "JWE tag")?,
    })
}

impl Jwe {
    /// Decrypts with the TEE key.
    pub fn decrypt(self, key: &TeeKeyPair) -> Result<Secret, KbsError> {
        let party = |v: &Option<String>, what| match v {
            Some(text) => base64url::decode(text, concat_kdf::MAX_PARTY_INFO, what),
            None => Ok(Vec::new()),
        };
        let apu = party(&self.header.apu, "JWE apu")?;
        let apv = party(&self.header.apv, "JWE apv")?;
        let z = key.agree(&self.header.epk.x, &self.header.epk.y)?;
        let kek = concat_kdf::derive::<32>(z.as_ref(), ALG, &apu, &apv)?;

        let mut cek = Zeroizing::new([0u8; 32]);
        aes_kw::KekAes256::from(*kek)
            .unwrap(&self.encrypted_key, cek.as_mut())
            .map_err(|_| KbsError::JweDecrypt {
                stage: "key unwrap",
            })?;

        let cipher = Aes256Gcm::new(cek.as_ref().into());
        let mut buf = Zeroizing::new(self.ciphertext);
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&self.iv),
                &self.aad,
                buf.as_mut(),
                Tag::from_slice(&self.tag),
            )
            .map_err(|_| KbsError::JweDecrypt { stage: "content" })?;
        Ok(Secret::new(buf))
    }
}

/// Parses and decrypts a flattened JWE with `key`.
pub fn open(body: &[u8], key: &TeeKeyPair) -> Result<Secret, KbsError> {
    parse(body)?.decrypt(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3394 §4.6: 256 bits of key data wrapped under a 256-bit KEK,
    /// unwrapped by the same primitive `decrypt` uses.
    #[test]
    fn rfc3394_unwrap_vector() {
        let kek: [u8; 32] = core::array::from_fn(|i| i as u8);
        let wrapped: [u8; 40] = [
            0x28, 0xC9, 0xF4, 0x04, 0xC4, 0xB8, 0x10, 0xF4, 0xCB, 0xCC, 0xB3, 0x5C, 0xFB, 0x87,
            0xF8, 0x26, 0x3F, 0x57, 0x86, 0xE2, 0xD8, 0x0E, 0xD3, 0x26, 0xCB, 0xC7, 0xF0, 0xE7,
            0x1A, 0x99, 0xF4, 0x3B, 0xFB, 0x98, 0x8B, 0x9B, 0x7A, 0x02, 0xDD, 0x21,
        ];
        let expected: [u8; 32] = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD,
            0xEE, 0xFF, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B,
            0x0C, 0x0D, 0x0E, 0x0F,
        ];
        let mut out = [0u8; 32];
        aes_kw::KekAes256::from(kek)
            .unwrap(&wrapped, &mut out)
            .unwrap();
        assert_eq!(out, expected);
        let mut bad = wrapped;
        bad[39] ^= 1;
        assert!(aes_kw::KekAes256::from(kek).unwrap(&bad, &mut out).is_err());
    }

    fn header_json(h: &str) -> String {
        let p = base64url::encode(h.as_bytes());
        alloc::format!(
            r#"{{"protected":"{p}","encrypted_key":"{}","iv":"{}","ciphertext":"","tag":"{}"}}"#,
            base64url::encode(&[0; 40]),
            base64url::encode(&[0; 12]),
            base64url::encode(&[0; 16])
        )
    }

    #[test]
    fn refuses_other_algorithms_and_unauthenticated_headers() {
        let epk = r#""epk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}"#;
        let cases = [
            (
                alloc::format!(r#"{{"alg":"RSA-OAEP-256","enc":"A256GCM",{epk}}}"#),
                "alg",
            ),
            (
                alloc::format!(r#"{{"alg":"ECDH-ES+A256KW","enc":"A128GCM",{epk}}}"#),
                "enc",
            ),
            (
                alloc::format!(r#"{{"alg":"ECDH-ES+A256KW","enc":"A256GCM","zip":"DEF",{epk}}}"#),
                "zip",
            ),
            (
                alloc::format!(
                    r#"{{"alg":"ECDH-ES+A256KW","enc":"A256GCM","crit":["x"],{epk}}}"#
                ),
                "crit",
            ),
            (
                r#"{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}}"#.into(),
                "epk curve",
            ),
        ];
        for (h, what) in cases {
            assert_eq!(
                parse(header_json(&h).as_bytes()).unwrap_err(),
                KbsError::JweUnsupported { what },
                "{h}"
            );
        }
        let ok = alloc::format!(r#"{{"alg":"ECDH-ES+A256KW","enc":"A256GCM",{epk}}}"#);
        assert!(parse(header_json(&ok).as_bytes()).is_ok());
        let mut with_unprotected = header_json(&ok);
        with_unprotected.insert_str(1, r#""unprotected":{"alg":"x"},"#);
        assert_eq!(
            parse(with_unprotected.as_bytes()).unwrap_err(),
            KbsError::JweUnsupported {
                what: "unprotected header"
            }
        );
        assert!(matches!(
            parse(&alloc::vec![b' '; MAX_JWE_LEN + 1]),
            Err(KbsError::TooLarge { .. })
        ));
    }
}
