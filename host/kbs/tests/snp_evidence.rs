//! End to end with real SEV-SNP evidence: svtpm's KBS client and its
//! `SnpEvidence` source (the guest side, over the simulated PSP and a
//! certificate table the way a host returns it) against the broker with
//! its chain check (the development ARK as trust anchor), over HTTP on
//! loopback. Each refusal must name its check.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::snp::*;
use common::*;
use serde_json::Value;
use sev::firmware::host::{CertTableEntry as SevEntry, CertType};
use svtpm::attest::kbs::exchange;
use svtpm::attest::kbs::{
    EvidenceSource, HttpRequest, HttpResponse, KbsClient, KbsError, Transport,
};
use svtpm::attest::snp::evidence::encode_evidence;
use svtpm::attest::snp::report::POLICY_DEBUG;
use svtpm::attest::snp::{
    parse_cert_table, CertKind, CertTableSource, EvidenceError, GuestMessenger, SnpError,
    SnpEvidence,
};
use svtpm_kbs::chain_check::ChainCheck;
use svtpm_kbs::policy::Policy;
use svtpm_kbs::relay::HttpRelay;
use svtpm_psp_sim::Psp;
use svtpm_snp_verify::TrustAnchor;

/// The chain check anchored on the trusted chain's ARK.
fn trusted_check() -> ChainCheck {
    let anchor = TrustAnchor::from_bytes(&trusted().certs.ark).unwrap();
    ChainCheck::new(vec![anchor]).unwrap()
}

/// A broker trusting the trusted chain's ARK.
fn broker_with(lifetime: Duration) -> Fixture {
    let mut policy = Policy::new(vec![GOOD_MEASUREMENT]);
    policy.session_lifetime = lifetime;
    Fixture::with(policy, Box::new(trusted_check()))
}

fn broker() -> Fixture {
    broker_with(Duration::from_secs(60))
}

/// Attests with `source` and returns the refusal's detail.
fn refusal(f: &Fixture, source: &mut dyn EvidenceSource) -> String {
    let mut client = KbsClient::new(&mut Os).unwrap();
    let e = exchange::attest(&mut client, &mut f.relay(), source).unwrap_err();
    assert!(!client.is_attested());
    refusal_detail(&e).to_owned()
}

fn refused(f: &Fixture, p: &mut Platform, check: &str) {
    let detail = refusal(f, &mut p.evidence());
    assert!(detail.starts_with(check), "{detail}");
}

#[test]
fn genuine_evidence_releases_the_state_key() {
    let f = broker();
    let mut p = Platform::on(trusted());
    let mut client = KbsClient::new(&mut Os).unwrap();
    exchange::attest(&mut client, &mut f.relay(), &mut p.evidence()).unwrap();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(client.token().unwrap().split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["tcb-status"]["snp.vmpl"], 0);
    assert_eq!(
        claims["tcb-status"]["snp.measurement"],
        "4d".repeat(48).as_str()
    );
    let key = exchange::fetch(&client, &mut f.relay(), &f.id.state_key_path()).unwrap();
    assert_eq!(key.expose(), &f.key);

    // The same platform attests again (the messenger moved on by two
    // sequence numbers per report, in step with the PSP).
    let mut again = KbsClient::new(&mut Os).unwrap();
    exchange::attest(&mut again, &mut f.relay(), &mut p.evidence()).unwrap();
}

#[test]
fn evidence_without_the_ark_is_checked_against_the_anchor() {
    let f = broker();
    let c = trusted();
    let mut p = Platform::on(c);
    p.host.table = table(&[
        (CertType::ASK, &c.certs.ask),
        (CertType::VCEK, &c.certs.vcek),
    ]);
    let mut client = KbsClient::new(&mut Os).unwrap();
    exchange::attest(&mut client, &mut f.relay(), &mut p.evidence()).unwrap();
}

#[test]
fn wrong_measurement_is_refused() {
    let f = broker();
    let mut p = Platform::on(trusted());
    p.config().measurement = [0x11; 48];
    refused(&f, &mut p, "measurement check failed");
}

