//! The refused boots of `cargo xtask test`: every way the attested boot
//! must stop before the guest runs, one step each.
//!
//! Each case starts the stack with one thing wrong (the broker's policy,
//! the proxy's chain or a proxy fault, the broker unreachable, an old state
//! directory) and boots the image without a disk: it must print
//! `FATAL: <stage>: <reason>` with the case's reason, then
//! [`imagelog::NOT_STARTED`], and QEMU must exit with the failure status
//! 35; no guest output may appear, no `boot-time guest-start`; the proxy's
//! state directory must be byte-identical and the broker's generation
//! record unchanged afterwards. The image gets
//! `svtpm.hostchan_timeout_ms=2000 svtpm.kbs_attempts=2`, so the cases that
//! exhaust retries stay short.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::attested::Ctx;
use crate::imagelog::{self, ImageBoot};
use crate::qemu::{self, Tpm};
use crate::run::Interface;
use crate::snapshot::Snapshot;
use crate::stack::{self, Broker, Stack};
use crate::steps::Outcome;
use crate::workspace::Workspace;

/// Broker attempts the image makes in these boots.
pub const KBS_ATTEMPTS: u32 = 2;
/// How the image says it gave up after [`KBS_ATTEMPTS`].
const AFTER_ATTEMPTS: &str = "gave up after 2 attempts";
/// The host channel's per-request timeout in these boots.
pub const HOSTCHAN_TIMEOUT_MS: u32 = 2000;
/// A refused boot ends well within this.
const TIMEOUT: Duration = Duration::from_secs(180);
/// QEMU's exit status when the image reports failure (isa-debug-exit).
pub const FAILURE_EXIT: i32 = 35;
/// The guest policy the simulated PSP reports by default (SMT allowed,
/// reserved bit 17), and the debug bit.
const GUEST_POLICY: u64 = 0x3_0000;
const POLICY_DEBUG: u64 = 1 << 19;
/// Output of a guest that started (OVMF, the UKI's kernel, the guest's
/// init): none may appear in a refused boot.
pub const GUEST_MARKERS: &[&str] = &[
    "BdsDxe",
    "UEFI firmware",
    "EFI stub",
    "Linux version",
    "SVTPM-BOOT",
    "SVTPM-CHECK",
];
/// Stop QEMU at once if the guest starts after all (there is no disk: it
/// would sit in OVMF until the time limit).
const STOP_ON: &[&str] = &["boot-time guest-start", "BdsDxe"];

/// What is wrong in a case.
#[derive(Debug, Clone, Copy)]
pub enum Setup {
    /// The policy's allowlist lacks the image's launch digest.
    WrongMeasurement,
    /// The proxy runs with this `--fault`.
    Fault(&'static str),
    /// The proxy's PSP signs with a second chain the broker does not trust.
    OtherChain,
    /// The proxy replays boot 2's recorded attest request.
    Replay,
    /// The simulated PSP reports a guest policy that allows debugging.
    DebugPolicy,
    /// The proxy is pointed at a closed port.
    BrokerDown,
    /// The proxy serves the state directory as it was after boot 1, older
    /// than the broker's record.
    StaleState,
}

/// One refused boot.
#[derive(Debug)]
pub struct Case {
    /// Directory name under `target/svtpm-test/refused/`.
    pub slug: &'static str,
    /// The step's name.
    pub title: &'static str,
    /// What is wrong.
    pub setup: Setup,
    /// The stage the image must name.
    pub stage: &'static str,
    /// Fragments the reason must contain (case-insensitive).
    pub reason: &'static [&'static str],
}

