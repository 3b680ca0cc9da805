//! The `svtpm-kbs` command line: provisioning, and `serve` answering the
//! protocol.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use svtpm::attest::kbs::{HttpRequest, KbsClient, Transport};
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

#[test]
fn serve_answers_and_refuses_unsigned_evidence_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        format!(r#"{{"allowed_measurements":["{}"]}}"#, "4d".repeat(48)),
    )
    .unwrap();
    let mut child = kbs()
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--policy")
        .arg(&policy)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().strip_prefix("listening on http://").unwrap();
    let mut relay = HttpRelay::new(addr.parse().unwrap());
    let mut client = KbsClient::new(&mut common::Os).unwrap();
    let result = svtpm::attest::kbs::exchange::attest(
        &mut client,
        &mut relay,
        &mut common::FakePsp::default(),
    );
    let unknown = relay
        .exchange(&HttpRequest {
            method: svtpm::attest::kbs::Method::Get,
            path: "/kbs/v0/nothing".into(),
            headers: Vec::new(),
            body: Vec::new(),
        })
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let e = result.unwrap_err();
    assert!(
        common::refusal_detail(&e).contains("no report signature check is configured"),
        "{e:?}"
    );
    assert_eq!(unknown.status, 404);
}
