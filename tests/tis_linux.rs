//! Linux `tpm_tis` against the TIS register model and the real libtpms
//! engine, end to end.
//!
//! The driver is `svtpm_drivers::LinuxTis`, which replays
//! drivers/char/tpm/tpm_tis_core.c (MMIO phy, polling as by default since
//! 6.5) access by access:
//! - probe (`tpm_tis_core_init`): read32 DID_VID, poll read8 ACCESS for
//!   tpmRegValidSts, read32 INT_ENABLE, request locality 0 (write8
//!   ACCESS=requestUse, poll until ACCESS & 0xA2 == 0xA0), write32
//!   INT_ENABLE with the global enable clear, release (write8
//!   ACCESS=activeLocality), the TPM2 probe (GetCapability of
//!   TPM_PT_TOTAL_COMMANDS: tag 0x8001 means TPM 2.0), read8 RID, the iTPM
//!   vendor check (read16 DID_VID), read32 INTF_CAPS;
//! - send (`tpm_tis_send_data`): commandReady if STS does not show it,
//!   burstCount from 32-bit STS reads, that many 8-bit FIFO writes for the
//!   first len-1 bytes, stsValid and Expect=1 after each burst, the last
//!   byte alone, Expect=0, then tpmGo;
//! - completion: read8 STS until dataAvail|stsValid;
//! - receive (`tpm_tis_recv`): 10-byte header then the rest by burstCount
//!   with 8-bit FIFO reads, dataAvail must then be clear, responseRetry on
//!   transfer errors, commandReady at the end; then the locality is released.
//!
//! Every command runs on libtpms; every register access is counted and the
//! counts are printed per command (one VM exit each in production).
//!
//! libtpms is one per process: every test holds `LOCK`.
mod common;

use common::*;
use sha2::{Digest, Sha256};
use svtpm::engine::{Engine, MemStorage};
use svtpm::tis::{regs, Tis};
use svtpm_drivers::{Access, AccessKind, Bus, Driver, LinuxTis, TisProbe};

/// TPM_CAP_TPM_PROPERTIES, TPM_PT_FAMILY_INDICATOR and its value "2.0\0".
const CAP_TPM_PROPERTIES: u32 = 6;
const PT_FAMILY_INDICATOR: u32 = 0x100;
const FAMILY_2_0: u32 = 0x322E_3000;
/// TPM_PT_TOTAL_COMMANDS, what the Linux TPM2 probe asks for.
const PT_TOTAL_COMMANDS: u32 = 0x129;
/// TPM_RC_LOCALITY.
const RC_LOCALITY: u32 = 0x907;

const ACCESS: u64 = 0x00;
const STS: u64 = 0x18;
const FIFO: u64 = 0x24;

/// The register model, the engine behind it, and the Linux driver.
struct Guest {
    tis: Tis,
    engine: Engine,
    linux: LinuxTis,
}

impl Guest {
    /// A TPM as after power-on, with the driver loaded (probed).
    fn boot() -> (Guest, TisProbe, Vec<Access>) {
        let mut engine = Engine::start(Box::new(MemStorage::new())).expect("engine starts");
        let established = engine.established().expect("established flag");
        let mut g = Guest {
            tis: Tis::with_established(established),
            engine,
            linux: LinuxTis::new(),
        };
        let mut bus = Bus::new(&mut g.tis, &mut g.engine).with_trace();
        let probe = g.linux.probe(&mut bus).expect("probe");
        let trace = bus.take_trace();
        println!("tis/linux probe: {} MMIO accesses", trace.len());
        (g, probe, trace)
    }

    /// One `/dev/tpm0` write+read at `locality`: the response and the
    /// accesses it took. Prints the access count.
    fn run(&mut self, name: &str, locality: u8, cmd: &[u8]) -> Vec<u8> {
        let mut bus = Bus::new(&mut self.tis, &mut self.engine).with_trace();
        let rsp = self
            .linux
            .transact(&mut bus, locality, cmd)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let trace = bus.take_trace();
        let c = bus.counts();
        println!(
            "tis/linux {name} (loc {locality}, {} B cmd, {} B rsp): {} MMIO accesses ({} reads, {} writes)",
            cmd.len(),
            rsp.len(),
            c.total(),
            c.reads,
            c.writes
        );
        check_linux_pattern(name, locality, cmd, &rsp, &trace);
        rsp
    }
}

