//! Error kinds of the domain. The gRPC layer maps each [`ErrorKind`] to one status code
//! (one table, `imaged-grpc`'s `status.rs`); [`ErrorKind::reason`] is the
//! `google.rpc.ErrorInfo` reason sent with it.

use std::collections::BTreeMap;
use std::fmt;

/// Declares [`ErrorKind`] once: each row is a variant, its documentation and its
/// `ErrorInfo` reason. The enum, [`ErrorKind::ALL`] and [`ErrorKind::reason`] all come
/// from this one list, so a kind cannot exist without a reason or be missing from `ALL`.
macro_rules! error_kinds {
    ($( $(#[$doc:meta])* $kind:ident => $reason:literal, )+) => {
        /// What went wrong, independent of the transport.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $( $(#[$doc])* $kind, )+
        }

        impl ErrorKind {
            /// Every kind, for tables and tests.
            pub const ALL: &'static [ErrorKind] = &[ $( Self::$kind, )+ ];

            /// The `google.rpc.ErrorInfo` reason (UPPER_SNAKE; `imaged.v1.ErrorReason`
            /// names without the `ERROR_REASON_` prefix).
            pub const fn reason(self) -> &'static str {
                match self {
                    $( Self::$kind => $reason, )+
                }
            }
        }
    };
}

error_kinds! {
    /// An image reference resolves to nothing.
    ImageNotKnown => "IMAGE_NOT_KNOWN",
    /// A container ID is not registered.
    ContainerNotKnown => "CONTAINER_NOT_KNOWN",
    /// Untag of a name the image does not have.
    TagNotKnown => "TAG_NOT_KNOWN",
    /// A blank or malformed reference.
    InvalidReference => "INVALID_REFERENCE",
    /// A malformed filter.
    InvalidFilter => "INVALID_FILTER",
    /// A malformed or mismatched page token.
    InvalidPageToken => "INVALID_PAGE_TOKEN",
    /// A malformed, truncated or corrupt archive.
    InvalidArchive => "INVALID_ARCHIVE",
    /// Any other malformed request field.
    InvalidArgument => "INVALID_ARGUMENT",
    /// Containers use the image.
    ImageInUse => "IMAGE_IN_USE",
    /// Removal by ID of an image with several names.
    MultipleNames => "MULTIPLE_NAMES",
    /// The image lives in a read-only store.
    ReadOnlyImage => "READ_ONLY_IMAGE",
    /// A running container uses the image.
    ContainerRunning => "CONTAINER_RUNNING",
    /// An ID prefix matches several images.
    AmbiguousReference => "AMBIGUOUS_REFERENCE",
    /// A Docker-policy conflict.
    Conflict => "CONFLICT",
    /// The store does not allow this write.
    ReadOnlyStore => "READ_ONLY_STORE",
    /// A container with that ID exists.
    ContainerExists => "CONTAINER_EXISTS",
    /// Lost a race; retrying fixes it.
    ConcurrentModification => "CONCURRENT_MODIFICATION",
    /// Over a configured size limit.
    TooLarge => "TOO_LARGE",
    /// The store's disk is full (or below its free-space reserve); removals still work.
    NoSpace => "NO_SPACE",
    /// The deadline passed while waiting.
    DeadlineExceeded => "DEADLINE_EXCEEDED",
    /// No usable credentials.
    Unauthenticated => "UNAUTHENTICATED",
    /// The caller may only read.
    PermissionDenied => "PERMISSION_DENIED",
    /// A bug or an I/O failure.
    Internal => "INTERNAL",
    /// Not offered.
    Unimplemented => "UNIMPLEMENTED",
    /// A pull found the image in none of the registries tried (`candidates` metadata).
    NotFoundInRegistries => "NOT_FOUND_IN_REGISTRIES",
    /// A registry refused the credentials (or asked for some and none were given).
    RegistryUnauthorized => "REGISTRY_UNAUTHORIZED",
    /// The TLS handshake with a registry failed (unknown CA, bad certificate, ...).
    TlsFailure => "TLS_FAILURE",
    /// Content received does not match its digest.
    DigestMismatch => "DIGEST_MISMATCH",
    /// A manifest list has no instance for the requested platform.
    NoMatchingPlatform => "NO_MATCHING_PLATFORM",
    /// A registry could not be reached (connection refused, DNS, timeout, 5xx).
    RegistryUnreachable => "REGISTRY_UNREACHABLE",
    /// A lookup of a manifest list (`lookup_manifest`) found an image that is not one.
    NotAManifestList => "NOT_A_MANIFEST_LIST",
    /// The caller went away (cancelled the call, or its deadline passed) and the work
    /// stopped; nothing was stored.
    Cancelled => "CANCELLED",
}

impl ErrorKind {
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
