//! The report signature: ECDSA P-384 over SHA-384 of report bytes
//! 0..0x2A0, with r and s stored little endian and zero-extended to 72
//! bytes each (SEV-SNP ABI 56860, "ECDSA P-384 with SHA-384 Signature").
//! Checking it needs only the VCEK's public key; whether that key belongs
//! to a genuine AMD chip is the certificate chain's business (done by the
//! key broker, see `svtpm-snp-verify`).

use p384::ecdsa::signature::Verifier;
use p384::ecdsa::{Signature, VerifyingKey};

use super::error::SnpError;
use super::report::{AttestationReport, ReportSignature};

/// Length of a P-384 scalar.
const SCALAR_LEN: usize = 48;

/// A VCEK public key from its SEC1 encoding (the `subjectPublicKey` bits of
/// the VCEK certificate: 0x04 || x || y).
pub fn vcek_key_from_sec1(sec1: &[u8]) -> Result<VerifyingKey, SnpError> {
    VerifyingKey::from_sec1_bytes(sec1).map_err(|_| SnpError::PublicKey)
}

/// One 72-byte little-endian component as a 48-byte big-endian scalar;
/// the 24 bytes past the scalar must be zero.
fn component_be(le: &[u8; 72]) -> Result<[u8; SCALAR_LEN], SnpError> {
    let (low, high) = le.split_at(SCALAR_LEN);
    if high.iter().any(|&b| b != 0) {
        return Err(SnpError::SignatureEncoding);
    }
    let mut be = [0u8; SCALAR_LEN];
    for (dst, src) in be.iter_mut().zip(low.iter().rev()) {
        *dst = *src;
    }
    Ok(be)
}

/// The report signature as a P-384 signature (r and s in range, non-zero).
pub fn decode_signature(sig: &ReportSignature) -> Result<Signature, SnpError> {
    let r = component_be(&sig.r)?;
    let s = component_be(&sig.s)?;
    Signature::from_scalars(r, s).map_err(|_| SnpError::SignatureEncoding)
}

/// A P-384 signature in the report's layout (the reserved tail zero).
pub fn encode_signature(sig: &Signature) -> ReportSignature {
    let (r, s) = sig.split_bytes();
    let mut out = ReportSignature {
        r: [0; 72],
        s: [0; 72],
        reserved: [0; 368],
    };
    for (dst, src) in out.r.iter_mut().zip(r.iter().rev()) {
        *dst = *src;
    }
    for (dst, src) in out.s.iter_mut().zip(s.iter().rev()) {
        *dst = *src;
    }
    out
}

