//! OVMF/edk2 against the CRB register model and the real libtpms engine,
//! end to end.
//!
//! [`Edk2Crb`] replays, access by access, what edk2 does with a CRB TPM:
//! - OvmfPkg Tcg2ConfigPei first probes for a TPM 1.2 through the TIS
//!   protocol (`TisPcRequestUseTpm`: MmioRead8 ACCESS != 0xFF, MmioWrite8
//!   ACCESS = requestUse, poll MmioRead8 ACCESS for activeLocality|valid);
//!   on a CRB this times out, so OVMF moves on to TPM 2.0.
//! - SecurityPkg Tpm2DeviceLibDTpm (Tpm2Ptp.c): `Tpm2GetPtpInterface`
//!   (MmioRead8 base != 0xFF, MmioRead32 INTERFACE_ID and
//!   INTF_CAPABILITY; CRB when type = 1, version = 1 and CapCRB),
//!   `Tpm2GetIdleByPass`, `DumpPtpInfo` (16-bit VID/DID reads),
//!   `PtpCrbRequestUseTpm` (LOC_CTRL = requestAccess, poll LOC_STS.Granted)
//!   and `PtpCrbTpmCommand`: wait for Idle when IdleBypass is not offered,
//!   cmdReady and wait for it to clear and for tpmIdle to clear, MmioWrite8
//!   of every command byte, MmioWrite32 CMD_HADDR/CMD_LADDR/CMD_SIZE,
//!   MmioWrite64 RSP_ADDR, MmioWrite32 RSP_SIZE, START, poll START, MmioRead8
//!   of the 10-byte header then of the rest, goIdle. edk2 never reads
//!   CTRL_STS.tpmSts and never checks the command size against the buffer.
//!
//! libtpms is one per process: every test holds `LOCK`.
mod common;

use common::*;
use sha2::{Digest, Sha256};
use svtpm::crb::{regs, Crb};
use svtpm::engine::{Engine, MemStorage};
use svtpm_drivers::{Access, AccessKind, Bus};

/// TPM_RC_COMMAND_SIZE.
const RC_COMMAND_SIZE: u32 = 0x142;
/// TPM_ST_RSP_COMMAND: a TPM 1.2 response tag, which edk2 rejects.
const ST_RSP_COMMAND: u16 = 0x00C4;
/// Bound on every edk2 wait loop, in register reads (edk2 counts
/// microseconds; the model completes synchronously, so this only limits a
/// broken model).
const MAX_POLLS: u32 = 1000;
/// The TPM 1.2 probe's wait: TIS_TIMEOUT_A (750 ms) in 30 µs steps, one
/// MmioRead8 each. It always runs out on a CRB TPM, so this many reads are
/// real boot cost.
const TIS_TIMEOUT_A_POLLS: u32 = 750_000 / 30;

/// Offsets from PcdTpmBaseAddress (0xFED40000).
const TIS_ACCESS: u64 = 0x00;
const TIS_INTF_CAPABILITY: u64 = 0x14;
const TIS_STATUS_EX: u64 = 0x1B;
const TIS_ACC_RQUUSE: u8 = 0x02;
const TIS_ACC_ACTIVE: u8 = 0x20;
const TIS_VALID: u8 = 0x80;

/// The EFI_STATUS values these paths return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EfiError {
    NotFound,
    Timeout,
    DeviceError,
    Unsupported,
    BufferTooSmall,
}

/// edk2's PTP interface decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PtpInterface {
    Tis,
    Fifo,
    Crb,
    Max,
}

/// What DumpPtpInfo logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PtpInfo {
    interface_id: u32,
    vid: u16,
    did: u16,
    rid: u8,
}

/// The edk2 CRB path at the locality 0 page.
#[derive(Debug, Default)]
struct Edk2Crb {
    idle_bypass: bool,
}

impl Edk2Crb {
    /// `PtpCrbWaitRegisterBits`.
    fn wait(&self, bus: &mut Bus<'_>, reg: u16, set: u32, clear: u32) -> Result<(), EfiError> {
        for _ in 0..MAX_POLLS {
            let v = bus.read32(u64::from(reg));
            if v & set == set && v & clear == 0 {
                return Ok(());
            }
        }
        Err(EfiError::Timeout)
    }

    /// OvmfPkg's TPM 1.2 probe: `Tpm12RequestUseTpm` over TIS.
    fn tpm12_request_use(&self, bus: &mut Bus<'_>) -> Result<(), EfiError> {
        if bus.read8(TIS_ACCESS) == 0xFF {
            return Err(EfiError::NotFound);
        }
        bus.write8(TIS_ACCESS, TIS_ACC_RQUUSE);
        let want = TIS_ACC_ACTIVE | TIS_VALID;
        for _ in 0..TIS_TIMEOUT_A_POLLS {
            if bus.read8(TIS_ACCESS) & want == want {
                return Ok(());
            }
        }
        Err(EfiError::Timeout)
    }

