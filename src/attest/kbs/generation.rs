//! The generation record: svtpm's extension of the broker protocol that
//! lets the broker remember the newest durable generation of a vTPM's
//! state, so a host that replays old state blobs is caught (the
//! [`GenerationGuard`](crate::nvstate::GenerationGuard) rule).
//!
//! It lives outside Trustee's standard paths, where Trustee routes its
//! external plugins: `/kbs/v0/external/svtpm-generation/<vtpm-id>`.
//! - `GET ...?challenge=<c>` answers, JWE-wrapped to the TEE key like any
//!   resource, `{"vtpm-id", "challenge", "generation": n or null, "mac"}`.
//! - `POST ...` with `{"generation": n, "challenge": c, "mac"}` records `n`
//!   unless it is below the record, and answers (plain JSON, 200 or 409)
//!   `{"outcome": "recorded" | "regression", "generation": record,
//!   "challenge": c, "mac"}`.
//!
//! The host relays all of this, and the session cookie, the token and the
//! TEE public key all pass through it, so neither HTTP status nor the JWE
//! proves who wrote a message. Every message therefore carries an
//! HMAC-SHA256 under the *generation key*, derived by HKDF-SHA256 from the
//! vTPM's state key (which only svtpm and the broker hold) with the label
//! [`LABEL`]. The MAC covers a message kind, the vTPM id, a fresh 16-byte
//! challenge chosen by svtpm, and the generation; so the host can neither
//! forge a record or an answer nor replay an old one. What the host can
//! still do is drop messages: svtpm then sees the guard as unavailable.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::http::{HttpRequest, HttpResponse, Method};
use super::{base64url, KbsClient, KbsError, VtpmId};

/// Path prefix of the extension (Trustee's external-plugin route).
pub const GENERATION_PATH: &str = "/kbs/v0/external/svtpm-generation";
/// HKDF info label of the generation key.
pub const LABEL: &[u8] = b"svtpm kbs generation record v1";
/// Length of a challenge, in bytes.
pub const CHALLENGE_LEN: usize = 16;
/// Largest record message accepted, in bytes of JSON.
const MAX_MESSAGE: usize = 1024;

/// Which message a MAC belongs to (each kind has its own MAC domain, so one
/// message can never pass as another).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The broker's answer to a read.
    ReadReply = 1,
    /// svtpm's request to record a generation.
    RecordRequest = 2,
    /// The broker recorded it.
    Recorded = 3,
    /// The broker refused: the offer is below its record.
    Regression = 4,
}

/// The key that authenticates generation messages.
pub struct GenerationKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for GenerationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GenerationKey(..)")
    }
}

impl GenerationKey {
    /// Derives the key from the vTPM's state key (the 32 bytes the broker
    /// releases).
    pub fn derive(state_key: &[u8]) -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        // HKDF-SHA256 can expand 32 bytes from any input: cannot fail.
        let _ = Hkdf::<Sha256>::new(None, state_key).expand(LABEL, k.as_mut());
        Self(k)
    }

    fn mac_over(
        &self,
        kind: Kind,
        id: &VtpmId,
        challenge: &[u8; CHALLENGE_LEN],
        generation: Option<u64>,
    ) -> Hmac<Sha256> {
        // A 32-byte key is always accepted.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        m.update(b"svtpm-generation-v1\0");
        m.update(&[kind as u8]);
        // Ids are at most 64 bytes.
        m.update(&[id.as_str().len() as u8]);
        m.update(id.as_str().as_bytes());
        m.update(challenge);
        match generation {
            Some(g) => {
                m.update(&[1]);
                m.update(&g.to_be_bytes());
            }
            None => m.update(&[0; 9]),
        }
        m
    }

    /// The MAC of a message, base64url.
    pub fn mac(
        &self,
        kind: Kind,
        id: &VtpmId,
        challenge: &[u8; CHALLENGE_LEN],
        generation: Option<u64>,
    ) -> String {
        base64url::encode(
            &self
                .mac_over(kind, id, challenge, generation)
                .finalize()
                .into_bytes(),
        )
    }

    /// Checks a MAC (in constant time).
    pub fn verify(
        &self,
        kind: Kind,
        id: &VtpmId,
        challenge: &[u8; CHALLENGE_LEN],
        generation: Option<u64>,
        mac: &str,
    ) -> Result<(), KbsError> {
        let tag = base64url::decode_array::<32>(mac, "generation mac")?;
        self.mac_over(kind, id, challenge, generation)
            .verify_slice(&tag)
            .map_err(|_| KbsError::GenerationForged)
    }
}

/// The broker's answer to a read (the JWE plaintext).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReadReply {
    /// The vTPM.
    #[serde(rename = "vtpm-id")]
    pub vtpm_id: String,
    /// The reader's challenge, base64url.
    pub challenge: String,
    /// The record, or `null` if none.
    pub generation: Option<u64>,
    /// MAC ([`Kind::ReadReply`]).
    pub mac: String,
}

