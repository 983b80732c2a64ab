//! RemoveImage with the DOCKER policy (moby `ImageDelete`, SPEC §3.2).
//!
//! Hard conflicts (a running container) are never overridden; soft ones (a stopped or
//! created container, other names) are overridden by force. Force never removes
//! containers: when only stopped containers block a forced delete, the image loses its
//! names but its record stays for those containers (like Docker's containerd store keeps a
//! dangling record), so no `deleted` record is written.
//!
//! Parents: moby knows an image's parent only when a local build recorded it; `docker
//! load` and `docker pull` record none, and imaged never builds. So under this policy no
//! image has a parent or children, as on a real dockerd: a base its children share is
//! deleted (its layers stay for them, `deleted` is recorded) and no parent is pruned
//! (checked against dockerd 20.10 in `tests/e2e/docker_differential.rs`).

use crate::catalog::Catalog;
use crate::digest::Digest;
use crate::engine::ops::{Record, RemoveOptions};
use crate::engine::remove::errors::{self, DockerConflict};
use crate::engine::remove::plan::Planner;
use crate::error::Error;
use crate::error::Result;
use crate::model::{Container, ContainerState, Image, ImageId};
use crate::reference::resolve::{How, Resolved};
use crate::reference::split_stored;

/// Plans the removal of a resolved reference; `input` is the user's string.
pub(crate) fn remove(
    p: &mut Planner<'_>,
    r: &Resolved,
    input: &str,
    opts: &RemoveOptions,
) -> Result<()> {
    let img = &r.image;
    if img.read_only {
        return Err(errors::read_only(img));
    }
    let id = img.id;
    if let How::Name(name) = &r.how {
        if !img.names.contains(name) {
            return Err(Error::image_not_known(input));
        }
        if !opts.force
            && single_reference(&img.names)
            && let Some(c) = p.containers_of(&id).first()
        {
            return Err(errors::docker_repository_conflict(input, img, c));
        }
        let mut gone = vec![name.clone()];
        let (repo, tag, _) = split_stored(name);
        if tag.is_some() {
            let other_tag = img
                .names
                .iter()
                .any(|n| n != name && matches!(split_stored(n), (r, Some(_), None) if r == repo));
            if !other_tag {
                gone.extend(
                    img.names
                        .iter()
                        .filter(|n| matches!(split_stored(n), (r, None, Some(_)) if r == repo))
                        .cloned(),
                );
            }
        }
        p.untag(&id, &gone)?;
        if p.image(&id).is_some_and(|i| !i.names.is_empty()) {
            return Ok(());
        }
        return delete_helper(p, &id, opts.force, true);
    }
    // By ID (full, prefix, or a manifest list's instance).
    if single_reference(&img.names) {
        if let Some(c) = conflict(p, img, !opts.force, false) {
            return Err(errors::docker_conflict(img, c));
        }
        p.untag(&id, &img.names)?;
    }
    delete_helper(p, &id, opts.force, false)
}

/// Docker's `isSingleReference`: one tag at most, and every name in that tag's repository
/// (digest names included); a lone name is single, no name is not.
pub(crate) fn single_reference(names: &[String]) -> bool {
    if names.len() <= 1 {
        return names.len() == 1;
    }
    let mut tag_repo: Option<&str> = None;
    let mut digest_repos: Vec<&str> = Vec::new();
    for n in names {
        match split_stored(n) {
            (repo, _, Some(_)) => {
                if !digest_repos.contains(&repo) {
                    digest_repos.push(repo);
                }
            }
            (repo, _, None) => {
                if tag_repo.is_some() {
                    return false;
                }
                tag_repo = Some(repo);
            }
        }
    }
    let single = tag_repo.unwrap_or_else(|| split_stored(&names[0]).0);
    digest_repos.len() == 1 && digest_repos[0] == single
}

/// The first conflict of `img` (moby's order: running, references, stopped; moby's
/// "dependent child images" cannot happen here, see the module docs).
fn conflict<'a>(
    p: &'a Planner<'_>,
    img: &'a Image,
    stopped: bool,
    references: bool,
) -> Option<DockerConflict<'a>> {
    let users: &'a [std::sync::Arc<Container>] = p.containers_of(&img.id);
    if let Some(c) = users.iter().find(|c| c.state == ContainerState::Running) {
        return Some(DockerConflict::Running(c));
    }
    if references && !img.names.is_empty() {
        return Some(DockerConflict::References);
    }
    if stopped && let Some(c) = users.iter().find(|c| c.state != ContainerState::Running) {
        return Some(DockerConflict::Stopped(c));
    }
    None
}

/// moby's `imageDeleteHelper`: conflicts (soft ones only without force), then every
/// remaining name and the image (no parent: see the module docs). `quiet`: a conflict is
/// no error.
fn delete_helper(p: &mut Planner<'_>, id: &ImageId, force: bool, quiet: bool) -> Result<()> {
    let Some(img) = p.image(id) else {
        return Ok(());
    };
    if let Some(c) = conflict(p, &img, !force, !force) {
        return if quiet {
            Ok(())
        } else {
            Err(errors::docker_conflict(&img, c))
        };
    }
    if !p.containers_of(id).is_empty() {
        // Forced past stopped containers: names go, the record stays for them.
        return p.untag(id, &img.names);
    }
    p.delete_recorded(id, None)?;
    for chain in released_layers(p.work(), &img) {
        p.record(Record::DeletedLayer(chain));
    }
    Ok(())
}

/// The chain IDs of `img`'s layers that no image of `remaining` shares, top layer first:
/// what moby's layer store releases when the image goes. A layer is shared when another
/// image has the same layers up to it (moby's chain ID names a layer with everything below
/// it), whatever the blobs' compression.
fn released_layers(remaining: &Catalog, img: &Image) -> Vec<Digest> {
    let Some(bottom) = img.layers.first() else {
        return Vec::new();
    };
    let mut shared = 0;
    for other in remaining.images() {
        if other
            .layers
            .first()
            .is_none_or(|l| l.diff_id != bottom.diff_id)
        {
            continue;
        }
        let common = img
            .layers
            .iter()
            .zip(&other.layers)
            .take_while(|(a, b)| a.diff_id == b.diff_id)
            .count();
        shared = shared.max(common);
        if shared == img.layers.len() {
            return Vec::new();
        }
    }
    let mut chains = Vec::with_capacity(img.layers.len());
    let mut chain: Option<Digest> = None;
    for l in &img.layers {
        let next = match chain {
            None => l.diff_id,
            Some(parent) => Digest::of(format!("{parent} {}", l.diff_id).as_bytes()),
        };
        chains.push(next);
        chain = Some(next);
    }
    chains.drain(..shared);
    chains.reverse();
    chains
}

#[cfg(test)]
mod tests {
    use super::single_reference;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn single_reference_follows_moby() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(!single_reference(&[]));
        assert!(single_reference(&v(&["docker.io/library/busybox:latest"])));
        assert!(single_reference(&v(&[
            "docker.io/library/busybox:latest",
            &format!("docker.io/library/busybox@{d}")
        ])));
        assert!(!single_reference(&v(&["localhost/a:1", "localhost/a:2"])));
        assert!(!single_reference(&v(&[
            "localhost/a:1",
            &format!("localhost/b@{d}")
        ])));
        assert!(single_reference(&v(&[
            &format!("localhost/b@{d}"),
            &format!("localhost/b@{d}x")
        ])));
    }
}
