//! The real engine (libtpms) persisting through the sealed A/B state on
//! disk: NV data survives a restart, nothing is stored in the clear, a
//! wrong key or a rolled-back directory stops the TPM from starting, and an
//! imported swtpm state answers exactly as swtpm does on the same state.
//!
//! libtpms is a process-wide singleton, so every test holds `ENGINE_LOCK`.
#[path = "../../../tests/common/mod.rs"]
mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;
use svtpm::engine::Engine;
use svtpm::nvstate::state::StateError;
use svtpm::nvstate::{
    GenerationGuard, GuardError, MemoryGuard, Refusal, SlotId, StateBlobs, StateKey, VtpmState,
};
use svtpm_store::import::import_swtpm_dir;
use svtpm_store::swtpm::SwtpmKey;
use svtpm_store::{DirStore, OsEntropy};

static ENGINE_LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    ENGINE_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A guard shared between the state handed to the engine and the test (the
/// key broker's record outlives any one boot).
#[derive(Clone, Default)]
struct SharedGuard(Arc<Mutex<MemoryGuard>>);

impl GenerationGuard for SharedGuard {
    fn recorded(&mut self) -> Result<Option<u64>, GuardError> {
        self.0.lock().unwrap().recorded()
    }
    fn record(&mut self, generation: u64) -> Result<(), GuardError> {
        self.0.lock().unwrap().record(generation)
    }
}

type DiskState = VtpmState<DirStore, SharedGuard, OsEntropy>;

fn state_key() -> StateKey {
    StateKey::new(&[0x5c; 32]).unwrap()
}

fn open(dir: &Path, guard: &SharedGuard) -> Result<DiskState, StateError> {
    VtpmState::open(
        state_key(),
        DirStore::open(dir).unwrap(),
        guard.clone(),
        OsEntropy,
    )
}

/// Starts the engine on `state` and sends Startup(CLEAR).
fn boot(state: DiskState) -> Engine {
    let mut e = Engine::start(Box::new(state)).expect("engine starts");
    expect_ok(&e.execute(0, &startup(SU_CLEAR)));
    e
}

fn slots(dir: &Path) -> Vec<Vec<u8>> {
    SlotId::ALL
        .iter()
        .filter_map(|s| fs::read(dir.join(format!("slot-{}.svtpm", s.name()))).ok())
        .collect()
}

const INDEX: u32 = 0x0150_0042;

/// TPM_RC_RETRY: libtpms asks for the first DA-protected authorization after
/// Startup to be resent (while it records DA use in NV), as drivers do.
const RC_RETRY: u32 = 0x922;

/// Executes `cmd`, resending it on TPM_RC_RETRY.
fn run(e: &mut Engine, cmd: &[u8]) -> Vec<u8> {
    let mut r = e.execute(0, cmd);
    for _ in 0..3 {
        if header(&r).rc != RC_RETRY {
            break;
        }
        r = e.execute(0, cmd);
    }
    r
}

#[test]
fn nv_data_survives_restarts_sealed() {
    let _l = lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let guard = SharedGuard::default();
    let state = VtpmState::provision(
        state_key(),
        DirStore::open(dir).unwrap(),
        guard.clone(),
        OsEntropy,
        StateBlobs::new(),
    )
    .unwrap();

    // First boot: the engine manufactures the TPM and defines an index.
    let secret = b"sealed-nv-secret";
    let mut e = boot(state);
    expect_ok(&run(&mut e, &nv_define_space(INDEX, secret.len() as u16)));
    expect_ok(&run(&mut e, &nv_write(INDEX, secret, 0)));
    drop(e.stop());
    let after_first = guard.0.lock().unwrap().latest().unwrap();
    assert!(after_first >= 2, "manufacture and NV writes commit");
    let first_slots = slots(dir);
    for blob in &first_slots {
        assert!(
            !blob.windows(secret.len()).any(|w| w == secret),
            "NV data stored in the clear"
        );
    }

    // Second boot from disk: the index and its data are there.
    let s = open(dir, &guard).unwrap();
    assert_eq!(s.generation(), after_first);
    assert!(s.blob("permall").is_some());
    let mut e = boot(s);
    assert_eq!(
        nv_read_data(&run(&mut e, &nv_read(INDEX, secret.len() as u16, 0))),
        secret
    );
    expect_ok(&run(&mut e, &nv_write(INDEX, b"second-boot-data", 0)));
    drop(e.stop());
    let after_second = guard.0.lock().unwrap().latest().unwrap();
    assert!(after_second > after_first);

    // A wrong key is refused; the TPM never starts fresh.
    let wrong = VtpmState::open(
        StateKey::new(&[0x77; 32]).unwrap(),
        DirStore::open(dir).unwrap(),
        guard.clone(),
        OsEntropy,
    );
    assert!(
        matches!(wrong, Err(StateError::Refused(Refusal::WrongKey { .. }))),
        "{wrong:?}"
    );

    // The host puts back the slots of the first boot: rollback.
    let saved: Vec<(PathBuf, Vec<u8>)> = SlotId::ALL
        .iter()
        .map(|s| dir.join(format!("slot-{}.svtpm", s.name())))
        .zip(first_slots)
        .collect();
    for (path, data) in &saved {
        fs::write(path, data).unwrap();
    }
    match open(dir, &guard) {
        Err(StateError::Refused(Refusal::Rollback { found, recorded })) => {
            assert_eq!((found, recorded), (after_first, after_second));
        }
        other => panic!("expected a rollback refusal, got {other:?}"),
    }
}

/// TPM2_ReadPublic(handle).
fn read_public(handle: u32) -> Vec<u8> {
    command(ST_NO_SESSIONS, 0x173, &handle.to_be_bytes())
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/swtpm")
}

fn enc256_key() -> SwtpmKey {
    SwtpmKey::from_hex(&fs::read_to_string(data().join("enc256.key")).unwrap()).unwrap()
}

/// An swtpm serving a copy of the golden enc256 state on a loopback port.
struct Swtpm {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Swtpm {
    fn start() -> Swtpm {
        // Never skipped: CI installs swtpm (cargo xtask setup).
        assert!(
            Command::new("swtpm").arg("--version").output().is_ok(),
            "`swtpm` not found: this test needs the Debian package `swtpm` \
             (apt-get install swtpm)"
        );
        let dir = tempfile::tempdir().unwrap();
        fs::copy(
            data().join("enc256/tpm2-00.permall"),
            dir.path().join("tpm2-00.permall"),
        )
        .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let keyfile = data().join("enc256.key");
        let child = Command::new("swtpm")
            .arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", dir.path().display()))
            .arg("--key")
            .arg(format!("file={},mode=aes-256-cbc", keyfile.display()))
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!(
                "type=unixio,path={}",
                dir.path().join("ctrl").display()
            ))
            .arg("--flags")
            .arg("not-need-init,startup-clear")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm starts");
        Swtpm {
            child,
            port,
            _dir: dir,
        }
    }

    fn execute(&self, cmd: &[u8]) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut s = loop {
            match TcpStream::connect(("127.0.0.1", self.port)) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("swtpm did not come up: {e}"),
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(cmd).unwrap();
        let mut head = [0u8; 10];
        s.read_exact(&mut head).unwrap();
        let len = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
        let mut resp = head.to_vec();
        resp.resize(len, 0);
        s.read_exact(&mut resp[10..]).unwrap();
        resp
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn imported_swtpm_state_answers_as_swtpm_does() {
    let _l = lock();
    let tmp = tempfile::tempdir().unwrap();
    let guard = SharedGuard::default();
    let state = import_swtpm_dir(
        &data().join("enc256"),
        Some(&enc256_key()),
        state_key(),
        DirStore::open(tmp.path()).unwrap(),
        guard.clone(),
        OsEntropy,
    )
    .unwrap();
    let mut e = boot(state);
    // swtpm_setup created an RSA EK at 0x81010001 and an ECC EK at 0x81010016.
    let ours: Vec<Vec<u8>> = [0x8101_0001u32, 0x8101_0016]
        .iter()
        .map(|&h| {
            let r = e.execute(0, &read_public(h));
            expect_ok(&r);
            r
        })
        .collect();
    drop(e.stop());
    // RSA EK: TPM2B_PUBLIC whose type is TPM_ALG_RSA (0x0001).
    assert_eq!(&ours[0][12..14], &[0x00, 0x01]);
    assert_eq!(&ours[1][12..14], &[0x00, 0x23]);

    let sw = Swtpm::start();
    for (h, ours) in [0x8101_0001u32, 0x8101_0016].iter().zip(&ours) {
        assert_eq!(
            &sw.execute(&read_public(*h)),
            ours,
            "ReadPublic({h:#x}) differs from swtpm"
        );
    }
}
