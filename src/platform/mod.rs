//! Platforms the image runs on. Only `svm` exists so far: QEMU TCG, where
//! svtpm is a thin SVM hypervisor for the guest firmware and OS (the
//! development and CI stand-in for SEV-SNP, with nested paging in the role
//! of VMPL separation).

pub mod svm;
