//! The contract between the engine's callers (gRPC handlers, CRI) and a registry client
//! (crate `imaged-registry`): pulls and pushes as the domain sees them. No network here —
//! the implementation lives in its own crate and is handed to the handlers by the daemon.
//! Work in progress for issue 13 (pull, push, CRI PullImage).

use crate::digest::Digest;
use crate::engine::Engine;
use crate::error::Result;
use crate::model::{ImageId, Platform};

/// When PullImage fetches (podman's `--pull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Always ask the registry; fetch what is missing.
    Always,
    /// Only when no local image has the reference (the default).
    #[default]
    Missing,
    /// When the registry's digest differs from the local image's.
    Newer,
}

/// Credentials for one request (they override stored ones; never logged).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// User name (basic auth, or the user of a token service).
    pub username: String,
    /// Password.
    pub password: String,
    /// OAuth2 refresh token (`identitytoken` in auth files, CRI `identity_token`).
    pub identity_token: String,
    /// A bearer token to send as is (CRI `registry_token`).
    pub registry_token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// TLS and transport choices of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVerify {
    /// As `registries.conf` says (`insecure = true` registries may use plain HTTP).
    #[default]
    Default,
    /// Verify certificates (refuse an insecure registry's plain HTTP).
    Verify,
    /// Do not verify (and allow plain HTTP), as `--tls-verify=false`.
    Skip,
}

/// A pull.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullRequest {
    /// What to pull: a fully-qualified or short reference, by tag or digest.
    pub reference: String,
    /// The instance of a manifest list to pull (`None`: this host's platform).
    pub platform: Option<Platform>,
    /// When to fetch.
    pub policy: PullPolicy,
    /// Credentials for this request only.
    pub credentials: Option<Credentials>,
    /// TLS choice.
    pub tls_verify: TlsVerify,
}

/// A push.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushRequest {
    /// The local image: name, ID or ID prefix.
    pub source: String,
    /// Where to push: a fully-qualified reference (default: the source name).
    pub destination: String,
    /// Credentials for this request only.
    pub credentials: Option<Credentials>,
    /// TLS choice.
    pub tls_verify: TlsVerify,
}

/// Progress of a pull or push, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferEvent {
    /// The reference that is being pulled from / pushed to (after short-name resolution
    /// and mirrors).
    Resolved {
        /// Fully-qualified reference, with the registry actually used.
        reference: String,
    },
    /// Bytes of one blob moved (`done == total` when finished).
    Blob {
        /// Its digest.
        digest: Digest,
        /// Bytes moved so far.
        done: u64,
        /// Its size.
        total: u64,
        /// Already present (in the store for pulls, in the registry for pushes).
        skipped: bool,
    },
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    /// The image pulled (or found locally under `PullPolicy::Missing`).
    pub image_id: ImageId,
    /// The fully-qualified reference it was pulled from.
    pub reference: String,
    /// The manifest digest in the registry.
    pub digest: Digest,
    /// Nothing was fetched: the store had it.
    pub up_to_date: bool,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// The reference pushed to.
    pub reference: String,
    /// The manifest digest in the registry.
    pub digest: Digest,
}

/// A registry client. Blocking: callers run it off the async runtime.
pub trait Registry: Send + Sync + 'static {
    /// Pulls into `engine`'s store (all or nothing, through the load path) and names the
    /// image with the resolved reference.
    fn pull(
        &self,
        engine: &Engine,
        req: &PullRequest,
        progress: &mut dyn FnMut(TransferEvent),
    ) -> Result<PullOutcome>;

    /// Pushes a local image.
    fn push(
        &self,
        engine: &Engine,
        req: &PushRequest,
        progress: &mut dyn FnMut(TransferEvent),
    ) -> Result<PushOutcome>;
}
