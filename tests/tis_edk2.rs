//! OVMF/edk2 against the TIS register model and the real libtpms engine,
//! end to end.
//!
//! The firmware side is modelled here from SecurityPkg and OvmfPkg:
//! - `Tpm2GetPtpInterface` (Tpm2DeviceLibDTpm/Tpm2Ptp.c): read8 ACCESS
//!   (0xFF = no TPM), read32 INTERFACE_ID and INTF_CAPABILITY; FIFO when
//!   type 0, version 0, CapFIFO and InterfaceVersion 3. The DTpm library
//!   caches the answer in its constructor; `DumpPtpInfo` also reads
//!   StatusEx (8-bit), VID and DID (16-bit) and RID (8-bit).
//! - `TisPcRequestUseTpm` / `Tpm2TisTpmCommand` (Tpm2Tis.c): MmioRead8 and
//!   MmioWrite8 only; burstCount read as two byte reads at 0x19 and 0x1A
//!   (it is not 2-byte aligned); commandReady then wait for it, write by
//!   burst, wait stsValid with Expect clear, tpmGo, wait stsValid|dataAvail,
//!   10-byte header by burst, tag check, the rest with the burst left over,
//!   commandReady at the end.
//! - OVMF's TPM 1.2 probe (Tcg2ConfigPei `InternalTpm12Detect` on
//!   Tpm12DeviceLibDTpm/Tpm12Tis.c): the same register dance with a TPM 1.2
//!   GetTicks; TPM 1.2 is decided only if the response tag is 0x00C4. A
//!   TPM 2.0 must answer with tag 0x8001, and OVMF then goes on with TPM 2.0.
//!
//! Every MMIO access is counted and printed per command.
//!
//! libtpms is one per process: every test holds `LOCK`.
mod common;

use common::*;
use sha2::{Digest, Sha256};
use svtpm::engine::{Engine, MemStorage};
use svtpm::tis::Tis;
use svtpm_drivers::{Access, AccessKind, Bus};

/// Register offsets (TIS_PC_REGISTERS / PTP_FIFO_REGISTERS).
const ACCESS: u64 = 0x00;
const INTF_CAP: u64 = 0x14;
const STATUS: u64 = 0x18;
const BURST_COUNT: u64 = 0x19;
const STATUS_EX: u64 = 0x1B;
const DATA_FIFO: u64 = 0x24;
const INTERFACE_ID: u64 = 0x30;
const VID: u64 = 0xF00;
const DID: u64 = 0xF02;
const RID: u64 = 0xF04;

/// TIS_PC_* bits.
const VALID: u8 = 0x80;
const ACC_ACTIVE: u8 = 0x20;
const ACC_RQUUSE: u8 = 0x02;
const STS_READY: u8 = 0x40;
const STS_GO: u8 = 0x20;
const STS_DATA: u8 = 0x10;
const STS_EXPECT: u8 = 0x08;

/// TPM_ST_RSP_COMMAND / TPM_TAG_RSP_COMMAND: a TPM 1.2 response tag.
const TAG_RSP_COMMAND: u16 = 0x00C4;
/// Polls standing in for edk2's microsecond timeouts (30 us per poll): the
/// model completes synchronously, so a healthy exchange needs one poll.
const MAX_POLLS: u32 = 1000;

/// PTP_INTERFACE_TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PtpInterface {
    Tis,
    Fifo,
    Crb,
    Max,
}

/// The EFI_STATUS values the edk2 code returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EfiError {
    NotFound,
    Timeout(&'static str),
    /// Unexpected response tag (EFI_UNSUPPORTED), with the tag seen.
    Unsupported(u16),
    BufferTooSmall,
    DeviceError(&'static str),
}

/// Which library's command routine: they differ only in the tag check and
/// the response timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// Tpm2TisTpmCommand: tag 0x00C4 is an error.
    Tpm2,
    /// Tpm12TisTpmCommand: anything but 0x00C4 is an error.
    Tpm12,
}

/// The edk2 TIS routines at a register base (locality page).
struct Edk2 {
    base: u64,
}

impl Edk2 {
    fn at_locality(l: u8) -> Self {
        Self {
            base: u64::from(l) * 0x1000,
        }
    }

