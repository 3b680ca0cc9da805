//! Test fixture: a broker on loopback with a test report signature (an
//! HMAC over the signed part of the report, in place of the VCEK's ECDSA
//! signature), and a fake PSP that makes reports carrying whatever
//! REPORT_DATA the client asks for; [`snp`] has real SEV-SNP platforms
//! (generated chains, the simulated PSP) for the chain check.

#![allow(dead_code)]

pub mod snp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use svtpm::attest::kbs::{
    EvidenceSource, HttpRequest, HttpResponse, KbsClient, KbsError, Transport, VtpmId,
};
use svtpm::nvstate::{EntropyError, EntropySource};
use svtpm_kbs::policy::Policy;
use svtpm_kbs::relay::HttpRelay;
use svtpm_kbs::report::{ParsedReport, REPORT_LEN, SIGNED_LEN};
use svtpm_kbs::server::{serve, Kbs, Running};
use svtpm_kbs::store::DataDir;
use svtpm_kbs::verifier::{ReportSignatureCheck, SnpVerifier};

/// The launch measurement the test policy allows.
pub const GOOD_MEASUREMENT: [u8; 48] = [0x4d; 48];
const SIGNING_KEY: &[u8] = b"test PSP report signing key";

fn sign(report: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(SIGNING_KEY).unwrap();
    m.update(&report[..SIGNED_LEN]);
    m.finalize().into_bytes().into()
}

/// The test signature: HMAC-SHA256 of bytes 0..0x2A0 at 0x2A0.
pub struct TestSignature;

impl ReportSignatureCheck for TestSignature {
    fn check(&self, report: &[u8], _: &Value) -> Result<(), String> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(SIGNING_KEY).unwrap();
        m.update(&report[..SIGNED_LEN]);
        m.verify_slice(&report[SIGNED_LEN..SIGNED_LEN + 32])
            .map_err(|_| "signature check failed: report signature does not verify".into())
    }
}

/// A fake PSP: reports with the given fields and the requested REPORT_DATA.
#[derive(Clone)]
pub struct FakePsp {
    pub vmpl: u32,
    pub policy: u64,
    pub measurement: [u8; 48],
    /// XORed into REPORT_DATA (non-zero: a report that does not bind).
    pub corrupt_report_data: u8,
    /// Breaks the signature.
    pub bad_signature: bool,
    /// The last REPORT_DATA asked for.
    pub last_report_data: Option<[u8; 64]>,
}

impl Default for FakePsp {
    fn default() -> Self {
        Self {
            vmpl: 0,
            policy: 0x30000,
            measurement: GOOD_MEASUREMENT,
            corrupt_report_data: 0,
            bad_signature: false,
            last_report_data: None,
        }
    }
}

impl EvidenceSource for FakePsp {
    fn evidence(&mut self, report_data: &[u8; 64]) -> Result<Vec<u8>, KbsError> {
        self.last_report_data = Some(*report_data);
        let mut data = *report_data;
        data[0] ^= self.corrupt_report_data;
        let fields = ParsedReport {
            version: 3,
            guest_svn: 0,
            policy: self.policy,
            vmpl: self.vmpl,
            sig_algo: 1,
            report_data: data,
            measurement: self.measurement,
            host_data: [0; 32],
            reported_tcb: 0,
        };
        let mut raw = [0u8; REPORT_LEN];
        fields.write(&mut raw);
        let sig = sign(&raw);
        raw[SIGNED_LEN..SIGNED_LEN + 32].copy_from_slice(&sig);
        if self.bad_signature {
            raw[SIGNED_LEN] ^= 1;
        }
        Ok(
            serde_json::to_vec(&json!({"attestation_report": raw.to_vec(), "cert_chain": []}))
                .unwrap(),
        )
    }
}

/// The OS generator as svtpm's entropy source.
pub struct Os;

impl EntropySource for Os {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError> {
        svtpm_kbs::random(dest).map_err(|_| EntropyError)
    }
}

/// A broker on loopback with one provisioned vTPM.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub server: Option<Running>,
    pub kbs: Arc<Kbs>,
    pub id: VtpmId,
    pub key: [u8; 32],
    pub policy: Policy,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_session_lifetime(Duration::from_secs(60))
    }

    pub fn with_session_lifetime(lifetime: Duration) -> Self {
        let mut policy = Policy::new(vec![GOOD_MEASUREMENT]);
        policy.session_lifetime = lifetime;
        Self::with(policy, Box::new(TestSignature))
    }

    /// A broker with `policy` deciding authenticity with `check`.
    pub fn with(policy: Policy, check: Box<dyn ReportSignatureCheck>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let id = data.provision(Some(VtpmId::new("vm-1").unwrap())).unwrap();
        let key = *data.state_key(&id).unwrap().unwrap();
        let verifier = SnpVerifier::new(check);
        let kbs = Arc::new(Kbs::new(policy.clone(), Box::new(verifier), data).unwrap());
        let server = serve(Arc::clone(&kbs), "127.0.0.1:0".parse().unwrap(), 2).unwrap();
        Self {
            dir,
            server: Some(server),
            kbs,
            id,
            key,
            policy,
        }
    }

    /// Stops the broker and starts a new one on the same data directory
    /// and policy (all sessions are gone), deciding with `check`.
    pub fn restart(&mut self, check: Box<dyn ReportSignatureCheck>) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
        let data = DataDir::open(self.dir.path()).unwrap();
        let verifier = SnpVerifier::new(check);
        self.kbs = Arc::new(Kbs::new(self.policy.clone(), Box::new(verifier), data).unwrap());
        self.server =
            Some(serve(Arc::clone(&self.kbs), "127.0.0.1:0".parse().unwrap(), 2).unwrap());
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().addr()
    }

    pub fn relay(&self) -> HttpRelay {
        HttpRelay::new(self.addr())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }
}

/// The `detail` of a refusal.
pub fn refusal_detail(e: &KbsError) -> &str {
    match e {
        KbsError::Refused { detail, .. } => detail,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Records every request it relays.
pub struct Recording {
    pub inner: HttpRelay,
    pub requests: Vec<HttpRequest>,
}

impl Transport for Recording {
    fn exchange(&mut self, request: &HttpRequest) -> Result<HttpResponse, KbsError> {
        self.requests.push(request.clone());
        self.inner.exchange(request)
    }
}

/// A client with a new session on `f`'s broker: `auth` done, not attested.
pub fn new_session(f: &Fixture) -> KbsClient {
    let mut c = KbsClient::new(&mut Os).unwrap();
    let auth = c.auth_request();
    c.handle_auth_response(&f.relay().exchange(&auth).unwrap())
        .unwrap();
    c
}

/// `c`'s session cookie (`kbs-session-id=...`).
pub fn session_cookie(c: &KbsClient) -> String {
    format!("kbs-session-id={}", c.session().unwrap().as_str())
}

/// Replaces `request`'s cookie with `cookie`, or drops it for `None`.
pub fn set_cookie(request: &mut HttpRequest, cookie: Option<String>) {
    request
        .headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("cookie"));
    if let Some(c) = cookie {
        request.headers.push(("Cookie".into(), c));
    }
}
