//! End-to-end tests of the libtpms engine: real TPM 2.0 commands through
//! `svtpm::engine::Engine`, with expected values computed independently.
//!
//! libtpms is a process-wide singleton, so every test holds `common::engine_lock()`.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384};
use svtpm::backend::TpmBackend;
use svtpm::engine::{Engine, EngineError, MemStorage, NvStorage, StateKind, StorageError};

/// A started engine (Startup(CLEAR) done) on `storage`.
fn started(storage: &MemStorage) -> Engine {
    let mut e = Engine::start(Box::new(storage.clone())).expect("engine starts");
    expect_ok(&e.execute(0, &startup(SU_CLEAR)));
    e
}

fn rc(resp: &[u8]) -> u32 {
    header(resp).rc
}

/// TPM_RC_RETRY: the TPM asks for the command to be sent again (libtpms
/// answers so to the first DA-protected authorization after Startup, while
/// it records in NV that DA was used).
const RC_RETRY: u32 = 0x922;
/// TPM_RC_FAILURE: the TPM is in failure mode.
const RC_FAILURE: u32 = 0x101;

/// Executes `cmd`, resending it on TPM_RC_RETRY as TPM drivers do.
fn run(e: &mut Engine, locality: u8, cmd: &[u8]) -> Vec<u8> {
    let mut r = e.execute(locality, cmd);
    for _ in 0..3 {
        if rc(&r) != RC_RETRY {
            break;
        }
        r = e.execute(locality, cmd);
    }
    r
}

/// H(old || digest) with the hash `D`.
fn extend<D: Digest>(old: &[u8], digest: &[u8]) -> Vec<u8> {
    let mut h = D::new();
    h.update(old);
    h.update(digest);
    h.finalize().to_vec()
}

#[test]
fn commands_before_startup_are_refused() {
    let _g = engine_lock();
    let mut e = Engine::start(Box::new(MemStorage::new())).unwrap();
    let r = e.execute(0, &get_random(8));
    assert_eq!(header(&r).tag, ST_NO_SESSIONS);
    assert_eq!(rc(&r), RC_INITIALIZE);
    expect_ok(&e.execute(0, &startup(SU_CLEAR)));
}

#[test]
fn get_random_returns_fresh_bytes_of_the_asked_length() {
    let _g = engine_lock();
    let mut e = started(&MemStorage::new());
    let a = random_bytes(&e.execute(0, &get_random(32)));
    let b = random_bytes(&e.execute(0, &get_random(32)));
    assert_eq!(a.len(), 32);
    assert_eq!(b.len(), 32);
    assert_ne!(a, b);
    assert_eq!(random_bytes(&e.execute(0, &get_random(5))).len(), 5);
}

#[test]
fn self_test_passes() {
    let _g = engine_lock();
    let mut e = started(&MemStorage::new());
    expect_ok(&e.execute(0, &self_test(true)));
    expect_ok(&e.execute(0, &self_test(false)));
}

#[test]
fn pcr_extend_matches_independent_hashes_in_three_banks() {
    let _g = engine_lock();
    let mut e = started(&MemStorage::new());
    let pcr = 10;
    type Extend = fn(&[u8], &[u8]) -> Vec<u8>;
    let cases: [(u16, Vec<u8>, Extend); 3] = [
        (ALG_SHA1, Sha1::digest(b"one").to_vec(), extend::<Sha1>),
        (
            ALG_SHA256,
            Sha256::digest(b"two").to_vec(),
            extend::<Sha256>,
        ),
        (
            ALG_SHA384,
            Sha384::digest(b"three").to_vec(),
            extend::<Sha384>,
        ),
    ];
    for (alg, digest, ext) in cases {
        let before = pcr_value(&e.execute(0, &pcr_read(pcr, alg)));
        assert_eq!(before, vec![0; digest.len()], "PCR {pcr} starts at zero");
        expect_ok(&e.execute(0, &pcr_extend(pcr, alg, &digest)));
        let after = pcr_value(&e.execute(0, &pcr_read(pcr, alg)));
        assert_eq!(after, ext(&before, &digest), "bank {alg:#x}");
        // A second extend chains on the first.
        expect_ok(&e.execute(0, &pcr_extend(pcr, alg, &digest)));
        let again = pcr_value(&e.execute(0, &pcr_read(pcr, alg)));
        assert_eq!(again, ext(&after, &digest), "bank {alg:#x}");
    }
}

