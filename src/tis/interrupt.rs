//! `TPM_INT_ENABLE_x`, `TPM_INT_STATUS_x` and `TPM_INT_VECTOR_x` (PTP, the
//! interrupt register definitions).
//!
//! This TPM has no interrupt line: guests poll (Linux does by default since
//! 6.5). The registers still behave as specified so a driver that probes
//! interrupts sees consistent state and falls back to polling:
//! - an event sets its `TPM_INT_STATUS_x` bit in the locality where it
//!   happened when `globalIntEnable` and the event's enable bit are both set
//!   (an interrupt "occurred", as in QEMU's tpm-tis);
//! - status bits are cleared by writing 1 to them;
//! - `TPM_INT_ENABLE_x` keeps only its defined bits (31, 7, 4:3, 2:0) and
//!   resets to active-low level polarity, the one advertised;
//! - `TPM_INT_VECTOR_x.sirqVec` (bits 3:0) is read/write and shared by all
//!   localities; it resets to 0, "no interrupt assigned".

use super::regs::{
    with_byte, Int, INT_ENABLE_WRITABLE, INT_GLOBAL_ENABLE, INT_POLARITY_LOW_LEVEL,
    INT_VECTOR_MASK, LOCALITY_COUNT,
};

/// Number of localities as an array length.
const N: usize = LOCALITY_COUNT as usize;

/// The interrupt registers of all localities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupts {
    /// `TPM_INT_ENABLE_x` per locality.
    enable: [u32; N],
    /// `TPM_INT_STATUS_x` per locality.
    status: [u32; N],
    /// `TPM_INT_VECTOR_x.sirqVec`.
    vector: u8,
}

impl Default for Interrupts {
    fn default() -> Self {
        Self::new()
    }
}

impl Interrupts {
    /// The state after reset.
    pub fn new() -> Self {
        Self {
            enable: [INT_POLARITY_LOW_LEVEL; N],
            status: [0; N],
            vector: 0,
        }
    }

    /// `TPM_INT_ENABLE_x` of `locality` (0 for an invalid locality).
    pub fn enable(&self, locality: u8) -> u32 {
        self.enable.get(usize::from(locality)).copied().unwrap_or(0)
    }

    /// `TPM_INT_STATUS_x` of `locality` (0 for an invalid locality).
    pub fn status(&self, locality: u8) -> u32 {
        self.status.get(usize::from(locality)).copied().unwrap_or(0)
    }

    /// `TPM_INT_VECTOR_x`.
    pub fn vector(&self) -> u8 {
        self.vector
    }

    /// Writes byte `n` of `TPM_INT_ENABLE_x`.
    pub fn write_enable_byte(&mut self, locality: u8, n: u8, byte: u8) {
        if let Some(e) = self.enable.get_mut(usize::from(locality)) {
            *e = with_byte(*e, n, byte) & INT_ENABLE_WRITABLE;
        }
    }

    /// Writes byte `n` of `TPM_INT_STATUS_x`: each 1 clears that bit.
    pub fn clear_status_byte(&mut self, locality: u8, n: u8, byte: u8) {
        if let Some(s) = self.status.get_mut(usize::from(locality)) {
            *s &= !with_byte(0, n, byte);
        }
    }

    /// Writes `TPM_INT_VECTOR_x`.
    pub fn write_vector(&mut self, byte: u8) {
        self.vector = byte & INT_VECTOR_MASK;
    }

    /// Records `events` that happened in `locality`.
    pub fn raise(&mut self, locality: u8, events: Int) {
        let i = usize::from(locality);
        let (Some(e), Some(s)) = (self.enable.get(i), self.status.get_mut(i)) else {
            return;
        };
        if e & INT_GLOBAL_ENABLE != 0 {
            *s |= events.bits() & e;
        }
    }
}
