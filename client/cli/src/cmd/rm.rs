//! `imagectl rm` / `imagectl rmi`: one `RemoveImages` call for every reference (or for
//! `--all` / `--filter`), reported like `podman rmi`.

use imaged_client::{Client, proto};

use crate::args::{Policy, RmArgs};
use crate::exit::{Failure, Report};
use crate::output::human::bare_id;

/// Removes the references (one RPC) and reports like `podman rmi`.
pub(crate) async fn run(client: &Client, args: &RmArgs) -> Result<Report, Failure> {
    let selecting = args.all || !args.filters.is_empty();
    if args.refs.is_empty() && !selecting {
        return Err(Failure::new("image name or ID must be specified"));
    }
    if !args.refs.is_empty() && selecting {
        return Err(Failure::new(
            "when using the --all switch, you may not pass any images names or IDs",
        ));
    }
    let policy = match args.policy {
        Policy::Podman => proto::RemovalPolicy::Podman,
        Policy::Docker => proto::RemovalPolicy::Docker,
    };
    let req = proto::RemoveImagesRequest {
        references: args.refs.clone(),
        filters: args.filters.clone(),
        all: args.all,
        force: args.force,
        no_prune: args.no_prune,
        // podman: --force implies --ignore.
        ignore_missing: args.ignore || args.force,
        policy: policy as i32,
        dry_run: args.dry_run,
        // podman rmi has neither: the daemon's platform, instances by name.
        platform: None,
        lookup_manifest: false,
        // podman rmi -f removes external containers too; without -f it does not.
        external: false,
    };
    let resp = client
        .remove_images(req)
        .await
        .map_err(|e| Failure::from_client(client.url(), &e))?;
    Ok(match args.policy {
        Policy::Podman => render(&resp),
        Policy::Docker => render_docker(&resp),
    })
}

/// Calls `on_record` with every record of the successful removals, in order, and gives
/// the failed removals' messages.
fn walk(
    resp: &proto::RemoveImagesResponse,
    mut on_record: impl FnMut(&proto::removal_record::Record),
) -> Vec<String> {
    let mut errors = Vec::new();
    for result in &resp.results {
        match &result.error {
            Some(e) => errors.push(e.message.clone()),
            None => result
                .records
                .iter()
                .filter_map(|r| r.record.as_ref())
                .for_each(&mut on_record),
        }
    }
    errors
}

/// `docker rmi`'s output: the records in order, `Untagged: <familiar name>` and
/// `Deleted: sha256:<hex>`, then the errors; exit 1 when any removal failed, as the
/// Docker CLI does.
pub(crate) fn render_docker(resp: &proto::RemoveImagesResponse) -> Report {
    use proto::removal_record::Record;
    let mut stdout = String::new();
    let errors = walk(resp, |record| match record {
        Record::Untagged(name) => stdout.push_str(&format!("Untagged: {}\n", familiar(name))),
        Record::Deleted(id) | Record::DeletedLayer(id) => {
            stdout.push_str(&format!("Deleted: {id}\n"));
        }
    });
    let code = i32::from(!errors.is_empty());
    Report {
        stdout,
        errors,
        code,
    }
}

/// Docker's familiar form of a stored name: Docker Hub's `docker.io/library/` and
/// `docker.io/` prefixes dropped.
fn familiar(name: &str) -> &str {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
}

/// podman's output: every `Untagged: <name>` line, then every `Deleted: <64 hex>` line,
/// then the errors; podman's exit code as the daemon computed it.
pub(crate) fn render(resp: &proto::RemoveImagesResponse) -> Report {
    use proto::removal_record::Record;
    let mut untagged = String::new();
    let mut deleted = String::new();
    let errors = walk(resp, |record| match record {
        Record::Untagged(name) => untagged.push_str(&format!("Untagged: {name}\n")),
        Record::Deleted(id) => deleted.push_str(&format!("Deleted: {}\n", bare_id(id))),
        // podman prints no layers (the DOCKER policy alone records them).
        Record::DeletedLayer(_) => {}
    });
    Report {
        stdout: untagged + &deleted,
        errors,
        code: resp.exit_code,
    }
}

