//! The guest's serial console as xtask reads it: cleaning raw lines (OVMF
//! paints its screen with ANSI escape sequences), recognising the lines
//! `guest/init` and `guest/svtpm-check.sh` print, and the verdict on a run.
//!
//! Line formats (docs/guest.md):
//! - `SVTPM-CHECK <name> ok [detail]` / `SVTPM-CHECK <name> FAIL [reason]`
//! - `SVTPM-CHECK done pass=<N> fail=<M>`: the script's summary, last
//! - `SVTPM-BOOT <milestone> uptime=<seconds>`: init's progress
//! - `SVTPM-BENCH begin|end <loop>` and `SVTPM-BENCH <loop> n=<N> ok=<K>
//!   min_us=.. median_us=.. mean_us=.. max_us=..`: the script's opt-in
//!   benchmark (`svtpm.bench=<N>`)
//! - `SVTPM-PERSIST wrote|read <hex> ek=<sha256>`: the script's persistence
//!   section, the value of its NV index and the hash of the EK's public area
//!
//! A kernel message can land in the middle of a console line, so the markers
//! are found anywhere in a line, not only at its start.

use anyhow::{bail, Result};

const CHECK: &str = "SVTPM-CHECK ";
const BOOT: &str = "SVTPM-BOOT ";
const BENCH: &str = "SVTPM-BENCH ";
const PERSIST: &str = "SVTPM-PERSIST ";

/// One check the guest script reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The check's name, e.g. `driver=tpm_tis` or `eventlog-replay:sha256`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// The rest of the line.
    pub detail: String,
}

/// One benchmark loop of the guest script: N samples in microseconds of
/// the guest's monotonic clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchLoop {
    /// `clock`, `pcrextend` or `raw-extend`.
    pub name: String,
    /// Samples taken.
    pub n: u64,
    /// Iterations whose TPM command succeeded.
    pub ok: u64,
    /// Fastest sample.
    pub min_us: u64,
    /// Median sample.
    pub median_us: u64,
    /// Mean sample.
    pub mean_us: u64,
    /// Slowest sample.
    pub max_us: u64,
}

/// What the persistence section did with its NV index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persist {
    /// `wrote` (a new value) or `read` (the value a previous boot left).
    pub wrote: bool,
    /// The index's bytes, lower-case hex.
    pub value: String,
    /// SHA-256 of the EK's public area, lower-case hex.
    pub ek: String,
}

/// What one console line means to xtask.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A check result.
    Check(Check),
    /// The script's closing summary.
    Done {
        /// Checks passed, as the guest counted them.
        pass: u32,
        /// Checks failed, as the guest counted them.
        fail: u32,
    },
    /// An init milestone with the guest kernel's uptime in seconds.
    Boot {
        /// `userspace` or `poweroff`.
        milestone: String,
        /// /proc/uptime when it was printed.
        uptime: f64,
    },
    /// A benchmark loop starts (`begin: true`) or ends.
    BenchMark {
        /// Whether it is the start.
        begin: bool,
        /// The loop's name.
        name: String,
    },
    /// A benchmark loop's result.
    Bench(BenchLoop),
    /// The persistence section's NV value and EK.
    Persist(Persist),
}

/// Printable text of a raw console line: escape sequences, carriage returns
/// and other control characters removed, invalid UTF-8 replaced.
pub fn clean(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            0x1b => {
                i += 1;
                match raw.get(i) {
                    // CSI: parameters and intermediates, then a final byte 0x40-0x7E.
                    Some(b'[') => {
                        i += 1;
                        while i < raw.len() && !(0x40..=0x7e).contains(&raw[i]) {
                            i += 1;
                        }
                        i += 1;
                    }
                    // Character set selection and the like: one more byte.
                    Some(b'(' | b')' | b'#') => i += 2,
                    Some(_) => i += 1,
                    None => {}
                }
            }
            b'\t' => {
                out.push(b' ');
                i += 1;
            }
            c if c < 0x20 || c == 0x7f => i += 1,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).trim_end().to_string()
}

