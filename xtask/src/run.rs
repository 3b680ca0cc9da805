//! `cargo xtask run`: for now, builds everything and serves the vTPM stack with
//! svtpm-sim on the TCG simulator ports. Booting a guest under QEMU with the
//! vTPM replaces this in a later work item.

use anyhow::{Context, Result};
use clap::ValueEnum;

use crate::packages::{self, Group};
use crate::steps::{self, Outcome, Steps};
use crate::workspace::Workspace;

/// The Debian packages `run` needs (tpm2-tools is the suggested client).
pub const NEEDS: &[Group] = &[Group::Build, Group::Test];

/// The TCG simulator command port (the platform port is the next one).
pub const SIM_PORT: u16 = 2321;

/// The register model svtpm-sim puts in front of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Interface {
    /// The FIFO (TIS/PTP) interface.
    Tis,
    /// The Command Response Buffer interface.
    Crb,
}

impl Interface {
    fn as_arg(self) -> &'static str {
        match self {
            Interface::Tis => "tis",
            Interface::Crb => "crb",
        }
    }
}

/// Builds the workspace, then runs svtpm-sim in the foreground.
pub fn run(ws: &Workspace, interface: Interface, fresh: bool) -> Result<()> {
    println!(
        "note: booting a guest (OVMF + Linux) under QEMU with the vTPM is not there yet; \
         this serves the vTPM stack to host tools through svtpm-sim instead"
    );
    let state = ws.target_dir().join("svtpm-state");
    let mut s = Steps::new("run");
    s.run("Debian packages", || packages::ensure(NEEDS))?;
    s.run("build the workspace", || {
        steps::run(ws.cargo().args(["build", "--workspace"]))?;
        Ok(Outcome::Done)
    })?;
    s.run("state directory", || {
        if fresh && state.exists() {
            std::fs::remove_dir_all(&state)
                .with_context(|| format!("removing {}", state.display()))?;
            println!("removed the old state in {}", state.display());
        }
        std::fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
        println!("TPM state lives in {}", state.display());
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
            .args(["--port", &SIM_PORT.to_string()]),
    )
    .context("svtpm-sim stopped with an error")
}
