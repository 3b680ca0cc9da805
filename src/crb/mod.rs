//! The TPM Command Response Buffer (CRB) interface of the TCG PC Client
//! Platform TPM Profile (PTP) as a pure register model: guest reads and
//! writes of the window at 0xFED40000 go in, TPM commands go out to a
//! [`TpmBackend`].
//!
//! # Layout
//! The PTP gives each locality `l` (0..=4) its own 4 KiB page at
//! `0xFED40000 + l * 0x1000` holding the full register set
//! ([`regs`]): `LOC_STATE` (identical in every page), `LOC_CTRL`/`LOC_STS`
//! (per locality), `INTF_ID`, the control area (0x40..0x70) and the data
//! buffer (0x80..0x1000). Access is arbitrated through `LOC_CTRL`
//! ([`locality`]). There is one TPM behind the pages, so the control state
//! and the 0xF80-byte data buffer are shared; they act only for the active
//! locality:
//! - control-area writes (`CTRL_REQ`, `CTRL_CANCEL`, `CTRL_START`,
//!   `INT_ENABLE`, `INT_STS`) from any other locality are dropped;
//! - the data buffer reads all-ones and ignores writes through the page of
//!   a locality that is not active, so no locality sees another's data;
//! - registers are readable from every page (older Linux reads the buffer
//!   addresses before requesting a locality).
//!
//! [`LocalitySupport::All`] offers all five pages (`INTF_ID.CapLocality` =
//! 1), as the PTP describes. [`LocalitySupport::ZeroOnly`] offers page 0
//! only (`CapLocality` = 0), as QEMU's tpm-crb does; the other pages then
//! behave as unimplemented space.
//!
//! # Buffers
//! `CMD_LADDR/HADDR`, `RSP_ADDR` and `CMD_SIZE`/`RSP_SIZE` of page `l`
//! always describe that page's own data buffer (`0xFED4l080`, 0xF80 bytes):
//! command and response share it, with equal sizes as Linux requires of
//! overlapping buffers. The addresses lie inside the window, so the ACPI
//! resource that declares the window covers them. The TPM cannot reach
//! guest memory, so these registers are hardwired: a write is dropped.
//! OVMF writes the same values the registers already hold (so nothing
//! changes); a write of any other value is dropped too and counted in
//! [`Stats::buffer_relocations`], and the device keeps using its own buffer.
//!
//! # Commands
//! The TPM moves through the PTP states Idle -> Ready -> (Reception ->
//! Execution ->) Completion. `CTRL_REQ.cmdReady` leaves Idle,
//! `CTRL_REQ.goIdle` returns to it and clears the buffer; both requests
//! complete at once, so `CTRL_REQ` always reads 0. `CTRL_STS.tpmIdle`
//! reflects Idle. A `CTRL_START` write of 1 from the active locality in
//! Ready or Completion runs the command synchronously: when the write
//! returns, `CTRL_START` reads 0 again and the response sits in the buffer
//! (the rest of the buffer zeroed). A start in Idle, or in the fatal state,
//! is ignored. The command length comes from its header ([`command`]); a
//! length below 10 or beyond the buffer is answered with
//! `TPM_RC_COMMAND_SIZE` without reaching the backend.
//! `CTRL_CANCEL` is a plain read/write bit: nothing is ever in flight to
//! cancel. `CTRL_STS.tpmSts` (fatal) is set only by the platform
//! ([`Crb::enter_fatal`], e.g. when the TPM state could not be restored)
//! and cleared by [`Crb::reset`].
//!
//! # Accesses
//! Widths 1, 2, 4 and 8, naturally aligned ([`access`]); a register access
//! narrower than the register reads or writes the addressed bytes; an
//! 8-byte access covers two adjacent 32-bit registers. Reserved offsets and
//! write-only registers read 0; writes to read-only or reserved registers
//! are dropped. Unsupported accesses read all-ones and drop writes.

pub mod access;
pub mod command;
pub mod locality;
pub mod regs;

#[cfg(test)]
mod tests;

use crate::backend::{TpmBackend, TpmMmio};
use access::{Access, RegWrite};
use command::FrameError;
use locality::Localities;
use regs::{CtrlReq, CtrlSts, IntFlags, LocCtrl, LocState, LocSts, DATA_BUFFER_SIZE};

