//! The Linux CRB driver model against the real CRB register model.

mod backend;

use backend::{command, expected_response, Recorder, Stuck};
use svtpm::crb::Crb;
use svtpm_drivers::{
    AccessKind, Bus, CopyMode, Driver, DriverError, LinuxCrb, TpmBackend, TpmMmio,
};

const BUFFER: u64 = 0x80;
const BUFFER_SIZE: usize = 0xF80;

#[test]
fn commands_and_responses_cross_intact_in_every_size_and_copy_mode() {
    for copy in [CopyMode::StringOps, CopyMode::Unrolled] {
        let mut crb = Crb::default();
        let mut driver = LinuxCrb::with_copy(copy);
        for (i, (cmd_len, rsp_len)) in [
            (10, 10),
            (11, 13),
            (13, 11),
            (14, 15),
            (101, 2000),
            (BUFFER_SIZE, BUFFER_SIZE),
        ]
        .into_iter()
        .enumerate()
        {
            let mut rec = Recorder::new(rsp_len);
            let cmd = command(cmd_len, i as u8);
            let rsp = {
                let mut bus = Bus::new(&mut crb, &mut rec);
                driver.transact(&mut bus, 0, &cmd).unwrap()
            };
            assert_eq!(rec.seen, vec![(0, cmd.clone())], "{copy:?} {cmd_len}");
            assert_eq!(rsp, expected_response(&cmd, rsp_len), "{copy:?} {rsp_len}");
        }
    }
}

/// The data-buffer accesses of one transaction, as (kind, width) pairs.
fn buffer_accesses(copy: CopyMode, cmd_len: usize, rsp_len: usize) -> Vec<(AccessKind, u8)> {
    let mut crb = Crb::default();
    let mut rec = Recorder::new(rsp_len);
    let mut driver = LinuxCrb::with_copy(copy);
    {
        let mut bus = Bus::new(&mut crb, &mut rec);
        driver.probe(&mut bus, 0).unwrap();
    }
    let mut bus = Bus::new(&mut crb, &mut rec).with_trace();
    driver.transact(&mut bus, 0, &command(cmd_len, 0)).unwrap();
    let trace = bus.take_trace();
    // Registers are 32-bit accesses only.
    assert!(trace
        .iter()
        .filter(|a| a.offset < BUFFER)
        .all(|a| a.size == 4));
    trace
        .iter()
        .filter(|a| a.offset >= BUFFER)
        .map(|a| (a.kind, a.size))
        .collect()
}

#[test]
fn string_copies_use_dwords_then_a_word_then_a_byte() {
    use AccessKind::{Read, Write};
    // 23 bytes out: 5 x movsl + movsw + movsb. 15 bytes back: 8-byte header
    // (2 x movsl), then 7 bytes: movsl + movsw + movsb.
    let got = buffer_accesses(CopyMode::StringOps, 23, 15);
    let mut want = vec![(Write, 4); 5];
    want.extend([(Write, 2), (Write, 1)]);
    want.extend([(Read, 4), (Read, 4), (Read, 4), (Read, 2), (Read, 1)]);
    assert_eq!(got, want);
}

#[test]
fn unrolled_copies_use_one_byte_per_access() {
    let got = buffer_accesses(CopyMode::Unrolled, 23, 15);
    assert_eq!(got.len(), 23 + 15);
    assert!(got.iter().all(|&(_, size)| size == 1));
}

#[test]
fn a_handful_of_accesses_per_command() {
    let mut crb = Crb::default();
    let mut rec = Recorder::new(10);
    let mut driver = LinuxCrb::new();
    {
        let mut bus = Bus::new(&mut crb, &mut rec);
        driver.probe(&mut bus, 0).unwrap();
    }
    let mut bus = Bus::new(&mut crb, &mut rec);
    driver.transact(&mut bus, 0, &command(12, 0)).unwrap();
    // Writes: LOC_CTRL, CTRL_REQ, CTRL_CANCEL, 3 dwords of command,
    // CTRL_START, CTRL_REQ (goIdle), LOC_CTRL. Reads: LOC_STATE, CTRL_REQ,
    // CTRL_START, CTRL_STS, 2 dwords of header + 1 word, CTRL_REQ,
    // LOC_STATE.
    let c = bus.counts();
    assert_eq!((c.reads, c.writes), (9, 9), "{c:?}");
}

