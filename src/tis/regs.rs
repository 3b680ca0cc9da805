//! The FIFO register map of the TCG PC Client Platform TPM Profile (PTP) for
//! TPM 2.0 (the "FIFO Interface" register space table and the per-register
//! definitions that follow it): offsets inside one locality's 4 KiB page, the
//! bits of each register, the fixed values this TPM reports, and the decoding
//! of a byte address into a register.

use bitflags::bitflags;

/// Physical base of the TPM MMIO window (fixed for PC clients).
pub const MMIO_BASE: u64 = 0xFED4_0000;
/// Size of one locality page.
pub const PAGE_SIZE: u64 = 0x1000;
/// Number of localities the PTP defines (0..=4).
pub const LOCALITY_COUNT: u8 = 5;
/// Size of the whole window: five locality pages.
pub const MMIO_SIZE: u64 = PAGE_SIZE * LOCALITY_COUNT as u64;

/// `TPM_ACCESS_x` (8-bit).
pub const ACCESS: u16 = 0x00;
/// `TPM_INT_ENABLE_x` (32-bit).
pub const INT_ENABLE: u16 = 0x08;
/// `TPM_INT_VECTOR_x` (8-bit).
pub const INT_VECTOR: u16 = 0x0C;
/// `TPM_INT_STATUS_x` (32-bit, write 1 to clear).
pub const INT_STATUS: u16 = 0x10;
/// `TPM_INTF_CAPABILITY_x` (32-bit, read-only).
pub const INTF_CAPABILITY: u16 = 0x14;
/// `TPM_STS_x` (32-bit: status byte, burstCount at 0x19-0x1A, 0x1B extension).
pub const STS: u16 = 0x18;
/// `TPM_DATA_FIFO_x`: every byte of 0x24-0x27 is the FIFO.
pub const DATA_FIFO: u16 = 0x24;
/// Last byte of `TPM_DATA_FIFO_x`.
pub const DATA_FIFO_END: u16 = 0x27;
/// `TPM_INTERFACE_ID_x` (32-bit).
pub const INTERFACE_ID: u16 = 0x30;
/// `TPM_XDATA_FIFO_x`: the extended FIFO window for multi-byte transfers.
///
/// The register space table lists it at 0x80-0x83; a transfer of the advertised maximum size
/// (64 bytes, see [`INTF_CAPABILITY_VALUE`]) starting at 0x80 spans
/// 0x80-0xBF, so the whole 64-byte window decodes as FIFO (QEMU's tpm-tis
/// does the same).
pub const XDATA_FIFO: u16 = 0x80;
/// Last byte of the extended FIFO window.
pub const XDATA_FIFO_END: u16 = 0xBF;
/// `TPM_DID_VID_x` (32-bit: VID in bits 15:0, DID in bits 31:16).
pub const DID_VID: u16 = 0xF00;
/// `TPM_RID_x` (8-bit).
pub const RID: u16 = 0xF04;

/// Vendor ID reported in `TPM_DID_VID`: 0x1014 (IBM).
///
/// The engine is libtpms, whose `TPM_PT_MANUFACTURER` is "IBM", so the
/// register agrees with what the TPM itself reports. Linux `tpm_tis` has no
/// quirk for it (its quirks key on 0x8086 Intel, 0x1050 Winbond, 0x104A STM,
/// 0x1114 Atmel and 0x15D1 Infineon), and edk2 only prints it.
pub const VID: u16 = 0x1014;
/// Device ID reported in `TPM_DID_VID`: "SV" in ASCII, so that this TPM is
/// told apart from QEMU's tpm-tis (0x0001) in guest logs.
pub const DID: u16 = 0x5356;
/// Revision ID reported in `TPM_RID`: the first revision of this model.
pub const RID_VALUE: u8 = 0x01;

bitflags! {
    /// `TPM_ACCESS_x` bits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Access: u8 {
        /// Reads 1 when the other bits are valid (always, for this model).
        const REG_VALID_STS = 1 << 7;
        /// Reads 1 in the active locality; writing 1 relinquishes it.
        const ACTIVE_LOCALITY = 1 << 5;
        /// Reads 1 if a higher locality seized this one; write 1 to clear.
        const BEEN_SEIZED = 1 << 4;
        /// Write 1 to take the TPM from a lower active locality (reads 0).
        const SEIZE = 1 << 3;
        /// Reads 1 when another locality has a request pending.
        const PENDING_REQUEST = 1 << 2;
        /// Write 1 to request use; reads 1 while this request is pending.
        const REQUEST_USE = 1 << 1;
        /// Reads 1 while no dynamic root of trust has been established.
        const TPM_ESTABLISHMENT = 1 << 0;
    }
}

