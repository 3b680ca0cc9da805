//! The Linux `tpm_tis` driver (drivers/char/tpm/tpm_tis_core.c, MMIO phy,
//! polling mode as since 6.5 by default), access by access.
//!
//! Per command (one `/dev/tpm0` write+read) Linux does: request the locality
//! (`tpm_chip_start`), `tpm_tis_send` (commandReady if needed, FIFO bytes by
//! burstCount with a stsValid+Expect check after each burst, the last byte
//! alone, Expect must drop, tpmGo), polls STS for dataAvail|stsValid
//! (`tpm_try_transmit`), `tpm_tis_recv` (10-byte header then the rest by
//! burstCount, dataAvail must then be clear, responseRetry on transfer errors,
//! commandReady at the end) and releases the locality (`tpm_chip_stop`).
//! FIFO bytes are 8-bit accesses, STS is read 8-bit for status and 32-bit for
//! burstCount, exactly as the kernel does.

use crate::{
    check_request, header_size, Bus, Driver, DriverError, DEFAULT_MAX_POLLS, TPM_HEADER_SIZE,
};

const ACCESS: u64 = 0x00;
const INT_ENABLE: u64 = 0x08;
const INTF_CAPS: u64 = 0x14;
const STS: u64 = 0x18;
const DATA_FIFO: u64 = 0x24;
const DID_VID: u64 = 0xF00;
const RID: u64 = 0xF04;

const ACCESS_VALID: u8 = 0x80;
const ACCESS_ACTIVE_LOCALITY: u8 = 0x20;
const ACCESS_REQUEST_USE: u8 = 0x02;

const STS_VALID: u8 = 0x80;
const STS_COMMAND_READY: u8 = 0x40;
const STS_GO: u8 = 0x20;
const STS_DATA_AVAIL: u8 = 0x10;
const STS_DATA_EXPECT: u8 = 0x08;
const STS_RESPONSE_RETRY: u8 = 0x02;
const STS_READ_ZERO: u8 = 0x23;

const INT_GLOBAL: u32 = 0x8000_0000;
const INT_CMD_READY: u32 = 0x80;
const INT_LOCALITY_CHANGE: u32 = 0x04;
const INT_STS_VALID: u32 = 0x02;
const INT_DATA_AVAIL: u32 = 0x01;

/// TPM_RETRY in the kernel: attempts at sending or re-reading on `-EIO`.
const TPM_RETRY: u32 = 50;
/// TPM_BUFSIZE in the kernel.
const TPM_BUFSIZE: usize = 4096;

/// What `tpm_tis_core_init` learns while probing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TisProbe {
    /// TPM_DID_VID_0.
    pub did_vid: u32,
    /// TPM_RID_0.
    pub rid: u8,
    /// TPM_INTF_CAPS_0.
    pub intf_caps: u32,
    /// Whether the GetCapability probe answered with tag TPM_ST_NO_SESSIONS.
    pub tpm2: bool,
}

/// The Linux TIS/FIFO driver model.
#[derive(Debug, Clone)]
pub struct LinuxTis {
    /// Bound on every polling loop (register reads).
    pub max_polls: u32,
    /// Attempts at sending and at reading a response (kernel: 50).
    pub retries: u32,
    /// Largest response accepted (kernel: 4096).
    pub buf_size: usize,
}

impl Default for LinuxTis {
    fn default() -> Self {
        Self::new()
    }
}

impl LinuxTis {
    /// A driver with the kernel's limits and [`DEFAULT_MAX_POLLS`].
    pub fn new() -> Self {
        Self {
            max_polls: DEFAULT_MAX_POLLS,
            retries: TPM_RETRY,
            buf_size: TPM_BUFSIZE,
        }
    }

