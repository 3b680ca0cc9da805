//! Decoding swtpm state files: golden files made by swtpm (see
//! `tests/data/swtpm/README.md`) must decode to exactly what swtpm's own
//! decryption returns; every kind of damage and every wrong key is refused;
//! an import becomes a sealed state that reopens to the same blobs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use svtpm::nvstate::{MemoryGuard, StateKey, VtpmState};
use svtpm_store::import::{import_swtpm_dir, read_swtpm_dir, ImportError};
use svtpm_store::swtpm::{self, SwtpmError, SwtpmKey};
use svtpm_store::{DirStore, OsEntropy};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/swtpm")
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    fs::read(dir.join(name)).unwrap()
}

fn key(dir: &Path, bits: u32) -> SwtpmKey {
    SwtpmKey::from_hex(&fs::read_to_string(dir.join(format!("enc{bits}.key"))).unwrap()).unwrap()
}

fn permall(dir: &Path, which: &str) -> Vec<u8> {
    read(dir, &format!("{which}/tpm2-00.permall"))
}

/// Checks that our decryption of each encrypted state in `dir` equals
/// swtpm's own (the `.saved` files).
fn check_against_swtpm(dir: &Path) {
    for bits in [128, 256] {
        let ours =
            swtpm::decode(&permall(dir, &format!("enc{bits}")), Some(&key(dir, bits))).unwrap();
        let theirs = swtpm::decode(&read(dir, &format!("enc{bits}.saved")), None).unwrap();
        assert!(swtpm::looks_like_permall(&ours));
        assert_eq!(
            &ours[..],
            &theirs[..],
            "AES-{bits} decryption differs from swtpm's"
        );
    }
}

#[test]
fn golden_encrypted_states_decode_exactly_as_swtpm_does() {
    check_against_swtpm(&data());
}

#[test]
fn golden_plain_state_decodes() {
    let file = permall(&data(), "plain");
    let blob = swtpm::decode(&file, None).unwrap();
    // A plain file is the header, one TLV header, and the blob itself.
    assert_eq!(&blob[..], &file[16..]);
    assert!(swtpm::looks_like_permall(&blob));
}

#[test]
fn keys_are_needed_exactly_when_encrypted_and_must_be_right() {
    let d = data();
    let enc = permall(&d, "enc128");
    assert_eq!(swtpm::decode(&enc, None), Err(SwtpmError::KeyRequired));
    assert_eq!(
        swtpm::decode(&permall(&d, "plain"), Some(&key(&d, 128))),
        Err(SwtpmError::NotEncrypted)
    );
    let other = SwtpmKey::from_bytes(&[0x11; 16]).unwrap();
    assert_eq!(
        swtpm::decode(&enc, Some(&other)),
        Err(SwtpmError::HmacMismatch)
    );
    assert_eq!(
        swtpm::decode(&enc, Some(&key(&d, 256))),
        Err(SwtpmError::KeySizeMismatch {
            file_bits: 128,
            key_bits: 256
        })
    );
    assert_eq!(
        swtpm::decode(&permall(&d, "enc256"), Some(&key(&d, 128))),
        Err(SwtpmError::KeySizeMismatch {
            file_bits: 256,
            key_bits: 128
        })
    );
}

#[test]
fn every_altered_byte_after_the_header_is_refused() {
    let d = data();
    for bits in [128, 256] {
        let file = permall(&d, &format!("enc{bits}"));
        let k = key(&d, bits);
        for off in 10..file.len() {
            let mut t = file.clone();
            t[off] ^= 0x01;
            let r = swtpm::decode(&t, Some(&k));
            assert!(r.is_err(), "AES-{bits}: flipped byte {off} accepted");
        }
    }
}

#[test]
fn header_damage_is_named() {
    let file = permall(&data(), "plain");
    let mut t = file.clone();
    t[0] = 1;
    assert_eq!(
        swtpm::decode(&t, None),
        Err(SwtpmError::UnsupportedVersion {
            version: 1,
            min_version: 1
        })
    );
    let mut t = file.clone();
    t[1] = 3;
    assert_eq!(
        swtpm::decode(&t, None),
        Err(SwtpmError::UnsupportedVersion {
            version: 2,
            min_version: 3
        })
    );
    let mut t = file.clone();
    t[3] = 12;
    assert_eq!(swtpm::decode(&t, None), Err(SwtpmError::BadHeaderSize(12)));
    let mut t = file.clone();
    t[5] = 0x02;
    assert_eq!(
        swtpm::decode(&t, None),
        Err(SwtpmError::UnsupportedFlags(0x02))
    );
    assert_eq!(
        swtpm::decode(&file[..file.len() - 1], None),
        Err(SwtpmError::BadTotalLength {
            declared: file.len() as u32,
            actual: file.len() - 1
        })
    );
    assert_eq!(swtpm::decode(&file[..9], None), Err(SwtpmError::Truncated));
    // A TLV claiming more than the file holds (total length fixed up).
    let mut t = file.clone();
    t[13] = 0xff;
    assert_eq!(swtpm::decode(&t, None), Err(SwtpmError::BadTlv));
    // An unknown tag.
    let mut t = file.clone();
    t[11] = 9;
    assert_eq!(swtpm::decode(&t, None), Err(SwtpmError::UnknownTag(9)));
}

