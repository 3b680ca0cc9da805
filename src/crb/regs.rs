//! The CRB register map of the TCG PC Client Platform TPM Profile (PTP):
//! offsets inside one locality's 4 KiB page, the bits of each register, and
//! the identification values this TPM reports in `TPM_CRB_INTF_ID`.
//!
//! Every offset here is relative to the start of a locality page
//! (`0xFED4_0000 + l * 0x1000`).

use bitflags::bitflags;

/// Physical base of the TPM MMIO window (PTP: fixed for PC clients).
pub const MMIO_BASE: u64 = 0xFED4_0000;
/// Size of one locality page.
pub const PAGE_SIZE: u64 = 0x1000;
/// Number of localities the PTP defines (0..=4).
pub const LOCALITY_COUNT: u8 = 5;
/// Size of the whole window: five locality pages.
pub const MMIO_SIZE: u64 = PAGE_SIZE * LOCALITY_COUNT as u64;

/// `TPM_LOC_STATE_x` (32-bit, read-only, the same in every page).
pub const LOC_STATE: u16 = 0x00;
/// `TPM_LOC_CTRL_x` (32-bit, write-only: reads 0).
pub const LOC_CTRL: u16 = 0x08;
/// `TPM_LOC_STS_x` (32-bit, read-only, per locality).
pub const LOC_STS: u16 = 0x0C;
/// `TPM_CRB_INTF_ID_x` low half (64-bit register at 0x30).
pub const INTF_ID_LO: u16 = 0x30;
/// `TPM_CRB_INTF_ID_x` high half: VID (bits 15:0) and DID (bits 31:16).
pub const INTF_ID_HI: u16 = 0x34;
/// `TPM_CRB_CTRL_EXT_x` (64-bit at 0x38, reserved: reads 0).
pub const CTRL_EXT_LO: u16 = 0x38;
/// High half of `TPM_CRB_CTRL_EXT_x`.
pub const CTRL_EXT_HI: u16 = 0x3C;
/// `TPM_CRB_CTRL_REQ_x`.
pub const CTRL_REQ: u16 = 0x40;
/// `TPM_CRB_CTRL_STS_x` (read-only).
pub const CTRL_STS: u16 = 0x44;
/// `TPM_CRB_CTRL_CANCEL_x`.
pub const CTRL_CANCEL: u16 = 0x48;
/// `TPM_CRB_CTRL_START_x`.
pub const CTRL_START: u16 = 0x4C;
/// `TPM_CRB_INT_ENABLE_x`.
pub const INT_ENABLE: u16 = 0x50;
/// `TPM_CRB_INT_STS_x` (write 1 to clear).
pub const INT_STS: u16 = 0x54;
/// `TPM_CRB_CTRL_CMD_SIZE_x`.
pub const CMD_SIZE: u16 = 0x58;
/// `TPM_CRB_CTRL_CMD_LADDR_x`.
pub const CMD_LADDR: u16 = 0x5C;
/// `TPM_CRB_CTRL_CMD_HADDR_x`.
pub const CMD_HADDR: u16 = 0x60;
/// `TPM_CRB_CTRL_RSP_SIZE_x`.
pub const RSP_SIZE: u16 = 0x64;
/// `TPM_CRB_CTRL_RSP_ADDR_x` low half (64-bit register at 0x68).
pub const RSP_ADDR_LO: u16 = 0x68;
/// High half of `TPM_CRB_CTRL_RSP_ADDR_x`.
pub const RSP_ADDR_HI: u16 = 0x6C;
/// `TPM_CRB_DATA_BUFFER_x`: command and response share it.
pub const DATA_BUFFER: u16 = 0x80;
/// Size of the data buffer: the rest of the page.
pub const DATA_BUFFER_SIZE: usize = PAGE_SIZE as usize - DATA_BUFFER as usize;

/// Physical address of the data buffer as seen through locality `l`'s page.
pub const fn buffer_address(locality: u8) -> u64 {
    MMIO_BASE + locality as u64 * PAGE_SIZE + DATA_BUFFER as u64
}

