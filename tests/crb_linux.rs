//! Linux `tpm_crb` against the CRB register model and the real libtpms
//! engine, end to end.
//!
//! The driver is `svtpm_drivers::LinuxCrb`, which replays
//! drivers/char/tpm/tpm_crb.c access by access: probe (`crb_map_io`), then
//! per command `tpm_chip_start` (LOC_CTRL request, wait LOC_STATE
//! locAssigned|regValid, CTRL_REQ cmdReady and wait for it to clear),
//! `crb_send` (CTRL_CANCEL=0, `memcpy_toio`, CTRL_START=1), the polling of
//! `tpm_try_transmit` (CTRL_START until 0), `crb_recv` (CTRL_STS error bit,
//! an 8-byte `memcpy_fromio` of the header, then the rest) and
//! `tpm_chip_stop` (goIdle, relinquish). `memcpy_toio`/`memcpy_fromio` are
//! modelled as x86 Linux compiles them: `movsb`/`movsw` to align, `rep movsl`,
//! trailing `movsw`/`movsb` — the form SEV-ES/SNP guests use too, since their
//! #VC handler emulates MOVS; only plain SEV and TDX guests unroll to bytes.
//!
//! libtpms is one per process: every test holds `LOCK`.
mod common;

use common::*;
use sha2::{Digest, Sha256};
use svtpm::backend::TpmMmio;
use svtpm::crb::{regs, Crb};
use svtpm::engine::{Engine, MemStorage};
use svtpm_drivers::{Access, AccessKind, Bus, CopyMode, CrbProbe, Driver, DriverError, LinuxCrb};

/// TPM_RC_COMMAND_SIZE.
const RC_COMMAND_SIZE: u32 = 0x142;
/// TPM_CAP_TPM_PROPERTIES and TPM_PT_FAMILY_INDICATOR ("2.0\0").
const CAP_TPM_PROPERTIES: u32 = 6;
const PT_FAMILY_INDICATOR: u32 = 0x100;

/// The register model, the engine behind it, and the Linux driver.
struct Guest {
    crb: Crb,
    engine: Engine,
    linux: LinuxCrb,
}

/// What one command cost on the bus.
#[derive(Debug)]
struct Cost {
    registers: usize,
    buffer: usize,
    total: usize,
}

impl Guest {
    fn boot(copy: CopyMode) -> Guest {
        let engine = Engine::start(Box::new(MemStorage::new())).expect("engine starts");
        let mut g = Guest {
            crb: Crb::default(),
            engine,
            linux: LinuxCrb::with_copy(copy),
        };
        // Driver load: crb_map_io.
        let mut bus = Bus::new(&mut g.crb, &mut g.engine);
        g.linux.probe(&mut bus, 0).expect("probe");
        g
    }

    /// One `/dev/tpm0` write+read; returns the response and the accesses.
    fn transact(&mut self, cmd: &[u8]) -> (Result<Vec<u8>, DriverError>, Vec<Access>) {
        let mut bus = Bus::new(&mut self.crb, &mut self.engine).with_trace();
        let r = self.linux.transact(&mut bus, 0, cmd);
        let trace = bus.take_trace();
        assert_eq!(bus.counts().total(), trace.len() as u64);
        (r, trace)
    }

    /// Sends `cmd`, prints what it cost, checks the access pattern.
    fn run(&mut self, name: &str, cmd: &[u8]) -> Vec<u8> {
        let (r, trace) = self.transact(cmd);
        let rsp = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        let cost = check_accesses(&trace, self.linux.copy, cmd.len(), rsp.len());
        println!(
            "{name:<24} cmd {:4} B rsp {:4} B: {:3} MMIO accesses ({} register, {} buffer)",
            cmd.len(),
            rsp.len(),
            cost.total,
            cost.registers,
            cost.buffer
        );
        rsp
    }
}

fn is_buffer(a: &Access) -> bool {
    (a.offset % regs::PAGE_SIZE) >= u64::from(regs::DATA_BUFFER)
}

/// Accesses a string copy of `len` bytes to/from an aligned buffer makes:
/// `rep movsl` dwords, then a `movsw` and a `movsb` for the tail.
fn string_copy_accesses(len: usize) -> usize {
    len / 4 + usize::from(len & 2 != 0) + usize::from(len & 1 != 0)
}

