//! THE table from domain error kinds to gRPC status codes (SPEC §7), and the one function
//! that turns a domain [`Error`] into a [`tonic::Status`] with rich details.
//!
//! Every status carries a `google.rpc.ErrorInfo` (domain [`imaged_proto::ERROR_DOMAIN`],
//! reason [`ErrorKind::reason`], the error's metadata) in `grpc-status-details-bin`, plus a
//! `PreconditionFailure` when the error has violations and a `BadRequest` when it has field
//! violations. `INTERNAL` errors are logged here and sent with a generic message only.
//!
//! Errors echo the caller's input (a reference, a filter), and all of it travels in
//! headers (`grpc-message`, `grpc-status-details-bin`) that peers limit to a few KiB: the
//! message and every text of the details are cut to [`MESSAGE_CAP`] / [`METADATA_CAP`]
//! bytes with a [`truncate`] marker (SPEC §7).

use std::borrow::Cow;
use std::collections::HashMap;

use imaged_core::{Error, ErrorKind};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The message sent instead of the real one for `INTERNAL` errors.
pub const INTERNAL_MESSAGE: &str = "internal error (see the daemon log)";

/// Longest status message (and violation text) sent, in bytes, before the marker.
pub const MESSAGE_CAP: usize = 256;
/// Longest `ErrorInfo` metadata value sent, in bytes, before the marker (room for a
/// dozen image or container IDs).
pub const METADATA_CAP: usize = 1024;

/// `text` when it fits in `cap` bytes, else its longest prefix of at most `cap` bytes
/// that ends on a character boundary followed by `…[N bytes truncated]`.
pub fn truncate(text: &str, cap: usize) -> Cow<'_, str> {
    if text.len() <= cap {
        return Cow::Borrowed(text);
    }
    let mut end = cap;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!(
        "{}…[{} bytes truncated]",
        &text[..end],
        text.len() - end
    ))
}

fn short(text: &str) -> String {
    truncate(text, MESSAGE_CAP).into_owned()
}

/// The gRPC code of an error kind. This is the only place where the mapping lives.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::ImageNotKnown
        | ErrorKind::ContainerNotKnown
        | ErrorKind::TagNotKnown
        | ErrorKind::NotFoundInRegistries
        | ErrorKind::NoMatchingPlatform => Code::NotFound,
        ErrorKind::RegistryUnauthorized => Code::PermissionDenied,
        ErrorKind::TlsFailure | ErrorKind::RegistryUnreachable => Code::Unavailable,
        ErrorKind::DigestMismatch => Code::DataLoss,
        ErrorKind::Cancelled => Code::Cancelled,
        ErrorKind::NotAManifestList => Code::FailedPrecondition,
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
        .map(|(k, v)| (k.clone(), truncate(v, METADATA_CAP).into_owned()))
        .collect();
    let mut details =
        ErrorDetails::with_error_info(err.kind.reason(), imaged_proto::ERROR_DOMAIN, metadata);
    for v in &err.violations {
        details.add_precondition_failure_violation(
            v.kind.clone(),
            short(&v.subject),
            short(&v.description),
        );
    }
    for f in &err.field_violations {
        details.add_bad_request_violation(f.field.clone(), short(&f.description));
    }
    Status::with_error_details(code, short(&err.message), details)
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
        (ErrorKind::NotFoundInRegistries, Code::NotFound),
        (ErrorKind::RegistryUnauthorized, Code::PermissionDenied),
        (ErrorKind::TlsFailure, Code::Unavailable),
        (ErrorKind::DigestMismatch, Code::DataLoss),
        (ErrorKind::NoMatchingPlatform, Code::NotFound),
        (ErrorKind::RegistryUnreachable, Code::Unavailable),
        (ErrorKind::Cancelled, Code::Cancelled),
        (ErrorKind::NotAManifestList, Code::FailedPrecondition),
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
        no_space: NoSpace => ResourceExhausted;
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

    /// A 1 MB reference once made a 786 KB `grpc-message` header that grpc C-core
    /// refuses: every echoed text is capped.
    #[test]
    fn huge_input_is_cut_in_message_and_details() {
        let reference = "é".repeat(500_000); // 1 MB, two bytes a character
        let err = Error::image_not_known(&reference)
            .with_violation("IMAGE", reference.clone(), reference.clone())
            .with_field("reference", reference.clone());
        let st = to_status(&err);
        assert!(
            st.message().len() <= MESSAGE_CAP + 40,
            "{}",
            st.message().len()
        );
        assert!(
            st.message().ends_with("bytes truncated]"),
            "{}",
            st.message()
        );
        assert!(st.message().starts_with("éé"));
        let info = st.get_details_error_info().expect("ErrorInfo");
        let echoed = &info.metadata["reference"];
        assert!(echoed.len() <= METADATA_CAP + 40, "{}", echoed.len());
        let pf = st.get_details_precondition_failure().expect("violations");
        assert!(pf.violations[0].subject.len() <= MESSAGE_CAP + 40);
        assert!(pf.violations[0].description.len() <= MESSAGE_CAP + 40);
        let br = st.get_details_bad_request().expect("fields");
        assert!(br.field_violations[0].description.len() <= MESSAGE_CAP + 40);
        // Everything that goes into headers stays within a few KiB.
        let headers = st.into_http::<()>().headers().clone();
        let size: usize = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        assert!(size < 8 * 1024, "headers of {size} bytes");
    }

    #[test]
    fn short_texts_are_sent_whole_and_cuts_respect_characters() {
        assert_eq!(truncate("busybox", 7), "busybox");
        assert_eq!(truncate("aéb", 2), "a…[3 bytes truncated]");
        assert_eq!(truncate("abcdef", 3), "abc…[3 bytes truncated]");
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