#[test]
fn debuggable_guest_is_refused() {
    let f = broker();
    let mut p = Platform::on(trusted());
    p.config().policy |= POLICY_DEBUG;
    refused(&f, &mut p, "debug check failed");
}

/// Flips one byte of the report inside the attest request, the way a
/// hostile host would on the way to the broker.
struct TamperReport {
    inner: HttpRelay,
    offset: usize,
}

impl Transport for TamperReport {
    fn exchange(&mut self, request: &HttpRequest) -> Result<HttpResponse, KbsError> {
        let mut request = request.clone();
        if request.path == "/kbs/v0/attest" {
            let mut v: Value = serde_json::from_slice(&request.body).unwrap();
            let byte =
                &mut v["tee-evidence"]["primary_evidence"]["attestation_report"][self.offset];
            *byte = Value::from(byte.as_u64().unwrap() ^ 0x01);
            request.body = serde_json::to_vec(&v).unwrap();
        }
        self.inner.exchange(&request)
    }
}

#[test]
fn tampered_report_is_refused() {
    let f = broker();
    let mut p = Platform::on(trusted());
    // The measurement, and a byte the policy does not look at.
    for offset in [0x90, 0x1F0] {
        let mut client = KbsClient::new(&mut Os).unwrap();
        let mut t = TamperReport {
            inner: f.relay(),
            offset,
        };
        let e = exchange::attest(&mut client, &mut t, &mut p.evidence()).unwrap_err();
        let detail = refusal_detail(&e);
        assert!(
            detail.starts_with("signature check failed"),
            "{offset:#x}: {detail}"
        );
    }
}

#[test]
fn chain_from_another_ark_is_refused() {
    let f = broker();
    // A self-consistent platform under a foreign ARK, presenting it.
    let mut p = Platform::on(foreign());
    let detail = refusal(&f, &mut p.evidence());
    assert_eq!(
        detail,
        "chain check failed: presented ARK is not the trusted ARK"
    );
    // Without presenting it: the ASK does not verify under the anchor.
    let c = foreign();
    p.host.table = table(&[
        (CertType::VCEK, &c.certs.vcek),
        (CertType::ASK, &c.certs.ask),
    ]);
    let detail = refusal(&f, &mut p.evidence());
    assert_eq!(
        detail,
        "chain check failed: ASK certificate's signature does not verify"
    );
    // The trusted ARK presented over a foreign ASK and VCEK.
    p.host.table = table(&[
        (CertType::VCEK, &c.certs.vcek),
        (CertType::ASK, &c.certs.ask),
        (CertType::ARK, &trusted().certs.ark),
    ]);
    refused(
        &f,
        &mut p,
        "chain check failed: ASK certificate's signature",
    );
}

#[test]
fn report_not_matching_its_vcek_is_refused() {
    let f = broker();
    let c = trusted();

    // Signed by another chip's key, presented with the trusted chain.
    let mut p = Platform::on(c);
    p.host.psp = Psp::new(
        &p.secrets,
        p.host.psp.config().clone(),
        foreign().certs.vcek_key.clone(),
    );
    refused(&f, &mut p, "signature check failed");

    let mut p = Platform::on(c);
    p.config().chip.chip_id[0] ^= 0x80;
    refused(&f, &mut p, "chip id check failed");

    let mut p = Platform::on(c);
    p.config().chip.reported_tcb.0[7] += 1;
    refused(&f, &mut p, "tcb check failed");
}

#[test]
fn missing_certificates_are_refused() {
    let f = broker();
    let c = trusted();
    let mut p = Platform::on(c);
    p.host.table = Vec::new();
    refused(
        &f,
        &mut p,
        "chain check failed: the evidence carries no VCEK",
    );
    p.host.table = table(&[(CertType::VCEK, &c.certs.vcek)]);
    refused(
        &f,
        &mut p,
        "chain check failed: the evidence carries no ASK",
    );
    p.host.table = table(&[
        (CertType::VCEK, &c.certs.ask),
        (CertType::ASK, &c.certs.ask),
    ]);
    refused(&f, &mut p, "chain check failed: VCEK");
}

