//! The broker: [`Kbs`] answers requests (pure: a request in, a reply out),
//! and [`serve`] puts it on HTTP with `tiny_http`.
//!
//! Endpoints (Trustee's, plus the svtpm extension):
//! - `POST /kbs/v0/auth`: opens a session, answers the challenge and sets
//!   the `kbs-session-id` cookie;
//! - `POST /kbs/v0/attest`: checks the nonce (this session's, unused, not
//!   expired), the TEE key, the evidence (verifier: signature) and the
//!   policy (REPORT_DATA binding, VMPL 0, debug, measurement); answers
//!   `{"token": JWT}`;
//! - `GET /kbs/v0/resource/svtpm/<vtpm-id>/state-key`: the state key,
//!   JWE-wrapped to the session's (or the bearer token's) TEE key;
//! - `GET|POST /kbs/v0/external/svtpm-generation/<vtpm-id>`: the
//!   generation record (see `svtpm::attest::kbs::generation`).
//!
//! Every refusal is logged with the check that failed and answered with
//! Trustee's `ErrorInformation`.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use kbs_types::{Attestation, Request, TeePubKey};
use log::{info, warn};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256, Sha384};
use svtpm::attest::kbs::generation::{self, GenerationKey, Outcome};
use svtpm::attest::kbs::http::SESSION_COOKIE;
use svtpm::attest::kbs::resource::{STATE_KEY_TAG, SVTPM_REPOSITORY};
use svtpm::attest::kbs::VtpmId;

use crate::jwe;
use crate::policy::Policy;
use crate::refusal::Refusal;
use crate::session::Sessions;
use crate::store::{DataDir, RecordResult};
use crate::token::TokenIssuer;
use crate::verifier::AttestationVerifier;

/// Protocol version accepted (exactly, as Trustee does).
pub const PROTOCOL_VERSION: &str = "0.4.0";
/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// A request, as the broker sees it.
#[derive(Debug, Clone, Default)]
pub struct Incoming {
    /// Method.
    pub method: String,
    /// Path and query.
    pub url: String,
    /// `Cookie` header.
    pub cookie: Option<String>,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// Body.
    pub body: Vec<u8>,
}

/// A reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// `Set-Cookie` value, if any.
    pub set_cookie: Option<String>,
    /// JSON body.
    pub body: Vec<u8>,
}

impl Reply {
    fn json<T: Serialize>(status: u16, body: &T) -> Self {
        Self {
            status,
            set_cookie: None,
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }
}

impl From<Refusal> for Reply {
    fn from(r: Refusal) -> Self {
        Self {
            status: r.status,
            set_cookie: None,
            body: r.body(),
        }
    }
}

/// The broker.
pub struct Kbs {
    policy: Policy,
    verifier: Box<dyn AttestationVerifier>,
    data: DataDir,
    sessions: Sessions,
    tokens: TokenIssuer,
}

impl std::fmt::Debug for Kbs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kbs")
            .field("data", &self.data.root())
            .finish_non_exhaustive()
    }
}

fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

fn vtpm_id(segment: &str) -> Result<VtpmId, Refusal> {
    VtpmId::new(segment).map_err(|_| Refusal::not_found(format!("no vTPM {segment:.64}")))
}

fn internal(e: anyhow::Error) -> Refusal {
    Refusal::new(500, "InternalError", format!("{e:#}"))
}

impl Kbs {
    /// A broker with `policy`, `verifier` and the data directory `data`.
    pub fn new(
        policy: Policy,
        verifier: Box<dyn AttestationVerifier>,
        data: DataDir,
    ) -> anyhow::Result<Self> {
        let token_key = data.token_key()?;
        let nonce_key = nonce_key(&token_key);
        let tokens = TokenIssuer::new(token_key, policy.token_lifetime);
        Ok(Self {
            sessions: Sessions::new(policy.session_lifetime, nonce_key),
            policy,
            verifier,
            data,
            tokens,
        })
    }

