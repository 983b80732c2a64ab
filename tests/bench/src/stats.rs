//! Samples of durations and their summaries.

use std::time::Duration;

/// Summary of a set of samples.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
}

impl Summary {
    /// Summarises `samples` (any order).
    pub(crate) fn of(samples: &[Duration]) -> Self {
        let mut s = samples.to_vec();
        s.sort_unstable();
        let rank = |q: f64| -> Duration {
            if s.is_empty() {
                return Duration::ZERO;
            }
            // Nearest rank: ceil(q * n), 1-based.
            let r = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
            s[r - 1]
        };
        Self {
            n: s.len(),
            p50: rank(0.5),
            p99: rank(0.99),
        }
    }
}

/// Milliseconds with a precision that suits the value (`0.042 ms`, `3.51 ms`, `812 ms`).
pub(crate) fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e3;
    if v < 1.0 {
        format!("{v:.3} ms")
    } else if v < 100.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

/// A ratio `a / b` written `12.3×` (`–` when `b` is zero).
pub(crate) fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        return "–".to_owned();
    }
    let r = a.as_secs_f64() / b.as_secs_f64();
    if r >= 100.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.1}×")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Summary::of(&samples);
        assert_eq!(s.n, 100);
        assert_eq!(s.p50, Duration::from_millis(50));
        assert_eq!(s.p99, Duration::from_millis(99));
        assert_eq!(Summary::of(&[]).p50, Duration::ZERO);
    }

    #[test]
    fn formatting() {
        assert_eq!(ms(Duration::from_micros(42)), "0.042 ms");
        assert_eq!(ms(Duration::from_micros(3510)), "3.51 ms");
        assert_eq!(
            ratio(Duration::from_secs(3), Duration::from_secs(2)),
            "1.5×"
        );
        assert_eq!(ratio(Duration::from_secs(3), Duration::ZERO), "–");
    }
}
