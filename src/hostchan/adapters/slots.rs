//! [`ChannelSlots`]: the two state slots kept by the host proxy, as a
//! [`SlotStore`] over SLOT_READ / SLOT_WRITE / SLOT_FLUSH.
//!
//! Error mapping: STORAGE_ERROR and the other refusals become
//! [`StoreError::Io`] with the status code; TOO_LARGE (or a write that
//! cannot fit the payload area) [`StoreError::TooLarge`]; a host that does
//! not answer or whose header is gone [`StoreError::Unavailable`]; a
//! response that fails a check [`StoreError::Io`] with the negative
//! [`HostchanError::code`]. The full error stays in
//! [`ChannelSlots::last_error`].

use alloc::vec::Vec;

use spin::Mutex;

use crate::hostchan::client::Channel;
use crate::hostchan::error::HostchanError;
use crate::hostchan::layout::{MsgType, Status};
use crate::hostchan::messages;
use crate::hostchan::region::Region;
use crate::nvstate::backend::StoreOp;
use crate::nvstate::format::MAX_BLOB_LEN;
use crate::nvstate::{SlotId, SlotStore, StoreError};

/// Largest SLOT_READ response accepted: the present byte and one byte
/// more than the largest blob (the store contract allows the cap).
pub const MAX_SLOT_RESPONSE: usize = 1 + MAX_BLOB_LEN + 1;

/// The host's state slots over a shared channel.
#[derive(Debug)]
pub struct ChannelSlots<'a, R: Region> {
    chan: &'a Mutex<Channel<R>>,
    last_error: Option<HostchanError>,
}

impl<'a, R: Region> ChannelSlots<'a, R> {
    /// Slots over `chan`; each request uses the channel's timeout.
    pub fn new(chan: &'a Mutex<Channel<R>>) -> Self {
        Self {
            chan,
            last_error: None,
        }
    }

    /// The channel error behind the last failure.
    pub fn last_error(&self) -> Option<HostchanError> {
        self.last_error
    }

    fn call(
        &mut self,
        kind: MsgType,
        payload: &[u8],
        max: usize,
        op: StoreOp,
        slot: Option<SlotId>,
    ) -> Result<Vec<u8>, StoreError> {
        let mut chan = self.chan.lock();
        let timeout = chan.timeout_ns();
        let area = chan.area_len();
        let result = chan
            .call(kind, payload, max, timeout)
            .and_then(|r| r.ok(kind));
        drop(chan);
        result.map_err(|e| {
            self.last_error = Some(e);
            store_error(e, op, slot, payload.len().saturating_sub(1), area)
        })
    }

    fn fail(&mut self, e: HostchanError, op: StoreOp, slot: Option<SlotId>) -> StoreError {
        self.last_error = Some(e);
        store_error(e, op, slot, 0, 0)
    }
}

/// The [`StoreError`] for a failed slot request; `len` is the data
/// offered (writes), `area` the payload area.
fn store_error(
    e: HostchanError,
    op: StoreOp,
    slot: Option<SlotId>,
    len: usize,
    area: usize,
) -> StoreError {
    match e {
        HostchanError::Status {
            status: Status::TooLarge,
            ..
        }
        | HostchanError::OverArea {
            what: "request", ..
        } => StoreError::TooLarge {
            len,
            max: area.saturating_sub(1),
        },
        HostchanError::Status { status, .. } => StoreError::Io {
            op,
            slot,
            code: i32::from(status.code()),
        },
        HostchanError::NotReady { .. }
        | HostchanError::Timeout { .. }
        | HostchanError::BadMagic { .. }
        | HostchanError::WrongVersion { .. }
        | HostchanError::RegionLenMismatch { .. } => StoreError::Unavailable { op },
        other => StoreError::Io {
            op,
            slot,
            code: -i32::from(other.code()),
        },
    }
}

impl<R: Region> SlotStore for ChannelSlots<'_, R> {
    fn read_slot(&mut self, slot: SlotId) -> Result<Option<Vec<u8>>, StoreError> {
        let op = StoreOp::Read;
        let payload = self.call(
            MsgType::SlotRead,
            &messages::encode_slot_read(slot),
            MAX_SLOT_RESPONSE,
            op,
            Some(slot),
        )?;
        messages::decode_slot_read_reply(&payload).map_err(|e| self.fail(e, op, Some(slot)))
    }

    fn write_slot(&mut self, slot: SlotId, data: &[u8]) -> Result<(), StoreError> {
        let op = StoreOp::Write;
        let payload = messages::encode_slot_write(slot, data);
        let reply = self.call(MsgType::SlotWrite, &payload, 0, op, Some(slot))?;
        messages::expect_empty(MsgType::SlotWrite, &reply).map_err(|e| self.fail(e, op, Some(slot)))
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let op = StoreOp::Flush;
        let reply = self.call(MsgType::SlotFlush, &[], 0, op, None)?;
        messages::expect_empty(MsgType::SlotFlush, &reply).map_err(|e| self.fail(e, op, None))
    }
}
