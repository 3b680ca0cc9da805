//! [`VerifyError`]: every reason evidence is refused, naming the
//! certificate ([`Role`]) and the check.

use std::fmt;

use svtpm::attest::snp::SnpError;

/// Which certificate of the chain a check concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The AMD Root Key certificate.
    Ark,
    /// The AMD SEV Key certificate (intermediate).
    Ask,
    /// The Versioned Chip Endorsement Key certificate.
    Vcek,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Ark => "ARK",
            Role::Ask => "ASK",
            Role::Vcek => "VCEK",
        })
    }
}

/// Why a certificate, chain or report was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// Not a DER or PEM X.509 certificate.
    Decode {
        /// Which certificate.
        role: Role,
        /// The decoder's complaint.
        detail: String,
    },
    /// A certificate file could not be read.
    Io {
        /// The path.
        path: String,
        /// The error.
        detail: String,
    },
    /// The signature algorithm is not RSASSA-PSS, or differs between the
    /// certificate and its TBS part.
    SignatureAlgorithm(Role),
    /// RSASSA-PSS parameters other than SHA-384, MGF1-SHA-384, salt 48,
    /// trailer 1.
    PssParameters(Role),
    /// The issuer name is not the signer's subject name.
    IssuerMismatch(Role),
    /// The certificate's key is not an RSA public key.
    RsaKey(Role),
    /// The RSA key is not 4096 bits.
    RsaKeySize {
        /// Which certificate.
        role: Role,
        /// Its modulus size in bits.
        bits: usize,
    },
    /// The signature does not verify under the issuer's key.
    Signature(Role),
    /// A CA certificate without `basicConstraints` CA = true.
    NotCa(Role),
    /// Outside its validity period at the time of the check.
    Validity(Role),
    /// The VCEK's key is not an EC P-384 key.
    VcekKey,
    /// The VCEK lacks an AMD extension.
    MissingExtension(&'static str),
    /// An AMD extension's value is malformed.
    ExtensionValue(&'static str),
    /// A chain presented an ARK different from the trust anchor.
    ArkNotAnchor,
    /// The report is malformed or its signature is bad.
    Report(SnpError),
    /// The report says it was signed by a key other than the VCEK.
    NotVcekSigned,
    /// The report's `CHIP_ID` is not the VCEK's hwID.
    ChipIdMismatch,
    /// The report's `REPORTED_TCB` is not the VCEK's TCB.
    TcbMismatch {
        /// TCB in the VCEK, as the u64 the specification shows.
        vcek: u64,
        /// `REPORTED_TCB` in the report.
        report: u64,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Decode { role, detail } => {
                write!(f, "{role} certificate does not decode: {detail}")
            }
            VerifyError::Io { path, detail } => write!(f, "cannot read {path}: {detail}"),
            VerifyError::SignatureAlgorithm(r) => {
                write!(f, "{r} certificate is not signed with RSASSA-PSS")
            }
            VerifyError::PssParameters(r) => write!(
                f,
                "{r} certificate's RSASSA-PSS parameters are not SHA-384/MGF1-SHA-384/salt 48"
            ),
            VerifyError::IssuerMismatch(r) => {
                write!(f, "{r} certificate's issuer is not its signer's subject")
            }
            VerifyError::RsaKey(r) => write!(f, "{r} certificate does not hold an RSA key"),
            VerifyError::RsaKeySize { role, bits } => {
                write!(f, "{role} key is {bits} bits, expected 4096")
            }
            VerifyError::Signature(r) => write!(f, "{r} certificate's signature does not verify"),
            VerifyError::NotCa(r) => write!(f, "{r} certificate is not a CA"),
            VerifyError::Validity(r) => write!(f, "{r} certificate is outside its validity"),
            VerifyError::VcekKey => write!(f, "VCEK does not hold an EC P-384 key"),
            VerifyError::MissingExtension(n) => write!(f, "VCEK lacks the {n} extension"),
            VerifyError::ExtensionValue(n) => write!(f, "VCEK's {n} extension is malformed"),
            VerifyError::ArkNotAnchor => write!(f, "presented ARK is not the trusted ARK"),
            VerifyError::Report(e) => write!(f, "report refused: {e}"),
            VerifyError::NotVcekSigned => write!(f, "report is not signed by a VCEK"),
            VerifyError::ChipIdMismatch => write!(f, "report CHIP_ID is not the VCEK's hwID"),
            VerifyError::TcbMismatch { vcek, report } => write!(
                f,
                "report REPORTED_TCB {report:#018x} is not the VCEK's TCB {vcek:#018x}"
            ),
        }
    }
}

impl std::error::Error for VerifyError {}

impl From<SnpError> for VerifyError {
    fn from(e: SnpError) -> Self {
        VerifyError::Report(e)
    }
}
