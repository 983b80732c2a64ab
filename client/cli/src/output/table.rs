//! Column alignment as Go's `text/tabwriter` does it for podman (`minwidth 12, padding 2`)
//! and Docker (`minwidth 10, padding 3`): every column but the last is padded with spaces
//! to `max(minwidth, widest cell + padding)`; the last column is not padded.

/// Alignment parameters of one tool.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Style {
    /// Minimum column width, padding included.
    pub min_width: usize,
    /// Spaces added to the widest cell of a column.
    pub padding: usize,
}

/// podman's `report.NewWriterDefault` (`tabwriter.NewWriter(w, 12, 2, 2, ' ', 0)`).
pub(crate) const PODMAN: Style = Style {
    min_width: 12,
    padding: 2,
};

/// Docker CLI's formatter (`tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)`).
pub(crate) const DOCKER: Style = Style {
    min_width: 10,
    padding: 3,
};

/// Renders `header` (omitted when empty) and `rows`, one line each, `\n`-terminated.
pub(crate) fn render(style: Style, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut lines: Vec<Vec<&str>> = Vec::with_capacity(rows.len() + 1);
    if !header.is_empty() {
        lines.push(header.to_vec());
    }
    lines.extend(rows.iter().map(|r| r.iter().map(String::as_str).collect()));
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for line in &lines {
        // The last cell of a line is not part of an aligned column.
        for (i, cell) in line.iter().enumerate().take(line.len().saturating_sub(1)) {
            widths[i] = widths[i].max(cell.chars().count() + style.padding);
        }
    }
    for w in &mut widths {
        *w = (*w).max(style.min_width);
    }
    let mut out = String::new();
    for line in &lines {
        let last = line.len().saturating_sub(1);
        for (i, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn podman_images_layout() {
        let out = render(
            PODMAN,
            &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
            &[
                row(&[
                    "quay.io/libpod/alpine",
                    "latest",
                    "961769676411",
                    "5 years ago",
                    "5.85 MB",
                ]),
                row(&["<none>", "<none>", "0123456789ab", "2 days ago", "892 kB"]),
            ],
        );
        let want = "\
REPOSITORY             TAG         IMAGE ID      CREATED      SIZE
quay.io/libpod/alpine  latest      961769676411  5 years ago  5.85 MB
<none>                 <none>      0123456789ab  2 days ago   892 kB
";
        assert_eq!(out, want);
    }

    #[test]
    fn docker_df_layout() {
        let out = render(
            DOCKER,
            &["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
            &[row(&["Images", "5", "2", "16.43MB", "11.63MB (70%)"])],
        );
        let want = "\
TYPE      TOTAL     ACTIVE    SIZE      RECLAIMABLE
Images    5         2         16.43MB   11.63MB (70%)
";
        assert_eq!(out, want);
    }

    #[test]
    fn no_header_and_single_column() {
        assert_eq!(render(PODMAN, &[], &[row(&["a"]), row(&["bb"])]), "a\nbb\n");
        assert_eq!(render(PODMAN, &[], &[]), "");
    }
}
