//! What PullImage, PushImage and CRI PullImage share: the daemon's registry client (if
//! any), the request conversions, credential redaction, and the bridge that runs a
//! blocking transfer on its own thread and streams its progress.
//!
//! Progress is streamed through a bounded channel. A blob's intermediate progress is
//! dropped when the client reads slower than the transfer moves (so a slow reader never
//! slows a pull down); `resolved`, a blob's final progress, `done` and the error are
//! always delivered while the client listens.

use std::fmt;
use std::sync::Arc;

use imaged_core::model::Platform;
use imaged_core::transfer::{Cancel, Credentials, PullPolicy, Registry, TlsVerify, TransferEvent};
use imaged_core::{Engine, Error, ErrorKind};
use imaged_proto::imaged::v1 as pb;
use tokio::sync::mpsc;
use tonic::Status;
use tonic::codegen::BoxStream;

use crate::call::{Call, Ctx};
use crate::status;

/// Messages buffered between a transfer and its client.
const CHANNEL_MESSAGES: usize = 64;

/// What a call answers when the daemon has no registry client.
pub const TRANSFER_UNIMPLEMENTED: &str = "this imaged has no registry client, so it \
     cannot pull or push: load images instead with imaged.v1.ImageService/LoadImages \
     (`imagectl load -i ARCHIVE`, e.g. an archive written by `docker save`, `podman save` \
     or `skopeo copy … docker-archive:`)";

/// The daemon's registry client, when it has one.
#[derive(Clone, Default)]
pub(crate) struct RegistrySlot(pub(crate) Option<Arc<dyn Registry>>);

impl fmt::Debug for RegistrySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "RegistrySlot(configured)"
        } else {
            "RegistrySlot(none)"
        })
    }
}

impl RegistrySlot {
    /// The client, or the UNIMPLEMENTED error every transfer answers without one.
    pub(crate) fn get(&self) -> Result<Arc<dyn Registry>, Error> {
        self.0
            .clone()
            .ok_or_else(|| Error::new(ErrorKind::Unimplemented, TRANSFER_UNIMPLEMENTED))
    }
}

/// The domain credentials of a request (`None` when unset or all fields empty).
pub(crate) fn credentials(c: Option<pb::RegistryCredentials>) -> Option<Credentials> {
    let c = c?;
    let creds = Credentials {
        username: c.username,
        password: c.password,
        identity_token: c.identity_token,
        registry_token: c.registry_token,
    };
    (creds != Credentials::default()).then_some(creds)
}

/// The TLS choice of a request.
pub(crate) fn tls_verify(v: i32) -> Result<TlsVerify, Error> {
    match pb::TlsVerify::try_from(v) {
        Ok(pb::TlsVerify::Unspecified) => Ok(TlsVerify::Default),
        Ok(pb::TlsVerify::Enabled) => Ok(TlsVerify::Verify),
        Ok(pb::TlsVerify::Disabled) => Ok(TlsVerify::Skip),
        Err(_) => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("unknown tls_verify value {v}"),
        )
        .with_field("tls_verify", format!("unknown value {v}"))),
    }
}

/// The pull policy of a request.
pub(crate) fn pull_policy(v: i32) -> Result<PullPolicy, Error> {
    match pb::PullPolicy::try_from(v) {
        Ok(pb::PullPolicy::Unspecified | pb::PullPolicy::Missing) => Ok(PullPolicy::Missing),
        Ok(pb::PullPolicy::Always) => Ok(PullPolicy::Always),
        Ok(pb::PullPolicy::Newer) => Ok(PullPolicy::Newer),
        Err(_) => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("unknown policy value {v}"),
        )
        .with_field("policy", format!("unknown value {v}"))),
    }
}

