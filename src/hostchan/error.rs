//! [`HostchanError`]: every way a host-channel exchange can fail, each with
//! its own clear reason. The host is untrusted, so most variants name a
//! field the host wrote that failed its check.

use core::fmt;

use super::http::CodecError;
use super::layout::{MsgType, Status};

/// Why a host-channel operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostchanError {
    /// The region is not 4 KiB-aligned in size or not 64 KiB..=16 MiB.
    RegionSize {
        /// Its length.
        len: usize,
    },
    /// The header's magic is not `SVTPMHC1`.
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// The header's version is not one this end speaks.
    WrongVersion {
        /// Version found.
        found: u32,
    },
    /// The header's `region_len` differs from the region's real size.
    RegionLenMismatch {
        /// Length the host wrote.
        found: u32,
        /// The region's length.
        expected: u32,
    },
    /// No host served the channel (no header, or `host_ready` not 1)
    /// within the wait.
    NotReady {
        /// How long was waited, in milliseconds.
        waited_ms: u64,
    },
    /// No response to a request within the timeout.
    Timeout {
        /// The request's type.
        kind: MsgType,
        /// The request's sequence number.
        seq: u32,
        /// How long was waited, in milliseconds.
        waited_ms: u64,
    },
    /// `resp.seq` changed between the poll that saw it and the copy of
    /// the descriptor: the host rewrote the response while it was read.
    SeqMismatch {
        /// The request's sequence number.
        expected: u32,
        /// What the copied descriptor holds.
        found: u32,
    },
    /// `resp.request_id` does not echo the request's id: a stale or
    /// misrouted response.
    RequestIdMismatch {
        /// The request's id.
        expected: u64,
        /// The id in the response.
        found: u64,
    },
    /// `resp.type` is not the request's type with bit 15 set.
    WrongResponseType {
        /// Type expected.
        expected: u16,
        /// Type found.
        found: u16,
    },
    /// `resp.status` is not a defined status.
    UnknownStatus(u16),
    /// A payload length is larger than its payload area.
    OverArea {
        /// Which payload (`"request"` or `"response"`).
        what: &'static str,
        /// The length.
        len: usize,
        /// The area's size.
        area: usize,
    },
    /// The response payload is larger than the caller accepts.
    ResponseTooLarge {
        /// The request's type.
        kind: MsgType,
        /// The length.
        len: usize,
        /// The caller's maximum.
        max: usize,
    },
    /// `req.reserved` is not 0 (host side).
    ReservedNonZero(u16),
    /// The host answered with a status other than OK.
    Status {
        /// The request's type.
        kind: MsgType,
        /// The status.
        status: Status,
    },
    /// A response payload does not have its type's layout.
    Malformed {
        /// The request's type.
        kind: MsgType,
        /// What is wrong.
        what: &'static str,
    },
    /// A request payload does not have its type's layout (host side).
    BadRequestPayload {
        /// The request's type.
        kind: MsgType,
        /// What is wrong.
        what: &'static str,
    },
    /// HELLO chose a version this end did not offer.
    VersionRefused {
        /// Version chosen.
        chosen: u32,
    },
    /// An HTTP message could not be encoded or decoded.
    Http(CodecError),
}