/// Every case, in the order the steps run.
pub const CASES: &[Case] = &[
    Case {
        slug: "wrong-measurement",
        title: "launch digest not in the broker's allowlist",
        setup: Setup::WrongMeasurement,
        stage: "attestation",
        reason: &["measurement check failed"],
    },
    Case {
        slug: "tampered-report",
        title: "report altered by the host (proxy --fault tamper-report)",
        setup: Setup::Fault("tamper-report"),
        stage: "attestation",
        reason: &["signature check failed", "does not verify"],
    },
    Case {
        slug: "bad-chain",
        title: "report signed under a chain the broker does not trust",
        setup: Setup::OtherChain,
        stage: "attestation",
        reason: &["chain check failed", "not the trusted ARK"],
    },
    Case {
        slug: "replayed-nonce",
        title: "attest request of an earlier boot replayed (record-attest, replay-attest)",
        setup: Setup::Replay,
        stage: "attestation",
        reason: &["nonce check failed", "replayed attestation"],
    },
    Case {
        slug: "debug-policy",
        title: "guest policy allows debugging (bit 19)",
        setup: Setup::DebugPolicy,
        stage: "attestation",
        reason: &["debug check failed"],
    },
    Case {
        slug: "corrupt-http",
        title: "HTTP responses corrupted (proxy --fault corrupt-http)",
        setup: Setup::Fault("corrupt-http"),
        stage: "attestation",
        reason: &["the key broker refused"],
    },
    Case {
        slug: "truncate-http",
        title: "HTTP responses truncated (proxy --fault truncate-http)",
        setup: Setup::Fault("truncate-http"),
        stage: "attestation",
        reason: &[AFTER_ATTEMPTS, "truncated"],
    },
    Case {
        slug: "reorder",
        title: "responses answer the previous request (proxy --fault reorder)",
        setup: Setup::Fault("reorder"),
        stage: "host channel",
        reason: &["request id", "stale or misrouted"],
    },
    Case {
        slug: "corrupt-header",
        title: "responses of the wrong type (proxy --fault corrupt-header)",
        setup: Setup::Fault("corrupt-header"),
        stage: "host channel",
        reason: &["type"],
    },
    Case {
        slug: "drop-http",
        title: "HTTP requests never answered (proxy --fault drop-http)",
        setup: Setup::Fault("drop-http"),
        stage: "attestation",
        reason: &[AFTER_ATTEMPTS, "timed out"],
    },
    Case {
        slug: "corrupt-slot",
        title: "state slots corrupted on the way (proxy --fault corrupt-slot)",
        setup: Setup::Fault("corrupt-slot"),
        stage: "state",
        reason: &["both state slots corrupt", "authentication failed"],
    },
    Case {
        slug: "broker-down",
        title: "key broker unreachable (bounded retries)",
        setup: Setup::BrokerDown,
        stage: "attestation",
        reason: &[AFTER_ATTEMPTS, "cannot reach the key broker"],
    },
    Case {
        slug: "stale-state",
        title: "state directory restored from before the last boot (rollback)",
        setup: Setup::StaleState,
        stage: "state",
        reason: &["rollback"],
    },
];

