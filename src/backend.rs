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

/// A TPM MMIO interface (TIS/FIFO or CRB) seen as a register file.
///
/// `offset` is relative to the interface base (0xFED40000) and covers all five
/// localities (0..0x5000); `size` is the access width in bytes (1, 2, 4 or 8).
/// Implementations are pure state machines: they never panic on any offset,
/// width or value, and give the spec-defined answer to accesses they do not
/// support (reads of unimplemented space return all-ones, writes are dropped).
pub trait TpmMmio {
    /// A guest read of `size` bytes at `offset`; the value is zero-extended.
    fn read(&mut self, offset: u64, size: u8) -> u64;

    /// A guest write of the low `size` bytes of `value` at `offset`. A write
    /// that starts a command (TIS tpmGo, CRB START) runs it on `backend`
    /// before returning.
    fn write(&mut self, backend: &mut dyn TpmBackend, offset: u64, size: u8, value: u64);
}
