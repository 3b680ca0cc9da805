//! Link recipe for libtpms and OpenSSL's libcrypto.
//!
//! - Hosted targets link the system's shared libraries (Debian `libtpms-dev`
//!   and `libssl-dev`), found through `pkg-config` when it knows them.
//! - Freestanding targets (`target_os = "none"`) link the static archives
//!   `libtpms.a` and `libcrypto.a` from the same packages; the C library they
//!   expect is provided by this crate's `shim` module.
//!
//! `LIBTPMS_SYS_LIB_DIR` overrides the directory searched for the static
//! archives.
use std::env;
use std::path::{Path, PathBuf};

/// Directories searched for the static archives, in order, after the override.
fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    // The multiarch tuple of the target (the archives are x86_64 code).
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let tuple = format!("{arch}-linux-gnu");
    for prefix in ["/usr/lib", "/lib", "/usr/local/lib"] {
        dirs.push(Path::new(prefix).join(&tuple));
    }
    for dir in [
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib64",
        "/usr/local/lib",
    ] {
        dirs.push(PathBuf::from(dir));
    }
    dirs
}

/// Finds the directory holding `file`, or fails the build naming the package.
fn find_archive(file: &str, package: &str) -> PathBuf {
    let mut searched = Vec::new();
    if let Some(dir) = env::var_os("LIBTPMS_SYS_LIB_DIR") {
        let dir = PathBuf::from(dir);
        if dir.join(file).is_file() {
            return dir;
        }
        searched.push(dir);
    }
    for dir in candidate_dirs() {
        if dir.join(file).is_file() {
            return dir;
        }
        searched.push(dir);
    }
    let list: Vec<String> = searched.iter().map(|d| d.display().to_string()).collect();
    panic!(
        "libtpms-sys: {file} not found (searched {}). Install the Debian package \
         `{package}` (apt-get install {package}) or set LIBTPMS_SYS_LIB_DIR to the \
         directory holding it.",
        list.join(", ")
    );
}

fn link_freestanding() {
    let tpms = find_archive("libtpms.a", "libtpms-dev");
    let crypto = find_archive("libcrypto.a", "libssl-dev");
    println!(
        "cargo:rerun-if-changed={}",
        tpms.join("libtpms.a").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        crypto.join("libcrypto.a").display()
    );
    println!("cargo:rustc-link-search=native={}", tpms.display());
    if crypto != tpms {
        println!("cargo:rustc-link-search=native={}", crypto.display());
    }
    // Not bundled into the rlib: the archives are large and the final link
    // (rust-lld) resolves them together with the shim.
    println!("cargo:rustc-link-lib=static:-bundle=tpms");
    println!("cargo:rustc-link-lib=static:-bundle=crypto");
}

fn link_hosted() {
    for (lib, package) in [("libtpms", "libtpms-dev"), ("libcrypto", "libssl-dev")] {
        match pkg_config::Config::new().cargo_metadata(true).probe(lib) {
            Ok(_) => {}
            Err(err) => {
                // pkg-config missing or without the .pc file: fall back to the
                // plain library name and let the linker report a missing one.
                println!(
                    "cargo:warning=libtpms-sys: pkg-config could not find {lib} ({err}); \
                     linking -l{} (Debian package {package})",
                    &lib[3..]
                );
                println!("cargo:rustc-link-lib={}", &lib[3..]);
            }
        }
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBTPMS_SYS_LIB_DIR");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        link_freestanding();
    } else {
        link_hosted();
    }
}