/// What every Linux command must look like on the bus: only 8-bit FIFO
/// accesses, exactly one FIFO write per command byte and one FIFO read per
/// response byte, STS read 8- or 32-bit, nothing outside the locality page.
fn check_linux_pattern(name: &str, locality: u8, cmd: &[u8], rsp: &[u8], trace: &[Access]) {
    let base = u64::from(locality) * 0x1000;
    let mut fifo_writes = Vec::new();
    let mut fifo_reads = Vec::new();
    for a in trace {
        assert!(
            (base..base + 0x1000).contains(&a.offset),
            "{name}: access outside locality {locality}: {a:?}"
        );
        match (a.offset - base, a.kind) {
            (FIFO, AccessKind::Write) => {
                assert_eq!(a.size, 1, "{name}: {a:?}");
                fifo_writes.push(a.value as u8);
            }
            (FIFO, AccessKind::Read) => {
                assert_eq!(a.size, 1, "{name}: {a:?}");
                fifo_reads.push(a.value as u8);
            }
            (STS, AccessKind::Read) => assert!(matches!(a.size, 1 | 4), "{name}: {a:?}"),
            (STS, AccessKind::Write) | (ACCESS, _) => assert_eq!(a.size, 1, "{name}: {a:?}"),
            _ => panic!("{name}: unexpected access {a:?}"),
        }
    }
    assert_eq!(fifo_writes, cmd, "{name}: FIFO writes are the command");
    assert_eq!(fifo_reads, rsp, "{name}: FIFO reads are the response");
}

/// The parameter area of a one-property TPM2_GetCapability response:
/// (property, value).
fn one_property(rsp: &[u8]) -> (u32, u32) {
    let p = expect_ok(rsp);
    let be = |i: usize| u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    assert_eq!(be(1), CAP_TPM_PROPERTIES, "capability");
    assert_eq!(be(5), 1, "property count");
    (be(9), be(13))
}

#[test]
fn probe_finds_a_tpm2_with_no_vendor_quirk() {
    let _l = engine_lock();
    let (_g, probe, trace) = Guest::boot();
    assert!(probe.tpm2, "GetCapability answered with tag 0x8001");
    assert_eq!(
        probe.did_vid,
        (u32::from(regs::DID) << 16) | u32::from(regs::VID)
    );
    for quirk in [0x8086, 0x1050, 0x104A, 0x1114, 0x15D1] {
        assert_ne!(probe.did_vid & 0xFFFF, quirk, "VID with a Linux quirk");
    }
    assert_eq!(probe.rid, 1);
    assert_eq!((probe.intf_caps >> 28) & 7, 3, "InterfaceVersion PTP");
    // The first accesses are the probe's register reads, in Linux's order.
    assert_eq!((trace[0].offset, trace[0].size), (0xF00, 4), "DID_VID");
    assert_eq!(
        (trace[1].offset, trace[1].size),
        (ACCESS, 1),
        "ACCESS valid"
    );
    assert_ne!(trace[1].value & 0x80, 0);
    assert_eq!((trace[2].offset, trace[2].size), (0x08, 4), "INT_ENABLE");
    // The INT_ENABLE write keeps the global enable clear and sticks.
    let w = trace
        .iter()
        .find(|a| a.kind == AccessKind::Write && a.offset == 0x08)
        .expect("INT_ENABLE written");
    assert_eq!(w.size, 4);
    assert_eq!(w.value & 0x8000_0000, 0);
}

#[test]
fn tpm2_probe_before_startup_answers_initialize_with_tpm2_tag() {
    let _l = engine_lock();
    let (mut g, _, _) = Guest::boot();
    let rsp = g.run(
        "GetCapability(TOTAL_COMMANDS) before Startup",
        0,
        &get_capability(CAP_TPM_PROPERTIES, PT_TOTAL_COMMANDS, 1),
    );
    let h = header(&rsp);
    assert_eq!(h.tag, ST_NO_SESSIONS);
    assert_eq!(h.rc, RC_INITIALIZE);
}

