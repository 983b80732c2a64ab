//! `imagectl gc`: runs the daemon's GC policy once (RunGc) and shows the plan: one row
//! per chosen image, then what crossed which limit, what was (or would be) freed, and
//! what held the rest back when the plan falls short. `imagectl gc policy` is in
//! [`super::gc_policy`].
//!
//! ```text
//! IMAGE ID      REPOSITORY:TAG   WHY                  LAST USED    FREED
//! 0123456789ab  localhost/app:1  unused 31d2h         4 weeks ago  12.3 MB
//! 89abcdef0123  <none>           least recently used  2 hours ago  1.2 GB
//! disk 91% used ≥ high 85%: free 1.5 GB to reach low 80%
//! freed 1.21 GB (2 images)
//! not reached (290 MB short): 1 image in use (1.1 GB), 2 images too young (300 MB)
//! ```

use imaged_client::{Client, proto};

use crate::args::{Format, GcArgs, GcCommand};
use crate::exit::{self, Failure, Report};
use crate::output::human::{ago, bare_id, now_seconds, podman_size, short_duration, short_id};
use crate::output::{json, table};

use super::gc_policy;

/// `gc` (a run) or `gc policy`.
pub(crate) async fn run(client: &Client, args: &GcArgs) -> Result<Report, Failure> {
    if let Some(GcCommand::Policy(p)) = &args.command {
        return gc_policy::run(client, p).await;
    }
    let resp = client
        .run_gc(args.dry_run)
        .await
        .map_err(|e| Failure::from_client(client.url(), &e))?;
    let stdout = match args.format {
        Format::Json => json::pretty(&json::gc_run(&resp, args.dry_run)),
        Format::Table => render(&resp, args.dry_run, now_seconds()),
    };
    Ok(with_errors(stdout, &resp))
}

/// The report of a run: `stdout`, then the per-image failures of its result on standard
/// error (`Error: <id>: <message>`), exit code 125 when there is one (as `prune`).
pub(crate) fn with_errors(stdout: String, resp: &proto::RunGcResponse) -> Report {
    let errors: Vec<String> = resp
        .result
        .iter()
        .flat_map(|r| &r.errors)
        .map(|e| format!("{}: {}", bare_id(&e.image_id), e.message))
        .collect();
    let code = if errors.is_empty() {
        exit::OK
    } else {
        exit::FAILURE
    };
    Report {
        stdout,
        errors,
        code,
    }
}

/// The table of chosen images (podman's alignment), then the summary lines.
pub(crate) fn render(resp: &proto::RunGcResponse, dry_run: bool, now: f64) -> String {
    let rows: Vec<Vec<String>> = resp
        .chosen
        .iter()
        .map(|c| {
            vec![
                short_id(&c.image_id).to_owned(),
                c.names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "<none>".to_owned()),
                why(c),
                ago(c.last_used.as_ref(), now),
                podman_size(c.bytes_freed),
            ]
        })
        .collect();
    let mut out = table::render(
        table::PODMAN,
        &["IMAGE ID", "REPOSITORY:TAG", "WHY", "LAST USED", "FREED"],
        &rows,
    );
    for line in summary(resp, dry_run) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The WHY column: `unused 3d4h` (how long not used) or `least recently used`.
pub(crate) fn why(c: &proto::GcChoice) -> String {
    match proto::GcReason::try_from(c.reason) {
        Ok(proto::GcReason::Unused) => match &c.unused_for {
            Some(d) => format!("unused {}", short_duration(d)),
            None => "unused".to_owned(),
        },
        Ok(proto::GcReason::Space) => "least recently used".to_owned(),
        _ => "unknown".to_owned(),
    }
}