/// Checks one command's trace against tpm_crb's pattern and the model's
/// synchronous completion, and returns its cost.
fn check_accesses(trace: &[Access], copy: CopyMode, cmd_len: usize, rsp_len: usize) -> Cost {
    let (buffer, registers): (Vec<&Access>, Vec<&Access>) =
        trace.iter().partition(|a| is_buffer(a));
    // Every register access of tpm_crb is an ioread32/iowrite32.
    assert!(registers.iter().all(|a| a.size == 4), "{registers:x?}");
    // A command costs exactly 12 register accesses when every wait is
    // satisfied on the first poll: LOC_CTRL+LOC_STATE, CTRL_REQ+CTRL_REQ,
    // CTRL_CANCEL, CTRL_START, CTRL_START poll, CTRL_STS, goIdle write+poll,
    // relinquish write+poll.
    assert_eq!(registers.len(), 12, "{registers:x?}");
    let start = registers
        .iter()
        .position(|a| a.kind == AccessKind::Write && a.offset == u64::from(regs::CTRL_START))
        .expect("START written");
    let poll = registers[start + 1];
    assert_eq!(
        (poll.kind, poll.offset, poll.value),
        (AccessKind::Read, u64::from(regs::CTRL_START), 0),
        "START reads 0 right after the write"
    );
    let writes = buffer
        .iter()
        .filter(|a| a.kind == AccessKind::Write)
        .count();
    let reads = buffer.iter().filter(|a| a.kind == AccessKind::Read).count();
    match copy {
        CopyMode::StringOps => {
            assert_eq!(writes, string_copy_accesses(cmd_len));
            assert_eq!(
                reads,
                string_copy_accesses(8) + string_copy_accesses(rsp_len - 8)
            );
            assert!(buffer.iter().all(|a| a.offset % u64::from(a.size) == 0));
        }
        CopyMode::Unrolled => {
            assert_eq!((writes, reads), (cmd_len, rsp_len));
            assert!(buffer.iter().all(|a| a.size == 1));
        }
    }
    Cost {
        registers: registers.len(),
        buffer: buffer.len(),
        total: trace.len(),
    }
}