#[test]
fn startup_random_pcr_and_capability_end_to_end() {
    let _l = engine_lock();
    let (mut g, _, _) = Guest::boot();
    expect_ok(&g.run("Startup(CLEAR)", 0, &startup(SU_CLEAR)));
    expect_ok(&g.run("SelfTest(full)", 0, &self_test(true)));

    let a = random_bytes(&g.run("GetRandom(32)", 0, &get_random(32)));
    let b = random_bytes(&g.run("GetRandom(32)", 0, &get_random(32)));
    assert_eq!(a.len(), 32);
    assert_eq!(b.len(), 32);
    assert_ne!(a, b, "two GetRandom answers differ");

    // PCR 16 (debug) starts at zero after Startup(CLEAR) and extends as
    // SHA-256(old || digest).
    let before = pcr_value(&g.run("PCR_Read(16)", 0, &pcr_read(16, ALG_SHA256)));
    assert_eq!(before, vec![0u8; 32]);
    let digest: [u8; 32] = Sha256::digest(b"svtpm tis linux").into();
    expect_ok(&g.run("PCR_Extend(16)", 0, &pcr_extend(16, ALG_SHA256, &digest)));
    let after = pcr_value(&g.run("PCR_Read(16)", 0, &pcr_read(16, ALG_SHA256)));
    let expected: Vec<u8> = Sha256::new()
        .chain_update(&before)
        .chain_update(digest)
        .finalize()
        .to_vec();
    assert_eq!(after, expected);

    let rsp = g.run(
        "GetCapability(FAMILY_INDICATOR)",
        0,
        &get_capability(CAP_TPM_PROPERTIES, PT_FAMILY_INDICATOR, 1),
    );
    assert_eq!(one_property(&rsp), (PT_FAMILY_INDICATOR, FAMILY_2_0));
}

#[test]
fn locality_windows_carry_the_locality_to_the_engine() {
    let _l = engine_lock();
    let (mut g, _, _) = Guest::boot();
    expect_ok(&g.run("Startup(CLEAR)", 0, &startup(SU_CLEAR)));
    // PCR 17 may be extended from localities 2, 3 and 4 only (PTP PCR
    // usage); the engine can only tell if the locality reached it.
    let digest: [u8; 32] = Sha256::digest(b"locality").into();
    let denied = g.run(
        "PCR_Extend(17) at 0",
        0,
        &pcr_extend(17, ALG_SHA256, &digest),
    );
    assert_eq!(header(&denied).rc, RC_LOCALITY);
    let denied = g.run(
        "PCR_Extend(17) at 1",
        1,
        &pcr_extend(17, ALG_SHA256, &digest),
    );
    assert_eq!(header(&denied).rc, RC_LOCALITY);

    let mut value = pcr_value(&g.run("PCR_Read(17) at 2", 2, &pcr_read(17, ALG_SHA256)));
    for l in [2u8, 3, 4] {
        let name = format!("PCR_Extend(17) at {l}");
        expect_ok(&g.run(&name, l, &pcr_extend(17, ALG_SHA256, &digest)));
        value = Sha256::new()
            .chain_update(&value)
            .chain_update(digest)
            .finalize()
            .to_vec();
        let name = format!("PCR_Read(17) at {l}");
        assert_eq!(
            pcr_value(&g.run(&name, l, &pcr_read(17, ALG_SHA256))),
            value
        );
    }
    assert_eq!(
        random_bytes(&g.run("GetRandom(8) at 3", 3, &get_random(8))).len(),
        8
    );
}

#[test]
fn response_retry_rereads_the_same_bytes() {
    let _l = engine_lock();
    let (mut g, _, _) = Guest::boot();
    expect_ok(&g.run("Startup(CLEAR)", 0, &startup(SU_CLEAR)));
    let cmd = get_random(24);
    let mut bus = Bus::new(&mut g.tis, &mut g.engine);
    // What tpm_tis does up to the first receive, by hand.
    bus.write8(ACCESS, 0x02);
    assert_eq!(bus.read8(ACCESS) & 0xA2, 0xA0);
    bus.write8(STS, 0x40);
    assert_ne!(bus.read8(STS) & 0x40, 0);
    for &b in &cmd {
        bus.write8(FIFO, b);
    }
    assert_eq!(bus.read8(STS) & 0x88, 0x80, "stsValid, Expect clear");
    bus.write8(STS, 0x20);
    assert_eq!(bus.read8(STS) & 0x90, 0x90);
    // Read the header and part of the body, as a failed try_recv would.
    let partial: Vec<u8> = (0..17).map(|_| bus.read8(FIFO)).collect();
    bus.write8(STS, 0x02); // responseRetry
    let sts = bus.read32(STS);
    assert_eq!(sts & 0x90, 0x90, "dataAvail again");
    let total = ((sts >> 8) & 0xFFFF) as usize;
    let full: Vec<u8> = (0..total).map(|_| bus.read8(FIFO)).collect();
    assert_eq!(full[..17], partial[..], "same bytes again");
    assert_eq!(header(&full).size as usize, total);
    assert_eq!(random_bytes(&full).len(), 24);
    assert_eq!(
        bus.read8(STS) & 0x10,
        0,
        "dataAvail clear after the response"
    );
    bus.write8(STS, 0x40);
    bus.write8(ACCESS, 0x20);
    // The retry did not run the command again: the next GetRandom differs.
    let next = random_bytes(&g.run("GetRandom(24)", 0, &get_random(24)));
    assert_ne!(next, random_bytes(&full));
}

