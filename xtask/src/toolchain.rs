//! Rust toolchain prerequisites: the image's target, and the toolchain plus
//! cargo-fuzz that fuzzing needs.
//!
//! rust-toolchain.toml pins the stable toolchain and asks for the image target;
//! these checks make a missing piece an explicit, repaired step instead of a
//! confusing build error.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::steps::{self, Outcome};
use crate::workspace::Workspace;

/// The target of the freestanding svtpm image.
pub const IMAGE_TARGET: &str = "x86_64-unknown-none";

/// Adds `target` to the workspace toolchain unless rustup lists it as installed.
pub fn ensure_target(ws: &Workspace, target: &str) -> Result<Outcome> {
    let installed = steps::stdout_of(
        ws.command("rustup").args(["target", "list", "--installed"]),
        "rustup: svtpm needs a rustup-managed toolchain",
    )?;
    if installed.lines().any(|l| l.trim() == target) {
        println!("{target} is installed");
        return Ok(Outcome::Done);
    }
    steps::run(ws.command("rustup").args(["target", "add", target]))?;
    Ok(Outcome::Done)
}

/// Components every task expects of the workspace toolchain (rust-toolchain.toml).
pub const COMPONENTS: &[&str] = &["rustfmt", "clippy"];

/// Adds `components` to the workspace toolchain unless already installed.
pub fn ensure_components(ws: &Workspace, components: &[&str]) -> Result<Outcome> {
    let installed = steps::stdout_of(
        ws.command("rustup")
            .args(["component", "list", "--installed"]),
        "rustup: svtpm needs a rustup-managed toolchain",
    )?;
    // Lines look like `rustfmt-x86_64-unknown-linux-gnu`.
    let missing: Vec<&str> = components
        .iter()
        .copied()
        .filter(|c| {
            !installed
                .lines()
                .any(|l| l.trim() == *c || l.trim().starts_with(&format!("{c}-")))
        })
        .collect();
    if missing.is_empty() {
        println!("components installed: {}", components.join(" "));
        return Ok(Outcome::Done);
    }
    steps::run(
        ws.command("rustup")
            .args(["component", "add"])
            .args(&missing),
    )?;
    Ok(Outcome::Done)
}

/// Whether rustup has a nightly toolchain.
pub fn has_nightly(ws: &Workspace) -> Result<bool> {
    let list = steps::stdout_of(
        ws.command("rustup").args(["toolchain", "list"]),
        "rustup: svtpm needs a rustup-managed toolchain",
    )?;
    Ok(list.lines().any(|l| l.starts_with("nightly")))
}

/// Whether `cargo fuzz` is installed.
pub fn has_cargo_fuzz(ws: &Workspace) -> bool {
    ws.cargo()
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// How fuzz targets get the unstable compiler flags (sanitizers) cargo-fuzz uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuzzToolchain {
    /// `cargo +nightly fuzz ...`.
    Nightly,
    /// The pinned stable toolchain with RUSTC_BOOTSTRAP=1, for machines where
    /// no nightly toolchain can be installed.
    StableBootstrap,
}

impl FuzzToolchain {
    /// `cargo fuzz` on this toolchain, in the workspace root.
    pub fn cargo_fuzz(self, ws: &Workspace) -> Command {
        let mut c = match self {
            FuzzToolchain::Nightly => ws.cargo_on("nightly"),
            FuzzToolchain::StableBootstrap => {
                let mut c = ws.cargo();
                c.env("RUSTC_BOOTSTRAP", "1");
                c
            }
        };
        c.arg("fuzz");
        c
    }
}

/// Installs cargo-fuzz and the nightly toolchain when missing; falls back to
/// stable + RUSTC_BOOTSTRAP when nightly cannot be installed.
pub fn ensure_fuzzing(ws: &Workspace) -> Result<FuzzToolchain> {
    if !has_cargo_fuzz(ws) {
        steps::run(ws.cargo().args(["install", "--locked", "cargo-fuzz"]))
            .context("installing cargo-fuzz from crates.io")?;
        if !has_cargo_fuzz(ws) {
            bail!("`cargo install cargo-fuzz` succeeded but `cargo fuzz` still does not run");
        }
    }
    if has_nightly(ws)? {
        println!("using the nightly toolchain");
        return Ok(FuzzToolchain::Nightly);
    }
    match steps::run(ws.command("rustup").args([
        "toolchain",
        "install",
        "nightly",
        "--profile",
        "minimal",
    ])) {
        Ok(()) => Ok(FuzzToolchain::Nightly),
        Err(e) => {
            println!(
                "could not install nightly ({e:#}); building the fuzz targets with the \
                 stable toolchain and RUSTC_BOOTSTRAP=1 instead"
            );
            Ok(FuzzToolchain::StableBootstrap)
        }
    }
}
