//! Property tests of the reference and filter parsers: no panic on any input, exact
//! round trips, idempotent normalisation, errors that point at the right field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use imaged_core::Digest;
use imaged_core::error::ErrorKind;
use imaged_core::filter::{self, until};
use imaged_core::reference::{Reference, normalize_docker_name, normalize_tag_name};
use proptest::prelude::*;

fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,4}((\\.|_|__|-{1,3})[a-z0-9]{1,4}){0,2}"
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("localhost".to_owned()),
        "[a-z0-9]{1,5}\\.[a-z]{2,3}",
        "[a-z0-9]{1,5}(\\.[a-z0-9]{1,3})?:[0-9]{1,5}",
        "[A-Z][a-z]{1,4}",
    ]
}

prop_compose! {
    fn reference()(
        domain in proptest::option::of(domain()),
        path in proptest::collection::vec(component(), 1..4),
        tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        digest in proptest::option::of(any::<[u8; 32]>()),
    ) -> Reference {
        let mut path = path;
        if domain.is_none() && path.len() > 1 {
            // Without a domain, a first component followed by others must not look like one.
            path[0] = path[0].replace('.', "_");
        }
        let path = path.join("/");
        Reference { domain, path, tag, digest: digest.map(Digest::from_bytes) }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parse_format_round_trips(r in reference()) {
        let s = r.to_string();
        prop_assert_eq!(Reference::parse(&s), Ok(r));
    }

    #[test]
    fn successful_parses_reproduce_their_input(s in "[a-zA-Z0-9:/@._\\-\\[\\]]{0,40}") {
        if let Ok(r) = Reference::parse(&s) {
            prop_assert_eq!(r.to_string(), s);
        }
    }

    #[test]
    fn parsers_never_panic(s in any::<String>()) {
        let _ = Reference::parse(&s);
        let _ = normalize_docker_name(&s);
        let _ = normalize_tag_name(&s);
        let _ = until::parse_time(&s, 0);
        let _ = filter::parse(&[s.clone(), format!("label={s}"), format!("until={s}")], "filters");
    }

    #[test]
    fn normalisation_is_idempotent(r in reference()) {
        let s = Reference { digest: None, ..r }.to_string();
        if let Ok(n) = normalize_tag_name(&s) {
            prop_assert_eq!(normalize_tag_name(&n).ok(), Some(n.clone()));
            let parsed = Reference::parse(&n).unwrap();
            prop_assert!(parsed.domain.is_some() && parsed.tag.is_some());
        }
        if let Ok(n) = normalize_docker_name(&s) {
            prop_assert_eq!(normalize_docker_name(&n).ok(), Some(n.clone()));
        }
    }

    #[test]
    fn filter_errors_name_their_field(
        good in proptest::collection::vec(
            prop_oneof![
                Just("dangling=true".to_owned()),
                Just("label=a=b".to_owned()),
                "reference=[a-z*]{1,8}",
                "id=[0-9a-f]{1,12}",
                "until=[0-9]{1,9}",
                "unused-since!?=[0-9]{1,9}",
            ],
            0..4,
        ),
        bad in prop_oneof![
            "[a-z]{1,8}",
            "nokey[a-z]{0,4}=1",
            "dangling=[a-z]{2,6}",
            "containers=[a-z]{6,9}x",
        ],
    ) {
        let mut filters = good.clone();
        filters.push(bad);
        let i = filters.len() - 1;
        prop_assert!(filter::parse(&good, "filters").is_ok());
        let e = filter::parse(&filters, "filters").unwrap_err();
        prop_assert_eq!(e.kind, ErrorKind::InvalidFilter);
        prop_assert_eq!(&e.field_violations[0].field, &format!("filters[{i}]"));
    }
}
