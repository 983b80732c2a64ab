//! `imagectl gc policy`: the daemon's GC policy in the syntax of the config file's `[gc]`
//! table, shown as `key: value` lines and changed with `--set KEY=VALUE`.
//!
//! The values are parsed here, as the daemon parses its config file: thresholds are
//! `85%` or bytes, sizes are digits with an optional unit (`B`, `K`/`KiB`, `M`/`MiB`,
//! `G`/`GiB`, `T`/`TiB`, `KB`, `MB`, `GB`, `TB`), ages are Go durations (`720h`, `2m30s`,
//! `1.5s`). The CLI checks the syntax; the daemon checks how the settings combine (a low
//! threshold above the high one, a zero interval, …) and its answer is printed as is.

use imaged_client::{Client, Duration, proto};

use crate::args::GcPolicyArgs;
use crate::exit::{Failure, Report};

/// The keys of `[gc]`, in the order `gc policy` prints them.
pub(crate) const KEYS: [&str; 7] = [
    "high",
    "low",
    "budget",
    "max_unused",
    "keep_tags",
    "min_age",
    "interval",
];

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// One `--set`: a key and its new value (`None`: unset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Setting {
    /// `high`.
    High(Option<proto::GcThreshold>),
    /// `low`.
    Low(Option<proto::GcThreshold>),
    /// `budget`.
    Budget(Option<u64>),
    /// `max_unused`.
    MaxUnused(Option<Duration>),
    /// `keep_tags` (0: off).
    KeepTags(u32),
    /// `min_age` (unset: the daemon's default, 2 minutes).
    MinAge(Option<Duration>),
    /// `interval`.
    Interval(Option<Duration>),
}

impl Setting {
    /// Writes the setting into `p`.
    pub(crate) fn apply(self, p: &mut proto::GcPolicy) {
        match self {
            Self::High(v) => p.high = v,
            Self::Low(v) => p.low = v,
            Self::Budget(v) => p.budget_bytes = v,
            Self::MaxUnused(v) => p.max_unused = v,
            Self::KeepTags(v) => p.keep_tags = v,
            Self::MinAge(v) => p.min_age = v,
            Self::Interval(v) => p.interval = v,
        }
    }
}

/// Parses one `--set KEY=VALUE`; the error reads `invalid --set <arg>: <why>`.
pub(crate) fn parse_set(arg: &str) -> Result<Setting, String> {
    let bad = |why: String| format!("invalid --set {arg}: {why}");
    let Some((key, value)) = arg.split_once('=') else {
        return Err(bad("expected KEY=VALUE".to_owned()));
    };
    let value = value.trim();
    // An empty value unsets the key; `off` too, as `gc policy` prints unset keys.
    let unset = value.is_empty() || value == "off";
    let setting = match key.trim() {
        "high" => opt(unset, value, parse_threshold).map(Setting::High),
        "low" => opt(unset, value, parse_threshold).map(Setting::Low),
        "budget" => opt(unset, value, parse_bytes).map(Setting::Budget),
        "max_unused" => opt(unset, value, parse_duration).map(Setting::MaxUnused),
        "min_age" => opt(unset, value, parse_duration).map(Setting::MinAge),
        "interval" => opt(unset, value, parse_duration).map(Setting::Interval),
        "keep_tags" if unset => Ok(Setting::KeepTags(0)),
        "keep_tags" => value
            .parse::<u32>()
            .map(Setting::KeepTags)
            .map_err(|_| format!("expected a count, found {value:?}")),
        other => Err(format!(
            "unknown key {other:?} (one of {})",
            KEYS.join(", ")
        )),
    };
    setting.map_err(bad)
}

/// `None` when `unset`, else `value` parsed.
fn opt<T>(
    unset: bool,
    value: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if unset {
        Ok(None)
    } else {
        parse(value).map(Some)
    }
}

/// Parses every `--set`, in order; the first bad one is a usage error (exit 125).
pub(crate) fn parse_sets(args: &[String]) -> Result<Vec<Setting>, Failure> {
    args.iter()
        .map(|a| parse_set(a).map_err(Failure::new))
        .collect()
}

