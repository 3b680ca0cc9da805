//! [`Refusal`]: why the broker said no, logged and answered the way Trustee
//! answers: an HTTP status (401 unauthenticated, 403 forbidden, 404 not
//! found; 400 and 409 for this broker's own checks) and an
//! `ErrorInformation` body whose `type` is Trustee's error URI prefix plus a
//! kind, and whose `detail` names the check that failed.

use std::fmt;

use kbs_types::ErrorInformation;

/// Trustee's error type prefix.
pub const ERROR_TYPE_PREFIX: &str = "https://github.com/confidential-containers/kbs/errors";

/// A refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// Error kind (last segment of the `type` URI).
    pub kind: &'static str,
    /// Which check failed, for the log and the client.
    pub detail: String,
}

impl Refusal {
    /// A refusal with `status`, `kind` and `detail`.
    pub fn new(status: u16, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: detail.into(),
        }
    }

    /// 401, attestation refused.
    pub fn attestation(detail: impl Into<String>) -> Self {
        Self::new(401, "AttestationError", detail)
    }

    /// 401, no valid session or token.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(401, "TokenNotFound", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, "InvalidRequestPath", detail)
    }

    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", detail)
    }

    /// The `ErrorInformation` body.
    pub fn body(&self) -> Vec<u8> {
        let info = ErrorInformation {
            error_type: format!("{ERROR_TYPE_PREFIX}/{}", self.kind),
            detail: self.detail.clone(),
        };
        serde_json::to_vec(&info).unwrap_or_default()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.kind, self.detail)
    }
}

impl std::error::Error for Refusal {}
