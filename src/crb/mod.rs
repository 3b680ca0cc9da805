//! Placeholder: filled by the CRB work.