/// Shows the policy; with `--set`, reads it, changes the keys given, stores it with
/// SetGcPolicy and shows what the daemon keeps.
pub(crate) async fn run(client: &Client, args: &GcPolicyArgs) -> Result<Report, Failure> {
    let settings = parse_sets(&args.set)?;
    let fail = |e: imaged_client::ClientError| Failure::from_client(client.url(), &e);
    let mut policy = client.get_gc_policy().await.map_err(fail)?;
    if !settings.is_empty() {
        for s in settings {
            s.apply(&mut policy);
        }
        policy = client.set_gc_policy(policy).await.map_err(fail)?;
    }
    Ok(Report::ok(render(&policy)))
}

/// One `key: value` line per setting, in `[gc]` syntax; `off` for an unset limit.
pub(crate) fn render(p: &proto::GcPolicy) -> String {
    let threshold = |t: Option<&proto::GcThreshold>| {
        t.and_then(|t| t.value.as_ref()).map(|v| match v {
            proto::gc_threshold::Value::Percent(n) => format!("{n}%"),
            proto::gc_threshold::Value::Bytes(b) => format_bytes(*b),
        })
    };
    let duration = |d: Option<&Duration>| d.map(go_duration);
    let off = |v: Option<String>| v.unwrap_or_else(|| "off".to_owned());
    let high = threshold(p.high.as_ref());
    let low = match threshold(p.low.as_ref()) {
        Some(l) => l,
        // The daemon brings the use down to the high threshold.
        None if high.is_some() => "off (= high)".to_owned(),
        None => "off".to_owned(),
    };
    let values = [
        off(high),
        low,
        off(p.budget_bytes.map(format_bytes)),
        off(duration(p.max_unused.as_ref())),
        p.keep_tags.to_string(),
        off(duration(p.min_age.as_ref())),
        off(duration(p.interval.as_ref())),
    ];
    KEYS.iter()
        .zip(values)
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect()
}

/// `"85%"` (0 to 100) or bytes.
fn parse_threshold(s: &str) -> Result<proto::GcThreshold, String> {
    use proto::gc_threshold::Value;
    if let Some(p) = s.strip_suffix('%') {
        return match p.trim().parse::<u8>() {
            Ok(n) if n <= 100 => Ok(proto::GcThreshold {
                value: Some(Value::Percent(u32::from(n))),
            }),
            _ => Err(format!("{s} is not a percentage from 0% to 100%")),
        };
    }
    parse_bytes(s).map(|b| proto::GcThreshold {
        value: Some(Value::Bytes(b)),
    })
}

/// Bytes: digits and an optional unit (`512MiB`, `20GB`, `1T`, `1073741824`).
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || format!("expected bytes (e.g. 1073741824 or 1GiB), found {s:?}");
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

/// Bytes in the shortest exact `[gc]` form: `20GiB`, `10MB`, `1000` (binary units first).
pub(crate) fn format_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 8] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("TB", 1_000_000_000_000),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
    ];
    UNITS
        .iter()
        .filter(|(_, scale)| n > 0 && n.is_multiple_of(*scale))
        .min_by_key(|(_, scale)| n / scale)
        .map_or_else(
            || n.to_string(),
            |(unit, scale)| format!("{}{unit}", n / scale),
        )
}

/// A Go duration (`90s`, `2h45m`, `1.5ms`, `0`), not negative, as a protobuf Duration.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("expected a duration such as 5m or 720h, found {s:?}");
    let nanos = parse_go_duration(s).ok_or_else(bad)?;
    let nanos = u128::try_from(nanos).map_err(|_| format!("{s} is negative"))?;
    Ok(Duration {
        seconds: i64::try_from(nanos / NANOS_PER_SEC).map_err(|_| bad())?,
        nanos: i32::try_from(nanos % NANOS_PER_SEC).map_err(|_| bad())?,
    })
}

/// Go's `time.ParseDuration` in nanoseconds: an optional sign, then numbers (with an
/// optional fraction) each followed by a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`);
/// `0` alone needs no unit. `None` when malformed or beyond Go's range (about 292 years).
pub(crate) fn parse_go_duration(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        rest = tail;
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut v = int.checked_mul(scale)?;
        // The fraction, to the nanosecond (digits beyond 18 cannot matter).
        let digits = &frac[..frac.len().min(18)];
        if !digits.is_empty() {
            let f: i128 = digits.parse().ok()?;
            v += f * scale / 10_i128.pow(u32::try_from(digits.len()).ok()?);
        }
        total = total.checked_add(v)?;
        if total > i128::from(i64::MAX) {
            return None;
        }
    }
    Some(if neg { -total } else { total })
}

