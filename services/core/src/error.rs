//! Error kinds of the domain. The gRPC layer maps each [`ErrorKind`] to one status code
//! (one table, `imaged-grpc`'s `status.rs`); [`ErrorKind::reason`] is the
//! `google.rpc.ErrorInfo` reason sent with it.

use std::collections::BTreeMap;
use std::fmt;

/// What went wrong, independent of the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An image reference resolves to nothing.
    ImageNotKnown,
    /// A container ID is not registered.
    ContainerNotKnown,
    /// Untag of a name the image does not have.
    TagNotKnown,
    /// A blank or malformed reference.
    InvalidReference,
    /// A malformed filter.
    InvalidFilter,
    /// A malformed or mismatched page token.
    InvalidPageToken,
    /// A malformed, truncated or corrupt archive.
    InvalidArchive,
    /// Any other malformed request field.
    InvalidArgument,
    /// Containers use the image.
    ImageInUse,
    /// Removal by ID of an image with several names.
    MultipleNames,
    /// The image lives in a read-only store.
    ReadOnlyImage,
    /// A running container uses the image.
    ContainerRunning,
    /// An ID prefix matches several images.
    AmbiguousReference,
    /// A Docker-policy conflict.
    Conflict,
    /// The store does not allow this write.
    ReadOnlyStore,
    /// A container with that ID exists.
    ContainerExists,
    /// Lost a race; retrying fixes it.
    ConcurrentModification,
    /// Over a configured size limit.
    TooLarge,
    /// The deadline passed while waiting.
    DeadlineExceeded,
    /// No usable credentials.
    Unauthenticated,
    /// The caller may only read.
    PermissionDenied,
    /// A bug or an I/O failure.
    Internal,
    /// Not offered.
    Unimplemented,
}

impl ErrorKind {
    /// Every kind, for tables and tests.
    pub const ALL: &'static [ErrorKind] = &[
        Self::ImageNotKnown,
        Self::ContainerNotKnown,
        Self::TagNotKnown,
        Self::InvalidReference,
        Self::InvalidFilter,
        Self::InvalidPageToken,
        Self::InvalidArchive,
        Self::InvalidArgument,
        Self::ImageInUse,
        Self::MultipleNames,
        Self::ReadOnlyImage,
        Self::ContainerRunning,
        Self::AmbiguousReference,
        Self::Conflict,
        Self::ReadOnlyStore,
        Self::ContainerExists,
        Self::ConcurrentModification,
        Self::TooLarge,
        Self::DeadlineExceeded,
        Self::Unauthenticated,
        Self::PermissionDenied,
        Self::Internal,
        Self::Unimplemented,
    ];

    /// The `google.rpc.ErrorInfo` reason (UPPER_SNAKE; `imaged.v1.ErrorReason` names
    /// without the `ERROR_REASON_` prefix).
    pub const fn reason(self) -> &'static str {
        match self {
            Self::ImageNotKnown => "IMAGE_NOT_KNOWN",
            Self::ContainerNotKnown => "CONTAINER_NOT_KNOWN",
            Self::TagNotKnown => "TAG_NOT_KNOWN",
            Self::InvalidReference => "INVALID_REFERENCE",
            Self::InvalidFilter => "INVALID_FILTER",
            Self::InvalidPageToken => "INVALID_PAGE_TOKEN",
            Self::InvalidArchive => "INVALID_ARCHIVE",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::ImageInUse => "IMAGE_IN_USE",
            Self::MultipleNames => "MULTIPLE_NAMES",
            Self::ReadOnlyImage => "READ_ONLY_IMAGE",
            Self::ContainerRunning => "CONTAINER_RUNNING",
            Self::AmbiguousReference => "AMBIGUOUS_REFERENCE",
            Self::Conflict => "CONFLICT",
            Self::ReadOnlyStore => "READ_ONLY_STORE",
            Self::ContainerExists => "CONTAINER_EXISTS",
            Self::ConcurrentModification => "CONCURRENT_MODIFICATION",
            Self::TooLarge => "TOO_LARGE",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::Internal => "INTERNAL",
            Self::Unimplemented => "UNIMPLEMENTED",
        }
    }

    /// The kind for a reason string (the inverse of [`ErrorKind::reason`]).
    pub fn from_reason(reason: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.reason() == reason)
    }
}

/// A precondition that blocked the call (`google.rpc.PreconditionFailure.Violation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `CONTAINER`, `IMAGE`, `CHILD_IMAGE`, `NAME`, ...
    pub kind: String,
    /// The blocking object (an ID or a name).
    pub subject: String,
    /// Why it blocks.
    pub description: String,
}

/// A bad request field (`google.rpc.BadRequest.FieldViolation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, e.g. `filters[2]`.
    pub field: String,
    /// What is wrong.
    pub description: String,
}

/// A domain error: a kind, a human message (the peers' text where the spec names one) and
/// structured details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Message for humans.
    pub message: String,
    /// `ErrorInfo` metadata (IDs, names, the input).
    pub metadata: BTreeMap<String, String>,
    /// Blocking preconditions.
    pub violations: Vec<Violation>,
    /// Bad request fields.
    pub field_violations: Vec<FieldViolation>,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            metadata: BTreeMap::new(),
            violations: Vec::new(),
            field_violations: Vec::new(),
        }
    }

    /// Adds an `ErrorInfo` metadata entry.
    #[must_use]
    pub fn with_meta(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a precondition violation.
    #[must_use]
    pub fn with_violation(
        mut self,
        kind: &str,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.violations.push(Violation {
            kind: kind.to_owned(),
            subject: subject.into(),
            description: description.into(),
        });
        self
    }

    /// Adds a bad-request field violation.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>, description: impl Into<String>) -> Self {
        self.field_violations.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
        self
    }

    /// `<reference>: image not known`.
    pub fn image_not_known(reference: &str) -> Self {
        Self::new(
            ErrorKind::ImageNotKnown,
            format!("{reference}: image not known"),
        )
        .with_meta("reference", reference)
    }

    /// An internal error (a bug or I/O failure). The message is logged, never sent.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// An I/O failure with context.
    pub fn io(context: &str, err: &std::io::Error) -> Self {
        Self::internal(format!("{context}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_unique_and_invertible() {
        let mut seen = std::collections::HashSet::new();
        for k in ErrorKind::ALL {
            assert!(seen.insert(k.reason()), "duplicate reason {}", k.reason());
            assert_eq!(ErrorKind::from_reason(k.reason()), Some(*k));
            let r = k.reason();
            assert!(r.len() <= 63 && r.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        }
    }
}
