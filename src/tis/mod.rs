//! The TPM FIFO interface (TIS 1.3 / TCG PC Client Platform TPM Profile for
//! TPM 2.0, "FIFO Interface") as a pure register model.
//!
//! Specification: the PTP's FIFO interface chapter (section 6 of the PTP
//! 1.0x revisions, as the Linux cr50 binding cites it; chapter 5 of revision
//! 00.43, as edk2's `TpmPtp.h` cites it) — its register space table, the
//! `TPM_ACCESS_x`, `TPM_STS_x`, interrupt, `TPM_INTF_CAPABILITY_x` and
//! `TPM_INTERFACE_ID_x` register definitions, locality arbitration and the
//! FIFO state transitions. Where the text leaves room, QEMU's tpm-tis
//! (hw/tpm/tpm_tis_common.c), which every distribution's guests are tested
//! against, is the behavioural reference; the few places this model differs
//! from it are named below.
//!
//! Implements, for the five localities at `0xFED40000 + l * 0x1000`:
//! - the FIFO register space and identification registers
//!   (`TPM_ACCESS_x`, `TPM_INT_ENABLE_x`, `TPM_INT_VECTOR_x`,
//!   `TPM_INT_STATUS_x`, `TPM_INTF_CAPABILITY_x`, `TPM_STS_x`,
//!   `TPM_DATA_FIFO_x`, `TPM_INTERFACE_ID_x`, `TPM_XDATA_FIFO_x`,
//!   `TPM_DID_VID_x`, `TPM_RID_x`): [`regs`];
//! - locality arbitration (PTP "Locality" and `TPM_ACCESS_x`): [`locality`];
//! - the FIFO state machine and `TPM_STS_x` semantics (PTP FIFO interface
//!   state transitions): [`fifo`];
//! - the interrupt registers, without an interrupt line: [`interrupt`].
//!
//! Not modelled: the locality-4 `_TPM_Hash_Start/Data/End` interface (a
//! hardware-only DRTM path; its addresses behave as ordinary locality-4
//! registers or reserved space) and the TIS 1.2 legacy I/O-port aliases.
//!
//! # Access model
//! Every access is split into its bytes, in ascending address order, and
//! each byte goes to the register holding it. Reads of registers without
//! read side effects are therefore the same at every width and alignment
//! (Linux reads STS with 32-bit loads, edk2 reads burstCount as two byte
//! reads at 0x19 and 0x1A, and both see the same count); FIFO bytes are
//! consumed or appended one at a time, so 1-, 2-, 4- and 8-byte FIFO
//! accesses move that many bytes, and an access spilling past the FIFO
//! window reaches whatever lies beyond it.
//!
//! Rules for input the specification does not make useful, all checked by
//! the unit tests:
//! - Offsets outside the window, reserved and unimplemented bytes read 0xFF;
//!   writes to them are dropped (the [`TpmMmio`] contract). Reserved bits
//!   inside a register read 0: `TPM_STS_x` bits 0, 1 and 5 (which Linux
//!   checks as `TPM_STS_READ_ZERO`), bits 31:28 and the write-only bits
//!   24/25.
//! - Widths other than 1, 2, 4 and 8 read all-ones and write nothing, with
//!   no side effect.
//! - `TPM_STS_x` and the FIFO read 0xFF from a locality that is not active
//!   (as in QEMU's tpm-tis and as Linux expects: "the read is returning 0xff
//!   because the locality hasn't been acquired"); all writes other than to
//!   `TPM_ACCESS_x` and `TPM_INTERFACE_ID_x.IntfSelLock` from a non-active
//!   locality are dropped. The identification registers, `TPM_ACCESS_x` and
//!   the interrupt registers read the same from any locality (Linux reads
//!   `TPM_INT_ENABLE` before it requests a locality).
//! - A `TPM_STS_x` status byte write acts only if exactly one of
//!   commandReady, tpmGo and responseRetry is set (QEMU's rule); tpmGo in
//!   any state but Reception with Expect = 0 is ignored; responseRetry
//!   outside Completion is ignored; commandCancel is always ignored (see
//!   [`fifo`]); resetEstablishment acts from localities 3 and 4 only.
//! - Any change of the active locality (release, grant, seize) drops the
//!   command or response in flight and returns the interface to Idle, so
//!   one locality never reads another's response.
//! - `selfTestDone` is set once a TPM2_SelfTest returns TPM_RC_SUCCESS and
//!   stays set until reset, in every locality.
//! - Commands may be sent from any locality, 4 included (QEMU drops all
//!   locality-4 writes): which locality pages a guest may reach is the
//!   platform's decision, not this model's. The locality a command was sent
//!   from goes to the backend with it.
//! - `stsValid` always reads 1 in the active locality: execution is
//!   synchronous, so `Expect` and `dataAvail` are always valid (QEMU shows
//!   it only in Reception and Completion).
//! - burstCount is never clamped for byte reads (QEMU reports at most 0xFF
//!   to a 1-byte read outside Completion): every width reads the same count.
//!
//! Identification: VID 0x1014, DID 0x5356, RID 1 (see [`regs::VID`]);
//! `TPM_INTERFACE_ID` = FIFO type 0, version 0, CapFIFO, CapLocality and
//! `TPM_INTF_CAPABILITY.InterfaceVersion` = 3 — exactly what edk2's
//! `Tpm2GetPtpInterface` requires to choose its FIFO path.

