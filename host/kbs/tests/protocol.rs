//! svtpm's KBS client against the development broker over real HTTP on
//! loopback: the whole protocol, and each refusal the broker and the client
//! must make.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use serde_json::Value;
use sha2::{Digest, Sha384};
use svtpm::attest::kbs::exchange::{self, KbsGuard};
use svtpm::attest::kbs::generation::{self, GenerationKey, Outcome};
use svtpm::attest::kbs::{
    canonical, HttpRequest, HttpResponse, KbsClient, KbsError, Method, ResourcePath, Transport,
};
use svtpm::nvstate::{GenerationGuard, GuardError};
use svtpm_kbs::relay::HttpRelay;

fn attested(f: &Fixture) -> KbsClient {
    let mut c = KbsClient::new(&mut Os).unwrap();
    exchange::attest(&mut c, &mut f.relay(), &mut FakePsp::default()).unwrap();
    c
}

#[test]
fn full_protocol_releases_the_state_key() {
    let f = Fixture::new();
    let mut client = KbsClient::new(&mut Os).unwrap();
    let mut psp = FakePsp::default();
    exchange::attest(&mut client, &mut f.relay(), &mut psp).unwrap();

    // The REPORT_DATA the client bound: SHA-384 of the canonical runtime data.
    let nonce_binding = {
        let token = client.token().unwrap();
        let claims: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        // The token names the TEE key the client generated and the report.
        assert_eq!(claims["tee-pubkey"], client.tee_key().jwk());
        assert_eq!(claims["tcb-status"]["snp.vmpl"], 0);
        assert_eq!(
            claims["tcb-status"]["snp.measurement"],
            "4d".repeat(48).as_str()
        );
        claims["tcb-status"]["snp.report_data"].clone()
    };
    let rd = psp.last_report_data.unwrap();
    assert_eq!(nonce_binding, svtpm_kbs::report::hex(&rd).as_str());
    assert_eq!(rd[48..], [0u8; 16]);
    // The token verifies with the broker's key.
    f.kbs.tokens().check(client.token().unwrap()).unwrap();

    let secret = exchange::fetch(&client, &mut f.relay(), &f.id.state_key_path()).unwrap();
    assert_eq!(secret.expose(), &f.key);

    // A second resource on the same session, no new handshake.
    let again = exchange::fetch(&client, &mut f.relay(), &f.id.state_key_path()).unwrap();
    assert_eq!(again.expose(), &f.key);
}

#[test]
fn report_data_is_the_canonical_runtime_data_hash() {
    // The client's canonical form and the broker's (canon-json) agree, and
    // both hash what Trustee hashes.
    let client = KbsClient::new(&mut Os).unwrap();
    let nonce = "3q2+7w==";
    let mine = canonical::to_vec(&client.binding(nonce)).unwrap();
    let tee: kbs_types::TeePubKey = serde_json::from_value(client.tee_key().jwk()).unwrap();
    let theirs = svtpm_kbs::server::expected_report_data(&tee, nonce, "").unwrap();
    assert_eq!(Sha384::digest(&mine)[..], theirs[..48]);
}

#[test]
fn unknown_resources_and_vtpms_are_not_found() {
    let f = Fixture::new();
    let c = attested(&f);
    for path in [
        ResourcePath::new("svtpm", "vm-2", "state-key").unwrap(),
        ResourcePath::new("default", "key", "k").unwrap(),
    ] {
        let e = exchange::fetch(&c, &mut f.relay(), &path).unwrap_err();
        assert!(matches!(e, KbsError::Refused { status: 404, .. }), "{e:?}");
    }
}

fn refused_attestation(psp: FakePsp, check: &str) {
    let f = Fixture::new();
    let mut c = KbsClient::new(&mut Os).unwrap();
    let mut psp = psp;
    let e = exchange::attest(&mut c, &mut f.relay(), &mut psp).unwrap_err();
    let detail = refusal_detail(&e);
    assert!(detail.starts_with(check), "{detail}");
    assert!(!c.is_attested());
    // Nothing is released on the half-open session.
    let e = exchange::fetch(&c, &mut f.relay(), &f.id.state_key_path()).unwrap_err();
    assert!(matches!(e, KbsError::State { .. }), "{e:?}");
}

