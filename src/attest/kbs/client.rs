//! The RCAR client of Trustee's KBS protocol (version 0.4.0) as a state
//! machine: it makes each HTTP request and takes each response, and never
//! performs I/O itself.
//!
//! 1. `POST /kbs/v0/auth` with `{"version":"0.4.0","tee":"snp",
//!    "extra-params":""}`; the answer is a `Challenge` (`nonce`) and the
//!    `kbs-session-id` cookie.
//! 2. `POST /kbs/v0/attest` with the cookie and
//!    `{"init-data":null,"runtime-data":{"nonce":..,"tee-pubkey":JWK},
//!    "tee-evidence":{"primary_evidence":..,"additional_evidence":""}}`.
//!    The evidence carries REPORT_DATA = SHA-384 of the canonical JSON of
//!    `{"additional-evidence":"","nonce":..,"tee-pubkey":JWK}` — the object
//!    Trustee rebuilds for the primary evidence (it adds the
//!    `additional-evidence` string to the runtime data) — zero-padded to
//!    64 bytes. The answer is `{"token": JWT}`.
//! 3. `GET /kbs/v0/resource/<repo>/<type>/<tag>` with the cookie; the answer
//!    is a JWE wrapped to the TEE key.
//!
//! Error statuses become [`KbsError::Refused`]; retrying (a new handshake
//! after a 401, say) is the caller's decision.

use alloc::string::String;

use kbs_types::{Attestation, Challenge, CompositeEvidence, Request, RuntimeData, Tee, TeePubKey};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::http::{HttpRequest, HttpResponse, Method, SessionId};
use super::{evidence, jwe, EvidenceSource, KbsError, ResourcePath, Secret, TeeKeyPair};
use crate::nvstate::EntropySource;

/// Protocol version this client speaks (Trustee requires an exact match).
pub const PROTOCOL_VERSION: &str = "0.4.0";
/// Path of the auth endpoint.
pub const AUTH_PATH: &str = "/kbs/v0/auth";
/// Path of the attest endpoint.
pub const ATTEST_PATH: &str = "/kbs/v0/attest";
/// Longest nonce accepted from the broker (Trustee's is 44 characters).
const MAX_NONCE: usize = 1024;
/// Longest token accepted from the broker.
const MAX_TOKEN: usize = 16 * 1024;
/// Largest evidence accepted from the evidence source.
const MAX_EVIDENCE: usize = 32 * 1024;

/// Where the client is in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Nothing sent, or a failure reset the handshake.
    Idle,
    /// `auth` sent, waiting for the challenge.
    AuthSent,
    /// Challenge received: the nonce to bind.
    Challenged { nonce: String },
    /// `attest` sent, waiting for the token.
    AttestSent,
    /// Attested: resources can be requested.
    Attested { token: String },
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::AuthSent => "waiting for the challenge",
            Phase::Challenged { .. } => "challenged",
            Phase::AttestSent => "waiting for the token",
            Phase::Attested { .. } => "attested",
        }
    }
}

/// The client: one TEE key, one broker session at a time.
#[derive(Debug)]
pub struct KbsClient {
    key: TeeKeyPair,
    tee: Tee,
    phase: Phase,
    session: Option<SessionId>,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: String,
}

impl KbsClient {
    /// A client with a fresh TEE key drawn from `entropy`, attesting as an
    /// SEV-SNP guest.
    pub fn new(entropy: &mut dyn EntropySource) -> Result<Self, KbsError> {
        Ok(Self::with_key(TeeKeyPair::generate(entropy)?, Tee::Snp))
    }

    /// A client with a given key and TEE type.
    pub fn with_key(key: TeeKeyPair, tee: Tee) -> Self {
        Self {
            key,
            tee,
            phase: Phase::Idle,
            session: None,
        }
    }

    /// The TEE key (its public half is in every attestation).
    pub fn tee_key(&self) -> &TeeKeyPair {
        &self.key
    }

    /// The session cookie, once the broker set one.
    pub fn session(&self) -> Option<&SessionId> {
        self.session.as_ref()
    }

    /// The attestation token, once attested.
    pub fn token(&self) -> Option<&str> {
        match &self.phase {
            Phase::Attested { token } => Some(token),
            _ => None,
        }
    }

    /// True once the broker accepted the evidence.
    pub fn is_attested(&self) -> bool {
        matches!(self.phase, Phase::Attested { .. })
    }

    fn fail<T>(&mut self, e: KbsError) -> Result<T, KbsError> {
        self.phase = Phase::Idle;
        Err(e)
    }

    fn state_error<T>(&self, expected: &'static str) -> Result<T, KbsError> {
        Err(KbsError::State {
            expected,
            found: self.phase.name(),
        })
    }

    /// Step 1: the `auth` request. Starts a new handshake from any state
    /// (forgetting the old session).
    pub fn auth_request(&mut self) -> HttpRequest {
        self.session = None;
        self.phase = Phase::AuthSent;
        let request = Request {
            version: PROTOCOL_VERSION.into(),
            tee: self.tee,
            extra_params: Value::String(String::new()),
        };
        // Serializing plain strings cannot fail.
        let body = serde_json::to_vec(&request).unwrap_or_default();
        HttpRequest::new(Method::Post, AUTH_PATH.into()).json(body)
    }