    /// `Tpm2GetPtpInterface`.
    fn interface(&self, bus: &mut Bus<'_>) -> PtpInterface {
        if bus.read8(0) == 0xFF {
            return PtpInterface::Max;
        }
        let id = bus.read32(u64::from(regs::INTF_ID_LO));
        let cap = bus.read32(TIS_INTF_CAPABILITY);
        let (ty, version) = (id & 0xF, (id >> 4) & 0xF);
        if ty == 1 && version == 1 && id & (1 << 14) != 0 {
            PtpInterface::Crb
        } else if ty == 0 && version == 0 && id & (1 << 13) != 0 && (cap >> 28) & 0x7 == 3 {
            PtpInterface::Fifo
        } else if ty == 0xF {
            PtpInterface::Tis
        } else {
            PtpInterface::Max
        }
    }

    /// `DumpPtpInfo` for a CRB; also caches `Tpm2GetIdleByPass`.
    fn dump_info(&mut self, bus: &mut Bus<'_>) -> PtpInfo {
        let id = bus.read32(u64::from(regs::INTF_ID_LO));
        let _cap = bus.read32(TIS_INTF_CAPABILITY);
        let _status_ex = bus.read8(TIS_STATUS_EX);
        self.idle_bypass = bus.read32(u64::from(regs::INTF_ID_LO)) & (1 << 9) != 0;
        PtpInfo {
            interface_id: id,
            vid: bus.read16(u64::from(regs::INTF_ID_HI)),
            did: bus.read16(u64::from(regs::INTF_ID_HI) + 2),
            rid: (id >> 24) as u8,
        }
    }

    /// `PtpCrbRequestUseTpm`.
    fn request_use(&self, bus: &mut Bus<'_>) -> Result<(), EfiError> {
        if bus.read8(0) == 0xFF {
            return Err(EfiError::NotFound);
        }
        bus.write32(u64::from(regs::LOC_CTRL), 1);
        self.wait(bus, regs::LOC_STS, 1, 0)
    }

    /// `PtpCrbTpmCommand`; `size_out` is the caller's response buffer size.
    fn command(&self, bus: &mut Bus<'_>, cmd: &[u8], size_out: usize) -> Result<Vec<u8>, EfiError> {
        let r = self.exchange(bus, cmd, size_out);
        // GoIdle_Exit: always, without waiting.
        bus.write32(u64::from(regs::CTRL_REQ), 2);
        r
    }

    fn exchange(
        &self,
        bus: &mut Bus<'_>,
        cmd: &[u8],
        size_out: usize,
    ) -> Result<Vec<u8>, EfiError> {
        let mut retries = 0;
        loop {
            let step = self.become_ready(bus);
            match step {
                Ok(()) => break,
                Err(_) if retries + 1 < 3 => {
                    retries += 1;
                    bus.write32(u64::from(regs::CTRL_REQ), 2);
                }
                Err(_) => return Err(EfiError::DeviceError),
            }
        }
        let buf = u64::from(regs::DATA_BUFFER);
        for (i, &b) in cmd.iter().enumerate() {
            bus.write8(buf + i as u64, b);
        }
        let buffer_pa = regs::MMIO_BASE + buf;
        bus.write32(u64::from(regs::CMD_HADDR), (buffer_pa >> 32) as u32);
        bus.write32(u64::from(regs::CMD_LADDR), buffer_pa as u32);
        bus.write32(u64::from(regs::CMD_SIZE), regs::DATA_BUFFER_SIZE as u32);
        bus.write(u64::from(regs::RSP_ADDR_LO), 8, buffer_pa & 0xFFFF_FFFF);
        bus.write32(u64::from(regs::RSP_SIZE), regs::DATA_BUFFER_SIZE as u32);

        bus.write32(u64::from(regs::CTRL_START), 1);
        if self.wait(bus, regs::CTRL_START, 0, 1).is_err() {
            bus.write32(u64::from(regs::CTRL_CANCEL), 1);
            let r = self.wait(bus, regs::CTRL_START, 0, 1);
            bus.write32(u64::from(regs::CTRL_CANCEL), 0);
            r.map_err(|_| EfiError::DeviceError)?;
        }

        let mut rsp: Vec<u8> = (0..10).map(|i| bus.read8(buf + i)).collect();
        if u16::from_be_bytes([rsp[0], rsp[1]]) == ST_RSP_COMMAND {
            return Err(EfiError::Unsupported);
        }
        let size = u32::from_be_bytes([rsp[2], rsp[3], rsp[4], rsp[5]]) as usize;
        if size_out < size {
            return Err(EfiError::BufferTooSmall);
        }
        for i in 10..size {
            rsp.push(bus.read8(buf + i as u64));
        }
        Ok(rsp)
    }

