//! `cargo xtask run`: boots a guest (OVMF + Linux) under QEMU TCG with a
//! TPM, streams its serial console, and fails unless every check of the
//! guest script passed. `--tpm svtpm` (the default) makes the svtpm image
//! the guest's TPM; `--tpm swtpm` is the baseline with QEMU's own TPM device
//! on Debian's swtpm. `--sim` instead serves the vTPM stack to host tools
//! through svtpm-sim, as before the guest boot existed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;

use crate::acpi;
use crate::elf;
use crate::guest;
use crate::packages::{self, Group};
use crate::qemu::{self, Tpm};
use crate::steps::{self, Outcome, Steps};
use crate::workspace::Workspace;

/// The Debian packages the guest boot needs.
pub const NEEDS: &[Group] = &[Group::Build, Group::Test, Group::Guest];
/// The Debian packages `--sim` needs (tpm2-tools is the suggested client).
pub const SIM_NEEDS: &[Group] = &[Group::Build, Group::Test];

/// The TCG simulator command port (the platform port is the next one).
pub const SIM_PORT: u16 = 2321;

/// The TPM interface: the register model svtpm puts at 0xFED40000, or
/// QEMU's device of that kind in the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Interface {
    /// The FIFO (TIS/PTP) interface; Linux binds tpm_tis.
    Tis,
    /// The Command Response Buffer interface; Linux binds tpm_crb.
    Crb,
}

impl Interface {
    /// The name on command lines (`tis`, `crb`).
    pub fn as_arg(self) -> &'static str {
        match self {
            Interface::Tis => "tis",
            Interface::Crb => "crb",
        }
    }
}

/// Options of `cargo xtask run`.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Which TPM the guest gets.
    pub tpm: Tpm,
    /// The TPM interface.
    pub interface: Interface,
    /// Serve svtpm-sim instead of booting a guest.
    pub sim: bool,
    /// With `sim`: delete the TPM state first.
    pub fresh: bool,
    /// Kill QEMU after this many seconds.
    pub timeout: u64,
}

/// `cargo xtask run`.
pub fn run(ws: &Workspace, opts: Options) -> Result<()> {
    if opts.sim {
        return run_sim(ws, opts.interface, opts.fresh);
    }
    let mut s = Steps::new("run");
    s.run("Debian packages", || packages::ensure(NEEDS))?;
    let mut image: Option<PathBuf> = None;
    if opts.tpm == Tpm::Svtpm {
        s.run("build the svtpm image (release)", || {
            if let Some(why) = elf::image_missing(ws)? {
                anyhow::bail!("{why}; boot the baseline with `cargo xtask run --tpm swtpm`");
            }
            image = Some(elf::build_image(ws)?);
            Ok(Outcome::Done)
        })?;
    }
    let mut medium = None;
    s.run("guest boot medium (UKI on a FAT image)", || {
        medium = Some(guest::build(ws)?);
        Ok(Outcome::Done)
    })?;
    let medium = medium.context("no boot medium")?;
    let mut tables = None;
    if opts.tpm == Tpm::Svtpm {
        s.run("ACPI tables (SSDT with MSFT0101, TPM2)", || {
            let t = acpi::write_tables(&ws.target_dir().join("guest/acpi"), opts.interface)?;
            println!("{} and {}", t.ssdt.display(), t.tpm2.display());
            tables = Some(t);
            Ok(Outcome::Done)
        })?;
    }
    let name = format!(
        "boot OVMF + Linux with {} ({})",
        opts.tpm.name(),
        opts.interface.as_arg().to_uppercase()
    );
    let mut report = None;
    let booted = s.run(&name, || {
        let r = qemu::boot(
            ws,
            &qemu::Boot {
                tpm: opts.tpm,
                interface: opts.interface,
                medium: &medium,
                image: image.as_deref(),
                acpi: tables.as_ref(),
                timeout: Duration::from_secs(opts.timeout),
            },
        )?;
        let verdict = r.verdict(&qemu::required_checks(opts.interface));
        report = Some(r);
        verdict.map(|()| Outcome::Done)
    });
    if let Some(r) = &report {
        print_summary(r);
    }
    booted?;
    s.finish();
    Ok(())
}

/// The checks and times of a boot, after the console stream.
fn print_summary(r: &qemu::Report) {
    println!("\nguest checks:");
    for c in &r.summary.checks {
        let status = if c.ok { "ok  " } else { "FAIL" };
        println!("  {status} {}  {}", c.name, c.detail);
    }
    match r.summary.done {
        Some((pass, fail)) => println!("  guest summary: pass={pass} fail={fail}"),
        None => println!("  guest summary: missing"),
    }
    println!("{}", r.timing_line());
    println!("console log: {}", r.console_log.display());
}

/// `--sim`: builds the workspace, then runs svtpm-sim in the foreground.
fn run_sim(ws: &Workspace, interface: Interface, fresh: bool) -> Result<()> {
    let state = ws.target_dir().join("svtpm-state");
    let mut s = Steps::new("run");
    s.run("Debian packages", || packages::ensure(SIM_NEEDS))?;
    s.run("build the workspace", || {
        steps::run(ws.cargo().args(["build", "--workspace"]))?;
        Ok(Outcome::Done)
    })?;
    // The sealed state's development key and svtpm-sim's default
    // generation guard, beside the state directory.
    let key = ws.target_dir().join("svtpm-state.key");
    let guard = ws.target_dir().join("svtpm-state.guard");
    let mut provision = false;
    s.run("state directory", || {
        if fresh {
            if state.exists() {
                std::fs::remove_dir_all(&state)
                    .with_context(|| format!("removing {}", state.display()))?;
            }
            if guard.exists() {
                std::fs::remove_file(&guard)
                    .with_context(|| format!("removing {}", guard.display()))?;
            }
            println!("removed the old state in {}", state.display());
        }
        provision = !["slot-a.svtpm", "slot-b.svtpm"]
            .iter()
            .any(|f| state.join(f).exists());
        if provision && !key.exists() {
            dev_key(&key)?;
            println!("new development state key in {}", key.display());
        }
        println!(
            "TPM state lives in {} (sealed under {}){}",
            state.display(),
            key.display(),
            if provision {
                "; a new vTPM is provisioned"
            } else {
                ""
            }
        );
        Ok(Outcome::Done)
    })?;
    s.finish();
    println!(
        "\nsvtpm-sim serves the {} model on 127.0.0.1:{SIM_PORT} (commands) and :{} (platform).\n\
         In another shell:\n\n    export TPM2TOOLS_TCTI=mssim:host=127.0.0.1,port={SIM_PORT}\n    \
         tpm2_startup -c && tpm2_getrandom --hex 16 && tpm2_pcrread sha256:0\n\n\
         Stop it with Ctrl-C.\n",
        interface.as_arg().to_uppercase(),
        SIM_PORT + 1
    );
    steps::run(
        ws.cargo()
            .args(["run", "--quiet", "--package", "svtpm-sim", "--"])
            .args(["--interface", interface.as_arg()])
            .arg("--state-dir")
            .arg(&state)
            .arg("--key-file")
            .arg(&key)
            .args(provision.then_some("--provision"))
            .args(["--port", &SIM_PORT.to_string()]),
    )
    .context("svtpm-sim stopped with an error")
}

/// Writes a random 256-bit development state key as 64 hex digits (the
/// format svtpm-sim's --key-file takes), readable only by its owner.
fn dev_key(path: &std::path::Path) -> Result<()> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let mut raw = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .context("reading /dev/urandom")?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(path.parent().unwrap_or(std::path::Path::new(".")))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{hex}\n").as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}
