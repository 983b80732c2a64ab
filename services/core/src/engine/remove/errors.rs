//! The errors of RemoveImage, with the peers' texts (peers-semantics §3, §9) and their
//! structured details (SPEC §7).

use crate::error::{Error, ErrorKind};
use crate::model::{Container, ContainerState, Image};

fn state_name(s: ContainerState) -> &'static str {
    match s {
        ContainerState::Created => "created",
        ContainerState::Running => "running",
        ContainerState::Stopped => "stopped",
    }
}

fn with_containers(mut e: Error, img: &Image, users: &[&Container]) -> Error {
    let ids: Vec<&str> = users.iter().map(|c| c.id.as_str()).collect();
    e = e
        .with_meta("image_id", img.id.to_string())
        .with_meta("container_ids", ids.join(","));
    for c in users {
        let ext = if c.external { "external " } else { "" };
        e = e.with_violation(
            "CONTAINER",
            c.id.clone(),
            format!(
                "{ext}{} container {} uses image {}",
                state_name(c.state),
                c.id,
                img.id
            ),
        );
    }
    e
}

/// `cannot remove read-only image "<id>"`.
pub(crate) fn read_only(img: &Image) -> Error {
    Error::new(
        ErrorKind::ReadOnlyImage,
        format!("cannot remove read-only image {:?}", img.id.hex()),
    )
    .with_meta("image_id", img.id.to_string())
    .with_violation(
        "IMAGE",
        img.id.to_string(),
        "the image lives in a read-only store",
    )
}

/// libimage's "by ID/digest with more than one tag" refusal.
pub(crate) fn multiple_names(img: &Image, by_digest: bool) -> Error {
    let how = if by_digest { "digest" } else { "ID" };
    let mut e = Error::new(
        ErrorKind::MultipleNames,
        format!(
            "unable to delete image {:?} by {how} with more than one tag ([{}]): please force removal",
            img.id.hex(),
            img.names.join(" ")
        ),
    )
    .with_meta("image_id", img.id.to_string())
    .with_meta("names", img.names.join(","));
    for n in &img.names {
        e = e.with_violation("NAME", n.clone(), "the image has this name too");
    }
    e
}

/// libimage's "image is in use by a container". Like podman (c/storage's `DeleteImage`),
/// the message names the most recently created container (registration time; among equal
/// times the first in `users` order); the metadata and violations list all of them.
pub(crate) fn in_use(img: &Image, users: &[&Container]) -> Error {
    let first = users
        .iter()
        .rev()
        .max_by_key(|c| c.created)
        .map_or("", |c| c.id.as_str());
    with_containers(
        Error::new(
            ErrorKind::ImageInUse,
            format!(
                "image used by {first}: image is in use by a container: consider listing \
                 external containers and force-removing image"
            ),
        ),
        img,
        users,
    )
}

/// A running container blocks removal even with force: imaged cannot stop containers.
pub(crate) fn running(img: &Image, users: &[&Container]) -> Error {
    let first = users.first().map_or("", |c| c.id.as_str());
    with_containers(
        Error::new(
            ErrorKind::ContainerRunning,
            format!(
                "image used by {first}: container {first} is running: imaged does not stop \
                 containers; stop and unregister it first"
            ),
        ),
        img,
        users,
    )
}

/// `<name>: tag not known`.
pub(crate) fn tag_not_known(img: &Image, name: &str) -> Error {
    Error::new(ErrorKind::TagNotKnown, format!("{name}: tag not known"))
        .with_meta("reference", name)
        .with_meta("image_id", img.id.to_string())
}

/// Docker's by-name refusal while a container uses the only reference.
pub(crate) fn docker_repository_conflict(input: &str, img: &Image, c: &Container) -> Error {
    with_containers(
        Error::new(
            ErrorKind::Conflict,
            format!(
                "conflict: unable to remove repository reference {input:?} (must force) - \
                 container {} is using its referenced image {}",
                short(&c.id),
                img.id.short()
            ),
        ),
        img,
        &[c],
    )
    .with_meta("reference", input)
}

/// What blocks a Docker-policy delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DockerConflict<'a> {
    /// Hard: a running container. (Docker's other hard conflict, a child image, needs a
    /// parent a build recorded: never the case here, see `remove::docker`.)
    Running(&'a Container),
    /// Soft: other names.
    References,
    /// Soft: a stopped (or created) container.
    Stopped(&'a Container),
}

/// Docker's `conflict: unable to delete <id> (cannot be forced|must be forced) - …`.
pub(crate) fn docker_conflict(img: &Image, c: DockerConflict<'_>) -> Error {
    let (hard, why) = match c {
        DockerConflict::Running(x) => (
            true,
            format!("image is being used by running container {}", short(&x.id)),
        ),
        DockerConflict::References => (
            false,
            "image is referenced in multiple repositories".to_owned(),
        ),
        DockerConflict::Stopped(x) => (
            false,
            format!("image is being used by stopped container {}", short(&x.id)),
        ),
    };
    let force = if hard {
        "cannot be forced"
    } else {
        "must be forced"
    };
    let e = Error::new(
        ErrorKind::Conflict,
        format!(
            "conflict: unable to delete {} ({force}) - {why}",
            img.id.short()
        ),
    )
    .with_meta("image_id", img.id.to_string());
    match c {
        DockerConflict::Running(x) | DockerConflict::Stopped(x) => with_containers(e, img, &[x]),
        DockerConflict::References => {
            let mut e = e.with_meta("names", img.names.join(","));
            for n in &img.names {
                e = e.with_violation("NAME", n.clone(), "the image has this name too");
            }
            e
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
