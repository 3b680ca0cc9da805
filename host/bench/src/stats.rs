//! Latency statistics over one command's samples.

use std::time::Duration;

/// Median and 90th percentile of a set of samples, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub median_us: f64,
    pub p90_us: f64,
}

/// The nearest-rank `p`-th percentile (0 < p <= 100) of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarizes `samples`; `None` when there are none.
pub fn summarize(samples: &[Duration]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Some(Summary {
        median_us: us(percentile(&sorted, 50.0)),
        p90_us: us(percentile(&sorted, 90.0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&n| Duration::from_micros(n)).collect()
    }

    #[test]
    fn median_and_p90_by_nearest_rank() {
        // 1..=10 shuffled: nearest-rank p50 is the 5th value, p90 the 9th.
        let s = summarize(&us(&[7, 3, 10, 1, 9, 2, 8, 4, 6, 5])).unwrap();
        assert_eq!((s.median_us, s.p90_us), (5.0, 9.0));
    }

    #[test]
    fn an_outlier_moves_neither_the_median_nor_p90_of_many_samples() {
        let mut v = vec![100u64; 99];
        v.push(1_000_000);
        let s = summarize(&us(&v)).unwrap();
        assert_eq!((s.median_us, s.p90_us), (100.0, 100.0));
    }

    #[test]
    fn one_sample_and_none() {
        let s = summarize(&us(&[42])).unwrap();
        assert_eq!((s.median_us, s.p90_us), (42.0, 42.0));
        assert!(summarize(&[]).is_none());
    }
}
