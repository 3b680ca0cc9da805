//! RCAR sessions: each `auth` opens one, identified by the
//! `kbs-session-id` cookie (32 random hex digits) and holding the nonce it
//! issued (32 random bytes, standard base64, as Trustee's). A nonce is good
//! for one attestation attempt on its own session before the session
//! expires; the attempt consumes it whatever its outcome, so evidence can
//! never be replayed. A session keeps its nonce until it is dropped, so an
//! attestation carrying another session's nonce (a replayed attest body) is
//! recognised as such. An attested session holds the TEE key the resources
//! are wrapped to.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use kbs_types::{Tee, TeePubKey};

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

/// All sessions.
#[derive(Debug)]
pub struct Sessions {
    lifetime: Duration,
    map: Mutex<HashMap<String, Session>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Sessions living `lifetime`.
    pub fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            map: Mutex::new(HashMap::new()),
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
        let mut nonce = [0u8; 32];
        crate::random(&mut id)
            .and_then(|()| crate::random(&mut nonce))
            .map_err(|e| Refusal::new(500, "InternalError", e.to_string()))?;
        let (id, nonce) = (hex(&id), STANDARD.encode(nonce));
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

    /// Whether `nonce` was issued to a session other than `id` that the
    /// broker still holds (expired or not): an attestation carrying it was
    /// made for that session and replayed here.
    pub fn issued_to_other(&self, nonce: &str, id: &str) -> bool {
        self.lock()
            .iter()
            .any(|(other, s)| other != id && s.nonce == nonce)
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

    #[test]
    fn nonces_are_single_use_and_sessions_expire() {
        let s = Sessions::new(Duration::from_millis(200));
        let (id, nonce) = s.open(Tee::Snp).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(STANDARD.decode(&nonce).unwrap().len(), 32);
        let (other_id, other_nonce) = s.open(Tee::Snp).unwrap();
        assert_ne!((&id, &nonce), (&other_id, &other_nonce));
        assert!(s.attested_key(&id).is_err());
        assert!(s.issued_to_other(&nonce, &other_id));
        assert!(!s.issued_to_other(&nonce, &id));
        assert!(!s.issued_to_other("never issued", &id));
        assert_eq!(s.take_nonce(&id).unwrap(), (Tee::Snp, nonce.clone()));
        // A spent nonce is still known as this session's.
        assert!(s.issued_to_other(&nonce, &other_id));
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
}
