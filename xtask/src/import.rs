//! `cargo xtask import-swtpm`: builds `svtpm-import-swtpm` (crate
//! svtpm-store) and runs it, sealing an swtpm TPM 2.0 state directory into
//! a new svtpm state directory. The work and every check are in that tool;
//! this only builds it and passes the paths on, made absolute (cargo runs
//! it from the workspace root).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::packages::{self, Group};
use crate::steps::{self, Outcome, Steps};
use crate::workspace::Workspace;

/// The Debian packages the tool needs to build.
pub const NEEDS: &[Group] = &[Group::Build];

/// What to import, as given on the command line.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The swtpm state directory (swtpm's `--tpmstate dir=`), only read.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// The svtpm state key: a file of exactly 64 hex digits
    /// (`openssl rand -hex 32`), the key svtpm-sim's --key-file takes.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// swtpm's key file, if its state is encrypted (swtpm --key file=...).
    #[arg(long, value_name = "FILE")]
    pub swtpm_key: Option<PathBuf>,
    /// Format of --swtpm-key: hex (swtpm's default) or binary.
    #[arg(long, value_parser = ["hex", "binary"])]
    pub swtpm_key_format: Option<String>,
    /// The new svtpm state directory (created; must not hold a state).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Generation guard file [default: OUT.guard beside OUT].
    #[arg(long, value_name = "FILE")]
    pub guard_file: Option<PathBuf>,
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(std::env::current_dir()
        .context("reading the current directory")?
        .join(p))
}

/// Builds and runs the import tool.
pub fn import_swtpm(ws: &Workspace, args: &ImportArgs) -> Result<()> {
    let mut s = Steps::new("import-swtpm");
    s.run("Debian packages", || packages::ensure(NEEDS))?;
    s.run("build svtpm-import-swtpm", || {
        steps::run(ws.cargo().args([
            "build",
            "--quiet",
            "--package",
            "svtpm-store",
            "--bin",
            "svtpm-import-swtpm",
        ]))?;
        Ok(Outcome::Done)
    })?;
    s.finish();
    let mut cmd = ws.cargo();
    cmd.args([
        "run",
        "--quiet",
        "--package",
        "svtpm-store",
        "--bin",
        "svtpm-import-swtpm",
        "--",
    ]);
    cmd.arg("--state-dir").arg(absolute(&args.state_dir)?);
    cmd.arg("--key").arg(absolute(&args.key)?);
    if let Some(k) = &args.swtpm_key {
        cmd.arg("--swtpm-key").arg(absolute(k)?);
    }
    if let Some(f) = &args.swtpm_key_format {
        cmd.arg("--swtpm-key-format").arg(f);
    }
    cmd.arg("--out").arg(absolute(&args.out)?);
    if let Some(g) = &args.guard_file {
        cmd.arg("--guard-file").arg(absolute(g)?);
    }
    if steps::run(&mut cmd).is_err() {
        bail!("the import failed (see the error above); nothing was imported");
    }
    Ok(())
}
