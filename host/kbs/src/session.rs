//! RCAR sessions: each `auth` opens one, identified by the
//! `kbs-session-id` cookie (32 random hex digits) and holding the nonce it
//! issued (32 random bytes, standard base64, as Trustee's). A nonce is good
//! for one attestation attempt on its own session before the session
//! expires; the attempt consumes it whatever its outcome, so evidence can
//! never be replayed. An attested session holds the TEE key the resources
//! are wrapped to.
//!
//! Each nonce carries its own proof of origin: 16 random bytes, then the
//! first 16 bytes of HMAC-SHA256 over them under a key only this broker
//! holds (derived from its token key, so it survives restarts). An
//! attestation whose nonce is not its session's challenge but carries a
//! valid tag was made for another session of this broker — an attest body
//! recorded earlier (another session, another boot, before a restart) and
//! replayed — and is refused saying so.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use kbs_types::{Tee, TeePubKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::refusal::Refusal;

/// Most sessions kept at once; the oldest expired ones go first, then the
/// broker refuses new ones.
const MAX_SESSIONS: usize = 4096;

/// State of one session.
#[derive(Debug, Clone)]
pub enum Stage {
    /// Challenge issued, not yet used.
    Challenged,
    /// The nonce was used by an attempt that failed.
    Spent,
    /// Attested.
    Attested {
        /// The TEE key resources are wrapped to.
        tee_pubkey: TeePubKey,
        /// The token issued.
        token: String,
    },
}

/// One session.
#[derive(Debug, Clone)]
pub struct Session {
    /// TEE type the client declared.
    pub tee: Tee,
    /// The nonce it issued.
    pub nonce: String,
    /// When it stops being valid.
    pub expires: Instant,
    /// Where it is.
    pub stage: Stage,
}

/// Random bytes of a nonce.
const NONCE_RANDOM: usize = 16;
/// Tag bytes of a nonce.
const NONCE_TAG: usize = 16;
/// Domain separation of the nonce tag.
const NONCE_DOMAIN: &[u8] = b"svtpm-kbs nonce v1\0";

/// All sessions.
pub struct Sessions {
    lifetime: Duration,
    nonce_key: Zeroizing<[u8; 32]>,
    map: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Sessions {
    // The nonce key is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Sessions living `lifetime`, their nonces tagged under `nonce_key`.
    pub fn new(lifetime: Duration, nonce_key: Zeroizing<[u8; 32]>) -> Self {
        Self {
            lifetime,
            nonce_key,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn nonce_mac(&self, random: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.nonce_key.as_ref())
            .expect("HMAC takes any key length");
        mac.update(NONCE_DOMAIN);
        mac.update(random);
        mac
    }

    /// A fresh nonce: random bytes and their tag, standard base64 (32
    /// bytes, like Trustee's).
    fn new_nonce(&self) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_RANDOM + NONCE_TAG];
        crate::random(&mut nonce[..NONCE_RANDOM])?;
        let tag = self
            .nonce_mac(&nonce[..NONCE_RANDOM])
            .finalize()
            .into_bytes();
        nonce[NONCE_RANDOM..].copy_from_slice(&tag[..NONCE_TAG]);
        Ok(STANDARD.encode(nonce))
    }

    /// Whether this broker (with this nonce key) issued `nonce`.
    pub fn issued_here(&self, nonce: &str) -> bool {
        match STANDARD.decode(nonce) {
            Ok(raw) if raw.len() == NONCE_RANDOM + NONCE_TAG => self
                .nonce_mac(&raw[..NONCE_RANDOM])
                .verify_truncated_left(&raw[NONCE_RANDOM..])
                .is_ok(),
            _ => false,
        }
    }

