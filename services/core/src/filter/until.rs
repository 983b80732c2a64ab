//! Time values of the `until` filter (podman's `timetype.GetTimestamp`): a Go duration
//! relative to now (`0` excluded), an RFC 3339 timestamp or a partial form of it
//! (`2006-01-02`, `2006-01-02T15`, `2006-01-02T15:04`, with or without seconds, fraction,
//! `Z` or an offset; UTC when no zone is given), or Unix seconds `secs[.nanos]`.

use crate::time::UnixNanos;

const NANOS: i128 = 1_000_000_000;

/// Parses `value` into Unix nanoseconds (`now` anchors durations).
pub fn parse_time(value: &str, now: UnixNanos) -> Option<UnixNanos> {
    if value != "0"
        && let Some(d) = parse_go_duration(value)
    {
        return i64::try_from(i128::from(now) - d).ok();
    }
    if !value.is_ascii() {
        return None;
    }
    if value.contains('-') {
        return parse_timestamp(value);
    }
    parse_unix(value)
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i128> {
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
        let num = &rest[..num_end];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS,
            "m" => 60 * NANOS,
            "h" => 3600 * NANOS,
            _ => return None,
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut v = int.checked_mul(scale)?;
        let mut div: i128 = 1;
        for c in frac.bytes().take(18) {
            div *= 10;
            v += i128::from(c - b'0') * scale / div;
        }
        total = total.checked_add(v)?;
    }
    if total > i128::from(i64::MAX) {
        return None;
    }
    Some(if neg { -total } else { total })
}

fn parse_unix(s: &str) -> Option<UnixNanos> {
    let (secs, nanos) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !nanos.bytes().all(|b| b.is_ascii_digit()) || nanos.len() > 9 {
        return None;
    }
    let secs: i128 = secs.parse().ok()?;
    let mut n: i128 = if nanos.is_empty() {
        0
    } else {
        nanos.parse().ok()?
    };
    for _ in nanos.len()..9 {
        n *= 10;
    }
    i64::try_from(secs.checked_mul(NANOS)?.checked_add(n)?).ok()
}

fn num(s: &str, len: usize) -> Option<u32> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

/// `YYYY-MM-DD[THH[:MM[:SS[.frac]]]][Z|±HH:MM]`.
fn parse_timestamp(s: &str) -> Option<UnixNanos> {
    let (body, offset) = split_zone(s)?;
    let (date, time) = match body.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (body, None),
    };
    let mut d = date.split('-');
    let (y, mo, da) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    if d.next().is_some() {
        return None;
    }
    let month = ::time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date =
        ::time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(da).ok()?)
            .ok()?;
    let (mut h, mut mi, mut sec, mut nano) = (0u32, 0u32, 0u32, 0u32);
    if let Some(t) = time {
        let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
        let mut parts = hms.split(':');
        h = num(parts.next()?, 2)?;
        if let Some(p) = parts.next() {
            mi = num(p, 2)?;
        }
        if let Some(p) = parts.next() {
            sec = num(p, 2)?;
        }
        if parts.next().is_some() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if !frac.is_empty() {
            nano = frac.parse().ok()?;
            for _ in frac.len()..9 {
                nano *= 10;
            }
        }
    } else if s.contains('.') {
        return None;
    }
    let t = ::time::Time::from_hms_nano(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(sec).ok()?,
        nano,
    )
    .ok()?;
    let at = ::time::PrimitiveDateTime::new(date, t).assume_utc();
    i64::try_from(at.unix_timestamp_nanos() - i128::from(offset) * NANOS).ok()
}

/// Splits a trailing `Z` / `±HH:MM` zone; the offset in seconds.
fn split_zone(s: &str) -> Option<(&str, i64)> {
    if let Some(b) = s.strip_suffix(['Z', 'z']) {
        return Some((b, 0));
    }
    // An offset follows the time part (after 'T') or the date (three dashes in all).
    let t_at = s.find('T').unwrap_or(10.min(s.len()));
    if let Some(i) = s[t_at..].rfind(['+', '-']).map(|i| i + t_at)
        && (i > t_at || (i == t_at && s.len() > 10))
    {
        let z = &s[i + 1..];
        let (hh, mm) = z.split_once(':')?;
        let secs = i64::from(num(hh, 2)?) * 3600 + i64::from(num(mm, 2)?) * 60;
        let sign = if s.as_bytes()[i] == b'-' { -1 } else { 1 };
        return Some((&s[..i], sign * secs));
    }
    Some((s, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms() {
        let now = 1_700_000_000 * 1_000_000_000;
        assert_eq!(parse_time("1h", now), Some(now - 3600 * 1_000_000_000));
        assert_eq!(parse_time("1.5s", now), Some(now - 1_500_000_000));
        assert_eq!(parse_time("2µs", now), Some(now - 2_000));
        assert_eq!(parse_time("0", now), Some(0));
        assert_eq!(parse_time("500000", now), Some(500_000 * 1_000_000_000));
        assert_eq!(parse_time("10.5", now), Some(10_500_000_000));
        assert_eq!(parse_time("1970-01-02", now), Some(86_400 * 1_000_000_000));
        assert_eq!(parse_time("1970-01-01T01", now), Some(3600 * 1_000_000_000));
        assert_eq!(
            parse_time("1970-01-01T00:01", now),
            Some(60 * 1_000_000_000)
        );
        assert_eq!(parse_time("1970-01-01T00:00:01Z", now), Some(1_000_000_000));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00", now), Some(0));
        assert_eq!(parse_time("1970-01-01T00:00:00.5Z", now), Some(500_000_000));
        assert_eq!(
            parse_time("1970-01-01T00:00:00-01:00", now),
            Some(3600 * 1_000_000_000)
        );
        for bad in [
            "",
            "abc",
            "1x",
            "2020-13-01",
            "2020-01-01T25",
            "1.2.3",
            "-5",
            "-`Ѩ=𑨛𜵉",
            "105555555555555555555555555555555555520",
        ] {
            assert_eq!(parse_time(bad, now), None, "{bad}");
        }
    }
}
