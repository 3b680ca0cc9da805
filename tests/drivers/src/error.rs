//! The one error type of the driver models.

use std::fmt;

/// Why a driver model gave up on a command, in the terms the Linux driver
/// would use (`-ETIME`, `-EIO`, `-E2BIG`, `-ENODEV`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverError {
    /// A bounded poll ran out: the register model never reached the state
    /// the driver waited for (`-ETIME`). `last` is the last value read.
    Timeout {
        /// What the driver was waiting for.
        what: &'static str,
        /// The last value read from the polled register.
        last: u64,
    },
    /// The register model answered in a way the driver treats as a transfer
    /// error (`-EIO`), e.g. Expect not set while bytes remain.
    Protocol {
        /// What was wrong.
        what: &'static str,
        /// The register value that showed it.
        value: u64,
    },
    /// No usable TPM interface at this address (`-ENODEV`).
    NoDevice {
        /// What the probe saw.
        what: &'static str,
        /// The register value that showed it.
        value: u64,
    },
    /// The command does not fit the interface (`-E2BIG`) or is shorter than a
    /// TPM header.
    BadCommand {
        /// Length of the command.
        len: usize,
        /// Largest length the interface takes.
        max: usize,
    },
    /// The response header announced a size the driver refuses (`-EIO`).
    BadResponseSize {
        /// The size in the response header.
        size: usize,
        /// The driver's buffer size.
        max: usize,
    },
    /// CRB CTRL_STS.tpmSts (fatal error) was set after a command.
    Fatal {
        /// The CTRL_STS value.
        ctrl_sts: u32,
    },
    /// The TPM reported the request as cancelled while it was waited for.
    Canceled,
    /// Locality outside 0..=4.
    BadLocality(u8),
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { what, last } => {
                write!(f, "timed out waiting for {what} (last read {last:#x})")
            }
            Self::Protocol { what, value } => {
                write!(f, "transfer error: {what} (register {value:#x})")
            }
            Self::NoDevice { what, value } => write!(f, "no TPM: {what} ({value:#x})"),
            Self::BadCommand { len, max } => {
                write!(f, "command of {len} bytes does not fit (10..={max})")
            }
            Self::BadResponseSize { size, max } => {
                write!(f, "response header announces {size} bytes (10..={max})")
            }
            Self::Fatal { ctrl_sts } => {
                write!(f, "TPM reports a fatal error (CTRL_STS {ctrl_sts:#x})")
            }
            Self::Canceled => write!(f, "command canceled"),
            Self::BadLocality(l) => write!(f, "locality {l} out of range 0..=4"),
        }
    }
}

impl std::error::Error for DriverError {}