#[test]
fn report_data_not_binding_runtime_data_is_refused() {
    refused_attestation(
        FakePsp {
            corrupt_report_data: 0x80,
            ..FakePsp::default()
        },
        "report_data check failed",
    );
}

#[test]
fn vmpl_other_than_zero_is_refused() {
    refused_attestation(
        FakePsp {
            vmpl: 1,
            ..FakePsp::default()
        },
        "vmpl check failed",
    );
}

#[test]
fn debuggable_guest_is_refused() {
    refused_attestation(
        FakePsp {
            policy: 0x30000 | (1 << 19),
            ..FakePsp::default()
        },
        "debug check failed",
    );
}

#[test]
fn unknown_measurement_is_refused() {
    refused_attestation(
        FakePsp {
            measurement: [0x11; 48],
            ..FakePsp::default()
        },
        "measurement check failed",
    );
}

#[test]
fn bad_report_signature_is_refused() {
    refused_attestation(
        FakePsp {
            bad_signature: true,
            ..FakePsp::default()
        },
        "signature check failed",
    );
}

#[test]
fn replayed_nonce_is_refused() {
    let f = Fixture::new();
    let mut c = KbsClient::new(&mut Os).unwrap();
    let mut rec = Recording {
        inner: f.relay(),
        requests: Vec::new(),
    };
    exchange::attest(&mut c, &mut rec, &mut FakePsp::default()).unwrap();
    let attest = rec.requests[1].clone();
    assert_eq!(attest.path, "/kbs/v0/attest");

    // The same attestation again on its own session: the nonce is spent.
    let r = f.relay().exchange(&attest).unwrap();
    assert_eq!(r.status, 401);
    let e = r.expect_ok().unwrap_err();
    assert!(refusal_detail(&e).contains("already used"), "{e:?}");

    // The same attestation on a fresh session: another nonce.
    let other = new_session(&f);
    let mut replay = attest.clone();
    set_cookie(&mut replay, Some(session_cookie(&other)));
    let e = f
        .relay()
        .exchange(&replay)
        .unwrap()
        .expect_ok()
        .unwrap_err();
    assert!(
        refusal_detail(&e).starts_with("nonce check failed"),
        "{e:?}"
    );
    assert!(
        refusal_detail(&e).ends_with("(replayed attestation)"),
        "{e:?}"
    );
}

#[test]
fn a_failed_attempt_spends_the_nonce() {
    let f = Fixture::new();
    let mut c = KbsClient::new(&mut Os).unwrap();
    let mut rec = Recording {
        inner: f.relay(),
        requests: Vec::new(),
    };
    let mut bad = FakePsp {
        vmpl: 2,
        ..FakePsp::default()
    };
    assert!(exchange::attest(&mut c, &mut rec, &mut bad).is_err());
    // Retrying with good evidence on the same session does not work.
    let cookie = rec.requests[1].header("cookie").unwrap().to_owned();
    let mut good = new_session(&f);
    let mut attest = good.attest_request(&mut FakePsp::default()).unwrap();
    set_cookie(&mut attest, Some(cookie));
    let e = f
        .relay()
        .exchange(&attest)
        .unwrap()
        .expect_ok()
        .unwrap_err();
    assert!(refusal_detail(&e).contains("already used"), "{e:?}");
}

