//! `cargo xtask test`: every check CI runs, as one ordered list of steps.
//!
//! To add a check, add a step to [`test`]: a name and a closure returning
//! [`Outcome::Done`], or [`Outcome::Skipped`] with the reason when it cannot
//! apply on this checkout or machine.
//!
//! The guest steps boot OVMF + Linux under QEMU TCG (see [`crate::qemu`]) and
//! require every guest check to pass, the driver of the interface among them:
//! first the swtpm baseline, then the svtpm image. Each boot is killed after
//! [`BOOT_TIMEOUT`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::acpi;
use crate::elf;
use crate::fuzz;
use crate::guest::{self, Medium};
use crate::packages::{self, Group};
use crate::qemu::{self, Tpm};
use crate::run::Interface;
use crate::steps::{self, Outcome, Steps};
use crate::toolchain::{self, FuzzToolchain, IMAGE_TARGET};
use crate::workspace::Workspace;

/// The Debian packages the checks need.
pub const NEEDS: &[Group] = &[Group::Build, Group::Test, Group::Guest];

/// The time limit of one guest boot (a passing one takes well under a minute).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// What the svtpm image prints when it cannot host a guest yet (it runs its
/// engine self-test instead and exits).
const IMAGE_NOT_HOSTING: &str = "no hypervisor yet";

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
    let mut medium = None;
    s.run("guest boot medium", || {
        medium = Some(guest::build(ws)?);
        Ok(Outcome::Done)
    })?;
    let medium = medium.context("no boot medium")?;
    for interface in [Interface::Tis, Interface::Crb] {
        s.run(&boot_step_name(Tpm::Swtpm, interface), || {
            guest_boot(ws, &medium, Tpm::Swtpm, interface, None)
        })?;
    }
    // The image is built once; if it cannot host a guest yet, that shows in
    // the first boot and the second is skipped for the same reason.
    let mut image: Option<Result<PathBuf, String>> = None;
    for interface in [Interface::Tis, Interface::Crb] {
        s.run(&boot_step_name(Tpm::Svtpm, interface), || {
            let image = match &image {
                Some(done) => done.clone(),
                None => {
                    let built = match elf::image_missing(ws)? {
                        Some(why) => Err(why),
                        None => Ok(elf::build_image(ws)?),
                    };
                    image = Some(built.clone());
                    built
                }
            };
            let path = match image {
                Ok(path) => path,
                Err(why) => return Ok(Outcome::Skipped(why)),
            };
            let outcome = guest_boot(ws, &medium, Tpm::Svtpm, interface, Some(&path))?;
            Ok(outcome)
        })?;
    }
    s.finish();
    Ok(())
}

fn boot_step_name(tpm: Tpm, interface: Interface) -> String {
    let what = match tpm {
        Tpm::Swtpm => "swtpm baseline",
        Tpm::Svtpm => "svtpm image",
    };
    format!(
        "guest boot, {what}, {} (OVMF + Linux, tpm2-tools checks)",
        interface.as_arg().to_uppercase()
    )
}

/// One guest boot that must pass every check. An svtpm image that ran only
/// its self-test (it cannot host a guest yet) makes the step skipped.
fn guest_boot(
    ws: &Workspace,
    medium: &Medium,
    tpm: Tpm,
    interface: Interface,
    image: Option<&std::path::Path>,
) -> Result<Outcome> {
    let tables = match tpm {
        Tpm::Svtpm => Some(acpi::write_tables(
            &ws.target_dir().join("guest/acpi"),
            interface,
        )?),
        Tpm::Swtpm => None,
    };
    let report = qemu::boot(
        ws,
        &qemu::Boot {
            tpm,
            interface,
            medium,
            image,
            acpi: tables.as_ref(),
            timeout: BOOT_TIMEOUT,
        },
    )?;
    println!("{}", report.timing_line());
    if tpm == Tpm::Svtpm
        && report.times.firmware_done.is_none()
        && report.summary.checks.is_empty()
        && report.console_contains(IMAGE_NOT_HOSTING)
    {
        return Ok(Outcome::Skipped(format!(
            "the svtpm image cannot host a guest yet (it printed `{IMAGE_NOT_HOSTING}`)"
        )));
    }
    report.verdict(&qemu::required_checks(interface))?;
    let (pass, _) = report.summary.done.unwrap_or_default();
    println!("all {pass} guest checks passed");
    Ok(Outcome::Done)
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