/// Runs one case.
pub fn run(ws: &Workspace, ctx: &Ctx, case: &Case) -> Result<Outcome> {
    let dir = ctx.dir.root().join("refused").join(case.slug);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cfg = stack::Config {
        logs: dir.clone(),
        ..stack::Config::on(&ctx.dir, &ctx.image, &ctx.id)
    };
    match case.setup {
        Setup::WrongMeasurement => {
            let policy = dir.join("policy.json");
            let text = stack::policy_json(
                &[other_measurement(&ctx.measurement)],
                &[ctx.dir.chain().join("ark.pem")],
                false,
                stack::DEV_LIFETIME_SECS,
            );
            std::fs::write(&policy, text)?;
            cfg.broker = Broker::Start {
                data: ctx.dir.kbs_data(),
                policy,
            };
        }
        Setup::Fault(f) => cfg.faults.push(f.to_string()),
        Setup::OtherChain => cfg.chain = ctx.other_chain.clone(),
        Setup::Replay => {
            if !ctx.attest_body.is_file() {
                bail!(
                    "no recorded attest request ({}): attested boot 2 records it",
                    ctx.attest_body.display()
                );
            }
            cfg.faults
                .push(format!("replay-attest={}", ctx.attest_body.display()));
        }
        Setup::DebugPolicy => {
            cfg.guest_policy = Some(format!("{:#x}", GUEST_POLICY | POLICY_DEBUG))
        }
        Setup::BrokerDown => cfg.broker = Broker::External(closed_port_url()?),
        Setup::StaleState => {
            let b1 = ctx
                .after_boot1
                .as_ref()
                .context("attested boot 1 saved no state to restore")?;
            let stale: PathBuf = dir.join("state");
            b1.state.restore(&stale)?;
            println!(
                "restored the state directory as boot 1 left it (generation {}) into {}; \
                 the broker's record is {}",
                b1.record,
                stale.display(),
                ctx.dir
                    .generation_record(&ctx.id)?
                    .unwrap_or_else(|| "none".into())
            );
            cfg.state = stale;
        }
    }
    let state_before = Snapshot::take(&cfg.state)?;
    let record_before = ctx.dir.generation_record(&ctx.id)?;

    let mut stack = Stack::start(&ctx.tools, &cfg)?;
    let mut append = stack::attested_cmdline(&ctx.id);
    append.push(format!("svtpm.hostchan_timeout_ms={HOSTCHAN_TIMEOUT_MS}"));
    append.push(format!("svtpm.kbs_attempts={KBS_ATTEMPTS}"));
    let report = qemu::boot_into(
        ws,
        &qemu::Boot {
            image: Some(&ctx.image),
            append,
            hostchan: Some(stack.hostchan()),
            stop_on: STOP_ON,
            epoch: Some(stack.epoch),
            ..qemu::Boot::new(Tpm::Svtpm, Interface::Tis, TIMEOUT)
        },
        &dir,
        &[],
    )?;
    let proxy = stack.proxy_lines();
    stack.stop();

    let code = report.exit.and_then(|s| s.code());
    let mut problems = refusal_problems(&report.lines, code, case);
    if let Some(why) = &report.killed {
        problems.push(format!("QEMU did not exit by itself: {why}"));
    }
    let changes = Snapshot::take(&cfg.state)?.changes_since(&state_before);
    if !changes.is_empty() {
        problems.push(format!(
            "the proxy's state directory changed: {}",
            changes.join("; ")
        ));
    }
    let record_after = ctx.dir.generation_record(&ctx.id)?;
    if record_after != record_before {
        problems.push(format!(
            "the broker's generation record changed: {record_before:?} -> {record_after:?}"
        ));
    }
    if let Setup::BrokerDown = case.setup {
        let tries = auth_attempts(&proxy);
        if tries != KBS_ATTEMPTS as usize {
            problems.push(format!(
                "the proxy relayed {tries} auth requests to the unreachable broker, not \
                 {KBS_ATTEMPTS} (svtpm.kbs_attempts)"
            ));
        }
    }
    if !problems.is_empty() {
        bail!(
            "{}\nlast {} console lines ({} has all of it; proxy log {}):\n{}",
            problems.join("\n"),
            qemu::TAIL_LINES,
            report.console_log.display(),
            dir.join("proxy.log").display(),
            report.tail()
        );
    }
    let image = ImageBoot::from_lines(&report.lines);
    let (stage, reason) = image.fatal.unwrap_or_default();
    println!(
        "refused as expected (QEMU exit {FAILURE_EXIT}): FATAL: {stage}: {reason}\n\
         the guest never ran; {} state files and the generation record ({}) unchanged",
        state_before.len(),
        record_before.as_deref().unwrap_or("none")
    );
    Ok(Outcome::Done)
}

/// Why a boot was not the refusal `case` expects (empty: it was).
pub fn refusal_problems(lines: &[String], exit_code: Option<i32>, case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    if exit_code != Some(FAILURE_EXIT) {
        problems.push(format!(
            "QEMU exit status {exit_code:?}, not {FAILURE_EXIT} (the image's failure exit)"
        ));
    }
    let image = ImageBoot::from_lines(lines);
    match &image.fatal {
        None => problems.push("the image printed no `FATAL:` line".into()),
        Some((stage, reason)) => {
            if stage != case.stage {
                problems.push(format!(
                    "FATAL at stage `{stage}`, expected `{}` (reason: {reason})",
                    case.stage
                ));
            }
            let lower = reason.to_lowercase();
            let missing: Vec<&str> = case
                .reason
                .iter()
                .copied()
                .filter(|f| !lower.contains(&f.to_lowercase()))
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "the reason `{reason}` does not mention {}",
                    missing.join(", ")
                ));
            }
        }
    }
    if !image.not_started {
        problems.push(format!("no `{}` line", imagelog::NOT_STARTED));
    }
    if let Some(ms) = image.guest_start_ms {
        problems.push(format!("the guest was started (at {ms} ms)"));
    }
    let guest: Vec<&String> = lines
        .iter()
        .filter(|l| GUEST_MARKERS.iter().any(|m| l.contains(m)))
        .take(3)
        .collect();
    if !guest.is_empty() {
        problems.push(format!("guest output on the console: {guest:?}"));
    }
    problems
}

