//! `imagectl events`: one line per event until interrupted.

use std::io::Write;

use imaged_client::{Client, proto};

use crate::args::{EventKind, EventsArgs, Format};
use crate::exit::{Failure, Report};
use crate::output::human::rfc3339;
use crate::output::{event_name, json};

/// Watches until Ctrl-C (exit 0), the daemon closes the stream (exit 0), standard output
/// is closed (exit 0) or the stream fails (exit 125).
pub(crate) async fn run(client: &Client, args: &EventsArgs) -> Result<Report, Failure> {
    let types: Vec<proto::EventType> = args.types.iter().map(|t| event_type(*t)).collect();
    let fail = |e: imaged_client::ClientError| Failure::from_client(client.url(), &e);
    let mut events = client.watch_events(&types).await.map_err(fail)?;
    let mut stdout = std::io::stdout();
    loop {
        let next = tokio::select! {
            next = events.next_event() => next,
            _ = tokio::signal::ctrl_c() => return Ok(Report::ok(String::new())),
        };
        let Some(event) = next.map_err(fail)? else {
            return Ok(Report::ok(String::new()));
        };
        let line = render(&event, args.format);
        if writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The reader went away (`imagectl events | head`): stop quietly.
            return Ok(Report::ok(String::new()));
        }
    }
}

fn event_type(kind: EventKind) -> proto::EventType {
    match kind {
        EventKind::Load => proto::EventType::Load,
        EventKind::Tag => proto::EventType::Tag,
        EventKind::Untag => proto::EventType::Untag,
        EventKind::Delete => proto::EventType::Delete,
        EventKind::Prune => proto::EventType::Prune,
        EventKind::Gc => proto::EventType::Gc,
    }
}

/// One line: `<RFC 3339 time> image <type> <image id> <name>` (podman's order: time, type,
/// status, ID, name; a GC run's name is what started it), with `reclaimed=<bytes>` for
/// prune, GC and delete events and
/// `dropped=<n>` for a lagged notice; or one JSON object.
pub(crate) fn render(e: &proto::Event, format: Format) -> String {
    if format == Format::Json {
        return json::event(e).to_string();
    }
    let mut parts = vec![
        rfc3339(e.time.as_ref()),
        "image".to_owned(),
        event_name(e.r#type).to_owned(),
    ];
    if !e.image_id.is_empty() {
        parts.push(e.image_id.clone());
    }
    if !e.name.is_empty() {
        parts.push(e.name.clone());
    }
    let kind = proto::EventType::try_from(e.r#type).unwrap_or(proto::EventType::Unspecified);
    if matches!(
        kind,
        proto::EventType::Prune | proto::EventType::Gc | proto::EventType::Delete
    ) && e.reclaimed_bytes > 0
    {
        parts.push(format!("reclaimed={}", e.reclaimed_bytes));
    }
    if kind == proto::EventType::Lagged {
        parts.push(format!("dropped={}", e.dropped));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use imaged_client::Timestamp;

    use super::*;

    #[test]
    fn text_lines() {
        let e = proto::Event {
            r#type: proto::EventType::Tag as i32,
            image_id: "sha256:ab".into(),
            name: "localhost/x:1".into(),
            time: Some(Timestamp {
                seconds: 60,
                nanos: 0,
            }),
            ..Default::default()
        };
        assert_eq!(
            render(&e, Format::Table),
            "1970-01-01T00:01:00Z image tag sha256:ab localhost/x:1"
        );
        let p = proto::Event {
            r#type: proto::EventType::Prune as i32,
            reclaimed_bytes: 42,
            ..Default::default()
        };
        assert_eq!(render(&p, Format::Table), " image prune reclaimed=42");
        let g = proto::Event {
            r#type: proto::EventType::Gc as i32,
            name: "timer".into(),
            reclaimed_bytes: 9,
            ..Default::default()
        };
        assert_eq!(render(&g, Format::Table), " image gc timer reclaimed=9");
        let l = proto::Event {
            r#type: proto::EventType::Lagged as i32,
            dropped: 7,
            ..Default::default()
        };
        assert!(render(&l, Format::Table).ends_with("image lagged dropped=7"));
        let j: serde_json::Value = serde_json::from_str(&render(&e, Format::Json)).unwrap();
        assert_eq!(j["Type"], serde_json::json!("tag"));
    }
}
