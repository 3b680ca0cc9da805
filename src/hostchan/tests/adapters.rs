//! The adapters against hosts: later.