    /// STEP 0 and STEP 1 of `PtpCrbTpmCommand`.
    fn become_ready(&self, bus: &mut Bus<'_>) -> Result<(), EfiError> {
        let idle = 2;
        if !self.idle_bypass && bus.read32(u64::from(regs::CTRL_STS)) & idle == 0 {
            self.wait(bus, regs::CTRL_STS, idle, 0)?;
        }
        bus.write32(u64::from(regs::CTRL_REQ), 1);
        self.wait(bus, regs::CTRL_REQ, 0, 1)?;
        self.wait(bus, regs::CTRL_STS, 0, idle)
    }
}

/// The firmware's view: register model, engine, and the edk2 driver state.
struct Firmware {
    crb: Crb,
    engine: Engine,
    edk2: Edk2Crb,
}

impl Firmware {
    /// Power on and run OVMF's detection up to a usable CRB TPM.
    fn boot() -> Firmware {
        let engine = Engine::start(Box::new(MemStorage::new())).expect("engine starts");
        let mut fw = Firmware {
            crb: Crb::default(),
            engine,
            edk2: Edk2Crb::default(),
        };
        let mut bus = Bus::new(&mut fw.crb, &mut fw.engine).with_trace();
        assert_eq!(fw.edk2.tpm12_request_use(&mut bus), Err(EfiError::Timeout));
        let tpm12_probe = bus.counts().total();
        assert_eq!(tpm12_probe, 2 + u64::from(TIS_TIMEOUT_A_POLLS));
        assert_eq!(fw.edk2.interface(&mut bus), PtpInterface::Crb);
        let info = fw.edk2.dump_info(&mut bus);
        assert_eq!((info.vid, info.did, info.rid), (0x1014, 0x0001, 0));
        assert_eq!(info.interface_id & 0xFF, 0x11);
        assert!(!fw.edk2.idle_bypass);
        fw.edk2.request_use(&mut bus).expect("locality 0 granted");
        let trace = bus.take_trace();
        drop(bus);
        // The TPM 1.2 probe wrote a byte to LOC_STATE: dropped, harmless.
        assert_eq!(fw.crb.stats().bad_accesses, 0);
        assert_eq!(fw.crb.active_locality(), Some(0));
        println!(
            "detection: {} MMIO accesses ({tpm12_probe} in the TPM 1.2 probe)",
            trace.len()
        );
        fw
    }

    fn transact(&mut self, cmd: &[u8]) -> (Result<Vec<u8>, EfiError>, Vec<Access>) {
        let mut bus = Bus::new(&mut self.crb, &mut self.engine).with_trace();
        let r = self.edk2.command(&mut bus, cmd, 0x1000);
        (r, bus.take_trace())
    }

