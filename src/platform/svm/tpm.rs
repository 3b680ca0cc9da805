//! The emulated TPM device: the TIS or CRB register model behind the TPM
//! window, in front of a [`TpmBackend`] (the engine), with per-command
//! accounting of the exits the guest's driver needed.
//!
//! Exit accounting: every exit that reaches the window counts; when a
//! command executes, the record for it holds the exits since the previous
//! command executed, which is the previous response's read-out plus this
//! command's send (and any status polling in between).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::backend::{TpmBackend, TpmMmio};
use crate::crb::Crb;
use crate::mmio::{MmioBus, MmioWindow};
use crate::tis::Tis;

/// Which register interface the guest sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interface {
    /// FIFO (TIS/PTP), the default: Linux `tpm_tis.force=1` and OVMF find it
    /// without ACPI tables.
    Tis,
    /// CRB.
    Crb,
}

impl Interface {
    /// From the image command line: `svtpm.interface=crb` selects CRB,
    /// anything else TIS.
    pub fn from_cmdline(cmdline: &str) -> Self {
        match cmdline
            .split_whitespace()
            .find_map(|w| w.strip_prefix("svtpm.interface="))
        {
            Some("crb") => Self::Crb,
            _ => Self::Tis,
        }
    }

    /// The command/response size the engine must advertise behind this
    /// interface: CRB carries at most its 0xF80-byte data buffer; the TIS
    /// FIFO takes whatever the engine does.
    pub fn engine_buffer_size(self) -> Option<u32> {
        match self {
            Self::Tis => None,
            Self::Crb => Some(crate::crb::regs::DATA_BUFFER_SIZE as u32),
        }
    }
}

/// One executed command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandRecord {
    /// Command code (0 if the command was shorter than a header).
    pub code: u32,
    /// Locality it was sent from.
    pub locality: u8,
    /// Response code (`u32::MAX` if the response had no header).
    pub rc: u32,
    /// Command size in bytes.
    pub command_len: usize,
    /// Response size in bytes.
    pub response_len: usize,
    /// Window exits since the previous command executed.
    pub exits: u64,
}

/// Exits per command code over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommandStats {
    /// Commands executed.
    pub count: u64,
    /// Sum of their exits.
    pub exits: u64,
    /// Fewest exits for one.
    pub min_exits: u64,
    /// Most exits for one.
    pub max_exits: u64,
}

impl CommandStats {
    fn add(&mut self, exits: u64) {
        self.min_exits = if self.count == 0 {
            exits
        } else {
            self.min_exits.min(exits)
        };
        self.max_exits = self.max_exits.max(exits);
        self.count += 1;
        self.exits += exits;
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

/// Counts and records around the backend.
struct Recorder<'a, B: TpmBackend> {
    backend: &'a mut B,
    exits: &'a mut u64,
    records: &'a mut Vec<CommandRecord>,
    stats: &'a mut BTreeMap<u32, CommandStats>,
}

impl<B: TpmBackend> TpmBackend for Recorder<'_, B> {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        let response = self.backend.execute(locality, command);
        let record = CommandRecord {
            code: be32(command, 6).unwrap_or(0),
            locality,
            rc: be32(&response, 6).unwrap_or(u32::MAX),
            command_len: command.len(),
            response_len: response.len(),
            exits: core::mem::take(self.exits),
        };
        self.stats.entry(record.code).or_default().add(record.exits);
        self.records.push(record);
        response
    }
}

/// The register model in use.
#[derive(Debug)]
enum Frontend {
    Tis(Tis),
    Crb(alloc::boxed::Box<Crb>),
}

/// The TPM device behind the window.
#[derive(Debug)]
pub struct TpmDevice<B: TpmBackend> {
    frontend: Frontend,
    backend: B,
    exits: u64,
    total_exits: u64,
    records: Vec<CommandRecord>,
    stats: BTreeMap<u32, CommandStats>,
}

impl<B: TpmBackend> TpmDevice<B> {
    /// A device offering `interface` in front of `backend`.
    pub fn new(interface: Interface, backend: B) -> Self {
        Self {
            frontend: match interface {
                Interface::Tis => Frontend::Tis(Tis::new()),
                Interface::Crb => Frontend::Crb(alloc::boxed::Box::default()),
            },
            backend,
            exits: 0,
            total_exits: 0,
            records: Vec::new(),
            stats: BTreeMap::new(),
        }
    }

    /// Counts one exit into the window.
    pub fn count_exit(&mut self) {
        self.exits += 1;
        self.total_exits += 1;
    }

    /// All window exits so far.
    pub fn total_exits(&self) -> u64 {
        self.total_exits
    }

    /// Exits per command code, over the whole run.
    pub fn stats(&self) -> &BTreeMap<u32, CommandStats> {
        &self.stats
    }

    /// The commands executed since the last call.
    pub fn take_records(&mut self) -> Vec<CommandRecord> {
        core::mem::take(&mut self.records)
    }

    fn mmio(&mut self) -> &mut dyn TpmMmio {
        match &mut self.frontend {
            Frontend::Tis(t) => t,
            Frontend::Crb(c) => &mut **c,
        }
    }
}

impl<B: TpmBackend> MmioBus for TpmDevice<B> {
    fn read(&mut self, gpa: u64, size: u8) -> u64 {
        let offset = gpa.wrapping_sub(MmioWindow::TPM.base);
        self.mmio().read(offset, size)
    }

