//! The svtpm image's own console lines about its attested boot, as xtask
//! reads them (the image logs them through `log`, so they carry its usual
//! `svtpm: ` prefix; the markers are found anywhere in a line):
//!
//! - `boot-time phase=<hostchan|attestation|key|state|engine> ms=<n>`: once
//!   per phase, how long it took;
//! - `boot-time guest-start at_ms=<n>`: ms since power-on, right before
//!   the guest's first instruction;
//! - `vTPM <id>: state opened (generation <g>, slot <A|B>)` or
//!   `vTPM <id>: provisioned a new vTPM (generation 1)`;
//! - `FATAL: <stage>: <reason>`, then
//!   `the guest was not started; the vTPM state was not changed`.

const BOOT_TIME: &str = "boot-time ";
const FATAL: &str = "FATAL: ";
const VTPM: &str = "vTPM ";
/// The line that follows every `FATAL:`.
pub const NOT_STARTED: &str = "the guest was not started; the vTPM state was not changed";

/// The phases of the attested boot, in order.
pub const PHASES: [&str; 5] = ["hostchan", "attestation", "key", "state", "engine"];

/// What the image did with the vTPM's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOutcome {
    /// An existing state was opened.
    Opened {
        /// The vTPM.
        id: String,
        /// Its generation.
        generation: u64,
        /// The slot it came from (`A` or `B`).
        slot: char,
    },
    /// A new vTPM was provisioned.
    Provisioned {
        /// The vTPM.
        id: String,
        /// Its first generation.
        generation: u64,
    },
}

/// One line's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageEvent {
    /// A phase took `ms`.
    Phase {
        /// `hostchan`, `attestation`, `key`, `state` or `engine`.
        phase: String,
        /// Its duration.
        ms: u64,
    },
    /// The guest is about to start, `at_ms` after power-on.
    GuestStart {
        /// ms since power-on.
        at_ms: u64,
    },
    /// The state was opened or provisioned.
    State(StateOutcome),
    /// The boot stopped.
    Fatal {
        /// The stage that failed, e.g. `attestation`.
        stage: String,
        /// Why.
        reason: String,
    },
    /// The closing line of a failed boot.
    NotStarted,
}

/// The event `line` carries, if any.
pub fn parse(line: &str) -> Option<ImageEvent> {
    if line.contains(NOT_STARTED) {
        return Some(ImageEvent::NotStarted);
    }
    if let Some(at) = line.find(FATAL) {
        let rest = &line[at + FATAL.len()..];
        let (stage, reason) = rest.split_once(": ")?;
        return Some(ImageEvent::Fatal {
            stage: stage.trim().to_string(),
            reason: reason.trim().to_string(),
        });
    }
    if let Some(at) = line.find(BOOT_TIME) {
        let mut words = line[at + BOOT_TIME.len()..].split_whitespace();
        let first = words.next()?;
        if first == "guest-start" {
            let at_ms = words.next()?.strip_prefix("at_ms=")?.parse().ok()?;
            return Some(ImageEvent::GuestStart { at_ms });
        }
        let phase = first.strip_prefix("phase=")?;
        if phase.is_empty() {
            return None;
        }
        let ms = words.next()?.strip_prefix("ms=")?.parse().ok()?;
        return Some(ImageEvent::Phase {
            phase: phase.to_string(),
            ms,
        });
    }
    if let Some(at) = line.find(VTPM) {
        let (id, rest) = line[at + VTPM.len()..].split_once(": ")?;
        if id.is_empty() || id.contains(char::is_whitespace) {
            return None;
        }
        let id = id.to_string();
        if let Some(rest) = rest.strip_prefix("state opened (generation ") {
            let (generation, rest) = rest.split_once(", slot ")?;
            let slot = rest.strip_suffix(')')?;
            // `slot A`, also as `slot slot A` (the slot's own Display).
            let slot = match slot.strip_prefix("slot ").unwrap_or(slot) {
                "A" => 'A',
                "B" => 'B',
                _ => return None,
            };
            return Some(ImageEvent::State(StateOutcome::Opened {
                id,
                generation: generation.parse().ok()?,
                slot,
            }));
        }
        if let Some(rest) = rest.strip_prefix("provisioned a new vTPM (generation ") {
            let generation = rest.strip_suffix(')')?.parse().ok()?;
            return Some(ImageEvent::State(StateOutcome::Provisioned {
                id,
                generation,
            }));
        }
    }
    None
}

/// Everything the image said about one attested (or ephemeral) boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageBoot {
    /// Phase durations, in the order printed.
    pub phases: Vec<(String, u64)>,
    /// ms from power-on to the guest's start.
    pub guest_start_ms: Option<u64>,
    /// The state's outcome.
    pub state: Option<StateOutcome>,
    /// The first `FATAL:` line's stage and reason.
    pub fatal: Option<(String, String)>,
    /// Whether the closing line of a failed boot was printed.
    pub not_started: bool,
}

impl ImageBoot {
    /// Reads every line.
    pub fn from_lines<S: AsRef<str>>(lines: &[S]) -> Self {
        let mut b = Self::default();
        for line in lines {
            match parse(line.as_ref()) {
                Some(ImageEvent::Phase { phase, ms }) => b.phases.push((phase, ms)),
                Some(ImageEvent::GuestStart { at_ms }) => {
                    b.guest_start_ms.get_or_insert(at_ms);
                }
                Some(ImageEvent::State(s)) => {
                    b.state.get_or_insert(s);
                }
                Some(ImageEvent::Fatal { stage, reason }) => {
                    b.fatal.get_or_insert((stage, reason));
                }
                Some(ImageEvent::NotStarted) => b.not_started = true,
                None => {}
            }
        }
        b
    }