#[test]
fn expired_session_is_refused() {
    let f = Fixture::with_session_lifetime(Duration::from_millis(300));
    let mut c = new_session(&f);
    std::thread::sleep(Duration::from_millis(500));
    let req = c.attest_request(&mut FakePsp::default()).unwrap();
    let e = c
        .handle_attest_response(&f.relay().exchange(&req).unwrap())
        .unwrap_err();
    assert!(refusal_detail(&e).contains("expired"), "{e:?}");

    // An attested session also stops releasing keys when it expires.
    let mut c = KbsClient::new(&mut Os).unwrap();
    exchange::attest(&mut c, &mut f.relay(), &mut FakePsp::default()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let e = exchange::fetch(&c, &mut f.relay(), &f.id.state_key_path()).unwrap_err();
    assert!(refusal_detail(&e).contains("expired"), "{e:?}");
}

#[test]
fn wrong_cookie_is_refused() {
    let f = Fixture::new();
    let c = attested(&f);
    let mut req = c.resource_request(&f.id.state_key_path()).unwrap();
    set_cookie(&mut req, Some("kbs-session-id=0123456789abcdef".into()));
    let r = f.relay().exchange(&req).unwrap();
    assert_eq!(r.status, 401);
    assert!(refusal_detail(&r.expect_ok().unwrap_err()).contains("no session"));

    // No cookie at all.
    set_cookie(&mut req, None);
    let r = f.relay().exchange(&req).unwrap();
    assert_eq!(r.status, 401);

    // A session that authenticated but never attested gets nothing.
    let half = new_session(&f);
    let mut req = c.resource_request(&f.id.state_key_path()).unwrap();
    set_cookie(&mut req, Some(session_cookie(&half)));
    let e = f.relay().exchange(&req).unwrap().expect_ok().unwrap_err();
    assert!(refusal_detail(&e).contains("not attested"), "{e:?}");
}

#[test]
fn bearer_token_works_instead_of_the_cookie() {
    let f = Fixture::new();
    let c = attested(&f);
    let mut req = c.resource_request(&f.id.state_key_path()).unwrap();
    set_cookie(&mut req, None);
    req.headers.push((
        "Authorization".into(),
        format!("Bearer {}", c.token().unwrap()),
    ));
    let secret = c
        .handle_resource_response(&f.relay().exchange(&req).unwrap())
        .unwrap();
    assert_eq!(secret.expose(), &f.key);
    // A token with a changed signature is refused.
    let mut bad = req.clone();
    let token = c.token().unwrap();
    let forged = format!("{}A", &token[..token.len() - 1]);
    let forged = if forged == token {
        format!("{}B", &token[..token.len() - 1])
    } else {
        forged
    };
    bad.headers.retain(|(n, _)| n != "Authorization");
    bad.headers
        .push(("Authorization".into(), format!("Bearer {forged}")));
    let e = f.relay().exchange(&bad).unwrap().expect_ok().unwrap_err();
    assert!(
        refusal_detail(&e).starts_with("token check failed"),
        "{e:?}"
    );
}

#[test]
fn wrong_protocol_version_is_refused() {
    let f = Fixture::new();
    let mut req = KbsClient::new(&mut Os).unwrap().auth_request();
    req.body = br#"{"version":"0.3.0","tee":"snp","extra-params":""}"#.to_vec();
    let e = f.relay().exchange(&req).unwrap().expect_ok().unwrap_err();
    assert!(
        refusal_detail(&e).starts_with("version check failed"),
        "{e:?}"
    );
}

/// Rewrites the JWE members of resource responses.
struct TamperJwe {
    inner: HttpRelay,
    member: &'static str,
}

impl Transport for TamperJwe {
    fn exchange(&mut self, request: &HttpRequest) -> Result<HttpResponse, KbsError> {
        let mut r = self.inner.exchange(request)?;
        let mut v: Value = serde_json::from_slice(&r.body).unwrap();
        let text = v[self.member].as_str().unwrap().to_owned();
        let mut bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        v[self.member] = Value::String(URL_SAFE_NO_PAD.encode(&bytes));
        r.body = serde_json::to_vec(&v).unwrap();
        Ok(r)
    }
}

#[test]
fn tampered_jwe_is_refused_by_the_client() {
    let f = Fixture::new();
    let c = attested(&f);
    for member in ["protected", "encrypted_key", "iv", "ciphertext", "tag"] {
        let mut t = TamperJwe {
            inner: f.relay(),
            member,
        };
        let e = exchange::fetch(&c, &mut t, &f.id.state_key_path()).unwrap_err();
        assert!(
            matches!(e, KbsError::JweDecrypt { .. } | KbsError::Malformed { .. }),
            "{member}: {e:?}"
        );
    }
    // Untouched, it opens.
    exchange::fetch(&c, &mut f.relay(), &f.id.state_key_path()).unwrap();
}

#[test]
fn generation_record_only_increases() {
    let f = Fixture::new();
    let c = attested(&f);
    let key = exchange::fetch(&c, &mut f.relay(), &f.id.state_key_path()).unwrap();
    let mut guard = KbsGuard::new(&c, f.relay(), Os, f.id.clone(), key.expose());
    assert_eq!(guard.recorded(), Ok(None));
    guard.record(5).unwrap();
    assert_eq!(guard.recorded(), Ok(Some(5)));
    guard.record(5).unwrap();
    assert_eq!(
        guard.record(4),
        Err(GuardError::Regression {
            recorded: 5,
            offered: 4
        })
    );
    guard.record(7).unwrap();
    assert_eq!(guard.recorded(), Ok(Some(7)));
    assert_eq!(
        std::fs::read_to_string(f.dir.path().join("vtpm/vm-1/generation"))
            .unwrap()
            .trim(),
        "7"
    );
}

/// A host that answers generation requests itself.
struct ForgingHost {
    inner: HttpRelay,
    client_key: Option<kbs_types::TeePubKey>,
}

impl Transport for ForgingHost {
    fn exchange(&mut self, request: &HttpRequest) -> Result<HttpResponse, KbsError> {
        if !request.path.starts_with(generation::GENERATION_PATH) {
            return self.inner.exchange(request);
        }
        let id = svtpm::attest::kbs::VtpmId::new("vm-1").unwrap();
        let forged_key = GenerationKey::derive(&[0x5a; 32]);
        let body = if request.method == Method::Get {
            // A well-formed reply to the real challenge, wrapped to the
            // (public) TEE key, MACed with a key the host made up.
            let c = request.path.split("challenge=").nth(1).unwrap();
            let c = generation::decode_challenge(c).unwrap();
            let reply = generation::read_reply(&forged_key, &id, &c, Some(1));
            let jwe = svtpm_kbs::jwe::encrypt(
                self.client_key.as_ref().unwrap(),
                &generation::encode(&reply),
            )
            .unwrap();
            serde_json::to_vec(&jwe).unwrap()
        } else {
            let req: generation::RecordRequest = serde_json::from_slice(&request.body).unwrap();
            let c = generation::decode_challenge(&req.challenge).unwrap();
            generation::encode(&generation::record_reply(
                &forged_key,
                &id,
                &c,
                Outcome::Recorded,
                req.generation,
            ))
        };
        Ok(HttpResponse {
            status: 200,
            headers: Vec::new(),
            body,
        })
    }
}

#[test]
fn host_cannot_forge_or_write_generation_records() {
    let f = Fixture::new();
    let c = attested(&f);
    let key = exchange::fetch(&c, &mut f.relay(), &f.id.state_key_path()).unwrap();
    let host = ForgingHost {
        inner: f.relay(),
        client_key: Some(serde_json::from_value(c.tee_key().jwk()).unwrap()),
    };
    let mut guard = KbsGuard::new(&c, host, Os, f.id.clone(), key.expose());
    assert_eq!(guard.read(), Err(KbsError::GenerationForged));
    assert_eq!(guard.recorded(), Err(GuardError::Unavailable));
    assert_eq!(guard.write(9), Err(KbsError::GenerationForged));
    assert_eq!(guard.record(9), Err(GuardError::Unavailable));

    // The host holds the session cookie, but a record request it MACs with
    // a key of its own is refused by the broker.
    let c2 = [7u8; 16];
    let forged_key = GenerationKey::derive(&[0x5a; 32]);
    let req = generation::record_request(&c, &forged_key, &f.id, &c2, 1000).unwrap();
    let r = f.relay().exchange(&req).unwrap();
    assert_eq!(r.status, 401);
    assert!(refusal_detail(&r.expect_ok().unwrap_err()).starts_with("generation record check"));
    let mut real = KbsGuard::new(&c, f.relay(), Os, f.id.clone(), key.expose());
    assert_eq!(real.recorded(), Ok(None), "nothing was recorded");

    // A replayed genuine record request changes nothing either.
    real.record(3).unwrap();
    let genuine_key = GenerationKey::derive(key.expose());
    let old = generation::record_request(&c, &genuine_key, &f.id, &c2, 2).unwrap();
    let r = f.relay().exchange(&old).unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(real.recorded(), Ok(Some(3)));
}