    /// `tpm_tis_core_init` in polling mode: DID_VID, wait for ACCESS.valid,
    /// mask the interrupts at locality 0, the TPM2 probe (a GetCapability of
    /// TPM_PT_TOTAL_COMMANDS), RID, the iTPM vendor check and INTF_CAPS.
    pub fn probe(&mut self, bus: &mut Bus<'_>) -> Result<TisProbe, DriverError> {
        let did_vid = bus.read32(DID_VID);
        // wait_startup()
        bus.poll8(
            ACCESS,
            ACCESS_VALID,
            ACCESS_VALID,
            self.max_polls,
            "ACCESS.tpmRegValidSts",
        )
        .map_err(|e| match e {
            DriverError::Timeout { last, .. } => DriverError::NoDevice {
                what: "ACCESS never valid",
                value: last,
            },
            other => other,
        })?;
        let mut intmask = bus.read32(INT_ENABLE);
        intmask |= INT_CMD_READY | INT_LOCALITY_CHANGE | INT_DATA_AVAIL | INT_STS_VALID;
        intmask &= !INT_GLOBAL;
        self.request_locality(bus, 0)
            .map_err(|_| DriverError::NoDevice {
                what: "locality 0 not granted",
                value: 0,
            })?;
        bus.write32(INT_ENABLE, intmask);
        self.release_locality(bus, 0);

        // tpm2_probe(): GetCapability(TPM_CAP_TPM_PROPERTIES, TPM_PT_TOTAL_COMMANDS, 1).
        let mut cmd = Vec::with_capacity(22);
        cmd.extend_from_slice(&0x8001u16.to_be_bytes());
        cmd.extend_from_slice(&22u32.to_be_bytes());
        cmd.extend_from_slice(&0x0000_017Au32.to_be_bytes());
        cmd.extend_from_slice(&6u32.to_be_bytes());
        cmd.extend_from_slice(&0x129u32.to_be_bytes());
        cmd.extend_from_slice(&1u32.to_be_bytes());
        let rsp = self.transact(bus, 0, &cmd)?;
        let tpm2 = rsp.get(0..2) == Some(&[0x80, 0x01][..]);

        let rid = bus.read8(RID);
        // probe_itpm() reads the vendor id (16 bits) and only goes on for Intel.
        let _vendor = bus.read16(DID_VID);
        let intf_caps = bus.read32(INTF_CAPS);
        Ok(TisProbe {
            did_vid,
            rid,
            intf_caps,
            tpm2,
        })
    }

    /// check_locality() + request_locality().
    fn request_locality(&self, bus: &mut Bus<'_>, loc: u64) -> Result<(), DriverError> {
        let mask = ACCESS_ACTIVE_LOCALITY | ACCESS_VALID | ACCESS_REQUEST_USE;
        let want = ACCESS_ACTIVE_LOCALITY | ACCESS_VALID;
        if bus.read8(loc + ACCESS) & mask == want {
            return Ok(());
        }
        bus.write8(loc + ACCESS, ACCESS_REQUEST_USE);
        bus.poll8(
            loc + ACCESS,
            mask,
            want,
            self.max_polls,
            "ACCESS.activeLocality",
        )?;
        Ok(())
    }

    /// release_locality(): no wait.
    fn release_locality(&self, bus: &mut Bus<'_>, loc: u64) {
        bus.write8(loc + ACCESS, ACCESS_ACTIVE_LOCALITY);
    }

    /// tpm_tis_status(): an 8-bit STS read; a value with must-be-zero bits
    /// set counts as 0.
    fn status(&self, bus: &mut Bus<'_>, loc: u64) -> u8 {
        let s = bus.read8(loc + STS);
        if s & STS_READ_ZERO != 0 {
            0
        } else {
            s
        }
    }

    /// tpm_tis_ready(): commandReady, which also aborts a command.
    fn ready(&self, bus: &mut Bus<'_>, loc: u64) {
        bus.write8(loc + STS, STS_COMMAND_READY);
    }

    /// wait_for_tpm_stat() in polling mode.
    fn wait_stat(
        &self,
        bus: &mut Bus<'_>,
        loc: u64,
        mask: u8,
        what: &'static str,
    ) -> Result<u8, DriverError> {
        let mut last = 0;
        for _ in 0..self.max_polls.max(1) {
            last = self.status(bus, loc);
            if last & mask == mask {
                return Ok(last);
            }
        }
        Err(DriverError::Timeout {
            what,
            last: last.into(),
        })
    }

    /// get_burstcount(): 32-bit STS reads until burstCount is non-zero.
    fn burst_count(&self, bus: &mut Bus<'_>, loc: u64) -> Result<usize, DriverError> {
        let mut last = 0;
        for _ in 0..self.max_polls.max(1) {
            last = bus.read32(loc + STS);
            let burst = (last >> 8) & 0xFFFF;
            if burst != 0 {
                return Ok(burst as usize);
            }
        }
        Err(DriverError::Timeout {
            what: "STS.burstCount",
            last: last.into(),
        })
    }

    /// tpm_tis_send_data(); on failure the command is aborted (commandReady).
    fn send_data(&self, bus: &mut Bus<'_>, loc: u64, buf: &[u8]) -> Result<(), DriverError> {
        let r = self.try_send_data(bus, loc, buf);
        if r.is_err() {
            self.ready(bus, loc);
        }
        r
    }

