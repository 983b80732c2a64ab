//! Sharing the equal parts of image records, so that a store of 100k images does not hold
//! 100k copies of the same media types, labels, history steps and run settings (issue 16).
//!
//! * [`MediaType`] shares the media types of the OCI and Docker specifications by itself:
//!   every record that names one points at the same string.
//! * [`Interner`] shares labels, history entries and run settings between the records a
//!   backend builds in one go (today the local store's start-up; containers-storage
//!   builds its configs one by one and does not use it yet): a
//!   child image repeats its parent's history, the images of one family carry the same
//!   labels and environment. It is safe to use from several threads (decoders run on every
//!   core) and is dropped when the records are built: it never grows with the store's
//!   lifetime.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{HistoryEntry, Labels, Platform, RunConfig};

/// The media types records name, shared ([`MediaType::new`]).
const KNOWN: &[&str] = &[
    "",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

static SHARED: LazyLock<Vec<Arc<str>>> =
    LazyLock::new(|| KNOWN.iter().map(|m| Arc::from(*m)).collect());

/// A media type. The ones the OCI and Docker specifications define are one shared string
/// each; any other is its own.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaType(Arc<str>);

impl MediaType {
    /// The media type `s`.
    pub fn new(s: &str) -> Self {
        match KNOWN.iter().position(|k| *k == s) {
            Some(i) => Self(Arc::clone(&SHARED[i])),
            None => Self(Arc::from(s)),
        }
    }

    /// The media type as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for MediaType {
    fn default() -> Self {
        Self::new("")
    }
}

impl std::fmt::Debug for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::ops::Deref for MediaType {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for MediaType {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for MediaType {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for MediaType {
    fn from(s: String) -> Self {
        Self::new(&s)
    }
}

impl From<&String> for MediaType {
    fn from(s: &String) -> Self {
        Self::new(s)
    }
}

impl From<MediaType> for String {
    fn from(m: MediaType) -> Self {
        m.as_str().to_owned()
    }
}

impl PartialEq<str> for MediaType {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for MediaType {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for MediaType {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::from)
    }
}

/// Distinct platforms shared by [`platform`] at most (a store has a handful; more come only
/// from unusual archives, which then hold their own).
const PLATFORMS_MAX: usize = 64;

static PLATFORMS: Mutex<Vec<Arc<Platform>>> = Mutex::new(Vec::new());

/// The platform `os`/`architecture`/`variant`, shared with every image config of the same
/// platform (100k images name two or three platforms: one allocation each instead of three
/// strings per image).
pub fn platform(os: &str, architecture: &str, variant: &str) -> Arc<Platform> {
    let mut known = PLATFORMS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = known
        .iter()
        .find(|k| k.os == os && k.architecture == architecture && k.variant == variant)
    {
        return Arc::clone(found);
    }
    let p = Arc::new(Platform {
        os: os.to_owned(),
        architecture: architecture.to_owned(),
        variant: variant.to_owned(),
    });
    if known.len() < PLATFORMS_MAX {
        known.push(Arc::clone(&p));
    }
    p
}

/// Shards of an [`Interner`] table (decoder threads rarely wait for each other).
const SHARDS: usize = 16;

/// One shard of a [`Table`]: values by their encoding.
type Shard<T> = Mutex<HashMap<Box<[u8]>, Arc<T>, foldhash::fast::RandomState>>;

/// One table of an [`Interner`]: the shared values by their encoding, sharded by hash.
/// The encodings come from archives and registries, so the hash is seeded per table
/// (foldhash's randomly seeded state: fast, and not predictable from outside).
struct Table<T> {
    hash: foldhash::fast::RandomState,
    shards: [Shard<T>; SHARDS],
}

impl<T> Table<T> {
    fn new() -> Self {
        // The shards hash with the same seeded state (std's SipHash was ~3% of a start-up).
        let hash = foldhash::fast::RandomState::default();
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::with_hasher(hash))),
            hash,
        }
    }

    fn get<E>(&self, key: &[u8], make: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
        let h = self.hash.hash_one(key);
        let shard = &self.shards[(h as usize) % SHARDS];
        if let Some(found) = shard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
        {
            return Ok(Arc::clone(found));
        }
        // Built outside the lock; two threads building the same value keep the first.
        let made = Arc::new(make()?);
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Arc::clone(map.entry(key.into()).or_insert(made)))
    }
}

/// Shares equal labels, history entries and run settings between the records built with
/// it (see the module docs). Values are keyed by an encoding the caller chooses (the local
/// store: its record bytes), so that a value already held is found without building it.
pub struct Interner {
    labels: Table<BTreeMap<String, String>>,
    history: Table<HistoryEntry>,
    run: Table<RunConfig>,
}

impl Default for Interner {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner").finish_non_exhaustive()
    }
}

impl Interner {
    /// An empty interner.
    pub fn new() -> Self {
        Self {
            labels: Table::new(),
            history: Table::new(),
            run: Table::new(),
        }
    }

    /// The shared labels encoded as `key`; `make` builds them the first time.
    pub fn labels<E>(
        &self,
        key: &[u8],
        make: impl FnOnce() -> Result<BTreeMap<String, String>, E>,
    ) -> Result<Labels, E> {
        self.labels.get(key, make)
    }

    /// The shared history entry encoded as `key`; `make` builds it the first time.
    pub fn history<E>(
        &self,
        key: &[u8],
        make: impl FnOnce() -> Result<HistoryEntry, E>,
    ) -> Result<Arc<HistoryEntry>, E> {
        self.history.get(key, make)
    }

    /// The shared run settings encoded as `key`; `make` builds them the first time.
    pub fn run<E>(
        &self,
        key: &[u8],
        make: impl FnOnce() -> Result<RunConfig, E>,
    ) -> Result<Arc<RunConfig>, E> {
        self.run.get(key, make)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_media_types_are_one_string_and_others_compare_by_value() {
        let a = MediaType::new("application/vnd.oci.image.layer.v1.tar+gzip");
        let b = MediaType::from("application/vnd.oci.image.layer.v1.tar+gzip".to_owned());
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, "application/vnd.oci.image.layer.v1.tar+gzip");
        let x = MediaType::new("text/x-mine");
        assert_eq!(x, MediaType::from("text/x-mine"));
        assert_eq!(x.to_string(), "text/x-mine");
        assert_eq!(MediaType::default(), "");
    }

    #[test]
    fn equal_values_are_shared_and_different_ones_kept_apart() {
        let i = Interner::new();
        let e = |s: &str| {
            i.history(s.as_bytes(), || {
                Ok::<_, ()>(HistoryEntry {
                    created_by: s.to_owned(),
                    ..HistoryEntry::default()
                })
            })
        };
        let (a, b, c) = (e("RUN a"), e("RUN a"), e("RUN b"));
        let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.created_by, "RUN b");
        let built = i.history(b"RUN a", || Err("built again"));
        assert!(built.is_ok_and(|x| Arc::ptr_eq(&x, &a)));
        let l = |v: &str| {
            i.labels(v.as_bytes(), || {
                Ok::<_, ()>(BTreeMap::from([("k".to_owned(), v.to_owned())]))
            })
            .unwrap()
        };
        assert!(Arc::ptr_eq(&l("1"), &l("1")));
        assert_eq!(l("2").get("k").map(String::as_str), Some("2"));
        assert_eq!(i.labels(b"3", || Err("bad")), Err("bad"));
    }
}