#[test]
fn oversized_commands_are_refused_like_e2big() {
    let mut crb = Crb::default();
    let mut rec = Recorder::new(10);
    let mut bus = Bus::new(&mut crb, &mut rec);
    let r = LinuxCrb::new().transact(&mut bus, 0, &command(BUFFER_SIZE + 1, 0));
    assert_eq!(
        r,
        Err(DriverError::BadCommand {
            len: BUFFER_SIZE + 1,
            max: BUFFER_SIZE
        })
    );
    drop(bus);
    assert!(rec.seen.is_empty());
}

#[test]
fn fatal_status_is_an_error() {
    let mut crb = Crb::default();
    crb.enter_fatal();
    let mut rec = Recorder::new(10);
    let mut bus = Bus::new(&mut crb, &mut rec);
    let r = LinuxCrb::new().transact(&mut bus, 0, &command(10, 0));
    assert!(matches!(r, Err(DriverError::Fatal { .. })), "{r:?}");
    drop(bus);
    assert!(rec.seen.is_empty());
}

#[test]
fn localities_each_use_their_own_page() {
    let mut crb = Crb::default();
    let mut rec = Recorder::new(10);
    let mut driver = LinuxCrb::new();
    for l in [0u8, 2, 4] {
        let mut bus = Bus::new(&mut crb, &mut rec);
        let p = driver.probe(&mut bus, l).unwrap();
        assert_eq!(p.cmd_offset, u64::from(l) * 0x1000 + BUFFER);
        driver.transact(&mut bus, l, &command(10, l)).unwrap();
    }
    assert_eq!(
        rec.seen.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [0, 2, 4]
    );
    assert_eq!(crb.active_locality(), None);
    assert_eq!(driver.last_warning, None);
}

#[test]
fn a_model_that_never_answers_times_out() {
    let mut stuck = Stuck::new(0);
    let mut rec = Recorder::new(10);
    let mut driver = LinuxCrb::new();
    driver.max_polls = 30;
    let mut bus = Bus::new(&mut stuck, &mut rec);
    let r = driver.transact(&mut bus, 0, &command(10, 0));
    assert!(matches!(r, Err(DriverError::Timeout { .. })), "{r:?}");
    assert!(bus.counts().reads <= 40);
}

#[test]
fn a_model_whose_requests_never_clear_times_out() {
    // All-ones: the locality looks granted, but cmdReady never clears.
    let mut stuck = Stuck::new(u64::MAX);
    let mut rec = Recorder::new(10);
    let mut driver = LinuxCrb::new();
    driver.max_polls = 30;
    let mut bus = Bus::new(&mut stuck, &mut rec);
    let r = driver.probe(&mut bus, 0);
    assert!(matches!(r, Err(DriverError::Timeout { .. })), "{r:?}");
}

/// A CRB whose CTRL_START always reads 1 (a command that never completes).
struct NeverCompletes(Crb);

impl TpmMmio for NeverCompletes {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        let v = self.0.read(offset, size);
        if offset == 0x4C {
            v | 1
        } else {
            v
        }
    }

    fn write(&mut self, backend: &mut dyn TpmBackend, offset: u64, size: u8, value: u64) {
        self.0.write(backend, offset, size, value)
    }
}

#[test]
fn a_command_that_never_completes_times_out_and_is_canceled() {
    let mut model = NeverCompletes(Crb::default());
    let mut rec = Recorder::new(10);
    let mut driver = LinuxCrb::new();
    driver.max_polls = 25;
    let mut bus = Bus::new(&mut model, &mut rec).with_trace();
    let r = driver.transact(&mut bus, 0, &command(10, 0));
    assert!(
        matches!(
            r,
            Err(DriverError::Timeout {
                what: "CTRL_START clear",
                ..
            })
        ),
        "{r:?}"
    );
    let trace = bus.take_trace();
    assert!(trace
        .iter()
        .any(|a| a.kind == AccessKind::Write && a.offset == 0x48 && a.value == 1));
    // The locality is still given back.
    drop(bus);
    assert_eq!(model.0.active_locality(), None);
}