    fn write(&mut self, gpa: u64, size: u8, value: u64) {
        let offset = gpa.wrapping_sub(MmioWindow::TPM.base);
        let (frontend, mut rec) = match self {
            Self {
                frontend,
                backend,
                exits,
                records,
                stats,
                ..
            } => (
                frontend,
                Recorder {
                    backend,
                    exits,
                    records,
                    stats,
                },
            ),
        };
        match frontend {
            Frontend::Tis(t) => t.write(&mut rec, offset, size, value),
            Frontend::Crb(c) => c.write(&mut rec, offset, size, value),
        }
    }
}

/// A bus for svtpm's own slot: reads return all-ones and writes vanish, as
/// for physical addresses where nothing is mapped. No byte of svtpm's memory
/// is read or written through it.
#[derive(Clone, Copy, Debug, Default)]
pub struct NothingBus;

impl MmioBus for NothingBus {
    fn read(&mut self, _gpa: u64, size: u8) -> u64 {
        crate::mmio::regs::width_mask(size)
    }

    fn write(&mut self, _gpa: u64, _size: u8, _value: u64) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every command with success and remembers it.
    #[derive(Default)]
    struct Echo(Vec<Vec<u8>>);

    impl TpmBackend for Echo {
        fn execute(&mut self, _locality: u8, command: &[u8]) -> Vec<u8> {
            self.0.push(command.to_vec());
            alloc::vec![0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0]
        }
    }

    const BASE: u64 = 0xFED4_0000;
    const GET_RANDOM: [u8; 12] = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7B, 0, 8];

    /// Drives a TIS command the way Linux does, counting an exit per access.
    fn tis_command(dev: &mut TpmDevice<Echo>, cmd: &[u8]) {
        let rd = |dev: &mut TpmDevice<Echo>, off: u64, size: u8| {
            dev.count_exit();
            dev.read(BASE + off, size)
        };
        assert_eq!(rd(dev, 0, 1) & 0x80, 0x80);
        let wr = |dev: &mut TpmDevice<Echo>, off: u64, size: u8, v: u64| {
            dev.count_exit();
            dev.write(BASE + off, size, v)
        };
        wr(dev, 0, 1, 0x02); // request locality 0
        wr(dev, 0x18, 1, 0x40); // commandReady
        for &b in cmd {
            wr(dev, 0x24, 1, u64::from(b));
        }
        wr(dev, 0x18, 1, 0x20); // tpmGo
        let sts = rd(dev, 0x18, 4);
        assert_eq!(sts & 0x90, 0x90, "dataAvail");
        let mut resp = Vec::new();
        for _ in 0..10 {
            resp.push(rd(dev, 0x24, 1) as u8);
        }
        assert_eq!(resp[..2], [0x80, 0x01]);
    }

    #[test]
    fn tis_commands_are_recorded_with_their_exits() {
        let mut dev = TpmDevice::new(Interface::Tis, Echo::default());
        tis_command(&mut dev, &GET_RANDOM);
        let recs = dev.take_records();
        assert_eq!(recs.len(), 1);
        let r = recs[0];
        assert_eq!((r.code, r.locality, r.rc), (0x17B, 0, 0));
        assert_eq!((r.command_len, r.response_len), (12, 10));
        // access read, locality, commandReady, 12 FIFO bytes, tpmGo.
        assert_eq!(r.exits, 1 + 1 + 1 + 12 + 1);
        assert_eq!(dev.backend.0, [GET_RANDOM.to_vec()]);
        // The next command's record includes the previous response read.
        tis_command(&mut dev, &GET_RANDOM);
        let r = dev.take_records()[0];
        assert_eq!(r.exits, 1 + 10 + 1 + 1 + 1 + 12 + 1);
        assert!(dev.take_records().is_empty());
        assert_eq!(dev.total_exits(), 2 * (16 + 11));
        let stats = dev.stats()[&0x17B];
        assert_eq!(
            stats,
            CommandStats {
                count: 2,
                exits: 16 + 27,
                min_exits: 16,
                max_exits: 27
            }
        );
    }

    #[test]
    fn crb_commands_run_through_the_buffer() {
        let mut dev = TpmDevice::new(Interface::Crb, Echo::default());
        dev.write(BASE + 0x08, 4, 1); // LOC_CTRL request
        assert_eq!(dev.read(BASE, 4) & 0x82, 0x82, "locAssigned, regValid");
        dev.write(BASE + 0x40, 4, 1); // CTRL_REQ cmdReady
        for (i, &b) in GET_RANDOM.iter().enumerate() {
            dev.write(BASE + 0x80 + i as u64, 1, u64::from(b));
        }
        dev.write(BASE + 0x4C, 4, 1); // START
        assert_eq!(dev.read(BASE + 0x4C, 4), 0);
        assert_eq!(dev.take_records()[0].code, 0x17B);
        assert_eq!(dev.read(BASE + 0x80, 2), 0x0180);
    }

    #[test]
    fn interface_from_cmdline() {
        assert_eq!(Interface::from_cmdline(""), Interface::Tis);
        assert_eq!(
            Interface::from_cmdline("svtpm.log=debug svtpm.interface=crb"),
            Interface::Crb
        );
        assert_eq!(
            Interface::from_cmdline("svtpm.interface=tis"),
            Interface::Tis
        );
        assert_eq!(
            Interface::from_cmdline("svtpm.interface=bogus"),
            Interface::Tis
        );
    }

    #[test]
    fn nothing_bus_reads_ones() {
        let mut b = NothingBus;
        assert_eq!(b.read(0x1_0000_0000, 1), 0xFF);
        assert_eq!(b.read(0x1_0000_0000, 4), 0xFFFF_FFFF);
        assert_eq!(b.read(0x1_0000_0000, 8), u64::MAX);
        b.write(0x1_0000_0000, 8, 0);
    }
}