/// The event a cleaned console line carries, if any.
pub fn parse(line: &str) -> Option<Event> {
    if let Some(at) = line.find(CHECK) {
        let rest = &line[at + CHECK.len()..];
        let mut words = rest.splitn(3, ' ');
        let name = words.next()?.to_string();
        let status = words.next()?;
        let detail = words.next().unwrap_or("").trim().to_string();
        if name == "done" {
            let pass = field(status, "pass=")?;
            let fail = field(detail.split_whitespace().next()?, "fail=")?;
            return Some(Event::Done { pass, fail });
        }
        let ok = match status {
            "ok" => true,
            "FAIL" => false,
            _ => return None,
        };
        return Some(Event::Check(Check { name, ok, detail }));
    }
    if let Some(at) = line.find(BENCH) {
        return parse_bench(&line[at + BENCH.len()..]);
    }
    if let Some(at) = line.find(PERSIST) {
        return parse_persist(&line[at + PERSIST.len()..]);
    }
    if let Some(at) = line.find(BOOT) {
        let mut words = line[at + BOOT.len()..].split_whitespace();
        let milestone = words.next()?.to_string();
        let uptime = words.next()?.strip_prefix("uptime=")?.parse().ok()?;
        return Some(Event::Boot { milestone, uptime });
    }
    None
}

fn parse_bench(rest: &str) -> Option<Event> {
    let mut words = rest.split_whitespace();
    let first = words.next()?;
    if first == "begin" || first == "end" {
        return Some(Event::BenchMark {
            begin: first == "begin",
            name: words.next()?.to_string(),
        });
    }
    let mut get = |key: &str| -> Option<u64> {
        words
            .next()?
            .strip_prefix(key)?
            .strip_prefix('=')?
            .parse()
            .ok()
    };
    let n = get("n")?;
    if n == 0 {
        return None;
    }
    Some(Event::Bench(BenchLoop {
        name: first.to_string(),
        n,
        ok: get("ok")?,
        min_us: get("min_us")?,
        median_us: get("median_us")?,
        mean_us: get("mean_us")?,
        max_us: get("max_us")?,
    }))
}

fn parse_persist(rest: &str) -> Option<Event> {
    let hex = |s: &str, lens: std::ops::RangeInclusive<usize>| {
        (lens.contains(&s.len())
            && s.len().is_multiple_of(2)
            && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| s.to_ascii_lowercase())
    };
    let mut words = rest.split_whitespace();
    let wrote = match words.next()? {
        "wrote" => true,
        "read" => false,
        _ => return None,
    };
    let value = hex(words.next()?, 2..=128)?;
    let ek = hex(words.next()?.strip_prefix("ek=")?, 64..=64)?;
    Some(Event::Persist(Persist { wrote, value, ek }))
}

fn field(word: &str, key: &str) -> Option<u32> {
    word.strip_prefix(key)?.parse().ok()
}

/// Everything the guest reported during one boot.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Every check line, in order.
    pub checks: Vec<Check>,
    /// The closing `done` line.
    pub done: Option<(u32, u32)>,
    /// Kernel uptime when init started.
    pub userspace_uptime: Option<f64>,
    /// Kernel uptime when init powered off.
    pub poweroff_uptime: Option<f64>,
    /// The benchmark loops' results, in order.
    pub bench: Vec<BenchLoop>,
    /// The persistence section's lines, in order.
    pub persist: Vec<Persist>,
}

impl Summary {
    /// Records `event`.
    pub fn record(&mut self, event: &Event) {
        match event {
            Event::Check(c) => self.checks.push(c.clone()),
            Event::Done { pass, fail } => self.done = Some((*pass, *fail)),
            Event::Boot { milestone, uptime } => match milestone.as_str() {
                "userspace" => self.userspace_uptime = Some(*uptime),
                "poweroff" => self.poweroff_uptime = Some(*uptime),
                _ => {}
            },
            Event::Bench(b) => self.bench.push(b.clone()),
            Event::Persist(p) => self.persist.push(p.clone()),
            Event::BenchMark { .. } => {}
        }
    }