bitflags! {
    /// `TPM_LOC_STATE_x`. Bits 4:2 hold the active locality
    /// ([`LOC_STATE_ACTIVE_SHIFT`]); they are not flags and so not listed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct LocState: u32 {
        /// `tpmEstablished`, active low like TIS `tpmEstablishment`: 1 while
        /// no H-CRTM/DRTM sequence has set the establishment flag.
        const NOT_ESTABLISHED = 1 << 0;
        /// `locAssigned`: some locality is active.
        const LOC_ASSIGNED = 1 << 1;
        /// `tpmRegValidSts`: the other bits are valid.
        const REG_VALID = 1 << 7;
    }
}

/// Shift of the `activeLocality` field in `TPM_LOC_STATE_x`.
pub const LOC_STATE_ACTIVE_SHIFT: u32 = 2;

bitflags! {
    /// `TPM_LOC_CTRL_x` actions (software sets exactly one).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct LocCtrl: u32 {
        /// `requestAccess`.
        const REQUEST_ACCESS = 1 << 0;
        /// `Relinquish`.
        const RELINQUISH = 1 << 1;
        /// `Seize`: take over from a lower locality.
        const SEIZE = 1 << 2;
        /// `resetEstablishmentBit`: honoured from localities 3 and 4 only.
        const RESET_ESTABLISHMENT = 1 << 3;
    }
}

bitflags! {
    /// `TPM_LOC_STS_x`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct LocSts: u32 {
        /// `Granted`: this locality is the active one.
        const GRANTED = 1 << 0;
        /// `beenSeized`: a higher locality took the TPM from this one.
        const BEEN_SEIZED = 1 << 1;
    }
}

bitflags! {
    /// `TPM_CRB_CTRL_REQ_x`: software sets one bit, the TPM clears it once
    /// the transition is done.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct CtrlReq: u32 {
        /// `cmdReady`: go to the Ready state.
        const CMD_READY = 1 << 0;
        /// `goIdle`: go to the Idle state.
        const GO_IDLE = 1 << 1;
    }
}

bitflags! {
    /// `TPM_CRB_CTRL_STS_x`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct CtrlSts: u32 {
        /// `tpmSts`: the TPM is in a fatal error state until reset.
        const FATAL = 1 << 0;
        /// `tpmIdle`: the TPM is in the Idle state.
        const TPM_IDLE = 1 << 1;
    }
}

/// `TPM_CRB_CTRL_START_x.Start`.
pub const START: u32 = 1 << 0;
/// `TPM_CRB_CTRL_CANCEL_x.Cancel`.
pub const CANCEL: u32 = 1 << 0;

bitflags! {
    /// Interrupt sources, the same bits in `TPM_CRB_INT_ENABLE_x` and
    /// `TPM_CRB_INT_STS_x`; [`IntFlags::GLOBAL`] exists only in the enable
    /// register.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct IntFlags: u32 {
        /// A command completed (Start went 1 -> 0).
        const START = 1 << 0;
        /// The TPM entered the Ready state.
        const CMD_READY = 1 << 1;
        /// The establishment flag was reset.
        const ESTABLISHMENT_CLEAR = 1 << 2;
        /// The active locality changed.
        const LOCALITY_CHANGE = 1 << 3;
        /// `globalEnable` (enable register only).
        const GLOBAL = 1 << 31;
    }
}

impl IntFlags {
    /// The bits that exist in `TPM_CRB_INT_STS_x`.
    pub const STATUS_BITS: IntFlags = IntFlags::START
        .union(IntFlags::CMD_READY)
        .union(IntFlags::ESTABLISHMENT_CLEAR)
        .union(IntFlags::LOCALITY_CHANGE);
}