    /// Tpm2GetPtpInterface / Tpm12GetPtpInterface.
    fn ptp_interface(&self, bus: &mut Bus<'_>) -> PtpInterface {
        if bus.read8(self.base + ACCESS) == 0xFF {
            return PtpInterface::Max;
        }
        let id = bus.read32(self.base + INTERFACE_ID);
        let caps = bus.read32(self.base + INTF_CAP);
        let (ty, ver) = (id & 0xF, (id >> 4) & 0xF);
        let cap_fifo = id & (1 << 13) != 0;
        let cap_crb = id & (1 << 14) != 0;
        if ty == 1 && ver == 1 && cap_crb {
            return PtpInterface::Crb;
        }
        if ty == 0 && ver == 0 && cap_fifo && (caps >> 28) & 7 == 3 {
            return PtpInterface::Fifo;
        }
        PtpInterface::Tis
    }

    /// DumpPtpInfo's register reads: (StatusEx, VID, DID, RID).
    fn dump_ptp_info(&self, bus: &mut Bus<'_>) -> (u8, u16, u16, u8) {
        let _ = bus.read8(self.base + ACCESS);
        let _ = bus.read32(self.base + INTERFACE_ID);
        let _ = bus.read32(self.base + INTF_CAP);
        let status_ex = bus.read8(self.base + STATUS_EX);
        let vid = bus.read16(self.base + VID);
        let did = bus.read16(self.base + DID);
        let rid = bus.read8(self.base + RID);
        (status_ex, vid, did, rid)
    }

    /// TisPcWaitRegisterBits (MmioRead8).
    fn wait_bits(
        &self,
        bus: &mut Bus<'_>,
        reg: u64,
        set: u8,
        clear: u8,
        what: &'static str,
    ) -> Result<(), EfiError> {
        for _ in 0..MAX_POLLS {
            let v = bus.read8(self.base + reg);
            if v & set == set && v & clear == 0 {
                return Ok(());
            }
        }
        Err(EfiError::Timeout(what))
    }

    /// TisPcReadBurstCount: two byte reads until non-zero.
    fn burst_count(&self, bus: &mut Bus<'_>) -> Result<u16, EfiError> {
        for _ in 0..MAX_POLLS {
            let b0 = bus.read8(self.base + BURST_COUNT);
            let b1 = bus.read8(self.base + BURST_COUNT + 1);
            let n = u16::from_le_bytes([b0, b1]);
            if n != 0 {
                return Ok(n);
            }
        }
        Err(EfiError::Timeout("burstCount"))
    }

    /// TisPcRequestUseTpm.
    fn request_use(&self, bus: &mut Bus<'_>) -> Result<(), EfiError> {
        if bus.read8(self.base + ACCESS) == 0xFF {
            return Err(EfiError::NotFound);
        }
        bus.write8(self.base + ACCESS, ACC_RQUUSE);
        self.wait_bits(bus, ACCESS, ACC_ACTIVE | VALID, 0, "ACCESS.active")
    }

    /// Tpm2TisTpmCommand / Tpm12TisTpmCommand.
    fn command(
        &self,
        bus: &mut Bus<'_>,
        family: Family,
        cmd: &[u8],
        size_out: usize,
    ) -> Result<Vec<u8>, EfiError> {
        // TisPcPrepareCommand.
        bus.write8(self.base + STATUS, STS_READY);
        self.wait_bits(bus, STATUS, STS_READY, 0, "STS.commandReady")
            .map_err(|_| EfiError::DeviceError("not ready"))?;
        let r = self.exchange(bus, family, cmd, size_out);
        bus.write8(self.base + STATUS, STS_READY);
        r
    }

