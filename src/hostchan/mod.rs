//! The host channel: a mailbox in memory shared between svtpm (the guest
//! end, [`Channel`]) and the host proxy (the host end, [`Server`]), over
//! which svtpm reaches everything outside its VM: the key broker (HTTP),
//! the PSP (SNP guest requests), its sealed state slots, and the host log.
//!
//! One request is outstanding at a time. The guest writes the payload and
//! descriptor, then release-stores `req.seq`; the host answers the same
//! way through `resp.seq`. The host is untrusted: the guest copies every
//! host-written byte out once, checks it, and bounds every length; the
//! host can delay, drop or corrupt messages (denial of service, reported
//! as a clear [`HostchanError`]) but only ever sees what is public or
//! protected end to end. Layout, rules and threat analysis:
//! `docs/hostchan.md`.
//!
//! Parts:
//! - [`layout`]: offsets, [`MsgType`], [`Status`];
//! - [`region`]: the [`Region`] seam and [`MemRegion`];
//! - [`wire`]: header and descriptor copies;
//! - [`messages`]: each type's payload layout;
//! - [`http`]: the HTTP message encoding;
//! - [`client`]: [`Channel`], the guest end;
//! - [`server`]: [`Server`], the host end;
//! - [`adapters`]: the channel as a `SlotStore`, a KBS `Transport` and an
//!   SNP `GuestRequestTransport`;
//! - [`error`]: every failure, [`HostchanError`].

pub mod adapters;
pub mod client;
pub mod error;
pub mod http;
pub mod layout;
pub mod messages;
pub mod region;
pub mod server;
pub mod wire;

pub use adapters::{ChannelGuestRequest, ChannelHttp, ChannelSlots};
pub use client::{Channel, Response};
pub use error::HostchanError;
pub use layout::{MsgType, Status};
pub use region::{MemRegion, Region};
pub use server::{Request, Server};

#[cfg(test)]
mod tests;
