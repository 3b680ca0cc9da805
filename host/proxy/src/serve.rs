//! The serving loop: polls `req.seq`, hands each request to the
//! [`Handler`], publishes the answer (with the channel-level faults), logs
//! one line per request, and keeps the header intact.
//!
//! There is no doorbell, so the loop polls. Right after a request it
//! checks every [`MIN_POLL`] (about 50 µs, the time one `nanosleep` takes
//! here), so a burst of requests (a state commit is a write and a flush)
//! is served back to back; the interval then grows with the idle time, to
//! [`MAX_POLL`] (2 ms) after about 40 ms without a request, which costs
//! next to no CPU while the guest runs.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use log::{info, warn};
use svtpm::hostchan::layout::RESPONSE_BIT;
use svtpm::hostchan::{MsgType, Region, Request, Server, Status};

use crate::faults::{Fault, Faults};
use crate::handler::{Handler, Outcome};

/// Poll interval right after a request.
pub const MIN_POLL: Duration = Duration::from_micros(50);
/// Poll interval when idle.
pub const MAX_POLL: Duration = Duration::from_millis(2);
/// Timer slack of the serving thread, in nanoseconds.
const TIMER_SLACK_NS: u64 = 5_000;

/// The poll interval after `idle` without a request: idle / 20, between
/// [`MIN_POLL`] and [`MAX_POLL`].
pub fn poll_interval(idle: Duration) -> Duration {
    (idle / 20).clamp(MIN_POLL, MAX_POLL)
}

/// Counts and handling times per message type.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    per_type: BTreeMap<&'static str, (u64, Duration)>,
    refused: u64,
}

impl Stats {
    fn add(&mut self, kind: &'static str, took: Duration) {
        let e = self.per_type.entry(kind).or_default();
        e.0 += 1;
        e.1 += took;
    }

    /// Requests served.
    pub fn total(&self) -> u64 {
        self.per_type.values().map(|e| e.0).sum()
    }

    /// One line per type: count and mean handling time.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .per_type
            .iter()
            .map(|(k, (n, t))| {
                let mean = t
                    .checked_div(u32::try_from(*n).unwrap_or(u32::MAX))
                    .unwrap_or_default();
                format!("{k} {n} (mean {})", fmt_duration(mean))
            })
            .collect();
        if self.refused > 0 {
            parts.push(format!("malformed {}", self.refused));
        }
        if parts.is_empty() {
            "no requests".into()
        } else {
            parts.join(", ")
        }
    }
}

/// `3 ms`, `120 µs`.
pub fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_millis(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} µs", d.as_micros())
    }
}

/// A response as published.
#[derive(Debug, Clone)]
struct Published {
    kind: u16,
    status: u16,
    request_id: u64,
    payload: Vec<u8>,
}

/// The loop's state between requests.
#[derive(Debug)]
pub struct Loop<'a, R: Region> {
    server: Server<R>,
    handler: &'a mut Handler,
    faults: Faults,
    previous: Option<Published>,
    stats: Stats,
}

impl<'a, R: Region> Loop<'a, R> {
    /// Serves `region` (writes the header, host_ready = 1).
    pub fn new(region: R, handler: &'a mut Handler, faults: Faults) -> Self {
        Loop {
            server: Server::new(region),
            handler,
            faults,
            previous: None,
            stats: Stats::default(),
        }
    }

    /// Serves until `stop` is set, then clears `host_ready`.
    pub fn run(&mut self, stop: &AtomicBool) -> &Stats {
        // Linux lets a 50 µs sleep run 50 µs late by default (timer
        // slack), which would double the interval right after a request.
        if let Err(e) = rustix::thread::set_current_timer_slack(NonZeroU64::new(TIMER_SLACK_NS)) {
            warn!("cannot lower the timer slack ({e}); polls may run up to 50 µs late");
        }
        let mut last = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if self.step() {
                last = Instant::now();
            } else {
                std::thread::sleep(poll_interval(last.elapsed()));
            }
        }
        self.server.set_ready(false);
        &self.stats
    }

    /// Serves at most one request; whether there was one.
    pub fn step(&mut self) -> bool {
        self.server.ensure_header();
        match self.server.poll() {
            None => false,
            Some(Err(e)) => {
                // The server already answered BAD_REQUEST.
                self.stats.refused += 1;
                warn!("hostchan: malformed request descriptor -> BAD_REQUEST: {e}");
                true
            }
            Some(Ok(req)) => {
                let started = Instant::now();
                let outcome = self.handler.handle(&req);
                self.answer(&req, outcome, started);
                true
            }
        }
    }

    fn answer(&mut self, req: &Request, outcome: Outcome, started: Instant) {
        let kind_name = req.msg_type().map_or("unknown", MsgType::name);
        let Outcome {
            mut status,
            mut payload,
            mut summary,
            drop,
        } = outcome;
        if payload.len() > self.server.area_len() {
            summary = format!(
                "{summary}: {} bytes exceed the {} byte response area",
                payload.len(),
                self.server.area_len()
            );
            status = Status::TooLarge;
            payload = Vec::new();
        }
        let mut response = Published {
            kind: req.kind | RESPONSE_BIT,
            status: status.code(),
            request_id: req.request_id,
            payload,
        };
        if self.faults.has(&Fault::CorruptHeader) {
            response.kind = req.kind & !RESPONSE_BIT;
            summary.push_str(" [fault corrupt-header]");
        }
        if drop {
            // No response; the guest times out.
        } else if self.faults.has(&Fault::Reorder) {
            let stale = self
                .previous
                .replace(response.clone())
                .unwrap_or(Published {
                    request_id: req.request_id.wrapping_sub(1),
                    ..response
                });
            self.publish(req.seq, &stale);
            summary.push_str(" [fault reorder: previous response sent]");
        } else {
            self.publish(req.seq, &response);
        }
        let took = started.elapsed();
        self.stats.add(kind_name, took);
        let result = if drop || status == Status::Ok {
            String::new()
        } else {
            format!(" [{}]", status.name())
        };
        info!(
            "hostchan: #{:x} {summary}{result} ({})",
            req.request_id,
            fmt_duration(took)
        );
    }

    fn publish(&mut self, seq: u32, r: &Published) {
        self.server.respond_raw(
            seq,
            r.kind,
            r.status,
            r.request_id,
            r.payload.len() as u32,
            &r.payload,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_backs_off_with_idle_time() {
        assert_eq!(poll_interval(Duration::ZERO), MIN_POLL);
        assert_eq!(poll_interval(Duration::from_millis(1)), MIN_POLL);
        assert_eq!(
            poll_interval(Duration::from_millis(10)),
            Duration::from_micros(500)
        );
        assert_eq!(poll_interval(Duration::from_millis(40)), MAX_POLL);
        assert_eq!(poll_interval(Duration::from_secs(3600)), MAX_POLL);
    }

    #[test]
    fn stats_summarise() {
        let mut s = Stats::default();
        assert_eq!(s.summary(), "no requests");
        s.add("HTTP", Duration::from_millis(4));
        s.add("HTTP", Duration::from_millis(2));
        s.add("LOG", Duration::from_micros(30));
        assert_eq!(s.total(), 3);
        assert_eq!(s.summary(), "HTTP 2 (mean 3 ms), LOG 1 (mean 30 µs)");
    }
}
