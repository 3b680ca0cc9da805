//! Bad guest input: offsets outside the window, odd widths, unaligned and
//! register-straddling accesses, FIFO overflow, bad size fields, tpmGo in the
//! wrong state, reads while idle, and a backend breaking its contract.

use super::{at, command, header_claiming, response, Rig};
use crate::backend::{TpmMmio, MAX_BUFFER_SIZE};
use crate::tis::{State, Tis};

const ACCESS: u16 = 0x00;
const STS: u16 = 0x18;
const FIFO: u16 = 0x24;

/// A model in Completion holding `rsp`, locality 0 active.
fn completed(rsp: &[u8]) -> Rig {
    let mut rig = Rig::new(rsp);
    rig.take(0);
    rig.ready(0);
    rig.send(0, &command(0x17B, &[0, 1]));
    rig.go(0);
    rig
}

#[test]
fn offsets_outside_the_window_float_and_do_nothing() {
    let rsp = response(0, &[0, 1, 9]);
    let mut rig = completed(&rsp);
    let before = rig.tis.clone();
    for off in [0x5000u64, 0x5024, 0xFFFF_FFFF, u64::MAX, u64::MAX - 3] {
        for size in [1u8, 2, 4, 8] {
            let ones = if size == 8 {
                u64::MAX
            } else {
                (1 << (8 * size)) - 1
            };
            assert_eq!(rig.tis.read(off, size), ones, "read {off:#x}/{size}");
            rig.tis.write(&mut rig.be, off, size, 0);
        }
    }
    assert_eq!(rig.tis, before);
    // An access straddling the end of the window gets the bytes inside it.
    assert_eq!(rig.tis.read(at(4, 0xFFC), 8), 0xFFFF_FFFF_FFFF_FFFF);
    assert_eq!(rig.tis.read(u64::MAX - 1, 2), 0xFFFF);
    assert_eq!(rig.tis.read(0x4F00 - 4, 8) >> 32, 0x5356_1014);
}

#[test]
fn odd_widths_read_ones_and_have_no_side_effect() {
    let rsp = response(0, &[0, 1, 9]);
    let mut rig = completed(&rsp);
    let before = rig.tis.clone();
    for size in [0u8, 3, 5, 6, 7, 9, 16, 255] {
        let v = rig.tis.read(at(0, FIFO), size);
        let expect = match size {
            0 => 0,
            1..=7 => (1u64 << (8 * u32::from(size))) - 1,
            _ => u64::MAX,
        };
        assert_eq!(v, expect, "width {size}");
        rig.tis.write(&mut rig.be, at(0, STS), size, 0x40);
        rig.tis.write(&mut rig.be, at(0, ACCESS), size, 0x20);
    }
    assert_eq!(rig.tis, before, "no FIFO byte consumed, no state changed");
    assert_eq!(rig.recv(0, rsp.len()), rsp);
}

#[test]
fn unaligned_and_straddling_accesses_split_by_byte() {
    let rsp = response(0, &[0, 1, 9]);
    let mut rig = completed(&rsp);
    let sts = rig.sts(0);
    let caps = 0x3000_0697u32;
    // 0x16..0x19: upper half of INTF_CAPABILITY, lower half of STS.
    let v = rig.r32(at(0, 0x16));
    assert_eq!(v, (caps >> 16) | ((sts & 0xFFFF) << 16));
    // 0x1A..0x1D: upper half of STS, then two reserved bytes.
    assert_eq!(rig.r32(at(0, 0x1A)), (sts >> 16) | 0xFFFF_0000);
    // 0x22..0x25: two reserved bytes then two FIFO bytes (consumed).
    let v = rig.r32(at(0, 0x22));
    assert_eq!(v & 0xFFFF, 0xFFFF);
    assert_eq!((v >> 16) as u16, u16::from_le_bytes([rsp[0], rsp[1]]));
    // 0x27..0x2E: one FIFO byte, then reserved.
    let v = rig.tis.read(at(0, 0x27), 8);
    assert_eq!(v as u8, rsp[2]);
    assert_eq!(v >> 8, 0x00FF_FFFF_FFFF_FFFF);
    assert_eq!(rig.recv(0, rsp.len() - 3), rsp[3..]);
    // Writes straddling a locality boundary touch both pages byte by byte:
    // the first bytes land in locality 0's reserved space, the last in
    // locality 1's ACCESS (a request that is then pending).
    rig.tis
        .write(&mut rig.be, at(0, 0xFFE), 4, 0x0000_0200_u64 << 8);
    assert_eq!(rig.r8(at(1, ACCESS)), 0x83);
}

#[test]
fn overflow_past_the_buffer_drops_expect_and_extra_bytes() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(0);
    rig.ready(0);
    let mut cmd = header_claiming(0xFFFF_FFFF);
    cmd.resize(MAX_BUFFER_SIZE, 0xAB);
    rig.send(0, &cmd[..MAX_BUFFER_SIZE - 1]);
    assert_ne!(rig.sts(0) & 0x08, 0, "Expect while space remains");
    assert_eq!(rig.burst(0), 1);
    rig.send(0, &cmd[MAX_BUFFER_SIZE - 1..]);
    assert_eq!(rig.sts(0) & 0x08, 0, "Expect drops when the buffer is full");
    assert_eq!(rig.burst(0), 0);
    rig.send(0, &[1, 2, 3, 4]);
    rig.w32(at(0, FIFO), 0xDEAD_BEEF);
    rig.go(0);
    assert_eq!(rig.be.commands.len(), 1);
    assert_eq!(rig.be.commands[0].1, cmd, "extra bytes ignored");
}

