//! The FIFO state machine on well-formed traffic: reception, Expect,
//! execution, completion, burstCount, responseRetry, commandReady aborts,
//! selfTestDone, multi-byte FIFO accesses, localities reaching the backend.

use super::{at, command, response, Rig};
use crate::backend::{TpmMmio, MAX_BUFFER_SIZE};
use crate::tis::State;

const STS: u16 = 0x18;
const FIFO: u16 = 0x24;
const XFIFO: u16 = 0x80;

#[test]
fn full_command_cycle() {
    let cmd = command(0x17B, &[0, 16]);
    let rsp = response(0, &(0..18u8).collect::<Vec<_>>());
    let mut rig = Rig::new(&rsp);
    rig.take(0);
    assert_eq!(rig.tis.state(), State::Idle);
    assert_eq!(rig.burst(0), 0, "nothing to transfer while idle");
    rig.ready(0);
    assert_eq!(rig.tis.state(), State::Ready);
    assert_eq!(usize::from(rig.burst(0)), MAX_BUFFER_SIZE);
    for (i, &b) in cmd.iter().enumerate() {
        rig.w8(at(0, FIFO), b);
        let sts = rig.sts(0);
        let done = i + 1 == cmd.len();
        assert_eq!(sts & 0x08 == 0, done, "Expect after byte {i}: {sts:#x}");
        if !done {
            assert_eq!(
                (sts >> 8) as usize & 0xFFFF,
                MAX_BUFFER_SIZE - i - 1,
                "free space"
            );
        } else {
            assert_eq!((sts >> 8) & 0xFFFF, 0);
        }
    }
    assert!(rig.be.commands.is_empty(), "nothing runs before tpmGo");
    rig.go(0);
    assert_eq!(rig.be.commands, vec![(0, cmd.clone())]);
    assert_eq!(rig.tis.state(), State::Completion);
    let mut got = Vec::new();
    for i in 0..rsp.len() {
        let sts = rig.sts(0);
        assert_eq!(sts & 0x90, 0x90, "dataAvail|stsValid before byte {i}");
        assert_eq!(
            (sts >> 8) as usize & 0xFFFF,
            rsp.len() - i,
            "burstCount = bytes left"
        );
        got.push(rig.r8(at(0, FIFO)));
    }
    assert_eq!(got, rsp);
    assert_eq!(rig.sts(0) & 0x10, 0, "dataAvail clear after the last byte");
    assert_eq!(rig.burst(0), 0);
    assert_eq!(rig.r8(at(0, FIFO)), 0xFF, "nothing more to read");
    rig.ready(0);
    assert_eq!(rig.tis.state(), State::Ready);
    assert_eq!(rig.sts(0) & 0xFF, 0xC0);
    // A second command on the same locality works the same way.
    assert_eq!(rig.transact(0, &cmd), rsp);
    assert_eq!(rig.be.commands.len(), 2);
}

#[test]
fn multi_byte_fifo_accesses_move_that_many_bytes() {
    let cmd = command(0x17E, &(0..22u8).collect::<Vec<_>>()); // 32 bytes
    let rsp = response(0, &(100..130u8).collect::<Vec<_>>()); // 40 bytes
    let mut rig = Rig::new(&rsp);
    rig.take(1);
    rig.ready(1);
    // 2-byte, 4-byte writes at DATA_FIFO, 8-byte writes at XDATA_FIFO.
    let mut i = 0;
    for (off, width) in [
        (FIFO, 2u8),
        (FIFO, 4),
        (FIFO + 1, 2),
        (XFIFO, 8),
        (XFIFO + 8, 8),
        (FIFO, 4),
        (FIFO, 2),
        (XFIFO + 0x38, 2),
    ] {
        let mut chunk = [0u8; 8];
        let w = usize::from(width);
        chunk[..w].copy_from_slice(&cmd[i..i + w]);
        rig.tis
            .write(&mut rig.be, at(1, off), width, u64::from_le_bytes(chunk));
        i += w;
    }
    assert_eq!(i, cmd.len());
    assert_eq!(rig.sts(1) & 0x08, 0);
    rig.go(1);
    assert_eq!(rig.be.commands, vec![(1, cmd)]);
    let mut got = Vec::new();
    for (off, width) in [
        (XFIFO, 8u8),
        (FIFO, 4),
        (FIFO + 2, 2),
        (XFIFO + 0x10, 8),
        (FIFO, 1),
        (XFIFO + 0x3F, 1),
        (XFIFO, 8),
        (FIFO, 4),
        (FIFO, 2),
        (FIFO, 2),
    ] {
        let v = rig.tis.read(at(1, off), width);
        got.extend_from_slice(&v.to_le_bytes()[..usize::from(width)]);
    }
    assert_eq!(got, rsp);
}

#[test]
fn response_retry_rewinds_the_response() {
    let cmd = command(0x17B, &[0, 8]);
    let rsp = response(0, &[0, 8, 9, 8, 7, 6, 5, 4, 3, 2]);
    let mut rig = Rig::new(&rsp);
    rig.take(0);
    rig.ready(0);
    rig.send(0, &cmd);
    rig.go(0);
    let part = rig.recv(0, 7);
    assert_eq!(part, rsp[..7]);
    rig.w8(at(0, STS), 0x02);
    assert_eq!(usize::from(rig.burst(0)), rsp.len());
    assert_eq!(rig.recv(0, rsp.len()), rsp);
    // Also after the whole response was read: dataAvail comes back.
    assert_eq!(rig.sts(0) & 0x10, 0);
    rig.w8(at(0, STS), 0x02);
    assert_eq!(rig.sts(0) & 0x90, 0x90);
    assert_eq!(rig.recv(0, rsp.len()), rsp);
    assert_eq!(rig.be.commands.len(), 1, "a retry never re-executes");
}

