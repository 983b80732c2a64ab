//! Image references (`[domain/]path[:tag][@digest]`): the distribution/reference grammar,
//! Docker normalisation and libimage's normalisation of names to write (SPEC §2).
//!
//! [`Reference::parse`] accepts exactly what `distribution/reference.Parse` accepts (with
//! `sha256` as the only digest algorithm) and reports its errors with the same texts;
//! `Reference::parse(&r.to_string()) == Ok(r)` for every parsed `r`.

pub mod resolve;

use std::fmt;

use crate::digest::Digest;
use crate::error::{Error, ErrorKind, Result};

/// Longest repository name (domain + path) the grammar accepts.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// The registry of Docker Hub, as written in normalised names.
pub const DOCKER_DOMAIN: &str = "docker.io";

/// Why a string is not a reference (the parser's reason, distribution's texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefError {
    /// Empty input.
    Empty,
    /// Would be valid in lower case.
    Uppercase,
    /// Does not follow the grammar.
    Format,
    /// Domain + path longer than [`NAME_TOTAL_LENGTH_MAX`].
    TooLong,
    /// A digest algorithm other than sha256.
    DigestAlgorithm,
    /// A sha256 digest whose hex part is not 64 characters.
    DigestLength,
    /// A sha256 digest with non-lowercase hex.
    DigestFormat,
}

impl RefError {
    /// The reason text.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Empty => "repository name must have at least one component",
            Self::Uppercase => "repository name must be lowercase",
            Self::Format => "invalid reference format",
            Self::TooLong => "repository name must not be more than 255 characters",
            Self::DigestAlgorithm => "unsupported digest algorithm",
            Self::DigestLength => "invalid checksum digest length",
            Self::DigestFormat => "invalid checksum digest format",
        }
    }
}

impl fmt::Display for RefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for RefError {}

/// A parsed reference. `domain` is set when the first path component looks like a host
/// (contains `.` or `:`, is `localhost`, or has upper-case letters) and more components
/// follow, as Docker's `splitDockerDomain` decides.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (and port), if any.
    pub domain: Option<String>,
    /// Repository path (lowercase components separated by `/`).
    pub path: String,
    /// Tag.
    pub tag: Option<String>,
    /// Digest.
    pub digest: Option<Digest>,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl Reference {
    /// Parses `s` with the distribution grammar.
    pub fn parse(s: &str) -> Result<Self, RefError> {
        match parse_raw(s) {
            Ok(r) => Ok(r),
            Err(RefError::Format) if s.is_empty() => Err(RefError::Empty),
            Err(RefError::Format) if s.bytes().any(|b| b.is_ascii_uppercase()) => {
                match parse_raw(&s.to_ascii_lowercase()) {
                    Ok(_) | Err(RefError::TooLong) => Err(RefError::Uppercase),
                    Err(_) => Err(RefError::Format),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `domain/path` (or `path` without a domain).
    pub fn repository(&self) -> String {
        match &self.domain {
            Some(d) => format!("{d}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// Whether the input named a registry (libimage's "fully-qualified" short-name test).
    pub fn is_qualified(&self) -> bool {
        self.domain.is_some()
    }

    /// The last path component.
    pub fn last_component(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// Docker normalisation: no domain → `docker.io`, `index.docker.io` → `docker.io`,
    /// single-component Docker Hub paths get `library/`. Tag and digest are kept.
    #[must_use]
    pub fn docker_normalized(&self) -> Self {
        let domain = match self.domain.as_deref() {
            None | Some("index.docker.io") => DOCKER_DOMAIN.to_owned(),
            Some(d) => d.to_owned(),
        };
        let path = if domain == DOCKER_DOMAIN && !self.path.contains('/') {
            format!("library/{}", self.path)
        } else {
            self.path.clone()
        };
        Self {
            domain: Some(domain),
            path,
            tag: self.tag.clone(),
            digest: self.digest,
        }
    }

    /// The tag is dropped when a digest is present; `latest` is added when neither is.
    #[must_use]
    pub fn with_default_tag(&self) -> Self {
        let mut r = self.clone();
        if r.digest.is_some() {
            r.tag = None;
        } else if r.tag.is_none() {
            r.tag = Some("latest".to_owned());
        }
        r
    }
}

fn parse_raw(s: &str) -> Result<Reference, RefError> {
    // Split off the digest, then the tag (a ':' after the last '/').
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(parse_digest(d)?)),
        None => (s, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].find(':') {
        Some(i) => {
            let at = last_slash + i;
            (&rest[..at], Some(&rest[at + 1..]))
        }
        None => (rest, None),
    };
    if let Some(t) = tag
        && !valid_tag(t)
    {
        return Err(RefError::Format);
    }
    let (domain, path) = split_name(name)?;
    if name.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(RefError::TooLong);
    }
    Ok(Reference {
        domain: domain.map(str::to_owned),
        path: path.to_owned(),
        tag: tag.map(str::to_owned),
        digest,
    })
}

/// Splits a name into the Docker domain (if any) and the path, validating both.
fn split_name(name: &str) -> Result<(Option<&str>, &str), RefError> {
    if name.is_empty() {
        return Err(RefError::Format);
    }
    let (first, rest) = match name.split_once('/') {
        Some((f, r)) => (f, Some(r)),
        None => (name, None),
    };
    let looks_like_domain = first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase());
    match rest {
        Some(path) if looks_like_domain => {
            if !valid_domain(first) {
                return Err(RefError::Format);
            }
            valid_path(path)?;
            Ok((Some(first), path))
        }
        _ => {
            // Without a domain, the grammar still lets the first component be a host
            // (e.g. `foo/bar`): it must then be a valid path component, which is stricter.
            valid_path(name)?;
            Ok((None, name))
        }
    }
}

fn valid_path(path: &str) -> Result<(), RefError> {
    if path.split('/').all(valid_component) {
        Ok(())
    } else {
        Err(RefError::Format)
    }
}

/// `[a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host[:port]` with host a dotted DNS-ish name or a bracketed IPv6 address.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, tail)) => {
                if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    return false;
                }
                match tail.strip_prefix(':') {
                    Some(p) => (None, Some(p)),
                    None if tail.is_empty() => (None, None),
                    None => return false,
                }
            }
            None => return false,
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    match host {
        None => true,
        Some(h) => !h.is_empty() && h.split('.').all(valid_domain_component),
    }
}

fn valid_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

fn parse_digest(d: &str) -> Result<Digest, RefError> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err(RefError::Format);
    };
    let alg_ok = alg.split(['-', '_', '+', '.']).all(|p| {
        let b = p.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    });
    if !alg_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RefError::Format);
    }
    if alg != "sha256" {
        return Err(RefError::DigestAlgorithm);
    }
    if hex.len() != 64 {
        return Err(RefError::DigestLength);
    }
    Digest::from_hex(hex).map_err(|_| RefError::DigestFormat)
}