/// Checks that `report` is signed by `vcek`: ECDSA P-384 over SHA-384 of
/// its bytes 0..0x2A0.
pub fn verify_report_signature(
    report: &AttestationReport,
    vcek: &VerifyingKey,
) -> Result<(), SnpError> {
    let sig = decode_signature(&report.signature)?;
    vcek.verify(report.signed_bytes(), &sig)
        .map_err(|_| SnpError::SignatureInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::snp::report::REPORT_LEN;
    use p384::ecdsa::signature::Signer;
    use p384::ecdsa::SigningKey;
    use sha2::{Digest, Sha384};
    use zerocopy::{FromBytes, FromZeros, IntoBytes};

    fn key(seed: u8) -> SigningKey {
        let mut scalar = [0u8; 48];
        scalar[47] = seed;
        scalar[0] = 0x11;
        SigningKey::from_bytes(&scalar.into()).unwrap()
    }

    fn signed_report(sk: &SigningKey) -> AttestationReport {
        let mut r = AttestationReport::new_zeroed();
        r.version.set(3);
        r.signature_algo.set(1);
        r.report_data = [0x42; 64];
        let sig: Signature = sk.sign(r.signed_bytes());
        r.signature = encode_signature(&sig);
        r
    }

    #[test]
    fn signature_is_little_endian_in_the_report() {
        let sk = key(1);
        let r = signed_report(&sk);
        let sig: Signature = sk.sign(r.signed_bytes());
        let (be_r, _) = sig.split_bytes();
        // Byte 0 of the stored r is the least significant byte.
        assert_eq!(r.signature.r[0], be_r[47]);
        assert_eq!(r.signature.r[47], be_r[0]);
        assert_eq!(&r.signature.r[48..], &[0u8; 24]);
        assert!(r.signature.reserved.iter().all(|&b| b == 0));
    }

    #[test]
    fn a_signed_report_verifies_with_its_key_only() {
        let sk = key(1);
        let r = signed_report(&sk);
        verify_report_signature(&r, sk.verifying_key()).unwrap();
        assert_eq!(
            verify_report_signature(&r, key(2).verifying_key()).unwrap_err(),
            SnpError::SignatureInvalid
        );
    }

    #[test]
    fn every_signed_byte_is_covered_and_the_signature_area_is_not() {
        let sk = key(3);
        let good = signed_report(&sk);
        for off in [0usize, 0x30, 0x50, 0x90, 0x1A0, 0x29F] {
            let mut bytes = good.as_bytes().to_vec();
            bytes[off] ^= 1;
            let r = AttestationReport::read_from_bytes(&bytes).unwrap();
            assert_eq!(
                verify_report_signature(&r, sk.verifying_key()).unwrap_err(),
                SnpError::SignatureInvalid,
                "offset {off:#x}"
            );
        }
        // The reserved tail of the signature block is not signed, and its
        // content does not matter to the check.
        let mut bytes = good.as_bytes().to_vec();
        bytes[REPORT_LEN - 1] = 0xFF;
        let r = AttestationReport::read_from_bytes(&bytes).unwrap();
        verify_report_signature(&r, sk.verifying_key()).unwrap();
    }

    #[test]
    fn malformed_components_are_refused() {
        let sk = key(4);
        let mut r = signed_report(&sk);
        r.signature.r[48] = 1; // past the 48-byte scalar
        assert_eq!(
            verify_report_signature(&r, sk.verifying_key()).unwrap_err(),
            SnpError::SignatureEncoding
        );
        let mut r = signed_report(&sk);
        r.signature.s = [0; 72]; // zero is not a valid scalar
        assert_eq!(
            verify_report_signature(&r, sk.verifying_key()).unwrap_err(),
            SnpError::SignatureEncoding
        );
        let mut r = signed_report(&sk);
        r.signature.r[..48].copy_from_slice(&[0xFF; 48]); // >= the group order
        assert_eq!(
            verify_report_signature(&r, sk.verifying_key()).unwrap_err(),
            SnpError::SignatureEncoding
        );
    }

    #[test]
    fn signature_is_over_sha384_of_the_signed_bytes() {
        // Verify through the prehash interface with our own SHA-384 of
        // bytes 0..0x2A0, independent of the Verifier's digest choice.
        use p384::ecdsa::signature::hazmat::PrehashVerifier;
        let sk = key(5);
        let r = signed_report(&sk);
        let digest = Sha384::digest(&r.as_bytes()[..0x2A0]);
        let sig = decode_signature(&r.signature).unwrap();
        sk.verifying_key().verify_prehash(&digest, &sig).unwrap();
    }

    #[test]
    fn sec1_keys_are_checked() {
        let sk = key(6);
        let sec1 = sk.verifying_key().to_encoded_point(false);
        let vk = vcek_key_from_sec1(sec1.as_bytes()).unwrap();
        assert_eq!(&vk, sk.verifying_key());
        let mut bad = sec1.as_bytes().to_vec();
        bad[10] ^= 0xFF; // off the curve
        assert_eq!(vcek_key_from_sec1(&bad).unwrap_err(), SnpError::PublicKey);
        assert_eq!(vcek_key_from_sec1(&[]).unwrap_err(), SnpError::PublicKey);
    }
}