/// The platform of a request: `None` when unset or empty (the host's); empty `os` or
/// `architecture` are the host's.
pub(crate) fn platform(p: Option<pb::Platform>) -> Option<Platform> {
    let p = p?;
    if p.os.is_empty() && p.architecture.is_empty() && p.variant.is_empty() {
        return None;
    }
    let host = Platform::host();
    Some(Platform {
        os: if p.os.is_empty() { host.os } else { p.os },
        architecture: if p.architecture.is_empty() {
            host.architecture
        } else {
            p.architecture
        },
        variant: p.variant,
    })
}

/// Replaces every secret of `creds` (and the raw `extra` strings, e.g. a CRI `auth`)
/// found in `err`'s message, metadata and violations by `***`: a registry client must
/// not echo credentials, and this makes sure none reaches a status or a log line.
pub(crate) fn redact(mut err: Error, creds: Option<&Credentials>, extra: &[&str]) -> Error {
    let mut secrets: Vec<&str> = extra.to_vec();
    if let Some(c) = creds {
        secrets.extend([
            c.password.as_str(),
            c.identity_token.as_str(),
            c.registry_token.as_str(),
        ]);
    }
    // Secrets of fewer than 4 bytes would blank out ordinary words; none are that short
    // in practice, and such a secret offers no protection anyway.
    secrets.retain(|s| s.len() >= 4);
    if secrets.is_empty() {
        return err;
    }
    let scrub = |t: &mut String| {
        for s in &secrets {
            if t.contains(s) {
                *t = t.replace(s, "***");
            }
        }
    };
    scrub(&mut err.message);
    for v in err.metadata.values_mut() {
        scrub(v);
    }
    for v in &mut err.violations {
        scrub(&mut v.subject);
        scrub(&mut v.description);
    }
    for v in &mut err.field_violations {
        scrub(&mut v.description);
    }
    err
}

/// A blob progress message.
pub(crate) fn blob(ev: &TransferEvent) -> Option<pb::BlobProgress> {
    match ev {
        TransferEvent::Blob {
            digest,
            done,
            total,
            skipped,
        } => Some(pb::BlobProgress {
            digest: digest.to_string(),
            bytes_done: *done,
            size: *total,
            skipped: *skipped,
        }),
        TransferEvent::Resolved { .. } => None,
    }
}

/// Whether an event may be dropped for a slow reader (a blob's intermediate progress).
fn droppable(ev: &TransferEvent) -> bool {
    matches!(ev, TransferEvent::Blob { done, total, skipped: false, .. } if done < total)
}

/// How a transfer's events and outcome become the messages of its stream.
pub(crate) struct Messages<T, O> {
    /// A progress event.
    pub(crate) event: fn(TransferEvent) -> T,
    /// The outcome (the last message).
    pub(crate) done: fn(&O) -> T,
}

