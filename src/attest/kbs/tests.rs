//! Client tests: the handshake messages byte for byte against the protocol,
//! the state machine's order, and JWE opening with every member tampered.

use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{json, Value};
use sha2::{Digest, Sha384};

use super::http::{HttpResponse, Method};
use super::tee_key::tests::Fixed;
use super::*;

fn client() -> KbsClient {
    KbsClient::new(&mut Fixed([0x11; 32])).unwrap()
}

fn ok(headers: &[(&str, &str)], body: &str) -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).into(), (*v).into()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

/// Records the REPORT_DATA it was asked for and answers fixed evidence.
struct Recorder(Option<[u8; 64]>);

impl EvidenceSource for Recorder {
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Vec<u8>, KbsError> {
        self.0 = Some(*report_data);
        Ok(br#"{"attestation_report":[1,2,3],"cert_chain":null}"#.to_vec())
    }
}

fn attested(c: &mut KbsClient) {
    c.auth_request();
    c.handle_auth_response(&ok(
        &[("Set-Cookie", "kbs-session-id=s1; Path=/")],
        r#"{"nonce":"bm9uY2U=","extra-params":""}"#,
    ))
    .unwrap();
    c.attest_request(&mut Recorder(None)).unwrap();
    c.handle_attest_response(&ok(&[], r#"{"token":"a.b.c"}"#))
        .unwrap();
}

#[test]
fn auth_request_is_trustees() {
    let mut c = client();
    let r = c.auth_request();
    assert_eq!(r.method, Method::Post);
    assert_eq!(r.path, "/kbs/v0/auth");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({"version": "0.4.0", "tee": "snp", "extra-params": ""})
    );
}

#[test]
fn attest_request_binds_nonce_and_key() {
    let mut c = client();
    c.auth_request();
    c.handle_auth_response(&ok(
        &[("Set-Cookie", "kbs-session-id=abc123")],
        r#"{"nonce":"q83vEjRWeJA=","extra-params":""}"#,
    ))
    .unwrap();
    let mut source = Recorder(None);
    let r = c.attest_request(&mut source).unwrap();
    assert_eq!(r.path, "/kbs/v0/attest");
    assert_eq!(r.header("cookie"), Some("kbs-session-id=abc123"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    let jwk = c.tee_key().jwk();
    assert_eq!(body["init-data"], Value::Null);
    assert_eq!(
        body["runtime-data"],
        json!({"nonce": "q83vEjRWeJA=", "tee-pubkey": jwk})
    );
    assert_eq!(
        body["tee-evidence"],
        json!({"primary_evidence": {"attestation_report": [1, 2, 3], "cert_chain": null},
               "additional_evidence": ""})
    );
    // REPORT_DATA, recomputed from a hand-written canonical form.
    let canonical = format!(
        r#"{{"additional-evidence":"","nonce":"q83vEjRWeJA=","tee-pubkey":{{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"{}","y":"{}"}}}}"#,
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    let mut expected = [0u8; 64];
    expected[..48].copy_from_slice(&Sha384::digest(canonical.as_bytes()));
    assert_eq!(source.0, Some(expected));
}

#[test]
fn steps_out_of_order_are_refused() {
    let mut c = client();
    let path = ResourcePath::new("svtpm", "vm", "state-key").unwrap();
    assert!(matches!(
        c.resource_request(&path),
        Err(KbsError::State { .. })
    ));
    assert!(matches!(
        c.attest_request(&mut Recorder(None)),
        Err(KbsError::State { .. })
    ));
    assert!(matches!(
        c.handle_attest_response(&ok(&[], r#"{"token":"t"}"#)),
        Err(KbsError::State { .. })
    ));
    // No cookie: the handshake resets.
    c.auth_request();
    assert_eq!(
        c.handle_auth_response(&ok(&[], r#"{"nonce":"n","extra-params":""}"#)),
        Err(KbsError::NoSessionCookie)
    );
    assert!(matches!(
        c.attest_request(&mut Recorder(None)),
        Err(KbsError::State { .. })
    ));
    attested(&mut c);
    assert!(c.is_attested());
    assert_eq!(c.token(), Some("a.b.c"));
    let r = c.resource_request(&path).unwrap();
    assert_eq!(r.method, Method::Get);
    assert_eq!(r.path, "/kbs/v0/resource/svtpm/vm/state-key");
    assert_eq!(r.header("Cookie"), Some("kbs-session-id=s1"));
}

#[test]
fn refusals_and_evidence_failures_reset() {
    let mut c = client();
    c.auth_request();
    let refused = HttpResponse {
        status: 401,
        headers: Vec::new(),
        body: br#"{"type":"t","detail":"version mismatch"}"#.to_vec(),
    };
    assert!(matches!(
        c.handle_auth_response(&refused),
        Err(KbsError::Refused { status: 401, .. })
    ));
    struct Broken;
    impl EvidenceSource for Broken {
        fn evidence(&mut self, _: &[u8; 64]) -> Result<Vec<u8>, KbsError> {
            Err(KbsError::Evidence { reason: "PSP busy" })
        }
    }
    c.auth_request();
    c.handle_auth_response(&ok(
        &[("Set-Cookie", "kbs-session-id=s2")],
        r#"{"nonce":"n","extra-params":""}"#,
    ))
    .unwrap();
    assert_eq!(
        c.attest_request(&mut Broken).unwrap_err(),
        KbsError::Evidence { reason: "PSP busy" }
    );
    assert!(matches!(
        c.attest_request(&mut Recorder(None)),
        Err(KbsError::State { .. })
    ));
}

/// A JWE made here from the primitives (ECDH with a fixed ephemeral key,
/// Concat KDF, AES key wrap, AES-256-GCM): the members as strings.
fn seal(recipient: &TeeKeyPair, plaintext: &[u8], apu: Option<&str>) -> Vec<(String, String)> {
    let eph = p256::SecretKey::from_slice(&[0x22; 32]).unwrap();
    let point = eph.public_key().to_encoded_point(false);
    let jwk = recipient.jwk();
    let rx = base64url::decode_array::<32>(jwk["x"].as_str().unwrap(), "x").unwrap();
    let ry = base64url::decode_array::<32>(jwk["y"].as_str().unwrap(), "y").unwrap();
    let rpoint = p256::EncodedPoint::from_affine_coordinates(&rx.into(), &ry.into(), false);
    let rpub = p256::PublicKey::from_sec1_bytes(rpoint.as_bytes()).unwrap();
    let shared = p256::ecdh::diffie_hellman(eph.to_nonzero_scalar(), rpub.as_affine());
    let apu_bytes = apu
        .map(|a| base64url::decode(a, 64, "apu").unwrap())
        .unwrap_or_default();
    let kek =
        concat_kdf::derive::<32>(shared.raw_secret_bytes(), "ECDH-ES+A256KW", &apu_bytes, b"")
            .unwrap();
    let cek = [0x33u8; 32];
    let mut wrapped = [0u8; 40];
    aes_kw::KekAes256::from(*kek)
        .wrap(&cek, &mut wrapped)
        .unwrap();
    let mut header = json!({"alg": "ECDH-ES+A256KW", "enc": "A256GCM",
        "epk": {"kty": "EC", "crv": "P-256",
                "x": base64url::encode(point.x().unwrap()),
                "y": base64url::encode(point.y().unwrap())}});
    if let Some(a) = apu {
        header["apu"] = Value::String(a.into());
    }
    let protected = base64url::encode(&serde_json::to_vec(&header).unwrap());
    let iv = [0x44u8; 12];
    let mut buf = plaintext.to_vec();
    let tag = Aes256Gcm::new(&cek.into())
        .encrypt_in_place_detached(Nonce::from_slice(&iv), protected.as_bytes(), &mut buf)
        .unwrap();
    vec![
        ("protected".into(), protected),
        ("encrypted_key".into(), base64url::encode(&wrapped)),
        ("iv".into(), base64url::encode(&iv)),
        ("ciphertext".into(), base64url::encode(&buf)),
        ("tag".into(), base64url::encode(&tag)),
    ]
}

fn to_json(members: &[(String, String)]) -> Vec<u8> {
    let m: serde_json::Map<String, Value> = members
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    serde_json::to_vec(&Value::Object(m)).unwrap()
}

/// Flips one bit of a base64url member's decoded bytes.
fn flip(text: &str) -> String {
    let mut b = base64url::decode(text, 4096, "m").unwrap();
    if b.is_empty() {
        b.push(0);
    } else {
        b[0] ^= 0x01;
    }
    base64url::encode(&b)
}

#[test]
fn jwe_opens_and_every_tampered_member_is_refused() {
    let key = TeeKeyPair::generate(&mut Fixed([0x55; 32])).unwrap();
    let secret = [0xabu8; 32];
    for apu in [None, Some("QWxpY2U")] {
        let members = seal(&key, &secret, apu);
        assert_eq!(
            jwe::open(&to_json(&members), &key).unwrap().expose(),
            &secret
        );
        for i in 0..members.len() {
            let mut bad = members.clone();
            bad[i].1 = flip(&bad[i].1);
            let err = jwe::open(&to_json(&bad), &key).unwrap_err();
            assert!(
                matches!(
                    err,
                    KbsError::JweDecrypt { .. } | KbsError::Malformed { .. }
                ),
                "{}: {err:?}",
                bad[i].0
            );
        }
        // A member of the wrong size, or missing, is malformed.
        for i in 0..members.len() {
            let mut missing = members.clone();
            missing.remove(i);
            assert!(jwe::open(&to_json(&missing), &key).is_err());
        }
    }
    // Another recipient cannot open it.
    let other = TeeKeyPair::generate(&mut Fixed([0x66; 32])).unwrap();
    assert_eq!(
        jwe::open(&to_json(&seal(&key, &secret, None)), &other).unwrap_err(),
        KbsError::JweDecrypt {
            stage: "key unwrap"
        }
    );
    // The `aad` member, when present, is authenticated too.
    let mut with_aad = seal(&key, &secret, None);
    with_aad.push(("aad".into(), "QWxpY2U".into()));
    assert_eq!(
        jwe::open(&to_json(&with_aad), &key).unwrap_err(),
        KbsError::JweDecrypt { stage: "content" }
    );
}

#[test]
fn resource_response_through_the_client() {
    let mut c = client();
    attested(&mut c);
    let members = seal(c.tee_key(), b"state key bytes", None);
    let secret = c
        .handle_resource_response(&ok(&[], core::str::from_utf8(&to_json(&members)).unwrap()))
        .unwrap();
    assert_eq!(secret.expose(), b"state key bytes");
    let not_found = HttpResponse {
        status: 404,
        headers: Vec::new(),
        body: Vec::new(),
    };
    assert!(matches!(
        c.handle_resource_response(&not_found),
        Err(KbsError::Refused { status: 404, .. })
    ));
}