impl HostchanError {
    /// A fixed description (for error types that carry only static text).
    pub fn reason(&self) -> &'static str {
        match self {
            HostchanError::RegionSize { .. } => "host channel region has an invalid size",
            HostchanError::BadMagic { .. } => "host channel header has a bad magic",
            HostchanError::WrongVersion { .. } => "host channel header has a wrong version",
            HostchanError::RegionLenMismatch { .. } => {
                "host channel header region_len does not match the region"
            }
            HostchanError::NotReady { .. } => "no host serves the host channel",
            HostchanError::Timeout { .. } => "host channel request timed out",
            HostchanError::SeqMismatch { .. } => {
                "host channel response sequence number changed while read"
            }
            HostchanError::RequestIdMismatch { .. } => {
                "host channel response is for another request (stale request id)"
            }
            HostchanError::WrongResponseType { .. } => "host channel response has a wrong type",
            HostchanError::UnknownStatus(_) => "host channel response has an unknown status",
            HostchanError::OverArea { .. } => {
                "host channel payload length exceeds the payload area"
            }
            HostchanError::ResponseTooLarge { .. } => {
                "host channel response is larger than accepted"
            }
            HostchanError::ReservedNonZero(_) => "host channel request reserved field is not 0",
            HostchanError::Status { .. } => "host refused the host channel request",
            HostchanError::Malformed { .. } => "host channel response payload is malformed",
            HostchanError::BadRequestPayload { .. } => "host channel request payload is malformed",
            HostchanError::VersionRefused { .. } => {
                "host chose a host channel version that was not offered"
            }
            HostchanError::Http(e) => e.reason(),
        }
    }

    /// A small number naming the variant (never 0), for error types that
    /// carry only a code.
    pub fn code(&self) -> u16 {
        match self {
            HostchanError::RegionSize { .. } => 1,
            HostchanError::BadMagic { .. } => 2,
            HostchanError::WrongVersion { .. } => 3,
            HostchanError::RegionLenMismatch { .. } => 4,
            HostchanError::NotReady { .. } => 5,
            HostchanError::Timeout { .. } => 6,
            HostchanError::SeqMismatch { .. } => 7,
            HostchanError::RequestIdMismatch { .. } => 8,
            HostchanError::WrongResponseType { .. } => 9,
            HostchanError::UnknownStatus(_) => 10,
            HostchanError::OverArea { .. } => 11,
            HostchanError::ResponseTooLarge { .. } => 12,
            HostchanError::ReservedNonZero(_) => 13,
            HostchanError::Status { .. } => 14,
            HostchanError::Malformed { .. } => 15,
            HostchanError::VersionRefused { .. } => 16,
            HostchanError::Http(_) => 17,
            HostchanError::BadRequestPayload { .. } => 18,
        }
    }
}

impl fmt::Display for HostchanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostchanError::RegionSize { len } => write!(
                f,
                "host channel region of {len:#x} bytes: must be whole 4 KiB pages, 64 KiB to 16 MiB"
            ),
            HostchanError::BadMagic { found } => {
                write!(f, "host channel magic is {found:02x?}, expected \"SVTPMHC1\"")
            }
            HostchanError::WrongVersion { found } => {
                write!(f, "host channel layout version {found}, expected 1")
            }
            HostchanError::RegionLenMismatch { found, expected } => write!(
                f,
                "host channel header says region_len {found:#x}, the region is {expected:#x} bytes"
            ),
            HostchanError::NotReady { waited_ms } => write!(
                f,
                "no host proxy is serving the host channel (waited {waited_ms} ms)"
            ),
            HostchanError::Timeout {
                kind,
                seq,
                waited_ms,
            } => write!(
                f,
                "no host response to {kind} request #{seq} within {waited_ms} ms"
            ),
            HostchanError::SeqMismatch { expected, found } => write!(
                f,
                "host rewrote the response while it was read: resp.seq {found}, expected {expected}"
            ),
            HostchanError::RequestIdMismatch { expected, found } => write!(
                f,
                "host response carries request id {found:#x}, expected {expected:#x} (stale or misrouted)"
            ),
            HostchanError::WrongResponseType { expected, found } => write!(
                f,
                "host response type {found:#06x}, expected {expected:#06x}"
            ),
            HostchanError::UnknownStatus(s) => write!(f, "host response status {s} is unknown"),
            HostchanError::OverArea { what, len, area } => write!(
                f,
                "{what} payload length {len} exceeds the {area}-byte payload area"
            ),
            HostchanError::ResponseTooLarge { kind, len, max } => write!(
                f,
                "host response to {kind} is {len} bytes, at most {max} accepted"
            ),
            HostchanError::ReservedNonZero(v) => {
                write!(f, "request reserved field is {v:#x}, must be 0")
            }
            HostchanError::Status { kind, status } => {
                write!(f, "host answered {kind} with status {status}")
            }
            HostchanError::Malformed { kind, what } => {
                write!(f, "host response to {kind} is malformed: {what}")
            }
            HostchanError::BadRequestPayload { kind, what } => {
                write!(f, "{kind} request payload is malformed: {what}")
            }
            HostchanError::VersionRefused { chosen } => write!(
                f,
                "host chose host channel version {chosen}, only version 1 was offered"
            ),
            HostchanError::Http(e) => write!(f, "host channel HTTP: {e}"),
        }
    }
}

impl core::error::Error for HostchanError {}

impl From<CodecError> for HostchanError {
    fn from(e: CodecError) -> Self {
        HostchanError::Http(e)
    }
}
