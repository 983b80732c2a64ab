//! TEMPORARY: signatures of the engine's operations, to be replaced module by module
//! (list.rs, remove.rs, prune.rs, tag.rs, containers.rs, load.rs, cri.rs). Every stub
//! fails with `Unimplemented` so callers can be written against the final signatures.

use std::io::Read;
use std::time::Instant;

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Container, ContainerState};
use crate::ops::{
    DiskUsage, ImageDetails, ImageSummary, ListOptions, ListPage, LoadOptions, LoadReport,
    PruneOptions, PruneReport, RegisterContainer, RemoveOptions, RemoveReport, TagReport,
    UntagReport,
};

fn todo_op(op: &str) -> Error {
    Error::new(ErrorKind::Unimplemented, format!("{op} is not implemented yet"))
}

impl Engine {
    /// ListImages (SPEC §5).
    pub fn list(&self, _opts: &ListOptions) -> Result<ListPage> {
        Err(todo_op("list"))
    }

    /// InspectImage.
    pub fn inspect(&self, _reference: &str) -> Result<ImageDetails> {
        Err(todo_op("inspect"))
    }

    /// ImageDiskUsage.
    pub fn disk_usage(&self, _verbose: bool) -> Result<DiskUsage> {
        Err(todo_op("disk_usage"))
    }

    /// RemoveImage (SPEC §3).
    pub fn remove(&self, _opts: &RemoveOptions) -> Result<RemoveReport> {
        Err(todo_op("remove"))
    }

    /// PruneImages (SPEC §4). `deadline`: give up waiting for a running prune then
    /// (`DeadlineExceeded`).
    pub fn prune(&self, _opts: &PruneOptions, _deadline: Option<Instant>) -> Result<PruneReport> {
        Err(todo_op("prune"))
    }

    /// LoadImages (SPEC §6): reads a whole archive from `reader`.
    pub fn load(&self, _reader: &mut dyn Read, _opts: &LoadOptions) -> Result<LoadReport> {
        Err(todo_op("load"))
    }

    /// TagImage.
    pub fn tag(&self, _source: &str, _names: &[String]) -> Result<TagReport> {
        Err(todo_op("tag"))
    }

    /// UntagImage (empty `names` removes every name).
    pub fn untag(&self, _reference: &str, _names: &[String]) -> Result<UntagReport> {
        Err(todo_op("untag"))
    }

    /// RegisterContainer; sets the image's `last_used`.
    pub fn register_container(&self, _req: &RegisterContainer) -> Result<Container> {
        Err(todo_op("register_container"))
    }

    /// SetContainerState.
    pub fn set_container_state(&self, _id: &str, _state: ContainerState) -> Result<Container> {
        Err(todo_op("set_container_state"))
    }

    /// UnregisterContainer.
    pub fn unregister_container(&self, _id: &str, _ignore_missing: bool) -> Result<()> {
        Err(todo_op("unregister_container"))
    }

    /// ListContainers (all when `image` is empty), ordered by ID.
    pub fn list_containers(&self, _image: &str) -> Result<Vec<Container>> {
        Err(todo_op("list_containers"))
    }

    /// CRI ImageStatus: the image a reference resolves to, `None` when absent.
    pub fn cri_status(&self, _reference: &str) -> Result<Option<ImageDetails>> {
        Err(todo_op("cri_status"))
    }

    /// CRI ListImages: every image (`reference` empty) or the one it resolves to.
    pub fn cri_list(&self, _reference: &str) -> Result<Vec<ImageSummary>> {
        Err(todo_op("cri_list"))
    }

    /// CRI RemoveImage: the whole image with all its names; absent is OK; a RUNNING
    /// container fails with `ContainerRunning`.
    pub fn cri_remove(&self, _reference: &str) -> Result<RemoveReport> {
        Err(todo_op("cri_remove"))
    }
}
