//! `imagectl rm` / `imagectl rmi`: one `RemoveImage` per reference, in the order given.

use imaged_client::{Client, ClientError, proto};

use crate::args::{Policy, RmArgs};
use crate::exit::{self, Failure, Report};
use crate::output::human::bare_id;

/// Removes the references one after another and reports like `podman rmi`.
pub(crate) async fn run(client: &Client, args: &RmArgs) -> Result<Report, Failure> {
    if args.refs.is_empty() {
        return Err(Failure::new("image name or ID must be specified"));
    }
    let policy = match args.policy {
        Policy::Podman => proto::RemovalPolicy::Podman,
        Policy::Docker => proto::RemovalPolicy::Docker,
    };
    let mut results = Vec::with_capacity(args.refs.len());
    for reference in &args.refs {
        let req = proto::RemoveImageRequest {
            reference: reference.clone(),
            force: args.force,
            no_prune: args.no_prune,
            // podman: --force implies --ignore.
            ignore_missing: args.ignore || args.force,
            policy: policy as i32,
            dry_run: args.dry_run,
        };
        let result = client.remove_image(req).await;
        if let Err(err) = &result
            && err.is_connection_error()
        {
            // Every further reference would fail the same way.
            return Err(Failure::from_client(client.url(), err));
        }
        results.push(result);
    }
    Ok(render(&results))
}

/// podman's output: every `Untagged: <name>` line, then every `Deleted: <64 hex>` line,
/// then the errors; the exit code from [`exit::removal_code`].
pub(crate) fn render(results: &[Result<proto::RemoveImageResponse, ClientError>]) -> Report {
    let mut untagged = String::new();
    let mut deleted = String::new();
    let mut errors = Vec::new();
    let mut kinds = Vec::new();
    for result in results {
        match result {
            Ok(resp) => {
                for record in &resp.records {
                    match &record.record {
                        Some(proto::removal_record::Record::Untagged(name)) => {
                            untagged.push_str(&format!("Untagged: {name}\n"));
                        }
                        Some(proto::removal_record::Record::Deleted(id)) => {
                            deleted.push_str(&format!("Deleted: {}\n", bare_id(id)));
                        }
                        None => {}
                    }
                }
            }
            Err(err) => {
                errors.push(err.message.clone());
                kinds.push(err.kind);
            }
        }
    }
    Report {
        stdout: untagged + &deleted,
        errors,
        code: exit::removal_code(&kinds),
    }
}

#[cfg(test)]
mod tests {
    use imaged_client::{Code, ErrorReason};
    use proto::removal_record::Record;

    use super::*;

    fn resp(records: &[Record]) -> Result<proto::RemoveImageResponse, ClientError> {
        Ok(proto::RemoveImageResponse {
            records: records
                .iter()
                .map(|r| proto::RemovalRecord {
                    record: Some(r.clone()),
                })
                .collect(),
            ..Default::default()
        })
    }

    fn err(
        kind: ErrorReason,
        code: Code,
        msg: &str,
    ) -> Result<proto::RemoveImageResponse, ClientError> {
        Err(ClientError::local(kind, code, msg))
    }

    #[test]
    fn untagged_lines_first_then_deleted() {
        let id1 = format!("sha256:{}", "1".repeat(64));
        let id2 = format!("sha256:{}", "2".repeat(64));
        let results = vec![
            resp(&[
                Record::Untagged("localhost/a:1".into()),
                Record::Deleted(id1.clone()),
                Record::Deleted(id2.clone()),
            ]),
            resp(&[Record::Untagged("quay.io/b:2".into())]),
        ];
        let report = render(&results);
        assert_eq!(
            report.stdout,
            format!(
                "Untagged: localhost/a:1\nUntagged: quay.io/b:2\nDeleted: {}\nDeleted: {}\n",
                "1".repeat(64),
                "2".repeat(64)
            )
        );
        assert!(report.errors.is_empty());
        assert_eq!(report.code, 0);
    }

    #[test]
    fn failures_decide_the_exit_code() {
        let not_known = || {
            err(
                ErrorReason::ImageNotKnown,
                Code::NotFound,
                "x: image not known",
            )
        };
        let report = render(&[
            not_known(),
            resp(&[Record::Untagged("a:1".into())]),
            not_known(),
        ]);
        assert_eq!(report.code, 1);
        assert_eq!(
            report.errors,
            vec!["x: image not known", "x: image not known"]
        );
        assert_eq!(report.stdout, "Untagged: a:1\n");

        let in_use = err(
            ErrorReason::ImageInUse,
            Code::FailedPrecondition,
            "image used by c",
        );
        assert_eq!(render(&[not_known(), in_use]).code, 2);

        let multi = err(
            ErrorReason::MultipleNames,
            Code::FailedPrecondition,
            "please force removal",
        );
        assert_eq!(render(&[not_known(), multi]).code, 125);
    }

    #[tokio::test]
    async fn no_refs_is_podmans_error_before_any_connection() {
        let args = RmArgs {
            force: false,
            ignore: false,
            no_prune: false,
            policy: Policy::Podman,
            dry_run: false,
            refs: Vec::new(),
        };
        // No daemon is needed: the check happens first. A client on a lazy channel to
        // nowhere would fail any call, so an Ok here would prove nothing was sent.
        let channel = tonic_free_channel();
        let client = Client::from_channel(channel, None, "unix:///nonexistent").unwrap();
        let failure = run(&client, &args).await.unwrap_err();
        assert_eq!(failure.code, 125);
        assert_eq!(failure.message, "image name or ID must be specified");
    }

    fn tonic_free_channel() -> imaged_client::Channel {
        imaged_client::Channel::from_static("http://127.0.0.1:1").connect_lazy()
    }
}
