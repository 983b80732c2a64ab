//! What one run measured, per store size, for the report.

use std::time::Duration;

use crate::bulk::BulkStats;
use crate::measure::LoadStats;
use crate::scenario::Counts;
use crate::stats::Summary;

/// How the store of a size was built.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Build {
    /// One LoadImages call per archive against the running daemon.
    Rpc(LoadStats),
    /// The documented bulk path (`bulk.rs`).
    Bulk(BulkStats),
}

/// One ListImages query over all pages.
#[derive(Debug, Clone)]
pub(crate) struct ListResult {
    /// What was asked (`all=true`, `filter dangling=true`, …).
    pub label: String,
    /// Client-observed time over all pages.
    pub time: Summary,
    /// Images returned.
    pub images: usize,
    /// Pages.
    pub pages: usize,
}

/// Removal latencies of one kind of reference.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RemoveResult {
    /// Per-call latency of the successful calls.
    pub time: Summary,
    /// Failed calls.
    pub failures: usize,
}

/// One PruneImages call.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PruneResult {
    /// Duration of the call.
    pub time: Duration,
    /// Images it deleted.
    pub deleted: usize,
}

/// The podman commands of the issue and their imagectl equivalents, as whole processes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcTimes {
    /// `images` / `ls` (median of 5 after a warm-up).
    pub ls: Summary,
    /// `images -a` / `ls -a`.
    pub ls_all: Summary,
    /// `rmi <one name>` / `rm <one name>` (5 different images).
    pub rm_one: Summary,
    /// `rmi -f <100 IDs>` / `rm -f <100 IDs>` (one run).
    pub rm_100: Duration,
    /// `image prune -f` / `prune -f` (one run).
    pub prune: Duration,
    /// `image prune -a -f` / `prune -a -f` (one run).
    pub prune_all: Duration,
}

/// The containerd comparison.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ContainerdResult {
    /// `ctr images import` of every archive.
    pub import: Duration,
    /// `Images/List`, whole namespace.
    pub list: Summary,
    /// Image records listed.
    pub images: usize,
    /// `Images/Delete` per name.
    pub delete: RemoveResult,
}

/// Everything measured for one store size.
#[derive(Debug, Clone)]
pub(crate) struct SizeResult {
    /// The requested size.
    pub size: usize,
    /// The scenario's records.
    pub counts: Counts,
    /// How the store was built.
    pub build: Build,
    /// LoadImages of a large archive of random layers.
    pub throughput: Option<LoadStats>,
    /// Daemon start-up (spawn → ready line) over the restarts after a clean stop.
    pub startup: Summary,
    /// Start-up after a SIGKILL (the open lists and sweeps the blob directory).
    pub startup_after_kill: Duration,
    /// RSS right after the last start-up, bytes.
    pub rss_start: u64,
    /// Peak RSS after the listings, bytes.
    pub rss_peak: u64,
    /// Floor: health Check round trip.
    pub health: Summary,
    /// Floor: bare redb commit with fsync.
    pub redb: Summary,
    /// Floor of a removal's commit: a redb delete of one row in a table as large as the
    /// store (same rows, same mean record size), with fsync.
    pub redb_sized: Summary,
    /// Floor of the LoadImages throughput archive: SHA-256 + write + fsync of its bytes.
    pub load_floor: Option<Summary>,
    /// ListImages `all=true` over all pages (the headline number).
    pub list_all: ListResult,
    /// Encoded bytes of those pages.
    pub payload_bytes: usize,
    /// Floor: protobuf encoding of those pages.
    pub encode: Summary,
    /// Protobuf encoding + decoding of those pages.
    pub encode_decode: Summary,
    /// Other ListImages queries (default, filters).
    pub lists: Vec<ListResult>,
    /// RemoveImage by name.
    pub rm_name: RemoveResult,
    /// RemoveImage by ID.
    pub rm_id: RemoveResult,
    /// PruneImages (dangling).
    pub prune_dangling: PruneResult,
    /// PruneImages `all`.
    pub prune_all: PruneResult,
    /// imagectl as whole processes (with `--with-podman`).
    pub imagectl: Option<ProcTimes>,
    /// podman as whole processes (with `--with-podman`).
    pub podman: Option<ProcTimes>,
    /// Images podman holds after its setup.
    pub podman_images: usize,
    /// containerd (with `--with-containerd`).
    pub containerd: Option<ContainerdResult>,
    /// Remarks (skipped parts, failures).
    pub notes: Vec<String>,
}

impl SizeResult {
    /// An empty result for `size` (filled in as the run goes).
    pub(crate) fn new(size: usize, counts: Counts, build: Build) -> Self {
        let empty = ListResult {
            label: String::new(),
            time: Summary::default(),
            images: 0,
            pages: 0,
        };
        Self {
            size,
            counts,
            build,
            throughput: None,
            startup: Summary::default(),
            startup_after_kill: Duration::ZERO,
            rss_start: 0,
            rss_peak: 0,
            health: Summary::default(),
            redb: Summary::default(),
            redb_sized: Summary::default(),
            load_floor: None,
            list_all: empty,
            payload_bytes: 0,
            encode: Summary::default(),
            encode_decode: Summary::default(),
            lists: Vec::new(),
            rm_name: RemoveResult::default(),
            rm_id: RemoveResult::default(),
            prune_dangling: PruneResult::default(),
            prune_all: PruneResult::default(),
            imagectl: None,
            podman: None,
            podman_images: 0,
            containerd: None,
            notes: Vec::new(),
        }
    }
}