/// A request to record a generation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordRequest {
    /// Generation to record.
    pub generation: u64,
    /// The writer's challenge, base64url.
    pub challenge: String,
    /// MAC ([`Kind::RecordRequest`]).
    pub mac: String,
}

/// Outcome of a record request, as the broker reports it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Recorded.
    Recorded,
    /// Refused: below the record.
    Regression,
}

/// The broker's answer to a record request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordReply {
    /// What happened.
    pub outcome: Outcome,
    /// The record after the request.
    pub generation: u64,
    /// The writer's challenge, base64url.
    pub challenge: String,
    /// MAC ([`Kind::Recorded`] or [`Kind::Regression`]).
    pub mac: String,
}

/// Path of the extension for `id`.
pub fn path(id: &VtpmId) -> String {
    alloc::format!("{GENERATION_PATH}/{id}")
}

/// Decodes a challenge member.
pub fn decode_challenge(text: &str) -> Result<[u8; CHALLENGE_LEN], KbsError> {
    base64url::decode_array(text, "generation challenge")
}

/// The read request for `id` on the client's attested session.
pub fn read_request(
    client: &KbsClient,
    id: &VtpmId,
    challenge: &[u8; CHALLENGE_LEN],
) -> Result<HttpRequest, KbsError> {
    let p = alloc::format!("{}?challenge={}", path(id), base64url::encode(challenge));
    client.attested_request(Method::Get, p)
}

/// Opens and authenticates the read reply: the generation on record.
pub fn handle_read_reply(
    client: &KbsClient,
    response: &HttpResponse,
    key: &GenerationKey,
    id: &VtpmId,
    challenge: &[u8; CHALLENGE_LEN],
) -> Result<Option<u64>, KbsError> {
    let plain = client.handle_resource_response(response)?;
    if plain.len() > MAX_MESSAGE {
        return Err(KbsError::TooLarge {
            what: "generation reply",
            len: plain.len(),
            max: MAX_MESSAGE,
        });
    }
    let reply: ReadReply = KbsClient::json_body(plain.expose(), "generation reply")?;
    if reply.vtpm_id != id.as_str() || decode_challenge(&reply.challenge)? != *challenge {
        return Err(KbsError::GenerationForged);
    }
    key.verify(Kind::ReadReply, id, challenge, reply.generation, &reply.mac)?;
    Ok(reply.generation)
}

/// The request to record `generation` for `id`.
pub fn record_request(
    client: &KbsClient,
    key: &GenerationKey,
    id: &VtpmId,
    challenge: &[u8; CHALLENGE_LEN],
    generation: u64,
) -> Result<HttpRequest, KbsError> {
    let body = RecordRequest {
        generation,
        challenge: base64url::encode(challenge),
        mac: key.mac(Kind::RecordRequest, id, challenge, Some(generation)),
    };
    let body = serde_json::to_vec(&body).map_err(|_| KbsError::Malformed {
        what: "record request",
    })?;
    Ok(client.attested_request(Method::Post, path(id))?.json(body))
}

/// Authenticates the record reply. `Ok(Outcome::Recorded)` only if the
/// broker says (authentically) that `offered` is now the record;
/// `Ok(Outcome::Regression)` with the record it holds if it refused.
pub fn handle_record_reply(
    response: &HttpResponse,
    key: &GenerationKey,
    id: &VtpmId,
    challenge: &[u8; CHALLENGE_LEN],
    offered: u64,
) -> Result<(Outcome, u64), KbsError> {
    // A refusal is authenticated too, and comes with 409.
    let body = if response.status == 409 && response.body.len() <= MAX_MESSAGE {
        &response.body[..]
    } else {
        response.expect_ok()?
    };
    if body.len() > MAX_MESSAGE {
        return Err(KbsError::TooLarge {
            what: "record reply",
            len: body.len(),
            max: MAX_MESSAGE,
        });
    }
    let reply: RecordReply = KbsClient::json_body(body, "record reply")?;
    if decode_challenge(&reply.challenge)? != *challenge {
        return Err(KbsError::GenerationForged);
    }
    let kind = match reply.outcome {
        Outcome::Recorded => Kind::Recorded,
        Outcome::Regression => Kind::Regression,
    };
    key.verify(kind, id, challenge, Some(reply.generation), &reply.mac)?;
    match reply.outcome {
        Outcome::Recorded if reply.generation != offered => Err(KbsError::GenerationForged),
        Outcome::Regression if reply.generation <= offered => Err(KbsError::GenerationForged),
        outcome => Ok((outcome, reply.generation)),
    }
}

/// The broker's side: builds the read reply.
pub fn read_reply(
    key: &GenerationKey,
    id: &VtpmId,
    challenge: &[u8; CHALLENGE_LEN],
    generation: Option<u64>,
) -> ReadReply {
    ReadReply {
        vtpm_id: id.as_str().into(),
        challenge: base64url::encode(challenge),
        generation,
        mac: key.mac(Kind::ReadReply, id, challenge, generation),
    }
}

