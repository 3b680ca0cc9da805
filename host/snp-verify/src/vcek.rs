//! The VCEK certificate's content: its P-384 key and AMD's extensions
//! (VCEK specification 57230, "VCEK Certificate Extensions"): the TCB it
//! was derived for (one INTEGER per SPL) and the chip's hwID (the 64 raw
//! bytes the report calls `CHIP_ID`).

use p384::ecdsa::VerifyingKey;
use svtpm::attest::snp::{vcek_key_from_sec1, TcbVersion};
use x509_cert::der::asn1::Ia5String;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::Decode;

use crate::cert::Cert;
use crate::error::VerifyError;

/// id-ecPublicKey.
pub const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp384r1.
pub const OID_SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// structVersion (INTEGER).
pub const OID_STRUCT_VERSION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.1");
/// productName (IA5String), e.g. "Milan-B0".
pub const OID_PRODUCT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.2");
/// blSPL (INTEGER).
pub const OID_BL_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
/// teeSPL (INTEGER).
pub const OID_TEE_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
/// snpSPL (INTEGER).
pub const OID_SNP_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
/// spl_4 .. spl_7 (INTEGER, reserved bytes of the TCB).
pub const OID_SPL_4_TO_7: [ObjectIdentifier; 4] = [
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.4"),
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.5"),
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.6"),
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.7"),
];
/// ucodeSPL (INTEGER).
pub const OID_UCODE_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
/// hwID (64 raw bytes).
pub const OID_HWID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.4");

/// Length of a Milan/Genoa hwID.
pub const HWID_LEN: usize = 64;

/// A VCEK whose certificate was checked against its ASK.
#[derive(Debug, Clone)]
pub struct Vcek {
    key: VerifyingKey,
    tcb: TcbVersion,
    hwid: [u8; HWID_LEN],
    product: Option<String>,
}

fn extension<'c>(
    cert: &'c Cert,
    oid: ObjectIdentifier,
    name: &'static str,
) -> Result<&'c [u8], VerifyError> {
    cert.certificate()
        .tbs_certificate
        .extensions
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| e.extn_value.as_bytes())
        .ok_or(VerifyError::MissingExtension(name))
}

fn spl(cert: &Cert, oid: ObjectIdentifier, name: &'static str) -> Result<u8, VerifyError> {
    u8::from_der(extension(cert, oid, name)?).map_err(|_| VerifyError::ExtensionValue(name))
}

impl Vcek {
    /// Reads the key and extensions of a VCEK certificate (whose signature
    /// the caller has checked).
    pub fn from_cert(cert: &Cert) -> Result<Vcek, VerifyError> {
        let spki = &cert.certificate().tbs_certificate.subject_public_key_info;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        if spki.algorithm.oid != OID_EC_PUBLIC_KEY || curve != Some(OID_SECP384R1) {
            return Err(VerifyError::VcekKey);
        }
        let sec1 = spki
            .subject_public_key
            .as_bytes()
            .ok_or(VerifyError::VcekKey)?;
        let key = vcek_key_from_sec1(sec1).map_err(|_| VerifyError::VcekKey)?;

        let mut tcb = TcbVersion::new(
            spl(cert, OID_BL_SPL, "blSPL")?,
            spl(cert, OID_TEE_SPL, "teeSPL")?,
            spl(cert, OID_SNP_SPL, "snpSPL")?,
            spl(cert, OID_UCODE_SPL, "ucodeSPL")?,
        );
        // spl_4..spl_7 are the reserved TCB bytes 2..6; absent means zero.
        for (i, oid) in OID_SPL_4_TO_7.iter().enumerate() {
            if let Ok(v) = extension(cert, *oid, "spl_4..7") {
                tcb.0[2 + i] =
                    u8::from_der(v).map_err(|_| VerifyError::ExtensionValue("spl_4..7"))?;
            }
        }
        let hwid = extension(cert, OID_HWID, "hwID")?
            .try_into()
            .map_err(|_| VerifyError::ExtensionValue("hwID"))?;
        let product = extension(cert, OID_PRODUCT_NAME, "productName")
            .ok()
            .and_then(|v| Ia5String::from_der(v).ok())
            .map(|s| s.to_string());
        Ok(Vcek {
            key,
            tcb,
            hwid,
            product,
        })
    }

    /// The VCEK's public key.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The TCB version the VCEK was derived for.
    pub fn tcb(&self) -> TcbVersion {
        self.tcb
    }

    /// The chip's hardware ID.
    pub fn hwid(&self) -> &[u8; HWID_LEN] {
        &self.hwid
    }

    /// The product name, if the certificate carries one.
    pub fn product_name(&self) -> Option<&str> {
        self.product.as_deref()
    }
}
