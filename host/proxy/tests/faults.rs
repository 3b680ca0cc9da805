//! Every `--fault` of the proxy, seen from the guest's end of the channel:
//! each makes the image's code fail in the way that fault should, and
//! applies to every matching message.

mod common;

use common::{closed_url, Broker, Env, Guest, Proxy};
use serde_json::{json, Value};
use svtpm::attest::kbs::{HttpRequest, KbsError, Method, Transport};
use svtpm::attest::snp::{CertTableSource, GuestMessenger, GuestRequestTransport, TransportError};
use svtpm::hostchan::{ChannelGuestRequest, ChannelHttp, ChannelSlots, HostchanError};
use svtpm::nvstate::{SlotId, SlotStore};
use svtpm_snp_verify::{verify_chain, verify_report, Cert, Role, TrustAnchor};

const CHALLENGE: &[u8] = br#"{"nonce":"bm9uY2UtZm9yLXRoZS1ndWVzdA==","extra-params":""}"#;

fn with_fault(env: &Env, url: &str, fault: &str) -> Proxy {
    let mut args = env.args(url);
    args.extend(["--fault".to_string(), fault.to_string()]);
    Proxy::start(&args)
}

fn post(path: &str, body: Vec<u8>) -> HttpRequest {
    HttpRequest {
        method: Method::Post,
        path: path.into(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body,
    }
}

fn auth() -> HttpRequest {
    post(
        "/kbs/v0/auth",
        br#"{"version":"0.4.0","tee":"snp"}"#.to_vec(),
    )
}

fn differing_bits(a: &[u8], b: &[u8]) -> u32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

#[test]
fn corrupt_http_flips_one_bit_of_every_body() {
    let broker = Broker::start(200, CHALLENGE);
    let env = Env::new();
    let _p = with_fault(&env, &broker.url(), "corrupt-http");
    let guest = Guest::attach(&env.channel).unwrap();
    let mut http = ChannelHttp::new(&guest.chan);
    for _ in 0..2 {
        let resp = http.exchange(&auth()).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(differing_bits(&resp.body, CHALLENGE), 1);
        assert_eq!(
            resp.body[CHALLENGE.len() / 2] ^ CHALLENGE[CHALLENGE.len() / 2],
            1
        );
    }
}

#[test]
fn truncate_http_makes_every_response_undecodable() {
    let broker = Broker::start(200, CHALLENGE);
    let env = Env::new();
    let _p = with_fault(&env, &broker.url(), "truncate-http");
    let guest = Guest::attach(&env.channel).unwrap();
    let mut http = ChannelHttp::new(&guest.chan);
    for _ in 0..2 {
        let e = http.exchange(&auth()).unwrap_err();
        assert!(matches!(e, KbsError::Transport { .. }), "{e:?}");
        assert!(
            matches!(http.last_error(), Some(HostchanError::Http(_))),
            "{:?}",
            http.last_error()
        );
    }
    assert_eq!(broker.seen().len(), 2);
}

#[test]
fn drop_http_answers_nothing_and_relays_nothing() {
    let broker = Broker::start(200, CHALLENGE);
    let env = Env::new();
    let _p = with_fault(&env, &broker.url(), "drop-http");
    let guest = Guest::attach(&env.channel).unwrap();
    guest.chan.lock().set_timeout_ns(300_000_000);
    let mut http = ChannelHttp::new(&guest.chan);
    for _ in 0..2 {
        assert!(http.exchange(&auth()).is_err());
        assert!(
            matches!(http.last_error(), Some(HostchanError::Timeout { .. })),
            "{:?}",
            http.last_error()
        );
    }
    assert!(broker.seen().is_empty());
    // Other messages are still answered.
    guest.chan.lock().log("still here").unwrap();
}

#[test]
fn reorder_is_caught_by_the_request_id_echo() {
    let env = Env::new();
    let _p = with_fault(&env, &closed_url(), "reorder");
    // The first response has nothing before it: it carries the id before
    // the request's. Each later one is the previous request's answer.
    let mut previous = None;
    for _ in 0..3 {
        match Guest::attach(&env.channel) {
            Err(HostchanError::RequestIdMismatch { expected, found }) => {
                assert_eq!(found, previous.unwrap_or(expected.wrapping_sub(1)));
                previous = Some(expected);
            }
            Err(e) => panic!("wrong error {e:?}"),
            Ok(_) => panic!("attached through reordered responses"),
        }
    }
}

#[test]
fn corrupt_header_is_caught_by_the_response_type() {
    let env = Env::new();
    let _p = with_fault(&env, &closed_url(), "corrupt-header");
    match Guest::attach(&env.channel) {
        Err(HostchanError::WrongResponseType { expected, found }) => {
            assert_eq!((expected, found), (0x8001, 0x0001));
        }
        Err(e) => panic!("wrong error {e:?}"),
        Ok(_) => panic!("attached through corrupt headers"),
    }
}

#[test]
fn corrupt_slot_flips_one_bit_of_every_read_and_leaves_the_file_alone() {
    let env = Env::new();
    let _p = with_fault(&env, &closed_url(), "corrupt-slot");
    let guest = Guest::attach(&env.channel).unwrap();
    let mut slots = ChannelSlots::new(&guest.chan);
    let blob = vec![0x5Au8; 1000];
    slots.write_slot(SlotId::A, &blob).unwrap();
    slots.flush().unwrap();
    for _ in 0..2 {
        let read = slots.read_slot(SlotId::A).unwrap().unwrap();
        assert_eq!(differing_bits(&read, &blob), 1);
    }
    assert_eq!(slots.read_slot(SlotId::B).unwrap(), None);
    assert_eq!(std::fs::read(env.state.join("slot-a.svtpm")).unwrap(), blob);
}

/// The guest's SNP transport with its certificate table, as the image's
/// evidence source wants it.
struct Snp<'a, 'b>(&'b mut ChannelGuestRequest<'a, svtpm::hostchan::MemRegion>);

impl GuestRequestTransport for Snp<'_, '_> {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<(), TransportError> {
        self.0.exchange(request, response)
    }
}

impl CertTableSource for Snp<'_, '_> {
    fn take_cert_table(&mut self) -> Vec<u8> {
        self.0.take_cert_table()
    }
}

/// An attest body as svtpm's KBS client sends it, with evidence from the
/// proxy's simulated PSP.
fn attest_body(env: &Env, guest: &Guest) -> Vec<u8> {
    let mut transport = ChannelGuestRequest::new(&guest.chan);
    let mut m =
        GuestMessenger::new(env.page.vmpck(0).unwrap(), 0, GuestMessenger::FIRST_SEQNO).unwrap();
    let mut snp = Snp(&mut transport);
    let mut source = svtpm::attest::snp::SnpEvidence::new(&mut m, &mut snp);
    let evidence = source.collect(&[0x33; 64]).unwrap();
    let evidence: Value = serde_json::from_slice(&evidence).unwrap();
    serde_json::to_vec(&json!({
        "init-data": null,
        "runtime-data": {"nonce": "bm9uY2U=", "tee-pubkey": {"kty": "EC"}},
        "tee-evidence": {"primary_evidence": evidence, "additional_evidence": ""}
    }))
    .unwrap()
}

fn report_of(body: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["tee-evidence"]["primary_evidence"]["attestation_report"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect()
}

#[test]
fn tamper_report_changes_the_measurement_the_broker_sees() {
    let broker = Broker::start(401, br#"{"type":"x","detail":"refused"}"#);
    let env = Env::new();
    let _p = with_fault(&env, &broker.url(), "tamper-report");
    let guest = Guest::attach(&env.channel).unwrap();
    let body = attest_body(&env, &guest);
    let mut http = ChannelHttp::new(&guest.chan);
    // Other requests pass untouched.
    http.exchange(&auth()).unwrap();
    for _ in 0..2 {
        assert_eq!(
            http.exchange(&post("/kbs/v0/attest", body.clone()))
                .unwrap()
                .status,
            401
        );
    }
    let seen = broker.seen();
    assert_eq!(seen[0].body, auth().body);
    let sent = report_of(&body);
    let chain = common::chain();
    let vcek = verify_chain(
        &TrustAnchor::from_bytes(&chain.ark).unwrap(),
        &Cert::from_der(Role::Ask, &chain.ask).unwrap(),
        &Cert::from_der(Role::Vcek, &chain.vcek).unwrap(),
        std::time::SystemTime::now(),
    )
    .unwrap();
    verify_report(&sent, &vcek).unwrap();
    for s in &seen[1..] {
        let got = report_of(&s.body);
        assert_eq!(differing_bits(&got, &sent), 1);
        assert_eq!(got[0x90], sent[0x90] ^ 1);
        // The broker's signature check refuses it.
        assert!(verify_report(&got, &vcek).is_err());
        // Everything else in the body is what the guest sent.
        let (mut a, mut b): (Value, Value) = (
            serde_json::from_slice(&s.body).unwrap(),
            serde_json::from_slice(&body).unwrap(),
        );
        a["tee-evidence"]["primary_evidence"]["attestation_report"] = Value::Null;
        b["tee-evidence"]["primary_evidence"]["attestation_report"] = Value::Null;
        assert_eq!(a, b);
    }
    // Sanity: the report really carries the image's measurement.
    assert_eq!(
        sent[0x90..0xC0],
        svtpm_psp_sim::launch_digest(&common::image_elf()).unwrap()
    );
}

#[test]
fn record_then_replay_sends_an_old_attestation() {
    let broker = Broker::start(200, br#"{"token":"t"}"#);
    let env = Env::new();
    let saved = env.dir.path().join("attest.json");
    let old_body = {
        let p = with_fault(
            &env,
            &broker.url(),
            &format!("record-attest={}", saved.display()),
        );
        let guest = Guest::attach(&env.channel).unwrap();
        let body = attest_body(&env, &guest);
        let mut http = ChannelHttp::new(&guest.chan);
        http.exchange(&post("/kbs/v0/attest", body.clone()))
            .unwrap();
        let (status, log) = p.stop();
        assert!(status.success());
        assert!(log.contains("[fault record-attest: saved]"), "{log}");
        body
    };
    assert_eq!(std::fs::read(&saved).unwrap(), old_body);
    assert_eq!(broker.seen()[0].body, old_body);

    // A new launch (new secrets page, new report) with replay-attest.
    let env2 = Env::new();
    let _p = with_fault(
        &env2,
        &broker.url(),
        &format!("replay-attest={}", saved.display()),
    );
    let guest = Guest::attach(&env2.channel).unwrap();
    let new_body = attest_body(&env2, &guest);
    assert_ne!(new_body, old_body);
    let mut http = ChannelHttp::new(&guest.chan);
    http.exchange(&post("/kbs/v0/attest", new_body)).unwrap();
    http.exchange(&auth()).unwrap();
    let seen = broker.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].body, old_body);
    // Only attest bodies are replaced.
    assert_eq!(seen[2].body, auth().body);
}