/// Which locality pages the interface offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocalitySupport {
    /// Localities 0..=4, one page each (`INTF_ID.CapLocality` = 1).
    #[default]
    All,
    /// Locality 0 only (`INTF_ID.CapLocality` = 0).
    ZeroOnly,
}

/// The PTP CRB interface states a guest can observe (Execution and
/// Reception are never seen: a command runs inside the `START` write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Idle: `CTRL_STS.tpmIdle` = 1; commands are not accepted.
    Idle,
    /// Ready for a command.
    Ready,
    /// A response is in the buffer; another command may follow.
    Completion,
}

/// Counters for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Commands passed to the backend.
    pub commands: u64,
    /// Commands answered with an error without reaching the backend.
    pub rejected_commands: u64,
    /// Writes that changed nothing: read-only, reserved or hardwired
    /// registers, control writes from a locality that is not active,
    /// requests and starts the current state does not accept.
    pub ignored_writes: u64,
    /// Writes that tried to point the command/response buffer elsewhere.
    pub buffer_relocations: u64,
    /// Accesses of an unsupported width or alignment, or outside the
    /// implemented pages.
    pub bad_accesses: u64,
}

/// The CRB interface of one TPM.
#[derive(Debug, Clone)]
pub struct Crb {
    localities: Localities,
    state: State,
    fatal: bool,
    established: bool,
    cancel: u32,
    int_enable: IntFlags,
    int_sts: IntFlags,
    buffer: [u8; DATA_BUFFER_SIZE],
    last_error: Option<FrameError>,
    stats: Stats,
}

impl Default for Crb {
    fn default() -> Self {
        Crb::new(LocalitySupport::default())
    }
}

impl Crb {
    /// The interface after a platform reset: no locality active, Idle.
    pub fn new(support: LocalitySupport) -> Self {
        let count = match support {
            LocalitySupport::All => regs::LOCALITY_COUNT,
            LocalitySupport::ZeroOnly => 1,
        };
        Crb {
            localities: Localities::new(count),
            state: State::Idle,
            fatal: false,
            established: false,
            cancel: 0,
            int_enable: IntFlags::empty(),
            int_sts: IntFlags::empty(),
            buffer: [0; DATA_BUFFER_SIZE],
            last_error: None,
            stats: Stats::default(),
        }
    }

    /// A platform reset (`_TPM_Init`): every register returns to its reset
    /// value. The establishment flag survives, as it does in a TPM.
    pub fn reset(&mut self) {
        let support = self.support();
        let established = self.established;
        let stats = self.stats;
        *self = Crb::new(support);
        self.established = established;
        self.stats = stats;
    }

    /// Which locality pages are offered.
    pub fn support(&self) -> LocalitySupport {
        if self.localities.count() == 1 {
            LocalitySupport::ZeroOnly
        } else {
            LocalitySupport::All
        }
    }

    /// The platform records an H-CRTM/DRTM event: the establishment flag is
    /// set (`LOC_STATE.tpmEstablished` reads 0) until a locality 3 or 4
    /// writes `LOC_CTRL.resetEstablishmentBit`.
    pub fn set_established(&mut self) {
        self.established = true;
    }

    /// Whether the establishment flag is set.
    pub fn established(&self) -> bool {
        self.established
    }

    /// The platform declares the TPM unusable (for instance its state could
    /// not be restored): `CTRL_STS.tpmSts` reads 1 and no command runs
    /// until [`Crb::reset`].
    pub fn enter_fatal(&mut self) {
        self.fatal = true;
    }

    /// The active locality, if any.
    pub fn active_locality(&self) -> Option<u8> {
        self.localities.active()
    }

