//! The TPMs under test, behind one interface: a command in, a response out,
//! plus the MMIO accesses it took where there is an MMIO interface.
//!
//! - [`Direct`]: `svtpm::engine::Engine::execute`, no front end.
//! - [`ViaTis`]: the TIS register model driven by the Linux `tpm_tis` model.
//! - [`ViaCrb`]: the CRB register model driven by the Linux `tpm_crb` model.
//! - `swtpm::Swtpm` (in its own module): Debian's swtpm over TCP.
//!
//! The first three run in this process on the statically linked libtpms; only
//! one engine can exist at a time, so each owns its own and is dropped before
//! the next starts.

use anyhow::{Context, Result};
use svtpm::crb::Crb;
use svtpm::engine::{Engine, MemStorage};
use svtpm::tis::Tis;
use svtpm_drivers::{AccessCounts, Bus, Driver, LinuxCrb, LinuxTis};

/// Held by tests that start an engine: only one may exist in a process.
#[cfg(test)]
pub static ENGINE_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Locality every benchmark command uses (the OS locality).
const LOCALITY: u8 = 0;

/// A TPM the benchmark can send commands to.
pub trait Tpm {
    /// Sends one command and returns the complete response.
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>>;

    /// MMIO accesses so far, for TPMs reached through a register interface.
    fn mmio_counts(&self) -> Option<AccessCounts> {
        None
    }
}

/// A freshly manufactured engine on in-memory storage.
fn fresh_engine() -> Result<Engine> {
    Engine::start(Box::new(MemStorage::new())).context("starting the svtpm engine")
}

/// The engine called directly.
#[derive(Debug)]
pub struct Direct {
    engine: Engine,
}

impl Direct {
    pub fn start() -> Result<Self> {
        Ok(Self {
            engine: fresh_engine()?,
        })
    }
}

impl Tpm for Direct {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>> {
        Ok(self.engine.execute(LOCALITY, command))
    }
}

fn add(total: &mut AccessCounts, more: AccessCounts) {
    total.reads += more.reads;
    total.writes += more.writes;
}

/// The engine behind the TIS model, driven like Linux tpm_tis.
#[derive(Debug)]
pub struct ViaTis {
    engine: Engine,
    tis: Tis,
    driver: LinuxTis,
    counts: AccessCounts,
}

impl ViaTis {
    /// Starts a fresh engine and runs the driver's probe (not counted).
    pub fn start() -> Result<Self> {
        let mut engine = fresh_engine()?;
        let mut tis = Tis::new();
        let mut driver = LinuxTis::new();
        let mut bus = Bus::new(&mut tis, &mut engine);
        driver
            .probe(&mut bus)
            .map_err(|e| anyhow::anyhow!("tpm_tis probe failed: {e}"))?;
        Ok(Self {
            engine,
            tis,
            driver,
            counts: AccessCounts::default(),
        })
    }
}

impl Tpm for ViaTis {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>> {
        let mut bus = Bus::new(&mut self.tis, &mut self.engine);
        let resp = self
            .driver
            .transact(&mut bus, LOCALITY, command)
            .map_err(|e| anyhow::anyhow!("tpm_tis driver: {e}"));
        add(&mut self.counts, bus.counts());
        resp
    }

    fn mmio_counts(&self) -> Option<AccessCounts> {
        Some(self.counts)
    }
}

/// The engine behind the CRB model, driven like Linux tpm_crb.
#[derive(Debug)]
pub struct ViaCrb {
    engine: Engine,
    crb: Crb,
    driver: LinuxCrb,
    counts: AccessCounts,
}

impl ViaCrb {
    /// Starts a fresh engine and runs the driver's probe (not counted).
    pub fn start() -> Result<Self> {
        let mut engine = fresh_engine()?;
        let mut crb = Crb::default();
        let mut driver = LinuxCrb::new();
        let mut bus = Bus::new(&mut crb, &mut engine);
        driver
            .probe(&mut bus, LOCALITY)
            .map_err(|e| anyhow::anyhow!("tpm_crb probe failed: {e}"))?;
        Ok(Self {
            engine,
            crb,
            driver,
            counts: AccessCounts::default(),
        })
    }
}

impl Tpm for ViaCrb {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>> {
        let mut bus = Bus::new(&mut self.crb, &mut self.engine);
        let resp = self
            .driver
            .transact(&mut bus, LOCALITY, command)
            .map_err(|e| anyhow::anyhow!("tpm_crb driver: {e}"));
        add(&mut self.counts, bus.counts());
        resp
    }

    fn mmio_counts(&self) -> Option<AccessCounts> {
        Some(self.counts)
    }
}
