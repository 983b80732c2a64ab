//! TEMPORARY stub of the reference functions other modules call; the semantics work
//! replaces the bodies (same signatures).

use crate::error::{Error, ErrorKind, Result};

/// Normalises a name found in a `docker-archive` (`RepoTags`, `repositories`) the way
/// podman does when loading: Docker normalisation (`busybox:latest` ->
/// `docker.io/library/busybox:latest`, `foo/bar` -> `docker.io/foo/bar:latest`).
pub fn normalize_docker_name(s: &str) -> Result<String> {
    if s.trim().is_empty() {
        return Err(Error::new(ErrorKind::InvalidReference, "image name cannot be blank"));
    }
    let (repo, tag) = match s.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r.to_owned(), t.to_owned()),
        _ => (s.to_owned(), "latest".to_owned()),
    };
    let first = repo.split('/').next().unwrap_or_default();
    let qualified = if first.contains('.') || first.contains(':') || first == "localhost" {
        repo
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    Ok(format!("{qualified}:{tag}"))
}

/// Normalises a name to write (TagImage, default load names) the way libimage does:
/// no domain -> `localhost/`, no tag -> `:latest`; a digest -> `InvalidArgument`
/// "tag by digest not supported".
pub fn normalize_tag_name(s: &str) -> Result<String> {
    if s.contains('@') || s.starts_with("sha256:") {
        return Err(Error::new(ErrorKind::InvalidArgument, "tag by digest not supported"));
    }
    let n = normalize_docker_name(s)?;
    Ok(n.replacen("docker.io/library/", "localhost/", usize::from(!s.starts_with("docker.io"))))
}
