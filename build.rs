//! Build script of the svtpm crate: link options for the freestanding image.
//!
//! On `target_os = "none"` the `svtpm` binary is linked as a static,
//! position-dependent executable (not the target's default static PIE): the
//! image is loaded at its link address and nothing would apply the ~18,000
//! dynamic relocations that libcrypto's function tables need in a PIE.
//! rust-lld keeps its default of failing on any undefined symbol.
//! Hosted builds need nothing here.
use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // `--cfg svtpm_linux_user` builds the image as a Linux process (a smoke
    // test of the freestanding engine; see src/main.rs).
    println!("cargo::rustc-check-cfg=cfg(svtpm_linux_user)");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        // Later arguments win over the target's `-pie`.
        println!("cargo:rustc-link-arg-bins=-no-pie");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
        // Undefined symbols are errors (the linker default, made explicit so
        // no later flag can relax it).
        println!("cargo:rustc-link-arg-bins=--no-undefined");
        println!("cargo:rustc-link-arg-bins=--error-unresolved-symbols");
        // 1 MiB: the conventional load address for a PVH/multiboot kernel.
        println!("cargo:rustc-link-arg-bins=--image-base=0x100000");
    }
}