#[test]
fn locality_reaches_libtpms() {
    let _g = engine_lock();
    let mut e = started(&MemStorage::new());
    let digest = Sha256::digest(b"drtm").to_vec();
    // PC Client: PCR 17 is extendable from localities 2-4 only.
    let r = e.execute(0, &pcr_extend(17, ALG_SHA256, &digest));
    assert_eq!(rc(&r), RC_LOCALITY);
    let before = pcr_value(&e.execute(0, &pcr_read(17, ALG_SHA256)));
    expect_ok(&e.execute(4, &pcr_extend(17, ALG_SHA256, &digest)));
    let after = pcr_value(&e.execute(0, &pcr_read(17, ALG_SHA256)));
    assert_eq!(after, extend::<Sha256>(&before, &digest));
    // PCR 20 is resettable from localities 2 and 4, not from 0.
    assert_eq!(rc(&e.execute(0, &pcr_reset(20))), RC_LOCALITY);
    expect_ok(&e.execute(2, &pcr_reset(20)));
    // PCR 16 (debug) is resettable from any locality.
    expect_ok(&e.execute(0, &pcr_reset(16)));
}

#[test]
fn drtm_hash_sequence_and_established_flag() {
    let _g = engine_lock();
    let mut e = started(&MemStorage::new());
    let data = b"measured launch environment";
    e.hash_sequence(data).unwrap();
    // _TPM_Hash_End: PCR 17 = H(0 || H(data)) in each bank.
    let pcr17 = pcr_value(&e.execute(0, &pcr_read(17, ALG_SHA256)));
    assert_eq!(pcr17, extend::<Sha256>(&[0; 32], &Sha256::digest(data)));
    assert!(e.established().unwrap());
    assert!(e.reset_established(0).is_err(), "locality 0 may not reset");
    assert!(e.established().unwrap());
    e.reset_established(3).unwrap();
    assert!(!e.established().unwrap());
}

#[test]
fn h_crtm_sequence_before_startup_extends_pcr0() {
    let _g = engine_lock();
    let mut e = Engine::start(Box::new(MemStorage::new())).unwrap();
    let crtm = b"first boot component";
    e.hash_sequence(crtm).unwrap();
    expect_ok(&e.execute(0, &startup(SU_CLEAR)));
    // PC Client H-CRTM: PCR 0 starts at 4 (the locality) instead of 0, then
    // takes the extend of H(data).
    let mut initial = [0u8; 32];
    initial[31] = 4;
    let pcr0 = pcr_value(&e.execute(0, &pcr_read(0, ALG_SHA256)));
    assert_eq!(pcr0, extend::<Sha256>(&initial, &Sha256::digest(crtm)));
}

const NV_INDEX: u32 = 0x0150_0016;

#[test]
fn nv_data_survives_a_power_cycle() {
    let _g = engine_lock();
    let storage = MemStorage::new();
    let mut e = started(&storage);
    expect_ok(&e.execute(0, &nv_define_space(NV_INDEX, 16)));
    expect_ok(&run(&mut e, 0, &nv_write(NV_INDEX, b"persistent state", 0)));
    assert_eq!(
        nv_read_data(&run(&mut e, 0, &nv_read(NV_INDEX, 16, 0))),
        b"persistent state"
    );
    assert!(storage.names().contains(&"permall".to_string()));
    drop(e.stop());

    let mut e = started(&storage);
    assert_eq!(
        nv_read_data(&run(&mut e, 0, &nv_read(NV_INDEX, 16, 0))),
        b"persistent state"
    );
    // A fresh TPM does not have the index.
    drop(e.stop());
    let mut fresh = started(&MemStorage::new());
    assert_ne!(
        rc(&run(&mut fresh, 0, &nv_read(NV_INDEX, 16, 0))),
        RC_SUCCESS
    );
}

#[test]
fn primary_key_is_stable_across_restarts_and_unique_per_tpm() {
    let _g = engine_lock();
    let storage = MemStorage::new();
    let mut e = started(&storage);
    let (handle, first) = created_public(&e.execute(0, &create_primary_ecc(RH_OWNER)));
    assert_eq!(handle >> 24, 0x80, "a transient handle");
    expect_ok(&e.execute(0, &flush_context(handle)));
    drop(e.stop());

    let mut e = started(&storage);
    let (_, second) = created_public(&e.execute(0, &create_primary_ecc(RH_OWNER)));
    assert_eq!(first, second, "same seed, same template, same key");
    drop(e.stop());

    let mut other = started(&MemStorage::new());
    let (_, third) = created_public(&other.execute(0, &create_primary_ecc(RH_OWNER)));
    assert_ne!(first, third, "another TPM has another owner seed");
}

