//! Named steps with progress lines, elapsed times and a closing summary, and the
//! helpers that run external commands inside a step.
//!
//! A task is a sequence of steps. Each step prints a line when it starts and one
//! when it ends (ok / skipped with the reason / FAILED), with its own duration and
//! the task's total; a failing step stops the task with an error that names it.

use std::fmt::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How a step ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The step did its work.
    Done,
    /// The step did not apply; the text says why.
    Skipped(String),
}

/// The steps of one task.
#[derive(Debug)]
pub struct Steps {
    task: &'static str,
    start: Instant,
    log: Vec<(String, Outcome, Duration)>,
}

impl Steps {
    /// Starts the clock for `task`.
    pub fn new(task: &'static str) -> Self {
        Self {
            task,
            start: Instant::now(),
            log: Vec::new(),
        }
    }

    /// Runs one step; an error comes back naming the step.
    pub fn run(&mut self, name: &str, f: impl FnOnce() -> Result<Outcome>) -> Result<()> {
        let n = self.log.len() + 1;
        println!("\n==> [{} {n}] {name}", self.task);
        let t = Instant::now();
        let result = f();
        let took = t.elapsed();
        let total = self.start.elapsed();
        match result {
            Ok(outcome) => {
                match &outcome {
                    Outcome::Done => println!(
                        "<== [{} {n}] ok: {name} ({}, total {})",
                        self.task,
                        secs(took),
                        secs(total)
                    ),
                    Outcome::Skipped(why) => println!(
                        "<== [{} {n}] skipped: {name}: {why} (total {})",
                        self.task,
                        secs(total)
                    ),
                }
                self.log.push((name.to_string(), outcome, took));
                Ok(())
            }
            Err(e) => {
                println!(
                    "<== [{} {n}] FAILED: {name} after {} (total {})",
                    self.task,
                    secs(took),
                    secs(total)
                );
                Err(e.context(format!(
                    "step `{name}` of `cargo xtask {}` failed",
                    self.task
                )))
            }
        }
    }

    /// Prints the summary of all steps.
    pub fn finish(self) {
        let mut s = format!("\n{} summary:\n", self.task);
        for (name, outcome, took) in &self.log {
            let status = match outcome {
                Outcome::Done => "ok".to_string(),
                Outcome::Skipped(why) => format!("skipped ({why})"),
            };
            let _ = writeln!(s, "  {:>8}  {name}: {status}", secs(*took));
        }
        let _ = write!(s, "  {:>8}  total", secs(self.start.elapsed()));
        println!("{s}");
    }
}

/// Seconds with one decimal.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The command as a shell-like line, for progress output and error messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            let _ = write!(s, "{}={} ", k.to_string_lossy(), v.to_string_lossy());
        }
    }
    s.push_str(&cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(char::is_whitespace) {
            let _ = write!(s, " '{a}'");
        } else {
            let _ = write!(s, " {a}");
        }
    }
    s
}

/// Runs `cmd` with inherited stdio, echoing it first; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = describe(cmd);
    println!("$ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its output, whatever its exit status; fails
/// only if it cannot be started (the text says `what` was being looked for).
pub fn capture(cmd: &mut Command, what: &str) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run `{}` ({what})", describe(cmd)))
}

/// Runs `cmd` quietly and returns its stdout; fails unless it exits 0.
pub fn stdout_of(cmd: &mut Command, what: &str) -> Result<String> {
    let out = capture(cmd, what)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_step_is_named_in_the_error() {
        let mut steps = Steps::new("unit");
        steps.run("first", || Ok(Outcome::Done)).unwrap();
        let err = steps
            .run("second", || bail!("broken pipe"))
            .expect_err("a failing step must fail the task");
        let text = format!("{err:#}");
        assert!(text.contains("step `second`"), "{text}");
        assert!(text.contains("broken pipe"), "{text}");
    }

    #[test]
    fn run_reports_a_non_zero_exit() {
        assert!(run(&mut Command::new("true")).is_ok());
        let err = run(&mut Command::new("false")).unwrap_err();
        assert!(format!("{err}").contains("`false` failed"), "{err}");
    }

    #[test]
    fn describe_quotes_arguments_with_spaces() {
        let mut c = Command::new("echo");
        c.arg("a b").arg("c").env("X", "1");
        assert_eq!(describe(&c), "X=1 echo 'a b' c");
    }
}
