//! The contract between the engine's callers (gRPC handlers, CRI) and a registry client
//! (crate `imaged-registry`): pulls and pushes as the domain sees them. No network here —
//! the implementation lives in its own crate and is handed to the handlers by the daemon.
//! Work in progress for issue 13 (pull, push, CRI PullImage).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::digest::Digest;
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
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
    /// image with the resolved reference. Once `cancel` fires, the pull stops as soon as
    /// it can (also while waiting for the registry) with [`ErrorKind::Cancelled`] and
    /// stores nothing.
    fn pull(
        &self,
        engine: &Engine,
        req: &PullRequest,
        progress: &mut dyn FnMut(TransferEvent),
        cancel: &Cancel,
    ) -> Result<PullOutcome>;

    /// Pushes a local image; `cancel` as for [`Registry::pull`] (what was uploaded stays
    /// in the registry, the manifest is not pushed).
    fn push(
        &self,
        engine: &Engine,
        req: &PushRequest,
        progress: &mut dyn FnMut(TransferEvent),
        cancel: &Cancel,
    ) -> Result<PushOutcome>;
}

/// Cancellation of one transfer: set once (the client went away, its deadline passed),
/// seen by blocking code ([`Cancel::is_cancelled`], [`Cancel::wait_timeout`]) and by async code
/// ([`Cancel::cancelled`], a future that completes when it is set). Clones share it.
#[derive(Clone, Default)]
pub struct Cancel(Arc<CancelState>);

#[derive(Default)]
struct CancelState {
    set: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
    blocked: Condvar,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Cancel").field(&self.is_cancelled()).finish()
    }
}

impl Cancel {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels: wakes every waiter. Idempotent.
    pub fn cancel(&self) {
        let mut wakers = self.0.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        self.0.set.store(true, Ordering::SeqCst);
        for w in wakers.drain(..) {
            w.wake();
        }
        self.0.blocked.notify_all();
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.set.load(Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once cancelled: `what` says what stopped.
    pub fn check(&self, what: &str) -> Result<()> {
        if self.is_cancelled() {
            Err(Self::error(what))
        } else {
            Ok(())
        }
    }

    /// The error of a transfer that stopped because it was cancelled.
    pub fn error(what: &str) -> Error {
        Error::new(
            ErrorKind::Cancelled,
            format!("{what}: cancelled by the caller"),
        )
    }

    /// Blocks until cancelled, or at most `limit`; whether it was cancelled.
    pub fn wait_timeout(&self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        let mut guard = self.0.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        while !self.is_cancelled() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = self
                .0
                .blocked
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// A future that completes once cancelled.
    pub fn cancelled(&self) -> Cancelled<'_> {
        Cancelled(self)
    }
}

/// The future of [`Cancel::cancelled`].
#[derive(Debug)]
pub struct Cancelled<'a>(&'a Cancel);

impl Future for Cancelled<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state = &self.0.0;
        if state.set.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let mut wakers = state.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked again under the lock `cancel` takes before it drains the wakers.
        if state.set.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod cancel_tests {
    use super::*;

    #[test]
    fn waiters_see_a_cancel_from_another_thread() {
        let c = Cancel::new();
        assert!(!c.is_cancelled() && c.check("x").is_ok());
        let other = c.clone();
        assert!(!c.wait_timeout(std::time::Duration::from_millis(1)));
        let t = std::thread::spawn(move || other.wait_timeout(std::time::Duration::MAX / 4));
        c.cancel();
        assert!(t.join().expect("waiter"));
        let e = c.check("pull a:1").expect_err("cancelled");
        assert_eq!(e.kind, ErrorKind::Cancelled);
        assert_eq!(e.message, "pull a:1: cancelled by the caller");
    }

    #[test]
    fn the_future_is_woken_by_cancel() {
        struct Flag(AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let c = Cancel::new();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        let mut fut = c.cancelled();
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Pending);
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Pending);
        assert_eq!(c.0.wakers.lock().unwrap().len(), 1, "one waker per task");
        c.cancel();
        assert!(flag.0.load(Ordering::SeqCst));
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(()));
    }
}
