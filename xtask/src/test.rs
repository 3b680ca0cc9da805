//! `cargo xtask test`: every check CI runs, as one ordered list of steps.
//!
//! To add a check (for example QEMU boot tests), add a step to [`test`]: a name
//! and a closure returning [`Outcome::Done`], or [`Outcome::Skipped`] with the
//! reason when it cannot apply on this checkout or machine.

use anyhow::Result;

use crate::elf;
use crate::fuzz;
use crate::packages::{self, Group};
use crate::steps::{self, Outcome, Steps};
use crate::toolchain::{self, FuzzToolchain, IMAGE_TARGET};
use crate::workspace::Workspace;

/// The Debian packages the checks need.
pub const NEEDS: &[Group] = &[Group::Build, Group::Test];

/// Runs the checks in order; `quick` skips fmt and clippy.
pub fn test(ws: &Workspace, quick: bool) -> Result<()> {
    let mut s = Steps::new("test");
    s.run("Debian packages", || packages::ensure(NEEDS))?;
    s.run("Rust target x86_64-unknown-none", || {
        toolchain::ensure_target(ws, IMAGE_TARGET)
    })?;
    s.run("Rust components rustfmt, clippy", || {
        toolchain::ensure_components(ws, toolchain::COMPONENTS)
    })?;
    let lint = |what: &str, f: &dyn Fn() -> Result<Outcome>| {
        if quick {
            Ok(Outcome::Skipped(format!("--quick skips {what}")))
        } else {
            f()
        }
    };
    s.run("rustfmt check", || {
        lint("formatting", &|| {
            steps::run(ws.cargo().args(["fmt", "--all", "--", "--check"]))?;
            Ok(Outcome::Done)
        })
    })?;
    s.run("clippy (host, all targets)", || {
        lint("clippy", &|| {
            steps::run(ws.cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))?;
            Ok(Outcome::Done)
        })
    })?;
    s.run("clippy (image, x86_64-unknown-none)", || {
        lint("clippy", &|| {
            if let Some(why) = elf::image_missing(ws)? {
                return Ok(Outcome::Skipped(why));
            }
            steps::run(
                ws.cargo()
                    .args(["clippy", "--package", "svtpm", "--target", IMAGE_TARGET])
                    .args(["--bin", elf::IMAGE_BIN, "--", "-D", "warnings"]),
            )?;
            Ok(Outcome::Done)
        })
    })?;
    s.run("cargo test --workspace", || {
        steps::run(ws.cargo().args(["test", "--workspace"]))?;
        Ok(Outcome::Done)
    })?;
    s.run("image link check (release, no undefined symbols)", || {
        if let Some(why) = elf::image_missing(ws)? {
            return Ok(Outcome::Skipped(why));
        }
        let image = elf::build_image(ws)?;
        elf::check_fully_linked(&image)?;
        Ok(Outcome::Done)
    })?;
    s.run("fuzz targets build (smoke)", || fuzz_smoke(ws))?;
    s.finish();
    Ok(())
}

/// `cargo +nightly fuzz build` when the tools are already there; fuzzing
/// proper (which installs them) is `cargo xtask fuzz`.
fn fuzz_smoke(ws: &Workspace) -> Result<Outcome> {
    if fuzz::targets(ws)?.is_empty() {
        return Ok(Outcome::Skipped(
            "fuzz/fuzz_targets has no targets yet".into(),
        ));
    }
    if !toolchain::has_nightly(ws)? {
        return Ok(Outcome::Skipped(
            "no nightly toolchain (run `cargo xtask fuzz` to fuzz)".into(),
        ));
    }
    if !toolchain::has_cargo_fuzz(ws) {
        return Ok(Outcome::Skipped(
            "cargo-fuzz is not installed (run `cargo xtask fuzz` to install it and fuzz)".into(),
        ));
    }
    steps::run(FuzzToolchain::Nightly.cargo_fuzz(ws).arg("build"))?;
    Ok(Outcome::Done)
}