    /// The token issuer (its public key verifies the tokens).
    pub fn tokens(&self) -> &TokenIssuer {
        &self.tokens
    }

    /// Answers one request, logging refusals.
    pub fn handle(&self, req: &Incoming) -> Reply {
        let (path, query) = req.url.split_once('?').unwrap_or((&req.url, ""));
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let result = match (req.method.as_str(), segments.as_slice()) {
            ("POST", ["kbs", "v0", "auth"]) => self.auth(req),
            ("POST", ["kbs", "v0", "attest"]) => self.attest(req),
            ("GET", ["kbs", "v0", "resource", repo, kind, tag]) => {
                self.resource(req, repo, kind, tag)
            }
            (m @ ("GET" | "POST"), ["kbs", "v0", "external", "svtpm-generation", id]) => {
                self.generation(req, m, id, query)
            }
            _ => Err(Refusal::not_found(format!(
                "no endpoint {} {path:.100}",
                req.method
            ))),
        };
        match result {
            Ok(reply) => reply,
            Err(refusal) => {
                warn!("refused {} {path:.100}: {refusal}", req.method);
                refusal.into()
            }
        }
    }

    fn cookie_for(&self, id: &str) -> String {
        let left = self
            .sessions
            .expires(id)
            .map(|e| e.saturating_duration_since(Instant::now()).as_secs())
            .unwrap_or(0);
        format!("{SESSION_COOKIE}={id}; Max-Age={left}")
    }

    fn auth(&self, req: &Incoming) -> Result<Reply, Refusal> {
        let request: Request = serde_json::from_slice(&req.body)
            .map_err(|e| Refusal::attestation(format!("auth request is not valid: {e}")))?;
        if request.version != PROTOCOL_VERSION {
            return Err(Refusal::attestation(format!(
                "version check failed: KBS Client Protocol Version Mismatch: expect \
                 ={PROTOCOL_VERSION} while the request is {:.20}",
                request.version
            )));
        }
        let (id, nonce) = self.sessions.open(request.tee)?;
        info!("auth: session {id} opened for {:?}", request.tee);
        let mut reply = Reply::json(200, &json!({"nonce": nonce, "extra-params": ""}));
        reply.set_cookie = Some(self.cookie_for(&id));
        Ok(reply)
    }