/// The broker's side: parses and authenticates a record request; returns
/// the offered generation and the challenge.
pub fn check_record_request(
    key: &GenerationKey,
    id: &VtpmId,
    body: &[u8],
) -> Result<(u64, [u8; CHALLENGE_LEN]), KbsError> {
    if body.len() > MAX_MESSAGE {
        return Err(KbsError::TooLarge {
            what: "record request",
            len: body.len(),
            max: MAX_MESSAGE,
        });
    }
    let req: RecordRequest = KbsClient::json_body(body, "record request")?;
    let challenge = decode_challenge(&req.challenge)?;
    key.verify(
        Kind::RecordRequest,
        id,
        &challenge,
        Some(req.generation),
        &req.mac,
    )?;
    Ok((req.generation, challenge))
}

/// The broker's side: builds the record reply.
pub fn record_reply(
    key: &GenerationKey,
    id: &VtpmId,
    challenge: &[u8; CHALLENGE_LEN],
    outcome: Outcome,
    record: u64,
) -> RecordReply {
    let kind = match outcome {
        Outcome::Recorded => Kind::Recorded,
        Outcome::Regression => Kind::Regression,
    };
    RecordReply {
        outcome,
        generation: record,
        challenge: base64url::encode(challenge),
        mac: key.mac(kind, id, challenge, Some(record)),
    }
}

/// Encodes a record reply (for the broker).
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // The message types hold only strings and integers.
    serde_json::to_vec(message).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn id() -> VtpmId {
        VtpmId::new("vm-1").unwrap()
    }

    /// The MAC is HMAC-SHA256 under HKDF-SHA256(state key, LABEL) over the
    /// documented message layout: recomputed here from the primitives.
    #[test]
    fn mac_layout_is_the_documented_one() {
        let state_key = [7u8; 32];
        let key = GenerationKey::derive(&state_key);
        let challenge = [9u8; 16];
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(None, &state_key)
            .expand(b"svtpm kbs generation record v1", &mut okm)
            .unwrap();
        let mut msg = Vec::new();
        msg.extend_from_slice(b"svtpm-generation-v1\0");
        msg.push(2);
        msg.push(4);
        msg.extend_from_slice(b"vm-1");
        msg.extend_from_slice(&challenge);
        msg.push(1);
        msg.extend_from_slice(&5u64.to_be_bytes());
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&okm).unwrap();
        m.update(&msg);
        let expected = base64url::encode(&m.finalize().into_bytes());
        assert_eq!(
            key.mac(Kind::RecordRequest, &id(), &challenge, Some(5)),
            expected
        );
        // The derived key is not the state key or its plain hash.
        assert_ne!(okm, state_key);
        assert_ne!(okm[..], sha2::Sha256::digest(state_key)[..]);
    }

    #[test]
    fn every_field_is_bound() {
        let key = GenerationKey::derive(&[1u8; 32]);
        let c = [3u8; 16];
        let mac = key.mac(Kind::Recorded, &id(), &c, Some(8));
        key.verify(Kind::Recorded, &id(), &c, Some(8), &mac)
            .unwrap();
        let other_id = VtpmId::new("vm-2").unwrap();
        let forged = [
            key.verify(Kind::Regression, &id(), &c, Some(8), &mac),
            key.verify(Kind::Recorded, &other_id, &c, Some(8), &mac),
            key.verify(Kind::Recorded, &id(), &[4u8; 16], Some(8), &mac),
            key.verify(Kind::Recorded, &id(), &c, Some(9), &mac),
            key.verify(Kind::Recorded, &id(), &c, None, &mac),
            GenerationKey::derive(&[2u8; 32]).verify(Kind::Recorded, &id(), &c, Some(8), &mac),
        ];
        for r in forged {
            assert_eq!(r, Err(KbsError::GenerationForged));
        }
    }

    #[test]
    fn record_request_round_trip_and_tamper() {
        let key = GenerationKey::derive(&[1u8; 32]);
        let c = [5u8; 16];
        let req = RecordRequest {
            generation: 12,
            challenge: base64url::encode(&c),
            mac: key.mac(Kind::RecordRequest, &id(), &c, Some(12)),
        };
        let body = encode(&req);
        assert_eq!(check_record_request(&key, &id(), &body).unwrap(), (12, c));
        let mut raised = req.clone();
        raised.generation = 13;
        assert_eq!(
            check_record_request(&key, &id(), &encode(&raised)),
            Err(KbsError::GenerationForged)
        );
        let reply = record_reply(&key, &id(), &c, Outcome::Regression, 20);
        let response = HttpResponse {
            status: 409,
            headers: Vec::new(),
            body: encode(&reply),
        };
        assert_eq!(
            handle_record_reply(&response, &key, &id(), &c, 12).unwrap(),
            (Outcome::Regression, 20)
        );
        // A "recorded" for another number than the one offered is a lie.
        let lie = record_reply(&key, &id(), &c, Outcome::Recorded, 11);
        let response = HttpResponse {
            status: 200,
            headers: Vec::new(),
            body: encode(&lie),
        };
        assert_eq!(
            handle_record_reply(&response, &key, &id(), &c, 12),
            Err(KbsError::GenerationForged)
        );
    }
}