/// Whether `s` is exactly 64 lowercase hex characters (an ID, never a name).
pub fn is_full_hex_id(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

/// Whether `s` is non-empty lowercase hex.
pub fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The parts of a stored, fully-qualified name: `(repository, tag, digest)`.
/// Stored names are `domain/path:tag` or `domain/path@sha256:<hex>`.
pub fn split_stored(name: &str) -> (&str, Option<&str>, Option<&str>) {
    if let Some((repo, d)) = name.split_once('@') {
        return (repo, None, Some(d));
    }
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].rfind(':') {
        Some(i) => (
            &name[..last_slash + i],
            Some(&name[last_slash + i + 1..]),
            None,
        ),
        None => (name, None, None),
    }
}

fn invalid(s: &str, e: RefError) -> Error {
    Error::new(
        ErrorKind::InvalidReference,
        format!("normalizing name {s:?}: {e}"),
    )
    .with_meta("reference", s)
}

/// Parses a name to write, rejecting the 64-hex form Docker refuses as a repository.
fn parse_for_write(s: &str) -> Result<Reference> {
    if s.trim().is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidReference,
            "image name cannot be blank",
        ));
    }
    let r = Reference::parse(s).map_err(|e| invalid(s, e))?;
    if r.domain.is_none() && is_full_hex_id(&r.path) {
        return Err(Error::new(
            ErrorKind::InvalidReference,
            format!("invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"),
        )
        .with_meta("reference", s));
    }
    Ok(r)
}

/// Normalises a name found in a `docker-archive` (`RepoTags`, `repositories`) the way
/// podman does when loading: Docker normalisation (`busybox:latest` ->
/// `docker.io/library/busybox:latest`, `foo/bar` -> `docker.io/foo/bar:latest`).
pub fn normalize_docker_name(s: &str) -> Result<String> {
    let r = checked(
        s,
        parse_for_write(s)?.docker_normalized().with_default_tag(),
    )?;
    Ok(r.to_string())
}

/// The normalised name must still satisfy the grammar (the added domain can make it too
/// long), as distribution's `ParseNormalizedNamed` checks the normalised string.
fn checked(s: &str, r: Reference) -> Result<Reference> {
    if r.repository().len() > NAME_TOTAL_LENGTH_MAX {
        return Err(invalid(s, RefError::TooLong));
    }
    Ok(r)
}

/// Normalises a name to write (TagImage, default load names) the way libimage does:
/// no domain -> `localhost/`, no tag -> `:latest`; a digest -> `InvalidArgument`
/// "tag by digest not supported".
pub fn normalize_tag_name(s: &str) -> Result<String> {
    let digest_err = || {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{s}: tag by digest not supported"),
        )
        .with_meta("reference", s)
    };
    if s.starts_with("sha256:") {
        return Err(digest_err());
    }
    let r = normalize_name(s)?;
    if r.digest.is_some() {
        return Err(digest_err());
    }
    Ok(r.to_string())
}

/// libimage's `NormalizeName`: `localhost/` for names without a domain, Docker
/// normalisation of `docker.io` names, tag dropped when a digest is present, `:latest`
/// when neither.
pub fn normalize_name(s: &str) -> Result<Reference> {
    let mut r = parse_for_write(s)?;
    if r.domain.is_none() {
        r.domain = Some("localhost".to_owned());
    }
    checked(s, r.docker_normalized().with_default_tag())
}