/// The lines after the table: one per crossed limit, the total freed (`would free` for a
/// dry run), and `not reached …` when the plan cannot free what the limits ask for.
pub(crate) fn summary(resp: &proto::RunGcResponse, dry_run: bool) -> Vec<String> {
    let mut lines: Vec<String> = resp
        .triggers
        .iter()
        .filter_map(|t| t.limit.as_ref())
        .map(|t| trigger(t, resp.fs_capacity_bytes))
        .collect();
    lines.push(if dry_run {
        format!(
            "would free {} ({})",
            podman_size(resp.planned_bytes),
            images(resp.chosen.len() as u64)
        )
    } else {
        let (bytes, n) = resp.result.as_ref().map_or((0, 0), |r| {
            (r.reclaimed_bytes, r.deleted_images.len() as u64)
        });
        format!("freed {} ({})", podman_size(bytes), images(n))
    });
    if !resp.reached {
        let short = podman_size(resp.need_bytes.saturating_sub(resp.planned_bytes));
        let held: Vec<String> = resp
            .blocked
            .iter()
            .map(|b| {
                format!(
                    "{} {} ({})",
                    images(b.images),
                    blocker(b.reason),
                    podman_size(b.bytes)
                )
            })
            .collect();
        let held = if held.is_empty() {
            "no other image can go".to_owned()
        } else {
            held.join(", ")
        };
        lines.push(format!("not reached ({short} short): {held}"));
    }
    lines
}

/// `1 image`, `3 images`.
fn images(n: u64) -> String {
    if n == 1 {
        "1 image".to_owned()
    } else {
        format!("{n} images")
    }
}

/// What a blocker says after the number of images.
pub(crate) fn blocker(reason: i32) -> &'static str {
    match proto::GcBlocker::try_from(reason) {
        Ok(proto::GcBlocker::InUse) => "in use",
        Ok(proto::GcBlocker::Pinned) => "pinned",
        Ok(proto::GcBlocker::ReadOnly) => "read-only",
        Ok(proto::GcBlocker::Kept) => "kept by keep_tags",
        Ok(proto::GcBlocker::TooYoung) => "too young",
        Ok(proto::GcBlocker::Parent) => "parents of images that stay",
        _ => "held back",
    }
}

/// A crossed limit: `disk 91% used ≥ high 85%: free 1.2 GB to reach low 80%` or
/// `store 3.1 GB > budget 2 GB: free 1.1 GB`.
fn trigger(t: &proto::gc_trigger::Limit, capacity: u64) -> String {
    match t {
        proto::gc_trigger::Limit::Disk(d) => {
            let share = |bytes: u64| {
                if capacity == 0 {
                    podman_size(bytes)
                } else {
                    // Rounded to the nearest percent.
                    let pct =
                        (u128::from(bytes) * 100 + u128::from(capacity) / 2) / u128::from(capacity);
                    format!("{pct}%")
                }
            };
            format!(
                "disk {} used ≥ high {}: free {} to reach low {}",
                share(d.used_bytes),
                share(d.high_bytes),
                podman_size(d.used_bytes.saturating_sub(d.low_bytes)),
                share(d.low_bytes)
            )
        }
        proto::gc_trigger::Limit::Budget(b) => format!(
            "store {} > budget {}: free {}",
            podman_size(b.store_bytes),
            podman_size(b.budget_bytes),
            podman_size(b.store_bytes.saturating_sub(b.budget_bytes))
        ),
    }
}

#[cfg(test)]
mod tests {
    use imaged_client::{Duration, Timestamp};
    use serde_json::json;

    use super::*;

    const NOW: f64 = 1_000_000.0;

