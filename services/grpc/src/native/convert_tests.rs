//! Tests of `convert`.

use super::*;
use imaged_core::Digest;

#[test]
fn timestamps_handle_negative_and_fractional_times() {
    assert_eq!(
        timestamp(0),
        Timestamp {
            seconds: 0,
            nanos: 0
        }
    );
    assert_eq!(
        timestamp(1_500_000_000),
        Timestamp {
            seconds: 1,
            nanos: 500_000_000
        }
    );
    assert_eq!(
        timestamp(-1),
        Timestamp {
            seconds: -1,
            nanos: 999_999_999
        }
    );
    assert_eq!(opt_timestamp(None), None);
}

#[test]
fn enums_default_and_reject_unknown_values() {
    assert_eq!(order(0), Ok(Order::Created));
    assert_eq!(order(pb::ImageOrder::Size as i32), Ok(Order::Size));
    assert_eq!(policy(0), Ok(Policy::Podman));
    assert_eq!(policy(2), Ok(Policy::Docker));
    assert_eq!(archive_format(0), Ok(ArchiveFormat::Auto));
    assert_eq!(archive_format(2), Ok(ArchiveFormat::Oci));
    let err = policy(9).expect_err("bad enum");
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert_eq!(err.field_violations[0].field, "policy");
    assert_eq!(status::to_status(&err).code(), tonic::Code::InvalidArgument);
    assert!(order(-1).is_err());
    assert!(archive_format(3).is_err());
}

#[test]
fn container_states() {
    assert_eq!(
        container_state_in("s", 0, Some(ContainerState::Created)),
        Ok(ContainerState::Created)
    );
    assert_eq!(
        container_state_in("s", 2, None),
        Ok(ContainerState::Running)
    );
    let err = container_state_in("state", 0, None).expect_err("required");
    assert_eq!(err.field_violations[0].field, "state");
    assert!(container_state_in("state", 7, None).is_err());
    for s in [
        ContainerState::Created,
        ContainerState::Running,
        ContainerState::Stopped,
    ] {
        assert_eq!(
            container_state_in("s", container_state_out(s) as i32, None),
            Ok(s)
        );
    }
}

#[test]
fn register_defaults() {
    let r = register_container(pb::RegisterContainerRequest {
        image: "busybox".into(),
        ..Default::default()
    })
    .expect("valid");
    assert_eq!(r.id, None);
    assert_eq!(r.state, ContainerState::Created);
    let r = register_container(pb::RegisterContainerRequest {
        id: "ab".into(),
        state: 3,
        ..Default::default()
    })
    .expect("valid");
    assert_eq!(
        (r.id.as_deref(), r.state),
        (Some("ab"), ContainerState::Stopped)
    );
}

#[test]
fn event_type_filter() {
    assert_eq!(event_types(&[]), Ok(vec![]));
    assert_eq!(
        event_types(&[1, 4]),
        Ok(vec![pb::EventType::Load, pb::EventType::Delete])
    );
    let err = event_types(&[1, 0]).expect_err("unspecified");
    assert_eq!(err.field_violations[0].field, "types[1]");
    assert!(event_types(&[42]).is_err());
}

#[test]
fn records_and_prune_errors() {
    let id = Digest::of(b"cfg");
    let r = remove_report(ops::RemoveReport {
        records: vec![
            ops::Record::Untagged("localhost/a:1".into()),
            ops::Record::Deleted(id),
        ],
        removed_containers: vec!["c1".into()],
        reclaimed_bytes: 42,
    });
    use pb::removal_record::Record;
    let got: Vec<_> = r.records.into_iter().filter_map(|r| r.record).collect();
    assert_eq!(
        got,
        [
            Record::Untagged("localhost/a:1".into()),
            Record::Deleted(id.to_string())
        ]
    );
    assert_eq!(r.reclaimed_bytes, 42);

    let p = prune_report(ops::PruneReport {
        errors: vec![
            ops::PruneFailure {
                image_id: id,
                error: Error::new(ErrorKind::ImageInUse, "in use"),
            },
            ops::PruneFailure {
                image_id: id,
                error: Error::internal("secret path"),
            },
        ],
        ..Default::default()
    });
    assert_eq!(p.errors[0].code, tonic::Code::FailedPrecondition as i32);
    assert_eq!(p.errors[0].reason, "IMAGE_IN_USE");
    assert_eq!(p.errors[0].message, "in use");
    assert_eq!(p.errors[1].code, tonic::Code::Internal as i32);
    assert_eq!(p.errors[1].message, status::INTERNAL_MESSAGE);
}

#[test]
fn events() {
    let id = Digest::of(b"x");
    let e = event(&ops::Event {
        kind: ops::EventKind::Untag,
        image_id: Some(id),
        name: "localhost/x:latest".into(),
        time: 2_000_000_001,
        reclaimed_bytes: 0,
    });
    assert_eq!(e.r#type, pb::EventType::Untag as i32);
    assert_eq!(e.image_id, id.to_string());
    assert_eq!(
        e.time,
        Some(Timestamp {
            seconds: 2,
            nanos: 1
        })
    );
    let l = lagged(5);
    assert_eq!((l.r#type, l.dropped), (pb::EventType::Lagged as i32, 5));
}