/// Evidence from a guest at VMPL1: it holds VMPCK1 and gets genuine,
/// VCEK-signed reports — of VMPL1.
struct Vmpl1<'a> {
    platform: &'a mut Platform,
    messenger: GuestMessenger,
}

impl EvidenceSource for Vmpl1<'_> {
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Vec<u8>, KbsError> {
        let report = self
            .messenger
            .request_report(&mut self.platform.host, report_data, 1, 0)
            .unwrap();
        let table = self.platform.host.take_cert_table();
        Ok(encode_evidence(&report, &parse_cert_table(&table).unwrap()).unwrap())
    }
}

#[test]
fn vmpl1_evidence_is_refused() {
    let f = broker();
    let mut p = Platform::on(trusted());
    let vmpck1 = p.secrets.vmpck(1).unwrap();
    let messenger = GuestMessenger::new(vmpck1, 1, GuestMessenger::FIRST_SEQNO).unwrap();
    let detail = refusal(
        &f,
        &mut Vmpl1 {
            platform: &mut p,
            messenger,
        },
    );
    assert!(detail.starts_with("vmpl check failed"), "{detail}");

    // SnpEvidence asks for VMPL0, which VMPCK1 may not: the PSP refuses
    // and no evidence leaves the guest.
    let vmpck1 = p.secrets.vmpck(1).unwrap();
    let mut m1 = GuestMessenger::new(vmpck1, 1, 3).unwrap();
    let mut source = SnpEvidence::new(&mut m1, &mut p.host);
    let mut client = KbsClient::new(&mut Os).unwrap();
    let e = exchange::attest(&mut client, &mut f.relay(), &mut source).unwrap_err();
    assert!(matches!(e, KbsError::Evidence { .. }), "{e:?}");
    assert_eq!(
        source.last_error(),
        Some(EvidenceError::Report(SnpError::ReportStatus(0x16)))
    );
}

#[test]
fn replayed_attestation_is_refused() {
    let mut f = broker();
    let mut p = Platform::on(trusted());
    let mut rec = Recording {
        inner: f.relay(),
        requests: Vec::new(),
    };
    let mut client = KbsClient::new(&mut Os).unwrap();
    exchange::attest(&mut client, &mut rec, &mut p.evidence()).unwrap();
    let attest = rec.requests[1].clone();
    assert_eq!(attest.path, "/kbs/v0/attest");

    // The same body and cookie again: the session's nonce is spent.
    let e = f
        .relay()
        .exchange(&attest)
        .unwrap()
        .expect_ok()
        .unwrap_err();
    let detail = refusal_detail(&e);
    assert!(detail.starts_with("nonce check failed"), "{detail}");
    assert!(
        detail.contains("already used (replayed attestation)"),
        "{detail}"
    );

    // The same body on a new session (what a host replaying a recorded
    // boot would send): another session's nonce.
    let mut later = new_session(&f);
    let mut replay = attest.clone();
    set_cookie(&mut replay, Some(session_cookie(&later)));
    let e = f
        .relay()
        .exchange(&replay)
        .unwrap()
        .expect_ok()
        .unwrap_err();
    assert_eq!(refusal_detail(&e), REPLAYED);
    // That attempt spent the new session's nonce too.
    let fresh = later.attest_request(&mut p.evidence()).unwrap();
    let e = f.relay().exchange(&fresh).unwrap().expect_ok().unwrap_err();
    assert!(refusal_detail(&e).contains("already used"), "{e:?}");

    // After a restart of the broker (every session gone), the recorded
    // body is still recognised as a replay.
    f.restart(Box::new(trusted_check()));
    let after = new_session(&f);
    let mut replay = attest.clone();
    set_cookie(&mut replay, Some(session_cookie(&after)));
    let e = f
        .relay()
        .exchange(&replay)
        .unwrap()
        .expect_ok()
        .unwrap_err();
    assert_eq!(refusal_detail(&e), REPLAYED);

    // A nonce the broker never issued is not called a replay.
    let mut forged: Value = serde_json::from_slice(&attest.body).unwrap();
    forged["runtime-data"]["nonce"] = Value::from("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let other = new_session(&f);
    replay.body = serde_json::to_vec(&forged).unwrap();
    set_cookie(&mut replay, Some(session_cookie(&other)));
    let e = f
        .relay()
        .exchange(&replay)
        .unwrap()
        .expect_ok()
        .unwrap_err();
    assert_eq!(
        refusal_detail(&e),
        "nonce check failed: runtime-data nonce is not the challenge of this session"
    );
}

const REPLAYED: &str = "nonce check failed: runtime-data nonce was issued by this broker to \
                        another session (replayed attestation)";

#[test]
fn expired_session_is_refused() {
    let f = broker_with(Duration::from_millis(300));
    let mut p = Platform::on(trusted());
    let mut client = new_session(&f);
    std::thread::sleep(Duration::from_millis(500));
    let attest = client.attest_request(&mut p.evidence()).unwrap();
    let e = client
        .handle_attest_response(&f.relay().exchange(&attest).unwrap())
        .unwrap_err();
    let detail = refusal_detail(&e);
    assert!(detail.starts_with("session check failed"), "{detail}");
    assert!(detail.ends_with("expired"), "{detail}");
}

/// Captures the evidence a source produces.
struct Capture<'a, S>(&'a mut S, Option<Vec<u8>>);