#[test]
fn response_retry_outside_completion_is_ignored() {
    let cmd = command(0x17B, &[0, 8]);
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(0);
    rig.w8(at(0, STS), 0x02);
    assert_eq!(rig.tis.state(), State::Idle);
    rig.ready(0);
    rig.w8(at(0, STS), 0x02);
    assert_eq!(rig.tis.state(), State::Ready);
    rig.send(0, &cmd[..3]);
    rig.w8(at(0, STS), 0x02);
    assert_eq!(rig.tis.state(), State::Reception);
    rig.send(0, &cmd[3..]);
    rig.go(0);
    assert_eq!(
        rig.be.commands,
        vec![(0, cmd)],
        "the retry did not disturb reception"
    );
}

#[test]
fn command_ready_aborts_reception() {
    let first = command(0x17B, &[0, 8]);
    let second = command(0x17B, &[0, 4]);
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(0);
    rig.ready(0);
    rig.send(0, &first[..8]);
    rig.ready(0);
    assert_eq!(rig.tis.state(), State::Ready);
    assert_eq!(rig.sts(0) & 0xFF, 0xC0);
    rig.send(0, &second);
    rig.go(0);
    assert_eq!(rig.be.commands, vec![(0, second)]);
}

#[test]
fn command_ready_drops_an_unread_response() {
    let cmd = command(0x17B, &[0, 4]);
    let mut rig = Rig::new(&response(0, &[0, 4, 1, 2, 3, 4]));
    rig.take(0);
    rig.ready(0);
    rig.send(0, &cmd);
    rig.go(0);
    rig.recv(0, 3);
    rig.ready(0);
    assert_eq!(rig.tis.state(), State::Ready);
    assert_eq!(rig.sts(0) & 0x10, 0);
    assert_eq!(rig.r8(at(0, FIFO)), 0xFF);
    // commandReady while already Ready keeps it Ready and empty.
    rig.send(0, &cmd[..2]);
    rig.ready(0);
    rig.ready(0);
    assert_eq!(rig.tis.state(), State::Ready);
}

#[test]
fn self_test_done_after_a_successful_self_test_only() {
    let self_test = command(0x143, &[1]);
    let get_random = command(0x17B, &[0, 1]);
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(0);
    rig.transact(0, &get_random);
    assert_eq!(rig.sts(0) & 0x04, 0, "other commands do not set it");
    rig.be.response = response(0x101, &[]);
    rig.transact(0, &self_test);
    assert_eq!(rig.sts(0) & 0x04, 0, "a failed self-test does not set it");
    rig.be.response = response(0, &[]);
    rig.transact(0, &self_test);
    assert_ne!(rig.sts(0) & 0x04, 0);
    // It stays set in every state and every locality.
    rig.ready(0);
    assert_eq!(rig.sts(0) & 0xFF, 0xC4);
    rig.w8(at(0, 0), 0x20);
    rig.take(3);
    assert_eq!(rig.sts(3) & 0xFF, 0x84);
}

#[test]
fn each_locality_reaches_the_backend_as_itself() {
    let cmd = command(0x17B, &[0, 2]);
    let rsp = response(0, &[0, 2, 7, 7]);
    let mut rig = Rig::new(&rsp);
    for l in 0..5u8 {
        assert_eq!(rig.transact(l, &cmd), rsp, "locality {l}");
        rig.w8(at(l, 0), 0x20);
    }
    let localities: Vec<u8> = rig.be.commands.iter().map(|(l, _)| *l).collect();
    assert_eq!(localities, [0, 1, 2, 3, 4]);
}

#[test]
fn command_cancel_changes_nothing() {
    let cmd = command(0x17B, &[0, 2]);
    let rsp = response(0, &[0, 2, 7, 7]);
    let mut rig = Rig::new(&rsp);
    rig.take(0);
    rig.w8(at(0, STS + 3), 0x01);
    assert_eq!(rig.tis.state(), State::Idle);
    rig.ready(0);
    rig.send(0, &cmd[..5]);
    rig.w8(at(0, STS + 3), 0x01);
    rig.send(0, &cmd[5..]);
    rig.w32(at(0, STS), 0x0100_0000);
    rig.go(0);
    rig.w8(at(0, STS + 3), 0x01);
    assert_eq!(rig.recv(0, rsp.len()), rsp);
    assert_eq!(rig.be.commands.len(), 1);
}

#[test]
fn status_writes_with_several_control_bits_are_ignored() {
    let cmd = command(0x17B, &[0, 2]);
    let mut rig = Rig::new(&response(0, &[0, 2, 7, 7]));
    rig.take(0);
    rig.w8(at(0, STS), 0x60); // commandReady | tpmGo
    assert_eq!(rig.tis.state(), State::Idle);
    rig.ready(0);
    rig.send(0, &cmd);
    rig.w8(at(0, STS), 0x22); // tpmGo | responseRetry
    rig.w8(at(0, STS), 0x62);
    assert!(rig.be.commands.is_empty());
    // Bits other than the three control bits do not disturb a single one.
    rig.w8(at(0, STS), 0x20 | 0x80 | 0x10 | 0x01);
    assert_eq!(rig.be.commands.len(), 1);
}
