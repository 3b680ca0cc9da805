//! The command/response FIFO and its state machine (PTP, the FIFO interface
//! state transition table and the `TPM_STS_x` field definitions).
//!
//! ```text
//!  Idle --commandReady--> Ready --FIFO write--> Reception
//!   ^                      ^  ^                   | Expect=1 until the size
//!   |                      |  |                   | field's byte count is in
//!   |                      |  +--commandReady-----+ (abort)
//!   |                      |                      | tpmGo with Expect=0
//!   |                      |                      v
//!   |                      |                  [Execution: the backend runs
//!   |                      |                   the command synchronously]
//!   |                      |                      v
//!   |                      +----commandReady-- Completion (dataAvail while
//!   |                                             bytes remain; responseRetry
//!   +--------- locality change (any state) ----   rewinds)
//! ```
//!
//! Execution is synchronous: `tpmGo` returns only after the backend answered,
//! so a guest never observes the Execution state, and `commandCancel` (which
//! only acts "after tpmGo and before dataAvail") never finds anything to
//! cancel.
//!
//! Byte counts (`MAX` = [`MAX_BUFFER_SIZE`]):
//! - Until the 6 bytes holding the size field are in, `Expect` stays 1.
//!   After that the command is complete once `clamp(size, 10, MAX)` bytes are
//!   in: a size below the 10-byte header still waits for a whole header, a
//!   size above the buffer ends reception when the buffer is full. Bytes
//!   written once `Expect` is 0 are dropped. In both bad-size cases the
//!   bytes received go to the backend, which rejects the inconsistent size
//!   with a TPM error response (`TPM_RC_COMMAND_SIZE`).
//! - burstCount is the free buffer space in Ready and in Reception while
//!   `Expect` is 1, the count of response bytes not yet read in Completion,
//!   and 0 otherwise (nothing can be transferred).
//! - FIFO reads return 0xFF outside Completion and after the last response
//!   byte; FIFO writes outside Ready/Reception are dropped.
//! - A backend answer shorter than a response header or longer than the
//!   buffer breaks the backend contract; the guest then gets a 10-byte
//!   `TPM_RC_FAILURE` response instead of a transfer that cannot complete.

use alloc::vec::Vec;

use super::regs::{Int, Sts, STS_BURST_SHIFT};
use crate::backend::{TpmBackend, MAX_BUFFER_SIZE};

/// Size of a TPM command or response header (tag, size, code).
pub const HEADER_SIZE: usize = 10;
/// Offset of the 32-bit big-endian size field in a header.
const SIZE_FIELD: core::ops::Range<usize> = 2..6;
/// TPM2_SelfTest's command code.
const CC_SELF_TEST: u32 = 0x143;
/// The response sent when the backend breaks its contract: tag
/// TPM_ST_NO_SESSIONS, size 10, TPM_RC_FAILURE.
const FAILURE_RESPONSE: [u8; HEADER_SIZE] = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01];

/// The interface state (Execution is transient, see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No command in progress; commandReady reads 0.
    Idle,
    /// Ready for the first command byte; commandReady reads 1.
    Ready,
    /// Command bytes are arriving.
    Reception,
    /// A response is held for reading.
    Completion,
}

/// Reads the big-endian size field of a header, if `bytes` holds it.
fn size_field(bytes: &[u8]) -> Option<usize> {
    let field: [u8; 4] = bytes.get(SIZE_FIELD)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(field)).ok()
}

/// The FIFO state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fifo {
    state: State,
    /// Command bytes received so far (never more than `MAX_BUFFER_SIZE`).
    command: Vec<u8>,
    /// The response being read (Completion only).
    response: Vec<u8>,
    /// Next response byte to read.
    read_pos: usize,
    /// A TPM2_SelfTest succeeded since reset.
    self_test_done: bool,
}

impl Default for Fifo {
    fn default() -> Self {
        Self::new()
    }
}

