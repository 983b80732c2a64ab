//! Timestamps as Unix nanoseconds.

/// A point in time: nanoseconds since the Unix epoch (UTC).
pub type UnixNanos = i64;

/// The current time.
pub fn now() -> UnixNanos {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Parses an RFC 3339 timestamp into Unix nanoseconds.
pub fn parse_rfc3339(s: &str) -> Option<UnixNanos> {
    let t =
        ::time::OffsetDateTime::parse(s, &::time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos()).ok()
}

/// Formats Unix nanoseconds as RFC 3339 (UTC).
pub fn format_rfc3339(t: UnixNanos) -> String {
    ::time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t))
        .ok()
        .and_then(|t| {
            t.format(&::time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