    /// The part of the command routine between PrepareCommand and the
    /// final commandReady (the `goto Exit` paths).
    fn exchange(
        &self,
        bus: &mut Bus<'_>,
        family: Family,
        cmd: &[u8],
        size_out: usize,
    ) -> Result<Vec<u8>, EfiError> {
        let mut index = 0;
        while index < cmd.len() {
            let mut burst = self
                .burst_count(bus)
                .map_err(|_| EfiError::DeviceError("send burst"))?;
            while burst > 0 && index < cmd.len() {
                bus.write8(self.base + DATA_FIFO, cmd[index]);
                index += 1;
                burst -= 1;
            }
        }
        self.wait_bits(bus, STATUS, VALID, STS_EXPECT, "Expect clear")
            .map_err(|_| EfiError::BufferTooSmall)?;
        bus.write8(self.base + STATUS, STS_GO);
        self.wait_bits(bus, STATUS, VALID | STS_DATA, 0, "dataAvail")
            .map_err(|_| EfiError::DeviceError("no response"))?;

        let mut out = Vec::new();
        let mut burst = 0u16;
        'header: while out.len() < 10 {
            burst = self
                .burst_count(bus)
                .map_err(|_| EfiError::DeviceError("header burst"))?;
            while burst > 0 {
                out.push(bus.read8(self.base + DATA_FIFO));
                if out.len() == 10 {
                    // edk2 breaks out before decrementing BurstCount.
                    continue 'header;
                }
                burst -= 1;
            }
        }
        let tag = u16::from_be_bytes([out[0], out[1]]);
        match family {
            Family::Tpm2 if tag == TAG_RSP_COMMAND => return Err(EfiError::Unsupported(tag)),
            Family::Tpm12 if tag != TAG_RSP_COMMAND => return Err(EfiError::Unsupported(tag)),
            _ => {}
        }
        let size = u32::from_be_bytes([out[2], out[3], out[4], out[5]]) as usize;
        if size_out < size {
            return Err(EfiError::BufferTooSmall);
        }
        while out.len() < size {
            while burst > 0 {
                out.push(bus.read8(self.base + DATA_FIFO));
                if out.len() == size {
                    return Ok(out);
                }
                burst -= 1;
            }
            burst = self
                .burst_count(bus)
                .map_err(|_| EfiError::DeviceError("body burst"))?;
        }
        Ok(out)
    }
}

/// The register model and the engine, as OVMF sees them after reset.
struct Platform {
    tis: Tis,
    engine: Engine,
}

impl Platform {
    fn power_on() -> Self {
        let mut engine = Engine::start(Box::new(MemStorage::new())).expect("engine starts");
        let established = engine.established().expect("established flag");
        Self {
            tis: Tis::with_established(established),
            engine,
        }
    }

    fn bus(&mut self) -> Bus<'_> {
        Bus::new(&mut self.tis, &mut self.engine).with_trace()
    }
}

/// Checks edk2's access widths: 8-bit for ACCESS, STS and the FIFO;
/// burstCount as byte reads at 0x19/0x1A in pairs.
fn check_edk2_pattern(name: &str, base: u64, trace: &[Access]) {
    let mut i = 0;
    while i < trace.len() {
        let a = trace[i];
        let off = a.offset - base;
        match off {
            ACCESS | STATUS | DATA_FIFO | STATUS_EX | RID => {
                assert_eq!(a.size, 1, "{name}: {a:?}")
            }
            BURST_COUNT => {
                assert_eq!(a.size, 1, "{name}: {a:?}");
                let next = trace.get(i + 1).expect("second burstCount byte");
                assert_eq!(
                    (next.offset - base, next.size, next.kind),
                    (BURST_COUNT + 1, 1, AccessKind::Read),
                    "{name}"
                );
                i += 1;
            }
            INTERFACE_ID | INTF_CAP => assert_eq!(a.size, 4, "{name}: {a:?}"),
            VID | DID => assert_eq!(a.size, 2, "{name}: {a:?}"),
            _ => panic!("{name}: unexpected access {a:?}"),
        }
        i += 1;
    }
}

/// Runs one Tpm2SubmitCommand through the edk2 routines at `edk2`'s base,
/// checks and prints the accesses.
fn submit(p: &mut Platform, edk2: &Edk2, name: &str, cmd: &[u8]) -> Vec<u8> {
    let mut bus = p.bus();
    let rsp = edk2
        .command(&mut bus, Family::Tpm2, cmd, 4096)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let trace = bus.take_trace();
    let c = bus.counts();
    println!(
        "tis/edk2 {name} ({} B cmd, {} B rsp): {} MMIO accesses ({} reads, {} writes)",
        cmd.len(),
        rsp.len(),
        c.total(),
        c.reads,
        c.writes
    );
    check_edk2_pattern(name, edk2.base, &trace);
    let fifo_writes: Vec<u8> = trace
        .iter()
        .filter(|a| a.kind == AccessKind::Write && a.offset == edk2.base + DATA_FIFO)
        .map(|a| a.value as u8)
        .collect();
    assert_eq!(fifo_writes, cmd, "{name}: FIFO writes are the command");
    rsp
}

