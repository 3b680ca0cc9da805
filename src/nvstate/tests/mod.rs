//! Behavioural tests of the whole state machinery: sealing and tampering,
//! the open / provision / commit life cycle, and power cuts at every byte.
mod fault;
mod lifecycle;
pub(super) mod support;
mod tamper;