/// `TPM_CRB_INTF_ID` fields (PTP), as bit positions in the 64-bit register.
pub mod intf_id {
    /// `InterfaceType` (bits 3:0): 1 = CRB interface active.
    pub const TYPE_CRB: u64 = 0x1;
    /// `InterfaceVersion` (bits 7:4): 1 = CRB.
    pub const VERSION_CRB: u64 = 0x1 << 4;
    /// `CapLocality` (bit 8): 1 = all five localities, 0 = locality 0 only.
    pub const CAP_LOCALITY: u64 = 1 << 8;
    /// `CapCRBIdleBypass` (bit 9): not offered; drivers go through Idle.
    pub const CAP_IDLE_BYPASS: u64 = 1 << 9;
    /// Bit 10: Linux reads it as "CRB chunking"; never set here.
    pub const CAP_CHUNK: u64 = 1 << 10;
    /// `CapDataXferSizeSupport` (bits 12:11) = 0b11: 64-byte transfers.
    pub const XFER_SIZE_64: u64 = 0b11 << 11;
    /// `CapFIFO` (bit 13): not offered by this interface.
    pub const CAP_FIFO: u64 = 1 << 13;
    /// `CapCRB` (bit 14).
    pub const CAP_CRB: u64 = 1 << 14;
    /// `InterfaceSelector` (bits 18:17) = 1: CRB selected.
    pub const SELECTOR_CRB: u64 = 0b01 << 17;
    /// `IntfSelLock` (bit 19): the selection cannot be changed (only CRB
    /// exists behind this interface).
    pub const SEL_LOCK: u64 = 1 << 19;
    /// `RID` (bits 31:24).
    pub const RID_SHIFT: u32 = 24;
    /// `VID` (bits 47:32).
    pub const VID_SHIFT: u32 = 32;
    /// `DID` (bits 63:48).
    pub const DID_SHIFT: u32 = 48;

    /// Vendor ID reported: 0x1014, the one QEMU's TPM devices report for
    /// the same libtpms engine. Linux `tpm_crb` never reads VID/DID and
    /// `tpm_tis` has quirks only for 0x8086, 0x1050, 0x104A, 0x1114 and
    /// 0x15D1; edk2 only prints it. 0x1022 (AMD) is avoided because edk2
    /// forks special-case AMD's firmware TPM.
    pub const VID: u64 = 0x1014;
    /// Device ID reported (QEMU's value for the same engine).
    pub const DID: u64 = 0x0001;
    /// Revision ID reported.
    pub const RID: u64 = 0x00;

    /// The full register for a TPM that offers all five localities
    /// (`five_localities`) or locality 0 only.
    pub const fn value(five_localities: bool) -> u64 {
        let cap_locality = if five_localities { CAP_LOCALITY } else { 0 };
        TYPE_CRB
            | VERSION_CRB
            | cap_locality
            | XFER_SIZE_64
            | CAP_CRB
            | SELECTOR_CRB
            | SEL_LOCK
            | (RID << RID_SHIFT)
            | (VID << VID_SHIFT)
            | (DID << DID_SHIFT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_ptp() {
        assert_eq!(DATA_BUFFER_SIZE, 0xF80);
        assert_eq!(MMIO_SIZE, 0x5000);
        assert_eq!(buffer_address(0), 0xFED4_0080);
        assert_eq!(buffer_address(4), 0xFED4_4080);
    }

    #[test]
    fn intf_id_fields() {
        let v = intf_id::value(true);
        assert_eq!(v & 0xF, 1, "InterfaceType CRB");
        assert_eq!((v >> 4) & 0xF, 1, "InterfaceVersion CRB");
        assert_ne!(v & intf_id::CAP_CRB, 0);
        assert_eq!(v & intf_id::CAP_FIFO, 0);
        assert_eq!(v & intf_id::CAP_CHUNK, 0);
        assert_eq!(v & intf_id::CAP_IDLE_BYPASS, 0);
        assert_eq!((v >> 17) & 0b11, 1, "InterfaceSelector CRB");
        assert_eq!((v >> 32) & 0xFFFF, 0x1014);
        assert_eq!(v >> 48, 0x0001);
        assert_ne!(v & intf_id::CAP_LOCALITY, 0);
        assert_eq!(intf_id::value(false) & intf_id::CAP_LOCALITY, 0);
    }
}
