//! Build script of the svtpm crate: link options for the freestanding image.
//!
//! On `target_os = "none"` the `svtpm` binary is linked as a static,
//! position-dependent executable (not the target's default static PIE): the
//! image is loaded at its link address and nothing would apply the ~18,000
//! dynamic relocations that libcrypto's function tables need in a PIE.
//! rust-lld keeps its default of failing on any undefined symbol.
//!
//! The VM image is laid out by `src/arch/image.ld` (a PVH entry stub at
//! 1 MiB, the image proper at 4 GiB; see `docs/platform-svm.md`). With
//! `--cfg svtpm_linux_user` the image is a static Linux process instead and
//! keeps the linker's default layout at 1 MiB.
//! Hosted builds need nothing here.
use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/arch/image.ld");
    // `--cfg svtpm_linux_user` builds the image as a Linux process (a smoke
    // test of the freestanding engine; see src/main.rs).
    println!("cargo::rustc-check-cfg=cfg(svtpm_linux_user)");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    // Later arguments win over the target's `-pie`.
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    // Undefined symbols are errors (the linker default, made explicit so
    // no later flag can relax it).
    println!("cargo:rustc-link-arg-bins=--no-undefined");
    println!("cargo:rustc-link-arg-bins=--error-unresolved-symbols");
    if env::var_os("CARGO_CFG_SVTPM_LINUX_USER").is_some() {
        // 1 MiB: any free address works for a static Linux process.
        println!("cargo:rustc-link-arg-bins=--image-base=0x100000");
    } else {
        let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-T{dir}/src/arch/image.ld");
    }
}
