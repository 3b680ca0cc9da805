//! The simulator's sealed state: it starts only on a state it can
//! authenticate under its key, provisions only on purpose and only where
//! there is no state, and every refusal (no state, missing state, wrong
//! key, tampering, damage, newer format, rollback, bad key or guard file)
//! has its own message, a non-zero exit and leaves every file as it was.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod harness;

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::*;
use harness::{Exited, Sim, Vtpm};

/// Exit status of a refused state.
const REFUSED: i32 = 3;
/// Platform STOP.
const STOP: u32 = 21;
const INDEX: u32 = 0x0150_0777;

/// Provisions `vtpm`, manufactures the TPM and writes `data` to an NV
/// index through a simulator, then stops it cleanly.
fn make_state(vtpm: &Vtpm, data: &[u8]) {
    let mut sim = Sim::provision(vtpm, "tis");
    let mut c = sim.client();
    expect_ok(&c.send(0, &startup(SU_CLEAR)));
    expect_ok(&c.send(0, &nv_define_space(INDEX, data.len() as u16)));
    write_nv(&mut c, data);
    c.platform.write_all(&STOP.to_be_bytes()).unwrap();
    assert!(sim.wait_exit(Duration::from_secs(10)).unwrap().success());
}

/// Writes the NV index, resending on TPM_RC_RETRY.
fn write_nv(c: &mut harness::Mssim, data: &[u8]) {
    for _ in 0..3 {
        let r = c.send(0, &nv_write(INDEX, data, 0));
        if header(&r).rc != 0x922 {
            expect_ok(&r);
            return;
        }
    }
    panic!("TPM_RC_RETRY three times");
}

/// Reads the NV index through a simulator started on `vtpm`.
fn read_nv(vtpm: &Vtpm, len: u16) -> Vec<u8> {
    let sim = Sim::start_on(vtpm, "crb");
    let mut c = sim.client();
    expect_ok(&c.send(0, &startup(SU_CLEAR)));
    for _ in 0..3 {
        let r = c.send(0, &nv_read(INDEX, len, 0));
        if header(&r).rc != 0x922 {
            return nv_read_data(&r);
        }
    }
    panic!("TPM_RC_RETRY three times");
}

/// Runs the simulator with `extra` arguments and checks that it refused to
/// start: the exit status, no port announced, `needle` in the log, the key
/// never in the log, and no file of the vTPM changed.
fn refused(vtpm: &Vtpm, extra: &[&OsStr], status: i32, needle: &str) -> Exited {
    let before = vtpm.files();
    let out = vtpm.run_to_exit(extra);
    assert_eq!(out.status.code(), Some(status), "{}", out.log);
    assert!(out.stdout.is_empty(), "announced a port: {}", out.stdout);
    assert!(
        out.log.contains(needle),
        "log lacks {needle:?}:\n{}",
        out.log
    );
    let key = vtpm.key_hex();
    if key.len() >= 16 {
        assert!(
            !out.log.to_lowercase().contains(&key[..16].to_lowercase()),
            "key in the log"
        );
    }
    assert!(vtpm.files() == before, "files changed:\n{}", out.log);
    out
}

fn flip(path: &Path, offset: usize) {
    let mut b = fs::read(path).unwrap();
    b[offset] ^= 0x01;
    fs::write(path, b).unwrap();
}

/// Generation in a slot file's header (LE u64 at offset 16).
fn generation(path: &Path) -> u64 {
    let b = fs::read(path).unwrap();
    u64::from_le_bytes(b[16..24].try_into().unwrap())
}

#[test]
fn an_empty_state_is_refused_without_provision() {
    let v = Vtpm::new();
    let msg = format!(
        "no vTPM state in {}; pass --provision to create a new vTPM",
        v.state_dir().display()
    );
    refused(&v, &[], REFUSED, &msg);
    assert!(!v.state_dir().exists(), "the state directory was created");
    fs::create_dir(v.state_dir()).unwrap();
    refused(&v, &[], REFUSED, &msg);
    assert_eq!(fs::read_dir(v.state_dir()).unwrap().count(), 0);
    assert!(!v.guard_file().exists());
}

