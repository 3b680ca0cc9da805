//! Wrapping a resource to the TEE key, as Trustee's KBS does for EC keys:
//! JWE flattened JSON, `alg` ECDH-ES+A256KW with a fresh ephemeral P-256
//! key (`epk` in the protected header, no `apu`/`apv`), Concat KDF-SHA256,
//! AES key wrap of a fresh 256-bit content key, `enc` A256GCM with a fresh
//! 96-bit IV and the base64url protected header as AAD. The message types
//! are `kbs_types`' (`Response`, `ProtectedHeader`), so the serialization
//! is the one Trustee's clients parse.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use kbs_types::{ProtectedHeader, Response, TeePubKey};
use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use serde_json::{json, Map};
use svtpm::attest::kbs::concat_kdf;
use zeroize::Zeroizing;

use crate::refusal::Refusal;

/// `alg` produced.
pub const ALG: &str = "ECDH-ES+A256KW";
/// `enc` produced.
pub const ENC: &str = "A256GCM";

fn refuse(why: &str) -> Refusal {
    Refusal::attestation(format!("tee-pubkey check failed: {why}"))
}

/// The recipient's public key, if it is one this broker wraps to
/// (EC P-256 with `alg` ECDH-ES+A256KW).
pub fn recipient(key: &TeePubKey) -> Result<p256::PublicKey, Refusal> {
    let TeePubKey::EC { crv, alg, x, y } = key else {
        return Err(refuse("only EC keys are supported"));
    };
    if crv != "P-256" || alg != ALG {
        return Err(refuse("only P-256 with ECDH-ES+A256KW is supported"));
    }
    let coord = |c: &str| -> Result<[u8; 32], Refusal> {
        URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| refuse("coordinate is not 32 bytes of base64url"))
    };
    let point =
        p256::EncodedPoint::from_affine_coordinates(&coord(x)?.into(), &coord(y)?.into(), false);
    Option::from(p256::PublicKey::from_encoded_point(&point))
        .ok_or_else(|| refuse("point is not on P-256"))
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    Refusal::new(500, "JweError", format!("JWE failed: {e}"))
}

/// Encrypts `plaintext` to `key`.
pub fn encrypt(key: &TeePubKey, plaintext: &[u8]) -> Result<Response, Refusal> {
    let recipient = recipient(key)?;
    let mut eph_bytes = Zeroizing::new([0u8; 32]);
    let eph = loop {
        crate::random(eph_bytes.as_mut()).map_err(internal)?;
        if let Ok(k) = p256::SecretKey::from_slice(eph_bytes.as_ref()) {
            break k;
        }
    };
    let shared = p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), recipient.as_affine());
    let kek =
        concat_kdf::derive::<32>(shared.raw_secret_bytes(), ALG, b"", b"").map_err(internal)?;
    let mut cek = Zeroizing::new([0u8; 32]);
    let mut iv = [0u8; 12];
    crate::random(cek.as_mut()).map_err(internal)?;
    crate::random(&mut iv).map_err(internal)?;
    let mut encrypted_key = vec![0u8; 40];
    aes_kw::KekAes256::from(*kek)
        .wrap(cek.as_ref(), &mut encrypted_key)
        .map_err(|e| internal(format!("{e:?}")))?;

    let epk = eph.public_key().to_encoded_point(false);
    let (Some(ex), Some(ey)) = (epk.x(), epk.y()) else {
        return Err(internal("ephemeral key has no coordinates"));
    };
    let mut other_fields = Map::new();
    other_fields.insert(
        "epk".into(),
        json!({"crv": "P-256", "kty": "EC",
               "x": URL_SAFE_NO_PAD.encode(ex), "y": URL_SAFE_NO_PAD.encode(ey)}),
    );
    let protected = ProtectedHeader {
        alg: ALG.into(),
        enc: ENC.into(),
        other_fields,
    };
    let aad = protected.generate_aad().map_err(internal)?;
    let mut ciphertext = plaintext.to_vec();
    let tag = Aes256Gcm::new(cek.as_ref().into())
        .encrypt_in_place_detached(Nonce::from_slice(&iv), &aad, &mut ciphertext)
        .map_err(internal)?;
    Ok(Response {
        protected,
        encrypted_key,
        aad: None,
        iv: iv.to_vec(),
        ciphertext,
        tag: tag.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use svtpm::attest::kbs::TeeKeyPair;
    use svtpm::nvstate::{EntropyError, EntropySource};

    struct Os;
    impl EntropySource for Os {
        fn fill(&mut self, d: &mut [u8]) -> Result<(), EntropyError> {
            crate::random(d).map_err(|_| EntropyError)
        }
    }

    #[test]
    fn svtpm_opens_what_the_broker_wraps() {
        let key = TeeKeyPair::generate(&mut Os).unwrap();
        let tee: TeePubKey = serde_json::from_value(key.jwk()).unwrap();
        let r = encrypt(&tee, b"the state key").unwrap();
        let wire = serde_json::to_vec(&r).unwrap();
        let opened = svtpm::attest::kbs::jwe::open(&wire, &key).unwrap();
        assert_eq!(opened.expose(), b"the state key");
        // Two wraps of the same secret share nothing visible.
        let r2 = encrypt(&tee, b"the state key").unwrap();
        assert_ne!(r.encrypted_key, r2.encrypted_key);
        assert_ne!(r.iv, r2.iv);
        let other = TeeKeyPair::generate(&mut Os).unwrap();
        assert!(svtpm::attest::kbs::jwe::open(&wire, &other).is_err());
    }

    #[test]
    fn refuses_keys_it_cannot_wrap_to() {
        let rsa = TeePubKey::RSA {
            alg: "RSA-OAEP-256".into(),
            k_mod: "AQAB".into(),
            k_exp: "AQAB".into(),
        };
        assert!(encrypt(&rsa, b"x").is_err());
        let off_curve = TeePubKey::EC {
            crv: "P-256".into(),
            alg: ALG.into(),
            x: URL_SAFE_NO_PAD.encode([1u8; 32]),
            y: URL_SAFE_NO_PAD.encode([1u8; 32]),
        };
        assert!(encrypt(&off_curve, b"x")
            .unwrap_err()
            .detail
            .contains("not on P-256"));
    }
}
