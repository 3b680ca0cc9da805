//! The development directory's own tasks: `cargo xtask kbs` (the
//! development key broker in the foreground) and `cargo xtask provision`
//! (a new vTPM identity in its data directory). `cargo xtask run` boots on
//! the same directory ([`crate::run`]).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::daemon::Daemon;
use crate::elf;
use crate::hosttools::{HostTools, Tool};
use crate::interrupt;
use crate::packages::{self, Group};
use crate::run::dev_dir;
use crate::stack;
use crate::steps::{Outcome, Steps};
use crate::workspace::Workspace;

/// The Debian packages the host programs need to build.
const NEEDS: &[Group] = &[Group::Build];

/// `cargo xtask kbs`: builds the image (its launch digest is the policy's
/// allowlist) and the broker, sets up the development directory and runs
/// svtpm-kbs in the foreground on `port` until Ctrl-C.
pub fn kbs(ws: &Workspace, port: u16) -> Result<()> {
    interrupt::install()?;
    let dir = dev_dir(ws);
    let mut s = Steps::new("kbs");
    s.run("Debian packages", || packages::ensure(NEEDS))?;
    let mut image = None;
    s.run(
        "build the svtpm image (release), for its launch digest",
        || {
            if let Some(why) = elf::image_missing(ws)? {
                anyhow::bail!("{why}");
            }
            image = Some(elf::build_image(ws)?);
            Ok(Outcome::Done)
        },
    )?;
    let image = image.context("no image")?;
    let mut tools = None;
    s.run("host programs (svtpm-kbs, svtpm-psp-sim)", || {
        tools = Some(HostTools::build(ws, &[Tool::Kbs, Tool::PspSim])?);
        Ok(Outcome::Done)
    })?;
    let tools = tools.context("no host programs")?;
    let mut measurement = String::new();
    s.run(
        &format!("development directory {}", dir.root().display()),
        || {
            dir.ensure_base(&tools)?;
            measurement = tools.measure(&image)?;
            dir.write_policy(std::slice::from_ref(&measurement))?;
            Ok(Outcome::Done)
        },
    )?;
    s.finish();
    let mut cmd = tools.command(Tool::Kbs)?;
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir.kbs_data())
        .arg("--policy")
        .arg(dir.policy())
        .args(["--port", &port.to_string()]);
    let log = dir.root().join("kbs-foreground.log");
    let mut kbs = Daemon::spawn("kbs", &mut cmd, &log, Instant::now(), true)?;
    let url = kbs.wait_for("its address", Duration::from_secs(30), stack::listening_url)?;
    let vtpm = match dir.vtpm_id()? {
        Some(id) => format!(
            "{id} (generation record {})",
            dir.generation_record(&id)?
                .unwrap_or_else(|| "none yet".into())
        ),
        None => "none yet (`cargo xtask provision` makes one)".into(),
    };
    println!(
        "\nThe development key broker serves {url}\n  policy  {} (allowlist: the image as \
         built now, {measurement}; trust anchor: the test ARK {}; debug guests refused)\n  \
         data    {} (token key, vtpm/<id>/state-key and generation)\n  vTPM    {vtpm}\n  \
         log     {}\nBoot against it from another shell with `cargo xtask run --kbs {url}`. \
         Rebuilding the image changes its launch digest: restart this broker to \
         register the new one. Stop it with Ctrl-C.\n",
        dir.policy().display(),
        dir.chain().join("ark.pem").display(),
        dir.kbs_data().display(),
        log.display()
    );
    let status = kbs.wait()?;
    if interrupt::requested() {
        println!("key broker stopped ({status})");
        return Ok(());
    }
    anyhow::bail!("svtpm-kbs exited ({status}); see {}", log.display())
}

/// `cargo xtask provision`: a new vTPM (identity and state key) in the
/// development broker's data directory. Refuses an id that exists.
pub fn provision(ws: &Workspace, id: Option<&str>) -> Result<()> {
    let dir = dev_dir(ws);
    let mut s = Steps::new("provision");
    s.run("Debian packages", || packages::ensure(NEEDS))?;
    let mut tools = None;
    s.run("host program svtpm-kbs", || {
        tools = Some(HostTools::build(ws, &[Tool::Kbs])?);
        Ok(Outcome::Done)
    })?;
    let tools = tools.context("no svtpm-kbs")?;
    let mut made = String::new();
    s.run("provision a new vTPM", || {
        if let Some(id) = id {
            if dir.broker_knows(id) {
                anyhow::bail!(
                    "vTPM {id} already exists in {}: refusing to replace its key",
                    dir.kbs_data().display()
                );
            }
        }
        std::fs::create_dir_all(dir.root())
            .with_context(|| format!("creating {}", dir.root().display()))?;
        made = tools.provision(&dir.kbs_data(), id)?;
        if dir.vtpm_id()?.is_none() {
            dir.set_vtpm_id(&made)?;
        }
        Ok(Outcome::Done)
    })?;
    s.finish();
    let default = dir.vtpm_id()?.filter(|d| *d == made).is_some();
    println!("{made}");
    println!(
        "vTPM {made}: state key in {}; its TPM state is created on its first boot, in {}.\n{}",
        dir.kbs_data().join("vtpm").join(&made).display(),
        dir.state(&made).display(),
        if default {
            "It is the development directory's vTPM: `cargo xtask run` boots it.".to_string()
        } else {
            format!("Boot it with `cargo xtask run --vtpm-id {made}`.")
        }
    );
    Ok(())
}