    /// The check called `name`, if reported.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Fails unless the guest finished, every check passed, the counts add
    /// up, and each of `required` was reported as passed.
    pub fn verdict(&self, required: &[&str]) -> Result<()> {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} ({})", c.name, c.detail))
            .collect();
        if !failed.is_empty() {
            bail!("guest checks failed: {}", failed.join("; "));
        }
        let Some((pass, fail)) = self.done else {
            bail!(
                "the guest never printed its summary (`SVTPM-CHECK done`); {} checks seen",
                self.checks.len()
            );
        };
        if fail != 0 {
            bail!("the guest summary reports {fail} failed checks");
        }
        if pass as usize != self.checks.len() {
            bail!(
                "the guest summary counts {pass} passed checks but {} were printed",
                self.checks.len()
            );
        }
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|name| self.check(name).is_none())
            .collect();
        if !missing.is_empty() {
            let seen: Vec<&str> = self.checks.iter().map(|c| c.name.as_str()).collect();
            bail!(
                "required guest checks missing: {} (reported: {})",
                missing.join(", "),
                seen.join(", ")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(lines: &[&str]) -> Summary {
        let mut s = Summary::default();
        for l in lines {
            if let Some(e) = parse(l) {
                s.record(&e);
            }
        }
        s
    }

    #[test]
    fn cleaning_strips_ovmf_escapes_and_carriage_returns() {
        let raw = b"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001\r";
        assert_eq!(clean(raw), "BdsDxe: loading Boot0001");
        assert_eq!(clean(b"\x1b(Bplain\ttext\x07  \r"), "plain text");
        assert_eq!(clean(b"\xffbad"), "\u{fffd}bad");
        assert_eq!(clean(b"\x1b"), "");
    }

    #[test]
    fn check_done_and_boot_lines_parse_anywhere_in_a_line() {
        assert_eq!(
            parse("SVTPM-CHECK driver=tpm_tis ok tpm0 is a TPM 2.0"),
            Some(Event::Check(Check {
                name: "driver=tpm_tis".into(),
                ok: true,
                detail: "tpm0 is a TPM 2.0".into()
            }))
        );
        assert_eq!(
            parse("[    5.1] ima: warnSVTPM-CHECK seal-unseal FAIL a step failed"),
            Some(Event::Check(Check {
                name: "seal-unseal".into(),
                ok: false,
                detail: "a step failed".into()
            }))
        );
        assert_eq!(
            parse("SVTPM-CHECK getrandom ok"),
            Some(Event::Check(Check {
                name: "getrandom".into(),
                ok: true,
                detail: String::new()
            }))
        );
        assert_eq!(
            parse("SVTPM-CHECK done pass=9 fail=0"),
            Some(Event::Done { pass: 9, fail: 0 })
        );
        assert_eq!(
            parse("SVTPM-BOOT userspace uptime=4.65"),
            Some(Event::Boot {
                milestone: "userspace".into(),
                uptime: 4.65
            })
        );
        assert_eq!(parse("SVTPM-CHECK getrandom maybe"), None);
        assert_eq!(parse("SVTPM-CHECK done pass=x fail=0"), None);
        assert_eq!(parse("svtpm-check: PCR banks: sha256"), None);
    }

    #[test]
    fn bench_lines_parse_and_are_recorded() {
        assert_eq!(
            parse("[ 9.1] xSVTPM-BENCH begin raw-extend"),
            Some(Event::BenchMark {
                begin: true,
                name: "raw-extend".into()
            })
        );
        assert_eq!(
            parse("SVTPM-BENCH end clock"),
            Some(Event::BenchMark {
                begin: false,
                name: "clock".into()
            })
        );
        let line =
            "SVTPM-BENCH pcrextend n=20 ok=19 min_us=100 median_us=150 mean_us=160 max_us=400";
        let want = BenchLoop {
            name: "pcrextend".into(),
            n: 20,
            ok: 19,
            min_us: 100,
            median_us: 150,
            mean_us: 160,
            max_us: 400,
        };
        assert_eq!(parse(line), Some(Event::Bench(want.clone())));
        let s = summary(&[line, "SVTPM-CHECK done pass=0 fail=0"]);
        assert_eq!(s.bench, vec![want]);
        s.verdict(&[]).unwrap();
        // An empty loop, a missing field or a field out of order is no result.
        assert_eq!(parse("SVTPM-BENCH raw-extend n=0 ok=0"), None);
        assert_eq!(parse("SVTPM-BENCH clock n=2 ok=2 min_us=1"), None);
        assert_eq!(
            parse("SVTPM-BENCH clock n=2 min_us=1 ok=2 median_us=1 mean_us=1 max_us=1"),
            None
        );
        assert_eq!(parse("SVTPM-BENCH begin"), None);
    }

    #[test]
    fn persist_lines_parse() {
        let ek = "ab".repeat(32);
        assert_eq!(
            parse(&format!("SVTPM-PERSIST wrote 00FF10 ek={ek}")),
            Some(Event::Persist(Persist {
                wrote: true,
                value: "00ff10".into(),
                ek: ek.clone()
            }))
        );
        assert_eq!(
            parse(&format!("[ 7.2] xSVTPM-PERSIST read 0a0b ek={ek}")),
            Some(Event::Persist(Persist {
                wrote: false,
                value: "0a0b".into(),
                ek: ek.clone()
            }))
        );
        // Odd or non-hex values, a short EK, an unknown verb: no event.
        for bad in [
            format!("SVTPM-PERSIST wrote 0a0 ek={ek}"),
            format!("SVTPM-PERSIST wrote zz ek={ek}"),
            "SVTPM-PERSIST wrote 0a0b ek=abcd".to_string(),
            format!("SVTPM-PERSIST kept 0a0b ek={ek}"),
            "SVTPM-PERSIST wrote 0a0b".to_string(),
        ] {
            assert_eq!(parse(&bad), None, "{bad}");
        }
        let s = summary(&[&format!("SVTPM-PERSIST read 0a0b ek={ek}")]);
        assert_eq!(s.persist.len(), 1);
    }

    const GOOD: &[&str] = &[
        "SVTPM-BOOT userspace uptime=4.65",
        "SVTPM-CHECK driver=tpm_crb ok tpm0 is a TPM 2.0",
        "SVTPM-CHECK pcrread ok",
        "SVTPM-CHECK eventlog-replay:sha256 ok PCRs 0 1 2 3 4 5 6 7 match",
        "SVTPM-CHECK done pass=3 fail=0",
        "SVTPM-BOOT poweroff uptime=8.3",
    ];

    #[test]
    fn a_complete_passing_run_is_accepted() {
        let s = summary(GOOD);
        s.verdict(&["driver=tpm_crb", "eventlog-replay:sha256"])
            .unwrap();
        assert_eq!(s.userspace_uptime, Some(4.65));
        assert_eq!(s.poweroff_uptime, Some(8.3));
    }

    #[test]
    fn failures_missing_summary_wrong_counts_and_missing_checks_are_rejected() {
        let with = |extra: &str| {
            let mut lines = GOOD.to_vec();
            lines.insert(2, extra);
            summary(&lines)
        };
        let err = with("SVTPM-CHECK seal-policy FAIL unsealed after PCR 23 changed")
            .verdict(&[])
            .unwrap_err();
        assert!(
            format!("{err}").contains("seal-policy (unsealed after"),
            "{err}"
        );

        let err = summary(&GOOD[..4]).verdict(&[]).unwrap_err();
        assert!(
            format!("{err}").contains("never printed its summary"),
            "{err}"
        );

        let err = with("SVTPM-CHECK getrandom ok").verdict(&[]).unwrap_err();
        assert!(
            format!("{err}").contains("counts 3 passed checks but 4"),
            "{err}"
        );

        let mut lines = GOOD.to_vec();
        lines[4] = "SVTPM-CHECK done pass=3 fail=1";
        let err = summary(&lines).verdict(&[]).unwrap_err();
        assert!(format!("{err}").contains("1 failed"), "{err}");

        let err = summary(GOOD).verdict(&["driver=tpm_tis"]).unwrap_err();
        assert!(
            format!("{err}").contains("missing: driver=tpm_tis"),
            "{err}"
        );
    }
}
