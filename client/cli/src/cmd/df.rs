//! `imagectl df`: like `docker system df`.

use imaged_client::{Client, proto};

use crate::args::{DfArgs, Format};
use crate::exit::{Failure, Report};
use crate::output::human::{docker_size, short_id};
use crate::output::{json, table};

/// Fetches the totals (and the container records, for the ACTIVE count of containers).
pub(crate) async fn run(client: &Client, args: &DfArgs) -> Result<Report, Failure> {
    let fail = |e: imaged_client::ClientError| Failure::from_client(client.url(), &e);
    let usage = client.image_disk_usage(args.verbose).await.map_err(fail)?;
    if args.format == Format::Json {
        return Ok(Report::ok(json::pretty(&json::disk_usage(&usage))));
    }
    let containers = client.list_containers(None).await.map_err(fail)?;
    let running = containers
        .iter()
        .filter(|c| c.state == proto::ContainerState::Running as i32)
        .count();
    Ok(Report::ok(render(&usage, running, args.verbose)))
}

/// `8.5MB (70%)`: reclaimable bytes and their share of the total (Docker's rule: no
/// percentage when the total is 0).
pub(crate) fn reclaimable(reclaimable: u64, total: u64) -> String {
    if total == 0 {
        return docker_size(reclaimable);
    }
    let pct = u128::from(reclaimable) * 100 / u128::from(total);
    format!("{} ({pct}%)", docker_size(reclaimable))
}

/// The table: an Images row and a Containers row (imaged keeps no container sizes: 0B),
/// then with `verbose` one row per image.
pub(crate) fn render(du: &proto::ImageDiskUsageResponse, running: usize, verbose: bool) -> String {
    let rows = vec![
        vec![
            "Images".to_owned(),
            du.images.to_string(),
            du.active_images.to_string(),
            docker_size(du.total_bytes),
            reclaimable(du.reclaimable_bytes, du.total_bytes),
        ],
        vec![
            "Containers".to_owned(),
            du.containers.to_string(),
            running.to_string(),
            docker_size(0),
            docker_size(0),
        ],
    ];
    let mut out = table::render(
        table::DOCKER,
        &["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        &rows,
    );
    if verbose {
        out.push_str("\nImages space usage:\n\n");
        let rows: Vec<Vec<String>> = du
            .per_image
            .iter()
            .map(|u| {
                vec![
                    short_id(&u.id).to_owned(),
                    if u.names.is_empty() {
                        "<none>".to_owned()
                    } else {
                        u.names.join(",")
                    },
                    docker_size(u.size),
                    docker_size(u.shared_size),
                    docker_size(u.unique_size),
                    u.containers.to_string(),
                ]
            })
            .collect();
        out.push_str(&table::render(
            table::DOCKER,
            &[
                "IMAGE ID",
                "NAMES",
                "SIZE",
                "SHARED SIZE",
                "UNIQUE SIZE",
                "CONTAINERS",
            ],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaimable_percentages() {
        assert_eq!(reclaimable(11_630_000, 16_430_000), "11.63MB (70%)");
        assert_eq!(reclaimable(0, 0), "0B");
        assert_eq!(reclaimable(5, 5), "5B (100%)");
    }

    #[test]
    fn table_like_docker() {
        let du = proto::ImageDiskUsageResponse {
            images: 5,
            active_images: 2,
            total_bytes: 16_430_000,
            reclaimable_bytes: 11_630_000,
            containers: 3,
            per_image: vec![],
        };
        let want = "\
TYPE         TOTAL     ACTIVE    SIZE      RECLAIMABLE
Images       5         2         16.43MB   11.63MB (70%)
Containers   3         1         0B        0B
";
        assert_eq!(render(&du, 1, false), want);
    }
}