#[test]
fn provision_is_refused_over_a_state_or_a_remembered_one() {
    let v = Vtpm::new();
    make_state(&v, b"first vtpm");
    assert!(v.guard_file().is_file(), "guard at its default place");
    let recorded = v.recorded().unwrap();
    refused(
        &v,
        &["--provision".as_ref()],
        REFUSED,
        "--provision refused: ",
    );
    // Even a damaged state is not replaced.
    fs::write(v.slot('a'), b"junk").unwrap();
    fs::write(v.slot('b'), b"junk").unwrap();
    refused(
        &v,
        &["--provision".as_ref()],
        REFUSED,
        "already holds a vTPM state",
    );
    // The state deleted: the guard still remembers it.
    fs::remove_file(v.slot('a')).unwrap();
    fs::remove_file(v.slot('b')).unwrap();
    refused(
        &v,
        &[],
        REFUSED,
        &format!("vTPM state missing from storage, but generation {recorded} was committed"),
    );
    refused(
        &v,
        &["--provision".as_ref()],
        REFUSED,
        &format!("records generation {recorded} of a vTPM"),
    );
    fs::remove_dir(v.state_dir()).unwrap();
    refused(&v, &[], REFUSED, "vTPM state missing from storage");

    // A new vTPM goes only into an empty directory.
    let w = Vtpm::new();
    fs::create_dir(w.state_dir()).unwrap();
    fs::write(w.state_dir().join("permall"), b"an unsealed libtpms blob").unwrap();
    refused(
        &w,
        &["--provision".as_ref()],
        REFUSED,
        "is not empty (permall); a new vTPM is provisioned only in an empty directory",
    );
}

#[test]
fn every_refusal_of_the_stored_state_is_named_and_changes_nothing() {
    let v = Vtpm::new();
    make_state(&v, b"generation-one!");
    let early: Vec<_> = ['a', 'b']
        .iter()
        .map(|&s| fs::read(v.slot(s)).unwrap())
        .collect();
    // More commits: the guard moves on.
    {
        let sim = Sim::start_on(&v, "tis");
        let mut c = sim.client();
        expect_ok(&c.send(0, &startup(SU_CLEAR)));
        write_nv(&mut c, b"generation-two!");
        write_nv(&mut c, b"generation-3!!!");
    }
    let good = v.files();
    let recorded = v.recorded().unwrap();
    let (newest, older) = if generation(&v.slot('a')) > generation(&v.slot('b')) {
        (v.slot('a'), v.slot('b'))
    } else {
        (v.slot('b'), v.slot('a'))
    };
    assert_eq!(generation(&newest), recorded);
    let restore = || {
        for (p, b) in &good {
            fs::write(p, b).unwrap();
        }
    };

    // Wrong key.
    let right_key = v.key_hex();
    v.write_key(&"5a".repeat(32));
    refused(&v, &[], REFUSED, "not the given key");
    v.write_key(&right_key);

    // The newest slot damaged: falling back to the older one is a rollback.
    flip(&newest, 100);
    refused(
        &v,
        &[],
        REFUSED,
        &format!(
            "rollback: newest stored state is generation {}, but generation {recorded} was committed",
            recorded - 1
        ),
    );
    restore();

    // The only slot left, tampered in its header or its ciphertext.
    fs::remove_file(&older).unwrap();
    flip(&newest, 16);
    refused(&v, &[], REFUSED, "state header failed authentication");
    restore();
    fs::remove_file(&older).unwrap();
    let len = fs::read(&newest).unwrap().len();
    flip(&newest, len - 20);
    refused(&v, &[], REFUSED, "state ciphertext failed authentication");
    restore();

    // Both slots damaged.
    fs::write(v.slot('a'), b"not a sealed blob").unwrap();
    flip(&v.slot('b'), 3);
    refused(&v, &[], REFUSED, "both state slots corrupt");
    restore();

    // A newer format in either slot stops everything.
    let mut b = fs::read(&older).unwrap();
    b[8..10].copy_from_slice(&2u16.to_le_bytes());
    fs::write(&older, b).unwrap();
    refused(&v, &[], REFUSED, "holds unknown state format version 2");
    restore();

    // The whole slot pair of an earlier run put back.
    fs::write(v.slot('a'), &early[0]).unwrap();
    fs::write(v.slot('b'), &early[1]).unwrap();
    refused(
        &v,
        &[],
        REFUSED,
        &format!("but generation {recorded} was committed"),
    );
    refused(&v, &[], REFUSED, "an older copy of the state was put back");
    restore();

    // The older slot damaged: the newest is used, with a warning.
    flip(&older, 100);
    let sim = Sim::start_on(&v, "tis");
    let log = sim.log();
    assert!(
        log.contains("other slot damaged (ciphertext authentication failed)"),
        "{log}"
    );
    drop(sim);
    restore();
    assert_eq!(read_nv(&v, 15), b"generation-3!!!");
}

