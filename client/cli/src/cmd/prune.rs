//! `imagectl prune`.

use std::io::{BufRead, IsTerminal, Write};

use imaged_client::{Client, proto};

use crate::args::PruneArgs;
use crate::exit::{self, Failure, Report};
use crate::output::human::bare_id;

/// podman's confirmation text (`createPruneWarningMessage`).
pub(crate) fn warning(all: bool) -> &'static str {
    if all {
        "WARNING! This command removes all images without at least one container associated with them.\nAre you sure you want to continue? [y/N] "
    } else {
        "WARNING! This command removes all dangling images.\nAre you sure you want to continue? [y/N] "
    }
}

/// Prints the warning to `out` and reads one answer from `input`: true only for an answer
/// starting with `y`/`Y` (podman's rule; an empty answer or end of input is "no").
pub(crate) fn confirm(
    all: bool,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> std::io::Result<bool> {
    out.write_all(warning(all).as_bytes())?;
    out.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(answer
        .chars()
        .next()
        .is_some_and(|c| c.eq_ignore_ascii_case(&'y')))
}

/// Asks for confirmation when standard input is a terminal (unless `-f` or `--dry-run`),
/// then prunes. Decision: when standard input is not a terminal the prune proceeds
/// without asking (scripts need no `-f`; podman would read the answer from the pipe).
pub(crate) async fn run(client: &Client, args: &PruneArgs) -> Result<Report, Failure> {
    let stdin = std::io::stdin();
    if !args.force && !args.dry_run && stdin.is_terminal() {
        let confirmed = confirm(args.all, &mut stdin.lock(), &mut std::io::stdout())
            .map_err(|e| Failure::new(format!("reading the answer: {e}")))?;
        if !confirmed {
            return Ok(Report::ok(String::new()));
        }
    }
    let req = proto::PruneImagesRequest {
        all: args.all,
        filters: args.filters.clone(),
        external: args.external,
        dry_run: args.dry_run,
    };
    let resp = client
        .prune_images(req)
        .await
        .map_err(|e| Failure::from_client(client.url(), &e))?;
    Ok(render(&resp))
}

/// The deleted image IDs (64 hex), one per line, as podman prints them; per-image errors
/// go to standard error and make the exit code 125.
pub(crate) fn render(resp: &proto::PruneImagesResponse) -> Report {
    let mut stdout = String::new();
    for id in &resp.deleted_images {
        stdout.push_str(bare_id(id));
        stdout.push('\n');
    }
    let errors: Vec<String> = resp
        .errors
        .iter()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation_answers() {
        for (answer, want) in [
            ("y\n", true),
            ("Yes\n", true),
            ("n\n", false),
            ("\n", false),
            ("", false),
        ] {
            let mut out = Vec::new();
            let got = confirm(false, &mut answer.as_bytes(), &mut out).unwrap();
            assert_eq!(got, want, "{answer:?}");
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "WARNING! This command removes all dangling images.\nAre you sure you want to continue? [y/N] "
            );
        }
        let mut out = Vec::new();
        confirm(true, &mut "y\n".as_bytes(), &mut out).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("without at least one container")
        );
    }

    #[test]
    fn prints_deleted_ids_and_errors() {
        let resp = proto::PruneImagesResponse {
            deleted_images: vec![
                format!("sha256:{}", "a".repeat(64)),
                format!("sha256:{}", "b".repeat(64)),
            ],
            errors: vec![proto::PruneError {
                image_id: format!("sha256:{}", "c".repeat(64)),
                code: 9,
                reason: "IMAGE_IN_USE".into(),
                message: "image is in use by a container".into(),
            }],
            ..Default::default()
        };
        let report = render(&resp);
        assert_eq!(
            report.stdout,
            format!("{}\n{}\n", "a".repeat(64), "b".repeat(64))
        );
        assert_eq!(
            report.errors,
            vec![format!(
                "{}: image is in use by a container",
                "c".repeat(64)
            )]
        );
        assert_eq!(report.code, 125);
        assert_eq!(
            render(&proto::PruneImagesResponse::default()),
            Report::ok(String::new())
        );
    }
}
