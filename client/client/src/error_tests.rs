use std::collections::HashMap;

use tonic::Code;
use tonic_types::{ErrorDetails, FieldViolation as PbFieldViolation, StatusExt};

use super::*;

fn status(
    code: Code,
    msg: &str,
    reason: &str,
    domain: &str,
    meta: &[(&str, &str)],
) -> tonic::Status {
    let metadata: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let details = ErrorDetails::with_error_info(reason, domain, metadata);
    tonic::Status::with_error_details(code, msg, details)
}

#[test]
fn every_proto_reason_has_a_kind() {
    let mut seen = 0;
    for value in 0..200 {
        let Ok(reason) = ErrorReason::try_from(value) else {
            continue;
        };
        let name = reason.as_str_name();
        let short = name.strip_prefix("ERROR_REASON_").expect("prefixed name");
        if reason == ErrorReason::Unspecified {
            assert_eq!(ErrorKind::from_reason(short), None);
            continue;
        }
        assert_eq!(
            ErrorKind::from_reason(short),
            Some(ErrorKind::Reason(reason)),
            "{name}"
        );
        seen += 1;
    }
    assert!(seen >= 24, "only {seen} reasons seen");
}

#[test]
fn image_in_use_with_precondition_failure() {
    let mut details = ErrorDetails::with_error_info(
        "IMAGE_IN_USE",
        ERROR_DOMAIN,
        HashMap::from([
            ("image_id".to_owned(), "sha256:abc".to_owned()),
            ("container_ids".to_owned(), "c1,c2".to_owned()),
        ]),
    );
    details.add_precondition_failure_violation("CONTAINER", "c1", "uses the image");
    details.add_precondition_failure_violation("CONTAINER", "c2", "uses the image");
    let st = tonic::Status::with_error_details(
        Code::FailedPrecondition,
        "image used by c1: image is in use by a container",
        details,
    );
    let err = ClientError::from(st);
    assert_eq!(err.kind, ErrorReason::ImageInUse);
    assert_eq!(err.code, Code::FailedPrecondition);
    assert_eq!(err.reason, "IMAGE_IN_USE");
    assert_eq!(
        err.message,
        "image used by c1: image is in use by a container"
    );
    assert_eq!(
        err.metadata.get("image_id").map(String::as_str),
        Some("sha256:abc")
    );
    assert_eq!(err.metadata_list("container_ids"), vec!["c1", "c2"]);
    assert_eq!(err.violations.len(), 2);
    assert_eq!(err.violations[1].kind, "CONTAINER");
    assert_eq!(err.violations[1].subject, "c2");
    assert!(err.field_violations.is_empty());
    assert!(!err.is_connection_error());
    assert_eq!(
        err.to_string(),
        "image used by c1: image is in use by a container"
    );
}

#[test]
fn invalid_filter_with_bad_request() {
    let mut details = ErrorDetails::with_error_info("INVALID_FILTER", ERROR_DOMAIN, HashMap::new());
    details.set_bad_request(vec![PbFieldViolation::new("filters[1]", "unknown key")]);
    let st =
        tonic::Status::with_error_details(Code::InvalidArgument, "invalid image filter", details);
    let err = ClientError::from_status(&st);
    assert_eq!(err.kind, ErrorReason::InvalidFilter);
    assert_eq!(
        err.field_violations.to_vec(),
        vec![FieldViolation {
            field: "filters[1]".into(),
            description: "unknown key".into()
        }]
    );
}

