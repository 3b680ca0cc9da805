//! Fuzzes the KBS client's response parsers with what a hostile relay could
//! send: auth responses (body and Set-Cookie), attest responses, resource
//! JWEs (raw, and as members of a well-formed flattened JWE), and
//! generation-record replies. Nothing may panic, and no forged response may
//! be accepted where authentication is required.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svtpm::attest::kbs::generation::{self, GenerationKey};
use svtpm::attest::kbs::{
    base64url, jwe, EvidenceSource, HttpResponse, KbsClient, KbsError, VtpmId,
};
use svtpm::nvstate::{EntropyError, EntropySource};

/// Fixed bytes: the harness must be deterministic.
struct FixedEntropy;

impl EntropySource for FixedEntropy {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError> {
        dest.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = i as u8 + 1);
        Ok(())
    }
}

struct Evidence;

impl EvidenceSource for Evidence {
    fn evidence(&mut self, _: &[u8; 64]) -> Result<Vec<u8>, KbsError> {
        Ok(b"{}".to_vec())
    }
}

fn response(status: u16, cookie: &[u8], body: &[u8]) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![(
            "Set-Cookie".into(),
            String::from_utf8_lossy(cookie).into_owned(),
        )],
        body: body.to_vec(),
    }
}

fn ok_challenge() -> HttpResponse {
    response(
        200,
        b"kbs-session-id=fuzz",
        br#"{"nonce":"bm9uY2U=","extra-params":""}"#,
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let split = rest.len().min(usize::from(selector >> 3));
    let (head, body) = rest.split_at(split);
    let status = if selector & 4 != 0 { 200 } else { 401 };
    let mut client = KbsClient::new(&mut FixedEntropy).unwrap();
    match selector & 3 {
        0 => {
            // Auth response: arbitrary cookie header and body.
            client.auth_request();
            let _ = client.handle_auth_response(&response(status, head, body));
        }
        1 => {
            // Attest response after a valid challenge.
            client.auth_request();
            client.handle_auth_response(&ok_challenge()).unwrap();
            client.attest_request(&mut Evidence).unwrap();
            let _ = client.handle_attest_response(&response(status, head, body));
        }
        2 => {
            // A JWE: raw bytes, then the bytes as each member of a
            // well-formed one.
            let _ = jwe::open(body, client.tee_key());
            let text = String::from_utf8_lossy(body);
            let members = [
                "protected",
                "encrypted_key",
                "iv",
                "ciphertext",
                "tag",
                "aad",
            ];
            let member = members[usize::from(selector >> 2) % members.len()];
            let header = r#"{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{"crv":"P-256","kty":"EC","x":"gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0","y":"SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps"}}"#;
            let mut v = serde_json::json!({
                "protected": base64url::encode(header.as_bytes()),
                "encrypted_key": base64url::encode(&[0; 40]),
                "iv": base64url::encode(&[0; 12]),
                "ciphertext": base64url::encode(&[0; 4]),
                "tag": base64url::encode(&[0; 16]),
            });
            v[member] = serde_json::Value::String(text.into_owned());
            let wire = serde_json::to_vec(&v).unwrap();
            // No key material here can make this authentic.
            assert!(jwe::open(&wire, client.tee_key()).is_err());
        }
        _ => {
            // Generation replies: neither can pass without the key.
            let id = VtpmId::new("fuzz").unwrap();
            let key = GenerationKey::derive(&[7; 32]);
            let challenge = [3u8; 16];
            let r = response(if selector & 4 != 0 { 200 } else { 409 }, head, body);
            if let Ok(outcome) = generation::handle_record_reply(&r, &key, &id, &challenge, 5) {
                panic!("forged record reply accepted: {outcome:?}");
            }
            client.auth_request();
            client.handle_auth_response(&ok_challenge()).unwrap();
            client.attest_request(&mut Evidence).unwrap();
            client
                .handle_attest_response(&response(200, b"", br#"{"token":"t"}"#))
                .unwrap();
            assert!(generation::handle_read_reply(&client, &r, &key, &id, &challenge).is_err());
        }
    }
});
