//! TPM 2.0 response headers the engine makes itself, for commands it refuses
//! before (or instead of) libtpms answering, and the check that a response
//! libtpms produced is well formed.

use alloc::vec::Vec;

/// `TPM_ST_NO_SESSIONS`: the tag of every error response.
pub const ST_NO_SESSIONS: u16 = 0x8001;
/// Size of a command or response header (tag, size, code).
pub const HEADER_SIZE: usize = 10;
/// `TPM_RC_FAILURE`: the TPM could not run the command.
pub const RC_FAILURE: u32 = 0x101;
/// `TPM_RC_COMMAND_SIZE`: the command is larger than the TPM accepts.
pub const RC_COMMAND_SIZE: u32 = 0x142;

/// A header-only response carrying `rc`.
pub fn error_response(rc: u32) -> Vec<u8> {
    let mut r = Vec::with_capacity(HEADER_SIZE);
    r.extend_from_slice(&ST_NO_SESSIONS.to_be_bytes());
    r.extend_from_slice(&(HEADER_SIZE as u32).to_be_bytes());
    r.extend_from_slice(&rc.to_be_bytes());
    r
}

/// Whether `resp` is at least a header and its size field equals its length.
pub fn is_well_formed(resp: &[u8]) -> bool {
    match resp.get(2..6) {
        Some(size) if resp.len() >= HEADER_SIZE => {
            let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
            usize::try_from(size).is_ok_and(|s| s == resp.len())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_layout() {
        assert_eq!(
            error_response(RC_COMMAND_SIZE),
            [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x42]
        );
        assert!(is_well_formed(&error_response(RC_FAILURE)));
    }

    #[test]
    fn well_formed_checks_size_field() {
        assert!(!is_well_formed(&[]));
        assert!(!is_well_formed(&[0x80, 0x01, 0, 0, 0, 9, 0, 0, 0]));
        assert!(!is_well_formed(&[0x80, 0x01, 0, 0, 0, 11, 0, 0, 0, 0]));
        assert!(is_well_formed(&[0x80, 0x01, 0, 0, 0, 11, 0, 0, 0, 0, 7]));
    }
}