    fn session_id<'a>(&self, req: &'a Incoming) -> Option<&'a str> {
        req.cookie
            .as_deref()
            .and_then(|c| cookie_value(c, SESSION_COOKIE))
    }

    fn attest(&self, req: &Incoming) -> Result<Reply, Refusal> {
        let id = self.session_id(req).ok_or_else(|| {
            Refusal::attestation("session check failed: no kbs-session-id cookie")
        })?;
        // Taking the nonce spends it, whatever happens next.
        let (tee, nonce) = self.sessions.take_nonce(id)?;
        let att: Attestation = serde_json::from_slice(&req.body)
            .map_err(|e| Refusal::attestation(format!("attestation is not valid: {e}")))?;
        if att.runtime_data.nonce != nonce {
            return Err(Refusal::attestation(
                if self.sessions.issued_here(&att.runtime_data.nonce) {
                    "nonce check failed: runtime-data nonce was issued by this broker to \
                     another session (replayed attestation)"
                } else {
                    "nonce check failed: runtime-data nonce is not the challenge of this session"
                },
            ));
        }
        if !att.tee_evidence.additional_evidence.is_empty() {
            return Err(Refusal::attestation(
                "evidence check failed: additional evidence is not supported",
            ));
        }
        jwe::recipient(&att.runtime_data.tee_pubkey)?;
        let expected = expected_report_data(
            &att.runtime_data.tee_pubkey,
            &nonce,
            &att.tee_evidence.additional_evidence,
        )?;
        let report = self
            .verifier
            .verify(tee, &att.tee_evidence.primary_evidence)?;
        self.policy.check(&report, &expected)?;
        let token = self.tokens.issue(&att.runtime_data.tee_pubkey, &report);
        self.sessions
            .attest(id, att.runtime_data.tee_pubkey, token.clone())?;
        info!("attest: session {id} attested ({report:?})");
        let mut reply = Reply::json(200, &json!({ "token": token }));
        reply.set_cookie = Some(self.cookie_for(id));
        Ok(reply)
    }

    /// The TEE key of the request's attested session or bearer token.
    fn authenticated_key(&self, req: &Incoming) -> Result<TeePubKey, Refusal> {
        if let Some(id) = self.session_id(req) {
            return self.sessions.attested_key(id);
        }
        if let Some(token) = req
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
        {
            return self.tokens.check(token.trim());
        }
        Err(Refusal::unauthenticated(
            "no kbs-session-id cookie and no bearer token",
        ))
    }

    /// The state key of `id`, or 404.
    fn state_key(&self, id: &VtpmId) -> Result<zeroize::Zeroizing<[u8; 32]>, Refusal> {
        self.data
            .state_key(id)
            .map_err(internal)?
            .ok_or_else(|| Refusal::not_found(format!("vTPM {id} is not provisioned")))
    }

    fn resource(
        &self,
        req: &Incoming,
        repo: &str,
        kind: &str,
        tag: &str,
    ) -> Result<Reply, Refusal> {
        let tee_key = self.authenticated_key(req)?;
        if repo != SVTPM_REPOSITORY || tag != STATE_KEY_TAG {
            return Err(Refusal::not_found(format!(
                "no resource {repo:.64}/{kind:.64}/{tag:.64}"
            )));
        }
        let id = vtpm_id(kind)?;
        let key = self.state_key(&id)?;
        let response = jwe::encrypt(&tee_key, key.as_ref())?;
        info!("resource: released the state key of {id}");
        Ok(Reply::json(200, &response))
    }

    fn generation(
        &self,
        req: &Incoming,
        method: &str,
        id: &str,
        query: &str,
    ) -> Result<Reply, Refusal> {
        let tee_key = self.authenticated_key(req)?;
        let id = vtpm_id(id)?;
        let key = GenerationKey::derive(self.state_key(&id)?.as_ref());
        if method == "GET" {
            let challenge = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("challenge="))
                .and_then(|c| generation::decode_challenge(c).ok())
                .ok_or_else(|| {
                    Refusal::bad_request("generation read needs a 16-byte base64url challenge")
                })?;
            let record = self.data.generation(&id).map_err(internal)?;
            let reply = generation::read_reply(&key, &id, &challenge, record);
            let response = jwe::encrypt(&tee_key, &generation::encode(&reply))?;
            info!("generation: {id} read, record {record:?}");
            return Ok(Reply::json(200, &response));
        }
        let (offered, challenge) =
            generation::check_record_request(&key, &id, &req.body).map_err(|e| {
                Refusal::unauthenticated(format!(
                    "generation record check failed: request for {id} is not authentic ({e})"
                ))
            })?;
        match self
            .data
            .record_generation(&id, offered)
            .map_err(internal)?
        {
            RecordResult::Recorded => {
                info!("generation: {id} recorded {offered}");
                let reply =
                    generation::record_reply(&key, &id, &challenge, Outcome::Recorded, offered);
                Ok(Reply::json(200, &reply))
            }
            RecordResult::Regression { recorded } => {
                warn!(
                    "refused POST generation of {id}: regression check failed: offered \
                     {offered} is below the record {recorded}"
                );
                let reply =
                    generation::record_reply(&key, &id, &challenge, Outcome::Regression, recorded);
                Ok(Reply::json(409, &reply))
            }
        }
    }
}

