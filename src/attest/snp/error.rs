//! [`SnpError`]: every reason an SNP guest message, attestation report or
//! report signature is refused. One enum for the whole `snp` module, so a
//! caller (and a log line) names the exact check that failed.

use core::fmt;

/// A failure of the guest request transport (the GHCB guest request exit on
/// SNP, the host channel on the SVM platform), as the transport reports it:
/// for the GHCB this is `SW_EXITINFO2`, for the host channel its status word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportError {
    /// The transport's own error code; never 0.
    pub code: u64,
}

/// Why an SNP message, report or signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnpError {
    // --- messenger state ---
    /// The VMPCK is all zero: never provisioned, or wiped after a failure.
    VmpckEmpty,
    /// A VMPCK index other than 0..=3.
    VmpckId(u8),
    /// The messenger wiped its VMPCK after an earlier failure and refuses
    /// every further message (as Linux's sev-guest driver does).
    Disabled,
    /// A request was sealed and its response not yet opened.
    RequestPending,
    /// A response was offered with no request outstanding.
    NoRequestPending,
    /// Sequence number 0, or the next one would not fit in 64 bits.
    SeqnoExhausted,
    /// The request payload does not fit in one message page.
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// Largest payload a message page holds.
        max: usize,
    },
    /// A caller-provided output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes provided.
        have: usize,
    },
    /// The transport failed after the request was handed to it.
    Transport(TransportError),

    // --- response header (every field the host can rewrite) ---
    /// The response is shorter than a message header.
    ResponseTruncated {
        /// Bytes received.
        len: usize,
    },
    /// `HDR_SIZE` is not 0x60.
    HeaderSize(u16),
    /// `HDR_VERSION` is not 1.
    HeaderVersion(u8),
    /// `ALGO` is not AES-256-GCM.
    Algorithm(u8),
    /// `MSG_TYPE` is not the request's type + 1.
    MsgType {
        /// Type expected.
        expected: u8,
        /// Type found.
        found: u8,
    },
    /// `MSG_VERSION` differs from the request's.
    MsgVersion {
        /// Version expected.
        expected: u8,
        /// Version found.
        found: u8,
    },
    /// `MSG_VMPCK` differs from the key that sealed the request.
    VmpckMismatch {
        /// VMPCK index expected.
        expected: u8,
        /// VMPCK index found.
        found: u8,
    },
    /// `MSG_SEQNO` is ahead of or otherwise not the request's + 1.
    Seqno {
        /// Sequence number expected.
        expected: u64,
        /// Sequence number found.
        found: u64,
    },
    /// `MSG_SEQNO` is older than expected: a response replayed from an
    /// earlier exchange.
    Replayed {
        /// The stale sequence number.
        found: u64,
    },
    /// A reserved header byte covered by the AAD is not zero.
    ReservedNonZero {
        /// Offset of the first such byte in the header.
        offset: usize,
    },
    /// `MSG_SIZE` is larger than the message page or the caller's buffer.
    MsgSize {
        /// Size claimed.
        size: usize,
        /// Largest size accepted.
        max: usize,
    },
    /// AES-GCM authentication failed: the ciphertext, the tag or an
    /// authenticated header byte was changed, or the key is wrong.
    Authentication,

    // --- decrypted payloads ---
    /// The decrypted payload is shorter or longer than its layout.
    PayloadLength {
        /// Length found.
        len: usize,
        /// Length expected.
        expected: usize,
    },
    /// The firmware refused the report request (`MSG_REPORT_RSP.STATUS`).
    ReportStatus(u32),
    /// `MSG_REPORT_RSP.REPORT_SIZE` is not the report's size or exceeds
    /// the payload.
    ReportSize(u32),

    // --- attestation report ---
    /// A report buffer is not exactly one report long.
    ReportLength {
        /// Length found.
        len: usize,
    },
    /// A report version this code does not know the layout of.
    ReportVersion(u32),
    /// `SIGNATURE_ALGO` is not ECDSA P-384 with SHA-384.
    SignatureAlgorithm(u32),
    /// The signature's r or s is not a valid P-384 scalar, or the bytes
    /// past it are not zero.
    SignatureEncoding,
    /// The signature does not verify under the given key.
    SignatureInvalid,
    /// The public key is not a valid P-384 point.
    PublicKey,
    /// A report_data digest longer than 64 bytes.
    ReportDataLength(usize),

    // --- secrets page ---
    /// A secrets page image that is not exactly one page.
    SecretsPageLength {
        /// Length found.
        len: usize,
    },
}