    /// Takes the `auth` response: the challenge and the session cookie.
    pub fn handle_auth_response(&mut self, response: &HttpResponse) -> Result<(), KbsError> {
        if self.phase != Phase::AuthSent {
            return self.state_error("an auth request in flight");
        }
        let parsed = (|| {
            let body = response.expect_ok()?;
            let session = response
                .session_cookie()?
                .ok_or(KbsError::NoSessionCookie)?;
            let challenge: Challenge = serde_json::from_slice(body)
                .map_err(|_| KbsError::Malformed { what: "challenge" })?;
            if challenge.nonce.is_empty() || challenge.nonce.len() > MAX_NONCE {
                return Err(KbsError::Malformed {
                    what: "challenge nonce",
                });
            }
            Ok((session, challenge.nonce))
        })();
        match parsed {
            Ok((session, nonce)) => {
                self.session = Some(session);
                self.phase = Phase::Challenged { nonce };
                Ok(())
            }
            Err(e) => self.fail(e),
        }
    }

    /// The object whose hash is the REPORT_DATA for `nonce`: what Trustee
    /// rebuilds from the attestation to check the primary evidence.
    pub fn binding(&self, nonce: &str) -> Value {
        let mut m = Map::new();
        m.insert("tee-pubkey".into(), self.key.jwk());
        m.insert("nonce".into(), Value::String(nonce.into()));
        m.insert("additional-evidence".into(), Value::String(String::new()));
        Value::Object(m)
    }

    /// Step 2: the `attest` request, with evidence from `source` bound to
    /// the challenge and the TEE key.
    pub fn attest_request(
        &mut self,
        source: &mut dyn EvidenceSource,
    ) -> Result<HttpRequest, KbsError> {
        let Phase::Challenged { nonce } = &self.phase else {
            return self.state_error("a challenge");
        };
        let nonce = nonce.clone();
        let built = (|| {
            let report_data = evidence::report_data_for(&self.binding(&nonce))?;
            let evidence = source.evidence(&report_data)?;
            if evidence.len() > MAX_EVIDENCE {
                return Err(KbsError::Evidence {
                    reason: "evidence too large",
                });
            }
            let primary_evidence: Value =
                serde_json::from_slice(&evidence).map_err(|_| KbsError::Evidence {
                    reason: "evidence is not JSON",
                })?;
            let tee_pubkey: TeePubKey = serde_json::from_value(self.key.jwk())
                .map_err(|_| KbsError::Malformed { what: "tee-pubkey" })?;
            let attestation = Attestation {
                init_data: None,
                runtime_data: RuntimeData { nonce, tee_pubkey },
                tee_evidence: CompositeEvidence {
                    primary_evidence,
                    additional_evidence: String::new(),
                },
            };
            serde_json::to_vec(&attestation).map_err(|_| KbsError::Malformed {
                what: "attestation",
            })
        })();
        match built {
            Ok(body) => {
                self.phase = Phase::AttestSent;
                let request = HttpRequest::new(Method::Post, ATTEST_PATH.into());
                Ok(self.with_session(request)?.json(body))
            }
            Err(e) => self.fail(e),
        }
    }

    /// Takes the `attest` response: the token.
    pub fn handle_attest_response(&mut self, response: &HttpResponse) -> Result<(), KbsError> {
        if self.phase != Phase::AttestSent {
            return self.state_error("an attest request in flight");
        }
        let parsed = (|| {
            let body = response.expect_ok()?;
            // Trustee sets the same cookie again; take it if present.
            let session = response.session_cookie()?;
            let t: TokenResponse =
                serde_json::from_slice(body).map_err(|_| KbsError::Malformed {
                    what: "token response",
                })?;
            if t.token.is_empty() || t.token.len() > MAX_TOKEN {
                return Err(KbsError::Malformed { what: "token" });
            }
            Ok((session, t.token))
        })();
        match parsed {
            Ok((session, token)) => {
                if let Some(s) = session {
                    self.session = Some(s);
                }
                self.phase = Phase::Attested { token };
                Ok(())
            }
            Err(e) => self.fail(e),
        }
    }

    /// Adds the session cookie to `request`.
    pub(crate) fn with_session(&self, request: HttpRequest) -> Result<HttpRequest, KbsError> {
        match &self.session {
            Some(s) => Ok(request.with_cookie(s)),
            None => Err(KbsError::NoSessionCookie),
        }
    }

    /// Step 3: the request for a resource (needs an attested session).
    pub fn resource_request(&self, path: &ResourcePath) -> Result<HttpRequest, KbsError> {
        self.attested_request(Method::Get, path.url_path())
    }

    /// A request on an attested session, for `path` (a resource, or a
    /// broker extension).
    pub fn attested_request(&self, method: Method, path: String) -> Result<HttpRequest, KbsError> {
        if !self.is_attested() {
            return self.state_error("an attested session");
        }
        self.with_session(HttpRequest::new(method, path))
    }

    /// Takes a resource response: opens the JWE with the TEE key.
    pub fn handle_resource_response(&self, response: &HttpResponse) -> Result<Secret, KbsError> {
        let body = response.expect_ok()?;
        jwe::open(body, &self.key)
    }

    /// Parses a response body the broker sent as JSON.
    pub(crate) fn json_body<T: for<'de> Deserialize<'de>>(
        body: &[u8],
        what: &'static str,
    ) -> Result<T, KbsError> {
        serde_json::from_slice(body).map_err(|_| KbsError::Malformed { what })
    }
}