/// OVMF PEI up to "TPM2 detected": the TPM 1.2 probe, then the TPM2
/// request. Returns the TPM 1.2 probe's result.
fn ovmf_detect(p: &mut Platform) -> Result<Vec<u8>, EfiError> {
    let edk2 = Edk2::at_locality(0);
    let mut bus = p.bus();
    // InternalTpm12Detect: Tpm12RequestUseTpm, then TestTpm12 (GetTicks
    // through Tpm12SubmitCommand, which detects the interface again).
    assert_eq!(edk2.ptp_interface(&mut bus), PtpInterface::Fifo);
    edk2.request_use(&mut bus).expect("Tpm12RequestUseTpm");
    assert_eq!(edk2.ptp_interface(&mut bus), PtpInterface::Fifo);
    let tpm12 = edk2.command(&mut bus, Family::Tpm12, &tpm12_get_ticks(), 4096);
    let probe = bus.take_trace();
    println!("tis/edk2 TPM 1.2 probe: {} MMIO accesses", probe.len());
    check_edk2_pattern("TPM 1.2 probe", 0, &probe);
    // Tpm2RequestUseTpm, after the library constructor cached the interface.
    assert_eq!(edk2.ptp_interface(&mut bus), PtpInterface::Fifo);
    edk2.request_use(&mut bus).expect("Tpm2RequestUseTpm");
    tpm12
}

#[test]
fn ptp_detection_chooses_fifo_and_dump_reads_identification() {
    let _l = engine_lock();
    let mut p = Platform::power_on();
    let edk2 = Edk2::at_locality(0);
    let mut bus = p.bus();
    assert_eq!(edk2.ptp_interface(&mut bus), PtpInterface::Fifo);
    let (status_ex, vid, did, rid) = edk2.dump_ptp_info(&mut bus);
    // No locality is active yet: StatusEx floats, as on hardware.
    assert_eq!(status_ex, 0xFF);
    assert_ne!(vid, 0xFFFF);
    assert_eq!(rid, 1);
    edk2.request_use(&mut bus).expect("request use");
    let (status_ex, ..) = edk2.dump_ptp_info(&mut bus);
    assert_eq!((status_ex >> 2) & 3, 1, "TpmFamily TPM 2.0");
    let trace = bus.take_trace();
    check_edk2_pattern("detection", 0, &trace);
    // The two 16-bit halves agree with a 32-bit read of DID_VID.
    assert_eq!((u32::from(did) << 16) | u32::from(vid), bus.read32(0xF00));
    // The same routines on another locality page see the same interface.
    assert_eq!(
        Edk2::at_locality(3).ptp_interface(&mut bus),
        PtpInterface::Fifo
    );
}

#[test]
fn ovmf_tpm12_probe_does_not_find_a_tpm12() {
    let _l = engine_lock();
    let mut p = Platform::power_on();
    match ovmf_detect(&mut p) {
        Err(EfiError::Unsupported(tag)) => {
            assert_ne!(tag, TAG_RSP_COMMAND);
            assert_eq!(tag, ST_NO_SESSIONS);
        }
        other => panic!("TPM 1.2 probe must fail with EFI_UNSUPPORTED, got {other:?}"),
    }
    // The abandoned GetTicks response leaves nothing behind: the next TPM2
    // command works normally.
    let edk2 = Edk2::at_locality(0);
    expect_ok(&submit(&mut p, &edk2, "Startup(CLEAR)", &startup(SU_CLEAR)));
    // And the TPM 1.2 GetTicks itself, read completely, is a TPM 2.0 error.
    let rsp = submit(&mut p, &edk2, "TPM 1.2 GetTicks", &tpm12_get_ticks());
    let h = header(&rsp);
    assert_eq!(h.tag, ST_NO_SESSIONS);
    assert_ne!(h.rc, RC_SUCCESS);
}