#[test]
fn reasons_map_to_kinds() {
    let cases = [
        (
            "IMAGE_NOT_KNOWN",
            Code::NotFound,
            ErrorReason::ImageNotKnown,
        ),
        (
            "CONTAINER_NOT_KNOWN",
            Code::NotFound,
            ErrorReason::ContainerNotKnown,
        ),
        ("TAG_NOT_KNOWN", Code::NotFound, ErrorReason::TagNotKnown),
        (
            "MULTIPLE_NAMES",
            Code::FailedPrecondition,
            ErrorReason::MultipleNames,
        ),
        (
            "CONTAINER_RUNNING",
            Code::FailedPrecondition,
            ErrorReason::ContainerRunning,
        ),
        (
            "AMBIGUOUS_REFERENCE",
            Code::FailedPrecondition,
            ErrorReason::AmbiguousReference,
        ),
        (
            "CONTAINER_EXISTS",
            Code::AlreadyExists,
            ErrorReason::ContainerExists,
        ),
        (
            "CONCURRENT_MODIFICATION",
            Code::Aborted,
            ErrorReason::ConcurrentModification,
        ),
        ("TOO_LARGE", Code::ResourceExhausted, ErrorReason::TooLarge),
        ("NO_SPACE", Code::ResourceExhausted, ErrorReason::NoSpace),
    ];
    for (reason, code, kind) in cases {
        let err = ClientError::from(status(code, "m", reason, ERROR_DOMAIN, &[]));
        assert_eq!(err.kind, kind, "{reason}");
        assert_eq!(err.kind.reason(), Some(kind));
        assert_eq!(err.code, code);
    }
}

#[test]
fn other_domain_falls_back_to_code() {
    let err = ClientError::from(status(
        Code::NotFound,
        "nope",
        "IMAGE_NOT_KNOWN",
        "example.com",
        &[("a", "b")],
    ));
    assert_eq!(err.kind, ErrorKind::Code(Code::NotFound));
    assert!(err.reason.is_empty());
    assert!(err.metadata.is_empty());
}

#[test]
fn unknown_reason_falls_back_to_code_but_keeps_reason() {
    let err = ClientError::from(status(
        Code::FailedPrecondition,
        "m",
        "SOME_FUTURE_REASON",
        ERROR_DOMAIN,
        &[],
    ));
    assert_eq!(err.kind, ErrorKind::Code(Code::FailedPrecondition));
    assert_eq!(err.reason, "SOME_FUTURE_REASON");
}

#[test]
fn plain_status_without_details() {
    for code in [
        Code::NotFound,
        Code::InvalidArgument,
        Code::Unavailable,
        Code::Unimplemented,
        Code::Cancelled,
        Code::DataLoss,
    ] {
        let err = ClientError::from(tonic::Status::new(code, "x"));
        assert_eq!(err.kind, ErrorKind::Code(code), "{code:?}");
        assert_eq!(err.kind.reason(), None);
        assert!(err.reason.is_empty());
        assert!(err.violations.is_empty());
    }
    let transport = ClientError::from(tonic::Status::unavailable("connection refused"));
    assert!(transport.is_connection_error());
}

#[test]
fn empty_message_uses_code_description() {
    let err = ClientError::from(tonic::Status::new(Code::Internal, ""));
    assert_eq!(err.kind, ErrorKind::Code(Code::Internal));
    assert!(!err.message.is_empty());
}

#[test]
fn not_found_kinds() {
    assert!(ErrorKind::Reason(ErrorReason::ImageNotKnown).is_not_found());
    assert!(ErrorKind::Reason(ErrorReason::TagNotKnown).is_not_found());
    assert!(ErrorKind::Code(Code::NotFound).is_not_found());
    assert!(!ErrorKind::Reason(ErrorReason::ImageInUse).is_not_found());
    assert!(!ErrorKind::Config.is_not_found());
}

/// A transport failure whose status says only "transport error": the causes (e.g. why
/// TLS failed) are in its source chain, and the message must carry them.
#[test]
fn transport_errors_carry_their_causes() {
    #[derive(Debug)]
    struct Cause(&'static str, Option<Box<Cause>>);
    impl std::fmt::Display for Cause {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Cause {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|c| c as _)
        }
    }
    let cause = Cause(
        "tls handshake failed",
        Some(Box::new(Cause(
            "invalid peer certificate: UnknownIssuer",
            None,
        ))),
    );
    let mut st = tonic::Status::unavailable("transport error");
    st.set_source(std::sync::Arc::new(cause));
    let err = ClientError::from(st);
    assert_eq!(
        err.message,
        "transport error: tls handshake failed: invalid peer certificate: UnknownIssuer"
    );
    assert!(err.is_connection_error());
}

#[test]
fn error_stays_small() {
    assert!(std::mem::size_of::<ClientError>() < 128);
}
