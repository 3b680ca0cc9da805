//! The bus between a driver model and a register model: every guest access
//! goes through here, is counted, and may be recorded.

use svtpm::backend::{TpmBackend, TpmMmio};

use crate::DriverError;

/// Direction of one register access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// A guest load.
    Read,
    /// A guest store.
    Write,
}

/// One recorded register access (the information a VM exit carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Load or store.
    pub kind: AccessKind,
    /// Offset from the interface base (0xFED40000).
    pub offset: u64,
    /// Width in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// Value read or written (zero-extended).
    pub value: u64,
}

/// How many accesses went over the bus: in production, one VM exit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessCounts {
    /// Guest loads.
    pub reads: u64,
    /// Guest stores.
    pub writes: u64,
}

impl AccessCounts {
    /// Loads plus stores.
    pub fn total(&self) -> u64 {
        self.reads + self.writes
    }
}

/// Carries a driver's accesses to a register model (and, through it, to the
/// TPM backend that runs commands), counting each one.
pub struct Bus<'a> {
    mmio: &'a mut dyn TpmMmio,
    backend: &'a mut dyn TpmBackend,
    counts: AccessCounts,
    trace: Option<Vec<Access>>,
}

impl std::fmt::Debug for Bus<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("counts", &self.counts)
            .field("tracing", &self.trace.is_some())
            .finish()
    }
}

impl<'a> Bus<'a> {
    /// A bus to `mmio`, whose command-starting writes run on `backend`.
    pub fn new(mmio: &'a mut dyn TpmMmio, backend: &'a mut dyn TpmBackend) -> Self {
        Self {
            mmio,
            backend,
            counts: AccessCounts::default(),
            trace: None,
        }
    }

    /// Also records every access from now on (see [`Bus::take_trace`]).
    pub fn with_trace(mut self) -> Self {
        self.trace = Some(Vec::new());
        self
    }

    /// Accesses counted since creation or the last [`Bus::reset_counts`].
    pub fn counts(&self) -> AccessCounts {
        self.counts
    }

    /// Zeroes the counters.
    pub fn reset_counts(&mut self) {
        self.counts = AccessCounts::default();
    }

    /// The accesses recorded so far (empty unless built with
    /// [`Bus::with_trace`]); recording continues with an empty log.
    pub fn take_trace(&mut self) -> Vec<Access> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// A load of `size` bytes at `offset`.
    pub fn read(&mut self, offset: u64, size: u8) -> u64 {
        let value = self.mmio.read(offset, size);
        self.counts.reads += 1;
        if let Some(t) = self.trace.as_mut() {
            t.push(Access {
                kind: AccessKind::Read,
                offset,
                size,
                value,
            });
        }
        value
    }

    /// A store of the low `size` bytes of `value` at `offset`.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) {
        self.mmio.write(self.backend, offset, size, value);
        self.counts.writes += 1;
        if let Some(t) = self.trace.as_mut() {
            t.push(Access {
                kind: AccessKind::Write,
                offset,
                size,
                value,
            });
        }
    }

    /// `readb`.
    pub fn read8(&mut self, offset: u64) -> u8 {
        self.read(offset, 1) as u8
    }

    /// `readw`.
    pub fn read16(&mut self, offset: u64) -> u16 {
        self.read(offset, 2) as u16
    }

    /// `readl`.
    pub fn read32(&mut self, offset: u64) -> u32 {
        self.read(offset, 4) as u32
    }

    /// `writeb`.
    pub fn write8(&mut self, offset: u64, value: u8) {
        self.write(offset, 1, value.into());
    }

    /// `writew`.
    pub fn write16(&mut self, offset: u64, value: u16) {
        self.write(offset, 2, value.into());
    }

    /// `writel`.
    pub fn write32(&mut self, offset: u64, value: u32) {
        self.write(offset, 4, value.into());
    }

    /// Reads a 32-bit register until `(value & mask) == want`, at most
    /// `max_polls` times.
    pub fn poll32(
        &mut self,
        offset: u64,
        mask: u32,
        want: u32,
        max_polls: u32,
        what: &'static str,
    ) -> Result<u32, DriverError> {
        let mut last = 0;
        for _ in 0..max_polls.max(1) {
            last = self.read32(offset);
            if last & mask == want {
                return Ok(last);
            }
        }
        Err(DriverError::Timeout {
            what,
            last: last.into(),
        })
    }

    /// Reads an 8-bit register until `(value & mask) == want`, at most
    /// `max_polls` times.
    pub fn poll8(
        &mut self,
        offset: u64,
        mask: u8,
        want: u8,
        max_polls: u32,
        what: &'static str,
    ) -> Result<u8, DriverError> {
        let mut last = 0;
        for _ in 0..max_polls.max(1) {
            last = self.read8(offset);
            if last & mask == want {
                return Ok(last);
            }
        }
        Err(DriverError::Timeout {
            what,
            last: last.into(),
        })
    }
}
