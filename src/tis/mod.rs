//! Placeholder: filled by the TIS work.
