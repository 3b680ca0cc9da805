//! Open / provision / commit: A/B alternation, refusals, rollback, wrong
//! key, corrupt slots, entropy and guard failures.
use super::support::*;
use crate::nvstate::backend::{SlotId, SlotStore, StoreError, StoreOp};
use crate::nvstate::entropy::Nonce;
use crate::nvstate::format::{BlobError, HEADER_LEN};
use crate::nvstate::memory::{Cache, MemoryStore, Torn};
use crate::nvstate::seal::seal;
use crate::nvstate::slots::OtherSlot;
use crate::nvstate::state::{Commit, StateError, VtpmState};
use crate::nvstate::{GuardError, MemoryGuard, Refusal, StateBlobs};

type State<'a> = VtpmState<&'a mut MemoryStore, &'a mut MemoryGuard, OsEntropy>;

fn open<'a>(
    store: &'a mut MemoryStore,
    guard: &'a mut MemoryGuard,
) -> Result<State<'a>, StateError> {
    VtpmState::open(key(1), store, guard, OsEntropy)
}

fn refusal(r: Result<State<'_>, StateError>) -> Refusal {
    match r {
        Err(StateError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A store and guard after provisioning and `commits` more commits.
fn history(commits: u8) -> (MemoryStore, MemoryGuard) {
    let mut store = MemoryStore::default();
    let mut guard = MemoryGuard::new();
    let mut s = VtpmState::provision(
        key(1),
        &mut store,
        &mut guard,
        OsEntropy,
        blobs(0, 100, false),
    )
    .unwrap();
    for i in 1..=commits {
        s.commit(blobs(i, 100 + usize::from(i) * 10, i % 2 == 0))
            .unwrap();
    }
    (store, guard)
}

fn flip(store: &mut MemoryStore, slot: SlotId, off: usize) {
    let mut d = store.medium(slot).unwrap().to_vec();
    d[off] ^= 0x10;
    store.set_medium(slot, Some(d));
}

#[test]
fn empty_storage_is_no_state_and_never_a_fresh_one() {
    let mut store = MemoryStore::default();
    assert_eq!(
        refusal(open(&mut store, &mut MemoryGuard::new())),
        Refusal::NoState
    );
    assert_eq!(
        refusal(open(&mut store, &mut MemoryGuard::with_record(4))),
        Refusal::StateMissing { recorded: 4 }
    );
    assert_eq!(store.medium(SlotId::A), None, "open must not write");
}

#[test]
fn provision_then_reopen() {
    let (mut store, mut guard) = history(0);
    assert_eq!(guard.latest(), Some(1));
    assert!(store.medium(SlotId::B).is_none());
    let s = open(&mut store, &mut guard).unwrap();
    assert_eq!((s.generation(), s.current_slot()), (1, SlotId::A));
    assert_eq!(s.blobs(), &blobs(0, 100, false));
    assert_eq!(s.open_info().other, OtherSlot::Empty);
}

#[test]
fn provision_refuses_any_existing_content() {
    let (mut store, mut guard) = history(2);
    let before = store.clone();
    let mut fresh_guard = MemoryGuard::new();
    let r = VtpmState::provision(
        key(1),
        &mut store,
        &mut fresh_guard,
        OsEntropy,
        StateBlobs::new(),
    );
    assert_eq!(r.unwrap_err(), StateError::SlotOccupied { slot: SlotId::A });
    let r = VtpmState::provision(key(1), &mut store, &mut guard, OsEntropy, StateBlobs::new());
    assert_eq!(
        r.unwrap_err(),
        StateError::AlreadyProvisioned { recorded: 3 }
    );
    assert_eq!(store.medium(SlotId::A), before.medium(SlotId::A));
    assert_eq!(store.medium(SlotId::B), before.medium(SlotId::B));

    // Garbage, an empty slot, or something only in B all count as content.
    for (slot, data) in [(SlotId::A, vec![]), (SlotId::B, vec![1, 2, 3])] {
        let mut s = MemoryStore::default();
        s.set_medium(slot, Some(data.clone()));
        let mut g = MemoryGuard::new();
        let r = VtpmState::provision(key(1), &mut s, &mut g, OsEntropy, StateBlobs::new());
        assert_eq!(r.unwrap_err(), StateError::SlotOccupied { slot });
        assert_eq!(s.medium(slot), Some(&data[..]));
    }
}

#[test]
fn commits_alternate_slots_and_the_newest_wins() {
    let (mut store, mut guard) = history(0);
    let mut s = open(&mut store, &mut guard).unwrap();
    let mut expect_slot = SlotId::A;
    for i in 1..=5u8 {
        expect_slot = expect_slot.other();
        let g = s.commit(blobs(i, 50, true)).unwrap();
        assert_eq!((g, s.current_slot()), (u64::from(i) + 1, expect_slot));
    }
    drop(s);
    assert_eq!(guard.latest(), Some(6));
    let s = open(&mut store, &mut guard).unwrap();
    assert_eq!((s.generation(), s.current_slot()), (6, SlotId::B));
    assert_eq!(s.blobs(), &blobs(5, 50, true));
    assert_eq!(s.open_info().other, OtherSlot::Older { generation: 5 });
}

#[test]
fn put_and_delete_commit_only_changes() {
    let (mut store, mut guard) = history(0);
    let mut s = open(&mut store, &mut guard).unwrap();
    let perm = s.blob("permall").unwrap().to_vec();
    let writes = s.store().writes();
    assert_eq!(s.put("permall", &perm).unwrap(), Commit::Unchanged);
    assert_eq!(s.delete("volatilestate").unwrap(), Commit::Unchanged);
    assert_eq!(s.store().writes(), writes);
    assert_eq!(
        s.put("volatilestate", b"vol").unwrap(),
        Commit::Committed(2)
    );
    assert_eq!(s.delete("volatilestate").unwrap(), Commit::Committed(3));
    assert_eq!(
        s.put("BAD NAME", b"x").unwrap_err(),
        StateError::Payload(crate::nvstate::payload::PayloadError::BadName)
    );
    assert_eq!(s.store().writes(), writes + 2);
    drop(s);
    let s = open(&mut store, &mut guard).unwrap();
    assert_eq!(
        (s.generation(), s.blob("volatilestate"), s.blob("permall")),
        (3, None, Some(&perm[..]))
    );
}

#[test]
fn replaying_old_slots_is_a_rollback() {
    let (mut store, mut guard) = history(1);
    let old = store.clone();
    let mut s = open(&mut store, &mut guard).unwrap();
    s.commit(blobs(7, 80, false)).unwrap();
    s.commit(blobs(8, 80, false)).unwrap();
    drop(s);
    assert_eq!(guard.latest(), Some(4));
    // The host puts back both slots from generation 2.
    for slot in SlotId::ALL {
        store.set_medium(slot, old.medium(slot).map(<[u8]>::to_vec));
    }
    assert_eq!(
        refusal(open(&mut store, &mut guard)),
        Refusal::Rollback {
            found: 2,
            recorded: 4
        }
    );
}

#[test]
fn damaging_the_newest_slot_is_a_rollback_not_a_fallback() {
    let (mut store, mut guard) = history(3);
    // Generation 4 is in B, 3 in A; both authentic.
    flip(&mut store, SlotId::B, HEADER_LEN + 5);
    assert_eq!(
        refusal(open(&mut store, &mut guard)),
        Refusal::Rollback {
            found: 3,
            recorded: 4
        }
    );
    // Deleting it is no better.
    store.set_medium(SlotId::B, None);
    assert_eq!(
        refusal(open(&mut store, &mut guard)),
        Refusal::Rollback {
            found: 3,
            recorded: 4
        }
    );
}

#[test]
fn guard_catches_up_when_storage_is_ahead() {
    let (mut store, _) = history(3);
    let mut lagging = MemoryGuard::with_record(3);
    let s = open(&mut store, &mut lagging).unwrap();
    assert_eq!(s.generation(), 4);
    drop(s);
    assert_eq!(lagging.latest(), Some(4));
}

#[test]
fn wrong_key_is_refused_as_wrong_key() {
    for commits in [0, 3] {
        let (mut store, mut guard) = history(commits);
        let r = VtpmState::open(key(2), &mut store, &mut guard, OsEntropy);
        assert_eq!(
            refusal(r),
            Refusal::WrongKey {
                expected: key(2).id(),
                found: key(1).id()
            },
            "{commits} commits"
        );
    }
}

#[test]
fn single_tampered_blob_names_the_tampering() {
    let (mut store, mut guard) = history(0);
    flip(&mut store, SlotId::A, 20); // generation field
    assert_eq!(
        refusal(open(&mut store, &mut guard)),
        Refusal::TamperedHeader { slot: SlotId::A }
    );
    let (mut store, mut guard) = history(0);
    flip(&mut store, SlotId::A, HEADER_LEN + 1);
    assert_eq!(
        refusal(open(&mut store, &mut guard)),
        Refusal::TamperedCiphertext { slot: SlotId::A }
    );
    let (mut store, mut guard) = history(0);
    let mut d = store.medium(SlotId::A).unwrap().to_vec();
    d[8] = 9;
    store.set_medium(SlotId::A, Some(d));
    assert_eq!(
        refusal(open(&mut store, &mut guard)),
        Refusal::UnknownVersion {
            slot: SlotId::A,
            version: 9
        }
    );
}

#[test]
fn both_slots_corrupt() {
    let (mut store, mut guard) = history(1);
    flip(&mut store, SlotId::A, HEADER_LEN + 3);
    let len_b = store.medium(SlotId::B).unwrap().len();
    store.set_medium(
        SlotId::B,
        Some(store.medium(SlotId::B).unwrap()[..len_b / 2].to_vec()),
    );
    assert_eq!(
        refusal(open(&mut store, &mut guard)),
        Refusal::BothCorrupt {
            a: BlobError::TamperedCiphertext,
            b: BlobError::Truncated {
                len: len_b / 2,
                needed: len_b
            },
        }
    );
    // With no guard record it is the same refusal: corrupt is never "no state".
    assert!(matches!(
        refusal(open(&mut store, &mut MemoryGuard::new())),
        Refusal::BothCorrupt { .. }
    ));
}

#[test]
fn newer_format_in_the_other_slot_stops_a_downgrade() {
    let (mut store, mut guard) = history(1);
    let mut d = store.medium(SlotId::B).unwrap().to_vec();
    d[8] = 2;
    store.set_medium(SlotId::B, Some(d));
    assert_eq!(
        refusal(open(&mut store, &mut guard)),
        Refusal::UnknownVersion {
            slot: SlotId::B,
            version: 2
        }
    );
}

#[test]
fn fallback_after_a_torn_write_is_reported() {
    let (mut store, mut guard) = history(1);
    // Generation 2 is in B; tear it as a crash would, with the guard not
    // yet told (it records only after the flush).
    let b = store.medium(SlotId::B).unwrap().to_vec();
    store.set_medium(SlotId::B, Some(b[..b.len() - 1].to_vec()));
    let mut guard1 = MemoryGuard::with_record(1);
    let s = open(&mut store, &mut guard1).unwrap();
    assert_eq!((s.generation(), s.current_slot()), (1, SlotId::A));
    assert!(matches!(
        s.open_info().other,
        OtherSlot::Invalid(BlobError::Truncated { .. })
    ));
    drop(s);
    // With the guard that saw generation 2 it is a rollback instead.
    assert_eq!(
        refusal(open(&mut store, &mut guard)),
        Refusal::Rollback {
            found: 1,
            recorded: 2
        }
    );
}

#[test]
fn same_generation_in_both_slots() {
    let (mut store, mut guard) = history(1);
    let b = store.medium(SlotId::B).unwrap().to_vec();
    store.set_medium(SlotId::A, Some(b.clone()));
    let s = open(&mut store, &mut guard).unwrap();
    assert_eq!(
        (s.generation(), s.open_info().other.clone()),
        (2, OtherSlot::Duplicate)
    );
    drop(s);
    // A different authentic blob of the same generation (only the key
    // holder can make one) is a conflict.
    let other = seal(
        &key(1),
        2,
        &Nonce::draw(&mut OsEntropy).unwrap(),
        &StateBlobs::new(),
    )
    .unwrap();
    store.set_medium(SlotId::A, Some(other));
    assert_eq!(
        refusal(open(&mut store, &mut guard)),
        Refusal::GenerationConflict { generation: 2 }
    );
}

#[test]
fn stuck_or_failing_entropy_never_seals() {
    let mut store = MemoryStore::default();
    let mut guard = MemoryGuard::new();
    let mut s = VtpmState::provision(
        key(1),
        &mut store,
        &mut guard,
        StuckEntropy(7),
        StateBlobs::new(),
    )
    .unwrap();
    assert_eq!(
        s.commit(blobs(1, 10, false)),
        Err(StateError::NonceRepeated)
    );
    assert_eq!(s.generation(), 1);
    drop(s);
    // A later boot with the same stuck source is caught by the stored nonce.
    let mut s = VtpmState::open(key(1), &mut store, &mut guard, StuckEntropy(7)).unwrap();
    assert_eq!(
        s.commit(blobs(1, 10, false)),
        Err(StateError::NonceRepeated)
    );
    drop(s);
    let mut s = VtpmState::open(key(1), &mut store, &mut guard, FailingEntropy).unwrap();
    assert!(matches!(
        s.commit(blobs(1, 10, false)),
        Err(StateError::Entropy(_))
    ));
    drop(s);
    let r = VtpmState::provision(
        key(1),
        MemoryStore::default(),
        MemoryGuard::new(),
        FailingEntropy,
        StateBlobs::new(),
    );
    assert!(matches!(r, Err(StateError::Entropy(_))));
    assert_eq!(store.medium(SlotId::B), None, "nothing was written");
}

#[test]
fn guard_failures() {
    let (mut store, mut guard) = history(0);
    let mut s = open(&mut store, &mut guard).unwrap();
    s.guard_mut().set_unavailable(true);
    assert_eq!(
        s.commit(blobs(1, 10, false)),
        Err(StateError::Unrecorded {
            generation: 2,
            error: GuardError::Unavailable
        })
    );
    assert_eq!(s.generation(), 2, "the durable commit is current");
    drop(s);
    assert_eq!(guard.latest(), Some(1));
    guard.set_unavailable(false);
    let s = open(&mut store, &mut guard).unwrap();
    assert_eq!(s.generation(), 2);
    drop(s);
    assert_eq!(guard.latest(), Some(2));
    guard.set_unavailable(true);
    assert_eq!(
        open(&mut store, &mut guard).unwrap_err(),
        StateError::Guard(GuardError::Unavailable)
    );
}

#[test]
fn storage_errors_leave_the_state_unchanged() {
    let (mut store, mut guard) = history(0);
    let mut s = open(&mut store, &mut guard).unwrap();
    s.store_mut().cut_after(10);
    assert_eq!(
        s.commit(blobs(1, 10, false)),
        Err(StateError::Store(StoreError::Unavailable {
            op: StoreOp::Write
        }))
    );
    assert_eq!((s.generation(), s.blobs()), (1, &blobs(0, 100, false)));
    drop(s);
    let mut rebooted = store.reboot();
    let mut s = open(&mut rebooted, &mut guard).unwrap();
    assert_eq!(s.generation(), 1);
    assert_eq!(s.commit(blobs(1, 10, false)), Ok(2));
}

#[test]
fn generation_counter_cannot_wrap() {
    let (mut store, mut guard) = history(0);
    let top = seal(
        &key(1),
        u64::MAX,
        &Nonce::draw(&mut OsEntropy).unwrap(),
        &StateBlobs::new(),
    )
    .unwrap();
    store.set_medium(SlotId::B, Some(top));
    let mut s = open(&mut store, &mut guard).unwrap();
    assert_eq!(s.generation(), u64::MAX);
    assert_eq!(
        s.commit(StateBlobs::new()),
        Err(StateError::GenerationExhausted)
    );
}

#[test]
fn store_trait_objects_work() {
    let mut store = MemoryStore::new(Cache::WriteThrough(Torn::Truncated));
    let dynstore: &mut dyn SlotStore = &mut store;
    let mut guard = MemoryGuard::new();
    let s =
        VtpmState::provision(key(1), dynstore, &mut guard, OsEntropy, blobs(1, 5, false)).unwrap();
    assert_eq!(s.generation(), 1);
}