    /// Sends `cmd`, prints what it cost, checks the access pattern.
    fn run(&mut self, name: &str, cmd: &[u8]) -> Vec<u8> {
        let (r, trace) = self.transact(cmd);
        let rsp = r.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let (buffer, registers): (Vec<&Access>, Vec<&Access>) = trace
            .iter()
            .partition(|a| a.offset >= u64::from(regs::DATA_BUFFER));
        // Buffer traffic is MmioWrite8/MmioRead8, one per byte.
        assert!(buffer.iter().all(|a| a.size == 1));
        let writes = buffer
            .iter()
            .filter(|a| a.kind == AccessKind::Write)
            .count();
        assert_eq!((writes, buffer.len() - writes), (cmd.len(), rsp.len()));
        // Registers: CTRL_STS, cmdReady write + poll, CTRL_STS poll, five
        // buffer registers, START write + poll, goIdle: 12 when every wait
        // is met on the first read.
        assert_eq!(registers.len(), 12, "{registers:x?}");
        assert!(registers
            .iter()
            .all(|a| a.size == 4 || a.offset == u64::from(regs::RSP_ADDR_LO)));
        println!(
            "{name:<24} cmd {:4} B rsp {:4} B: {:4} MMIO accesses ({} register, {} buffer)",
            cmd.len(),
            rsp.len(),
            trace.len(),
            registers.len(),
            buffer.len()
        );
        rsp
    }
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

#[test]
fn detection_picks_crb_and_the_tpm12_probe_fails_cleanly() {
    let _l = engine_lock();
    let fw = Firmware::boot();
    // OVMF's own buffer-register writes carry the values already there.
    assert_eq!(fw.crb.stats().buffer_relocations, 0);
}

#[test]
fn real_commands_end_to_end() {
    let _l = engine_lock();
    let mut fw = Firmware::boot();
    expect_ok(&fw.run("Startup(CLEAR)", &startup(SU_CLEAR)));
    expect_ok(&fw.run("SelfTest(full)", &self_test(true)));

    let a = random_bytes(&fw.run("GetRandom(32)", &get_random(32)));
    let b = random_bytes(&fw.run("GetRandom(32)", &get_random(32)));
    assert_eq!((a.len(), b.len()), (32, 32));
    assert_ne!(a, b);

    // TPM_CAP_PCRS: the PCR banks Tcg2Pei asks for.
    let caps = expect_ok(&fw.run("GetCapability(PCRS)", &get_capability(5, 0, 1))).to_vec();
    assert_eq!(u32::from_be_bytes(caps[1..5].try_into().unwrap()), 5);
    let banks = u32::from_be_bytes(caps[5..9].try_into().unwrap());
    let mut algs = Vec::new();
    let mut at = 9;
    for _ in 0..banks {
        // TPMS_PCR_SELECTION: hash u16, sizeofSelect u8, pcrSelect[].
        algs.push(u16::from_be_bytes([caps[at], caps[at + 1]]));
        at += 3 + usize::from(caps[at + 2]);
    }
    assert!(algs.contains(&ALG_SHA256), "banks {algs:x?}");

    // Tcg2Pei measures into PCR 0 at locality 0; PCR 0 starts at zero.
    let crtm = sha256(&[b"CRTM version"]);
    expect_ok(&fw.run("PCR_Extend(0)", &pcr_extend(0, ALG_SHA256, &crtm)));
    let pcr0 = pcr_value(&fw.run("PCR_Read(0)", &pcr_read(0, ALG_SHA256)));
    assert_eq!(pcr0, sha256(&[&[0u8; 32], &crtm]));

    assert_eq!(fw.crb.stats().buffer_relocations, 0);
    assert_eq!(fw.crb.stats().bad_accesses, 0);
}

#[test]
fn oversized_command_fails_and_the_next_one_works() {
    let _l = engine_lock();
    let mut fw = Firmware::boot();
    expect_ok(&fw.run("Startup(CLEAR)", &startup(SU_CLEAR)));

    // edk2 copies SizeIn bytes without checking them against the buffer:
    // the 16 bytes past 0xF80 land on locality 1's LOC_STATE..LOC_STS
    // (zeros: no locality action), and the header's size is refused with
    // TPM_RC_COMMAND_SIZE.
    let mut big = get_random(8);
    big.resize(regs::DATA_BUFFER_SIZE + 16, 0);
    let n = big.len() as u32;
    big[2..6].copy_from_slice(&n.to_be_bytes());
    let (r, trace) = fw.transact(&big);
    let rsp = r.expect("an error response, not a device error");
    assert_eq!(header(&rsp).rc, RC_COMMAND_SIZE);
    assert_eq!(fw.crb.stats().rejected_commands, 1);
    let spilled = trace.iter().filter(|a| a.offset >= regs::PAGE_SIZE).count();
    assert_eq!(spilled, 16, "bytes past the buffer hit the next page");
    assert_eq!(fw.crb.active_locality(), Some(0));

    let r = random_bytes(&fw.run("GetRandom(16)", &get_random(16)));
    assert_eq!(r.len(), 16);
}

#[test]
fn tpm12_probe_command_gets_a_tpm2_answer() {
    let _l = engine_lock();
    let mut fw = Firmware::boot();
    // Were the TPM 1.2 GetTicks ever sent over CRB, the answer must carry a
    // TPM 2.0 tag (edk2 rejects 0x00C4 as TPM 1.2).
    let rsp = fw.run("TPM1.2 GetTicks", &tpm12_get_ticks());
    let h = header(&rsp);
    assert_eq!(h.tag, ST_NO_SESSIONS);
    assert_ne!(h.rc, RC_SUCCESS);
}

#[test]
fn response_larger_than_the_callers_buffer() {
    let _l = engine_lock();
    let mut fw = Firmware::boot();
    expect_ok(&fw.run("Startup(CLEAR)", &startup(SU_CLEAR)));
    let mut bus = Bus::new(&mut fw.crb, &mut fw.engine);
    let r = fw.edk2.command(&mut bus, &get_random(32), 20);
    assert_eq!(r, Err(EfiError::BufferTooSmall));
    // goIdle ran anyway; the next command works.
    assert_eq!(fw.crb.state(), svtpm::crb::State::Idle);
    expect_ok(&fw.run("GetRandom(4)", &get_random(4)));
}
