//! Every register: reset values, widths, read-only and reserved parts,
//! interrupt registers.

use super::{at, command, response, Rig};
use crate::backend::TpmMmio;

const ACCESS: u16 = 0x00;
const INT_ENABLE: u16 = 0x08;
const INT_VECTOR: u16 = 0x0C;
const INT_STATUS: u16 = 0x10;
const INTF_CAP: u16 = 0x14;
const STS: u16 = 0x18;
const IFACE_ID: u16 = 0x30;
const DID_VID: u16 = 0xF00;
const RID: u16 = 0xF04;

#[test]
fn reset_values_in_every_locality() {
    let mut rig = Rig::new(&response(0, &[]));
    for l in 0..5 {
        // tpmRegValidSts and tpmEstablishment (nothing established).
        assert_eq!(rig.r8(at(l, ACCESS)), 0x81, "ACCESS loc {l}");
        assert_eq!(
            rig.r32(at(l, INT_ENABLE)),
            0x0000_0008,
            "INT_ENABLE loc {l}"
        );
        assert_eq!(rig.r8(at(l, INT_VECTOR)), 0, "INT_VECTOR loc {l}");
        assert_eq!(rig.r32(at(l, INT_STATUS)), 0, "INT_STATUS loc {l}");
        assert_eq!(rig.r32(at(l, INTF_CAP)), 0x3000_0697, "INTF_CAP loc {l}");
        assert_eq!(
            rig.r32(at(l, IFACE_ID)),
            0x0000_3900,
            "INTERFACE_ID loc {l}"
        );
        assert_eq!(rig.r32(at(l, DID_VID)), 0x5356_1014, "DID_VID loc {l}");
        assert_eq!(rig.r8(at(l, RID)), 1, "RID loc {l}");
        // No locality is active yet: STS floats.
        assert_eq!(rig.r32(at(l, STS)), 0xFFFF_FFFF, "STS loc {l}");
    }
}

#[test]
fn identification_meets_edk2_ptp_fifo_detection() {
    let mut rig = Rig::new(&response(0, &[]));
    let id = rig.r32(at(0, IFACE_ID));
    let caps = rig.r32(at(0, INTF_CAP));
    assert_eq!(id & 0xF, 0, "InterfaceType FIFO");
    assert_eq!((id >> 4) & 0xF, 0, "InterfaceVersion FIFO");
    assert_ne!(id & (1 << 13), 0, "CapFIFO");
    assert_eq!(id & (1 << 14), 0, "CapCRB must be 0");
    assert_ne!(id & (1 << 8), 0, "CapLocality: five localities");
    assert_eq!((caps >> 28) & 0x7, 3, "InterfaceVersion PTP");
    // VID is none of the ones Linux has quirks for.
    let vid = rig.r32(at(0, DID_VID)) & 0xFFFF;
    for quirk in [0x8086, 0x1050, 0x104A, 0x1114, 0x15D1] {
        assert_ne!(vid, quirk);
    }
}

#[test]
fn identification_registers_read_at_every_width() {
    let mut rig = Rig::new(&response(0, &[]));
    // edk2 reads VID and DID as two 16-bit loads; Linux' iTPM probe reads
    // the VID with a 16-bit load.
    assert_eq!(rig.tis.read(at(0, DID_VID), 2), 0x1014);
    assert_eq!(rig.tis.read(at(0, DID_VID + 2), 2), 0x5356);
    assert_eq!(rig.tis.read(at(0, DID_VID + 1), 1), 0x10);
    // RID is one byte; the rest of its dword is reserved.
    assert_eq!(rig.r32(at(0, RID)), 0xFFFF_FF01);
    // A 64-bit read covers DID_VID and RID.
    assert_eq!(rig.tis.read(at(2, DID_VID), 8), 0xFFFF_FF01_5356_1014);
}

