//! The attempt loop: bounded, backing off, final on refusals.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::retry::{attempts, retryable, Attempts};
use super::{Clock, Stage, UnlockError};
use crate::attest::kbs::KbsError;

/// A clock that only advances when asked to sleep, recording the waits.
#[derive(Default)]
struct FakeClock {
    now: RefCell<u64>,
    sleeps: RefCell<Vec<u64>>,
}

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        *self.now.borrow()
    }
    fn sleep_ms(&self, ms: u64) {
        *self.now.borrow_mut() += ms;
        self.sleeps.borrow_mut().push(ms);
    }
}

fn unreachable_broker() -> KbsError {
    KbsError::Transport {
        reason: "the key broker is unreachable",
    }
}

fn refused(status: u16) -> KbsError {
    KbsError::Refused {
        status,
        error_type: String::from("x"),
        detail: String::from("measurement check failed"),
    }
}

#[test]
fn transient_failures_are_retried_with_doubling_backoff_then_given_up() {
    let clock = FakeClock::default();
    let mut calls = 0;
    let r: Attempts<()> = attempts("attestation", 4, 1000, &clock, || {
        calls += 1;
        Err(unreachable_broker())
    });
    assert_eq!(calls, 4);
    assert_eq!(*clock.sleeps.borrow(), [1000, 2000, 4000]);
    match r {
        Attempts::Exhausted { attempts, last } => {
            assert_eq!(attempts, 4);
            assert!(matches!(last, KbsError::Transport { .. }));
        }
        _ => panic!("expected exhaustion"),
    }
}

#[test]
fn a_refusal_is_final_at_once() {
    let clock = FakeClock::default();
    let mut calls = 0;
    let r: Attempts<()> = attempts("attestation", 4, 1000, &clock, || {
        calls += 1;
        Err(refused(401))
    });
    assert_eq!(calls, 1);
    assert!(clock.sleeps.borrow().is_empty());
    assert!(matches!(
        r,
        Attempts::Final(KbsError::Refused { status: 401, .. })
    ));
}

#[test]
fn success_after_a_transient_failure() {
    let clock = FakeClock::default();
    let mut calls = 0;
    let r = attempts("state key", 3, 500, &clock, || {
        calls += 1;
        if calls < 2 {
            Err(refused(503))
        } else {
            Ok(7)
        }
    });
    assert!(matches!(r, Attempts::Done(7)));
    assert_eq!(*clock.sleeps.borrow(), [500]);
}

#[test]
fn backoff_is_capped_and_zero_attempts_still_try_once() {
    let clock = FakeClock::default();
    let _: Attempts<()> = attempts("x", 7, 3000, &clock, || Err(unreachable_broker()));
    assert_eq!(*clock.sleeps.borrow(), [3000, 6000, 8000, 8000, 8000, 8000]);
    let mut calls = 0;
    let _: Attempts<()> = attempts("x", 0, 1, &clock, || {
        calls += 1;
        Err(unreachable_broker())
    });
    assert_eq!(calls, 1);
}

#[test]
fn what_is_retryable() {
    assert!(retryable(&unreachable_broker()));
    assert!(retryable(&refused(502)));
    assert!(!retryable(&refused(401)));
    assert!(!retryable(&refused(403)));
    assert!(!retryable(&KbsError::GenerationForged));
    assert!(!retryable(&KbsError::Evidence {
        reason: "the PSP answered with an error"
    }));
}

#[test]
fn errors_name_their_stage() {
    let e = UnlockError::AttestationFailed {
        attempts: 4,
        last: unreachable_broker(),
    };
    assert_eq!(e.stage(), Stage::Attestation);
    let text = alloc::format!("{e}");
    assert!(
        text.contains("after 4 attempts") && text.contains("unreachable"),
        "{text}"
    );
    assert_eq!(UnlockError::KeyRefused(refused(403)).stage(), Stage::Key);
    assert_eq!(
        UnlockError::State(crate::nvstate::StateError::NonceRepeated).stage(),
        Stage::State
    );
}
