//! `imagectl load`.

use std::io::IsTerminal;

use imaged_client::{Client, proto};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::{ArchiveFormat, LoadArgs};
use crate::exit::{Failure, Report};

/// Streams the archive (from `-i FILE` or standard input) with a progress bar on standard
/// error when it is a terminal.
pub(crate) async fn run(client: &Client, args: &LoadArgs) -> Result<Report, Failure> {
    let format = match args.format {
        None => proto::ArchiveFormat::Unspecified,
        Some(ArchiveFormat::Docker) => proto::ArchiveFormat::Docker,
        Some(ArchiveFormat::Oci) => proto::ArchiveFormat::Oci,
    };
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let result = match &args.input {
        Some(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| Failure::new(format!("opening {}: {e}", path.display())))?;
            let len = file.metadata().await.ok().map(|m| m.len());
            let bar = progress_bar(show_progress, len);
            let progress = bar.clone();
            let res = client
                .load(file, format, Vec::new(), move |n| progress.set_position(n))
                .await;
            bar.finish_and_clear();
            res
        }
        None => {
            if std::io::stdin().is_terminal() {
                return Err(Failure::new(
                    "cannot read from terminal, use command-line redirection or the --input flag",
                ));
            }
            let bar = progress_bar(show_progress, None);
            let progress = bar.clone();
            let res = client
                .load(tokio::io::stdin(), format, Vec::new(), move |n| {
                    progress.set_position(n);
                })
                .await;
            bar.finish_and_clear();
            res
        }
    };
    let resp = result.map_err(|e| Failure::from_client(client.url(), &e))?;
    Ok(Report::ok(render(&resp)))
}

fn progress_bar(visible: bool, len: Option<u64>) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => {
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "Loading {bar:40} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})",
            ) {
                bar.set_style(style);
            }
            bar
        }
        None => {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "Loading {spinner} {binary_bytes} ({binary_bytes_per_sec})",
            ) {
                bar.set_style(style);
            }
            bar
        }
    };
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// `Loaded image: <name>` for every name, `Loaded image: sha256:<hex>` for an image
/// without names (podman's lines).
pub(crate) fn render(resp: &proto::LoadImagesResponse) -> String {
    let mut out = String::new();
    for image in &resp.images {
        if image.names.is_empty() {
            let hex = image.id.strip_prefix("sha256:").unwrap_or(&image.id);
            out.push_str(&format!("Loaded image: sha256:{hex}\n"));
        }
        for name in &image.names {
            out.push_str(&format!("Loaded image: {name}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_lines() {
        let resp = proto::LoadImagesResponse {
            images: vec![
                proto::LoadedImage {
                    id: "sha256:aa".into(),
                    names: vec!["localhost/a:1".into(), "quay.io/b:2".into()],
                },
                proto::LoadedImage {
                    id: "sha256:bb".into(),
                    names: vec![],
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            render(&resp),
            "Loaded image: localhost/a:1\nLoaded image: quay.io/b:2\nLoaded image: sha256:bb\n"
        );
    }
}