#[test]
fn malformed_commands_get_error_responses() {
    let _g = engine_lock();
    let mut e = started(&MemStorage::new());
    let garbage: Vec<u8> = (0u8..64).map(|i| i.wrapping_mul(37) ^ 0x5A).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("garbage", garbage),
        ("truncated header", startup(SU_CLEAR)[..5].to_vec()),
        ("size larger than buffer", {
            let mut c = get_random(8);
            c[2..6].copy_from_slice(&100u32.to_be_bytes());
            c
        }),
        ("size smaller than buffer", {
            let mut c = get_random(8);
            c[2..6].copy_from_slice(&10u32.to_be_bytes());
            c
        }),
        (
            "unknown command code",
            command(ST_NO_SESSIONS, 0x0000_0fff, &[]),
        ),
    ];
    for (what, cmd) in cases {
        let r = e.execute(0, &cmd);
        let h = header(&r);
        assert_ne!(h.rc, RC_SUCCESS, "{what}: {r:02x?}");
        assert_eq!(h.tag, ST_NO_SESSIONS, "{what}");
    }
    let too_big = vec![0u8; e.buffer_size() + 1];
    assert_eq!(rc(&e.execute(0, &too_big)), RC_COMMAND_SIZE);
    // The TPM still works afterwards.
    assert_eq!(random_bytes(&e.execute(0, &get_random(4))).len(), 4);
}

#[test]
fn tpm12_probe_gets_a_tpm2_error() {
    let _g = engine_lock();
    let mut e = started(&MemStorage::new());
    // OVMF decides "TPM 1.2" on a 0x00C4 response tag; a TPM 2.0 answers
    // with a TPM 2.0 error header (libtpms 0.9.2 reports rc 0x84).
    let h = header(&e.execute(0, &tpm12_get_ticks()));
    assert_eq!(h.tag, ST_NO_SESSIONS);
    assert_ne!(h.rc, RC_SUCCESS);
}

#[test]
fn only_one_engine_at_a_time() {
    let _g = engine_lock();
    let e = Engine::start(Box::new(MemStorage::new())).unwrap();
    assert_eq!(
        Engine::start(Box::new(MemStorage::new())).err(),
        Some(EngineError::AlreadyRunning)
    );
    drop(e);
    let mut e = Engine::start(Box::new(MemStorage::new())).unwrap();
    expect_ok(&e.execute(0, &startup(SU_CLEAR)));
}

#[test]
fn engine_works_through_the_backend_trait() {
    let _g = engine_lock();
    let mut e = Engine::start(Box::new(MemStorage::new())).unwrap();
    let backend: &mut dyn TpmBackend = &mut e;
    expect_ok(&backend.execute(0, &startup(SU_CLEAR)));
    assert_eq!(random_bytes(&backend.execute(0, &get_random(16))).len(), 16);
}

#[test]
fn exported_state_resumes_pcrs_without_startup() {
    let _g = engine_lock();
    let mut e = started(&MemStorage::new());
    let digest = Sha256::digest(b"resume me").to_vec();
    expect_ok(&e.execute(0, &pcr_extend(11, ALG_SHA256, &digest)));
    let extended = pcr_value(&e.execute(0, &pcr_read(11, ALG_SHA256)));
    let permanent = e.state(StateKind::Permanent).unwrap();
    let volatile = e.state(StateKind::Volatile).unwrap();
    assert!(!permanent.is_empty() && !volatile.is_empty());
    // libtpms' permall header: BE u16 version, then magic 0xAB364723.
    assert_eq!(permanent[2..6], 0xAB36_4723u32.to_be_bytes());
    drop(e.stop());

    let target = MemStorage::new();
    let mut e = Engine::builder(Box::new(target.clone()))
        .state(StateKind::Volatile, volatile)
        .state(StateKind::Permanent, permanent)
        .start()
        .unwrap();
    // No Startup: the TPM resumed where it was.
    assert_eq!(
        pcr_value(&e.execute(0, &pcr_read(11, ALG_SHA256))),
        extended
    );
    assert!(target.get("permall").is_some(), "permanent state persisted");
}

