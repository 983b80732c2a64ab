//! `imagectl ls` / `imagectl images`.

use std::cmp::Ordering;
use std::collections::HashSet;

use imaged_client::{Client, proto};

use crate::args::{ListFormat, LsArgs, SortKey};
use crate::exit::{Failure, Report};
use crate::output::human::{ago, bare_id, now_seconds, podman_size, short_id};
use crate::output::{json, table};

/// Lists every page and renders it.
pub(crate) async fn run(client: &Client, args: &LsArgs) -> Result<Report, Failure> {
    let mut filters = args.filters.clone();
    if let Some(reference) = &args.reference {
        filters.push(format!("reference={reference}"));
    }
    let req = proto::ListImagesRequest {
        filters,
        all: args.all,
        order: server_order(args.sort) as i32,
        ..Default::default()
    };
    let images = client
        .list_all(req)
        .await
        .map_err(|e| Failure::from_client(client.url(), &e))?;
    Ok(Report::ok(render(&images, args, now_seconds())))
}

fn server_order(key: SortKey) -> proto::ImageOrder {
    match key {
        SortKey::Created => proto::ImageOrder::Created,
        SortKey::Id => proto::ImageOrder::Id,
        SortKey::Size => proto::ImageOrder::Size,
        SortKey::Name | SortKey::Repository | SortKey::Tag => proto::ImageOrder::Name,
    }
}

/// One table row: one tagged name of an image, or `<none>` for an image without tags.
#[derive(Debug)]
struct Row<'a> {
    repository: String,
    tag: String,
    image: &'a proto::Image,
}

/// Splits `domain/path:tag` into repository and tag (`<none>` without a tag).
pub(crate) fn split_repo_tag(name: &str) -> (String, String) {
    let name = name.split_once('@').map_or(name, |(repo, _)| repo);
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (
            name[..slash + i].to_owned(),
            name[slash + i + 1..].to_owned(),
        ),
        None => (name.to_owned(), "<none>".to_owned()),
    }
}

fn rows(images: &[proto::Image]) -> Vec<Row<'_>> {
    let mut rows = Vec::new();
    for image in images {
        if image.repo_tags.is_empty() {
            rows.push(Row {
                repository: "<none>".into(),
                tag: "<none>".into(),
                image,
            });
        }
        for name in &image.repo_tags {
            let (repository, tag) = split_repo_tag(name);
            rows.push(Row {
                repository,
                tag,
                image,
            });
        }
    }
    rows
}

fn created_key(image: &proto::Image) -> (i64, i32) {
    image
        .created
        .as_ref()
        .map_or((i64::MIN, 0), |t| (t.seconds, t.nanos))
}

fn compare(key: SortKey, a: &Row<'_>, b: &Row<'_>) -> Ordering {
    let by_id = || a.image.id.cmp(&b.image.id);
    match key {
        SortKey::Created => created_key(b.image)
            .cmp(&created_key(a.image))
            .then_with(by_id),
        SortKey::Id => by_id(),
        SortKey::Size => a.image.size.cmp(&b.image.size).then_with(by_id),
        SortKey::Name | SortKey::Repository => a
            .repository
            .cmp(&b.repository)
            .then_with(|| a.tag.cmp(&b.tag))
            .then_with(by_id),
        SortKey::Tag => a.tag.cmp(&b.tag).then_with(by_id),
    }
}

fn display_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        format!("sha256:{}", bare_id(id))
    } else {
        short_id(id).to_owned()
    }
}

