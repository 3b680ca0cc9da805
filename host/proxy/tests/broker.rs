//! End to end through the proxy, as the image does it at boot: svtpm's KBS
//! client over the channel's HTTP adapter and its SNP evidence source over
//! the channel's guest-request adapter, against the development broker
//! (`svtpm-kbs`, in process) that verifies the evidence with the chain
//! check, the development ARK as trust anchor and the image's launch
//! digest as the only allowed measurement. Then the faults that must make
//! the broker refuse.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{Env, Guest, Proxy};
use svtpm::attest::kbs::{exchange, KbsClient, KbsError, VtpmId};
use svtpm::attest::snp::{
    CertTableSource, GuestMessenger, GuestRequestTransport, SnpEvidence, TransportError,
};
use svtpm::hostchan::{ChannelGuestRequest, ChannelHttp, MemRegion};
use svtpm_kbs::chain_check::ChainCheck;
use svtpm_kbs::policy::Policy;
use svtpm_kbs::server::{serve, Kbs, Running};
use svtpm_kbs::store::DataDir;
use svtpm_kbs::verifier::SnpVerifier;
use svtpm_snp_verify::TrustAnchor;
use svtpm_store::OsEntropy;

/// The development broker on loopback with one provisioned vTPM.
struct Broker {
    _dir: tempfile::TempDir,
    server: Option<Running>,
    id: VtpmId,
    key: [u8; 32],
}

impl Broker {
    fn start(env: &Env) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let id = data
            .provision(Some(VtpmId::new("proxy-test").unwrap()))
            .unwrap();
        let key = *data.state_key(&id).unwrap().unwrap();
        let measurement = svtpm_psp_sim::launch_digest(&common::image_elf()).unwrap();
        let policy = Policy::new(vec![measurement]);
        let anchor = TrustAnchor::from_file(&env.chain_dir.join("ark.pem")).unwrap();
        let check = ChainCheck::new(vec![anchor]).unwrap();
        let verifier = SnpVerifier::new(Box::new(check));
        let kbs = Arc::new(Kbs::new(policy, Box::new(verifier), data).unwrap());
        let server = serve(kbs, "127.0.0.1:0".parse().unwrap(), 2).unwrap();
        Broker {
            _dir: dir,
            server: Some(server),
            id,
            key,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().addr()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }
}

/// The guest-request adapter with its certificate table, for SnpEvidence.
struct Snp<'a>(ChannelGuestRequest<'a, MemRegion>);

impl GuestRequestTransport for Snp<'_> {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<(), TransportError> {
        self.0.exchange(request, response)
    }
}

impl CertTableSource for Snp<'_> {
    fn take_cert_table(&mut self) -> Vec<u8> {
        self.0.take_cert_table()
    }
}

/// One boot's attestation through the proxy; the client on success.
fn attest(env: &Env, guest: &Guest) -> Result<KbsClient, KbsError> {
    let mut messenger =
        GuestMessenger::new(env.page.vmpck(0).unwrap(), 0, GuestMessenger::FIRST_SEQNO).unwrap();
    let mut snp = Snp(ChannelGuestRequest::new(&guest.chan));
    let mut evidence = SnpEvidence::new(&mut messenger, &mut snp);
    let mut http = ChannelHttp::new(&guest.chan);
    let mut client = KbsClient::new(&mut OsEntropy).unwrap();
    exchange::attest(&mut client, &mut http, &mut evidence)?;
    Ok(client)
}

fn refusal(e: &KbsError) -> String {
    match e {
        KbsError::Refused { detail, .. } => detail.to_string(),
        other => panic!("expected the broker's refusal, got {other:?}"),
    }
}

fn proxy(env: &Env, broker: &Broker, faults: &[String]) -> Proxy {
    let mut args = env.args(&format!("http://{}", broker.addr()));
    for f in faults {
        args.extend(["--fault".to_string(), f.clone()]);
    }
    Proxy::start(&args)
}

#[test]
fn the_image_flow_attests_and_receives_its_state_key() {
    let env = Env::new();
    let broker = Broker::start(&env);
    let p = proxy(&env, &broker, &[]);
    let guest = Guest::attach(&env.channel).unwrap();
    let client = attest(&env, &guest).unwrap();
    let mut http = ChannelHttp::new(&guest.chan);
    let key = exchange::fetch(&client, &mut http, &broker.id.state_key_path()).unwrap();
    assert_eq!(key.expose(), &broker.key);
    let (status, log) = p.stop();
    assert!(status.success());
    for line in [
        "HTTP POST /kbs/v0/auth -> 200",
        "SNP_GUEST_REQUEST msg_type 5 seqno 1 vmpck 0 -> report signed",
        "HTTP POST /kbs/v0/attest -> 200",
        "HTTP GET /kbs/v0/resource/",
    ] {
        assert!(log.contains(line), "{line:?} not in\n{log}");
    }
}

#[test]
fn a_tampered_report_is_refused_by_the_signature_check() {
    let env = Env::new();
    let broker = Broker::start(&env);
    let _p = proxy(&env, &broker, &["tamper-report".into()]);
    let guest = Guest::attach(&env.channel).unwrap();
    let detail = refusal(&attest(&env, &guest).unwrap_err());
    assert!(detail.starts_with("signature check failed"), "{detail}");
}

#[test]
fn a_replayed_attestation_is_refused() {
    let env = Env::new();
    let broker = Broker::start(&env);
    let saved = env.dir.path().join("attest.json");
    {
        let _p = proxy(
            &env,
            &broker,
            &[format!("record-attest={}", saved.display())],
        );
        let guest = Guest::attach(&env.channel).unwrap();
        attest(&env, &guest).unwrap();
    }
    // The next boot: same platform, new session; the host sends the old
    // attestation instead of the new one.
    let env2 = Env::new();
    let _p = proxy(
        &env2,
        &broker,
        &[format!("replay-attest={}", saved.display())],
    );
    let guest = Guest::attach(&env2.channel).unwrap();
    let detail = refusal(&attest(&env2, &guest).unwrap_err());
    assert!(detail.starts_with("nonce check failed"), "{detail}");
    assert!(detail.contains("replayed"), "{detail}");
}