    /// The duration of `phase`, if printed.
    pub fn phase_ms(&self, phase: &str) -> Option<u64> {
        self.phases
            .iter()
            .find(|(p, _)| p == phase)
            .map(|&(_, ms)| ms)
    }
}

impl ImageBoot {
    /// One line for the end of a run: how the state was obtained (or why
    /// the boot stopped), the phases, the guest's start.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        match (&self.fatal, &self.state) {
            (Some((stage, reason)), _) => parts.push(format!("FATAL at {stage}: {reason}")),
            (
                None,
                Some(StateOutcome::Opened {
                    id,
                    generation,
                    slot,
                }),
            ) => parts.push(format!(
                "vTPM {id}: state opened (generation {generation}, slot {slot})"
            )),
            (None, Some(StateOutcome::Provisioned { id, generation })) => {
                parts.push(format!("vTPM {id}: provisioned (generation {generation})"))
            }
            (None, None) => parts.push("no sealed state (in-memory TPM)".to_string()),
        }
        if !self.phases.is_empty() {
            let list: Vec<String> = self
                .phases
                .iter()
                .map(|(p, ms)| format!("{p} {ms} ms"))
                .collect();
            parts.push(format!("boot phases: {}", list.join(", ")));
        }
        match self.guest_start_ms {
            Some(ms) => parts.push(format!("guest started {ms} ms after power-on")),
            None => parts.push("the guest did not start".to_string()),
        }
        format!("image: {}", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_time_lines_parse() {
        assert_eq!(
            parse("svtpm: boot-time phase=attestation ms=412"),
            Some(ImageEvent::Phase {
                phase: "attestation".into(),
                ms: 412
            })
        );
        assert_eq!(
            parse("svtpm: boot-time guest-start at_ms=2291"),
            Some(ImageEvent::GuestStart { at_ms: 2291 })
        );
        assert_eq!(parse("svtpm: boot-time phase=key ms=x"), None);
        assert_eq!(parse("svtpm: boot-time phase= ms=3"), None);
        assert_eq!(parse("svtpm: boot-time guest-start"), None);
    }

    #[test]
    fn state_lines_parse() {
        assert_eq!(
            parse("svtpm: vTPM dev-1a2b: state opened (generation 7, slot B)"),
            Some(ImageEvent::State(StateOutcome::Opened {
                id: "dev-1a2b".into(),
                generation: 7,
                slot: 'B'
            }))
        );
        assert_eq!(
            parse("svtpm: vTPM x.y_z: provisioned a new vTPM (generation 1)"),
            Some(ImageEvent::State(StateOutcome::Provisioned {
                id: "x.y_z".into(),
                generation: 1
            }))
        );
        assert_eq!(
            parse("svtpm: vTPM a: state opened (generation 2, slot slot A)"),
            Some(ImageEvent::State(StateOutcome::Opened {
                id: "a".into(),
                generation: 2,
                slot: 'A'
            }))
        );
        assert_eq!(
            parse("svtpm: vTPM a: state opened (generation 7, slot C)"),
            None
        );
        assert_eq!(parse("svtpm: vTPM a: state opened (generation 7)"), None);
        assert_eq!(parse("Linux vTPM driver: something"), None);
    }

    #[test]
    fn fatal_names_stage_and_reason() {
        assert_eq!(
            parse("svtpm: ERROR: FATAL: key release: the key broker refused: 401: nope"),
            Some(ImageEvent::Fatal {
                stage: "key release".into(),
                reason: "the key broker refused: 401: nope".into()
            })
        );
        assert_eq!(
            parse(&format!("svtpm: {NOT_STARTED}")),
            Some(ImageEvent::NotStarted)
        );
        assert_eq!(parse("FATAL: no reason"), None);
    }

    #[test]
    fn a_boot_collects_first_fatal_state_and_phases() {
        let lines = [
            "svtpm: boot-time phase=hostchan ms=3",
            "svtpm: boot-time phase=attestation ms=400",
            "svtpm: FATAL: attestation: measurement check failed",
            "svtpm: FATAL: later: ignored",
            "svtpm: the guest was not started; the vTPM state was not changed",
        ];
        let b = ImageBoot::from_lines(&lines);
        assert_eq!(b.phase_ms("attestation"), Some(400));
        assert_eq!(b.phase_ms("engine"), None);
        assert_eq!(
            b.fatal,
            Some(("attestation".into(), "measurement check failed".into()))
        );
        assert!(b.not_started);
        assert_eq!(b.guest_start_ms, None);
        assert_eq!(b.state, None);
        assert_eq!(
            b.summary(),
            "image: FATAL at attestation: measurement check failed; boot phases: \
             hostchan 3 ms, attestation 400 ms; the guest did not start"
        );
        let ok = ImageBoot::from_lines(&[
            "svtpm: vTPM v: state opened (generation 4, slot A)",
            "svtpm: boot-time guest-start at_ms=900",
        ]);
        assert_eq!(
            ok.summary(),
            "image: vTPM v: state opened (generation 4, slot A); guest started 900 ms after power-on"
        );
    }
}
