//! Typed errors: a [`tonic::Status`] decoded into [`ClientError`].
//!
//! Every imaged error carries a `google.rpc.ErrorInfo` (domain `imaged.io`) in the
//! `grpc-status-details-bin` trailer; its `reason` becomes an [`ErrorKind`]. Statuses
//! without such an ErrorInfo (transport failures, proxies, other servers) fall back to a
//! kind derived from the gRPC code alone.

use std::collections::BTreeMap;
use std::fmt;

use tonic::Code;
use tonic_types::StatusExt;

/// The `google.rpc.ErrorInfo` domain of imaged errors.
pub const ERROR_DOMAIN: &str = imaged_proto::ERROR_DOMAIN;

/// What went wrong, independent of the message text.
///
/// The first group mirrors `imaged.v1.ErrorReason` (same names, without the
/// `ERROR_REASON_` prefix); branch on these. The second group is used when the server sent
/// no imaged `ErrorInfo` (the kind then only reflects the gRPC code). The last group is for
/// failures that happen in the client itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `IMAGE_NOT_KNOWN`: "<reference>: image not known".
    ImageNotKnown,
    /// `CONTAINER_NOT_KNOWN`: a container ID that is not registered.
    ContainerNotKnown,
    /// `TAG_NOT_KNOWN`: untagging a name the image does not have.
    TagNotKnown,
    /// `INVALID_REFERENCE`: unparseable or blank reference.
    InvalidReference,
    /// `INVALID_FILTER`: malformed filter.
    InvalidFilter,
    /// `INVALID_PAGE_TOKEN`: page token malformed, expired or for other parameters.
    InvalidPageToken,
    /// `INVALID_ARCHIVE`: archive malformed, truncated or failing verification.
    InvalidArchive,
    /// `INVALID_ARGUMENT` reason, or an `INVALID_ARGUMENT` code without imaged details.
    InvalidArgument,
    /// `IMAGE_IN_USE`: containers use the image.
    ImageInUse,
    /// `MULTIPLE_NAMES`: removal by ID of an image with several names, without force.
    MultipleNames,
    /// `READ_ONLY_IMAGE`: the image lives in a read-only store.
    ReadOnlyImage,
    /// `CONTAINER_RUNNING`: a running container uses the image.
    ContainerRunning,
    /// `AMBIGUOUS_REFERENCE`: an ID prefix matches several images.
    AmbiguousReference,
    /// `CONFLICT`: a Docker-policy conflict.
    Conflict,
    /// `READ_ONLY_STORE`: the store does not allow this write.
    ReadOnlyStore,
    /// `CONTAINER_EXISTS`: a container with that ID is already registered.
    ContainerExists,
    /// `CONCURRENT_MODIFICATION`: lost a race; retrying fixes it.
    ConcurrentModification,
    /// `TOO_LARGE`: over a configured size limit.
    TooLarge,
    /// `DEADLINE_EXCEEDED` reason or code.
    DeadlineExceeded,
    /// `UNAUTHENTICATED` reason or code.
    Unauthenticated,
    /// `PERMISSION_DENIED` reason or code.
    PermissionDenied,
    /// `INTERNAL` reason or code.
    Internal,
    /// `UNIMPLEMENTED` reason or code.
    Unimplemented,

    /// `NOT_FOUND` code without imaged details.
    NotFound,
    /// `FAILED_PRECONDITION` code without imaged details.
    FailedPrecondition,
    /// `ALREADY_EXISTS` code without imaged details.
    AlreadyExists,
    /// `ABORTED` code without imaged details.
    Aborted,
    /// `RESOURCE_EXHAUSTED` code without imaged details.
    ResourceExhausted,
    /// `UNAVAILABLE`: the daemon cannot be reached (also every transport error).
    Unavailable,
    /// `CANCELLED`: the call was cancelled.
    Cancelled,
    /// Any other code (`UNKNOWN`, `OUT_OF_RANGE`, `DATA_LOSS`, ...).
    Unknown,

    /// Client side: a bad URL, TLS file or token file.
    Config,
    /// Client side: reading local input (e.g. the archive to load) failed.
    Io,
}

impl ErrorKind {
    /// The kind named by an `imaged.v1.ErrorReason` name (without the `ERROR_REASON_`
    /// prefix), `None` for an unknown name.
    pub fn from_reason(reason: &str) -> Option<Self> {
        Some(match reason {
            "IMAGE_NOT_KNOWN" => Self::ImageNotKnown,
            "CONTAINER_NOT_KNOWN" => Self::ContainerNotKnown,
            "TAG_NOT_KNOWN" => Self::TagNotKnown,
            "INVALID_REFERENCE" => Self::InvalidReference,
            "INVALID_FILTER" => Self::InvalidFilter,
            "INVALID_PAGE_TOKEN" => Self::InvalidPageToken,
            "INVALID_ARCHIVE" => Self::InvalidArchive,
            "INVALID_ARGUMENT" => Self::InvalidArgument,
            "IMAGE_IN_USE" => Self::ImageInUse,
            "MULTIPLE_NAMES" => Self::MultipleNames,
            "READ_ONLY_IMAGE" => Self::ReadOnlyImage,
            "CONTAINER_RUNNING" => Self::ContainerRunning,
            "AMBIGUOUS_REFERENCE" => Self::AmbiguousReference,
            "CONFLICT" => Self::Conflict,
            "READ_ONLY_STORE" => Self::ReadOnlyStore,
            "CONTAINER_EXISTS" => Self::ContainerExists,
            "CONCURRENT_MODIFICATION" => Self::ConcurrentModification,
            "TOO_LARGE" => Self::TooLarge,
            "DEADLINE_EXCEEDED" => Self::DeadlineExceeded,
            "UNAUTHENTICATED" => Self::Unauthenticated,
            "PERMISSION_DENIED" => Self::PermissionDenied,
            "INTERNAL" => Self::Internal,
            "UNIMPLEMENTED" => Self::Unimplemented,
            _ => return None,
        })
    }