#[test]
fn read_only_registers_ignore_writes() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(0);
    rig.w32(at(0, INTF_CAP), 0);
    rig.w32(at(0, DID_VID), 0);
    rig.w8(at(0, RID), 0x77);
    rig.w32(at(0, IFACE_ID), 0x0006_000F); // selector and type bits
    assert_eq!(rig.r32(at(0, INTF_CAP)), 0x3000_0697);
    assert_eq!(rig.r32(at(0, DID_VID)), 0x5356_1014);
    assert_eq!(rig.r8(at(0, RID)), 1);
    assert_eq!(rig.r32(at(0, IFACE_ID)), 0x0000_3900);
}

#[test]
fn interface_selector_lock_is_sticky_and_global() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.w8(at(3, IFACE_ID + 2), 0x08); // IntfSelLock, from a non-active locality
    for l in 0..5 {
        assert_eq!(rig.r32(at(l, IFACE_ID)), 0x0008_3900);
    }
    rig.w32(at(0, IFACE_ID), 0);
    assert_eq!(rig.r32(at(0, IFACE_ID)), 0x0008_3900);
}

#[test]
fn reserved_space_floats_and_ignores_writes() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(0);
    let reserved = [
        0x01u16, 0x07, 0x0D, 0x0F, 0x1C, 0x23, 0x28, 0x2F, 0x34, 0x7F, 0xC0, 0xEFF, 0xF05, 0xF90,
        0xFFF,
    ];
    for off in reserved {
        rig.w8(at(0, off), 0x00);
        assert_eq!(rig.r8(at(0, off)), 0xFF, "offset {off:#x}");
    }
    // Nothing moved: still idle with locality 0 active.
    assert_eq!(rig.tis.state(), crate::tis::State::Idle);
    assert_eq!(rig.r8(at(0, ACCESS)), 0xA1);
}

#[test]
fn sts_fields_and_read_zero_bits() {
    let cmd = command(0x17B, &[0, 8]);
    let mut rig = Rig::new(&response(0, &[0, 8, 1, 2, 3, 4, 5, 6, 7, 8]));
    rig.take(0);
    let mut seen = Vec::new();
    let mut check = |rig: &mut Rig| {
        let s = rig.sts(0);
        assert_eq!(s & 0x23, 0, "read-zero bits set in {s:#x}");
        assert_eq!(s >> 28, 0, "reserved high bits in {s:#x}");
        assert_eq!(s & (0b11 << 24), 0, "write-only bits read back in {s:#x}");
        assert_eq!((s >> 26) & 0b11, 0b01, "tpmFamily TPM 2.0 in {s:#x}");
        assert_ne!(s & 0x80, 0, "stsValid in {s:#x}");
        // burstCount as edk2 reads it (two byte reads) and as a 16-bit read.
        let b0 = rig.r8(at(0, 0x19));
        let b1 = rig.r8(at(0, 0x1A));
        assert_eq!(u16::from_le_bytes([b0, b1]), (s >> 8) as u16);
        assert_eq!(rig.tis.read(at(0, 0x19), 2) as u16, (s >> 8) as u16);
        assert_eq!(rig.r8(at(0, 0x1B)), (s >> 24) as u8);
        assert_eq!(rig.r8(at(0, 0x18)), s as u8);
        seen.push(s as u8);
    };
    check(&mut rig); // idle
    rig.ready(0);
    check(&mut rig); // ready
    rig.send(0, &cmd[..4]);
    check(&mut rig); // reception, Expect
    rig.send(0, &cmd[4..]);
    check(&mut rig); // reception, complete
    rig.go(0);
    check(&mut rig); // completion
    rig.recv(0, 20);
    check(&mut rig); // completion, all read
    assert_eq!(seen, [0x80, 0xC0, 0x88, 0x80, 0x90, 0x80]);
}

