//! The simulated machine: one thread owns the TPM engine, the register model
//! (TIS or CRB) and the guest driver model, and serves requests from the
//! socket threads one at a time. Every TPM command goes from the driver
//! through the register model to the engine, access by access, exactly as a
//! guest's would.
//!
//! Power follows the reference simulator: power-on of a powered TPM is a
//! no-op, power-off stops the engine (volatile state is lost; NV state is
//! already in storage), reset stops and restarts it, and commands to a
//! powered-off TPM get an empty response.

use std::sync::mpsc;
use std::thread;

use svtpm::backend::TpmMmio;
use svtpm::engine::{Engine, NvStorage};
use svtpm_drivers::{Bus, CopyMode, Driver, DriverError, LinuxCrb, LinuxTis};

use crate::protocol::code;

/// Which register interface carries the commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Interface {
    /// TIS/FIFO, driven by the Linux `tpm_tis` model.
    Tis,
    /// CRB, driven by the Linux `tpm_crb` model.
    Crb,
}

/// Opens the NV storage for a power-on.
pub type StorageOpener = Box<dyn FnMut() -> Result<Box<dyn NvStorage + Send>, String> + Send>;

/// A request to the device thread. Each carries a channel for the answer.
#[derive(Debug)]
enum Request {
    Command {
        locality: u8,
        command: Vec<u8>,
        reply: mpsc::Sender<Vec<u8>>,
    },
    Hash {
        data: Vec<u8>,
        reply: mpsc::Sender<()>,
    },
    Signal {
        signal: u32,
        reply: mpsc::Sender<()>,
    },
    Stop {
        reply: mpsc::Sender<()>,
    },
}

/// How the socket threads reach the device thread.
#[derive(Debug, Clone)]
pub struct DeviceHandle {
    tx: mpsc::Sender<Request>,
}

impl DeviceHandle {
    /// Runs a TPM command; an empty response means the TPM is powered off
    /// (or the device thread has ended).
    pub fn command(&self, locality: u8, command: Vec<u8>) -> Vec<u8> {
        let (reply, rx) = mpsc::channel();
        let req = Request::Command {
            locality,
            command,
            reply,
        };
        if self.tx.send(req).is_err() {
            return Vec::new();
        }
        rx.recv().unwrap_or_default()
    }

    /// Runs a `_TPM_Hash_Start/Data/End` sequence over `data`.
    pub fn hash(&self, data: Vec<u8>) {
        let (reply, rx) = mpsc::channel();
        if self.tx.send(Request::Hash { data, reply }).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Delivers a platform signal (a `protocol::code` value).
    pub fn signal(&self, signal: u32) {
        let (reply, rx) = mpsc::channel();
        if self.tx.send(Request::Signal { signal, reply }).is_ok() {
            let _ = rx.recv();
        }
    }

    /// Powers off and ends the device thread.
    pub fn stop(&self) {
        let (reply, rx) = mpsc::channel();
        if self.tx.send(Request::Stop { reply }).is_ok() {
            let _ = rx.recv();
        }
    }
}

/// Settings of the simulated machine.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Register interface.
    pub interface: Interface,
    /// How the CRB driver copies buffers.
    pub crb_copy: CopyMode,
}

/// The register model and the driver that talks to it.
enum Frontend {
    Tis(svtpm::tis::Tis, LinuxTis),
    /// Boxed: the CRB model carries its 3968-byte data buffer.
    Crb(Box<svtpm::crb::Crb>, LinuxCrb),
}

impl Frontend {
    /// The interface after a platform reset; `established` mirrors the
    /// engine's persistent tpmEstablished flag (TIS ACCESS bit 0, CRB
    /// LOC_STATE bit 0).
    fn new(config: &Config, established: bool) -> Self {
        match config.interface {
            Interface::Tis => Frontend::Tis(
                svtpm::tis::Tis::with_established(established),
                LinuxTis::new(),
            ),
            Interface::Crb => {
                let mut crb = Box::<svtpm::crb::Crb>::default();
                if established {
                    crb.set_established();
                }
                Frontend::Crb(crb, LinuxCrb::with_copy(config.crb_copy))
            }
        }
    }