bitflags! {
    /// `TPM_STS_x` bits (burstCount, bits 23:8, is a number, not a flag).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Sts: u32 {
        /// `dataAvail` and `Expect` are valid.
        const VALID = 1 << 7;
        /// Reads 1 in the Ready state; write 1 to go there (or abort).
        const COMMAND_READY = 1 << 6;
        /// Write 1 to execute the received command (reads 0).
        const TPM_GO = 1 << 5;
        /// A response byte is available in the FIFO.
        const DATA_AVAIL = 1 << 4;
        /// The TPM expects more command bytes.
        const EXPECT = 1 << 3;
        /// The TPM finished the self-test a TPM2_SelfTest asked for.
        const SELF_TEST_DONE = 1 << 2;
        /// Write 1 to rewind the response to its first byte (reads 0).
        const RESPONSE_RETRY = 1 << 1;
        /// Write 1 to cancel an executing command (reads 0).
        const COMMAND_CANCEL = 1 << 24;
        /// Write 1 from locality 3 or 4 to clear tpmEstablishment (reads 0).
        const RESET_ESTABLISHMENT = 1 << 25;
        /// tpmFamily (bits 27:26) = 01: TPM 2.0.
        const FAMILY_TPM2 = 1 << 26;
    }
}

/// Bit position of burstCount in `TPM_STS_x`.
pub const STS_BURST_SHIFT: u32 = 8;

/// Bits of the `TPM_STS_x` status byte that always read 0 (bit 0 is reserved;
/// tpmGo and responseRetry are write-only). Linux treats a status byte with
/// any of them set (`TPM_STS_READ_ZERO`) as an invalid read.
pub const STS_READ_ZERO: u8 = 0x23;

bitflags! {
    /// Interrupt sources, shared by `TPM_INT_ENABLE_x` (enable bits) and
    /// `TPM_INT_STATUS_x` (occurred bits).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Int: u32 {
        /// `dataAvail` went from 0 to 1.
        const DATA_AVAIL = 1 << 0;
        /// `stsValid`-covered status (`Expect`, `dataAvail`) changed.
        const STS_VALID = 1 << 1;
        /// The active locality changed.
        const LOCALITY_CHANGE = 1 << 2;
        /// `commandReady` went from 0 to 1.
        const COMMAND_READY = 1 << 7;
    }
}

/// `TPM_INT_ENABLE_x.globalIntEnable`.
pub const INT_GLOBAL_ENABLE: u32 = 1 << 31;
/// `TPM_INT_ENABLE_x.typePolarity` (bits 4:3).
pub const INT_POLARITY_MASK: u32 = 0b11 << 3;
/// Polarity after reset: 01 = active low level, the only one advertised.
pub const INT_POLARITY_LOW_LEVEL: u32 = 0b01 << 3;
/// The bits of `TPM_INT_ENABLE_x` that hold state; the rest read 0.
pub const INT_ENABLE_WRITABLE: u32 = INT_GLOBAL_ENABLE | INT_POLARITY_MASK | Int::all().bits();
/// `TPM_INT_VECTOR_x.sirqVec` (bits 3:0); the rest read 0.
pub const INT_VECTOR_MASK: u8 = 0x0F;

/// `TPM_INTF_CAPABILITY_x` as reported:
/// - bits 0-2, 7: dataAvail, stsValid, localityChange and commandReady
///   interrupts supported;
/// - bit 4: active-low level interrupts (bits 3, 5, 6: other polarities not);
/// - bit 8 = 0: burstCount is dynamic (it counts the bytes left);
/// - bits 10:9 = 11: transfers of up to 64 bytes (the XDATA_FIFO window);
/// - bits 30:28 = 011: interface version 3, the PTP FIFO interface for
///   TPM 2.0, which edk2's `Tpm2GetPtpInterface` requires for "FIFO".
pub const INTF_CAPABILITY_VALUE: u32 = 0x3000_0697;