#[test]
fn tcg2_pei_style_commands_end_to_end() {
    let _l = engine_lock();
    let mut p = Platform::power_on();
    assert!(ovmf_detect(&mut p).is_err());
    let edk2 = Edk2::at_locality(0);
    expect_ok(&submit(&mut p, &edk2, "Startup(CLEAR)", &startup(SU_CLEAR)));
    expect_ok(&submit(&mut p, &edk2, "SelfTest(full)", &self_test(true)));

    // The active PCR banks (Tcg2Pei asks for TPM_CAP_PCRS).
    let rsp = submit(
        &mut p,
        &edk2,
        "GetCapability(PCRS)",
        &get_capability(5, 0, 1),
    );
    let params = expect_ok(&rsp);
    let count = u32::from_be_bytes([params[5], params[6], params[7], params[8]]);
    let mut banks = Vec::new();
    let mut i = 9;
    for _ in 0..count {
        banks.push(u16::from_be_bytes([params[i], params[i + 1]]));
        i += 3 + usize::from(params[i + 2]);
    }
    assert!(banks.contains(&ALG_SHA256), "banks {banks:04x?}");

    let r = random_bytes(&submit(&mut p, &edk2, "GetRandom(32)", &get_random(32)));
    assert_eq!(r.len(), 32);
    assert_ne!(r, vec![0u8; 32]);

    // Measure a "firmware volume" into PCR 0 as Tcg2Pei does.
    let before = pcr_value(&submit(
        &mut p,
        &edk2,
        "PCR_Read(0)",
        &pcr_read(0, ALG_SHA256),
    ));
    let digest: [u8; 32] = Sha256::digest(b"OVMF FV_MAIN").into();
    expect_ok(&submit(
        &mut p,
        &edk2,
        "PCR_Extend(0)",
        &pcr_extend(0, ALG_SHA256, &digest),
    ));
    let after = pcr_value(&submit(
        &mut p,
        &edk2,
        "PCR_Read(0)",
        &pcr_read(0, ALG_SHA256),
    ));
    let expected: Vec<u8> = Sha256::new()
        .chain_update(&before)
        .chain_update(digest)
        .finalize()
        .to_vec();
    assert_eq!(after, expected);
}

#[test]
fn edk2_routines_on_higher_locality_pages() {
    let _l = engine_lock();
    let mut p = Platform::power_on();
    assert!(ovmf_detect(&mut p).is_err());
    let loc0 = Edk2::at_locality(0);
    expect_ok(&submit(&mut p, &loc0, "Startup(CLEAR)", &startup(SU_CLEAR)));
    let digest: [u8; 32] = Sha256::digest(b"drtm").into();
    let denied = submit(
        &mut p,
        &loc0,
        "PCR_Extend(18) at 0",
        &pcr_extend(18, ALG_SHA256, &digest),
    );
    assert_eq!(header(&denied).rc, 0x907, "TPM_RC_LOCALITY");

    for l in [3u8, 4] {
        // Hand the TPM over: the current owner relinquishes, then the edk2
        // routines request use on the new locality page.
        let owner = p.tis.active_locality().expect("an owner");
        let edk2 = Edk2::at_locality(l);
        {
            let mut bus = p.bus();
            bus.write8(u64::from(owner) * 0x1000 + ACCESS, ACC_ACTIVE);
            edk2.request_use(&mut bus).expect("request use");
        }
        assert_eq!(p.tis.active_locality(), Some(l));
        let before = pcr_value(&submit(
            &mut p,
            &edk2,
            "PCR_Read(18)",
            &pcr_read(18, ALG_SHA256),
        ));
        let name = format!("PCR_Extend(18) at {l}");
        expect_ok(&submit(
            &mut p,
            &edk2,
            &name,
            &pcr_extend(18, ALG_SHA256, &digest),
        ));
        let after = pcr_value(&submit(
            &mut p,
            &edk2,
            "PCR_Read(18)",
            &pcr_read(18, ALG_SHA256),
        ));
        let expected: Vec<u8> = Sha256::new()
            .chain_update(&before)
            .chain_update(digest)
            .finalize()
            .to_vec();
        assert_eq!(after, expected, "locality {l}");
    }
}