#[test]
fn garbage_state_blob_is_refused() {
    let _g = engine_lock();
    let err = Engine::builder(Box::new(MemStorage::new()))
        .state(StateKind::Permanent, vec![0xEE; 100])
        .start()
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::InvalidState {
            kind: StateKind::Permanent,
            ..
        }
    ));
    // The failed start released the library.
    drop(started(&MemStorage::new()));
}

/// A store that fails every write while `fail` is set.
struct FlakyStorage {
    inner: MemStorage,
    fail: Arc<AtomicBool>,
}

impl NvStorage for FlakyStorage {
    fn load(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.load(name)
    }
    fn store(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StorageError::Backend("injected failure".into()));
        }
        self.inner.store(name, data)
    }
    fn delete(&mut self, name: &str) -> Result<(), StorageError> {
        self.inner.delete(name)
    }
}

#[test]
fn failed_store_is_not_acknowledged() {
    let _g = engine_lock();
    let inner = MemStorage::new();
    let fail = Arc::new(AtomicBool::new(false));
    let storage = FlakyStorage {
        inner: inner.clone(),
        fail: fail.clone(),
    };
    let mut e = Engine::start(Box::new(storage)).unwrap();
    expect_ok(&e.execute(0, &startup(SU_CLEAR)));
    expect_ok(&e.execute(0, &nv_define_space(NV_INDEX, 8)));
    expect_ok(&run(&mut e, 0, &nv_write(NV_INDEX, b"original", 0)));

    fail.store(true, Ordering::SeqCst);
    let r = run(&mut e, 0, &nv_write(NV_INDEX, b"unstored", 0));
    assert_eq!(rc(&r), RC_FAILURE, "write acknowledged though not stored");
    // libtpms stays in failure mode: nothing more is acknowledged.
    assert_eq!(rc(&e.execute(0, &get_random(4))), RC_FAILURE);
    drop(e.stop());

    // After a power cycle the TPM has what was stored, not the failed write.
    let mut e = started(&inner);
    assert_eq!(
        nv_read_data(&run(&mut e, 0, &nv_read(NV_INDEX, 8, 0))),
        b"original"
    );
}

/// TPM_PT_MAX_COMMAND_SIZE and TPM_PT_MAX_RESPONSE_SIZE as the TPM reports them.
fn max_sizes(e: &mut Engine) -> (u32, u32) {
    let p = expect_ok(&e.execute(0, &get_capability(6, 0x11E, 2))).to_vec();
    // moreData u8, capability u32, count u32, then (property u32, value u32)*.
    let count = u32::from_be_bytes([p[5], p[6], p[7], p[8]]);
    assert_eq!(count, 2, "two properties: {p:02x?}");
    let prop = |i: usize| {
        let at = 9 + i * 8;
        let id = u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
        let v = u32::from_be_bytes([p[at + 4], p[at + 5], p[at + 6], p[at + 7]]);
        (id, v)
    };
    let (c_id, c) = prop(0);
    let (r_id, r) = prop(1);
    assert_eq!((c_id, r_id), (0x11E, 0x11F));
    (c, r)
}

#[test]
fn buffer_size_limits_what_the_tpm_accepts_and_reports() {
    let _g = engine_lock();
    // The CRB data buffer: 0xF80 bytes.
    let mut e = Engine::builder(Box::new(MemStorage::new()))
        .buffer_size(0xF80)
        .start()
        .expect("engine starts");
    assert_eq!(e.buffer_size(), 0xF80);
    expect_ok(&e.execute(0, &startup(SU_CLEAR)));
    assert_eq!(max_sizes(&mut e), (0xF80, 0xF80));
    // One byte over the limit is refused before libtpms sees it.
    let mut big = get_random(8);
    big.resize(0xF81, 0);
    big[2..6].copy_from_slice(&0xF81u32.to_be_bytes());
    assert_eq!(rc(&e.execute(0, &big)), 0x142, "TPM_RC_COMMAND_SIZE");
    drop(e);

    // Without the option the engine keeps libtpms' larger default.
    let mut e = Engine::start(Box::new(MemStorage::new())).expect("engine starts");
    expect_ok(&e.execute(0, &startup(SU_CLEAR)));
    let (c, r) = max_sizes(&mut e);
    assert!(c > 0xF80 && r > 0xF80, "default sizes {c:#x}/{r:#x}");
    assert_eq!(c as usize, e.buffer_size());
}
