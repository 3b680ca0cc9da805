//! The Linux TIS driver model against the real TIS register model.

mod backend;

use backend::{command, expected_response, Recorder, Stuck};
use svtpm::tis::Tis;
use svtpm_drivers::{AccessKind, Bus, Driver, DriverError, LinuxTis, TpmBackend, TpmMmio};

const STS: u64 = 0x18;
const FIFO: u64 = 0x24;

#[test]
fn commands_and_responses_cross_intact_in_every_size() {
    let mut tis = Tis::new();
    let mut driver = LinuxTis::new();
    for (i, (cmd_len, rsp_len)) in [
        (10, 10),
        (11, 12),
        (12, 11),
        (64, 4096),
        (1000, 37),
        (4096, 4096),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rec = Recorder::new(rsp_len);
        let cmd = command(cmd_len, i as u8);
        let rsp = {
            let mut bus = Bus::new(&mut tis, &mut rec);
            driver.transact(&mut bus, 0, &cmd).unwrap()
        };
        assert_eq!(rec.seen, vec![(0, cmd.clone())], "command {cmd_len} bytes");
        assert_eq!(
            rsp,
            expected_response(&cmd, rsp_len),
            "response {rsp_len} bytes"
        );
    }
}

#[test]
fn fifo_is_moved_one_byte_per_access_and_counted() {
    let mut tis = Tis::new();
    let mut rec = Recorder::new(300);
    let cmd = command(200, 1);
    let mut bus = Bus::new(&mut tis, &mut rec).with_trace();
    LinuxTis::new().transact(&mut bus, 0, &cmd).unwrap();
    let trace = bus.take_trace();
    let counts = bus.counts();
    let fifo_writes: Vec<_> = trace
        .iter()
        .filter(|a| a.kind == AccessKind::Write && a.offset == FIFO)
        .collect();
    let fifo_reads = trace
        .iter()
        .filter(|a| a.kind == AccessKind::Read && a.offset == FIFO)
        .count();
    assert_eq!(fifo_writes.len(), 200);
    assert!(fifo_writes.iter().all(|a| a.size == 1));
    assert_eq!(
        fifo_writes
            .iter()
            .map(|a| a.value as u8)
            .collect::<Vec<_>>(),
        cmd
    );
    assert_eq!(fifo_reads, 300);
    assert_eq!(counts.total(), trace.len() as u64);
    // tpmGo is one 8-bit STS write of 0x20 after the last FIFO byte.
    let go = trace
        .iter()
        .position(|a| a.kind == AccessKind::Write && a.offset == STS && a.value == 0x20)
        .expect("tpmGo written");
    let last_fifo_write = trace
        .iter()
        .rposition(|a| a.kind == AccessKind::Write && a.offset == FIFO)
        .unwrap();
    assert!(go > last_fifo_write);
    // Close to the "two exits per byte" of the design, plus a fixed overhead.
    assert!(counts.total() < 2 * 500 + 100, "{counts:?}");
}

#[test]
fn probe_reads_identity_and_detects_tpm2() {
    let mut tis = Tis::new();
    let mut rec = Recorder::new(10);
    let mut bus = Bus::new(&mut tis, &mut rec);
    let p = LinuxTis::new().probe(&mut bus).unwrap();
    assert!(p.tpm2, "response tag 0x8001 means TPM2");
    assert_ne!(p.did_vid, 0xFFFF_FFFF);
    assert_eq!(p.intf_caps >> 28 & 7, 3, "PTP interface version");
    drop(bus);
    // The probe sent exactly the kernel's GetCapability(TPM_PT_TOTAL_COMMANDS).
    assert_eq!(rec.seen.len(), 1);
    assert_eq!(
        rec.seen[0].1,
        [0x80, 0x01, 0, 0, 0, 22, 0, 0, 1, 0x7A, 0, 0, 0, 6, 0, 0, 1, 0x29, 0, 0, 0, 1]
    );
}

#[test]
fn locality_reaches_the_backend_and_is_released() {
    let mut tis = Tis::new();
    let mut rec = Recorder::new(10);
    let cmd = command(10, 0);
    for l in [3u8, 0, 4] {
        let mut bus = Bus::new(&mut tis, &mut rec);
        LinuxTis::new().transact(&mut bus, l, &cmd).unwrap();
    }
    assert_eq!(
        rec.seen.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [3, 0, 4]
    );
    assert_eq!(tis.active_locality(), None);
    let mut bus = Bus::new(&mut tis, &mut rec);
    assert_eq!(
        LinuxTis::new().transact(&mut bus, 5, &cmd),
        Err(DriverError::BadLocality(5))
    );
}

/// Loses the first FIFO byte the driver reads after tpmGo (the model hands
/// out two bytes for one read), as a glitch on the bus would: the driver
/// must see data left over and re-read the response with responseRetry.
struct LosesOneByte {
    inner: Tis,
    armed: bool,
}

impl TpmMmio for LosesOneByte {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        if self.armed && offset == FIFO {
            self.armed = false;
            self.inner.read(offset, size);
        }
        self.inner.read(offset, size)
    }

    fn write(&mut self, backend: &mut dyn TpmBackend, offset: u64, size: u8, value: u64) {
        if offset == STS && value == 0x20 {
            self.armed = true;
        }
        self.inner.write(backend, offset, size, value)
    }
}

#[test]
fn response_retry_recovers_a_lost_byte() {
    let mut model = LosesOneByte {
        inner: Tis::new(),
        armed: false,
    };
    let mut rec = Recorder::new(50);
    let cmd = command(20, 9);
    let mut bus = Bus::new(&mut model, &mut rec).with_trace();
    let rsp = LinuxTis::new().transact(&mut bus, 0, &cmd).unwrap();
    let trace = bus.take_trace();
    drop(bus);
    assert_eq!(rsp, expected_response(&cmd, 50));
    assert!(
        trace
            .iter()
            .any(|a| a.kind == AccessKind::Write && a.offset == STS && a.value == 0x02),
        "responseRetry written"
    );
    assert_eq!(rec.seen.len(), 1, "the command ran once");
}

#[test]
fn a_model_that_never_grants_the_locality_times_out() {
    let mut stuck = Stuck::new(0);
    let mut rec = Recorder::new(10);
    let mut driver = LinuxTis::new();
    driver.max_polls = 50;
    let mut bus = Bus::new(&mut stuck, &mut rec);
    let r = driver.transact(&mut bus, 0, &command(10, 0));
    assert!(matches!(r, Err(DriverError::Timeout { .. })), "{r:?}");
    assert!(bus.counts().reads <= 60, "{:?}", bus.counts());
    drop(bus);
    assert!(rec.seen.is_empty());
}

#[test]
fn an_empty_bus_is_no_device() {
    let mut stuck = Stuck::new(u64::MAX);
    let mut rec = Recorder::new(10);
    let mut driver = LinuxTis::new();
    driver.max_polls = 20;
    let mut bus = Bus::new(&mut stuck, &mut rec);
    // All-ones has ACCESS.valid set but never a granted locality.
    let r = driver.probe(&mut bus);
    assert!(matches!(r, Err(DriverError::NoDevice { .. })), "{r:?}");
}

#[test]
fn short_commands_are_refused_before_any_access() {
    let mut tis = Tis::new();
    let mut rec = Recorder::new(10);
    let mut bus = Bus::new(&mut tis, &mut rec);
    let r = LinuxTis::new().transact(&mut bus, 0, &[0x80, 0x01, 0, 0]);
    assert!(matches!(r, Err(DriverError::BadCommand { len: 4, .. })));
    assert_eq!(bus.counts().total(), 0);
}
