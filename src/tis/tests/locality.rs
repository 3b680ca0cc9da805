//! `TPM_ACCESS_x` arbitration: request, pending requests, relinquish,
//! seize, beenSeized, tpmEstablishment and resetEstablishment.

use super::{at, command, response, Rig};
use crate::tis::{State, Tis};

const ACCESS: u16 = 0x00;
const STS: u16 = 0x18;

#[test]
fn request_use_grants_at_once_when_free() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.w8(at(1, ACCESS), 0x02);
    assert_eq!(rig.tis.active_locality(), Some(1));
    assert_eq!(rig.r8(at(1, ACCESS)), 0xA1);
    assert_eq!(
        rig.r8(at(0, ACCESS)),
        0x81,
        "other localities see it free of requests"
    );
    // Requesting again while active changes nothing.
    rig.w8(at(1, ACCESS), 0x02);
    assert_eq!(rig.r8(at(1, ACCESS)), 0xA1);
}

#[test]
fn second_request_waits_and_is_granted_on_release() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(0);
    rig.w8(at(3, ACCESS), 0x02);
    assert_eq!(rig.tis.active_locality(), Some(0));
    assert_eq!(rig.r8(at(3, ACCESS)), 0x83, "requestUse pending in 3");
    assert_eq!(rig.r8(at(0, ACCESS)), 0xA5, "pendingRequest seen by 0");
    assert_eq!(rig.r8(at(1, ACCESS)), 0x85, "pendingRequest seen by 1");
    rig.w8(at(0, ACCESS), 0x20);
    assert_eq!(rig.tis.active_locality(), Some(3));
    assert_eq!(rig.r8(at(3, ACCESS)), 0xA1);
    assert_eq!(rig.r8(at(0, ACCESS)), 0x81);
}

#[test]
fn release_grants_the_highest_pending_locality() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(0);
    rig.w8(at(1, ACCESS), 0x02);
    rig.w8(at(4, ACCESS), 0x02);
    rig.w8(at(2, ACCESS), 0x02);
    rig.w8(at(0, ACCESS), 0x20);
    assert_eq!(rig.tis.active_locality(), Some(4));
    assert_eq!(rig.r8(at(4, ACCESS)), 0xA5, "1 and 2 still pending");
    rig.w8(at(4, ACCESS), 0x20);
    assert_eq!(rig.tis.active_locality(), Some(2));
    rig.w8(at(2, ACCESS), 0x20);
    assert_eq!(rig.tis.active_locality(), Some(1));
    rig.w8(at(1, ACCESS), 0x20);
    assert_eq!(rig.tis.active_locality(), None);
    for l in 0..5 {
        assert_eq!(rig.r8(at(l, ACCESS)), 0x81);
    }
}

#[test]
fn relinquish_from_a_waiting_locality_withdraws_its_request() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(0);
    rig.w8(at(2, ACCESS), 0x02);
    rig.w8(at(2, ACCESS), 0x20);
    assert_eq!(rig.r8(at(2, ACCESS)), 0x81);
    assert_eq!(rig.r8(at(0, ACCESS)), 0xA1);
    rig.w8(at(0, ACCESS), 0x20);
    assert_eq!(rig.tis.active_locality(), None);
}