#[test]
fn bytes_past_the_size_field_are_dropped() {
    let cmd = command(0x17B, &[0, 2]);
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(0);
    rig.ready(0);
    rig.send(0, &cmd);
    rig.send(0, &[0xEE; 5]);
    assert_eq!(rig.sts(0) & 0x08, 0);
    rig.go(0);
    assert_eq!(rig.be.commands, vec![(0, cmd)]);
}

#[test]
fn size_field_below_the_header_waits_for_a_whole_header() {
    for size in [0u32, 1, 6, 9] {
        let mut rig = Rig::new(&response(0, &[]));
        rig.take(0);
        rig.ready(0);
        let hdr = header_claiming(size);
        rig.send(0, &hdr[..9]);
        assert_ne!(rig.sts(0) & 0x08, 0, "size {size}: Expect before 10 bytes");
        rig.go(0);
        assert!(rig.be.commands.is_empty(), "size {size}: tpmGo ignored");
        rig.send(0, &hdr[9..]);
        assert_eq!(rig.sts(0) & 0x08, 0, "size {size}: complete at 10 bytes");
        rig.send(0, &[1, 2, 3]);
        rig.go(0);
        assert_eq!(rig.be.commands, vec![(0, hdr)], "size {size}");
    }
}

#[test]
fn size_field_beyond_what_was_written_keeps_expect_and_ignores_go() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(0);
    rig.ready(0);
    let mut cmd = header_claiming(100);
    cmd.resize(60, 0x11);
    rig.send(0, &cmd);
    for _ in 0..3 {
        rig.go(0);
        assert_ne!(rig.sts(0) & 0x08, 0);
        assert_eq!(rig.tis.state(), State::Reception);
    }
    assert!(rig.be.commands.is_empty());
    // Before the size field is complete, Expect is set too.
    rig.ready(0);
    rig.send(0, &cmd[..5]);
    rig.go(0);
    assert_ne!(rig.sts(0) & 0x08, 0);
    assert!(rig.be.commands.is_empty());
}

#[test]
fn go_in_the_wrong_state_is_ignored() {
    let rsp = response(0, &[0, 1, 9]);
    let mut rig = Rig::new(&rsp);
    rig.take(0);
    rig.go(0); // Idle
    assert_eq!(rig.tis.state(), State::Idle);
    rig.ready(0);
    rig.go(0); // Ready
    assert_eq!(rig.tis.state(), State::Ready);
    rig.send(0, &command(0x17B, &[0, 1]));
    rig.go(0);
    rig.recv(0, 4);
    rig.go(0); // Completion: no second execution, no rewind
    assert_eq!(rig.be.commands.len(), 1);
    assert_eq!(rig.recv(0, rsp.len() - 4), rsp[4..]);
    // A go from a locality that is not active is dropped too.
    rig.ready(0);
    rig.send(0, &command(0x17B, &[0, 1]));
    rig.go(1);
    assert_eq!(rig.be.commands.len(), 1);
}

#[test]
fn reads_and_writes_while_idle() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(0);
    assert_eq!(rig.r8(at(0, FIFO)), 0xFF);
    assert_eq!(rig.r32(at(0, FIFO)), 0xFFFF_FFFF);
    assert_eq!(rig.tis.read(at(0, 0x80), 8), u64::MAX);
    // FIFO writes before commandReady are dropped: no reception starts.
    rig.send(0, &command(0x17B, &[0, 1]));
    assert_eq!(rig.tis.state(), State::Idle);
    rig.go(0);
    assert!(rig.be.commands.is_empty());
}

#[test]
fn fifo_writes_in_completion_are_dropped() {
    let rsp = response(0, &[0, 1, 9]);
    let mut rig = completed(&rsp);
    rig.send(0, &[1, 2, 3]);
    assert_eq!(rig.tis.state(), State::Completion);
    assert_eq!(rig.recv(0, rsp.len()), rsp);
}

#[test]
fn backend_breaking_its_contract_yields_tpm_rc_failure() {
    let failure = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01];
    let huge = vec![0u8; MAX_BUFFER_SIZE + 1];
    for bad in [Vec::new(), vec![0x80, 0x01, 0, 0], huge] {
        let mut rig = completed(&bad);
        assert_eq!(rig.recv(0, 10), failure);
        assert_eq!(rig.sts(0) & 0x10, 0);
    }
    // A backend answer of exactly the buffer size is delivered as is.
    let full = vec![0x42u8; MAX_BUFFER_SIZE];
    let mut rig = completed(&full);
    assert_eq!(usize::from(rig.burst(0)), MAX_BUFFER_SIZE);
    assert_eq!(rig.recv(0, MAX_BUFFER_SIZE), full);
}

#[test]
fn a_fresh_model_equals_default() {
    assert_eq!(Tis::default(), Tis::new());
    assert_eq!(Tis::new().active_locality(), None);
}