    /// The current interface state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether an enabled interrupt is pending (`globalEnable` set and an
    /// enabled source raised in `INT_STS`). No interrupt line is declared to
    /// the guest today; this is for a platform that wires one.
    pub fn interrupt_pending(&self) -> bool {
        self.int_enable.contains(IntFlags::GLOBAL) && self.int_sts.intersects(self.int_enable)
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The last command or response framing error, for logs.
    pub fn last_frame_error(&self) -> Option<FrameError> {
        self.last_error
    }

    fn loc_state(&self) -> u32 {
        let mut s = LocState::REG_VALID;
        if !self.established {
            s |= LocState::NOT_ESTABLISHED;
        }
        let active = match self.localities.active() {
            Some(l) => {
                s |= LocState::LOC_ASSIGNED;
                u32::from(l) << regs::LOC_STATE_ACTIVE_SHIFT
            }
            None => 0,
        };
        s.bits() | active
    }

    fn loc_sts(&self, locality: u8) -> u32 {
        let mut s = LocSts::empty();
        s.set(LocSts::GRANTED, self.localities.is_active(locality));
        s.set(LocSts::BEEN_SEIZED, self.localities.been_seized(locality));
        s.bits()
    }

    fn ctrl_sts(&self) -> u32 {
        let mut s = CtrlSts::empty();
        s.set(CtrlSts::FATAL, self.fatal);
        s.set(CtrlSts::TPM_IDLE, self.state == State::Idle);
        s.bits()
    }

    fn intf_id(&self) -> u64 {
        regs::intf_id::value(self.support() == LocalitySupport::All)
    }

    /// The hardwired value of a buffer-description register in `locality`'s
    /// page, or `None` if `reg` is not one of them.
    fn buffer_register(locality: u8, reg: u16) -> Option<u32> {
        let addr = regs::buffer_address(locality);
        match reg {
            regs::CMD_SIZE | regs::RSP_SIZE => Some(DATA_BUFFER_SIZE as u32),
            regs::CMD_LADDR | regs::RSP_ADDR_LO => Some(addr as u32),
            regs::CMD_HADDR | regs::RSP_ADDR_HI => Some((addr >> 32) as u32),
            _ => None,
        }
    }

    /// The 32-bit register at 4-aligned `reg` (< 0x80) as read through
    /// `locality`'s page.
    fn reg32(&self, locality: u8, reg: u16) -> u32 {
        if let Some(v) = Self::buffer_register(locality, reg) {
            return v;
        }
        match reg {
            regs::LOC_STATE => self.loc_state(),
            regs::LOC_STS => self.loc_sts(locality),
            regs::INTF_ID_LO => self.intf_id() as u32,
            regs::INTF_ID_HI => (self.intf_id() >> 32) as u32,
            regs::CTRL_STS => self.ctrl_sts(),
            regs::CTRL_CANCEL => self.cancel,
            regs::INT_ENABLE => self.int_enable.bits(),
            regs::INT_STS => self.int_sts.bits(),
            // LOC_CTRL is write-only; CTRL_REQ and CTRL_START complete
            // before the write that sets them returns; CTRL_EXT and the
            // gaps are reserved.
            _ => 0,
        }
    }

    fn read_served(&self, a: Access) -> u64 {
        let mut value = 0u64;
        for i in 0..u16::from(a.size) {
            let off = a.offset + i;
            let byte = if off >= regs::DATA_BUFFER {
                if self.localities.is_active(a.locality) {
                    self.buffer[usize::from(off - regs::DATA_BUFFER)]
                } else {
                    0xFF
                }
            } else {
                let reg = self.reg32(a.locality, off & !3);
                (reg >> (8 * u32::from(off & 3))) as u8
            };
            value |= u64::from(byte) << (8 * i);
        }
        value
    }

    fn write_buffer(&mut self, a: Access, value: u64) {
        if !self.localities.is_active(a.locality) {
            self.stats.ignored_writes += 1;
            return;
        }
        let start = usize::from(a.offset - regs::DATA_BUFFER);
        for i in 0..usize::from(a.size) {
            self.buffer[start + i] = (value >> (8 * i)) as u8;
        }
    }

    fn write_register(&mut self, backend: &mut dyn TpmBackend, locality: u8, w: RegWrite) {
        if let Some(hardwired) = Self::buffer_register(locality, w.reg) {
            if (w.bits ^ hardwired) & w.mask != 0 {
                self.stats.buffer_relocations += 1;
            }
            self.stats.ignored_writes += 1;
            return;
        }
        let controls = matches!(
            w.reg,
            regs::CTRL_REQ
                | regs::CTRL_CANCEL
                | regs::CTRL_START
                | regs::INT_ENABLE
                | regs::INT_STS
        );
        if controls && !self.localities.is_active(locality) {
            self.stats.ignored_writes += 1;
            return;
        }
        match w.reg {
            regs::LOC_CTRL => self.loc_ctrl(locality, w.bits),
            regs::CTRL_REQ => self.ctrl_req(w.bits),
            regs::CTRL_CANCEL => self.cancel = ((self.cancel & !w.mask) | w.bits) & regs::CANCEL,
            regs::CTRL_START if w.bits & regs::START != 0 => self.start(backend, locality),
            regs::INT_ENABLE => {
                let defined = IntFlags::STATUS_BITS | IntFlags::GLOBAL;
                let merged = (self.int_enable.bits() & !w.mask) | w.bits;
                self.int_enable = IntFlags::from_bits_truncate(merged) & defined;
            }
            regs::INT_STS => {
                self.int_sts &= !IntFlags::from_bits_truncate(w.bits);
            }
            _ => self.stats.ignored_writes += 1,
        }
    }

    /// `LOC_CTRL` written by `locality`: exactly one action bit, or nothing.
    fn loc_ctrl(&mut self, locality: u8, bits: u32) {
        let Some(action) = LocCtrl::from_bits(bits).filter(|a| a.bits().count_ones() == 1) else {
            self.stats.ignored_writes += 1;
            return;
        };
        let handover = if action == LocCtrl::REQUEST_ACCESS {
            self.localities.request(locality)
        } else if action == LocCtrl::RELINQUISH {
            self.localities.relinquish(locality)
        } else if action == LocCtrl::SEIZE {
            self.localities.seize(locality)
        } else {
            if locality >= 3 && self.established {
                self.established = false;
                self.raise(IntFlags::ESTABLISHMENT_CLEAR);
            } else {
                self.stats.ignored_writes += 1;
            }
            None
        };
        if handover.is_some() {
            self.handover();
        }
    }

    /// The TPM changes hands: the previous owner's data is dropped and the
    /// new owner starts from Idle.
    fn handover(&mut self) {
        self.buffer.fill(0);
        self.state = State::Idle;
        self.cancel = 0;
        self.raise(IntFlags::LOCALITY_CHANGE);
    }

    fn ctrl_req(&mut self, bits: u32) {
        match CtrlReq::from_bits(bits) {
            Some(CtrlReq::CMD_READY) => {
                self.state = State::Ready;
                self.raise(IntFlags::CMD_READY);
            }
            Some(CtrlReq::GO_IDLE) => {
                self.state = State::Idle;
                self.buffer.fill(0);
            }
            _ => self.stats.ignored_writes += 1,
        }
    }

    fn start(&mut self, backend: &mut dyn TpmBackend, locality: u8) {
        if self.fatal || self.state == State::Idle {
            self.stats.ignored_writes += 1;
            return;
        }
        match command::command_len(&self.buffer) {
            Ok(len) => {
                self.stats.commands += 1;
                let response = backend.execute(locality, &self.buffer[..len]);
                match command::check_response(&response, DATA_BUFFER_SIZE) {
                    Ok(()) => self.place_response(&response),
                    Err(e) => self.fail_command(e),
                }
            }
            Err(e) => {
                self.stats.rejected_commands += 1;
                self.fail_command(e);
            }
        }
        self.state = State::Completion;
        self.raise(IntFlags::START);
    }

    fn fail_command(&mut self, e: FrameError) {
        self.last_error = Some(e);
        self.place_response(&command::error_response(e.response_code()));
    }

    fn place_response(&mut self, response: &[u8]) {
        let n = response.len().min(DATA_BUFFER_SIZE);
        self.buffer[..n].copy_from_slice(&response[..n]);
        self.buffer[n..].fill(0);
    }

    fn raise(&mut self, source: IntFlags) {
        if self.int_enable.contains(source) {
            self.int_sts |= source;
        }
    }
}

impl TpmMmio for Crb {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        match access::decode(offset, size, self.localities.count()) {
            Some(a) => self.read_served(a),
            None => {
                self.stats.bad_accesses += 1;
                access::all_ones(size)
            }
        }
    }

    fn write(&mut self, backend: &mut dyn TpmBackend, offset: u64, size: u8, value: u64) {
        let Some(a) = access::decode(offset, size, self.localities.count()) else {
            self.stats.bad_accesses += 1;
            return;
        };
        if a.offset >= regs::DATA_BUFFER {
            self.write_buffer(a, value);
        } else {
            for w in access::split_register_write(a, value) {
                self.write_register(backend, a.locality, w);
            }
        }
    }
}
