//! The Linux `tpm_crb` driver (drivers/char/tpm/tpm_crb.c, start method
//! "Command Response Buffer"), access by access.
//!
//! Probe (`crb_map_io`): request locality 0, cmdReady, read CMD_HADDR,
//! CMD_LADDR, CMD_SIZE, RSP_ADDR (an 8-byte `memcpy_fromio`) and RSP_SIZE,
//! goIdle, relinquish. Per command (`tpm_chip_start`, `crb_send`, the polling of
//! `tpm_try_transmit`, `crb_recv`, `tpm_chip_stop`): LOC_CTRL request and wait
//! for LOC_STATE locAssigned|regValid, CTRL_REQ cmdReady and wait for it to
//! clear, CTRL_CANCEL=0, `memcpy_toio` of the command, CTRL_START=1, poll
//! CTRL_START until 0 (CTRL_CANCEL checked in between), CTRL_STS fatal check,
//! `memcpy_fromio` of 8 header bytes then the rest, goIdle, relinquish.
//! All register accesses are 32-bit; buffer copies follow [`CopyMode`].

use crate::{
    check_request, header_size, Bus, Driver, DriverError, DEFAULT_MAX_POLLS, TPM_HEADER_SIZE,
};

const LOC_STATE: u64 = 0x00;
const LOC_CTRL: u64 = 0x08;
const CTRL_REQ: u64 = 0x40;
const CTRL_STS: u64 = 0x44;
const CTRL_CANCEL: u64 = 0x48;
const CTRL_START: u64 = 0x4C;
const CTRL_CMD_SIZE: u64 = 0x58;
const CTRL_CMD_LADDR: u64 = 0x5C;
const CTRL_CMD_HADDR: u64 = 0x60;
const CTRL_RSP_SIZE: u64 = 0x64;
const CTRL_RSP_ADDR: u64 = 0x68;

const LOC_STATE_LOC_ASSIGNED: u32 = 1 << 1;
const LOC_STATE_REG_VALID: u32 = 1 << 7;
const LOC_CTRL_REQUEST_ACCESS: u32 = 1 << 0;
const LOC_CTRL_RELINQUISH: u32 = 1 << 1;
const CTRL_REQ_CMD_READY: u32 = 1 << 0;
const CTRL_REQ_GO_IDLE: u32 = 1 << 1;
const CTRL_STS_ERROR: u32 = 1 << 0;
const START_INVOKE: u32 = 1 << 0;
const CANCEL_INVOKE: u32 = 1 << 0;

/// Physical address of the TPM interface (the register model's offset 0).
pub const TPM_BASE: u64 = 0xFED4_0000;
/// Size of the five-locality window the register model covers.
const WINDOW: u64 = 0x5000;
/// TPM_BUFSIZE in the kernel.
const TPM_BUFSIZE: usize = 4096;

/// How `memcpy_toio`/`memcpy_fromio` move buffer bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyMode {
    /// x86 string instructions (ordinary guests): `movsb`/`movsw` to align,
    /// `rep movsl`, then a trailing `movsw`/`movsb`.
    #[default]
    StringOps,
    /// One byte access per byte (`readb`/`writeb`), as SEV and TDX guests do
    /// since string I/O to MMIO cannot be emulated there.
    Unrolled,
}

/// Buffer layout read from a locality's control area at probe time,
/// as offsets from [`TPM_BASE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrbProbe {
    /// Command buffer offset.
    pub cmd_offset: u64,
    /// Command buffer size.
    pub cmd_size: u32,
    /// Response buffer offset.
    pub rsp_offset: u64,
    /// Response buffer size.
    pub rsp_size: u32,
}

/// The Linux CRB driver model.
#[derive(Debug, Clone)]
pub struct LinuxCrb {
    /// Bound on every polling loop (register reads).
    pub max_polls: u32,
    /// How buffer bytes are copied.
    pub copy: CopyMode,
    /// Largest response accepted (kernel: 4096).
    pub buf_size: usize,
    /// Last goIdle/relinquish timeout: the kernel only warns about those.
    pub last_warning: Option<DriverError>,
    probed: [Option<CrbProbe>; 5],
}

impl Default for LinuxCrb {
    fn default() -> Self {
        Self::new()
    }
}

impl LinuxCrb {
    /// A driver copying with string instructions, with [`DEFAULT_MAX_POLLS`].
    pub fn new() -> Self {
        Self::with_copy(CopyMode::StringOps)
    }

    /// A driver copying buffers as `copy` says.
    pub fn with_copy(copy: CopyMode) -> Self {
        Self {
            max_polls: DEFAULT_MAX_POLLS,
            copy,
            buf_size: TPM_BUFSIZE,
            last_warning: None,
            probed: [None; 5],
        }
    }