pub mod fifo;
pub mod interrupt;
pub mod locality;
pub mod regs;

#[cfg(test)]
mod tests;

use crate::backend::{TpmBackend, TpmMmio};
use fifo::Fifo;
use interrupt::Interrupts;
use locality::Arbiter;
use regs::{byte_of, decode, Int, Reg, Sts, FLOAT_BYTE};

pub use fifo::State;

/// All-ones of `size` bytes (saturating at 8 bytes).
fn ones(size: u8) -> u64 {
    match size {
        0 => 0,
        1..=7 => (1u64 << (u32::from(size) * 8)) - 1,
        _ => u64::MAX,
    }
}

/// The TPM FIFO interface of one TPM: all five localities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tis {
    arbiter: Arbiter,
    fifo: Fifo,
    irq: Interrupts,
    /// `TPM_INTERFACE_ID_x.IntfSelLock` has been written.
    interface_locked: bool,
}

impl Default for Tis {
    fn default() -> Self {
        Self::new()
    }
}

impl Tis {
    /// The interface after reset, with no dynamic root of trust established
    /// (`TPM_ACCESS_x.tpmEstablishment` reads 1).
    pub fn new() -> Self {
        Self::with_established(false)
    }

    /// The interface after reset, mirroring the engine's persistent
    /// `tpmEstablished` flag.
    pub fn with_established(established: bool) -> Self {
        Self {
            arbiter: Arbiter::new(established),
            fifo: Fifo::new(),
            irq: Interrupts::new(),
            interface_locked: false,
        }
    }

    /// The active locality, if any.
    pub fn active_locality(&self) -> Option<u8> {
        self.arbiter.active()
    }

    /// The FIFO state (for diagnostics and tests).
    pub fn state(&self) -> State {
        self.fifo.state()
    }

    /// Whether a dynamic root of trust is recorded as established.
    pub fn established(&self) -> bool {
        self.arbiter.established()
    }

    /// `TPM_INTERFACE_ID_x`.
    fn interface_id(&self) -> u32 {
        let lock = if self.interface_locked {
            regs::IFACE_SEL_LOCK
        } else {
            0
        };
        regs::INTERFACE_ID_VALUE | lock
    }

