//! The attestation token the broker issues after a successful attestation:
//! a JWT (RFC 7519) signed ES256 with the broker's token key, carrying the
//! registered claims Trustee's protocol names (`iss`, `iat`, `exp`, `jwk`:
//! the key that verifies it) and the results: `tee`, `tee-pubkey` (the key
//! resources are wrapped to) and `tcb-status` (report fields). A client may
//! present it as `Authorization: Bearer` instead of the session cookie.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use kbs_types::TeePubKey;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde_json::{json, Value};

use crate::refusal::Refusal;
use crate::report::{hex, ParsedReport};

/// Issuer name.
pub const ISSUER: &str = "svtpm-kbs";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Issues and checks tokens.
#[derive(Debug)]
pub struct TokenIssuer {
    key: SigningKey,
    lifetime: Duration,
}

impl TokenIssuer {
    /// An issuer signing with `key`; tokens live `lifetime`.
    pub fn new(key: SigningKey, lifetime: Duration) -> Self {
        Self { key, lifetime }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let p = self.key.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(p.x().map(|x| x.as_slice()).unwrap_or_default()),
            "y": URL_SAFE_NO_PAD.encode(p.y().map(|y| y.as_slice()).unwrap_or_default()),
        })
    }

    /// Issues a token for an attested TEE.
    pub fn issue(&self, tee_pubkey: &TeePubKey, report: &ParsedReport) -> String {
        let iat = now();
        let claims = json!({
            "iss": ISSUER,
            "iat": iat,
            "exp": iat + self.lifetime.as_secs(),
            "jwk": self.jwk(),
            "tee": "snp",
            "tee-pubkey": tee_pubkey,
            "tcb-status": {
                "snp.version": report.version,
                "snp.policy": format!("{:#x}", report.policy),
                "snp.vmpl": report.vmpl,
                "snp.measurement": hex(&report.measurement),
                "snp.report_data": hex(&report.report_data),
                "snp.host_data": hex(&report.host_data),
                "snp.reported_tcb": format!("{:#x}", report.reported_tcb),
            },
        });
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        let sig: Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    /// Checks a token's signature and expiry; returns its TEE key.
    pub fn check(&self, token: &str) -> Result<TeePubKey, Refusal> {
        verify(self.key.verifying_key(), token)
    }
}

/// Checks `token` against `key`: ES256 signature, `exp` in the future.
pub fn verify(key: &VerifyingKey, token: &str) -> Result<TeePubKey, Refusal> {
    let bad = |why: &str| Refusal::unauthenticated(format!("token check failed: {why}"));
    let mut parts = token.splitn(3, '.');
    let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("not a JWT"));
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("header"))?;
    if header["alg"] != "ES256" {
        return Err(bad("algorithm is not ES256"));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or_else(|| bad("signature encoding"))?;
    key.verify(format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| bad("signature does not verify"))?;
    let claims: Value = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("claims"))?;
    match claims["exp"].as_u64() {
        Some(exp) if exp > now() => {}
        _ => return Err(bad("expired")),
    }
    serde_json::from_value(claims["tee-pubkey"].clone()).map_err(|_| bad("no tee-pubkey"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ParsedReport {
        ParsedReport {
            version: 2,
            guest_svn: 0,
            policy: 0x30000,
            vmpl: 0,
            sig_algo: 1,
            report_data: [1; 64],
            measurement: [2; 48],
            host_data: [0; 32],
            reported_tcb: 0,
        }
    }

    #[test]
    fn issue_check_and_tamper() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let issuer = TokenIssuer::new(key, Duration::from_secs(60));
        let tee = TeePubKey::EC {
            crv: "P-256".into(),
            alg: "ECDH-ES+A256KW".into(),
            x: "AAAA".into(),
            y: "BBBB".into(),
        };
        let token = issuer.issue(&tee, &report());
        match issuer.check(&token).unwrap() {
            TeePubKey::EC { x, .. } => assert_eq!(x, "AAAA"),
            other => panic!("{other:?}"),
        }
        // Another key's token, a changed payload, and an expired token fail.
        let other = TokenIssuer::new(
            SigningKey::from_slice(&[8u8; 32]).unwrap(),
            Duration::from_secs(60),
        );
        assert!(issuer.check(&other.issue(&tee, &report())).is_err());
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        claims["tee-pubkey"]["x"] = "CCCC".into();
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert!(issuer.check(&parts.join(".")).is_err());
        let stale = TokenIssuer::new(
            SigningKey::from_slice(&[7u8; 32]).unwrap(),
            Duration::from_secs(0),
        );
        let r = issuer.check(&stale.issue(&tee, &report())).unwrap_err();
        assert!(r.detail.contains("expired"), "{}", r.detail);
    }
}