/// The key that tags session nonces, derived from the token key (so it is
/// as durable and as secret as that key): HMAC-SHA256(token key, label).
fn nonce_key(token_key: &p256::ecdsa::SigningKey) -> zeroize::Zeroizing<[u8; 32]> {
    use hmac::Mac;
    let secret = zeroize::Zeroizing::new(token_key.to_bytes());
    let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(secret.as_slice())
        .expect("HMAC takes any key length");
    mac.update(b"svtpm-kbs session nonce key v1");
    zeroize::Zeroizing::new(mac.finalize().into_bytes().into())
}

/// REPORT_DATA the primary evidence must carry: SHA-384 of the RFC 8785
/// form of `{"tee-pubkey", "nonce", "additional-evidence"}` (computed with
/// `canon-json`, the canonicalizer Trustee uses), zero-padded to 64 bytes.
pub fn expected_report_data(
    tee_pubkey: &TeePubKey,
    nonce: &str,
    additional_evidence: &str,
) -> Result<[u8; 64], Refusal> {
    let binding = json!({
        "tee-pubkey": tee_pubkey,
        "nonce": nonce,
        "additional-evidence": additional_evidence,
    });
    let mut bytes = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut bytes, canon_json::CanonicalFormatter::new());
    binding
        .serialize(&mut ser)
        .map_err(|e| Refusal::attestation(format!("runtime data cannot be canonicalized: {e}")))?;
    let mut out = [0u8; 64];
    out[..48].copy_from_slice(&Sha384::digest(&bytes));
    Ok(out)
}

/// A running HTTP server.
pub struct Running {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for its workers.
    pub fn stop(self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }

    /// Serves until the process is killed.
    pub fn wait(self) {
        for w in self.workers {
            let _ = w.join();
        }
    }
}

fn to_incoming(req: &mut tiny_http::Request) -> Result<Incoming, Refusal> {
    let header = |name: &'static str| {
        req.headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().to_owned())
    };
    let cookie = header("Cookie");
    let authorization = header("Authorization");
    let mut body = Vec::new();
    req.as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Refusal::bad_request(format!("cannot read the body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(Refusal::new(
            413,
            "PayloadTooLarge",
            "request body too large",
        ));
    }
    Ok(Incoming {
        method: req.method().as_str().to_owned(),
        url: req.url().to_owned(),
        cookie,
        authorization,
        body,
    })
}

fn respond(req: tiny_http::Request, reply: Reply) {
    let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    let mut add = |name: &str, value: &str| {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    };
    add("Content-Type", "application/json");
    if let Some(c) = &reply.set_cookie {
        add("Set-Cookie", c);
    }
    if let Err(e) = req.respond(response) {
        warn!("cannot send the response: {e}");
    }
}

/// Serves `kbs` on `addr` with `workers` threads.
pub fn serve(kbs: Arc<Kbs>, addr: SocketAddr, workers: usize) -> anyhow::Result<Running> {
    let server = Arc::new(
        tiny_http::Server::http(addr)
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?,
    );
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| anyhow::anyhow!("server is not on an IP address"))?;
    let workers = (0..workers.max(1))
        .map(|_| {
            let server = Arc::clone(&server);
            let kbs = Arc::clone(&kbs);
            std::thread::spawn(move || {
                while let Ok(mut req) = server.recv() {
                    let reply = match to_incoming(&mut req) {
                        Ok(incoming) => kbs.handle(&incoming),
                        Err(r) => {
                            warn!("refused {} {:.100}: {r}", req.method(), req.url());
                            r.into()
                        }
                    };
                    respond(req, reply);
                }
            })
        })
        .collect();
    info!("svtpm-kbs listening on http://{addr}");
    Ok(Running {
        addr,
        server,
        workers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_header_parsing() {
        assert_eq!(
            cookie_value("a=1; kbs-session-id=abc ; b=2", SESSION_COOKIE),
            Some("abc")
        );
        assert_eq!(cookie_value("kbs-session-idx=abc", SESSION_COOKIE), None);
    }
}