    /// `crb_map_io` for `locality`: reads and validates the buffer layout.
    /// [`Driver::transact`] probes a locality on first use.
    pub fn probe(&mut self, bus: &mut Bus<'_>, locality: u8) -> Result<CrbProbe, DriverError> {
        if locality > 4 {
            return Err(DriverError::BadLocality(locality));
        }
        let loc = u64::from(locality) * 0x1000;
        self.request_locality(bus, loc)?;
        let r = self.cmd_ready(bus, loc).and_then(|()| {
            let layout = self.read_layout(bus, loc);
            self.go_idle(bus, loc);
            layout
        });
        self.relinquish_locality(bus, loc);
        let p = r?;
        self.probed[usize::from(locality)] = Some(p);
        Ok(p)
    }

    fn read_layout(&self, bus: &mut Bus<'_>, loc: u64) -> Result<CrbProbe, DriverError> {
        let hi = bus.read32(loc + CTRL_CMD_HADDR);
        let lo = bus.read32(loc + CTRL_CMD_LADDR);
        let cmd_pa = (u64::from(hi) << 32) | u64::from(lo);
        let cmd_size = bus.read32(loc + CTRL_CMD_SIZE);
        let mut rsp = [0u8; 8];
        self.copy_from(bus, loc + CTRL_RSP_ADDR, &mut rsp);
        let rsp_pa = u64::from_le_bytes(rsp);
        let rsp_size = bus.read32(loc + CTRL_RSP_SIZE);
        let cmd_offset = buffer_offset(cmd_pa, cmd_size)?;
        let rsp_offset = buffer_offset(rsp_pa, rsp_size)?;
        if cmd_pa == rsp_pa && cmd_size != rsp_size {
            return Err(DriverError::NoDevice {
                what: "overlapping command and response buffers of different sizes",
                value: u64::from(rsp_size),
            });
        }
        Ok(CrbProbe {
            cmd_offset,
            cmd_size,
            rsp_offset,
            rsp_size,
        })
    }

    /// __crb_request_locality().
    fn request_locality(&self, bus: &mut Bus<'_>, loc: u64) -> Result<(), DriverError> {
        let v = LOC_STATE_LOC_ASSIGNED | LOC_STATE_REG_VALID;
        bus.write32(loc + LOC_CTRL, LOC_CTRL_REQUEST_ACCESS);
        bus.poll32(
            loc + LOC_STATE,
            v,
            v,
            self.max_polls,
            "LOC_STATE.locAssigned",
        )?;
        Ok(())
    }

    /// __crb_relinquish_locality(); a timeout is only a warning.
    fn relinquish_locality(&mut self, bus: &mut Bus<'_>, loc: u64) {
        let mask = LOC_STATE_LOC_ASSIGNED | LOC_STATE_REG_VALID;
        bus.write32(loc + LOC_CTRL, LOC_CTRL_RELINQUISH);
        if let Err(e) = bus.poll32(
            loc + LOC_STATE,
            mask,
            LOC_STATE_REG_VALID,
            self.max_polls,
            "LOC_STATE.locAssigned clear",
        ) {
            self.last_warning = Some(e);
        }
    }

    /// __crb_cmd_ready().
    fn cmd_ready(&self, bus: &mut Bus<'_>, loc: u64) -> Result<(), DriverError> {
        bus.write32(loc + CTRL_REQ, CTRL_REQ_CMD_READY);
        bus.poll32(
            loc + CTRL_REQ,
            CTRL_REQ_CMD_READY,
            0,
            self.max_polls,
            "CTRL_REQ.cmdReady clear",
        )?;
        Ok(())
    }

    /// __crb_go_idle(); a timeout is only a warning.
    fn go_idle(&mut self, bus: &mut Bus<'_>, loc: u64) {
        bus.write32(loc + CTRL_REQ, CTRL_REQ_GO_IDLE);
        if let Err(e) = bus.poll32(
            loc + CTRL_REQ,
            CTRL_REQ_GO_IDLE,
            0,
            self.max_polls,
            "CTRL_REQ.goIdle clear",
        ) {
            self.last_warning = Some(e);
        }
    }

    /// memcpy_toio().
    fn copy_to(&self, bus: &mut Bus<'_>, mut to: u64, mut from: &[u8]) {
        if self.copy == CopyMode::Unrolled {
            for (i, &b) in from.iter().enumerate() {
                bus.write8(to + i as u64, b);
            }
            return;
        }
        if from.is_empty() {
            return;
        }
        if to & 1 != 0 {
            bus.write8(to, from[0]);
            to += 1;
            from = &from[1..];
        }
        if from.len() > 1 && to & 2 != 0 {
            bus.write16(to, u16::from_le_bytes([from[0], from[1]]));
            to += 2;
            from = &from[2..];
        }
        let mut dwords = from.chunks_exact(4);
        for d in &mut dwords {
            bus.write32(to, u32::from_le_bytes([d[0], d[1], d[2], d[3]]));
            to += 4;
        }
        let mut rest = dwords.remainder();
        if rest.len() & 2 != 0 {
            bus.write16(to, u16::from_le_bytes([rest[0], rest[1]]));
            to += 2;
            rest = &rest[2..];
        }
        if let [b] = rest {
            bus.write8(to, *b);
        }
    }

