//! Which broker failures are worth another attempt, and the bounded
//! attempt loop with its backoff.

use log::warn;

use super::Clock;
use crate::attest::kbs::KbsError;

/// Whether `e` may pass on a later attempt: the broker or the way to it
/// was unavailable or garbled the exchange. A refusal (4xx), a failed
/// decryption or failed evidence are final: trying again cannot change
/// the answer, and a failed guest message disables its key for good.
pub fn retryable(e: &KbsError) -> bool {
    match e {
        KbsError::Transport { .. }
        | KbsError::Malformed { .. }
        | KbsError::TooLarge { .. }
        | KbsError::NoSessionCookie
        | KbsError::State { .. } => true,
        KbsError::Refused { status, .. } => *status >= 500,
        _ => false,
    }
}

/// The outcome of [`attempts`]: the value, or the last error with the
/// number of attempts made and whether it was final.
#[derive(Debug)]
pub enum Attempts<T> {
    /// Succeeded.
    Done(T),
    /// A final error on attempt `attempt`.
    Final(KbsError),
    /// Every attempt failed with a retryable error.
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: KbsError,
    },
}

/// Runs `op` up to `max` times (at least once), waiting `backoff_ms`,
/// then twice that, and so on (capped at 8 s), between attempts; `what`
/// names the operation in the log.
pub fn attempts<T>(
    what: &str,
    max: u32,
    backoff_ms: u64,
    clock: &dyn Clock,
    mut op: impl FnMut() -> Result<T, KbsError>,
) -> Attempts<T> {
    let max = max.max(1);
    let mut wait = backoff_ms;
    let mut attempt = 1;
    loop {
        match op() {
            Ok(v) => return Attempts::Done(v),
            Err(e) if !retryable(&e) => return Attempts::Final(e),
            Err(e) if attempt >= max => {
                return Attempts::Exhausted {
                    attempts: attempt,
                    last: e,
                }
            }
            Err(e) => {
                warn!("{what}: attempt {attempt} of {max} failed: {e}; retrying in {wait} ms");
                clock.sleep_ms(wait);
                wait = (wait * 2).min(8000);
                attempt += 1;
            }
        }
    }
}