impl<S: EvidenceSource> EvidenceSource for Capture<'_, S> {
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Vec<u8>, KbsError> {
        let e = self.0.evidence(report_data)?;
        self.1 = Some(e.clone());
        Ok(e)
    }
}

#[test]
fn cert_chain_is_what_trustee_deserializes() {
    let c = trusted();
    let mut p = Platform::on(c);
    let f = broker();
    let mut evidence = p.evidence();
    let mut capture = Capture(&mut evidence, None);
    let mut client = KbsClient::new(&mut Os).unwrap();
    exchange::attest(&mut client, &mut f.relay(), &mut capture).unwrap();
    let json = capture.1.unwrap();
    // Well under the client's 32 KiB evidence limit.
    assert!(json.len() < 24 * 1024, "{} bytes", json.len());
    let v: Value = serde_json::from_slice(&json).unwrap();
    let chain: Vec<SevEntry> = serde_json::from_value(v["cert_chain"].clone()).unwrap();
    assert_eq!(
        chain,
        vec![
            SevEntry::new(CertType::VCEK, c.certs.vcek.clone()),
            SevEntry::new(CertType::ASK, c.certs.ask.clone()),
            SevEntry::new(CertType::ARK, c.certs.ark.clone()),
        ]
    );
    // And the other way: the sev crate's JSON is what the broker reads.
    let theirs = serde_json::to_value(&chain).unwrap();
    assert_eq!(theirs, v["cert_chain"]);

    // The sev crate's table (its GUID byte order) parses with svtpm's.
    let t = full_table(c);
    let parsed = parse_cert_table(&t).unwrap();
    let kinds: Vec<CertKind> = parsed.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [CertKind::Vcek, CertKind::Ask, CertKind::Ark]);
    assert_eq!(parsed[0].data, c.certs.vcek.as_slice());
    assert_eq!(parsed[2].data, c.certs.ark.as_slice());
    // And svtpm's GUIDs are the sev crate's, byte for byte.
    for (kind, t) in [
        (CertKind::Ark, CertType::ARK),
        (CertKind::Ask, CertType::ASK),
        (CertKind::Vcek, CertType::VCEK),
        (CertKind::Vlek, CertType::VLEK),
        (CertKind::Crl, CertType::CRL),
    ] {
        assert_eq!(table(&[(t, b"x")])[..16], kind.guid(), "{kind:?}");
    }
}
