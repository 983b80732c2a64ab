//! The reference grammar and normalisation (SPEC §2).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test assertions

use imaged_core::reference::*;
use imaged_core::{Digest, ErrorKind};

fn p(s: &str) -> Result<Reference, RefError> {
    Reference::parse(s)
}

#[test]
fn parses_the_grammar() {
    let r = p("quay.io/libpod/alpine:3.19").unwrap();
    assert_eq!(r.domain.as_deref(), Some("quay.io"));
    assert_eq!(r.path, "libpod/alpine");
    assert_eq!(r.tag.as_deref(), Some("3.19"));
    let r = p("localhost:5000/a/b").unwrap();
    assert_eq!(r.domain.as_deref(), Some("localhost:5000"));
    assert_eq!(r.tag, None);
    let r = p("foo/bar").unwrap();
    assert_eq!(r.domain, None);
    assert_eq!(r.path, "foo/bar");
    let d = Digest::of(b"x");
    let r = p(&format!("busybox:1@{d}")).unwrap();
    assert_eq!((r.tag.as_deref(), r.digest), (Some("1"), Some(d)));
    assert!(p("[::1]:5000/x").is_ok());
    assert!(p("a__b/c-d--e.f_g").is_ok());
}

#[test]
fn reports_distribution_errors() {
    assert_eq!(p(""), Err(RefError::Empty));
    assert_eq!(p("upperCase"), Err(RefError::Uppercase));
    assert_eq!(p("Foo/Bar"), Err(RefError::Uppercase));
    assert_eq!(p("registry.com/$invalid"), Err(RefError::Format));
    assert_eq!(p("a//b"), Err(RefError::Format));
    assert_eq!(p("a:"), Err(RefError::Format));
    assert_eq!(p("-a"), Err(RefError::Format));
    assert_eq!(
        p("a@sha512:0123456789abcdef0123456789abcdef"),
        Err(RefError::DigestAlgorithm)
    );
    assert_eq!(
        p("a@sha256:0123456789abcdef0123456789abcdef"),
        Err(RefError::DigestLength)
    );
    assert_eq!(p(&"a".repeat(256)), Err(RefError::TooLong));
    assert!(
        p("Foo/bar").is_ok(),
        "an upper-case first component is a domain"
    );
}

#[test]
fn round_trips() {
    for s in [
        "a",
        "a/b:c",
        "docker.io/library/x@sha256:",
        "[::1]/x:y",
        "Foo/bar",
    ] {
        let s = if s.ends_with("sha256:") {
            format!("{s}{}", "a".repeat(64))
        } else {
            s.into()
        };
        let r = p(&s).unwrap();
        assert_eq!(r.to_string(), s);
        assert_eq!(p(&r.to_string()), Ok(r));
    }
}

#[test]
fn normalises_names() {
    assert_eq!(
        normalize_docker_name("busybox").unwrap(),
        "docker.io/library/busybox:latest"
    );
    assert_eq!(
        normalize_docker_name("foo/bar:1").unwrap(),
        "docker.io/foo/bar:1"
    );
    assert_eq!(
        normalize_docker_name("quay.io/x").unwrap(),
        "quay.io/x:latest"
    );
    assert_eq!(normalize_tag_name("foo").unwrap(), "localhost/foo:latest");
    assert_eq!(
        normalize_tag_name("foo/bar").unwrap(),
        "localhost/foo/bar:latest"
    );
    assert_eq!(
        normalize_tag_name("docker.io/foo").unwrap(),
        "docker.io/library/foo:latest"
    );
    assert_eq!(
        normalize_tag_name("quay.io/bar/foo:tag").unwrap(),
        "quay.io/bar/foo:tag"
    );
    let d = Digest::of(b"x");
    for bad in [format!("{d}"), format!("foo@{d}")] {
        let e = normalize_tag_name(&bad).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(
            e.message.ends_with("tag by digest not supported"),
            "{}",
            e.message
        );
    }
    for bad in ["", "registry.com/$invalid", "upperCase"] {
        assert!(normalize_tag_name(bad).is_err(), "{bad}");
    }
    let long = format!("{}/{}", "a".repeat(125), "b".repeat(125));
    assert!(Reference::parse(&long).is_ok());
    let e = normalize_tag_name(&long).unwrap_err();
    assert!(
        e.message.contains("must not be more than 255 characters"),
        "{}",
        e.message
    );
    let e = normalize_tag_name(&"a".repeat(64)).unwrap_err();
    assert!(e.message.contains("64-byte hexadecimal"));
    assert_eq!(
        normalize_name(&format!("x:1@{d}")).unwrap().to_string(),
        format!("localhost/x@{d}")
    );
}

#[test]
fn splits_stored_names() {
    assert_eq!(
        split_stored("localhost:5000/a:b"),
        ("localhost:5000/a", Some("b"), None)
    );
    assert_eq!(
        split_stored("localhost:5000/a"),
        ("localhost:5000/a", None, None)
    );
    assert_eq!(
        split_stored("q.io/a@sha256:ab"),
        ("q.io/a", None, Some("sha256:ab"))
    );
}
