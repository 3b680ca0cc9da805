//! [`ChannelHttp`]: the key broker's HTTP relayed by the host proxy, as a
//! [`Transport`] over HTTP messages.
//!
//! Every failure is a [`KbsError::Transport`] (which the unlock sequence
//! retries): UPSTREAM_UNAVAILABLE says the broker is unreachable
//! ([`BROKER_UNREACHABLE`], recognised by [`is_broker_unreachable`]); other
//! statuses and channel faults carry their own fixed reason. The full
//! channel error stays in [`ChannelHttp::last_error`].

use spin::Mutex;

use crate::attest::kbs::http::MAX_BODY;
use crate::attest::kbs::{HttpRequest, HttpResponse, KbsError, Transport};
use crate::hostchan::client::Channel;
use crate::hostchan::error::HostchanError;
use crate::hostchan::http::{self, MAX_HEADERS, MAX_NAME, MAX_VALUE};
use crate::hostchan::layout::{MsgType, Status};
use crate::hostchan::region::Region;

/// The reason of the [`KbsError::Transport`] for UPSTREAM_UNAVAILABLE.
pub const BROKER_UNREACHABLE: &str = "the host proxy cannot reach the key broker";

/// Largest encoded HTTP response accepted: a body one byte over the
/// client's limit (so the client reports it as too large) and the most
/// headers the encoding allows.
pub const MAX_HTTP_RESPONSE: usize =
    2 + 2 + MAX_HEADERS * (4 + MAX_NAME + MAX_VALUE) + 4 + MAX_BODY + 1;

/// Whether `e` says the host proxy could not reach the broker.
pub fn is_broker_unreachable(e: &KbsError) -> bool {
    matches!(e, KbsError::Transport { reason } if *reason == BROKER_UNREACHABLE)
}

/// HTTP to the key broker over a shared channel.
#[derive(Debug)]
pub struct ChannelHttp<'a, R: Region> {
    chan: &'a Mutex<Channel<R>>,
    last_error: Option<HostchanError>,
}

impl<'a, R: Region> ChannelHttp<'a, R> {
    /// HTTP over `chan`; each request uses the channel's timeout.
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

    fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, HostchanError> {
        let encoded = http::encode_request(request)?;
        let k = MsgType::Http;
        let payload = {
            let mut chan = self.chan.lock();
            let timeout = chan.timeout_ns();
            chan.call(k, &encoded, MAX_HTTP_RESPONSE, timeout)?
        }
        .ok(k)?;
        Ok(http::decode_response(&payload)?)
    }
}

/// The [`KbsError`] for a failed exchange.
fn kbs_error(e: &HostchanError) -> KbsError {
    let reason = match e {
        HostchanError::Status { status, .. } => match status {
            Status::UpstreamUnavailable => BROKER_UNREACHABLE,
            Status::BadRequest => "the host proxy refused the HTTP request as malformed",
            Status::UnsupportedType => "the host proxy does not relay HTTP",
            Status::TooLarge => "the HTTP exchange is too large for the host proxy",
            Status::StorageError | Status::Internal | Status::Ok => {
                "the host proxy failed to relay the HTTP request"
            }
        },
        other => other.reason(),
    };
    KbsError::Transport { reason }
}

impl<R: Region> Transport for ChannelHttp<'_, R> {
    fn exchange(&mut self, request: &HttpRequest) -> Result<HttpResponse, KbsError> {
        self.send(request).map_err(|e| {
            self.last_error = Some(e);
            kbs_error(&e)
        })
    }
}
