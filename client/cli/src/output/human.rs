//! Human-readable sizes, durations and IDs, as podman and Docker print them (the
//! `github.com/docker/go-units` rules).

use imaged_client::{Duration, Timestamp};

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/// Go's `fmt` `%.<precision>g` of a finite `value`: scientific when the exponent is below
/// -4 or at least `precision`, trailing zeros removed.
pub(crate) fn format_g(value: f64, precision: usize) -> String {
    let p = precision.max(1);
    if value == 0.0 {
        return "0".to_owned();
    }
    let sci = format!("{:.*e}", p - 1, value);
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    let p_i32 = i32::try_from(p).unwrap_or(i32::MAX);
    if exp < -4 || exp >= p_i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim_fraction_zeros(mantissa), exp.abs())
    } else {
        let decimals = usize::try_from(p_i32 - 1 - exp).unwrap_or(0);
        trim_fraction_zeros(&format!("{value:.decimals$}"))
    }
}

fn trim_fraction_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s.to_owned()
    }
}

/// go-units `HumanSizeWithPrecision`: decimal SI units, `precision` significant digits,
/// no space (`5.57MB`).
pub(crate) fn human_size_precision(bytes: u64, precision: usize) -> String {
    // Sizes above 2^53 lose precision in f64 beyond the digits printed: harmless.
    #[allow(clippy::cast_precision_loss)]
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < DECIMAL_UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", format_g(size, precision), DECIMAL_UNITS[unit])
}

/// The SIZE column of `podman images`: 3 significant digits and a space before the unit
/// (`5.57 MB`, `892 kB`, `0 B`).
pub(crate) fn podman_size(bytes: u64) -> String {
    let s = human_size_precision(bytes, 3);
    match s.rfind(|c: char| c.is_ascii_digit()) {
        Some(i) => format!("{} {}", &s[..=i], &s[i + 1..]),
        None => s,
    }
}

/// Docker's `units.HumanSize`: 4 significant digits, no space (`16.43MB`, `0B`).
pub(crate) fn docker_size(bytes: u64) -> String {
    human_size_precision(bytes, 4)
}