#[test]
fn seize_by_a_higher_locality() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(1);
    rig.w8(at(3, ACCESS), 0x08);
    assert_eq!(rig.tis.active_locality(), Some(3));
    assert_eq!(rig.r8(at(3, ACCESS)), 0xA1, "Seize reads 0");
    assert_eq!(rig.r8(at(1, ACCESS)), 0x91, "beenSeized in the loser");
    // beenSeized stays until the loser writes 1 to it.
    rig.w8(at(1, ACCESS), 0x02);
    assert_eq!(rig.r8(at(1, ACCESS)), 0x93);
    rig.w8(at(1, ACCESS), 0x10);
    assert_eq!(rig.r8(at(1, ACCESS)), 0x83);
    // Seize from a lower or equal locality is ignored.
    rig.w8(at(2, ACCESS), 0x08);
    rig.w8(at(3, ACCESS), 0x08);
    assert_eq!(rig.tis.active_locality(), Some(3));
    assert_eq!(rig.r8(at(3, ACCESS)) & 0x10, 0);
    // Seize with no locality active grants it.
    rig.w8(at(3, ACCESS), 0x20);
    assert_eq!(rig.tis.active_locality(), Some(1), "pending 1 granted");
    rig.w8(at(1, ACCESS), 0x20);
    rig.w8(at(0, ACCESS), 0x08);
    assert_eq!(rig.tis.active_locality(), Some(0));
}

#[test]
fn seize_ignores_request_and_relinquish_bits_in_the_same_write() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(0);
    rig.w8(at(2, ACCESS), 0x2A);
    assert_eq!(rig.tis.active_locality(), Some(2));
    assert_eq!(rig.r8(at(2, ACCESS)), 0xA1);
}

#[test]
fn locality_change_aborts_the_command_in_flight() {
    let cmd = command(0x17B, &[0, 4]);
    let mut rig = Rig::new(&response(0, &[0, 4, 1, 2, 3, 4]));
    rig.take(0);
    rig.ready(0);
    rig.send(0, &cmd[..5]);
    assert_eq!(rig.tis.state(), State::Reception);
    rig.w8(at(4, ACCESS), 0x08); // seized mid-reception
    assert_eq!(rig.tis.state(), State::Idle);
    assert_eq!(rig.r32(at(4, STS)) & 0xFF, 0x80);
    // The seizer sends its own command; nothing of locality 0's leaks in.
    rig.ready(4);
    rig.send(4, &cmd);
    rig.go(4);
    assert_eq!(rig.be.commands, vec![(4, cmd.clone())]);
    // Releasing in Completion drops the response.
    rig.w8(at(4, ACCESS), 0x20);
    rig.take(0);
    assert_eq!(rig.tis.state(), State::Idle);
    assert_eq!(rig.r8(at(0, 0x24)), 0xFF);
}

#[test]
fn non_active_locality_sees_floating_sts_and_fifo() {
    let cmd = command(0x17B, &[0, 1]);
    let mut rig = Rig::new(&response(0, &[0, 1, 0x5A]));
    rig.take(1);
    rig.ready(1);
    rig.send(1, &cmd);
    rig.go(1);
    for l in [0u8, 2, 3, 4] {
        assert_eq!(rig.r32(at(l, STS)), 0xFFFF_FFFF);
        assert_eq!(rig.r8(at(l, 0x24)), 0xFF);
        assert_eq!(rig.r32(at(l, 0x80)), 0xFFFF_FFFF);
        // Writes from a non-active locality do nothing.
        rig.w8(at(l, STS), 0x40);
        rig.w8(at(l, 0x24), 0x00);
    }
    // Locality 1's response is intact: the reads above consumed nothing.
    assert_eq!(rig.burst(1), 13);
    assert_eq!(rig.recv(1, 13), response(0, &[0, 1, 0x5A]));
}

#[test]
fn establishment_flag_resets_only_from_localities_3_and_4() {
    for (l, cleared) in [(0u8, false), (1, false), (2, false), (3, true), (4, true)] {
        let mut rig = Rig::new(&response(0, &[]));
        rig.tis = Tis::with_established(true);
        assert_eq!(rig.r8(at(l, ACCESS)) & 0x01, 0, "established: bit reads 0");
        // Not active: ignored.
        rig.w8(at(l, STS + 3), 0x02);
        assert!(rig.tis.established());
        rig.take(l);
        rig.w32(at(l, STS), 0x0200_0000);
        assert_eq!(!rig.tis.established(), cleared, "locality {l}");
        assert_eq!(rig.r8(at(0, ACCESS)) & 0x01, u8::from(cleared));
    }
}