/// Go's `time.Duration.String`: `720h0m0s`, `2m0s`, `1.5s`, `300ms`, `1ns`, `0s`.
pub(crate) fn go_duration(d: &Duration) -> String {
    let nanos = i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos);
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u == 0 {
        return "0s".to_owned();
    }
    if u < NANOS_PER_SEC {
        let (unit, prec) = match u {
            0..1_000 => ("ns", 0),
            1_000..1_000_000 => ("µs", 3),
            _ => ("ms", 6),
        };
        return format!("{sign}{}{unit}", decimal(u, prec));
    }
    let secs = u / NANOS_PER_SEC;
    let frac = decimal(u % NANOS_PER_SEC, 9);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    // `frac` is `0` or `0.5`: keep what follows the 0.
    let frac = frac.strip_prefix('0').unwrap_or(&frac);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}{frac}s")
    } else if secs >= 60 {
        format!("{sign}{m}m{s}{frac}s")
    } else {
        format!("{sign}{s}{frac}s")
    }
}

/// `v / 10^prec` in decimal, trailing zeros of the fraction removed (`1500, 3` → `1.5`).
fn decimal(v: u128, prec: u32) -> String {
    let scale = 10_u128.pow(prec);
    let (int, frac) = (v / scale, v % scale);
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0width$}", width = prec as usize);
    format!("{int}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::gc_threshold::Value;

    fn dur(seconds: i64, nanos: i32) -> Duration {
        Duration { seconds, nanos }
    }

    fn pct(n: u32) -> Option<proto::GcThreshold> {
        Some(proto::GcThreshold {
            value: Some(Value::Percent(n)),
        })
    }

    #[test]
    fn sets_parse_like_the_config_file() {
        assert_eq!(parse_set("high=85%"), Ok(Setting::High(pct(85))));
        assert_eq!(parse_set("low= 80 %"), Ok(Setting::Low(pct(80))));
        assert_eq!(
            parse_set("high=8GiB"),
            Ok(Setting::High(Some(proto::GcThreshold {
                value: Some(Value::Bytes(8 << 30))
            })))
        );
        assert_eq!(
            parse_set("budget=20GiB"),
            Ok(Setting::Budget(Some(20 << 30)))
        );
        assert_eq!(
            parse_set("budget=10MB"),
            Ok(Setting::Budget(Some(10_000_000)))
        );
        assert_eq!(parse_set("budget=4096"), Ok(Setting::Budget(Some(4096))));
        assert_eq!(
            parse_set("max_unused=720h"),
            Ok(Setting::MaxUnused(Some(dur(720 * 3600, 0))))
        );
        assert_eq!(
            parse_set("max_unused=1ns"),
            Ok(Setting::MaxUnused(Some(dur(0, 1))))
        );
        assert_eq!(
            parse_set("min_age=0s"),
            Ok(Setting::MinAge(Some(dur(0, 0))))
        );
        assert_eq!(
            parse_set("interval=1m30.5s"),
            Ok(Setting::Interval(Some(dur(90, 500_000_000))))
        );
        assert_eq!(parse_set("keep_tags=3"), Ok(Setting::KeepTags(3)));
        // Empty (or `off`) unsets.
        assert_eq!(parse_set("high="), Ok(Setting::High(None)));
        assert_eq!(parse_set("interval=off"), Ok(Setting::Interval(None)));
        assert_eq!(parse_set("min_age="), Ok(Setting::MinAge(None)));
        assert_eq!(parse_set("keep_tags="), Ok(Setting::KeepTags(0)));
    }

    #[test]
    fn bad_sets_name_the_argument() {
        for (arg, why) in [
            ("high=120%", "120% is not a percentage from 0% to 100%"),
            ("high=-5%", "is not a percentage"),
            ("budget=lots", "expected bytes"),
            ("budget=1.5GB", "expected bytes"),
            ("budget=99999999999TB", "expected bytes"),
            ("interval=-5m", "-5m is negative"),
            ("max_unused=3d", "expected a duration"),
            ("max_unused=5", "expected a duration"),
            ("keep_tags=-1", "expected a count"),
            ("soon=1", "unknown key \"soon\" (one of high, low, budget"),
            ("high", "expected KEY=VALUE"),
        ] {
            let err = parse_set(arg).unwrap_err();
            assert!(
                err.starts_with(&format!("invalid --set {arg}: ")) && err.contains(why),
                "{arg}: {err}"
            );
        }
        let args = vec!["high=85%".to_owned(), "low=x".to_owned()];
        let failure = parse_sets(&args).unwrap_err();
        assert_eq!(failure.code, 125);
        assert!(failure.message.starts_with("invalid --set low=x: "));
    }

    #[test]
    fn settings_apply_in_order() {
        let mut p = proto::GcPolicy {
            high: pct(90),
            keep_tags: 2,
            ..Default::default()
        };
        let args = ["high=85%", "budget=2GiB", "high=", "keep_tags=5"].map(String::from);
        for s in parse_sets(&args).unwrap() {
            s.apply(&mut p);
        }
        assert_eq!(p.high, None);
        assert_eq!(p.budget_bytes, Some(2 << 30));
        assert_eq!(p.keep_tags, 5);
    }

    #[test]
    fn policy_lines_in_config_syntax() {
        let p = proto::GcPolicy {
            high: pct(85),
            low: pct(80),
            budget_bytes: Some(20 << 30),
            max_unused: Some(dur(720 * 3600, 0)),
            keep_tags: 3,
            min_age: Some(dur(120, 0)),
            interval: None,
        };
        let want = "\
high: 85%
low: 80%
budget: 20GiB
max_unused: 720h0m0s
keep_tags: 3
min_age: 2m0s
interval: off
";
        assert_eq!(render(&p), want);
        let p = proto::GcPolicy {
            high: pct(85),
            ..Default::default()
        };
        assert!(render(&p).contains("\nlow: off (= high)\n"));
        let empty = render(&proto::GcPolicy::default());
        assert_eq!(
            empty,
            "high: off\nlow: off\nbudget: off\nmax_unused: off\nkeep_tags: 0\nmin_age: off\ninterval: off\n"
        );
        // Every printed value parses back to itself.
        for line in render(&p).lines().chain(want.lines()) {
            let (k, v) = line.split_once(": ").unwrap();
            let v = v.trim_end_matches(" (= high)");
            let mut q = proto::GcPolicy::default();
            parse_set(&format!("{k}={v}")).unwrap().apply(&mut q);
        }
    }

    #[test]
    fn bytes_print_in_the_shortest_exact_unit() {
        assert_eq!(format_bytes(0), "0");
        assert_eq!(format_bytes(1000), "1KB");
        assert_eq!(format_bytes(1024), "1KiB");
        assert_eq!(format_bytes(2_000_000_000), "2GB");
        assert_eq!(format_bytes(8 << 30), "8GiB");
        assert_eq!(format_bytes(1_536 << 20), "1536MiB");
        assert_eq!(format_bytes(1234), "1234");
        for n in [0, 1, 1000, 1024, 2_000_000_000, 3 << 40, 12_345_678] {
            assert_eq!(parse_bytes(&format_bytes(n)), Ok(n));
        }
    }

    #[test]
    fn go_durations_both_ways() {
        for (nanos, text) in [
            (0_i128, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (300_000_000, "300ms"),
            (1_500_000_000, "1.5s"),
            (120_000_000_000, "2m0s"),
            (90_500_000_000, "1m30.5s"),
            (3_600_000_000_000, "1h0m0s"),
            (720 * 3_600_000_000_000, "720h0m0s"),
            (9_930_000_000_000, "2h45m30s"),
        ] {
            let d = dur(
                i64::try_from(nanos / 1_000_000_000).unwrap(),
                i32::try_from(nanos % 1_000_000_000).unwrap(),
            );
            assert_eq!(go_duration(&d), text);
            assert_eq!(parse_go_duration(text), Some(nanos), "{text}");
        }
        assert_eq!(parse_go_duration("2h45m"), Some(9_900_000_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("-1.5h"), Some(-5_400_000_000_000));
        assert_eq!(parse_go_duration("1us"), Some(1_000));
        assert_eq!(parse_go_duration(".5s"), Some(500_000_000));
        for bad in ["", "5", "1d", "1.2.3s", "s", "3000000h", "+"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
        assert_eq!(go_duration(&dur(-2, 0)), "-2s");
    }
}