/// go-units `HumanDuration` of a duration in seconds (negative counts as less than a
/// second).
pub(crate) fn human_duration(seconds: f64) -> String {
    if seconds < 1.0 {
        return "Less than a second".to_owned();
    }
    // Truncation as Go's int(d.Seconds()) / int(d.Minutes()).
    #[allow(clippy::cast_possible_truncation)]
    let secs = seconds as i64;
    if secs == 1 {
        return "1 second".to_owned();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let minutes = secs / 60;
    if minutes == 1 {
        return "About a minute".to_owned();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    #[allow(clippy::cast_possible_truncation)]
    let hours = (seconds / 3600.0).round() as i64;
    if hours == 1 {
        return "About an hour".to_owned();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", secs / 3600 / 24 / 365)
}

/// A compact duration, the two largest units: `3d4h`, `5h`, `12m30s`, `45s`, `2ms`
/// (`<1ms` below a millisecond, `0s` for zero or less).
pub(crate) fn short_duration(d: &Duration) -> String {
    let nanos = i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos);
    let Ok(nanos) = u128::try_from(nanos) else {
        return "0s".to_owned();
    };
    if nanos == 0 {
        return "0s".to_owned();
    }
    let secs = nanos / 1_000_000_000;
    if secs == 0 {
        let ms = nanos / 1_000_000;
        return if ms == 0 {
            "<1ms".to_owned()
        } else {
            format!("{ms}ms")
        };
    }
    let pair = |big: u128, big_unit: &str, small: u128, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    match secs {
        86_400.. => pair(secs / 86_400, "d", secs % 86_400 / 3600, "h"),
        3600.. => pair(secs / 3600, "h", secs % 3600 / 60, "m"),
        60.. => pair(secs / 60, "m", secs % 60, "s"),
        _ => format!("{secs}s"),
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The CREATED column: `2 days ago`; `N/A` when the image config has no creation time.
/// Like podman, from the creation time truncated to whole seconds (`time.Unix(Created,
/// 0)`): with the nanoseconds, an image created at 20.6 s read at 25.3 s would say
/// `4 seconds ago` where podman says `5 seconds ago`.
pub(crate) fn ago(ts: Option<&Timestamp>, now: f64) -> String {
    match ts {
        None => "N/A".to_owned(),
        Some(ts) => {
            #[allow(clippy::cast_precision_loss)]
            let t = ts.seconds as f64;
            format!("{} ago", human_duration(now - t))
        }
    }
}

/// RFC 3339 text of a timestamp truncated to whole seconds (podman's `CreatedAt` of
/// `images --format json`, which it derives from the Unix seconds); empty when unset.
pub(crate) fn rfc3339_seconds(ts: Option<&Timestamp>) -> String {
    let whole = ts.map(|t| Timestamp {
        seconds: t.seconds,
        nanos: 0,
    });
    rfc3339(whole.as_ref())
}

/// RFC 3339 text of a timestamp (UTC, nanoseconds when present); empty when unset or out
/// of range.
pub(crate) fn rfc3339(ts: Option<&Timestamp>) -> String {
    let Some(ts) = ts else {
        return String::new();
    };
    let nanos = i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The bare 64 hex of an ID (`sha256:` removed).
pub(crate) fn bare_id(id: &str) -> &str {
    id.strip_prefix("sha256:").unwrap_or(id)
}

/// The 12-character short ID podman prints.
pub(crate) fn short_id(id: &str) -> &str {
    let bare = bare_id(id);
    bare.get(..12).unwrap_or(bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_g_formatting() {
        assert_eq!(format_g(5.574, 3), "5.57");
        assert_eq!(format_g(892.0, 3), "892");
        assert_eq!(format_g(1.0, 3), "1");
        assert_eq!(format_g(10.0, 3), "10");
        assert_eq!(format_g(9.996, 3), "10");
        assert_eq!(format_g(999.999, 3), "1e+03");
        assert_eq!(format_g(0.0, 3), "0");
        assert_eq!(format_g(0.00001234, 3), "1.23e-05");
        assert_eq!(format_g(16.4321, 4), "16.43");
        assert_eq!(format_g(120.0, 4), "120");
    }

    #[test]
    fn podman_sizes() {
        assert_eq!(podman_size(0), "0 B");
        assert_eq!(podman_size(999), "999 B");
        assert_eq!(podman_size(1000), "1 kB");
        assert_eq!(podman_size(892_000), "892 kB");
        assert_eq!(podman_size(5_574_000), "5.57 MB");
        assert_eq!(podman_size(5_576_000), "5.58 MB");
        assert_eq!(podman_size(1_234_567_890), "1.23 GB");
        // go-units quirk kept as is: 999.999 kB rounds to 1e+03 kB.
        assert_eq!(podman_size(999_999), "1e+03 kB");
    }

    #[test]
    fn docker_sizes() {
        assert_eq!(docker_size(0), "0B");
        assert_eq!(docker_size(16_432_100), "16.43MB");
        assert_eq!(docker_size(11_630_000), "11.63MB");
        assert_eq!(docker_size(2_000), "2kB");
    }

    #[test]
    fn durations_like_go_units() {
        assert_eq!(human_duration(-5.0), "Less than a second");
        assert_eq!(human_duration(0.5), "Less than a second");
        assert_eq!(human_duration(1.2), "1 second");
        assert_eq!(human_duration(42.0), "42 seconds");
        assert_eq!(human_duration(61.0), "About a minute");
        assert_eq!(human_duration(59.0 * 60.0), "59 minutes");
        assert_eq!(human_duration(3600.0), "About an hour");
        assert_eq!(human_duration(5.0 * 3600.0), "5 hours");
        assert_eq!(human_duration(47.0 * 3600.0), "47 hours");
        assert_eq!(human_duration(2.0 * 86400.0), "2 days");
        assert_eq!(human_duration(13.0 * 86400.0), "13 days");
        assert_eq!(human_duration(14.0 * 86400.0), "2 weeks");
        assert_eq!(human_duration(70.0 * 86400.0), "2 months");
        assert_eq!(human_duration(3.0 * 365.0 * 86400.0), "3 years");
    }

    #[test]
    fn short_durations() {
        let d = |seconds, nanos| Duration { seconds, nanos };
        assert_eq!(short_duration(&d(3 * 86400 + 4 * 3600 + 59, 0)), "3d4h");
        assert_eq!(short_duration(&d(30 * 86400 + 59 * 60, 0)), "30d");
        assert_eq!(short_duration(&d(5 * 3600 + 61, 0)), "5h1m");
        assert_eq!(short_duration(&d(750, 0)), "12m30s");
        assert_eq!(short_duration(&d(120, 0)), "2m");
        assert_eq!(short_duration(&d(45, 999_999_999)), "45s");
        assert_eq!(short_duration(&d(0, 2_500_000)), "2ms");
        assert_eq!(short_duration(&d(0, 5)), "<1ms");
        assert_eq!(short_duration(&d(0, 0)), "0s");
        assert_eq!(short_duration(&d(-5, 0)), "0s");
    }

    #[test]
    fn ago_and_timestamps() {
        let ts = Timestamp {
            seconds: 1_000_000,
            nanos: 0,
        };
        assert_eq!(ago(Some(&ts), 1_000_000.0 + 2.0 * 86400.0), "2 days ago");
        assert_eq!(ago(None, 5.0), "N/A");
        // Whole seconds, as podman: created at 20.6 s, read at 25.3 s.
        let frac = Timestamp {
            seconds: 20,
            nanos: 600_000_000,
        };
        assert_eq!(ago(Some(&frac), 25.3), "5 seconds ago");
        assert_eq!(rfc3339_seconds(Some(&frac)), "1970-01-01T00:00:20Z");
        assert_eq!(rfc3339_seconds(None), "");
        assert_eq!(rfc3339(Some(&ts)), "1970-01-12T13:46:40Z");
        let ts = Timestamp {
            seconds: 0,
            nanos: 500,
        };
        assert_eq!(rfc3339(Some(&ts)), "1970-01-01T00:00:00.0000005Z");
        assert_eq!(rfc3339(None), "");
    }

    #[test]
    fn ids() {
        let id = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(bare_id(&id), "ab".repeat(32));
        assert_eq!(short_id(&id), "abababababab");
        assert_eq!(short_id("abc"), "abc");
    }
}