/// How many auth requests the proxy's log shows it relayed.
pub fn auth_attempts(proxy_lines: &[String]) -> usize {
    proxy_lines
        .iter()
        .filter(|l| l.contains("HTTP POST /kbs/v0/auth"))
        .count()
}

/// A launch digest that is not `m` (its first digit changed).
fn other_measurement(m: &str) -> String {
    let first = if m.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &m[1..])
}

/// `http://127.0.0.1:<port>` of a port nothing listens on (bound, then
/// released).
fn closed_port_url() -> Result<String> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a port")?;
    let port = l.local_addr()?.port();
    drop(l);
    Ok(format!("http://127.0.0.1:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const REFUSED: &[&str] = &[
        "svtpm: boot-time phase=hostchan ms=4",
        "svtpm: FATAL: attestation: the key broker refused: measurement check failed",
        "svtpm: the guest was not started; the vTPM state was not changed",
    ];

    #[test]
    fn a_clean_refusal_passes() {
        let case = &CASES[0];
        assert!(refusal_problems(&lines(REFUSED), Some(35), case).is_empty());
    }

    #[test]
    fn every_departure_is_named() {
        let case = &CASES[0];
        let p = refusal_problems(&lines(REFUSED), Some(33), case);
        assert!(p[0].contains("exit status Some(33)"), "{p:?}");
        let p = refusal_problems(&lines(&REFUSED[..1]), Some(35), case);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("no `FATAL:`") && p[1].contains("was not started"));
        let other = lines(&[
            "svtpm: FATAL: state: slot A: authentication failed",
            REFUSED[2],
        ]);
        let p = refusal_problems(&other, Some(35), case);
        assert!(
            p[0].contains("stage `state`, expected `attestation`"),
            "{p:?}"
        );
        assert!(
            p[1].contains("does not mention measurement check failed"),
            "{p:?}"
        );
        let mut started = lines(REFUSED);
        started.push("svtpm: boot-time guest-start at_ms=800".into());
        started.push("BdsDxe: loading Boot0001".into());
        let p = refusal_problems(&started, Some(35), case);
        assert!(p.iter().any(|x| x.contains("started (at 800 ms)")), "{p:?}");
        assert!(p.iter().any(|x| x.contains("guest output")), "{p:?}");
    }

    #[test]
    fn reasons_match_case_insensitively() {
        let case = Case {
            slug: "x",
            title: "x",
            setup: Setup::BrokerDown,
            stage: "attestation",
            reason: &["2 ATTEMPTS", "unavailable"],
        };
        let l = lines(&[
            "svtpm: FATAL: attestation: gave up after 2 attempts; last: broker Unavailable",
            REFUSED[2],
        ]);
        assert!(refusal_problems(&l, Some(35), &case).is_empty());
    }

    #[test]
    fn cases_are_unique_and_named() {
        let mut slugs: Vec<&str> = CASES.iter().map(|c| c.slug).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), CASES.len());
        assert!(AFTER_ATTEMPTS.contains(&format!(" {KBS_ATTEMPTS} attempts")));
    }

    #[test]
    fn helpers() {
        let m = "0".repeat(96);
        let o = other_measurement(&m);
        assert_eq!(o.len(), 96);
        assert_ne!(o, m);
        assert_eq!(other_measurement(&o)[1..], m[1..]);
        assert_eq!(
            auth_attempts(&lines(&[
                "hostchan: #1 HELLO -> ok",
                "hostchan: #2 HTTP POST /kbs/v0/auth -> unavailable (1 ms)",
                "hostchan: #3 HTTP POST /kbs/v0/auth -> unavailable (1 ms)",
            ])),
            2
        );
        let url = closed_port_url().unwrap();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    }
}
