//! [`KbsError`]: every way talking to the key broker can fail, from a
//! broken entropy source to a tampered JWE. One enum for the whole `kbs`
//! module; each variant says which step refused and why, never a secret.

use alloc::string::String;
use core::fmt;

/// Longest piece of broker-supplied text kept in an error (the `type` and
/// `detail` of a refusal). Longer text is cut, so a hostile relay cannot
/// make errors arbitrarily large.
pub const MAX_ERROR_TEXT: usize = 256;

/// Why a key-broker exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KbsError {
    /// The entropy source failed (no TEE key, no challenge can be drawn).
    Entropy,
    /// A step was asked for out of order (e.g. a resource before attestation).
    State {
        /// What the step needs.
        expected: &'static str,
        /// Where the client is.
        found: &'static str,
    },
    /// The broker answered with an error status. `error_type` and `detail`
    /// come from its `ErrorInformation` body when it sent one (cut to
    /// [`MAX_ERROR_TEXT`]); they are unauthenticated text, for the log only.
    Refused {
        /// HTTP status.
        status: u16,
        /// The `type` member of the error body, or empty.
        error_type: String,
        /// The `detail` member of the error body, or empty.
        detail: String,
    },
    /// A response (or a part of one) is not what the protocol allows.
    Malformed {
        /// Which part.
        what: &'static str,
    },
    /// A response part is larger than this client accepts.
    TooLarge {
        /// Which part.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The broker did not set the `kbs-session-id` cookie.
    NoSessionCookie,
    /// The JWE uses an algorithm, curve or member this client does not accept.
    JweUnsupported {
        /// What was refused.
        what: &'static str,
    },
    /// The JWE did not decrypt: the wrapped key or the ciphertext, tag, IV or
    /// protected header was altered, or it was made for another key.
    JweDecrypt {
        /// Which stage failed: `"key unwrap"` or `"content"`.
        stage: &'static str,
    },
    /// A JSON value outside the subset this module canonicalizes (RFC 8785):
    /// floating-point numbers and integers beyond +-2^53.
    NotCanonicalizable,
    /// The evidence source could not produce evidence.
    Evidence {
        /// Its reason.
        reason: &'static str,
    },
    /// A generation record from the broker failed its authentication: it was
    /// forged or replayed on the way.
    GenerationForged,
    /// The transport (the host relay) could not deliver the exchange.
    Transport {
        /// Its reason.
        reason: &'static str,
    },
}

impl fmt::Display for KbsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KbsError::Entropy => write!(f, "entropy source failed"),
            KbsError::State { expected, found } => {
                write!(f, "KBS client step needs {expected}, client is {found}")
            }
            KbsError::Refused {
                status,
                error_type,
                detail,
            } => write!(f, "KBS refused with HTTP {status}: {error_type}: {detail}"),
            KbsError::Malformed { what } => write!(f, "malformed KBS response: {what}"),
            KbsError::TooLarge { what, len, max } => {
                write!(f, "KBS response {what} is {len} bytes, limit {max}")
            }
            KbsError::NoSessionCookie => write!(f, "KBS set no kbs-session-id cookie"),
            KbsError::JweUnsupported { what } => write!(f, "unsupported JWE: {what}"),
            KbsError::JweDecrypt { stage } => {
                write!(f, "JWE {stage} failed (tampered, or for another key)")
            }
            KbsError::NotCanonicalizable => {
                write!(f, "JSON value outside the canonicalizable subset")
            }
            KbsError::Evidence { reason } => write!(f, "no attestation evidence: {reason}"),
            KbsError::GenerationForged => {
                write!(
                    f,
                    "generation record failed authentication (forged or replayed)"
                )
            }
            KbsError::Transport { reason } => write!(f, "KBS transport failed: {reason}"),
        }
    }
}

impl core::error::Error for KbsError {}

/// Copies at most [`MAX_ERROR_TEXT`] bytes of `text`, cut at a character
/// boundary.
pub(crate) fn bounded(text: &str) -> String {
    let mut end = text.len().min(MAX_ERROR_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    String::from(&text[..end])
}
