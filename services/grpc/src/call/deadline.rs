//! The client's deadline, from the `grpc-timeout` request header.

use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;

/// The client's deadline from the `grpc-timeout` header (`<digits><H|M|S|m|u|n>`).
pub(crate) fn deadline(md: &MetadataMap) -> Option<Instant> {
    Instant::now().checked_add(timeout(md.as_ref())?)
}

/// The client's timeout from the `grpc-timeout` header, `None` when absent or invalid.
pub(crate) fn timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    let d = match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_parses() {
        let at = |v: &str| {
            let mut md = MetadataMap::new();
            md.insert("grpc-timeout", v.parse().expect("ascii"));
            deadline(&md).map(|d| d.saturating_duration_since(Instant::now()))
        };
        let d = at("5S").expect("parsed");
        assert!(
            d > Duration::from_secs(4) && d <= Duration::from_secs(5),
            "{d:?}"
        );
        let d = at("250m").expect("parsed");
        assert!(
            d <= Duration::from_millis(250) && d > Duration::from_millis(100),
            "{d:?}"
        );
        assert!(at("2H").expect("parsed") > Duration::from_secs(7000));
        assert!(at("5x").is_none());
        assert!(at("S").is_none());
        assert!(at("1234567890S").is_none(), "more than 8 digits is invalid");
        assert!(deadline(&MetadataMap::new()).is_none());
    }
}
