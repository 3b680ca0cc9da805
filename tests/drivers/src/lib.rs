//! Models of unmodified guest TPM drivers.
//!
//! Real guests reach the TPM through MMIO register accesses: every access is a
//! VM exit in production, so how many accesses a driver makes, of which width,
//! and in which order, is what the register models (`svtpm::tis`,
//! `svtpm::crb`) must get right. The drivers here replay what Linux does, access
//! by access, against any [`TpmMmio`] register model:
//!
//! - [`LinuxTis`]: `drivers/char/tpm/tpm_tis_core.c` in polling mode.
//! - [`LinuxCrb`]: `drivers/char/tpm/tpm_crb.c` with the CRB start method.
//!
//! A [`Bus`] carries the accesses to the model and counts them. Every wait is a
//! bounded poll: a register model that never becomes ready yields
//! [`DriverError::Timeout`], never a hang.
//!
//! The simulator (`svtpm-sim`), the benchmarks and the integration tests all push
//! their commands through these drivers.

mod bus;
mod crb;
mod error;
mod tis;

pub use bus::{Access, AccessCounts, AccessKind, Bus};
pub use crb::{CopyMode, CrbProbe, LinuxCrb};
pub use error::DriverError;
pub use svtpm::backend::{TpmBackend, TpmMmio, MAX_BUFFER_SIZE};
pub use tis::{LinuxTis, TisProbe};

/// Size of a TPM command or response header (tag, size, code).
pub const TPM_HEADER_SIZE: usize = 10;

/// Refuses what no driver sends: a locality beyond 4, or a command shorter
/// than a header or larger than the interface's `max` bytes.
pub(crate) fn check_request(locality: u8, command: &[u8], max: usize) -> Result<(), DriverError> {
    if locality > 4 {
        return Err(DriverError::BadLocality(locality));
    }
    if command.len() < TPM_HEADER_SIZE || command.len() > max {
        return Err(DriverError::BadCommand {
            len: command.len(),
            max,
        });
    }
    Ok(())
}

/// Default bound on every polling loop, in register reads.
///
/// The register models complete synchronously, so a healthy model needs one
/// or two polls; this bound only limits how long a broken model is polled.
pub const DEFAULT_MAX_POLLS: u32 = 10_000;

/// A guest TPM driver: moves one complete command to the TPM through the
/// register interface and brings back the complete response.
pub trait Driver {
    /// Sends `command` at `locality` and returns the response, doing every
    /// register access a real driver would do for one `/dev/tpm0` write+read:
    /// take the locality, (wake the TPM,) send, start, wait, receive,
    /// (idle the TPM,) release the locality.
    fn transact(
        &mut self,
        bus: &mut Bus<'_>,
        locality: u8,
        command: &[u8],
    ) -> Result<Vec<u8>, DriverError>;
}

/// Reads the big-endian size field of a TPM header, if `header` holds one.
fn header_size(header: &[u8]) -> Option<usize> {
    let b = header.get(2..6)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}
