//! The TEE key: an ephemeral P-256 key pair made inside svtpm for one
//! attestation. Its public half travels to the broker as the `tee-pubkey`
//! JWK (bound into the attestation report through the runtime data); the
//! broker wraps every released secret to it (ECDH-ES+A256KW), so only this
//! svtpm instance can open them.
//!
//! P-256 because it is the curve Trustee's KBS wraps to with
//! ECDH-ES+A256KW (it also accepts P-521 and RSA, not P-384).
//!
//! The private scalar is drawn from the caller's [`EntropySource`], lives in
//! a zeroize-on-drop [`p256::SecretKey`], and is never printed: `Debug`
//! shows the public key only.

use alloc::string::String;
use core::fmt;

use p256::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
use p256::{EncodedPoint, PublicKey, SecretKey};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{base64url, KbsError};
use crate::nvstate::EntropySource;

/// JWK `kty` of the key.
pub const KTY: &str = "EC";
/// JWK `crv` of the key.
pub const CURVE: &str = "P-256";
/// JWK `alg`: the JWE key management algorithm the broker must use.
pub const ALG: &str = "ECDH-ES+A256KW";

/// Draws this many candidate scalars before giving up; a uniform 256-bit
/// draw is out of range (zero or >= n) with probability below 2^-32, so
/// repeated failures mean a broken source.
const MAX_DRAWS: usize = 4;

/// The ephemeral key pair.
pub struct TeeKeyPair {
    secret: SecretKey,
    public: PublicKey,
}

impl TeeKeyPair {
    /// Makes a key pair from `entropy`.
    pub fn generate(entropy: &mut dyn EntropySource) -> Result<Self, KbsError> {
        for _ in 0..MAX_DRAWS {
            let mut bytes = Zeroizing::new([0u8; 32]);
            entropy
                .fill(bytes.as_mut())
                .map_err(|_| KbsError::Entropy)?;
            if let Ok(secret) = SecretKey::from_slice(bytes.as_ref()) {
                let public = secret.public_key();
                return Ok(Self { secret, public });
            }
        }
        Err(KbsError::Entropy)
    }

    /// The affine coordinates (x, y) of the public key, 32 bytes each.
    fn coordinates(&self) -> ([u8; 32], [u8; 32]) {
        let point = self.public.to_encoded_point(false);
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        // An uncompressed point of a valid public key always has both.
        if let (Some(px), Some(py)) = (point.x(), point.y()) {
            x.copy_from_slice(px);
            y.copy_from_slice(py);
        }
        (x, y)
    }

    /// The public key as the protocol's `tee-pubkey` JWK:
    /// `{"kty":"EC","crv":"P-256","alg":"ECDH-ES+A256KW","x":..,"y":..}`.
    pub fn jwk(&self) -> Value {
        let (x, y) = self.coordinates();
        let mut m = Map::new();
        m.insert("kty".into(), Value::String(KTY.into()));
        m.insert("crv".into(), Value::String(CURVE.into()));
        m.insert("alg".into(), Value::String(ALG.into()));
        m.insert("x".into(), Value::String(base64url::encode(&x)));
        m.insert("y".into(), Value::String(base64url::encode(&y)));
        Value::Object(m)
    }

    /// ECDH with the sender's ephemeral public key (`epk` of a JWE, given as
    /// base64url coordinates): the shared secret `Z`, 32 bytes. Refuses
    /// points not on the curve.
    pub fn agree(&self, epk_x: &str, epk_y: &str) -> Result<Zeroizing<[u8; 32]>, KbsError> {
        let x = base64url::decode_array::<32>(epk_x, "epk x")?;
        let y = base64url::decode_array::<32>(epk_y, "epk y")?;
        let point = EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
        let peer: Option<PublicKey> = PublicKey::from_encoded_point(&point).into();
        let peer = peer.ok_or(KbsError::Malformed {
            what: "epk is not a P-256 point",
        })?;
        let shared = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), peer.as_affine());
        let mut z = Zeroizing::new([0u8; 32]);
        z.copy_from_slice(shared.raw_secret_bytes());
        Ok(z)
    }

    /// The public x coordinate, base64url (for logs and tests).
    pub fn public_x(&self) -> String {
        base64url::encode(&self.coordinates().0)
    }
}

impl fmt::Debug for TeeKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeeKeyPair")
            .field("crv", &CURVE)
            .field("x", &self.public_x())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nvstate::EntropyError;

    /// Entropy that repeats a fixed pattern: deterministic keys for tests.
    pub(crate) struct Fixed(pub [u8; 32]);

    impl EntropySource for Fixed {
        fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError> {
            for (i, b) in dest.iter_mut().enumerate() {
                *b = self.0[i % 32];
            }
            Ok(())
        }
    }

    /// RFC 7518 Appendix C: Bob's key agrees with Alice's ephemeral public
    /// key on the published Z.
    #[test]
    fn rfc7518_appendix_c_agreement() {
        let d = base64url::decode_array::<32>("VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw", "d")
            .unwrap();
        let bob = TeeKeyPair::generate(&mut Fixed(d)).unwrap();
        let jwk = bob.jwk();
        assert_eq!(jwk["x"], "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ");
        assert_eq!(jwk["y"], "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck");
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ECDH-ES+A256KW");
        let z = bob
            .agree(
                "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0",
                "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps",
            )
            .unwrap();
        assert_eq!(
            *z,
            [
                158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49,
                110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196
            ]
        );
        // A point off the curve is refused.
        assert!(bob
            .agree(
                "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0",
                "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFppo",
            )
            .is_err());
    }

    #[test]
    fn broken_entropy_and_debug() {
        // All-zero and all-0xff draws are not valid scalars: refused.
        assert_eq!(
            TeeKeyPair::generate(&mut Fixed([0; 32])).unwrap_err(),
            KbsError::Entropy
        );
        assert_eq!(
            TeeKeyPair::generate(&mut Fixed([0xff; 32])).unwrap_err(),
            KbsError::Entropy
        );
        let secret = [0x42u8; 32];
        let key = TeeKeyPair::generate(&mut Fixed(secret)).unwrap();
        let text = alloc::format!("{key:?}");
        assert!(text.contains(&key.public_x()), "{text}");
        assert!(!text.contains(&base64url::encode(&secret)), "{text}");
        assert!(!text.contains("66, 66"), "{text}");
    }
}