#[test]
fn key_text_formats() {
    assert_eq!(
        SwtpmKey::from_hex("00112233445566778899aabbccddeeff\n")
            .unwrap()
            .len(),
        16
    );
    assert_eq!(
        SwtpmKey::from_hex("0x00112233445566778899aabbccddeeff")
            .unwrap()
            .len(),
        16
    );
    assert_eq!(SwtpmKey::from_hex(&"ab".repeat(32)).unwrap().len(), 32);
    for bad in [
        "",
        "0011",
        &"zz".repeat(16),
        &"ab".repeat(24),
        " 00112233445566778899aabbccddeeff",
    ] {
        assert_eq!(
            SwtpmKey::from_hex(bad).unwrap_err(),
            SwtpmError::BadKey,
            "{bad:?}"
        );
    }
    assert_eq!(
        SwtpmKey::from_bytes(&[1; 24]).unwrap_err(),
        SwtpmError::BadKey
    );
    let k = SwtpmKey::from_bytes(&[0xab; 32]).unwrap();
    assert_eq!(format!("{k:?}"), "SwtpmKey(256 bits)");
}

#[test]
fn import_seals_the_state_and_reopens_identically() {
    let d = data();
    let tmp = tempfile::tempdir().unwrap();
    let state_key = || StateKey::new(&[0x42; 32]).unwrap();
    let mut guard = MemoryGuard::new();
    let expected = swtpm::decode(&permall(&d, "enc256"), Some(&key(&d, 256))).unwrap();
    let s = import_swtpm_dir(
        &d.join("enc256"),
        Some(&key(&d, 256)),
        state_key(),
        DirStore::open(tmp.path()).unwrap(),
        &mut guard,
        OsEntropy,
    )
    .unwrap();
    assert_eq!(s.generation(), 1);
    assert_eq!(s.blob("permall"), Some(&expected[..]));
    drop(s);
    // The sealed slot does not contain the plaintext.
    let sealed = fs::read(tmp.path().join("slot-a.svtpm")).unwrap();
    assert!(!sealed
        .windows(32)
        .any(|w| expected.windows(32).take(64).any(|p| p == w)));
    let s = VtpmState::open(
        state_key(),
        DirStore::open(tmp.path()).unwrap(),
        &mut guard,
        OsEntropy,
    )
    .unwrap();
    assert_eq!(s.blob("permall"), Some(&expected[..]));
    assert_eq!(s.blobs().len(), 1);
    drop(s);
    // Importing again over the existing state is refused.
    let again = import_swtpm_dir(
        &d.join("plain"),
        None,
        state_key(),
        DirStore::open(tmp.path()).unwrap(),
        MemoryGuard::new(),
        OsEntropy,
    );
    assert!(matches!(again, Err(ImportError::State(_))), "{again:?}");
}

#[test]
fn import_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        read_swtpm_dir(tmp.path(), None),
        Err(ImportError::MissingPermall { tpm12: false, .. })
    ));
    fs::write(tmp.path().join("tpm-00.permall"), b"x").unwrap();
    assert!(matches!(
        read_swtpm_dir(tmp.path(), None),
        Err(ImportError::MissingPermall { tpm12: true, .. })
    ));
    // A valid swtpm file that does not hold a libtpms permall.
    let mut fake = vec![2, 1, 0, 10, 0, 0, 0, 0, 0, 0];
    fake.extend_from_slice(&[0, 1, 0, 0, 0, 8, 0, 3, 0xde, 0xad, 0xbe, 0xef, 0, 3]);
    let total = fake.len() as u32;
    fake[6..10].copy_from_slice(&total.to_be_bytes());
    fs::write(tmp.path().join("tpm2-00.permall"), &fake).unwrap();
    assert!(matches!(
        read_swtpm_dir(tmp.path(), None),
        Err(ImportError::NotPermall { .. })
    ));
    let d = data();
    assert!(matches!(
        read_swtpm_dir(&d.join("enc128"), None),
        Err(ImportError::Swtpm {
            error: SwtpmError::KeyRequired,
            ..
        })
    ));
}

#[test]
fn live_swtpm_state_decodes_exactly_as_swtpm_does() {
    // Never skipped: CI installs swtpm (cargo xtask setup).
    for (program, package) in [
        ("swtpm", "swtpm"),
        ("swtpm_setup", "swtpm-tools"),
        ("swtpm_ioctl", "swtpm-tools"),
    ] {
        assert!(
            Command::new(program).arg("--version").output().is_ok(),
            "`{program}` not found: this test needs the Debian package `{package}` \
             (apt-get install {package})"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg(data().join("regenerate.sh"))
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_against_swtpm(tmp.path());
    let plain = read_swtpm_dir(&tmp.path().join("plain"), None).unwrap();
    assert!(swtpm::looks_like_permall(plain.get("permall").unwrap()));
}
