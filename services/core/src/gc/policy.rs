//! The GC policy (SPEC §4.1): when a run frees space, how much, and what it never takes.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// A disk threshold: a share of the store's filesystem or a number of bytes used on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// Percent of the filesystem's capacity in use (0–100), as kubelet's
    /// `imageGCHighThresholdPercent`.
    Percent(u8),
    /// Bytes in use on the filesystem.
    Bytes(u64),
}

impl Threshold {
    /// The threshold in bytes used, on a filesystem of `capacity` bytes.
    pub fn bytes(self, capacity: u64) -> u64 {
        match self {
            Self::Percent(p) => {
                let b = u128::from(capacity) * u128::from(p) / 100;
                u64::try_from(b).unwrap_or(u64::MAX)
            }
            Self::Bytes(b) => b,
        }
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Percent(p) => write!(f, "{p}%"),
            Self::Bytes(b) => write!(f, "{b} bytes"),
        }
    }
}

/// What a GC run does. Every limit is off unless set; the default policy frees nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcPolicy {
    /// At or above this use of the store's filesystem a run frees space...
    pub high: Option<Threshold>,
    /// ...until the use is at or below this (kubelet's low threshold; `high` when unset).
    pub low: Option<Threshold>,
    /// Most bytes the store's images may take (ImageFsInfo's `used_bytes`); above it a run
    /// frees the excess.
    pub budget_bytes: Option<u64>,
    /// Images not used for longer than this go whatever the space (kubelet's
    /// `imageMaximumGCAge`).
    pub max_unused: Option<Duration>,
    /// The newest this many tagged images of each repository are kept (0: off).
    pub keep_tags: u32,
    /// An image added less than this long ago is never taken (kubelet's
    /// `imageMinimumGCAge`, 2 minutes by default).
    pub min_age: Duration,
    /// The daemon runs the policy this often (`None`: only after writes that cross the
    /// high threshold or the budget, and on request).
    pub interval: Option<Duration>,
}

impl Default for GcPolicy {
    fn default() -> Self {
        Self {
            high: None,
            low: None,
            budget_bytes: None,
            max_unused: None,
            keep_tags: 0,
            min_age: Duration::from_secs(120),
            interval: None,
        }
    }
}

impl GcPolicy {
    /// Whether any limit is set (a run of a policy without one frees nothing).
    pub fn is_active(&self) -> bool {
        self.high.is_some() || self.budget_bytes.is_some() || self.max_unused.is_some()
    }

    /// The low threshold in effect.
    pub fn low_or_high(&self) -> Option<Threshold> {
        self.low.or(self.high)
    }

    /// Checks the policy: percentages at most 100, a low threshold only with a high one, of
    /// the same unit and not above it, a positive interval.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: String| {
            Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid GC policy: {msg}"),
            )
            .with_field(field, msg))
        };
        for (field, t) in [("high", self.high), ("low", self.low)] {
            if let Some(Threshold::Percent(p)) = t
                && p > 100
            {
                return bad(field, format!("{p}% is more than 100%"));
            }
        }
        match (self.high, self.low) {
            (None, Some(_)) => return bad("low", "a low threshold needs a high one".into()),
            (Some(Threshold::Percent(h)), Some(Threshold::Percent(l))) if l > h => {
                return bad("low", format!("low {l}% is above high {h}%"));
            }
            (Some(Threshold::Bytes(h)), Some(Threshold::Bytes(l))) if l > h => {
                return bad("low", format!("low {l} bytes is above high {h} bytes"));
            }
            (Some(Threshold::Percent(_)), Some(Threshold::Bytes(_)))
            | (Some(Threshold::Bytes(_)), Some(Threshold::Percent(_))) => {
                return bad(
                    "low",
                    "high and low thresholds must both be percentages or both bytes".into(),
                );
            }
            _ => {}
        }
        if self.interval == Some(Duration::ZERO) {
            return bad("interval", "the interval must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_checked() {
        let p = |high, low| GcPolicy {
            high,
            low,
            ..GcPolicy::default()
        };
        assert!(
            p(Some(Threshold::Percent(85)), Some(Threshold::Percent(80)))
                .validate()
                .is_ok()
        );
        assert!(p(Some(Threshold::Percent(85)), None).validate().is_ok());
        for bad in [
            p(Some(Threshold::Percent(101)), None),
            p(None, Some(Threshold::Percent(10))),
            p(Some(Threshold::Percent(80)), Some(Threshold::Percent(85))),
            p(Some(Threshold::Bytes(10)), Some(Threshold::Bytes(11))),
            p(Some(Threshold::Bytes(10)), Some(Threshold::Percent(1))),
        ] {
            let e = bad.validate().unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{bad:?}");
        }
        assert_eq!(Threshold::Percent(50).bytes(1000), 500);
        assert_eq!(Threshold::Bytes(7).bytes(1000), 7);
        assert_eq!(Threshold::Percent(100).bytes(u64::MAX), u64::MAX);
    }
}
