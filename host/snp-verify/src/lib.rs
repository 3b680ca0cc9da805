//! svtpm-snp-verify: checks SEV-SNP attestation evidence the way a key
//! broker must before it releases svtpm's state key.
//!
//! 1. [`TrustAnchor`]: the AMD Root Key (ARK) the verifier trusts, from a
//!    file (AMD's Milan or Genoa ARK in production; the development ARK
//!    that `svtpm-psp-sim` generates under test). It must be a self-signed
//!    RSA-4096 CA certificate signed with RSASSA-PSS/SHA-384.
//! 2. [`verify_chain`]: ARK -> ASK -> VCEK. Each link is an RSASSA-PSS
//!    signature (SHA-384, MGF1-SHA-384, salt 48) over the certificate's
//!    TBS bytes as received, with the issuer name matching the signer's
//!    subject and every certificate inside its validity period. The ASK
//!    must be an RSA-4096 CA; the VCEK must carry a P-384 key and AMD's
//!    TCB and hardware-ID extensions. The result is a [`Vcek`].
//! 3. [`verify_report`]: the report parses, was signed by the VCEK
//!    (`SIGNING_KEY` = VCEK, ECDSA P-384 over bytes 0..0x2A0), its
//!    `CHIP_ID` is the VCEK's hwID and its `REPORTED_TCB` the VCEK's TCB.
//!
//! The same code checks the development chain and AMD's; only the anchor
//! differs. Policy on the report's contents (measurement, VMPL, debug,
//! minimum TCB, `REPORT_DATA`) is the broker's and is not decided here.
//! The crate is std-only because RSA and X.509 are host concerns: the
//! guest never verifies a chain.
//!
//! Milan and Genoa only: Turin's VCEK carries an 8-byte hwID and a
//! different TCB layout, which this code refuses.

pub mod cert;
pub mod chain;
pub mod error;
pub mod report;
pub mod vcek;

pub use cert::Cert;
pub use chain::{verify_chain, TrustAnchor};
pub use error::{Role, VerifyError};
pub use report::verify_report;
pub use vcek::Vcek;