/// Renders images in the requested format; `now` is the Unix time for CREATED.
pub(crate) fn render(images: &[proto::Image], args: &LsArgs, now: f64) -> String {
    let mut rows = rows(images);
    // Stable: rows of one image keep the image's name order.
    rows.sort_by(|a, b| compare(args.sort, a, b));
    let format = if args.quiet {
        ListFormat::Ids
    } else {
        args.format
    };
    match format {
        ListFormat::Ids => {
            let mut seen = HashSet::new();
            let mut out = String::new();
            for row in &rows {
                if seen.insert(row.image.id.as_str()) {
                    out.push_str(&display_id(&row.image.id, args.no_trunc));
                    out.push('\n');
                }
            }
            out
        }
        ListFormat::Json => {
            let mut seen = HashSet::new();
            let list: Vec<_> = rows
                .iter()
                .filter(|r| seen.insert(r.image.id.as_str()))
                .map(|r| json::image(r.image))
                .collect();
            json::pretty(&serde_json::Value::Array(list))
        }
        ListFormat::Table => {
            let mut header = vec!["REPOSITORY", "TAG"];
            if args.digests {
                header.push("DIGEST");
            }
            header.extend(["IMAGE ID", "CREATED", "SIZE"]);
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut cells = vec![r.repository.clone(), r.tag.clone()];
                    if args.digests {
                        cells.push(r.image.digest.clone());
                    }
                    cells.extend([
                        display_id(&r.image.id, args.no_trunc),
                        ago(r.image.created.as_ref(), now),
                        podman_size(r.image.size),
                    ]);
                    cells
                })
                .collect();
            let header: &[&str] = if args.noheading { &[] } else { &header };
            table::render(table::PODMAN, header, &cells)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use imaged_client::Timestamp;

    use super::*;
    use crate::args::{Cli, Command};

    fn ls(extra: &[&str]) -> LsArgs {
        let cli = Cli::try_parse_from(["imagectl", "ls"].iter().chain(extra)).unwrap();
        match cli.command {
            Command::Ls(a) => a,
            _ => unreachable!(),
        }
    }

    fn image(hex: char, tags: &[&str], created: i64, size: u64) -> proto::Image {
        proto::Image {
            id: format!("sha256:{}", hex.to_string().repeat(64)),
            repo_tags: tags.iter().map(|s| (*s).to_owned()).collect(),
            names: tags.iter().map(|s| (*s).to_owned()).collect(),
            created: Some(Timestamp {
                seconds: created,
                nanos: 0,
            }),
            size,
            ..Default::default()
        }
    }

    const NOW: f64 = 1_000_000_000.0;

    fn sample() -> Vec<proto::Image> {
        vec![
            image(
                'b',
                &["quay.io/libpod/alpine:latest", "localhost/a:1"],
                999_913_600,
                5_574_000,
            ),
            image('a', &[], 999_999_000, 892_000),
            image('c', &["localhost:5000/x/y:v2"], 900_000_000, 12),
        ]
    }

    #[test]
    fn splits_names() {
        assert_eq!(
            split_repo_tag("quay.io/a/b:1"),
            ("quay.io/a/b".into(), "1".into())
        );
        assert_eq!(
            split_repo_tag("localhost:5000/x:v"),
            ("localhost:5000/x".into(), "v".into())
        );
        assert_eq!(
            split_repo_tag("localhost:5000/x"),
            ("localhost:5000/x".into(), "<none>".into())
        );
        assert_eq!(
            split_repo_tag("docker.io/library/a:1@sha256:00"),
            ("docker.io/library/a".into(), "1".into())
        );
    }

    #[test]
    fn table_has_one_row_per_tag_newest_first() {
        let out = render(&sample(), &ls(&[]), NOW);
        let want = "\
REPOSITORY             TAG         IMAGE ID      CREATED         SIZE
<none>                 <none>      aaaaaaaaaaaa  16 minutes ago  892 kB
quay.io/libpod/alpine  latest      bbbbbbbbbbbb  24 hours ago    5.57 MB
localhost/a            1           bbbbbbbbbbbb  24 hours ago    5.57 MB
localhost:5000/x/y     v2          cccccccccccc  3 years ago     12 B
";
        assert_eq!(out, want);
    }

    #[test]
    fn ids_are_unique_and_short_unless_no_trunc() {
        let out = render(&sample(), &ls(&["--format", "ids"]), NOW);
        assert_eq!(out, "aaaaaaaaaaaa\nbbbbbbbbbbbb\ncccccccccccc\n");
        let out = render(&sample(), &ls(&["-q", "--no-trunc", "--sort", "size"]), NOW);
        let lines: Vec<_> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], format!("sha256:{}", "c".repeat(64)));
    }

    #[test]
    fn sort_by_repository_then_tag() {
        let out = render(
            &sample(),
            &ls(&["--sort", "repository", "--noheading"]),
            NOW,
        );
        let repos: Vec<_> = out
            .lines()
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            repos,
            vec![
                "<none>",
                "localhost/a",
                "localhost:5000/x/y",
                "quay.io/libpod/alpine"
            ]
        );
    }

    #[test]
    fn json_is_one_entry_per_image_with_exact_sizes() {
        let out = render(&sample(), &ls(&["--format", "json"]), NOW);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 3);
        assert_eq!(arr[1]["Size"], serde_json::json!(5_574_000));
        assert_eq!(arr[1]["RepoTags"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn digests_column() {
        let mut imgs = sample();
        imgs[0].digest = "sha256:dd".into();
        let out = render(&imgs[..1], &ls(&["--digests"]), NOW);
        assert!(out.starts_with("REPOSITORY "));
        assert!(out.lines().next().unwrap().contains("DIGEST"));
        assert!(out.lines().nth(1).unwrap().contains("sha256:dd"));
    }
}
