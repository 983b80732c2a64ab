//! Everything `imagectl` prints: tables, human sizes and times, JSON, and the names of
//! enum values.

pub(crate) mod human;
pub(crate) mod json;
pub(crate) mod table;

use imaged_client::proto::{ContainerState, EventType};

/// Lower-case name of a container state (`created`, `running`, `stopped`, `unknown`).
pub(crate) fn state_name(state: i32) -> &'static str {
    match ContainerState::try_from(state) {
        Ok(ContainerState::Created) => "created",
        Ok(ContainerState::Running) => "running",
        Ok(ContainerState::Stopped) => "stopped",
        _ => "unknown",
    }
}

/// Lower-case name of an event type (`load`, `tag`, `untag`, `delete`, `prune`, `gc`,
/// `lagged`).
pub(crate) fn event_name(kind: i32) -> &'static str {
    match EventType::try_from(kind) {
        Ok(EventType::Load) => "load",
        Ok(EventType::Tag) => "tag",
        Ok(EventType::Untag) => "untag",
        Ok(EventType::Delete) => "delete",
        Ok(EventType::Prune) => "prune",
        Ok(EventType::Gc) => "gc",
        Ok(EventType::Lagged) => "lagged",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names() {
        assert_eq!(state_name(ContainerState::Running as i32), "running");
        assert_eq!(state_name(99), "unknown");
        assert_eq!(event_name(EventType::Delete as i32), "delete");
        assert_eq!(event_name(EventType::Gc as i32), "gc");
        assert_eq!(event_name(0), "unknown");
    }
}