#[test]
fn bad_key_and_guard_files_are_refused_without_showing_the_key() {
    let v = Vtpm::new();
    make_state(&v, b"keyed");
    let key = v.key_hex();
    for (text, needle) in [
        (key[..32].to_string(), "expected 64 hex digits"),
        (format!("0x{key}"), "found 66 characters"),
        (
            format!("{}g{}", &key[..10], &key[11..]),
            "offset 10 is not a hex digit",
        ),
        ("0".repeat(64), "all zero"),
    ] {
        v.write_key(&text);
        let out = refused(&v, &[], 1, needle);
        assert!(!out.log.contains(&key[12..40]), "key in the log");
    }
    fs::remove_file(v.key_file()).unwrap();
    refused(&v, &[], 1, "cannot read key file");
    v.write_key(&key);

    let guard = fs::read(v.guard_file()).unwrap();
    fs::write(v.guard_file(), "svtpm generation guard v1\nseven\n").unwrap();
    refused(&v, &[], 1, "is not a generation guard file");
    fs::write(v.guard_file(), guard).unwrap();
    let inside = v.state_dir().join("guard");
    refused(
        &v,
        &["--guard-file".as_ref(), inside.as_os_str()],
        1,
        "must not be inside the state directory",
    );
    assert!(!inside.exists());
    // Also when the state directory is yet to be provisioned.
    let w = Vtpm::new();
    let inside = w.state_dir().join("guard");
    refused(
        &w,
        &[
            "--provision".as_ref(),
            "--guard-file".as_ref(),
            inside.as_os_str(),
        ],
        1,
        "must not be inside the state directory",
    );
    assert!(!w.state_dir().exists());
}

#[test]
fn an_explicit_guard_file_is_used_and_one_process_owns_a_state() {
    let v = Vtpm::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let guard = elsewhere.path().join("kbs-record");
    let g = ["--guard-file".as_ref(), guard.as_os_str()];
    let sim = Sim::launch(&v, "tis", &["--provision".as_ref(), g[0], g[1]]);
    let mut cl = sim.client();
    expect_ok(&cl.send(0, &startup(SU_CLEAR)));
    assert!(guard.is_file() && !v.guard_file().exists());
    // A second simulator on the same state is turned away.
    refused(&v, &g, 1, "in use by another process");
    drop(sim);
    let recorded = fs::read_to_string(&guard).unwrap();
    assert!(
        recorded.starts_with("svtpm generation guard v1\n"),
        "{recorded}"
    );
    // The explicit guard remembers the state once it is deleted.
    fs::remove_dir_all(v.state_dir()).unwrap();
    refused(&v, &g, REFUSED, "vTPM state missing from storage");
}
