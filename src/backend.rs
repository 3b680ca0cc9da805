//! The seam between a TPM front end (the TIS and CRB register models, later the
//! SVSM vTPM protocol) and whatever executes TPM commands: the real engine in the
//! image and in most tests, a recording backend in unit tests of the front ends.

use alloc::vec::Vec;

/// Largest command or response any front end carries, in bytes.
///
/// The TIS FIFO and the SVSM protocol buffer are sized to this; the CRB data
/// buffer (0xF80 bytes) is smaller and limits CRB commands further.
pub const MAX_BUFFER_SIZE: usize = 4096;

/// Executes complete TPM commands on behalf of a front end.
pub trait TpmBackend {
    /// Executes one complete TPM command (header included) issued at
    /// `locality` (0..=4) and returns the complete response.
    ///
    /// A backend always answers: a malformed command gets a TPM error
    /// response, never a panic.
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8>;
}