    fn id(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn choice(c: char, names: &[&str], reason: proto::GcReason, unused_s: i64) -> proto::GcChoice {
        proto::GcChoice {
            image_id: id(c),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            reason: reason as i32,
            bytes_freed: 1_234_567,
            last_used: Some(Timestamp {
                seconds: 1_000_000 - unused_s,
                nanos: 0,
            }),
            unused_for: (reason == proto::GcReason::Unused).then_some(Duration {
                seconds: unused_s,
                nanos: 0,
            }),
        }
    }

    fn run_with(chosen: Vec<proto::GcChoice>) -> proto::RunGcResponse {
        proto::RunGcResponse {
            planned_bytes: chosen.iter().map(|c| c.bytes_freed).sum(),
            reached: true,
            result: Some(proto::PruneImagesResponse {
                deleted_images: chosen.iter().map(|c| c.image_id.clone()).collect(),
                reclaimed_bytes: chosen.iter().map(|c| c.bytes_freed).sum(),
                ..Default::default()
            }),
            chosen,
            ..Default::default()
        }
    }

    #[test]
    fn table_of_chosen_images() {
        let resp = run_with(vec![
            choice(
                'a',
                &["localhost/app:1", "localhost/app:latest"],
                proto::GcReason::Unused,
                3 * 86400 + 4 * 3600 + 59,
            ),
            choice('b', &[], proto::GcReason::Space, 2 * 3600),
        ]);
        let want = "\
IMAGE ID      REPOSITORY:TAG   WHY                  LAST USED    FREED
aaaaaaaaaaaa  localhost/app:1  unused 3d4h          3 days ago   1.23 MB
bbbbbbbbbbbb  <none>           least recently used  2 hours ago  1.23 MB
freed 2.47 MB (2 images)
";
        assert_eq!(render(&resp, false, NOW), want);
        // A dry run says what it would free: the plan's bytes and choices.
        let mut dry = resp.clone();
        dry.result = Some(proto::PruneImagesResponse::default());
        assert!(render(&dry, true, NOW).ends_with("\nwould free 2.47 MB (2 images)\n"));
        // Nothing chosen: the header and the total.
        assert_eq!(
            render(&run_with(Vec::new()), true, NOW),
            "IMAGE ID    REPOSITORY:TAG  WHY         LAST USED   FREED\nwould free 0 B (0 images)\n"
        );
    }

    #[test]
    fn why_column() {
        let mut c = choice('a', &[], proto::GcReason::Unused, 45);
        assert_eq!(why(&c), "unused 45s");
        c.unused_for = Some(Duration {
            seconds: 0,
            nanos: 2_000_000,
        });
        assert_eq!(why(&c), "unused 2ms");
        c.unused_for = None;
        assert_eq!(why(&c), "unused");
        c.reason = proto::GcReason::Space as i32;
        assert_eq!(why(&c), "least recently used");
        c.reason = 42;
        assert_eq!(why(&c), "unknown");
    }

    #[test]
    fn summary_names_the_limits_and_what_blocked() {
        let resp = proto::RunGcResponse {
            chosen: vec![choice('a', &[], proto::GcReason::Space, 60)],
            triggers: vec![
                proto::GcTrigger {
                    limit: Some(proto::gc_trigger::Limit::Disk(proto::GcDiskTrigger {
                        used_bytes: 91_000_000_000,
                        high_bytes: 85_000_000_000,
                        low_bytes: 80_000_000_000,
                    })),
                },
                proto::GcTrigger {
                    limit: Some(proto::gc_trigger::Limit::Budget(proto::GcBudgetTrigger {
                        store_bytes: 3_100_000_000,
                        budget_bytes: 2_000_000_000,
                    })),
                },
            ],
            need_bytes: 11_000_000_000,
            planned_bytes: 1_234_567,
            reached: false,
            blocked: vec![
                proto::GcBlocked {
                    reason: proto::GcBlocker::InUse as i32,
                    images: 3,
                    bytes: 1_100_000_000,
                },
                proto::GcBlocked {
                    reason: proto::GcBlocker::TooYoung as i32,
                    images: 1,
                    bytes: 300_000_000,
                },
            ],
            fs_capacity_bytes: 100_000_000_000,
            ..Default::default()
        };
        assert_eq!(
            summary(&resp, true),
            [
                "disk 91% used ≥ high 85%: free 11 GB to reach low 80%",
                "store 3.1 GB > budget 2 GB: free 1.1 GB",
                "would free 1.23 MB (1 image)",
                "not reached (11 GB short): 3 images in use (1.1 GB), 1 image too young (300 MB)",
            ]
        );
        // Nothing blocked, still short (shared blobs).
        let resp = proto::RunGcResponse {
            need_bytes: 10,
            reached: false,
            ..Default::default()
        };
        assert_eq!(
            summary(&resp, false),
            [
                "freed 0 B (0 images)",
                "not reached (10 B short): no other image can go"
            ]
        );
        for (b, text) in [
            (proto::GcBlocker::Pinned, "pinned"),
            (proto::GcBlocker::ReadOnly, "read-only"),
            (proto::GcBlocker::Kept, "kept by keep_tags"),
            (proto::GcBlocker::Parent, "parents of images that stay"),
            (proto::GcBlocker::Unspecified, "held back"),
        ] {
            assert_eq!(blocker(b as i32), text);
        }
    }

    #[test]
    fn failures_go_to_stderr_with_exit_125() {
        let mut resp = run_with(vec![choice('a', &[], proto::GcReason::Space, 1)]);
        let report = with_errors("out".to_owned(), &resp);
        assert_eq!(report, Report::ok("out".to_owned()));
        if let Some(r) = resp.result.as_mut() {
            r.errors.push(proto::PruneError {
                image_id: id('c'),
                code: 9,
                reason: "IMAGE_IN_USE".into(),
                message: "image is in use by a container: 1234".into(),
            });
        }
        let report = with_errors(String::new(), &resp);
        assert_eq!(
            report.errors,
            [format!(
                "{}: image is in use by a container: 1234",
                "c".repeat(64)
            )]
        );
        assert_eq!(report.code, 125);
    }

    #[test]
    fn json_has_every_field_and_exact_bytes() {
        let mut resp = run_with(vec![choice(
            'a',
            &["localhost/app:1"],
            proto::GcReason::Unused,
            90,
        )]);
        resp.triggers.push(proto::GcTrigger {
            limit: Some(proto::gc_trigger::Limit::Budget(proto::GcBudgetTrigger {
                store_bytes: 5,
                budget_bytes: 4,
            })),
        });
        resp.blocked.push(proto::GcBlocked {
            reason: proto::GcBlocker::InUse as i32,
            images: 1,
            bytes: 7,
        });
        resp.store_bytes = 5;
        let v = json::gc_run(&resp, false);
        // It survives a round trip through text.
        let v: serde_json::Value = serde_json::from_str(&json::pretty(&v)).unwrap();
        assert_eq!(v["DryRun"], json!(false));
        assert_eq!(
            v["Chosen"][0],
            json!({
                "ImageId": "a".repeat(64),
                "Names": ["localhost/app:1"],
                "Reason": "unused",
                "BytesFreed": 1_234_567,
                "LastUsed": "1970-01-12T13:45:10Z",
                "UnusedFor": 90_000_000_000_u64,
            })
        );
        assert_eq!(
            v["Triggers"],
            json!([{"Budget": {"StoreBytes": 5, "BudgetBytes": 4}}])
        );
        assert_eq!(
            v["Blocked"],
            json!([{"Reason": "in_use", "Images": 1, "Bytes": 7}])
        );
        assert_eq!(v["PlannedBytes"], json!(1_234_567));
        assert_eq!(v["Reached"], json!(true));
        assert_eq!(v["StoreBytes"], json!(5));
        assert_eq!(v["Result"]["DeletedImages"], json!(["a".repeat(64)]));
        assert_eq!(v["Result"]["ReclaimedBytes"], json!(1_234_567));
        assert_eq!(v["Result"]["Errors"], json!([]));
        // A space choice has no unused time.
        let resp = run_with(vec![choice('b', &[], proto::GcReason::Space, 1)]);
        let v = json::gc_run(&resp, true);
        assert_eq!(v["Chosen"][0]["Reason"], json!("space"));
        assert_eq!(v["Chosen"][0]["UnusedFor"], serde_json::Value::Null);
        assert_eq!(v["DryRun"], json!(true));
    }
}