#[test]
fn largest_linux_command_goes_through_in_one_burst() {
    let _l = engine_lock();
    let (mut g, _, _) = Guest::boot();
    expect_ok(&g.run("Startup(CLEAR)", 0, &startup(SU_CLEAR)));
    // A GetRandom padded to Linux's 4 KiB buffer: the TPM rejects the size,
    // but the transfer itself must complete with one burstCount read per
    // direction (the model reports the whole free space / response).
    let mut cmd = get_random(8);
    cmd.resize(4096, 0);
    cmd[2..6].copy_from_slice(&4096u32.to_be_bytes());
    let mut bus = Bus::new(&mut g.tis, &mut g.engine).with_trace();
    let rsp = g
        .linux
        .transact(&mut bus, 0, &cmd)
        .expect("transfer completes");
    assert_ne!(header(&rsp).rc, RC_SUCCESS);
    let trace = bus.take_trace();
    let burst_reads = trace
        .iter()
        .filter(|a| a.kind == AccessKind::Read && a.offset == STS && a.size == 4)
        .count();
    println!(
        "tis/linux 4096 B command: {} MMIO accesses, {burst_reads} burstCount reads",
        trace.len()
    );
    check_linux_pattern("4 KiB command", 0, &cmd, &rsp, &trace);
    // One for the command bytes, one for the header, one for the rest (if
    // the response has more than a header).
    assert_eq!(burst_reads, 2 + usize::from(rsp.len() > 10));
}

/// Writes `bytes` to the FIFO of locality 0 after commandReady, sets tpmGo
/// and reads back whatever the FIFO holds.
fn raw_exchange(bus: &mut Bus<'_>, bytes: &[u8]) -> Vec<u8> {
    bus.write8(STS, 0x40);
    for &b in bytes {
        bus.write8(FIFO, b);
    }
    assert_eq!(bus.read8(STS) & 0x08, 0, "Expect clear: command complete");
    bus.write8(STS, 0x20);
    let n = (bus.read32(STS) >> 8) & 0xFFFF;
    let rsp = (0..n).map(|_| bus.read8(FIFO)).collect();
    bus.write8(STS, 0x40);
    rsp
}

#[test]
fn bad_size_fields_end_as_command_size_errors() {
    let _l = engine_lock();
    let (mut g, _, _) = Guest::boot();
    expect_ok(&g.run("Startup(CLEAR)", 0, &startup(SU_CLEAR)));
    let mut bus = Bus::new(&mut g.tis, &mut g.engine);
    bus.write8(ACCESS, 0x02);
    const RC_COMMAND_SIZE: u32 = 0x142;
    // A size below the header: the model waits for a whole header and the
    // engine rejects the size.
    let mut short = get_random(8);
    short.truncate(10);
    short[2..6].copy_from_slice(&6u32.to_be_bytes());
    assert_eq!(header(&raw_exchange(&mut bus, &short)).rc, RC_COMMAND_SIZE);
    // A size beyond the buffer: reception ends when the buffer is full,
    // bytes past it are dropped, and the engine rejects the size.
    let mut long = get_random(8);
    long[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
    long.resize(4096 + 16, 0xAB);
    assert_eq!(header(&raw_exchange(&mut bus, &long)).rc, RC_COMMAND_SIZE);
    // The interface is usable afterwards.
    let rsp = raw_exchange(&mut bus, &get_random(4));
    assert_eq!(random_bytes(&rsp).len(), 4);
}