    /// memcpy_fromio().
    fn copy_from(&self, bus: &mut Bus<'_>, mut from: u64, mut to: &mut [u8]) {
        if self.copy == CopyMode::Unrolled {
            for (i, b) in to.iter_mut().enumerate() {
                *b = bus.read8(from + i as u64);
            }
            return;
        }
        if to.is_empty() {
            return;
        }
        if from & 1 != 0 {
            to[0] = bus.read8(from);
            from += 1;
            to = &mut to[1..];
        }
        if to.len() > 1 && from & 2 != 0 {
            to[..2].copy_from_slice(&bus.read16(from).to_le_bytes());
            from += 2;
            to = &mut to[2..];
        }
        let mut dwords = to.chunks_exact_mut(4);
        for d in &mut dwords {
            d.copy_from_slice(&bus.read32(from).to_le_bytes());
            from += 4;
        }
        let mut rest = dwords.into_remainder();
        if rest.len() & 2 != 0 {
            rest[..2].copy_from_slice(&bus.read16(from).to_le_bytes());
            from += 2;
            rest = &mut rest[2..];
        }
        if let [b] = rest {
            *b = bus.read8(from);
        }
    }

    /// crb_send() + the polling of tpm_try_transmit() + crb_recv().
    fn transmit(
        &self,
        bus: &mut Bus<'_>,
        loc: u64,
        layout: &CrbProbe,
        cmd: &[u8],
    ) -> Result<Vec<u8>, DriverError> {
        bus.write32(loc + CTRL_CANCEL, 0);
        if cmd.len() > layout.cmd_size as usize {
            return Err(DriverError::BadCommand {
                len: cmd.len(),
                max: layout.cmd_size as usize,
            });
        }
        self.copy_to(bus, layout.cmd_offset, cmd);
        bus.write32(loc + CTRL_START, START_INVOKE);

        let mut done = false;
        let mut last = 0;
        for _ in 0..self.max_polls.max(1) {
            last = bus.read32(loc + CTRL_START);
            if last & START_INVOKE == 0 {
                done = true;
                break;
            }
            if bus.read32(loc + CTRL_CANCEL) & CANCEL_INVOKE != 0 {
                return Err(DriverError::Canceled);
            }
        }
        if !done {
            // crb_cancel()
            bus.write32(loc + CTRL_CANCEL, CANCEL_INVOKE);
            return Err(DriverError::Timeout {
                what: "CTRL_START clear",
                last: last.into(),
            });
        }

        let sts = bus.read32(loc + CTRL_STS);
        if sts & CTRL_STS_ERROR != 0 {
            return Err(DriverError::Fatal { ctrl_sts: sts });
        }
        let mut head = [0u8; 8];
        self.copy_from(bus, layout.rsp_offset, &mut head);
        let expected = header_size(&head).unwrap_or(0);
        let max = self.buf_size.min(layout.rsp_size as usize);
        if expected > max || expected < TPM_HEADER_SIZE {
            return Err(DriverError::BadResponseSize {
                size: expected,
                max,
            });
        }
        let mut rsp = vec![0u8; expected];
        rsp[..8].copy_from_slice(&head);
        self.copy_from(bus, layout.rsp_offset + 8, &mut rsp[8..]);
        Ok(rsp)
    }
}

/// Checks that a buffer lies inside the TPM window and returns its offset.
fn buffer_offset(pa: u64, size: u32) -> Result<u64, DriverError> {
    let off = pa.wrapping_sub(TPM_BASE);
    if pa < TPM_BASE || off >= WINDOW || u64::from(size) > WINDOW - off || size < 10 {
        return Err(DriverError::NoDevice {
            what: "CRB buffer outside the TPM window",
            value: pa,
        });
    }
    Ok(off)
}

impl Driver for LinuxCrb {
    fn transact(
        &mut self,
        bus: &mut Bus<'_>,
        locality: u8,
        command: &[u8],
    ) -> Result<Vec<u8>, DriverError> {
        check_request(locality, command, self.buf_size)?;
        let layout = match self.probed[usize::from(locality)] {
            Some(p) => p,
            None => self.probe(bus, locality)?,
        };
        let loc = u64::from(locality) * 0x1000;
        // tpm_chip_start()
        self.request_locality(bus, loc)?;
        if let Err(e) = self.cmd_ready(bus, loc) {
            self.relinquish_locality(bus, loc);
            return Err(e);
        }
        let result = self.transmit(bus, loc, &layout, command);
        // tpm_chip_stop()
        self.go_idle(bus, loc);
        self.relinquish_locality(bus, loc);
        result
    }
}
