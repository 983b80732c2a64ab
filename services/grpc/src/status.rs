//! THE table from domain error kinds to gRPC status codes (SPEC §7), and the one function
//! that turns a domain [`Error`] into a [`tonic::Status`] with rich details.
//!
//! Every status carries a `google.rpc.ErrorInfo` (domain [`imaged_proto::ERROR_DOMAIN`],
//! reason [`ErrorKind::reason`], the error's metadata) in `grpc-status-details-bin`, plus a
//! `PreconditionFailure` when the error has violations and a `BadRequest` when it has field
//! violations. `INTERNAL` errors are logged here and sent with a generic message only.

use std::collections::HashMap;

use imaged_core::{Error, ErrorKind};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The message sent instead of the real one for `INTERNAL` errors.
pub const INTERNAL_MESSAGE: &str = "internal error (see the daemon log)";

/// The gRPC code of an error kind. This is the only place where the mapping lives.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::ImageNotKnown | ErrorKind::ContainerNotKnown | ErrorKind::TagNotKnown => {
            Code::NotFound
        }
        ErrorKind::InvalidReference
        | ErrorKind::InvalidFilter
        | ErrorKind::InvalidPageToken
        | ErrorKind::InvalidArchive
        | ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::ImageInUse
        | ErrorKind::MultipleNames
        | ErrorKind::ReadOnlyImage
        | ErrorKind::ContainerRunning
        | ErrorKind::AmbiguousReference
        | ErrorKind::Conflict
        | ErrorKind::ReadOnlyStore => Code::FailedPrecondition,
        ErrorKind::ContainerExists => Code::AlreadyExists,
        ErrorKind::ConcurrentModification => Code::Aborted,
        ErrorKind::TooLarge | ErrorKind::NoSpace => Code::ResourceExhausted,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Unimplemented => Code::Unimplemented,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The message a client may see for `err`: the error's own message, except for
/// `INTERNAL` errors whose message stays in the daemon's log.
pub fn public_message(err: &Error) -> &str {
    if code(err.kind) == Code::Internal {
        INTERNAL_MESSAGE
    } else {
        &err.message
    }
}

