//! `cargo xtask test`: every check CI runs, as one ordered list of steps.
//!
//! To add a check, add a step to [`test`]: a name and a closure returning
//! [`Outcome::Done`], or [`Outcome::Skipped`] with the reason when it cannot
//! apply on this checkout or machine.
//!
//! The guest steps boot OVMF + Linux under QEMU TCG (see [`crate::qemu`]) and
//! require every guest check to pass, the driver of the interface among them:
//! first the swtpm baseline (which validates the medium and the checks
//! without svtpm), then the svtpm image on its in-memory TPM
//! (`svtpm.state=ephemeral`). Each boot is killed after [`BOOT_TIMEOUT`].
//! Then the attested boot ([`crate::attested`]): the image with svtpm-proxy
//! and the development broker, two boots of one vTPM that must keep its NV
//! contents and EK, and thirteen boots that must be refused before the guest
//! runs, each its own step. Then `tests/image/check.sh` runs the image's own
//! end-to-end checks (self-test, exception and panic paths, OVMF over TIS
//! and CRB, the guest's access to svtpm's memory and the host channel,
//! Linux binding tpm_tis)
//! and must report no failure.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::acpi;
use crate::attested;
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

/// Runs the checks in order; `quick` skips fmt and clippy; `attested_only`
/// runs only the attested boot's steps (and the image and medium they need).
pub fn test(ws: &Workspace, quick: bool, attested_only: bool) -> Result<()> {
    if attested_only {
        return attested_steps_only(ws);
    }
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
    let medium = guest::medium_step(ws, &mut s, "guest boot medium")?;
    for interface in [Interface::Tis, Interface::Crb] {
        s.run(&boot_step_name(Tpm::Swtpm, interface), || {
            guest_boot(ws, &medium, Tpm::Swtpm, interface, None)
        })?;
    }
    let image = elf::image_step(ws, &mut s, "svtpm image for the guest boots (release)")?;
    for interface in [Interface::Tis, Interface::Crb] {
        s.run(&boot_step_name(Tpm::Svtpm, interface), || match &image {
            Ok(path) => guest_boot(ws, &medium, Tpm::Svtpm, interface, Some(path)),
            Err(why) => Ok(Outcome::Skipped(why.clone())),
        })?;
    }
    attested::steps(
        ws,
        &mut s,
        image.as_deref().map_err(String::as_str),
        &medium,
    )?;
    s.run(
        "image checks (tests/image/check.sh: self-test, fault, panic, OVMF TIS/CRB, isolation of svtpm and the host channel, Linux)",
        || match &image {
            Ok(path) => image_checks(ws, path, &medium.kernel_release),
            Err(why) => Ok(Outcome::Skipped(why.clone())),
        },
    )?;
    s.finish();
    Ok(())
}

/// `--attested`: packages, image, medium, then [`attested::steps`].
fn attested_steps_only(ws: &Workspace) -> Result<()> {
    let mut s = Steps::new("test");
    s.run("Debian packages", || packages::ensure(NEEDS))?;
    let image = elf::image_step(ws, &mut s, "svtpm image (release)")?;
    let medium = guest::medium_step(ws, &mut s, "guest boot medium")?;
    attested::steps(
        ws,
        &mut s,
        image.as_deref().map_err(String::as_str),
        &medium,
    )?;
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

/// One guest boot that must pass every check.
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
    // The TIS/CRB checks run on the in-memory TPM; the attested boot has
    // its own steps (crate::attested).
    let append = match tpm {
        Tpm::Svtpm => vec![qemu::EPHEMERAL.to_string()],
        Tpm::Swtpm => Vec::new(),
    };
    let report = qemu::boot(
        ws,
        &qemu::Boot {
            medium: Some(medium),
            image,
            acpi: tables.as_ref(),
            append,
            ..qemu::Boot::new(tpm, interface, BOOT_TIMEOUT)
        },
    )?;
    println!("{}", report.timing_line());
    report.verdict(&qemu::required_checks(interface))?;
    let (pass, _) = report.summary.done.unwrap_or_default();
    println!("all {pass} guest checks passed");
    Ok(Outcome::Done)
}

/// Runs `tests/image/check.sh` on the image with Debian's OVMF and the
/// kernel of the guest medium (`release`), streaming its verdict lines, its
/// logs under `target/image-check/`; fails unless it reports
/// `N passed, 0 failed` and exits 0.
fn image_checks(ws: &Workspace, image: &Path, release: &str) -> Result<Outcome> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let logs = ws.target_dir().join("image-check");
    let mut cmd = ws.command("bash");
    cmd.arg(ws.path("tests/image/check.sh"))
        .arg(image)
        .arg(qemu::OVMF)
        .arg(format!("/boot/vmlinuz-{release}"))
        .env("SVTPM_CHECK_LOGS", &logs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    println!("$ {}", steps::describe(&cmd));
    let mut child = cmd
        .spawn()
        .context("could not start tests/image/check.sh")?;
    let mut text = String::new();
    for line in BufReader::new(child.stdout.take().context("check.sh stdout")?).lines() {
        let line = line.context("reading check.sh's output")?;
        println!("{line}");
        text.push_str(&line);
        text.push('\n');
    }
    let status = child.wait().context("waiting for tests/image/check.sh")?;
    let (passed, failed) = check_counts(&text).with_context(|| {
        format!("tests/image/check.sh printed no `N passed, N failed` line ({status})")
    })?;
    if failed > 0 || !status.success() {
        anyhow::bail!(
            "tests/image/check.sh: {passed} passed, {failed} failed ({status}); logs in {}",
            logs.display()
        );
    }
    if passed == 0 {
        anyhow::bail!("tests/image/check.sh ran no check");
    }
    Ok(Outcome::Done)
}

/// The counts of check.sh's closing `N passed, M failed` line.
fn check_counts(output: &str) -> Option<(u32, u32)> {
    let line = output.lines().rev().find(|l| l.contains(" passed, "))?;
    let (p, f) = line.trim().split_once(" passed, ")?;
    Some((p.parse().ok()?, f.strip_suffix(" failed")?.parse().ok()?))
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

#[cfg(test)]
mod tests {
    use super::check_counts;

    #[test]
    fn check_sh_summary_is_read_from_its_last_line() {
        let out = "ok   selftest: engine commands succeed\nFAIL isolation: x (log: y)\n6 passed, 1 failed\n";
        assert_eq!(check_counts(out), Some((6, 1)));
        assert_eq!(check_counts("7 passed, 0 failed"), Some((7, 0)));
        assert_eq!(check_counts("ok   selftest: passed, fine\n"), None);
        assert_eq!(check_counts(""), None);
    }
}