    /// Records a dynamic root of trust the engine now reports as
    /// established. The TIS model takes the flag only at reset, so it is
    /// rebuilt; this happens between commands, when no locality is held.
    fn set_established(&mut self) {
        match self {
            Frontend::Tis(m, _) if !m.established() => {
                *m = svtpm::tis::Tis::with_established(true);
            }
            Frontend::Tis(..) => {}
            Frontend::Crb(m, _) => m.set_established(),
        }
    }

    fn parts(&mut self) -> (&mut dyn TpmMmio, &mut dyn Driver) {
        match self {
            Frontend::Tis(m, d) => (m, d),
            Frontend::Crb(m, d) => (m.as_mut(), d),
        }
    }
}

/// A powered TPM.
struct Powered {
    engine: Engine,
    front: Frontend,
}

impl Powered {
    fn transact(
        &mut self,
        locality: u8,
        command: &[u8],
    ) -> Result<(Vec<u8>, u64, u64), DriverError> {
        let (mmio, driver) = self.front.parts();
        let mut bus = Bus::new(mmio, &mut self.engine);
        let rsp = driver.transact(&mut bus, locality, command)?;
        let c = bus.counts();
        Ok((rsp, c.reads, c.writes))
    }

    /// Boot-time probe, as the guest's driver does when it loads.
    fn probe(&mut self) -> Result<String, DriverError> {
        match &mut self.front {
            Frontend::Tis(m, d) => {
                let mut bus = Bus::new(m, &mut self.engine);
                let p = d.probe(&mut bus)?;
                Ok(format!(
                    "TIS DID_VID {:#010x} RID {} INTF_CAPS {:#010x} tpm2={} ({} accesses)",
                    p.did_vid,
                    p.rid,
                    p.intf_caps,
                    p.tpm2,
                    bus.counts().total()
                ))
            }
            Frontend::Crb(m, d) => {
                let mut bus = Bus::new(m.as_mut(), &mut self.engine);
                let p = d.probe(&mut bus, 0)?;
                Ok(format!(
                    "CRB command buffer +{:#x} ({} bytes), response buffer +{:#x} ({} bytes) ({} accesses)",
                    p.cmd_offset,
                    p.cmd_size,
                    p.rsp_offset,
                    p.rsp_size,
                    bus.counts().total()
                ))
            }
        }
    }
}

enum Power {
    On(Box<Powered>),
    /// Off; the storage is opened again at the next power-on.
    Off,
}

struct Device {
    config: Config,
    open_storage: StorageOpener,
    power: Power,
    cycles: u64,
}

/// A 10-byte TPM2 error response with `rc`.
fn error_response(rc: u32) -> Vec<u8> {
    let mut r = Vec::with_capacity(10);
    r.extend_from_slice(&0x8001u16.to_be_bytes());
    r.extend_from_slice(&10u32.to_be_bytes());
    r.extend_from_slice(&rc.to_be_bytes());
    r
}

/// TPM_RC_FAILURE.
const RC_FAILURE: u32 = 0x101;
/// TPM_RC_COMMAND_SIZE.
const RC_COMMAND_SIZE: u32 = 0x142;

impl Device {
    fn power_on(&mut self) -> Result<(), String> {
        if matches!(self.power, Power::On(_)) {
            return Ok(());
        }
        let storage = (self.open_storage)()?;
        let mut builder = Engine::builder(storage);
        if self.config.interface == Interface::Crb {
            // Advertise no more than the CRB data buffer carries.
            builder = builder.buffer_size(svtpm::crb::regs::DATA_BUFFER_SIZE as u32);
        }
        let mut engine = builder
            .start()
            .map_err(|e| format!("engine did not start: {e}"))?;
        let established = engine.established().unwrap_or_else(|e| {
            log::warn!("cannot read tpmEstablished: {e}; reporting it clear");
            false
        });
        let mut powered = Box::new(Powered {
            engine,
            front: Frontend::new(&self.config, established),
        });
        let probe = powered
            .probe()
            .map_err(|e| format!("driver probe failed: {e}"))?;
        self.cycles += 1;
        log::info!("power on #{}: engine started; {probe}", self.cycles);
        self.power = Power::On(powered);
        Ok(())
    }

    fn power_off(&mut self) {
        if let Power::On(p) = std::mem::replace(&mut self.power, Power::Off) {
            // The storage handed back is dropped: the next power-on reads
            // the state from storage again, as a reboot does, so it resumes
            // from what is durable (not from what a failed store left in
            // memory).
            drop(p.engine.stop());
            log::info!("power off: engine stopped, volatile state dropped");
        }
    }

