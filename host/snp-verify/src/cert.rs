//! One X.509 certificate as received (DER or PEM), with the checks every
//! link of the AMD chain shares: an RSASSA-PSS/SHA-384 signature over the
//! TBS bytes exactly as they arrived, issuer naming, RSA key size, CA
//! status and validity period.

use std::ops::Range;
use std::path::Path;
use std::time::SystemTime;

use rsa::pkcs1::{RsaPssParams, TrailerField};
use rsa::signature::Verifier;
use rsa::RsaPublicKey;
use sha2::Sha384;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::referenced::OwnedToRef;
use x509_cert::der::{Decode, Encode, Header, Reader, SliceReader};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

use crate::error::{Role, VerifyError};

/// RSASSA-PSS (RFC 4055).
pub const OID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
/// rsaEncryption.
pub const OID_RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// SHA-384.
pub const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
/// MGF1.
pub const OID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");

/// PSS salt length AMD uses (the SHA-384 output size).
pub const PSS_SALT_LEN: u8 = 48;

/// RSA modulus size of AMD's ARK and ASK.
pub const RSA_BITS: usize = 4096;

/// A certificate and the bytes it arrived as.
#[derive(Debug, Clone)]
pub struct Cert {
    role: Role,
    der: Vec<u8>,
    tbs: Range<usize>,
    cert: Certificate,
}

/// Where the TBS certificate lies inside the outer SEQUENCE.
fn tbs_range(der: &[u8]) -> x509_cert::der::Result<Range<usize>> {
    let mut reader = SliceReader::new(der)?;
    Header::decode(&mut reader)?;
    let start = usize::try_from(reader.position())?;
    let tbs = reader.tlv_bytes()?;
    Ok(start..start + tbs.len())
}

impl Cert {
    /// A certificate from DER.
    pub fn from_der(role: Role, der: &[u8]) -> Result<Cert, VerifyError> {
        let decode = |e: x509_cert::der::Error| VerifyError::Decode {
            role,
            detail: e.to_string(),
        };
        let cert = Certificate::from_der(der).map_err(decode)?;
        let tbs = tbs_range(der).map_err(decode)?;
        Ok(Cert {
            role,
            der: der.to_vec(),
            tbs,
            cert,
        })
    }

    /// A certificate from PEM (`-----BEGIN CERTIFICATE-----`).
    pub fn from_pem(role: Role, pem: &[u8]) -> Result<Cert, VerifyError> {
        let (label, der) =
            x509_cert::der::pem::decode_vec(pem).map_err(|e| VerifyError::Decode {
                role,
                detail: e.to_string(),
            })?;
        if label != "CERTIFICATE" {
            return Err(VerifyError::Decode {
                role,
                detail: format!("PEM label {label:?}, expected CERTIFICATE"),
            });
        }
        Cert::from_der(role, &der)
    }

    /// A certificate from DER or PEM, told apart by the PEM armour.
    pub fn from_bytes(role: Role, bytes: &[u8]) -> Result<Cert, VerifyError> {
        if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            Cert::from_pem(role, bytes)
        } else {
            Cert::from_der(role, bytes)
        }
    }

    /// A certificate from a DER or PEM file.
    pub fn from_file(role: Role, path: &Path) -> Result<Cert, VerifyError> {
        let bytes = std::fs::read(path).map_err(|e| VerifyError::Io {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Cert::from_bytes(role, &bytes)
    }

    /// The role this certificate was loaded for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The DER bytes as received.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The decoded certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    /// The signed TBS bytes as received.
    pub fn tbs_bytes(&self) -> &[u8] {
        self.der.get(self.tbs.clone()).unwrap_or(&[])
    }

    /// The certificate's RSA-4096 public key.
    pub fn rsa_key(&self) -> Result<RsaPublicKey, VerifyError> {
        let spki = &self.cert.tbs_certificate.subject_public_key_info;
        if spki.algorithm.oid != OID_RSA_ENCRYPTION {
            return Err(VerifyError::RsaKey(self.role));
        }
        let key = RsaPublicKey::try_from(spki.owned_to_ref())
            .map_err(|_| VerifyError::RsaKey(self.role))?;
        let bits = rsa::traits::PublicKeyParts::size(&key) * 8;
        if bits != RSA_BITS {
            return Err(VerifyError::RsaKeySize {
                role: self.role,
                bits,
            });
        }
        Ok(key)
    }

    /// Whether `basicConstraints` marks this a CA.
    pub fn is_ca(&self) -> bool {
        matches!(
            self.cert.tbs_certificate.get::<BasicConstraints>(),
            Ok(Some((_, BasicConstraints { ca: true, .. })))
        )
    }

    /// Refuses a certificate that is not a CA.
    pub fn require_ca(&self) -> Result<(), VerifyError> {
        if self.is_ca() {
            Ok(())
        } else {
            Err(VerifyError::NotCa(self.role))
        }
    }

    /// Refuses a certificate outside its validity period at `at`.
    pub fn check_validity(&self, at: SystemTime) -> Result<(), VerifyError> {
        let v = &self.cert.tbs_certificate.validity;
        if at < v.not_before.to_system_time() || at > v.not_after.to_system_time() {
            return Err(VerifyError::Validity(self.role));
        }
        Ok(())
    }

    fn check_pss_algorithm(&self) -> Result<(), VerifyError> {
        let alg = &self.cert.signature_algorithm;
        if alg.oid != OID_RSASSA_PSS || *alg != self.cert.tbs_certificate.signature {
            return Err(VerifyError::SignatureAlgorithm(self.role));
        }
        let bad = VerifyError::PssParameters(self.role);
        let params_der = alg
            .parameters
            .as_ref()
            .ok_or(bad.clone())?
            .to_der()
            .map_err(|_| bad.clone())?;
        let params = RsaPssParams::from_der(&params_der).map_err(|_| bad.clone())?;
        let mgf_hash = params.mask_gen.parameters.as_ref().map(|p| p.oid);
        if params.hash.oid != OID_SHA384
            || params.mask_gen.oid != OID_MGF1
            || mgf_hash != Some(OID_SHA384)
            || params.salt_len != PSS_SALT_LEN
            || params.trailer_field != TrailerField::BC
        {
            return Err(bad);
        }
        Ok(())
    }

    /// Checks that `issuer` (whose RSA key is `issuer_key`) signed this
    /// certificate: RSASSA-PSS with AMD's parameters, the issuer name
    /// matching, the signature valid over the TBS bytes as received.
    pub fn check_signed_by(
        &self,
        issuer: &Cert,
        issuer_key: &RsaPublicKey,
    ) -> Result<(), VerifyError> {
        self.check_pss_algorithm()?;
        if self.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return Err(VerifyError::IssuerMismatch(self.role));
        }
        let bad = VerifyError::Signature(self.role);
        let raw = self.cert.signature.as_bytes().ok_or(bad.clone())?;
        let sig = rsa::pss::Signature::try_from(raw).map_err(|_| bad.clone())?;
        rsa::pss::VerifyingKey::<Sha384>::new_with_salt_len(
            issuer_key.clone(),
            usize::from(PSS_SALT_LEN),
        )
        .verify(self.tbs_bytes(), &sig)
        .map_err(|_| bad)
    }
}