/// `TPM_INTERFACE_ID_x.InterfaceType` (bits 3:0): 0 = FIFO.
pub const IFACE_TYPE_FIFO: u32 = 0x0;
/// `TPM_INTERFACE_ID_x.InterfaceVersion` (bits 7:4): 0 = FIFO for TPM 2.0.
pub const IFACE_VERSION_FIFO: u32 = 0x0 << 4;
/// `TPM_INTERFACE_ID_x.CapLocality` (bit 8): all five localities.
pub const IFACE_CAP_LOCALITY: u32 = 1 << 8;
/// `TPM_INTERFACE_ID_x.CapDataXferSizeSupport` (bits 12:11): 11 = 64 bytes.
pub const IFACE_CAP_XFER_64: u32 = 0b11 << 11;
/// `TPM_INTERFACE_ID_x.CapFIFO` (bit 13).
pub const IFACE_CAP_FIFO: u32 = 1 << 13;
/// `TPM_INTERFACE_ID_x.IntfSelLock` (bit 19): once written 1, stays 1 until
/// reset. `InterfaceSelector` (bits 18:17) stays 0 (FIFO): CapCRB is 0, so
/// there is nothing else to select.
pub const IFACE_SEL_LOCK: u32 = 1 << 19;
/// `TPM_INTERFACE_ID_x` after reset (0x3900).
pub const INTERFACE_ID_VALUE: u32 =
    IFACE_TYPE_FIFO | IFACE_VERSION_FIFO | IFACE_CAP_LOCALITY | IFACE_CAP_XFER_64 | IFACE_CAP_FIFO;

/// Value read from bytes that hold no register (reserved or unimplemented
/// space, and STS/FIFO of a locality that is not active).
pub const FLOAT_BYTE: u8 = 0xFF;

/// The register a byte address belongs to, with the byte's index inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    /// `TPM_ACCESS_x`.
    Access,
    /// Byte `n` of `TPM_INT_ENABLE_x`.
    IntEnable(u8),
    /// `TPM_INT_VECTOR_x`.
    IntVector,
    /// Byte `n` of `TPM_INT_STATUS_x`.
    IntStatus(u8),
    /// Byte `n` of `TPM_INTF_CAPABILITY_x`.
    IntfCapability(u8),
    /// Byte `n` of `TPM_STS_x`.
    Sts(u8),
    /// A byte of `TPM_DATA_FIFO_x` or `TPM_XDATA_FIFO_x`.
    Fifo,
    /// Byte `n` of `TPM_INTERFACE_ID_x`.
    InterfaceId(u8),
    /// Byte `n` of `TPM_DID_VID_x`.
    DidVid(u8),
    /// `TPM_RID_x`.
    Rid,
    /// Reserved or unimplemented space.
    None,
}

/// A byte address inside the window: which locality page and which register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteAddr {
    /// Locality 0..=4.
    pub locality: u8,
    /// The register the byte belongs to.
    pub reg: Reg,
}

/// Decodes the byte at `offset` (relative to [`MMIO_BASE`]); `None` outside
/// the five locality pages.
pub fn decode(offset: u64) -> Option<ByteAddr> {
    if offset >= MMIO_SIZE {
        return None;
    }
    // Both conversions are lossless: offset < 0x5000.
    let locality = (offset / PAGE_SIZE) as u8;
    let off = (offset % PAGE_SIZE) as u16;
    Some(ByteAddr {
        locality,
        reg: register_at(off),
    })
}

/// The register holding byte `off` of a locality page.
fn register_at(off: u16) -> Reg {
    // `off - base` below is < 4 in every arm.
    let idx = |base: u16| (off - base) as u8;
    match off {
        ACCESS => Reg::Access,
        0x08..=0x0B => Reg::IntEnable(idx(INT_ENABLE)),
        INT_VECTOR => Reg::IntVector,
        0x10..=0x13 => Reg::IntStatus(idx(INT_STATUS)),
        0x14..=0x17 => Reg::IntfCapability(idx(INTF_CAPABILITY)),
        0x18..=0x1B => Reg::Sts(idx(STS)),
        DATA_FIFO..=DATA_FIFO_END | XDATA_FIFO..=XDATA_FIFO_END => Reg::Fifo,
        0x30..=0x33 => Reg::InterfaceId(idx(INTERFACE_ID)),
        0xF00..=0xF03 => Reg::DidVid(idx(DID_VID)),
        RID => Reg::Rid,
        _ => Reg::None,
    }
}

/// Byte `n` (0 = least significant) of a little-endian 32-bit register.
pub fn byte_of(value: u32, n: u8) -> u8 {
    value
        .to_le_bytes()
        .get(usize::from(n))
        .copied()
        .unwrap_or(FLOAT_BYTE)
}

/// Replaces byte `n` of `value` with `byte`, for byte-wise register writes.
pub fn with_byte(value: u32, n: u8, byte: u8) -> u32 {
    let mut bytes = value.to_le_bytes();
    if let Some(b) = bytes.get_mut(usize::from(n)) {
        *b = byte;
    }
    u32::from_le_bytes(bytes)
}
