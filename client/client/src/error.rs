//! Typed errors: a [`tonic::Status`] decoded into [`ClientError`].
//!
//! Every imaged error carries a `google.rpc.ErrorInfo` (domain `imaged.io`) in the
//! `grpc-status-details-bin` trailer; its `reason` names an [`ErrorReason`] (the generated
//! `imaged.v1.ErrorReason`: the vocabulary is declared once, in `errors.proto`) and
//! becomes [`ErrorKind::Reason`]. Statuses without such an ErrorInfo (transport failures,
//! proxies, other servers) fall back to [`ErrorKind::Code`].

use std::collections::BTreeMap;
use std::fmt;

use tonic::Code;
use tonic_types::StatusExt;

/// The `google.rpc.ErrorInfo` domain of imaged errors.
pub const ERROR_DOMAIN: &str = imaged_proto::ERROR_DOMAIN;

/// The reasons imaged names in its `ErrorInfo`: the generated `imaged.v1.ErrorReason`
/// (variant names are the reason names in CamelCase, e.g. `IMAGE_IN_USE` is
/// [`ErrorReason::ImageInUse`]).
pub use imaged_proto::imaged::v1::ErrorReason;

/// The `ErrorInfo` reason prefix of the `imaged.v1.ErrorReason` value names.
const REASON_PREFIX: &str = "ERROR_REASON_";

/// What went wrong, independent of the message text.
///
/// Compare with a reason directly: `err.kind == ErrorReason::ImageInUse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The daemon named this reason in an imaged `ErrorInfo`; branch on these.
    Reason(ErrorReason),
    /// No imaged `ErrorInfo` with a known reason (transport failures, proxies, other
    /// servers, a reason newer than this client): only the gRPC code is known. Every
    /// failure to reach the daemon is `Code(Code::Unavailable)`.
    Code(Code),
    /// Client side: a bad URL, TLS file or token file.
    Config,
    /// Client side: reading local input (e.g. the archive to load) failed.
    Io,
}

impl ErrorKind {
    /// The kind named by an `ErrorInfo` reason (an `imaged.v1.ErrorReason` name without
    /// the `ERROR_REASON_` prefix), `None` for a name this client does not know.
    pub fn from_reason(reason: &str) -> Option<Self> {
        let name = format!("{REASON_PREFIX}{reason}");
        ErrorReason::from_str_name(&name)
            .filter(|r| *r != ErrorReason::Unspecified)
            .map(Self::Reason)
    }

    /// The kind for a gRPC code when no imaged `ErrorInfo` names a reason.
    pub fn from_code(code: Code) -> Self {
        Self::Code(code)
    }

    /// The reason, when the daemon named one.
    pub fn reason(self) -> Option<ErrorReason> {
        match self {
            Self::Reason(r) => Some(r),
            _ => None,
        }
    }

    /// True for "does not exist" kinds (an image, container or tag not known, or a bare
    /// `NOT_FOUND` code).
    pub fn is_not_found(self) -> bool {
        matches!(
            self,
            Self::Reason(
                ErrorReason::ImageNotKnown
                    | ErrorReason::ContainerNotKnown
                    | ErrorReason::TagNotKnown
            ) | Self::Code(Code::NotFound)
        )
    }
}

impl From<ErrorReason> for ErrorKind {
    fn from(reason: ErrorReason) -> Self {
        Self::Reason(reason)
    }
}

impl PartialEq<ErrorReason> for ErrorKind {
    fn eq(&self, other: &ErrorReason) -> bool {
        *self == Self::Reason(*other)
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
        let mut message = if status.message().is_empty() {
            code.description().to_owned()
        } else {
            status.message().to_owned()
        };
        // Transport failures say only "transport error"; why (a refused TLS handshake,
        // a reset connection) is in the source chain.
        if let Some(source) = std::error::Error::source(status) {
            let chain = crate::connect::error_chain(source);
            if !message.contains(&chain) {
                message.push_str(": ");
                message.push_str(&chain);
            }
        }
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
    pub fn local(kind: impl Into<ErrorKind>, code: Code, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
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
        Self::local(
            ErrorKind::Code(Code::Unavailable),
            Code::Unavailable,
            message,
        )
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
