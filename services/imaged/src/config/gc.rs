//! `[gc]` of the config file: the GC policy the daemon starts with (SPEC §4.1, README
//! "Keep the store within a budget").
//!
//! ```toml
//! [gc]
//! high = "85%"          # or bytes used on the filesystem: 8589934592, "8GiB"
//! low = "80%"
//! budget = "20GiB"      # bytes of the store's images
//! max_unused = "720h"   # Go durations
//! keep_tags = 3
//! min_age = "2m"
//! interval = "5m"
//! ```

use std::time::Duration;

use imaged_core::filter::until::parse_go_duration;
use imaged_core::gc::{GcPolicy, Threshold};
use toml::{Table, Value};

/// The policy `[gc]` gives (the default policy without the table); errors are pushed.
pub(crate) fn policy(table: Option<&Table>, errors: &mut Vec<String>) -> GcPolicy {
    let mut p = GcPolicy::default();
    let Some(t) = table else {
        return p;
    };
    for (key, v) in t {
        let mut err = |what: String| errors.push(format!("gc.{key}: {what}"));
        match key.as_str() {
            "high" => p.high = threshold(v).map_err(&mut err).ok(),
            "low" => p.low = threshold(v).map_err(&mut err).ok(),
            "budget" => p.budget_bytes = bytes(v).map_err(&mut err).ok(),
            "max_unused" => p.max_unused = duration(v).map_err(&mut err).ok(),
            "min_age" => {
                if let Ok(d) = duration(v).map_err(&mut err) {
                    p.min_age = d;
                }
            }
            "interval" => p.interval = duration(v).map_err(&mut err).ok(),
            "keep_tags" => match v.as_integer().map(u32::try_from) {
                Some(Ok(n)) => p.keep_tags = n,
                _ => err(format!("expected a count, found {v}")),
            },
            _ => err("unknown key".to_owned()),
        }
    }
    if let Err(e) = p.validate() {
        errors.push(format!("gc: {}", e.message));
    }
    p
}

/// `"85%"` or bytes.
fn threshold(v: &Value) -> Result<Threshold, String> {
    if let Some(p) = v.as_str().and_then(|s| s.trim().strip_suffix('%')) {
        return match p.trim().parse::<u8>() {
            Ok(n) if n <= 100 => Ok(Threshold::Percent(n)),
            _ => Err(format!("{v} is not a percentage from 0% to 100%")),
        };
    }
    bytes(v).map(Threshold::Bytes)
}

/// An integer or a size with a unit (`512MiB`, `20GB`, `1T`).
fn bytes(v: &Value) -> Result<u64, String> {
    let bad = || format!("expected bytes (e.g. 1073741824 or \"1GiB\"), found {v}");
    if let Some(n) = v.as_integer() {
        return u64::try_from(n).map_err(|_| bad());
    }
    let s = v.as_str().ok_or_else(bad)?.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

/// A Go duration (`"90s"`, `"2h45m"`), not negative.
fn duration(v: &Value) -> Result<Duration, String> {
    let nanos = v
        .as_str()
        .and_then(parse_go_duration)
        .ok_or_else(|| format!("expected a duration such as \"5m\" or \"720h\", found {v}"))?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| format!("{v} is negative or too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (GcPolicy, Vec<String>) {
        let t: Table = text.parse().unwrap_or_default();
        let mut errors = Vec::new();
        let p = policy(t.get("gc").and_then(Value::as_table), &mut errors);
        (p, errors)
    }

    #[test]
    fn the_gc_table_gives_the_policy() {
        let (p, errors) = parse(
            "[gc]\nhigh = \"85%\"\nlow = \"80%\"\nbudget = \"2GiB\"\nmax_unused = \"720h\"\n\
             keep_tags = 3\nmin_age = \"0s\"\ninterval = \"5m\"\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(p.high, Some(Threshold::Percent(85)));
        assert_eq!(p.low, Some(Threshold::Percent(80)));
        assert_eq!(p.budget_bytes, Some(2 << 30));
        assert_eq!(p.max_unused, Some(Duration::from_secs(720 * 3600)));
        assert_eq!(p.keep_tags, 3);
        assert_eq!(p.min_age, Duration::ZERO);
        assert_eq!(p.interval, Some(Duration::from_secs(300)));
        let (p, errors) = parse("[gc]\nhigh = 100000000\nlow = \"10MB\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(p.low, Some(Threshold::Bytes(10_000_000)));
        assert_eq!(parse("").0, GcPolicy::default());
    }

    #[test]
    fn bad_values_are_named() {
        for (text, what) in [
            ("[gc]\nhigh = \"120%\"\n", "gc.high"),
            ("[gc]\nbudget = \"lots\"\n", "gc.budget"),
            ("[gc]\ninterval = \"-5m\"\n", "gc.interval"),
            ("[gc]\nkeep_tags = -1\n", "gc.keep_tags"),
            ("[gc]\nsoon = 1\n", "gc.soon: unknown key"),
            (
                "[gc]\nhigh = \"80%\"\nlow = \"90%\"\n",
                "low 90% is above high 80%",
            ),
        ] {
            let (_, errors) = parse(text);
            assert!(
                errors.iter().any(|e| e.contains(what)),
                "{text}: {errors:?}"
            );
        }
    }
}
