//! `cargo xtask run`: boots a guest (OVMF + Linux) under QEMU TCG with a
//! TPM, streams its serial console, and fails unless every check of the
//! guest script passed. `--tpm svtpm` (the default) makes the svtpm image
//! the guest's TPM, attested: the development key broker and svtpm-proxy
//! run beside QEMU on `target/svtpm-dev/` (see [`crate::stack`]), the image
//! proves itself, gets the vTPM's key and opens its sealed state before the
//! guest starts, so a rerun boots the same TPM. `--ephemeral` keeps the TPM
//! in memory instead (no attestation); `--kbs URL` uses a broker that is
//! already running. `--tpm swtpm` is the baseline with QEMU's own TPM device
//! on Debian's swtpm. `--sim` instead serves the vTPM stack to host tools
//! through svtpm-sim, as before the guest boot existed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;

use crate::acpi;
use crate::elf;
use crate::guest;
use crate::hosttools::{self, HostTools};
use crate::imagelog::ImageBoot;
use crate::interrupt;
use crate::packages::{self, Group};
use crate::qemu::{self, Tpm};
use crate::stack::{self, Stack, StackDir};
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
#[derive(Debug, Clone)]
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
    /// svtpm: the in-memory TPM, no attestation.
    pub ephemeral: bool,
    /// svtpm: the broker to use instead of starting the development one.
    pub kbs: Option<String>,
    /// svtpm: the vTPM to boot instead of the development directory's.
    pub vtpm_id: Option<String>,
}

/// The development directory of `cargo xtask run`, `kbs` and `provision`.
pub fn dev_dir(ws: &Workspace) -> StackDir {
    StackDir::new(ws.target_dir().join("svtpm-dev"))
}

/// What the attested boot runs on.
struct Attested {
    tools: HostTools,
    dir: StackDir,
    id: String,
}