/// The value of the single property in a TPM2_GetCapability response.
fn property_value(resp: &[u8], property: u32) -> u32 {
    let p = expect_ok(resp);
    // moreData u8, capability u32, TPML_TAGGED_TPM_PROPERTY { count u32,
    // { property u32, value u32 }* }.
    assert_eq!(
        u32::from_be_bytes(p[1..5].try_into().unwrap()),
        CAP_TPM_PROPERTIES
    );
    assert!(u32::from_be_bytes(p[5..9].try_into().unwrap()) >= 1);
    assert_eq!(u32::from_be_bytes(p[9..13].try_into().unwrap()), property);
    u32::from_be_bytes(p[13..17].try_into().unwrap())
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

/// Startup, GetRandom, GetCapability, PCR extend/read, through `copy`.
fn real_commands(copy: CopyMode) {
    let mut g = Guest::boot(copy);
    expect_ok(&g.run("Startup(CLEAR)", &startup(SU_CLEAR)));

    let a = random_bytes(&g.run("GetRandom(32)", &get_random(32)));
    let b = random_bytes(&g.run("GetRandom(32)", &get_random(32)));
    assert_eq!((a.len(), b.len()), (32, 32));
    assert_ne!(a, b, "two random draws differ");

    let cap = get_capability(CAP_TPM_PROPERTIES, PT_FAMILY_INDICATOR, 1);
    let family = property_value(&g.run("GetCapability(family)", &cap), PT_FAMILY_INDICATOR);
    assert_eq!(family.to_be_bytes(), *b"2.0\0");

    // PCR 23 starts at zero and is extendable from locality 0.
    let d1 = sha256(&[b"first measurement"]);
    let d2 = sha256(&[b"second measurement"]);
    expect_ok(&g.run("PCR_Extend(23)", &pcr_extend(23, ALG_SHA256, &d1)));
    expect_ok(&g.run("PCR_Extend(23)", &pcr_extend(23, ALG_SHA256, &d2)));
    let pcr = pcr_value(&g.run("PCR_Read(23)", &pcr_read(23, ALG_SHA256)));
    let expected = sha256(&[&sha256(&[&[0u8; 32], &d1]), &d2]);
    assert_eq!(pcr, expected);

    let stats = g.crb.stats();
    assert_eq!(stats.commands, 7);
    assert_eq!(stats.bad_accesses, 0);
    assert_eq!(stats.buffer_relocations, 0);
}

#[test]
fn probe_finds_the_in_window_buffer() {
    let _l = engine_lock();
    let mut g = Guest::boot(CopyMode::StringOps);
    let mut bus = Bus::new(&mut g.crb, &mut g.engine).with_trace();
    let probe = g.linux.probe(&mut bus, 0).expect("probe");
    assert_eq!(
        probe,
        CrbProbe {
            cmd_offset: 0x80,
            cmd_size: 0xF80,
            rsp_offset: 0x80,
            rsp_size: 0xF80,
        }
    );
    // crb_map_io also reads INTF_ID (32-bit) to look for chunking.
    let intf_id = bus.read32(u64::from(regs::INTF_ID_LO));
    assert_eq!(intf_id & (1 << 10), 0, "no CRB chunking offered");
    let trace = bus.take_trace();
    assert!(trace.iter().all(|a| a.size == 4), "{trace:x?}");
    assert_eq!(g.linux.last_warning, None);
    // Probing leaves the TPM idle and unowned.
    assert_eq!(g.crb.active_locality(), None);
    assert_eq!(g.crb.read(u64::from(regs::CTRL_STS), 4), 2);
}

#[test]
fn locality_request_sets_the_active_locality_field() {
    let _l = engine_lock();
    let mut g = Guest::boot(CopyMode::StringOps);
    let mut bus = Bus::new(&mut g.crb, &mut g.engine);
    bus.write32(u64::from(regs::LOC_CTRL), 1);
    let state = bus
        .poll32(0, 0x82, 0x82, 10, "locAssigned")
        .expect("granted");
    assert_eq!((state >> 2) & 0x7, 0, "activeLocality = 0");
    assert_eq!(bus.counts().total(), 2, "granted on the first poll");
}

#[test]
fn real_commands_with_string_copies() {
    let _l = engine_lock();
    real_commands(CopyMode::StringOps);
}

#[test]
fn real_commands_with_unrolled_copies() {
    let _l = engine_lock();
    real_commands(CopyMode::Unrolled);
}

#[test]
fn oversized_commands_fail_and_the_next_one_works() {
    let _l = engine_lock();
    let mut g = Guest::boot(CopyMode::StringOps);
    expect_ok(&g.run("Startup(CLEAR)", &startup(SU_CLEAR)));

    // Longer than CMD_SIZE: tpm_crb refuses (-E2BIG) before touching the
    // buffer; only the CTRL_CANCEL clear and the locality/idle dance happen.
    let mut big = get_random(8);
    big.resize(regs::DATA_BUFFER_SIZE + 1, 0);
    let n = big.len() as u32;
    big[2..6].copy_from_slice(&n.to_be_bytes());
    let (r, trace) = g.transact(&big);
    assert_eq!(
        r,
        Err(DriverError::BadCommand {
            len: big.len(),
            max: regs::DATA_BUFFER_SIZE
        })
    );
    assert!(!trace.iter().any(is_buffer));

    // A command whose header claims more than the buffer holds reaches the
    // device, which answers TPM_RC_COMMAND_SIZE without running it.
    let mut liar = get_random(8);
    liar[2..6].copy_from_slice(&0x1000u32.to_be_bytes());
    let rsp = g.run("GetRandom(size 0x1000)", &liar);
    assert_eq!(header(&rsp).rc, RC_COMMAND_SIZE);
    assert_eq!(g.crb.stats().rejected_commands, 1);

    // The TPM keeps working.
    let r = random_bytes(&g.run("GetRandom(16)", &get_random(16)));
    assert_eq!(r.len(), 16);
}

#[test]
fn fatal_state_makes_the_driver_fail_with_eio() {
    let _l = engine_lock();
    let mut g = Guest::boot(CopyMode::StringOps);
    expect_ok(&g.run("Startup(CLEAR)", &startup(SU_CLEAR)));
    g.crb.enter_fatal();
    let (r, _) = g.transact(&get_random(8));
    assert!(
        matches!(r, Err(DriverError::Fatal { ctrl_sts }) if ctrl_sts & 1 == 1),
        "{r:?}"
    );
    assert_eq!(
        g.crb.stats().commands,
        1,
        "nothing ran after the fatal error"
    );
    // A platform reset brings it back; the TPM itself kept its state.
    g.crb.reset();
    let r = random_bytes(&g.run("GetRandom(8)", &get_random(8)));
    assert_eq!(r.len(), 8);
}
