//! Framing between the CRB data buffer and the backend: how long the
//! command in the buffer is, and whether a response fits back into it.
//!
//! The command length comes from the `commandSize` field of the TPM header
//! (bytes 2..6, big endian), as the PTP says the TPM takes it. A size the
//! buffer cannot hold (below the 10-byte header or above the buffer) never
//! reaches the backend: the TPM answers it as TPM 2.0 Part 3 §5.2 asks of a
//! TPM whose hardware buffer disagrees with `commandSize`, with
//! `TPM_RC_COMMAND_SIZE`. This is an ordinary error response, not the
//! CRB fatal state (`CTRL_STS.tpmSts`), which the PTP reserves for a TPM that
//! needs a reset; QEMU's tpm-crb raises fatal for short commands instead.

use core::fmt;

/// Size of a TPM command or response header.
pub const HEADER_SIZE: usize = 10;
/// `TPM_ST_NO_SESSIONS`, the tag of every error response.
pub const ST_NO_SESSIONS: u16 = 0x8001;
/// `TPM_RC_COMMAND_SIZE`.
pub const RC_COMMAND_SIZE: u32 = 0x142;
/// `TPM_RC_FAILURE`.
pub const RC_FAILURE: u32 = 0x101;

/// Why a command or a response could not be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The header's `commandSize` is below the header size.
    CommandTooSmall(u32),
    /// The header's `commandSize` exceeds the data buffer.
    CommandTooLarge(u32),
    /// The backend answered with fewer bytes than a header.
    ResponseTooShort(usize),
    /// The backend's response does not fit into the data buffer.
    ResponseTooLarge(usize),
    /// The backend's response header disagrees with its length.
    ResponseSizeMismatch {
        /// `responseSize` from the header.
        header: u32,
        /// Bytes actually returned.
        len: usize,
    },
}

impl FrameError {
    /// The response code the guest sees instead of a response.
    pub fn response_code(&self) -> u32 {
        match self {
            FrameError::CommandTooSmall(_) | FrameError::CommandTooLarge(_) => RC_COMMAND_SIZE,
            _ => RC_FAILURE,
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::CommandTooSmall(n) => write!(f, "commandSize {n} below the header size"),
            FrameError::CommandTooLarge(n) => write!(f, "commandSize {n} exceeds the data buffer"),
            FrameError::ResponseTooShort(n) => write!(f, "backend response of {n} bytes"),
            FrameError::ResponseTooLarge(n) => {
                write!(f, "backend response of {n} bytes exceeds the data buffer")
            }
            FrameError::ResponseSizeMismatch { header, len } => {
                write!(f, "backend response header says {header} bytes, got {len}")
            }
        }
    }
}

impl core::error::Error for FrameError {}

/// The length of the command held in `buffer`, from its header.
pub fn command_len(buffer: &[u8]) -> Result<usize, FrameError> {
    let size = match buffer.get(2..6) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => return Err(FrameError::CommandTooLarge(0)),
    };
    if (size as usize) < HEADER_SIZE {
        Err(FrameError::CommandTooSmall(size))
    } else if size as usize > buffer.len() {
        Err(FrameError::CommandTooLarge(size))
    } else {
        Ok(size as usize)
    }
}

/// Checks that `response` is a whole TPM response that fits `capacity`.
pub fn check_response(response: &[u8], capacity: usize) -> Result<(), FrameError> {
    if response.len() < HEADER_SIZE {
        return Err(FrameError::ResponseTooShort(response.len()));
    }
    if response.len() > capacity {
        return Err(FrameError::ResponseTooLarge(response.len()));
    }
    let header = u32::from_be_bytes([response[2], response[3], response[4], response[5]]);
    if header as usize != response.len() {
        return Err(FrameError::ResponseSizeMismatch {
            header,
            len: response.len(),
        });
    }
    Ok(())
}

/// A header-only error response carrying `rc`.
pub fn error_response(rc: u32) -> [u8; HEADER_SIZE] {
    let mut r = [0u8; HEADER_SIZE];
    r[0..2].copy_from_slice(&ST_NO_SESSIONS.to_be_bytes());
    r[2..6].copy_from_slice(&(HEADER_SIZE as u32).to_be_bytes());
    r[6..10].copy_from_slice(&rc.to_be_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_size(size: u32, buf_len: usize) -> std::vec::Vec<u8> {
        let mut b = std::vec![0u8; buf_len];
        b[0] = 0x80;
        b[1] = 0x01;
        b[2..6].copy_from_slice(&size.to_be_bytes());
        b
    }

    #[test]
    fn command_len_from_header() {
        assert_eq!(command_len(&with_size(12, 64)), Ok(12));
        assert_eq!(command_len(&with_size(10, 64)), Ok(10));
        assert_eq!(command_len(&with_size(64, 64)), Ok(64));
    }

    #[test]
    fn command_len_rejects_sizes_outside_the_buffer() {
        assert_eq!(
            command_len(&with_size(9, 64)),
            Err(FrameError::CommandTooSmall(9))
        );
        assert_eq!(
            command_len(&with_size(0, 64)),
            Err(FrameError::CommandTooSmall(0))
        );
        assert_eq!(
            command_len(&with_size(65, 64)),
            Err(FrameError::CommandTooLarge(65))
        );
        assert_eq!(
            command_len(&with_size(u32::MAX, 64)),
            Err(FrameError::CommandTooLarge(u32::MAX))
        );
        assert!(command_len(&[0x80, 0x01, 0]).is_err(), "buffer too short");
    }

    #[test]
    fn response_checks() {
        assert_eq!(check_response(&with_size(10, 10), 64), Ok(()));
        assert_eq!(
            check_response(&[0; 9], 64),
            Err(FrameError::ResponseTooShort(9))
        );
        assert_eq!(
            check_response(&with_size(65, 65), 64),
            Err(FrameError::ResponseTooLarge(65))
        );
        assert_eq!(
            check_response(&with_size(12, 10), 64),
            Err(FrameError::ResponseSizeMismatch {
                header: 12,
                len: 10
            })
        );
    }

    #[test]
    fn error_response_layout() {
        assert_eq!(
            error_response(RC_COMMAND_SIZE),
            [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x42]
        );
        assert_eq!(FrameError::CommandTooLarge(5000).response_code(), 0x142);
        assert_eq!(FrameError::ResponseTooShort(0).response_code(), 0x101);
    }
}