impl Fifo {
    /// The state after reset.
    pub fn new() -> Self {
        Self {
            state: State::Idle,
            command: Vec::with_capacity(MAX_BUFFER_SIZE),
            response: Vec::new(),
            read_pos: 0,
            self_test_done: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Number of command bytes received.
    pub fn received(&self) -> usize {
        self.command.len()
    }

    /// Number of command bytes after which reception is complete.
    fn command_target(&self) -> usize {
        match size_field(&self.command) {
            None => MAX_BUFFER_SIZE,
            Some(size) => size.clamp(HEADER_SIZE, MAX_BUFFER_SIZE),
        }
    }

    /// `TPM_STS_x.Expect`.
    pub fn expect(&self) -> bool {
        self.state == State::Reception && self.command.len() < self.command_target()
    }

    /// `TPM_STS_x.dataAvail`.
    pub fn data_avail(&self) -> bool {
        self.state == State::Completion && self.read_pos < self.response.len()
    }

    /// `TPM_STS_x.burstCount`.
    pub fn burst_count(&self) -> u16 {
        let n = match self.state {
            State::Ready => MAX_BUFFER_SIZE,
            State::Reception if self.expect() => MAX_BUFFER_SIZE - self.command.len(),
            State::Completion => self.response.len().saturating_sub(self.read_pos),
            State::Idle | State::Reception => 0,
        };
        u16::try_from(n).unwrap_or(u16::MAX)
    }

    /// The whole `TPM_STS_x` as read from the active locality.
    pub fn sts(&self) -> u32 {
        let mut s = Sts::VALID | Sts::FAMILY_TPM2;
        s.set(Sts::COMMAND_READY, self.state == State::Ready);
        s.set(Sts::DATA_AVAIL, self.data_avail());
        s.set(Sts::EXPECT, self.expect());
        s.set(Sts::SELF_TEST_DONE, self.self_test_done);
        s.bits() | (u32::from(self.burst_count()) << STS_BURST_SHIFT)
    }

    /// `commandReady` written: go to Ready, aborting a command being
    /// received or dropping a response being read.
    pub fn command_ready(&mut self) -> Int {
        let was_ready = self.state == State::Ready;
        self.enter_ready();
        if was_ready {
            Int::empty()
        } else {
            Int::COMMAND_READY
        }
    }

    /// `tpmGo` written: runs a complete command on `backend` and enters
    /// Completion. Ignored unless a command was received with Expect = 0.
    pub fn go(&mut self, backend: &mut dyn TpmBackend, locality: u8) -> Int {
        if self.state != State::Reception || self.expect() {
            return Int::empty();
        }
        let mut response = backend.execute(locality, &self.command);
        if response.len() < HEADER_SIZE || response.len() > MAX_BUFFER_SIZE {
            response = FAILURE_RESPONSE.to_vec();
        }
        if self.is_successful_self_test(&response) {
            self.self_test_done = true;
        }
        self.command.clear();
        self.response = response;
        self.read_pos = 0;
        self.state = State::Completion;
        Int::DATA_AVAIL | Int::STS_VALID
    }

    /// `responseRetry` written: in Completion, the response is read again
    /// from its first byte. Ignored in other states.
    pub fn response_retry(&mut self) -> Int {
        if self.state != State::Completion {
            return Int::empty();
        }
        let was_avail = self.data_avail();
        self.read_pos = 0;
        if was_avail {
            Int::empty()
        } else {
            Int::DATA_AVAIL | Int::STS_VALID
        }
    }

    /// One byte written to the FIFO.
    pub fn write_byte(&mut self, byte: u8) -> Int {
        match self.state {
            State::Ready => self.state = State::Reception,
            State::Reception if self.expect() => {}
            State::Idle | State::Reception | State::Completion => return Int::empty(),
        }
        self.command.push(byte);
        if self.expect() {
            Int::empty()
        } else {
            Int::STS_VALID
        }
    }

    /// One byte read from the FIFO, and the events the read caused.
    pub fn read_byte(&mut self) -> (u8, Int) {
        if !self.data_avail() {
            return (super::regs::FLOAT_BYTE, Int::empty());
        }
        let byte = self
            .response
            .get(self.read_pos)
            .copied()
            .unwrap_or(super::regs::FLOAT_BYTE);
        self.read_pos += 1;
        let events = if self.data_avail() {
            Int::empty()
        } else {
            Int::STS_VALID
        };
        (byte, events)
    }

    /// Abandons whatever is in progress and returns to Idle (the active
    /// locality changed).
    pub fn abort(&mut self) {
        self.command.clear();
        self.response = Vec::new();
        self.read_pos = 0;
        self.state = State::Idle;
    }

    /// Enters Ready with empty buffers.
    fn enter_ready(&mut self) {
        self.abort();
        self.state = State::Ready;
    }

    /// Whether `response` answers the command held in the buffer, that
    /// command is TPM2_SelfTest, and it succeeded.
    fn is_successful_self_test(&self, response: &[u8]) -> bool {
        let code = self.command.get(6..10).and_then(|b| b.try_into().ok());
        let rc = response.get(6..10).and_then(|b| b.try_into().ok());
        matches!(
            (code.map(u32::from_be_bytes), rc.map(u32::from_be_bytes)),
            (Some(CC_SELF_TEST), Some(0))
        )
    }
}