    /// Session lifetime.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `tee`: returns its id and nonce.
    pub fn open(&self, tee: Tee) -> Result<(String, String), Refusal> {
        let mut id = [0u8; 16];
        let nonce = crate::random(&mut id)
            .and_then(|()| self.new_nonce())
            .map_err(|e| Refusal::new(500, "InternalError", e.to_string()))?;
        let id = hex(&id);
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires > now);
        }
        if map.len() >= MAX_SESSIONS {
            return Err(Refusal::new(
                503,
                "TooManySessions",
                "too many open sessions",
            ));
        }
        map.insert(
            id.clone(),
            Session {
                tee,
                nonce: nonce.clone(),
                expires: now + self.lifetime,
                stage: Stage::Challenged,
            },
        );
        Ok((id, nonce))
    }

    /// Takes the nonce of session `id` for an attestation attempt: the
    /// session's TEE and nonce. The nonce cannot be taken again.
    pub fn take_nonce(&self, id: &str) -> Result<(Tee, String), Refusal> {
        let mut map = self.lock();
        let session = live(&mut map, id)?;
        match std::mem::replace(&mut session.stage, Stage::Spent) {
            Stage::Challenged => Ok((session.tee, session.nonce.clone())),
            other => {
                session.stage = other;
                Err(Refusal::attestation(format!(
                    "nonce check failed: the nonce of session {id} was already used \
                     (replayed attestation)"
                )))
            }
        }
    }

    /// Marks session `id` attested.
    pub fn attest(&self, id: &str, tee_pubkey: TeePubKey, token: String) -> Result<(), Refusal> {
        let mut map = self.lock();
        let session = live(&mut map, id)?;
        session.stage = Stage::Attested { tee_pubkey, token };
        Ok(())
    }

    /// The TEE key of attested session `id`.
    pub fn attested_key(&self, id: &str) -> Result<TeePubKey, Refusal> {
        let mut map = self.lock();
        let session = live(&mut map, id).map_err(|r| Refusal::unauthenticated(r.detail))?;
        match &session.stage {
            Stage::Attested { tee_pubkey, .. } => Ok(tee_pubkey.clone()),
            _ => Err(Refusal::unauthenticated(format!(
                "session {id} is not attested"
            ))),
        }
    }

    /// Expiry of session `id`, for its cookie.
    pub fn expires(&self, id: &str) -> Option<Instant> {
        self.lock().get(id).map(|s| s.expires)
    }
}

/// The live session `id`; an expired one is removed and refused.
fn live<'a>(map: &'a mut HashMap<String, Session>, id: &str) -> Result<&'a mut Session, Refusal> {
    let now = Instant::now();
    match map.get(id) {
        None => {
            return Err(Refusal::attestation(format!(
                "session check failed: no session {id:.40} (unknown or forged cookie)"
            )))
        }
        Some(s) if s.expires <= now => {
            map.remove(id);
            return Err(Refusal::attestation(format!(
                "session check failed: session {id} expired"
            )));
        }
        Some(_) => {}
    }
    map.get_mut(id)
        .ok_or_else(|| Refusal::attestation("session check failed: session vanished"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TeePubKey {
        TeePubKey::EC {
            crv: "P-256".into(),
            alg: "ECDH-ES+A256KW".into(),
            x: "x".into(),
            y: "y".into(),
        }
    }

    fn sessions(lifetime: Duration, key: u8) -> Sessions {
        Sessions::new(lifetime, Zeroizing::new([key; 32]))
    }

    #[test]
    fn nonces_are_single_use_and_sessions_expire() {
        let s = sessions(Duration::from_millis(200), 1);
        let (id, nonce) = s.open(Tee::Snp).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(STANDARD.decode(&nonce).unwrap().len(), 32);
        let (other_id, other_nonce) = s.open(Tee::Snp).unwrap();
        assert_ne!((&id, &nonce), (&other_id, &other_nonce));
        assert!(s.attested_key(&id).is_err());
        assert_eq!(s.take_nonce(&id).unwrap(), (Tee::Snp, nonce.clone()));
        let r = s.take_nonce(&id).unwrap_err();
        assert!(r.detail.contains("already used"), "{}", r.detail);
        s.attest(&id, key(), "t".into()).unwrap();
        assert!(
            s.take_nonce(&id).is_err(),
            "an attested session's nonce is spent"
        );
        assert!(s.attested_key(&id).is_ok());
        assert!(s
            .take_nonce("nope")
            .unwrap_err()
            .detail
            .contains("no session"));
        std::thread::sleep(Duration::from_millis(300));
        assert!(s
            .take_nonce(&other_id)
            .unwrap_err()
            .detail
            .contains("expired"));
        assert!(s.attested_key(&id).unwrap_err().detail.contains("expired"));
    }

    #[test]
    fn nonces_prove_which_broker_issued_them() {
        let s = sessions(Duration::from_secs(60), 1);
        let (_, nonce) = s.open(Tee::Snp).unwrap();
        assert!(s.issued_here(&nonce));
        // The same key after a restart (no sessions left) still knows it.
        assert!(sessions(Duration::from_secs(60), 1).issued_here(&nonce));
        // Another broker's key does not.
        assert!(!sessions(Duration::from_secs(60), 2).issued_here(&nonce));
        // Any changed bit, another length, not base64.
        let mut raw = STANDARD.decode(&nonce).unwrap();
        for i in [0, 15, 16, 31] {
            raw[i] ^= 0x01;
            assert!(!s.issued_here(&STANDARD.encode(&raw)), "byte {i}");
            raw[i] ^= 0x01;
        }
        assert!(s.issued_here(&STANDARD.encode(&raw)));
        assert!(!s.issued_here(&STANDARD.encode(&raw[..31])));
        assert!(!s.issued_here(&STANDARD.encode([0u8; 32])));
        assert!(!s.issued_here("not base64!"));
        assert!(!s.issued_here(""));
    }
}
