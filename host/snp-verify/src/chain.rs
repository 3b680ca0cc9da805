//! The trust anchor and the ARK -> ASK -> VCEK chain check.

use std::path::Path;
use std::time::SystemTime;

use rsa::RsaPublicKey;

use crate::cert::Cert;
use crate::error::{Role, VerifyError};
use crate::vcek::Vcek;

/// The ARK a verifier trusts: AMD's for a product, or the development
/// ARK. Accepted only if it is a self-signed RSA-4096 CA certificate with
/// a valid RSASSA-PSS/SHA-384 self-signature.
#[derive(Debug, Clone)]
pub struct TrustAnchor {
    ark: Cert,
    key: RsaPublicKey,
}

impl TrustAnchor {
    /// An anchor from the ARK certificate.
    pub fn new(ark: Cert) -> Result<TrustAnchor, VerifyError> {
        let ark = Cert::from_der(Role::Ark, ark.der())?;
        let key = ark.rsa_key()?;
        ark.require_ca()?;
        ark.check_signed_by(&ark, &key)?;
        Ok(TrustAnchor { ark, key })
    }

    /// An anchor from DER or PEM bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<TrustAnchor, VerifyError> {
        TrustAnchor::new(Cert::from_bytes(Role::Ark, bytes)?)
    }

    /// An anchor from a DER or PEM file (how the key broker is configured).
    pub fn from_file(path: &Path) -> Result<TrustAnchor, VerifyError> {
        TrustAnchor::new(Cert::from_file(Role::Ark, path)?)
    }

    /// The ARK certificate.
    pub fn ark(&self) -> &Cert {
        &self.ark
    }

    /// Refuses an ARK presented with evidence unless it is this anchor,
    /// byte for byte.
    pub fn check_presented(&self, presented: &Cert) -> Result<(), VerifyError> {
        if presented.der() == self.ark.der() {
            Ok(())
        } else {
            Err(VerifyError::ArkNotAnchor)
        }
    }
}

/// Checks ARK (the anchor) -> ASK -> VCEK at time `at` and returns the
/// VCEK's key, TCB and hwID.
pub fn verify_chain(
    anchor: &TrustAnchor,
    ask: &Cert,
    vcek: &Cert,
    at: SystemTime,
) -> Result<Vcek, VerifyError> {
    let ask = Cert::from_der(Role::Ask, ask.der())?;
    let vcek = Cert::from_der(Role::Vcek, vcek.der())?;
    anchor.ark.check_validity(at)?;

    let ask_key = ask.rsa_key()?;
    ask.require_ca()?;
    ask.check_signed_by(&anchor.ark, &anchor.key)?;
    ask.check_validity(at)?;

    vcek.check_signed_by(&ask, &ask_key)?;
    vcek.check_validity(at)?;
    Vcek::from_cert(&vcek)
}
