//! The `svtpm-import-swtpm` tool (what `cargo xtask import-swtpm` runs):
//! it seals swtpm's golden states into new state directories that open
//! under the given key, and every wrong input ends with a clear error, a
//! non-zero exit and no state written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use svtpm::nvstate::{MemoryGuard, VtpmState};
use svtpm_store::keyfile::read_state_key;
use svtpm_store::swtpm::{self, SwtpmKey};
use svtpm_store::{DirStore, OsEntropy};

const STATE_KEY: &str = "3c9f1e0d2b7a46588e1f0c3d5b6a79811a2b3c4d5e6f708192a3b4c5d6e7f809";

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/swtpm")
}

struct Run {
    tmp: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("key"), format!("{STATE_KEY}\n")).unwrap();
        Run { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Runs the tool on the golden state `which` into `out`.
    fn import(&self, which: &str, out: &str, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_svtpm-import-swtpm"))
            .arg("--state-dir")
            .arg(data().join(which))
            .arg("--key")
            .arg(self.path("key"))
            .arg("--out")
            .arg(self.path(out))
            .args(extra)
            .output()
            .unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn expect_error(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    assert!(
        stderr(o).contains(needle),
        "lacks {needle:?}: {}",
        stderr(o)
    );
    assert!(!stderr(o).contains(&STATE_KEY[..16]), "the key was printed");
}

#[test]
fn imports_plain_and_encrypted_states_that_reopen_under_the_key() {
    let r = Run::new();
    let enc = data().join("enc256.key");
    for (which, extra) in [
        ("plain", vec![]),
        ("enc256", vec!["--swtpm-key", enc.to_str().unwrap()]),
    ] {
        let o = r.import(which, which, &extra);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(out.contains("generation 1"), "{out}");
        assert!(out.contains("permall: "), "{out}");
        let guard = r.path(&format!("{which}.guard"));
        assert!(out.contains(&guard.display().to_string()), "{out}");
        let s = VtpmState::open(
            read_state_key(&r.path("key")).unwrap(),
            DirStore::open(r.path(which)).unwrap(),
            MemoryGuard::new(),
            OsEntropy,
        )
        .unwrap();
        let key = (which == "enc256")
            .then(|| SwtpmKey::from_hex(&fs::read_to_string(&enc).unwrap()).unwrap());
        let file = fs::read(data().join(which).join("tpm2-00.permall")).unwrap();
        let want = swtpm::decode(&file, key.as_ref()).unwrap();
        assert_eq!(s.blob("permall"), Some(&want[..]));
        assert_eq!(
            fs::read_to_string(guard).unwrap(),
            "svtpm generation guard v1\n1\n"
        );
    }
}

#[test]
fn a_binary_swtpm_key_file_is_accepted_with_its_format() {
    let r = Run::new();
    let hex = fs::read_to_string(data().join("enc128.key")).unwrap();
    let raw: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex.trim()[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    fs::write(r.path("sw.bin"), raw).unwrap();
    let key = r.path("sw.bin");
    let o = r.import("enc128", "out", &["--swtpm-key", key.to_str().unwrap()]);
    expect_error(&o, "swtpm key must be 16 or 32 bytes");
    let o = r.import(
        "enc128",
        "out",
        &[
            "--swtpm-key",
            key.to_str().unwrap(),
            "--swtpm-key-format",
            "binary",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn wrong_inputs_are_refused_clearly_and_write_no_state() {
    let r = Run::new();
    let enc128 = data().join("enc128.key");
    let enc256 = data().join("enc256.key");
    expect_error(&r.import("enc128", "out", &[]), "a key is needed");
    expect_error(
        &r.import("enc128", "out", &["--swtpm-key", enc256.to_str().unwrap()]),
        "needs a 128-bit key, got 256 bits",
    );
    fs::write(r.path("other.key"), "00112233445566778899aabbccddeeff").unwrap();
    let other = r.path("other.key");
    expect_error(
        &r.import("enc128", "out", &["--swtpm-key", other.to_str().unwrap()]),
        "HMAC does not verify",
    );
    expect_error(
        &r.import("plain", "out", &["--swtpm-key", enc128.to_str().unwrap()]),
        "not encrypted",
    );
    expect_error(&r.import("nonexistent", "out", &[]), "is not a directory");
    expect_error(&r.import(".", "out", &[]), "has no tpm2-00.permall");
    assert!(!r.path("out").join("slot-a.svtpm").exists());

    fs::write(r.path("key"), &STATE_KEY[..40]).unwrap();
    expect_error(&r.import("plain", "out2", &[]), "expected 64 hex digits");
    assert!(!r.path("out2").exists());
    fs::write(r.path("key"), STATE_KEY).unwrap();

    // An existing state is never replaced; a remembered one neither.
    assert!(r.import("plain", "out3", &[]).status.success());
    let before = fs::read(r.path("out3/slot-a.svtpm")).unwrap();
    expect_error(
        &r.import("plain", "out3", &[]),
        "already holds a vTPM state",
    );
    assert_eq!(fs::read(r.path("out3/slot-a.svtpm")).unwrap(), before);
    fs::remove_dir_all(r.path("out3")).unwrap();
    expect_error(
        &r.import("plain", "out3", &[]),
        "generation 1 of a state was committed",
    );
    let inside = r.path("out4/g");
    expect_error(
        &r.import("plain", "out4", &["--guard-file", inside.to_str().unwrap()]),
        "must not be inside the state directory",
    );
}
