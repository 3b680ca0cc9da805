//! Placeholder: filled by the libtpms-sys work.
#![no_std]
