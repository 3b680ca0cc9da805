//! `cargo xtask bench`: builds svtpm-bench in release mode and runs it.

use std::path::Path;

use anyhow::Result;

use crate::packages::{self, Group};
use crate::steps::{self, Outcome, Steps};
use crate::workspace::Workspace;

/// The Debian packages the benchmark needs (swtpm is one of the measured TPMs).
pub const NEEDS: &[Group] = &[Group::Build, Group::Test];

/// Builds and runs the benchmark, forwarding `--json` and `--iterations`.
pub fn bench(ws: &Workspace, json: Option<&Path>, iterations: Option<u32>) -> Result<()> {
    let mut s = Steps::new("bench");
    s.run("Debian packages", || packages::ensure(NEEDS))?;
    s.run("build svtpm-bench (release)", || {
        steps::run(
            ws.cargo()
                .args(["build", "--release", "--package", "svtpm-bench"]),
        )?;
        Ok(Outcome::Done)
    })?;
    s.run("run svtpm-bench", || {
        let mut cmd = ws.cargo();
        cmd.args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "svtpm-bench",
            "--",
        ]);
        if let Some(path) = json {
            // The benchmark runs in the workspace root; keep relative paths
            // relative to where xtask was started.
            let path = std::env::current_dir()?.join(path);
            cmd.arg("--json").arg(path);
        }
        if let Some(n) = iterations {
            cmd.arg("--iterations").arg(n.to_string());
        }
        steps::run(&mut cmd)?;
        Ok(Outcome::Done)
    })?;
    s.finish();
    Ok(())
}