/// `cargo xtask run`.
pub fn run(ws: &Workspace, opts: Options) -> Result<()> {
    if opts.sim {
        return run_sim(ws, opts.interface, opts.fresh);
    }
    interrupt::install()?;
    let attested = opts.tpm == Tpm::Svtpm && !opts.ephemeral;
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
    let medium = guest::medium_step(ws, &mut s, "guest boot medium (UKI on a FAT image)")?;
    let mut tables = None;
    if opts.tpm == Tpm::Svtpm {
        s.run("ACPI tables (SSDT with MSFT0101, TPM2)", || {
            let t = acpi::write_tables(&ws.target_dir().join("guest/acpi"), opts.interface)?;
            println!("{} and {}", t.ssdt.display(), t.tpm2.display());
            tables = Some(t);
            Ok(Outcome::Done)
        })?;
    }
    if attested {
        let image = image.clone().context("no image")?;
        let mut tools = None;
        s.run(
            "host programs (svtpm-kbs, svtpm-proxy, svtpm-psp-sim)",
            || {
                tools = Some(HostTools::build(ws, hosttools::ALL)?);
                Ok(Outcome::Done)
            },
        )?;
        let tools = tools.context("no host programs")?;
        let dir = dev_dir(ws);
        let mut id = None;
        s.run(
            &format!("development directory {}", dir.root().display()),
            || {
                id = Some(prepare_dev(&tools, &dir, &image, &opts)?);
                Ok(Outcome::Done)
            },
        )?;
        let id = id.context("no vTPM")?;
        let a = Attested { tools, dir, id };
        return boot_attested(ws, s, &opts, &a, &medium, &image, tables.as_ref());
    }
    let name = format!(
        "boot OVMF + Linux with {} ({}{})",
        opts.tpm.name(),
        opts.interface.as_arg().to_uppercase(),
        if opts.tpm == Tpm::Svtpm {
            ", in-memory TPM"
        } else {
            ""
        }
    );
    let mut report = None;
    let booted = s.run(&name, || {
        let r = qemu::boot(
            ws,
            &qemu::Boot {
                medium: Some(&medium),
                image: image.as_deref(),
                acpi: tables.as_ref(),
                append: match opts.tpm {
                    Tpm::Svtpm => vec![qemu::EPHEMERAL.to_string()],
                    Tpm::Swtpm => Vec::new(),
                },
                ..qemu::Boot::new(opts.tpm, opts.interface, Duration::from_secs(opts.timeout))
            },
        )?;
        interrupt::check()?;
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

/// Sets up the development directory for one attested run: chain, the
/// policy regenerated from the image as built now (local broker
/// only) and the vTPM to boot. Returns the vTPM's id.
fn prepare_dev(tools: &HostTools, dir: &StackDir, image: &Path, opts: &Options) -> Result<String> {
    dir.ensure_base(tools)?;
    let measurement = tools.measure(image)?;
    if let Some(url) = &opts.kbs {
        let id = match opts.vtpm_id.clone().or(dir.vtpm_id()?) {
            Some(id) => id,
            None => {
                anyhow::bail!("--kbs needs --vtpm-id: the id of a vTPM provisioned in that broker")
            }
        };
        println!(
            "external broker {url}: it must allow the image's launch digest\n  {measurement}\n\
             (it changes with every build) and trust the test ARK {}; vTPM {id}",
            dir.chain().join("ark.pem").display()
        );
        return Ok(id);
    }
    dir.write_policy(std::slice::from_ref(&measurement))?;
    println!(
        "policy {}: allowlist = the image as built now ({measurement}); every rebuild \
         changes the launch digest, so the allowlist is regenerated on each run, as a guest \
         owner does when registering a new release",
        dir.policy().display()
    );
    let (id, new) = dir.ensure_vtpm(tools, opts.vtpm_id.as_deref())?;
    if new {
        println!(
            "new vTPM {id} provisioned in the broker ({}); the image provisions its TPM \
             state on this first boot",
            dir.kbs_data().display()
        );
    } else {
        println!(
            "vTPM {id}: state in {}, broker generation record {}",
            dir.state(&id).display(),
            dir.generation_record(&id)?
                .unwrap_or_else(|| "none yet".into())
        );
    }
    Ok(id)
}

/// The attested boot: broker (unless `--kbs`), proxy, QEMU.
fn boot_attested(
    ws: &Workspace,
    mut s: Steps,
    opts: &Options,
    a: &Attested,
    medium: &guest::Medium,
    image: &Path,
    tables: Option<&acpi::Tables>,
) -> Result<()> {
    let logs = a.dir.logs();
    if logs.exists() {
        std::fs::remove_dir_all(&logs).with_context(|| format!("clearing {}", logs.display()))?;
    }
    let mut cfg = stack::Config::on(&a.dir, image, &a.id);
    if let Some(url) = &opts.kbs {
        cfg.broker = stack::Broker::External(url.clone());
    }
    let name = format!(
        "attested boot of vTPM {} ({}{}, proxy, OVMF + Linux)",
        a.id,
        opts.interface.as_arg().to_uppercase(),
        if opts.kbs.is_some() {
            ""
        } else {
            ", development broker"
        }
    );
    let mut report = None;
    let booted = s.run(&name, || {
        let mut stack = Stack::start(&a.tools, &cfg)?;
        let r = qemu::boot_into(
            ws,
            &qemu::Boot {
                medium: Some(medium),
                image: Some(image),
                acpi: tables,
                append: stack::attested_cmdline(&a.id),
                hostchan: Some(stack.hostchan()),
                epoch: Some(stack.epoch),
                ..qemu::Boot::new(
                    Tpm::Svtpm,
                    opts.interface,
                    Duration::from_secs(opts.timeout),
                )
            },
            &logs,
            &[],
        )?;
        stack.stop();
        interrupt::check()?;
        let verdict = r.verdict(&qemu::required_checks(opts.interface));
        report = Some(r);
        verdict.map(|()| Outcome::Done)
    });
    if let Some(r) = &report {
        print_summary(r);
        println!("{}", ImageBoot::from_lines(&r.lines).summary());
    }
    println!(
        "\nattested stack in {}:\n  logs   {} (console.log, kbs.log, proxy.log)\n  \
         state  {} (the vTPM's sealed slots)\n  broker {} (its state key and generation \
         record {}), policy {}\nRerun `cargo xtask run` to boot the same vTPM; \
         `--ephemeral` boots the in-memory TPM instead.",
        a.dir.root().display(),
        logs.display(),
        a.dir.state(&a.id).display(),
        a.dir.kbs_data().display(),
        a.dir
            .generation_record(&a.id)?
            .unwrap_or_else(|| "none".into()),
        a.dir.policy().display()
    );
    booted?;
    interrupt::check()?;
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
