//! Where the repository is, and how to start the tools that work on it.
//!
//! The workspace root is the parent of this crate's manifest directory, fixed at
//! compile time. xtask refuses to run when that is not an svtpm checkout or when
//! the current directory lies outside it, so it never builds or deletes
//! anything somewhere unexpected.

use std::env;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The svtpm checkout xtask works on.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// Finds the workspace root and checks that the current directory is inside it.
    pub fn locate() -> Result<Self> {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir
            .parent()
            .context("xtask's manifest directory has no parent")?
            .canonicalize()
            .with_context(|| {
                format!(
                    "the svtpm checkout xtask was built from ({}) is gone",
                    manifest_dir.display()
                )
            })?;
        let manifest = std::fs::read_to_string(root.join("Cargo.toml"))
            .with_context(|| format!("reading {}/Cargo.toml", root.display()))?;
        if !manifest.contains("[workspace]") || !manifest.contains("name = \"svtpm\"") {
            bail!("{} is not the svtpm workspace root", root.display());
        }
        let cwd = env::current_dir()
            .context("reading the current directory")?
            .canonicalize()
            .context("resolving the current directory")?;
        if !cwd.starts_with(&root) {
            bail!(
                "refusing to run outside the svtpm repository: the current directory {} \
                 is not inside {}; cd there and run `cargo xtask`",
                cwd.display(),
                root.display()
            );
        }
        Ok(Self { root })
    }

    /// A path relative to the root.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// `cargo` (the one that started xtask, so the same toolchain), run in the root.
    pub fn cargo(&self) -> Command {
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        self.command(cargo)
    }

    /// `cargo +<toolchain>` through the rustup proxy, run in the root.
    pub fn cargo_on(&self, toolchain: &str) -> Command {
        let mut c = self.command("cargo");
        c.arg(format!("+{toolchain}"));
        c
    }

    /// Any program, run in the root.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.root);
        c
    }

    /// The top-level `target/` directory of the checkout (not CARGO_TARGET_DIR):
    /// where run-time state such as `target/svtpm-state/` lives.
    pub fn target_dir(&self) -> PathBuf {
        self.root.join("target")
    }
}
