//! The host channel behind the seams the rest of svtpm is written
//! against: [`ChannelSlots`] (state slots), [`ChannelHttp`] (the key
//! broker's HTTP) and [`ChannelGuestRequest`] (SNP guest requests). Each
//! borrows one [`Channel`](super::Channel) shared through a `spin::Mutex`,
//! maps host statuses and channel faults onto its seam's error type, and
//! keeps the last [`HostchanError`](super::HostchanError) for the log
//! (those error types carry only codes or static text).

pub mod kbs;
pub mod slots;
pub mod snp;

pub use kbs::{is_broker_unreachable, ChannelHttp, BROKER_UNREACHABLE};
pub use slots::ChannelSlots;
pub use snp::ChannelGuestRequest;
