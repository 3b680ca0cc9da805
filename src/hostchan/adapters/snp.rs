//! [`ChannelGuestRequest`]: SNP guest requests carried to the PSP (on the
//! SVM platform: the proxy's simulated one) as a [`GuestRequestTransport`]
//! over SNP_GUEST_REQUEST messages, with the certificate table the
//! extended request returns kept for [`ChannelGuestRequest::take_cert_table`].
//!
//! [`TransportError`] carries only a code: the firmware's nonzero error as
//! the host reported it; [`STATUS_CODE_BASE`]` | status` for a host
//! refusal; [`CHANNEL_CODE_BASE`]` | `[`HostchanError::code`] for a channel
//! fault (the full error is in [`ChannelGuestRequest::last_error`]). None
//! of this is trusted: the messenger authenticates the response page.

use alloc::vec::Vec;

use spin::Mutex;

use crate::attest::snp::{GuestRequestTransport, TransportError};
use crate::hostchan::client::Channel;
use crate::hostchan::error::HostchanError;
use crate::hostchan::layout::MsgType;
use crate::hostchan::messages::{SnpReply, MAX_SNP_REQUEST, MAX_SNP_RESPONSE, SNP_PAGE};
use crate::hostchan::region::Region;

/// Codes `STATUS_CODE_BASE | status` report a host refusal.
pub const STATUS_CODE_BASE: u64 = 0x5356_4843_0001_0000;
/// Codes `CHANNEL_CODE_BASE | code` report a channel fault.
pub const CHANNEL_CODE_BASE: u64 = 0x5356_4843_0002_0000;

/// SNP guest requests over a shared channel.
#[derive(Debug)]
pub struct ChannelGuestRequest<'a, R: Region> {
    chan: &'a Mutex<Channel<R>>,
    certs: Vec<u8>,
    last_error: Option<HostchanError>,
}

impl<'a, R: Region> ChannelGuestRequest<'a, R> {
    /// Guest requests over `chan`; each uses the channel's timeout.
    pub fn new(chan: &'a Mutex<Channel<R>>) -> Self {
        Self {
            chan,
            certs: Vec::new(),
            last_error: None,
        }
    }

    /// The certificate table of the last successful exchange (empty if the
    /// host sent none), leaving none behind.
    pub fn take_cert_table(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.certs)
    }

    /// The channel error behind the last failure.
    pub fn last_error(&self) -> Option<HostchanError> {
        self.last_error
    }

    fn fail(&mut self, e: HostchanError) -> TransportError {
        self.last_error = Some(e);
        let code = match e {
            HostchanError::Status { status, .. } => STATUS_CODE_BASE | u64::from(status.code()),
            other => CHANNEL_CODE_BASE | u64::from(other.code()),
        };
        TransportError { code }
    }
}

impl<R: Region> GuestRequestTransport for ChannelGuestRequest<'_, R> {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<(), TransportError> {
        self.certs.clear();
        let k = MsgType::SnpGuestRequest;
        if request.len() > MAX_SNP_REQUEST {
            return Err(self.fail(HostchanError::OverArea {
                what: "request",
                len: request.len(),
                area: MAX_SNP_REQUEST,
            }));
        }
        let result = {
            let mut chan = self.chan.lock();
            let timeout = chan.timeout_ns();
            chan.call(k, request, MAX_SNP_RESPONSE, timeout)
        };
        let reply = match result
            .and_then(|r| r.ok(k))
            .and_then(|p| SnpReply::decode(&p))
        {
            Ok(r) => r,
            Err(e) => return Err(self.fail(e)),
        };
        if reply.fw_error != 0 {
            self.last_error = None;
            return Err(TransportError {
                code: reply.fw_error,
            });
        }
        let n = response.len().min(SNP_PAGE);
        response[..n].copy_from_slice(&reply.page[..n]);
        self.certs = reply.certs;
        self.last_error = None;
        Ok(())
    }
}