#[cfg(test)]
mod tests {
    use proto::removal_record::Record;

    use super::*;

    fn ok(records: &[Record]) -> proto::RemoveImagesResult {
        proto::RemoveImagesResult {
            records: records
                .iter()
                .map(|r| proto::RemovalRecord {
                    record: Some(r.clone()),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn failed(reason: &str, msg: &str) -> proto::RemoveImagesResult {
        proto::RemoveImagesResult {
            error: Some(proto::PruneError {
                reason: reason.into(),
                message: msg.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn untagged_lines_first_then_deleted_then_errors() {
        let id1 = format!("sha256:{}", "1".repeat(64));
        let id2 = format!("sha256:{}", "2".repeat(64));
        let resp = proto::RemoveImagesResponse {
            results: vec![
                ok(&[
                    Record::Untagged("localhost/a:1".into()),
                    Record::Deleted(id1.clone()),
                    Record::Deleted(id2.clone()),
                ]),
                failed("IMAGE_NOT_KNOWN", "x: image not known"),
                ok(&[Record::Untagged("quay.io/b:2".into())]),
            ],
            exit_code: 1,
            ..Default::default()
        };
        let report = render(&resp);
        assert_eq!(
            report.stdout,
            format!(
                "Untagged: localhost/a:1\nUntagged: quay.io/b:2\nDeleted: {}\nDeleted: {}\n",
                "1".repeat(64),
                "2".repeat(64)
            )
        );
        assert_eq!(report.errors, vec!["x: image not known"]);
        assert_eq!(report.code, 1);
    }

    #[test]
    fn docker_mode_prints_records_in_order_with_familiar_names_and_exits_1() {
        let id = format!("sha256:{}", "1".repeat(64));
        let resp = proto::RemoveImagesResponse {
            results: vec![
                ok(&[
                    Record::Untagged("docker.io/library/busybox:latest".into()),
                    Record::Deleted(id.clone()),
                ]),
                ok(&[Record::Untagged("docker.io/me/app:1".into())]),
                ok(&[Record::Untagged("localhost/a:1".into())]),
                failed("CONFLICT", "conflict: unable to delete x"),
            ],
            exit_code: 125,
            ..Default::default()
        };
        let report = render_docker(&resp);
        assert_eq!(
            report.stdout,
            format!(
                "Untagged: busybox:latest\nDeleted: {id}\nUntagged: me/app:1\nUntagged: localhost/a:1\n"
            )
        );
        assert_eq!(report.code, 1);
        assert_eq!(report.errors, ["conflict: unable to delete x"]);
    }

    fn args(refs: &[&str], all: bool) -> RmArgs {
        RmArgs {
            force: false,
            ignore: false,
            no_prune: false,
            policy: Policy::Podman,
            dry_run: false,
            all,
            filters: Vec::new(),
            refs: refs.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[tokio::test]
    async fn bad_arguments_are_podmans_errors_before_any_connection() {
        // No daemon is needed: the checks happen first. A client on a lazy channel to
        // nowhere would fail any call, so these answers prove nothing was sent.
        let channel = imaged_client::Channel::from_static("http://127.0.0.1:1").connect_lazy();
        let client = Client::from_channel(channel, None, "unix:///nonexistent").unwrap();
        let failure = run(&client, &args(&[], false)).await.unwrap_err();
        assert_eq!(failure.code, 125);
        assert_eq!(failure.message, "image name or ID must be specified");
        let failure = run(&client, &args(&["a"], true)).await.unwrap_err();
        assert_eq!(
            failure.message,
            "when using the --all switch, you may not pass any images names or IDs"
        );
    }
}