#[test]
fn int_enable_keeps_defined_bits_from_active_locality_only() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.w32(at(0, INT_ENABLE), 0xFFFF_FFFF); // not active: dropped
    assert_eq!(rig.r32(at(0, INT_ENABLE)), 0x08);
    rig.take(0);
    rig.w32(at(0, INT_ENABLE), 0xFFFF_FFFF);
    assert_eq!(rig.r32(at(0, INT_ENABLE)), 0x8000_009F);
    assert_eq!(rig.r32(at(1, INT_ENABLE)), 0x08, "per locality");
    rig.w8(at(0, INT_ENABLE + 3), 0x00); // byte write clears only the global bit
    assert_eq!(rig.r32(at(0, INT_ENABLE)), 0x0000_009F);
}

#[test]
fn int_vector_is_four_bits_and_needs_the_locality() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.w8(at(0, INT_VECTOR), 5);
    assert_eq!(rig.r8(at(0, INT_VECTOR)), 0);
    rig.take(0);
    rig.w8(at(0, INT_VECTOR), 0xF5);
    assert_eq!(rig.r8(at(0, INT_VECTOR)), 0x05);
    assert_eq!(rig.r8(at(2, INT_VECTOR)), 0x05);
}

#[test]
fn int_status_records_enabled_events_and_clears_on_write_one() {
    let cmd = command(0x17B, &[0, 1]);
    let mut rig = Rig::new(&response(0, &[0, 1, 0xAA]));
    rig.take(0);
    // Sources enabled but no global enable: nothing is recorded.
    rig.w32(at(0, INT_ENABLE), 0x87);
    rig.ready(0);
    assert_eq!(rig.r32(at(0, INT_STATUS)), 0);
    rig.ready(0);
    // Global enable on: commandReady from Completion, dataAvail and stsValid.
    rig.w32(at(0, INT_ENABLE), 0x8000_0087);
    rig.send(0, &cmd);
    assert_eq!(rig.r32(at(0, INT_STATUS)), 0x02, "stsValid: Expect dropped");
    rig.go(0);
    assert_eq!(rig.r32(at(0, INT_STATUS)), 0x03, "dataAvail on completion");
    // Write-1-to-clear, only the bits written.
    rig.w32(at(0, INT_STATUS), 0x01);
    assert_eq!(rig.r32(at(0, INT_STATUS)), 0x02);
    rig.w32(at(0, INT_STATUS), 0xFFFF_FFFF);
    assert_eq!(rig.r32(at(0, INT_STATUS)), 0);
    rig.recv(0, 13);
    assert_eq!(
        rig.r32(at(0, INT_STATUS)),
        0x02,
        "stsValid: dataAvail dropped"
    );
    rig.ready(0);
    assert_eq!(rig.r32(at(0, INT_STATUS)), 0x82, "commandReady");
    // A source that is not enabled is not recorded.
    rig.w32(at(0, INT_STATUS), 0xFF);
    rig.w32(at(0, INT_ENABLE), 0x8000_0001);
    rig.send(0, &cmd);
    assert_eq!(rig.r32(at(0, INT_STATUS)), 0);
    // A non-active locality cannot clear.
    rig.go(0);
    assert_eq!(rig.r32(at(0, INT_STATUS)), 0x01);
    rig.w32(at(1, INT_STATUS), 0xFF);
    assert_eq!(rig.r32(at(0, INT_STATUS)), 0x01);
}

#[test]
fn locality_change_is_recorded_in_the_new_locality() {
    let mut rig = Rig::new(&response(0, &[]));
    rig.take(2);
    rig.w32(at(2, INT_ENABLE), 0x8000_0004);
    rig.w8(at(2, ACCESS), 0x20); // release
    assert_eq!(
        rig.r32(at(2, INT_STATUS)),
        0,
        "no new owner, nothing recorded"
    );
    rig.take(2);
    assert_eq!(rig.r32(at(2, INT_STATUS)), 0x04);
    assert_eq!(rig.r32(at(1, INT_STATUS)), 0);
}