    /// The kind for a gRPC code when no imaged `ErrorInfo` names a reason.
    pub fn from_code(code: Code) -> Self {
        match code {
            Code::NotFound => Self::NotFound,
            Code::InvalidArgument => Self::InvalidArgument,
            Code::FailedPrecondition => Self::FailedPrecondition,
            Code::AlreadyExists => Self::AlreadyExists,
            Code::Aborted => Self::Aborted,
            Code::ResourceExhausted => Self::ResourceExhausted,
            Code::DeadlineExceeded => Self::DeadlineExceeded,
            Code::Unauthenticated => Self::Unauthenticated,
            Code::PermissionDenied => Self::PermissionDenied,
            Code::Internal => Self::Internal,
            Code::Unimplemented => Self::Unimplemented,
            Code::Unavailable => Self::Unavailable,
            Code::Cancelled => Self::Cancelled,
            Code::Ok | Code::Unknown | Code::OutOfRange | Code::DataLoss => Self::Unknown,
        }
    }

    /// True for "does not exist" kinds (an image, container or tag not known, or a bare
    /// `NOT_FOUND`).
    pub fn is_not_found(self) -> bool {
        matches!(
            self,
            Self::ImageNotKnown | Self::ContainerNotKnown | Self::TagNotKnown | Self::NotFound
        )
    }
}

/// One `google.rpc.PreconditionFailure` violation (e.g. a blocking container).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// Violation type (e.g. `CONTAINER`, `IMAGE`).
    pub kind: String,
    /// What failed (e.g. a container ID).
    pub subject: String,
    /// How it failed.
    pub description: String,
}

/// One `google.rpc.BadRequest` field violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// The request field (e.g. `filters[1]`).
    pub field: String,
    /// Why it is wrong.
    pub description: String,
}

/// An error of an imaged call, decoded from the gRPC status and its details.
///
/// Kept under 128 bytes (the violation lists are boxed slices) so that `Result<T,
/// ClientError>` stays cheap and clippy's `result_large_err` does not fire in callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientError {
    /// What went wrong; branch on this.
    pub kind: ErrorKind,
    /// The gRPC status code.
    pub code: Code,
    /// The human message (podman-style, e.g. `foo: image not known`).
    pub message: String,
    /// The `ErrorInfo` reason (`IMAGE_IN_USE`, ...); empty when absent.
    pub reason: String,
    /// The `ErrorInfo` metadata (`image_id`, `container_ids`, ...).
    pub metadata: BTreeMap<String, String>,
    /// `PreconditionFailure` violations (blocking containers or images).
    pub violations: Box<[PreconditionViolation]>,
    /// `BadRequest` field violations.
    pub field_violations: Box<[FieldViolation]>,
}

impl ClientError {
    /// Decodes a status: kind from the imaged `ErrorInfo` reason, else from the code.
    pub fn from_status(status: &tonic::Status) -> Self {
        let details = status.get_error_details();
        let code = status.code();
        let (reason, metadata) = match details.error_info() {
            Some(info) if info.domain == ERROR_DOMAIN => (
                info.reason.clone(),
                info.metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => (String::new(), BTreeMap::new()),
        };
        let kind = ErrorKind::from_reason(&reason).unwrap_or_else(|| ErrorKind::from_code(code));
        let violations = details
            .precondition_failure()
            .map(|pf| {
                pf.violations
                    .iter()
                    .map(|v| PreconditionViolation {
                        kind: v.r#type.clone(),
                        subject: v.subject.clone(),
                        description: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let field_violations = details
            .bad_request()
            .map(|br| {
                br.field_violations
                    .iter()
                    .map(|v| FieldViolation {
                        field: v.field.clone(),
                        description: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let message = if status.message().is_empty() {
            code.description().to_owned()
        } else {
            status.message().to_owned()
        };
        Self {
            kind,
            code,
            message,
            reason,
            metadata,
            violations,
            field_violations,
        }
    }

    /// An error that happened in the client, not on the server.
    pub fn local(kind: ErrorKind, code: Code, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            reason: String::new(),
            metadata: BTreeMap::new(),
            violations: Box::default(),
            field_violations: Box::default(),
        }
    }

    /// A bad URL or TLS/token file.
    pub fn config(message: impl Into<String>) -> Self {
        Self::local(ErrorKind::Config, Code::InvalidArgument, message)
    }

    /// A failure to reach the daemon (connect, TLS handshake, ...).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::local(ErrorKind::Unavailable, Code::Unavailable, message)
    }

    /// A local I/O failure (reading input).
    pub fn io(context: &str, err: &std::io::Error) -> Self {
        Self::local(ErrorKind::Io, Code::Unknown, format!("{context}: {err}"))
    }

    /// True when the daemon could not be reached at all (as opposed to an error it
    /// returned): an `UNAVAILABLE` code without an imaged `ErrorInfo`.
    pub fn is_connection_error(&self) -> bool {
        self.code == Code::Unavailable && self.reason.is_empty()
    }

    /// The comma-separated metadata value `key` split into its items (empty if absent).
    pub fn metadata_list(&self, key: &str) -> Vec<String> {
        self.metadata
            .get(key)
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ClientError {}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        Self::from_status(&status)
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