/// Converts a domain error into the status sent to the client. `INTERNAL` errors are
/// logged at error level with their real message and metadata, which are never sent.
pub fn to_status(err: &Error) -> Status {
    let code = code(err.kind);
    if code == Code::Internal {
        tracing::error!(
            kind = ?err.kind,
            metadata = ?err.metadata,
            "internal error: {}",
            err.message
        );
        let details = ErrorDetails::with_error_info(
            ErrorKind::Internal.reason(),
            imaged_proto::ERROR_DOMAIN,
            HashMap::new(),
        );
        return Status::with_error_details(code, INTERNAL_MESSAGE, details);
    }
    let metadata: HashMap<String, String> = err
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut details =
        ErrorDetails::with_error_info(err.kind.reason(), imaged_proto::ERROR_DOMAIN, metadata);
    for v in &err.violations {
        details.add_precondition_failure_violation(
            v.kind.clone(),
            v.subject.clone(),
            v.description.clone(),
        );
    }
    for f in &err.field_violations {
        details.add_bad_request_violation(f.field.clone(), f.description.clone());
    }
    Status::with_error_details(code, err.message.clone(), details)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC §7, one row per kind, written out independently of [`code`].
    const TABLE: &[(ErrorKind, Code)] = &[
        (ErrorKind::ImageNotKnown, Code::NotFound),
        (ErrorKind::ContainerNotKnown, Code::NotFound),
        (ErrorKind::TagNotKnown, Code::NotFound),
        (ErrorKind::InvalidReference, Code::InvalidArgument),
        (ErrorKind::InvalidFilter, Code::InvalidArgument),
        (ErrorKind::InvalidPageToken, Code::InvalidArgument),
        (ErrorKind::InvalidArchive, Code::InvalidArgument),
        (ErrorKind::InvalidArgument, Code::InvalidArgument),
        (ErrorKind::ImageInUse, Code::FailedPrecondition),
        (ErrorKind::MultipleNames, Code::FailedPrecondition),
        (ErrorKind::ReadOnlyImage, Code::FailedPrecondition),
        (ErrorKind::ContainerRunning, Code::FailedPrecondition),
        (ErrorKind::AmbiguousReference, Code::FailedPrecondition),
        (ErrorKind::Conflict, Code::FailedPrecondition),
        (ErrorKind::ReadOnlyStore, Code::FailedPrecondition),
        (ErrorKind::ContainerExists, Code::AlreadyExists),
        (ErrorKind::ConcurrentModification, Code::Aborted),
        (ErrorKind::TooLarge, Code::ResourceExhausted),
        (ErrorKind::NoSpace, Code::ResourceExhausted),
        (ErrorKind::DeadlineExceeded, Code::DeadlineExceeded),
        (ErrorKind::Unauthenticated, Code::Unauthenticated),
        (ErrorKind::PermissionDenied, Code::PermissionDenied),
        (ErrorKind::Internal, Code::Internal),
        (ErrorKind::Unimplemented, Code::Unimplemented),
    ];

    fn check_row(kind: ErrorKind, want: Code) {
        let err = Error::new(kind, format!("message of {kind:?}"))
            .with_meta("image_id", "sha256:abc")
            .with_meta("reference", "busybox");
        let st = to_status(&err);
        assert_eq!(st.code(), want, "{kind:?}");
        let info = st.get_details_error_info().expect("ErrorInfo present");
        assert_eq!(info.domain, "imaged.io", "{kind:?}");
        assert_eq!(info.reason, kind.reason(), "{kind:?}");
        // The reason is one of the documented imaged.v1.ErrorReason names.
        let enum_name = format!("ERROR_REASON_{}", info.reason);
        assert!(
            imaged_proto::imaged::v1::ErrorReason::from_str_name(&enum_name).is_some(),
            "{enum_name} missing from errors.proto"
        );
        if want == Code::Internal {
            assert_eq!(st.message(), INTERNAL_MESSAGE);
            assert!(info.metadata.is_empty(), "internal metadata must not leak");
        } else {
            assert_eq!(st.message(), format!("message of {kind:?}"));
            assert_eq!(
                info.metadata.get("image_id").map(String::as_str),
                Some("sha256:abc")
            );
            assert_eq!(
                info.metadata.get("reference").map(String::as_str),
                Some("busybox")
            );
        }
        assert!(st.get_details_precondition_failure().is_none());
        assert!(st.get_details_bad_request().is_none());
    }

    macro_rules! rows {
        ($($name:ident: $kind:ident => $code:ident;)*) => {$(
            #[test]
            fn $name() {
                check_row(ErrorKind::$kind, Code::$code);
            }
        )*};
    }

    rows! {
        image_not_known: ImageNotKnown => NotFound;
        container_not_known: ContainerNotKnown => NotFound;
        tag_not_known: TagNotKnown => NotFound;
        invalid_reference: InvalidReference => InvalidArgument;
        invalid_filter: InvalidFilter => InvalidArgument;
        invalid_page_token: InvalidPageToken => InvalidArgument;
        invalid_archive: InvalidArchive => InvalidArgument;
        invalid_argument: InvalidArgument => InvalidArgument;
        image_in_use: ImageInUse => FailedPrecondition;
        multiple_names: MultipleNames => FailedPrecondition;
        read_only_image: ReadOnlyImage => FailedPrecondition;
        container_running: ContainerRunning => FailedPrecondition;
        ambiguous_reference: AmbiguousReference => FailedPrecondition;
        conflict: Conflict => FailedPrecondition;
        read_only_store: ReadOnlyStore => FailedPrecondition;
        container_exists: ContainerExists => AlreadyExists;
        concurrent_modification: ConcurrentModification => Aborted;
        too_large: TooLarge => ResourceExhausted;
        deadline_exceeded: DeadlineExceeded => DeadlineExceeded;
        unauthenticated: Unauthenticated => Unauthenticated;
        permission_denied: PermissionDenied => PermissionDenied;
        internal: Internal => Internal;
        unimplemented: Unimplemented => Unimplemented;
    }

    #[test]
    fn table_covers_every_kind() {
        for kind in ErrorKind::ALL {
            let row = TABLE.iter().find(|(k, _)| k == kind);
            let (_, want) = row.unwrap_or_else(|| panic!("{kind:?} has no row in SPEC table"));
            assert_eq!(code(*kind), *want, "{kind:?}");
        }
        assert_eq!(TABLE.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn precondition_failure_carries_violations() {
        let err = Error::new(ErrorKind::ImageInUse, "image used by abc")
            .with_meta("container_ids", "c1,c2")
            .with_violation("CONTAINER", "c1", "uses the image")
            .with_violation("CONTAINER", "c2", "uses the image");
        let st = to_status(&err);
        assert_eq!(st.code(), Code::FailedPrecondition);
        let pf = st
            .get_details_precondition_failure()
            .expect("PreconditionFailure");
        let got: Vec<_> = pf
            .violations
            .iter()
            .map(|v| (v.r#type.as_str(), v.subject.as_str()))
            .collect();
        assert_eq!(got, [("CONTAINER", "c1"), ("CONTAINER", "c2")]);
        assert_eq!(pf.violations[0].description, "uses the image");
        let info = st.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "IMAGE_IN_USE");
        assert_eq!(
            info.metadata.get("container_ids").map(String::as_str),
            Some("c1,c2")
        );
    }

    #[test]
    fn bad_request_carries_field_violations() {
        let err = Error::new(ErrorKind::InvalidFilter, "invalid filter \"x\"")
            .with_meta("filter", "x")
            .with_field("filters[1]", "unsupported key \"x\"");
        let st = to_status(&err);
        assert_eq!(st.code(), Code::InvalidArgument);
        let br = st.get_details_bad_request().expect("BadRequest");
        assert_eq!(br.field_violations.len(), 1);
        assert_eq!(br.field_violations[0].field, "filters[1]");
        assert_eq!(br.field_violations[0].description, "unsupported key \"x\"");
        assert!(st.get_details_precondition_failure().is_none());
    }

    #[test]
    fn internal_hides_message_and_details() {
        let err = Error::internal("open /var/lib/imaged/db: disk on fire")
            .with_meta("path", "/var/lib/imaged/db")
            .with_violation("X", "y", "z")
            .with_field("f", "g");
        let st = to_status(&err);
        assert_eq!(st.code(), Code::Internal);
        assert_eq!(st.message(), INTERNAL_MESSAGE);
        assert!(!format!("{st:?}").contains("disk on fire"));
        assert!(st.get_details_precondition_failure().is_none());
        assert!(st.get_details_bad_request().is_none());
        assert_eq!(public_message(&err), INTERNAL_MESSAGE);
    }
}
