//! Container records (SPEC §6 ContainerService): registering one marks its image in use
//! and sets the image's `last_used`. Stores whose containers come from their engine serve
//! these read-only (`READ_ONLY_STORE`).

use std::sync::Arc;

use crate::catalog::ChangeSet;
use crate::engine::Engine;
use crate::engine::ops::RegisterContainer;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Container, ContainerState, Image};
use crate::reference::resolve::resolve;

fn not_known(id: &str) -> Error {
    Error::new(
        ErrorKind::ContainerNotKnown,
        format!("{id}: container not known"),
    )
    .with_meta("container_id", id)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A random 64-hex container ID.
fn new_id() -> String {
    (0..4)
        .map(|_| format!("{:016x}", fastrand::u64(..)))
        .collect()
}

impl Engine {
    fn check_containers_writable(&self) -> Result<()> {
        if self.store.info().containers_read_only {
            return Err(Error::new(
                ErrorKind::ReadOnlyStore,
                "container records of this store come from its engine (podman, buildah, CRI-O) and cannot be changed through imaged: create and remove containers with that engine",
            ));
        }
        Ok(())
    }

    /// The container with exactly this ID or, failing that, a unique ID prefix.
    fn find_container(&self, view: &crate::catalog::Catalog, id: &str) -> Result<Arc<Container>> {
        if id.is_empty() {
            return Err(
                Error::new(ErrorKind::InvalidArgument, "container ID cannot be blank")
                    .with_field("id", "required"),
            );
        }
        if let Some(c) = view.container(id) {
            return Ok(Arc::clone(c));
        }
        let mut hits = view.containers().filter(|c| c.id.starts_with(id));
        match (hits.next(), hits.next()) {
            (Some(c), None) => Ok(Arc::clone(c)),
            _ => Err(not_known(id)),
        }
    }

    /// RegisterContainer; sets the image's `last_used`.
    pub fn register_container(&self, req: &RegisterContainer) -> Result<Container> {
        self.check_containers_writable()?;
        let id = match &req.id {
            Some(id) if !id.is_empty() => {
                if !valid_id(id) {
                    return Err(Error::new(
                        ErrorKind::InvalidArgument,
                        format!("invalid container ID {id:?}"),
                    )
                    .with_field("id", "letters, digits, '-', '_' and '.' only, at most 128"));
                }
                id.clone()
            }
            _ => new_id(),
        };
        let _w = self.write_lock();
        let view = self.view();
        if view.container(&id).is_some() {
            return Err(Error::new(
                ErrorKind::ContainerExists,
                format!("container {id} is already registered"),
            )
            .with_meta("container_id", id));
        }
        let img = resolve(&view, &self.config, &req.image)?.image;
        let now = crate::time::now();
        let c = Container {
            id,
            image_id: img.id,
            state: req.state,
            external: req.external,
            name: req.name.clone(),
            created: now,
        };
        let touched: Image = Image {
            last_used: Some(now),
            ..(*img).clone()
        };
        self.commit(
            &view,
            &ChangeSet {
                put_images: vec![Arc::new(touched)],
                put_containers: vec![Arc::new(c.clone())],
                ..ChangeSet::default()
            },
        )?;
        Ok(c)
    }

    /// SetContainerState.
    pub fn set_container_state(&self, id: &str, state: ContainerState) -> Result<Container> {
        self.check_containers_writable()?;
        let _w = self.write_lock();
        let view = self.view();
        let c = self.find_container(&view, id)?;
        let next = Container {
            state,
            ..(*c).clone()
        };
        if next != *c {
            self.commit(
                &view,
                &ChangeSet {
                    put_containers: vec![Arc::new(next.clone())],
                    ..ChangeSet::default()
                },
            )?;
        }
        Ok(next)
    }

    /// UnregisterContainer.
    pub fn unregister_container(&self, id: &str, ignore_missing: bool) -> Result<()> {
        self.check_containers_writable()?;
        let _w = self.write_lock();
        let view = self.view();
        let c = match self.find_container(&view, id) {
            Ok(c) => c,
            Err(e) if e.kind == ErrorKind::ContainerNotKnown && ignore_missing => return Ok(()),
            Err(e) => return Err(e),
        };
        self.commit(
            &view,
            &ChangeSet {
                delete_containers: vec![c.id.clone()],
                ..ChangeSet::default()
            },
        )?;
        Ok(())
    }

    /// ListContainers (all when `image` is empty), ordered by ID.
    pub fn list_containers(&self, image: &str) -> Result<Vec<Container>> {
        let view = self.view();
        let want = if image.is_empty() {
            None
        } else {
            Some(resolve(&view, &self.config, image)?.image.id)
        };
        Ok(view
            .containers()
            .filter(|c| want.is_none_or(|w| c.image_id == w))
            .map(|c| (**c).clone())
            .collect())
    }
}