impl fmt::Display for SnpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnpError::VmpckEmpty => write!(f, "VMPCK is empty (not provisioned or wiped)"),
            SnpError::VmpckId(id) => write!(f, "VMPCK index {id} is not 0..=3"),
            SnpError::Disabled => write!(f, "guest messaging disabled after an earlier failure"),
            SnpError::RequestPending => write!(f, "a request is still waiting for its response"),
            SnpError::NoRequestPending => write!(f, "no request is waiting for a response"),
            SnpError::SeqnoExhausted => write!(f, "message sequence numbers exhausted"),
            SnpError::PayloadTooLarge { len, max } => {
                write!(
                    f,
                    "payload of {len} bytes exceeds the {max}-byte message page"
                )
            }
            SnpError::BufferTooSmall { needed, have } => {
                write!(f, "buffer of {have} bytes, {needed} needed")
            }
            SnpError::Transport(e) => write!(f, "guest request transport failed: {:#x}", e.code),
            SnpError::ResponseTruncated { len } => {
                write!(f, "response of {len} bytes is shorter than its header")
            }
            SnpError::HeaderSize(s) => write!(f, "response HDR_SIZE {s:#x}, expected 0x60"),
            SnpError::HeaderVersion(v) => write!(f, "response HDR_VERSION {v}, expected 1"),
            SnpError::Algorithm(a) => write!(f, "response ALGO {a}, expected 1 (AES-256-GCM)"),
            SnpError::MsgType { expected, found } => {
                write!(f, "response MSG_TYPE {found}, expected {expected}")
            }
            SnpError::MsgVersion { expected, found } => {
                write!(f, "response MSG_VERSION {found}, expected {expected}")
            }
            SnpError::VmpckMismatch { expected, found } => {
                write!(f, "response MSG_VMPCK {found}, expected {expected}")
            }
            SnpError::Seqno { expected, found } => {
                write!(f, "response MSG_SEQNO {found}, expected {expected}")
            }
            SnpError::Replayed { found } => {
                write!(
                    f,
                    "response MSG_SEQNO {found} is from an earlier exchange (replay)"
                )
            }
            SnpError::ReservedNonZero { offset } => {
                write!(
                    f,
                    "reserved response header byte at {offset:#x} is not zero"
                )
            }
            SnpError::MsgSize { size, max } => {
                write!(f, "response MSG_SIZE {size} exceeds {max}")
            }
            SnpError::Authentication => write!(f, "response failed AES-GCM authentication"),
            SnpError::PayloadLength { len, expected } => {
                write!(f, "payload of {len} bytes, expected {expected}")
            }
            SnpError::ReportStatus(s) => write!(f, "firmware refused the report: status {s:#x}"),
            SnpError::ReportSize(s) => write!(f, "report response REPORT_SIZE {s:#x} invalid"),
            SnpError::ReportLength { len } => {
                write!(f, "report of {len} bytes, expected 0x4a0")
            }
            SnpError::ReportVersion(v) => write!(f, "unknown attestation report version {v}"),
            SnpError::SignatureAlgorithm(a) => {
                write!(
                    f,
                    "report signature algorithm {a}, expected 1 (ECDSA P-384)"
                )
            }
            SnpError::SignatureEncoding => write!(f, "report signature is malformed"),
            SnpError::SignatureInvalid => write!(f, "report signature does not verify"),
            SnpError::PublicKey => write!(f, "not a valid P-384 public key"),
            SnpError::ReportDataLength(len) => {
                write!(f, "report_data digest of {len} bytes exceeds 64")
            }
            SnpError::SecretsPageLength { len } => {
                write!(f, "secrets page image of {len} bytes, expected 4096")
            }
        }
    }
}

impl core::error::Error for SnpError {}