    /// One byte read at `offset`.
    fn read_byte(&mut self, offset: u64) -> u8 {
        let Some(addr) = decode(offset) else {
            return FLOAT_BYTE;
        };
        let l = addr.locality;
        let active = self.arbiter.is_active(l);
        match addr.reg {
            Reg::Access => self.arbiter.read(l),
            Reg::IntEnable(n) => byte_of(self.irq.enable(l), n),
            Reg::IntVector => self.irq.vector(),
            Reg::IntStatus(n) => byte_of(self.irq.status(l), n),
            Reg::IntfCapability(n) => byte_of(regs::INTF_CAPABILITY_VALUE, n),
            Reg::Sts(n) if active => byte_of(self.fifo.sts(), n),
            Reg::Fifo if active => {
                let (byte, events) = self.fifo.read_byte();
                self.irq.raise(l, events);
                byte
            }
            Reg::InterfaceId(n) => byte_of(self.interface_id(), n),
            Reg::DidVid(n) => byte_of((u32::from(regs::DID) << 16) | u32::from(regs::VID), n),
            Reg::Rid => regs::RID_VALUE,
            Reg::Sts(_) | Reg::Fifo | Reg::None => FLOAT_BYTE,
        }
    }

    /// One byte written at `offset`.
    fn write_byte(&mut self, backend: &mut dyn TpmBackend, offset: u64, byte: u8) {
        let Some(addr) = decode(offset) else {
            return;
        };
        let l = addr.locality;
        match addr.reg {
            Reg::Access => {
                if self.arbiter.write(l, byte) {
                    self.fifo.abort();
                    if let Some(new) = self.arbiter.active() {
                        self.irq.raise(new, Int::LOCALITY_CHANGE);
                    }
                }
            }
            Reg::InterfaceId(n) => {
                if regs::with_byte(0, n, byte) & regs::IFACE_SEL_LOCK != 0 {
                    self.interface_locked = true;
                }
            }
            _ if !self.arbiter.is_active(l) => {}
            Reg::IntEnable(n) => self.irq.write_enable_byte(l, n, byte),
            Reg::IntVector => self.irq.write_vector(byte),
            Reg::IntStatus(n) => self.irq.clear_status_byte(l, n, byte),
            Reg::Sts(0) => self.write_sts_control(backend, l, byte),
            Reg::Sts(3) => {
                let bits = Sts::from_bits_truncate(regs::with_byte(0, 3, byte));
                if bits.contains(Sts::RESET_ESTABLISHMENT) {
                    self.arbiter.reset_establishment(l);
                }
                // commandCancel: nothing ever executes asynchronously.
            }
            Reg::Fifo => {
                let events = self.fifo.write_byte(byte);
                self.irq.raise(l, events);
            }
            Reg::IntfCapability(_) | Reg::Sts(_) | Reg::DidVid(_) | Reg::Rid | Reg::None => {}
        }
    }

    /// A write to the `TPM_STS_x` status byte from the active locality `l`.
    fn write_sts_control(&mut self, backend: &mut dyn TpmBackend, l: u8, byte: u8) {
        let control = Sts::COMMAND_READY | Sts::TPM_GO | Sts::RESPONSE_RETRY;
        let bits = Sts::from_bits_truncate(u32::from(byte)) & control;
        let events = if bits == Sts::COMMAND_READY {
            self.fifo.command_ready()
        } else if bits == Sts::TPM_GO {
            self.fifo.go(backend, l)
        } else if bits == Sts::RESPONSE_RETRY {
            self.fifo.response_retry()
        } else {
            Int::empty()
        };
        self.irq.raise(l, events);
    }
}

impl TpmMmio for Tis {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return ones(size);
        }
        let mut value = 0u64;
        for i in 0..size {
            let byte = match offset.checked_add(u64::from(i)) {
                Some(o) => self.read_byte(o),
                None => FLOAT_BYTE,
            };
            value |= u64::from(byte) << (u32::from(i) * 8);
        }
        value
    }

    fn write(&mut self, backend: &mut dyn TpmBackend, offset: u64, size: u8, value: u64) {
        if !matches!(size, 1 | 2 | 4 | 8) {
            return;
        }
        for (i, byte) in value
            .to_le_bytes()
            .into_iter()
            .take(usize::from(size))
            .enumerate()
        {
            // i < 8, so the conversion is lossless.
            if let Some(o) = offset.checked_add(i as u64) {
                self.write_byte(backend, o, byte);
            }
        }
    }
}