    fn command(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        let Power::On(p) = &mut self.power else {
            log::warn!("command while powered off: empty response");
            return Vec::new();
        };
        let cc = command
            .get(6..10)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        match p.transact(locality, command) {
            Ok((rsp, reads, writes)) => {
                log::debug!(
                    "cc {cc:#x} locality {locality}: {} -> {} bytes, {reads} reads + {writes} writes",
                    command.len(),
                    rsp.len()
                );
                rsp
            }
            Err(e) => {
                // The guest's driver would fail the write() (-E2BIG, -EIO,
                // -ETIME); a simulator client can only get a TPM response.
                let (rc, name) = match e {
                    DriverError::BadCommand { .. } => (RC_COMMAND_SIZE, "TPM_RC_COMMAND_SIZE"),
                    _ => (RC_FAILURE, "TPM_RC_FAILURE"),
                };
                log::error!("cc {cc:#x} locality {locality}: driver failed: {e}; answering {name}");
                error_response(rc)
            }
        }
    }

    fn signal(&mut self, signal: u32) {
        match signal {
            code::POWER_ON => {
                if let Err(e) = self.power_on() {
                    log::error!("power on failed: {e}; the TPM stays off");
                }
            }
            code::POWER_OFF => self.power_off(),
            code::RESET | code::RESTART => {
                if matches!(self.power, Power::On(_)) {
                    log::info!("TPM reset (signal {signal})");
                    self.power_off();
                    if let Err(e) = self.power_on() {
                        log::error!("power on after reset failed: {e}; the TPM stays off");
                    }
                }
            }
            code::NV_ON | code::NV_OFF => {
                log::debug!(
                    "NV {} signal acknowledged (NV is always available here)",
                    if signal == code::NV_ON { "on" } else { "off" }
                );
            }
            code::PHYS_PRES_ON | code::PHYS_PRES_OFF => {
                log::info!(
                    "physical presence signal {signal} acknowledged (not wired to the engine)"
                );
            }
            code::CANCEL_ON | code::CANCEL_OFF | code::KEY_CACHE_ON | code::KEY_CACHE_OFF => {
                log::debug!(
                    "signal {signal} acknowledged (commands run to completion synchronously)"
                );
            }
            other => log::warn!("ignoring unexpected signal {other}"),
        }
    }

    fn hash(&mut self, data: &[u8]) {
        let Power::On(p) = &mut self.power else {
            log::warn!("hash sequence while powered off: ignored");
            return;
        };
        match p.engine.hash_sequence(data) {
            Ok(()) => {
                log::info!("_TPM_Hash sequence over {} bytes", data.len());
                if let Ok(true) = p.engine.established() {
                    p.front.set_established();
                }
            }
            Err(e) => log::error!("_TPM_Hash sequence failed: {e}"),
        }
    }
}

/// Starts the device thread, powered on. Fails if the first power-on fails
/// (e.g. the state cannot be read): the simulator must not come up with a
/// fresh TPM in place of one it could not load.
pub fn spawn(
    config: Config,
    open_storage: StorageOpener,
) -> Result<(DeviceHandle, thread::JoinHandle<()>), String> {
    let (tx, rx) = mpsc::channel::<Request>();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let join = thread::Builder::new()
        .name("tpm-device".into())
        .spawn(move || {
            let mut dev = Device {
                config,
                open_storage,
                power: Power::Off,
                cycles: 0,
            };
            let started = dev.power_on();
            let ok = started.is_ok();
            let _ = ready_tx.send(started);
            if !ok {
                return;
            }
            while let Ok(req) = rx.recv() {
                match req {
                    Request::Command {
                        locality,
                        command,
                        reply,
                    } => {
                        let _ = reply.send(dev.command(locality, &command));
                    }
                    Request::Hash { data, reply } => {
                        dev.hash(&data);
                        let _ = reply.send(());
                    }
                    Request::Signal { signal, reply } => {
                        dev.signal(signal);
                        let _ = reply.send(());
                    }
                    Request::Stop { reply } => {
                        dev.power_off();
                        log::info!("stop requested: device thread ends");
                        let _ = reply.send(());
                        return;
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the device thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((DeviceHandle { tx }, join)),
        Ok(Err(e)) => {
            let _ = join.join();
            Err(e)
        }
        Err(_) => Err("device thread ended during power-on".into()),
    }
}
