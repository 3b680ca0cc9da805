//! The `svtpm-kbs` command line: provisioning, and `serve` choosing its
//! report check (the chain check when the policy names an ARK, no check
//! only when asked for, never neither or both) and answering the protocol.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use svtpm::attest::kbs::{exchange, HttpRequest, KbsClient, Transport, VtpmId};
use svtpm_kbs::relay::HttpRelay;

mod common;

fn kbs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_svtpm-kbs"))
}

#[test]
fn provision_creates_once_and_refuses_again() {
    let dir = tempfile::tempdir().unwrap();
    let out = kbs()
        .args(["provision", "--data-dir"])
        .arg(dir.path())
        .args(["--vtpm-id", "guest-7"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "guest-7");
    let key_file = dir.path().join("vtpm/guest-7/state-key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.trim().len(), 64);

    let again = kbs()
        .args(["provision", "--data-dir"])
        .arg(dir.path())
        .args(["--vtpm-id", "guest-7"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already provisioned"));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key, "key kept");

    let bad = kbs()
        .args(["provision", "--data-dir"])
        .arg(dir.path())
        .args(["--vtpm-id", "../escape"])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    let random = kbs()
        .args(["provision", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(random.status.success());
    assert_eq!(String::from_utf8_lossy(&random.stdout).trim().len(), 32);
}

/// Writes `policy` next to a data directory with vTPM `vm-1`.
fn setup(policy: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.json"), policy).unwrap();
    let out = kbs()
        .args(["provision", "--vtpm-id", "vm-1", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    dir
}

fn serve_command(dir: &Path, extra: &[&str]) -> Command {
    let mut c = kbs();
    c.args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--policy")
        .arg(dir.join("policy.json"))
        .args(extra)
        .env("RUST_LOG", "warn");
    c
}

/// A running `serve`, killed on drop.
struct Served {
    child: Child,
    relay: HttpRelay,
}

impl Served {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut child = serve_command(dir, extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().strip_prefix("listening on http://").unwrap();
        let relay = HttpRelay::new(addr.parse().unwrap());
        Self { child, relay }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn policy(anchors: &str) -> String {
    format!(
        r#"{{"allowed_measurements":["{}"],"trust_anchors":[{anchors}]}}"#,
        "4d".repeat(48)
    )
}

fn refuses_to_start(dir: &Path, extra: &[&str], why: &str) {
    let out = serve_command(dir, extra).output().unwrap();
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(why), "{stderr}");
}

#[test]
fn serve_needs_a_report_check_and_only_one() {
    let none = setup(&policy(""));
    refuses_to_start(none.path(), &[], "the policy has no trust_anchors");
    let anchored = setup(&policy(r#""ark.pem""#));
    refuses_to_start(
        anchored.path(),
        &["--insecure-unverified-reports"],
        "contradicts",
    );
    // An anchor that is missing, or not an ARK.
    refuses_to_start(anchored.path(), &[], "ark.pem is not usable");
    std::fs::write(anchored.path().join("ark.pem"), "not a certificate").unwrap();
    refuses_to_start(anchored.path(), &[], "ark.pem is not usable");
}

#[test]
fn serve_verifies_chains_up_to_the_policy_ark() {
    let dir = setup(&policy(r#""chain/ark.pem""#));
    let chain = common::snp::trusted();
    chain.certs.write(&dir.path().join("chain")).unwrap();
    let mut served = Served::start(dir.path(), &[]);

    // Evidence without a chain (the fake PSP's) is refused by the check.
    let mut client = KbsClient::new(&mut common::Os).unwrap();
    let e = exchange::attest(
        &mut client,
        &mut served.relay,
        &mut common::FakePsp::default(),
    )
    .unwrap_err();
    assert!(
        common::refusal_detail(&e).starts_with("chain check failed"),
        "{e:?}"
    );

    // Real evidence from the simulated PSP gets the key.
    let mut platform = common::snp::Platform::on(chain);
    let mut client = KbsClient::new(&mut common::Os).unwrap();
    exchange::attest(&mut client, &mut served.relay, &mut platform.evidence()).unwrap();
    let id = VtpmId::new("vm-1").unwrap();
    let key = exchange::fetch(&client, &mut served.relay, &id.state_key_path()).unwrap();
    let stored = std::fs::read_to_string(dir.path().join("data/vtpm/vm-1/state-key")).unwrap();
    let hex: String = key.expose().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(stored.trim(), hex);

    let unknown = served
        .relay
        .exchange(&HttpRequest {
            method: svtpm::attest::kbs::Method::Get,
            path: "/kbs/v0/nothing".into(),
            headers: Vec::new(),
            body: Vec::new(),
        })
        .unwrap();
    assert_eq!(unknown.status, 404);
}

#[test]
fn serve_insecure_accepts_unsigned_evidence_when_asked() {
    let dir = setup(&policy(""));
    let mut served = Served::start(dir.path(), &["--insecure-unverified-reports"]);
    let mut client = KbsClient::new(&mut common::Os).unwrap();
    exchange::attest(
        &mut client,
        &mut served.relay,
        &mut common::FakePsp::default(),
    )
    .unwrap();
    // The policy checks still apply.
    let mut client = KbsClient::new(&mut common::Os).unwrap();
    let e = exchange::attest(
        &mut client,
        &mut served.relay,
        &mut common::FakePsp {
            measurement: [0; 48],
            ..common::FakePsp::default()
        },
    )
    .unwrap_err();
    assert!(
        common::refusal_detail(&e).starts_with("measurement check failed"),
        "{e:?}"
    );
}
