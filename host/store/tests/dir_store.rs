//! The directory store: slot files replaced atomically, missing slots read
//! as empty, stale temporary files ignored, and the whole sealed state life
//! cycle on disk.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use svtpm::nvstate::backend::StoreOp;
use svtpm::nvstate::format::MAX_BLOB_LEN;
use svtpm::nvstate::state::StateError;
use svtpm::nvstate::{
    BlobError, MemoryGuard, Refusal, SlotId, SlotStore, StateBlobs, StateKey, StoreError, VtpmState,
};
use svtpm_store::{DirStore, OsEntropy};

#[test]
fn slots_round_trip_and_replace_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = DirStore::open(tmp.path()).unwrap();
    assert_eq!(s.read_slot(SlotId::A), Ok(None));
    s.write_slot(SlotId::A, &[1; 100]).unwrap();
    s.write_slot(SlotId::A, &[2; 10]).unwrap();
    s.flush().unwrap();
    assert_eq!(s.read_slot(SlotId::A), Ok(Some(vec![2; 10])));
    assert_eq!(s.read_slot(SlotId::B), Ok(None));
    s.write_slot(SlotId::B, &[]).unwrap();
    assert_eq!(s.read_slot(SlotId::B), Ok(Some(vec![])));
    let mode = fs::metadata(s.slot_path(SlotId::A))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left behind: {names:?}");
}

#[test]
fn limits_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = DirStore::open(tmp.path()).unwrap();
    assert_eq!(
        s.write_slot(SlotId::A, &vec![0; MAX_BLOB_LEN + 1]),
        Err(StoreError::TooLarge {
            len: MAX_BLOB_LEN + 1,
            max: MAX_BLOB_LEN
        })
    );
    // An oversized file is read only up to one byte past the limit.
    fs::write(s.slot_path(SlotId::B), vec![0u8; MAX_BLOB_LEN + 100]).unwrap();
    assert_eq!(
        s.read_slot(SlotId::B).unwrap().unwrap().len(),
        MAX_BLOB_LEN + 1
    );
    // A slot path that is a directory is an I/O error, not "empty".
    fs::create_dir(s.slot_path(SlotId::A)).unwrap();
    assert!(matches!(
        s.read_slot(SlotId::A),
        Err(StoreError::Io {
            op: StoreOp::Read,
            slot: Some(SlotId::A),
            ..
        })
    ));
    assert!(matches!(
        s.write_slot(SlotId::A, b"x"),
        Err(StoreError::Io {
            op: StoreOp::Write,
            ..
        })
    ));
    assert!(DirStore::open(tmp.path().join("missing")).is_err());
    assert!(DirStore::open(s.slot_path(SlotId::B)).is_err());
    assert!(DirStore::create(tmp.path().join("new/sub")).is_ok());
}

#[test]
fn sealed_state_on_disk_with_crash_debris() {
    let tmp = tempfile::tempdir().unwrap();
    let key = || StateKey::new(&[3; 32]).unwrap();
    let mut guard = MemoryGuard::new();
    let mut first = StateBlobs::new();
    first.insert("permall", b"generation one").unwrap();
    let mut s = VtpmState::provision(
        key(),
        DirStore::open(tmp.path()).unwrap(),
        &mut guard,
        OsEntropy,
        first,
    )
    .unwrap();
    for i in 0..5u8 {
        let mut next = StateBlobs::new();
        next.insert("permall", &[i; 300]).unwrap();
        s.commit(next).unwrap();
        // A crash mid-write leaves a partial temporary file: harmless.
        fs::write(
            tmp.path().join(format!(
                ".slot-{}.svtpm.tmp",
                s.current_slot().other().name()
            )),
            b"SVTPMNV\0junk",
        )
        .unwrap();
        drop(s);
        s = VtpmState::open(
            key(),
            DirStore::open(tmp.path()).unwrap(),
            &mut guard,
            OsEntropy,
        )
        .unwrap();
        assert_eq!(
            (s.generation(), s.blob("permall")),
            (u64::from(i) + 2, Some(&[i; 300][..]))
        );
    }
    drop(s);
    // Damage to both files is refused, never treated as "no state".
    for slot in SlotId::ALL {
        let p = tmp.path().join(format!("slot-{}.svtpm", slot.name()));
        let mut d = fs::read(&p).unwrap();
        let n = d.len();
        d[n - 1] ^= 1;
        fs::write(&p, d).unwrap();
    }
    let r = VtpmState::open(
        key(),
        DirStore::open(tmp.path()).unwrap(),
        MemoryGuard::new(),
        OsEntropy,
    );
    assert_eq!(
        r.unwrap_err(),
        StateError::Refused(Refusal::BothCorrupt {
            a: BlobError::TamperedCiphertext,
            b: BlobError::TamperedCiphertext
        })
    );
    let r = VtpmState::provision(
        key(),
        DirStore::open(tmp.path()).unwrap(),
        MemoryGuard::new(),
        OsEntropy,
        StateBlobs::new(),
    );
    assert_eq!(r.unwrap_err(), StateError::SlotOccupied { slot: SlotId::A });
}
