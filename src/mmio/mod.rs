//! Emulation of guest instructions that touch the intercepted TPM MMIO window.
//!
//! On the svm platform the hypervisor intercepts only the TPM pages through
//! nested page faults. QEMU's SVM has neither decode assists nor NRIP save, so
//! an exit reports just the faulting guest-physical address and a RIP that
//! points *at* the faulting instruction. This module is the pure part of
//! handling such an exit, with no hardware access:
//!
//! - [`walk`]: guest linear -> guest physical translation through the guest's
//!   own page tables (all x86 paging modes) and instruction fetch;
//! - [`decode`](mod@decode): decoder for the instruction forms drivers use on MMIO
//!   (the same set as Linux's own MMIO decoder);
//! - [`emulate`](mod@emulate): performs a decoded instruction against the device and guest
//!   memory and updates the guest registers;
//! - [`regs`]: the guest register file and execution-mode state.
//!
//! [`handle_mmio_exit`] ties them together for one exit. Every failure is an
//! [`MmioError`]; [`MmioError::exception`] says which exception (if any) the
//! hypervisor should inject instead of crashing.

pub mod decode;
pub mod emulate;
pub mod regs;
pub mod walk;

#[cfg(test)]
mod tests;

pub use decode::{decode, Extend, Instruction, MemOperand, Operation, Source, MAX_INSTRUCTION_LEN};
pub use emulate::{emulate, Completion, Emulator, MmioBus, MmioWindow};
pub use regs::{CodeSize, GuestRegs, GuestState, RegOperand, SegReg, Segment, Segments};
pub use walk::{fetch_instruction, Access, AccessKind, GuestMemory, MemoryError, Paging};

/// Why an MMIO exit could not be emulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// The guest page tables do not permit the access to `linear`: the guest
    /// gets #PF with this error code and CR2 = `linear`.
    PageFault {
        /// Faulting linear address (for CR2).
        linear: u64,
        /// x86 page-fault error code (P, W, U, RSVD, I/D bits).
        error_code: u32,
    },
    /// A 64-bit-mode linear address is not canonical (#GP(0)).
    NonCanonical {
        /// The offending address.
        linear: u64,
    },
    /// Guest-physical memory at `gpa` (a page-table entry or the RAM side of a
    /// string operation) is not guest RAM.
    GuestMemory {
        /// The guest-physical address that could not be accessed.
        gpa: u64,
    },
    /// The byte buffer ended before the instruction did.
    Truncated,
    /// The instruction would be longer than 15 bytes (#GP(0)).
    TooLong,
    /// A LOCK prefix, which is invalid on every supported form (#UD).
    Lock,
    /// An opcode outside the supported set. `opcode` is the primary opcode,
    /// with 0x0F00 added for two-byte opcodes.
    Unsupported {
        /// The opcode that was not recognised.
        opcode: u16,
    },
    /// A supported opcode in its register-only form (ModRM.mod = 3), which
    /// cannot touch memory and so cannot have caused an MMIO exit.
    NoMemoryOperand,
    /// The MMIO-side access crosses a page boundary into a page that does not
    /// continue it physically; not supported.
    SplitAccess {
        /// Linear address of the access.
        linear: u64,
    },
    /// The decoded instruction does not address the faulting GPA (the guest
    /// changed its code or page tables under the exit). Resume the guest
    /// without changes: it re-executes the instruction.
    Inconsistent {
        /// The GPA the exit reported.
        fault_gpa: u64,
    },
}

/// An exception the hypervisor should inject into the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exception {
    /// #UD (vector 6).
    InvalidOpcode,
    /// #GP (vector 13) with this error code.
    GeneralProtection(u32),
    /// #PF (vector 14) with this error code; CR2 must be set to `cr2`.
    PageFault {
        /// Error code pushed with the exception.
        error_code: u32,
        /// Faulting linear address.
        cr2: u64,
    },
}

impl Exception {
    /// The exception vector number.
    pub const fn vector(&self) -> u8 {
        match self {
            Self::InvalidOpcode => 6,
            Self::GeneralProtection(_) => 13,
            Self::PageFault { .. } => 14,
        }
    }
}

impl MmioError {
    /// The exception a real CPU would raise (or, for forms this emulator does
    /// not support, #UD). `None` means no exception fits: `Inconsistent`
    /// (resume and retry) and `GuestMemory`/`Truncated` (a hypervisor-side
    /// condition the caller must decide on, e.g. by stopping the guest).
    pub const fn exception(&self) -> Option<Exception> {
        match *self {
            Self::PageFault { linear, error_code } => Some(Exception::PageFault {
                error_code,
                cr2: linear,
            }),
            Self::NonCanonical { .. } | Self::TooLong => Some(Exception::GeneralProtection(0)),
            Self::Lock
            | Self::Unsupported { .. }
            | Self::NoMemoryOperand
            | Self::SplitAccess { .. } => Some(Exception::InvalidOpcode),
            Self::GuestMemory { .. } | Self::Truncated | Self::Inconsistent { .. } => None,
        }
    }
}

impl From<MemoryError> for MmioError {
    fn from(e: MemoryError) -> Self {
        Self::GuestMemory { gpa: e.gpa }
    }
}

/// Handles one nested-page-fault exit at `fault_gpa` inside the MMIO window:
/// fetches the instruction at the guest's CS:RIP through its page tables,
/// decodes it, and performs it against `bus` and `mem`, updating `state`.
///
/// On `Ok(Completion::Done)` RIP has advanced past the instruction; on
/// `Ok(Completion::Partial)` a REP string operation made progress (rCX, rSI,
/// rDI updated) and RIP still points at it, so the guest resumes it. On
/// error, `state` reflects every element already completed (as after an
/// interrupted REP) and RIP is unchanged.
pub fn handle_mmio_exit<M: GuestMemory + ?Sized, B: MmioBus + ?Sized>(
    emulator: &Emulator,
    state: &mut GuestState,
    mem: &mut M,
    bus: &mut B,
    fault_gpa: u64,
) -> Result<Completion, MmioError> {
    let paging = Paging::new(state, emulator.phys_addr_bits);
    let fetched = fetch_instruction(&paging, state, mem)?;
    let inst = match decode(fetched.bytes(), state.code_size()) {
        Err(MmioError::Truncated) => return Err(fetched.fault.unwrap_or(MmioError::Truncated)),
        other => other?,
    };
    emulate(emulator, &paging, state, &inst, mem, bus, fault_gpa)
}