    fn try_send_data(&self, bus: &mut Bus<'_>, loc: u64, buf: &[u8]) -> Result<(), DriverError> {
        let len = buf.len();
        if self.status(bus, loc) & STS_COMMAND_READY == 0 {
            self.ready(bus, loc);
            self.wait_stat(bus, loc, STS_COMMAND_READY, "STS.commandReady")?;
        }
        let mut count = 0;
        while count < len - 1 {
            let burst = self.burst_count(bus, loc)?.min(len - count - 1);
            for &b in &buf[count..count + burst] {
                bus.write8(loc + DATA_FIFO, b);
            }
            count += burst;
            self.wait_stat(bus, loc, STS_VALID, "STS.stsValid")?;
            let s = self.status(bus, loc);
            if s & STS_DATA_EXPECT == 0 {
                return Err(DriverError::Protocol {
                    what: "Expect clear before the last byte",
                    value: s.into(),
                });
            }
        }
        bus.write8(loc + DATA_FIFO, buf[count]);
        self.wait_stat(bus, loc, STS_VALID, "STS.stsValid")?;
        let s = self.status(bus, loc);
        if s & STS_DATA_EXPECT != 0 {
            return Err(DriverError::Protocol {
                what: "Expect still set after the last byte",
                value: s.into(),
            });
        }
        Ok(())
    }

    /// recv_data(): `count` bytes by burstCount, 8-bit FIFO reads.
    fn recv_data(
        &self,
        bus: &mut Bus<'_>,
        loc: u64,
        out: &mut Vec<u8>,
        count: usize,
    ) -> Result<(), DriverError> {
        let mut size = 0;
        while size < count {
            self.wait_stat(bus, loc, STS_DATA_AVAIL | STS_VALID, "STS.dataAvail")?;
            let burst = self.burst_count(bus, loc)?.min(count - size);
            for _ in 0..burst {
                out.push(bus.read8(loc + DATA_FIFO));
            }
            size += burst;
        }
        Ok(())
    }

    /// tpm_tis_try_recv().
    fn try_recv(&self, bus: &mut Bus<'_>, loc: u64) -> Result<Vec<u8>, DriverError> {
        let mut buf = Vec::with_capacity(TPM_HEADER_SIZE);
        self.recv_data(bus, loc, &mut buf, TPM_HEADER_SIZE)?;
        let expected = header_size(&buf).unwrap_or(0);
        if expected > self.buf_size || expected < TPM_HEADER_SIZE {
            return Err(DriverError::BadResponseSize {
                size: expected,
                max: self.buf_size,
            });
        }
        self.recv_data(bus, loc, &mut buf, expected - TPM_HEADER_SIZE)?;
        self.wait_stat(bus, loc, STS_VALID, "STS.stsValid")?;
        let s = self.status(bus, loc);
        if s & STS_DATA_AVAIL != 0 {
            return Err(DriverError::Protocol {
                what: "data left over after the response",
                value: s.into(),
            });
        }
        Ok(buf)
    }

    /// tpm_tis_recv(): retries with responseRetry on transfer errors, then
    /// commandReady.
    fn recv(&self, bus: &mut Bus<'_>, loc: u64) -> Result<Vec<u8>, DriverError> {
        let mut result = Err(DriverError::Canceled);
        for _ in 0..self.retries.max(1) {
            result = self.try_recv(bus, loc);
            match &result {
                Err(DriverError::Protocol { .. } | DriverError::BadResponseSize { .. }) => {
                    bus.write8(loc + STS, STS_RESPONSE_RETRY);
                }
                _ => break,
            }
        }
        self.ready(bus, loc);
        result
    }

    /// tpm_tis_send() + the polling of tpm_try_transmit() + tpm_tis_recv().
    fn transmit(&self, bus: &mut Bus<'_>, loc: u64, cmd: &[u8]) -> Result<Vec<u8>, DriverError> {
        // tpm_tis_send_main(): retry the transfer on -EIO.
        let mut sent = Err(DriverError::Canceled);
        for _ in 0..self.retries.max(1) {
            sent = self.send_data(bus, loc, cmd);
            if !matches!(sent, Err(DriverError::Protocol { .. })) {
                break;
            }
        }
        sent?;
        bus.write8(loc + STS, STS_GO);

        // tpm_try_transmit(): poll req_complete (dataAvail|stsValid); the
        // default req_canceled is a status of exactly commandReady.
        let mut last = 0;
        for _ in 0..self.max_polls.max(1) {
            last = self.status(bus, loc);
            if last & (STS_DATA_AVAIL | STS_VALID) == STS_DATA_AVAIL | STS_VALID {
                return self.recv(bus, loc);
            }
            if last == STS_COMMAND_READY {
                return Err(DriverError::Canceled);
            }
        }
        self.ready(bus, loc);
        Err(DriverError::Timeout {
            what: "STS.dataAvail after tpmGo",
            last: last.into(),
        })
    }
}

impl Driver for LinuxTis {
    fn transact(
        &mut self,
        bus: &mut Bus<'_>,
        locality: u8,
        command: &[u8],
    ) -> Result<Vec<u8>, DriverError> {
        check_request(locality, command, self.buf_size)?;
        let loc = u64::from(locality) * 0x1000;
        self.request_locality(bus, loc)?;
        let result = self.transmit(bus, loc, command);
        self.release_locality(bus, loc);
        result
    }
}
