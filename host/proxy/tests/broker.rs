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
use svtpm::attest::snp::{GuestMessenger, SnpEvidence};
use svtpm::hostchan::{ChannelGuestRequest, ChannelHttp};
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

/// One boot's attestation through the proxy; the client on success.
fn attest(env: &Env, guest: &Guest) -> Result<KbsClient, KbsError> {
    let mut messenger =
        GuestMessenger::new(env.page.vmpck(0).unwrap(), 0, GuestMessenger::FIRST_SEQNO).unwrap();
    let mut snp = ChannelGuestRequest::new(&guest.chan);
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

/// Time for the unlock sequence: real for `now_ms`, recorded for sleeps
/// (so retries are counted without waiting).
#[derive(Default)]
struct TestClock {
    sleeps: std::cell::RefCell<Vec<u64>>,
}

impl svtpm::unlock::Clock for TestClock {
    fn now_ms(&self) -> u64 {
        common::now_ns() / 1_000_000
    }
    fn sleep_ms(&self, ms: u64) {
        self.sleeps.borrow_mut().push(ms);
    }
}

/// One boot's unlock through the proxy, as the image runs it; `check`
/// sees the opened state (and may change it) before it is dropped.
fn unlock_boot(
    env: &Env,
    guest: &Guest,
    id: &VtpmId,
    attempts: u32,
    clock: &TestClock,
    check: impl FnOnce(&mut dyn svtpm::engine::NvStorage, svtpm::unlock::Outcome),
) -> Result<(), svtpm::unlock::UnlockError> {
    use svtpm::hostchan::ChannelSlots;
    let mut messenger =
        GuestMessenger::new(env.page.vmpck(0).unwrap(), 0, GuestMessenger::FIRST_SEQNO).unwrap();
    let mut snp = ChannelGuestRequest::new(&guest.chan);
    let evidence = SnpEvidence::new(&mut messenger, &mut snp);
    let config = svtpm::unlock::Config {
        id: id.clone(),
        attempts,
        backoff_ms: 1000,
    };
    let mut unlocked = svtpm::unlock::unlock(
        &config,
        clock,
        ChannelSlots::new(&guest.chan),
        ChannelHttp::new(&guest.chan),
        evidence,
        OsEntropy,
    )?;
    check(&mut unlocked.state, unlocked.outcome);
    Ok(())
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn unlock_provisions_a_new_vtpm_then_reopens_it_and_refuses_a_rolled_back_state() {
    use svtpm::unlock::{Outcome, UnlockError};
    let env = Env::new();
    let broker = Broker::start(&env);
    let clock = TestClock::default();
    let boot = |check: &mut dyn FnMut(&mut dyn svtpm::engine::NvStorage, Outcome)| {
        let p = proxy(&env, &broker, &[]);
        let guest = Guest::attach(&env.channel).unwrap();
        let r = unlock_boot(&env, &guest, &broker.id, 2, &clock, |s, o| check(s, o));
        drop(guest);
        p.stop();
        r
    };

    // Boot 1: the broker has no record: a new vTPM, then one NV change.
    boot(&mut |state, outcome| {
        assert_eq!(outcome, Outcome::Provisioned);
        assert_eq!(state.load("permall").unwrap(), None);
        state.store("permall", b"first boot").unwrap();
    })
    .unwrap();
    let after_first = env.dir.path().join("after-first");
    copy_dir(&env.state, &after_first);

    // Boot 2: the same state, opened; another change moves it on.
    boot(&mut |state, outcome| {
        assert!(
            matches!(outcome, Outcome::Opened { generation: 2, .. }),
            "{outcome:?}"
        );
        assert_eq!(
            state.load("permall").unwrap().as_deref(),
            Some(&b"first boot"[..])
        );
        state.store("permall", b"second boot").unwrap();
    })
    .unwrap();

    // The host offers the state as it was after boot 1: refused, whatever
    // the slots say, because the broker records generation 3.
    for e in std::fs::read_dir(&env.state).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::remove_file(p).unwrap();
        }
    }
    copy_dir(&after_first, &env.state);
    let before = std::fs::read_dir(&env.state).unwrap().count();
    let err = boot(&mut |_, o| panic!("a rolled-back state was opened: {o:?}")).unwrap_err();
    // Boot 1 left generation 2 on storage (provisioned as 1, then one
    // change); boot 2 had the broker record 3.
    assert!(
        matches!(
            err,
            UnlockError::State(svtpm::nvstate::StateError::Refused(
                svtpm::nvstate::Refusal::Rollback {
                    found: 2,
                    recorded: 3
                }
            ))
        ),
        "{err:?}"
    );
    assert_eq!(err.stage(), svtpm::unlock::Stage::State);
    assert_eq!(std::fs::read_dir(&env.state).unwrap().count(), before);
    assert!(clock.sleeps.borrow().is_empty(), "nothing was retried");
}

#[test]
fn unlock_gives_up_after_bounded_attempts_when_the_broker_is_down() {
    let env = Env::new();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let _p = Proxy::start(&env.args(&format!("http://{closed}")));
    let guest = Guest::attach(&env.channel).unwrap();
    let clock = TestClock::default();
    let id = VtpmId::new("proxy-test").unwrap();
    let err = unlock_boot(&env, &guest, &id, 3, &clock, |_, _| {
        panic!("unlocked without a broker")
    })
    .unwrap_err();
    match &err {
        svtpm::unlock::UnlockError::AttestationFailed { attempts: 3, last } => {
            assert!(
                svtpm::hostchan::adapters::is_broker_unreachable(last),
                "{last}"
            );
        }
        other => panic!("expected AttestationFailed after 3 attempts, got {other:?}"),
    }
    assert_eq!(*clock.sleeps.borrow(), [1000, 2000]);
    assert!(std::fs::read_dir(&env.state)
        .map(|d| d.count() == 0)
        .unwrap_or(true));
}