/// One transfer as a stream: `job` runs on a blocking thread with the engine and a
/// progress callback; each event becomes a message, the outcome the last message (see
/// [`Messages`]), a failure the stream's error status (after `redact`). The call is
/// counted in the metrics when the job ends, and `log` sees the result (it must not log
/// secrets; the error it gets is already redacted).
pub(crate) fn stream<T, O>(
    ctx: &Arc<Ctx>,
    method: &'static str,
    call: Call,
    job: impl FnOnce(&Engine, &mut dyn FnMut(TransferEvent), &Cancel) -> Result<O, Error>
    + Send
    + 'static,
    messages: Messages<T, O>,
    redact: impl FnOnce(Error) -> Error + Send + 'static,
    log: impl FnOnce(&Call, &Result<O, Error>) + Send + 'static,
) -> BoxStream<T>
where
    T: Send + 'static,
    O: Send + 'static,
{
    let Messages {
        event: on_event,
        done: on_done,
    } = messages;
    let (tx, rx) = mpsc::channel::<Result<T, Status>>(CHANNEL_MESSAGES);
    let ctx = Arc::clone(ctx);
    let cancel = Cancel::new();
    // The client going away (cancel, deadline, lost connection) drops the response
    // stream, which closes the channel: the transfer is cancelled. `finished` ends the
    // watch when the transfer ends first (its sender must not outlive the transfer's,
    // or the stream would never end).
    let (finished, job_done) = tokio::sync::oneshot::channel::<()>();
    {
        let tx = tx.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tx.closed() => cancel.cancel(),
                _ = job_done => {}
            }
        });
    }
    tokio::task::spawn_blocking(move || {
        let engine = Arc::clone(&ctx.engine);
        let mut gone = false;
        let mut progress = |ev: TransferEvent| {
            if gone {
                return;
            }
            if droppable(&ev) {
                if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Ok(on_event(ev))) {
                    gone = true;
                }
            } else if tx.blocking_send(Ok(on_event(ev))).is_err() {
                gone = true;
            }
        };
        let result = job(&engine, &mut progress, &cancel).map_err(redact);
        log(&call, &result);
        let last = match &result {
            Ok(o) => Ok(on_done(o)),
            Err(e) => Err(status::to_status(e)),
        };
        ctx.metrics.record(
            method,
            last.as_ref().map_or_else(Status::code, |_| tonic::Code::Ok),
        );
        // The client may have gone (cancelled, deadline): nothing left to tell it.
        let _ = tx.blocking_send(last);
        drop(finished);
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use imaged_core::error::{FieldViolation, Violation};

    #[test]
    fn enums_map_and_unknown_values_are_invalid() {
        assert_eq!(tls_verify(0).ok(), Some(TlsVerify::Default));
        assert_eq!(tls_verify(1).ok(), Some(TlsVerify::Verify));
        assert_eq!(tls_verify(2).ok(), Some(TlsVerify::Skip));
        let e = tls_verify(9).expect_err("unknown");
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert_eq!(pull_policy(0).ok(), Some(PullPolicy::Missing));
        assert_eq!(pull_policy(1).ok(), Some(PullPolicy::Always));
        assert_eq!(pull_policy(2).ok(), Some(PullPolicy::Missing));
        assert_eq!(pull_policy(3).ok(), Some(PullPolicy::Newer));
        assert!(pull_policy(-1).is_err());
    }

    #[test]
    fn platform_fills_from_the_host() {
        assert_eq!(platform(None), None);
        assert_eq!(platform(Some(pb::Platform::default())), None);
        let host = Platform::host();
        let p = platform(Some(pb::Platform {
            architecture: "arm64".into(),
            variant: "v8".into(),
            ..Default::default()
        }))
        .expect("some");
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_str()),
            (host.os.as_str(), "arm64", "v8")
        );
    }

    #[test]
    fn empty_credentials_are_none() {
        assert_eq!(credentials(None), None);
        assert_eq!(credentials(Some(pb::RegistryCredentials::default())), None);
        let c = credentials(Some(pb::RegistryCredentials {
            registry_token: "tok".into(),
            ..Default::default()
        }))
        .expect("some");
        assert_eq!(c.registry_token, "tok");
    }

    #[test]
    fn redaction_reaches_every_text() {
        let creds = Credentials {
            username: "bob".into(),
            password: "hunter22".into(),
            ..Default::default()
        };
        let mut err = Error::new(ErrorKind::Unauthenticated, "bad login bob:hunter22")
            .with_meta("registry", "x hunter22")
            .with_meta("other", "Ym9iOmh1bnRlcjIy");
        err.violations.push(Violation {
            kind: "K".into(),
            subject: "hunter22".into(),
            description: "pw hunter22".into(),
        });
        err.field_violations.push(FieldViolation {
            field: "credentials".into(),
            description: "hunter22!".into(),
        });
        let e = redact(err, Some(&creds), &["Ym9iOmh1bnRlcjIy"]);
        let all = format!("{e:?}");
        assert!(!all.contains("hunter22"), "{all}");
        assert!(!all.contains("Ym9iOmh1bnRlcjIy"), "{all}");
        assert_eq!(e.message, "bad login bob:***");
    }
}
