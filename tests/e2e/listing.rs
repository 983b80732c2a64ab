//! `imagectl ls|tag|untag|inspect|df`: output formats, filters, names.

use crate::support::*;

/// Three images: a labelled named one, an unnamed dangling one and a second named one.
fn three_images(d: &Daemon) -> [ImageSpec; 3] {
    let gold = ImageSpec::new("gold")
        .named("localhost/e2e/gold:1")
        .label("tier", "gold")
        .created("2024-03-01T00:00:00Z");
    let loose = ImageSpec::new("loose").created("2024-02-01T00:00:00Z");
    let plain = ImageSpec::new("plain")
        .named("quay.io/e2e/plain:2")
        .created("2024-01-01T00:00:00Z");
    load(
        d,
        Format::Docker,
        &[gold.clone(), loose.clone(), plain.clone()],
    );
    [gold, loose, plain]
}

#[test]
fn json_listing_is_ordered_newest_first_with_exact_fields() {
    let d = memory();
    let [gold, loose, plain] = three_images(&d);
    let snap = snapshot(&d, &[]);
    assert_eq!(
        snap.hex_ids(),
        [gold.hex_id(), loose.hex_id(), plain.hex_id()]
    );
    let l = snap.by_id(&loose.id()).unwrap();
    assert!(l.flag("dangling") && !l.flag("intermediate") && l.names().is_empty());
    let g = snap.by_id(&gold.id()).unwrap();
    assert_eq!(
        g.number("size"),
        g.number("unique_size") + g.number("shared_size"),
        "{}",
        snap.raw
    );
}

#[test]
fn filters_select_images() {
    let d = memory();
    let [gold, loose, plain] = three_images(&d);
    let cases: [(&str, Vec<String>); 8] = [
        ("label=tier=gold", vec![gold.hex_id()]),
        ("label!=tier=gold", vec![loose.hex_id(), plain.hex_id()]),
        ("dangling=true", vec![loose.hex_id()]),
        ("reference=quay.io/e2e/*", vec![plain.hex_id()]),
        // libimage: a short value matches a repository ending in `/<value>` on a path
        // boundary, nothing in the middle of a component.
        ("reference=gold", vec![gold.hex_id()]),
        ("reference=old", vec![]),
        // Glob `*` does not cross `/` (Go's path.Match, as libimage and Docker use).
        ("reference=localhost/*", vec![]),
        (
            &format!("id={}", &plain.hex_id()[..12]),
            vec![plain.hex_id()],
        ),
    ];
    for (filter, want) in cases {
        let got = snapshot(&d, &["--filter", filter]).hex_ids();
        assert_eq!(got, want, "--filter {filter}");
    }
    // ANDed keys.
    let got = snapshot(
        &d,
        &[
            "--filter",
            "dangling=false",
            "--filter",
            "reference=localhost/e2e/*",
        ],
    );
    assert_eq!(got.hex_ids(), [gold.hex_id()]);
}

#[test]
fn table_and_ids_formats() {
    let d = memory();
    let [gold, loose, plain] = three_images(&d);
    let table = d.imagectl(&["ls"]);
    table.ok();
    let lines = table.lines();
    for col in ["REPOSITORY", "TAG", "IMAGE ID"] {
        assert!(lines[0].contains(col), "table header lacks {col}:\n{table}");
    }
    assert_eq!(lines.len(), 4, "header + one row per image:\n{table}");
    let gold_row = lines
        .iter()
        .find(|l| l.contains("localhost/e2e/gold"))
        .expect("gold row");
    assert!(
        gold_row.split_whitespace().any(|w| w == "1"),
        "tag column: {gold_row}"
    );
    assert!(
        table.stdout.contains("<none>"),
        "unnamed image shows <none>:\n{table}"
    );

    let ids = d.imagectl(&["ls", "--format", "ids"]);
    ids.ok();
    let want = [gold.hex_id(), loose.hex_id(), plain.hex_id()];
    assert_eq!(ids.lines().len(), 3, "{ids}");
    for (line, id) in ids.lines().iter().zip(&want) {
        let line = line.trim_start_matches("sha256:");
        assert!(
            line.len() >= 12 && id.starts_with(line),
            "{line} is not a prefix of {id}"
        );
    }
}

#[test]
fn tag_and_untag() {
    let d = memory();
    let [gold, ..] = three_images(&d);
    d.imagectl(&[
        "tag",
        "localhost/e2e/gold:1",
        "shiny",
        "registry.example:5000/team/gold:v2",
    ])
    .ok();
    let names = |d: &Daemon| {
        let mut n = snapshot(d, &[]).by_id(&gold.id()).unwrap().names();
        n.sort();
        n
    };
    assert_eq!(
        names(&d),
        [
            "localhost/e2e/gold:1",
            "localhost/shiny:latest",
            "registry.example:5000/team/gold:v2"
        ]
    );
    // The new short name resolves.
    d.imagectl(&["inspect", "shiny"])
        .ok()
        .stdout_has(&gold.hex_id());

    d.imagectl(&["untag", &gold.hex_id(), "shiny"]).ok();
    assert_eq!(
        names(&d),
        ["localhost/e2e/gold:1", "registry.example:5000/team/gold:v2"]
    );

    // Untag with no names removes every name, the image stays.
    d.imagectl(&["untag", "localhost/e2e/gold:1"]).ok();
    let snap = snapshot(&d, &[]);
    assert!(
        snap.by_id(&gold.id())
            .expect("image stays")
            .names()
            .is_empty(),
        "{}",
        snap.raw
    );
}

#[test]
fn tag_errors_change_nothing() {
    let d = memory();
    three_images(&d);
    let before = snapshot(&d, &[]);
    let digest = format!("localhost/x@sha256:{}", "a".repeat(64));
    let run = d.imagectl(&["tag", "localhost/e2e/gold:1", &digest]);
    run.exit(125).stderr_has("tag by digest not supported");
    d.imagectl(&["tag", "nope", "localhost/new:1"])
        .exit(125)
        .stderr_has("nope: image not known");
    d.imagectl(&["tag", "localhost/e2e/gold:1", "UPPER"])
        .exit(125)
        .stderr_has("must be lowercase");
    d.imagectl(&["untag", "localhost/e2e/gold:1", "localhost/never:1"])
        .exit(125)
        .stderr_has("tag not known");
    assert_eq!(snapshot(&d, &[]).raw, before.raw);
}

#[test]
fn inspect_and_df() {
    let d = memory();
    let [gold, ..] = three_images(&d);
    let run = d.imagectl(&["inspect", "localhost/e2e/gold:1"]);
    run.ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("inspect prints JSON ({e}):\n{run}"));
    let text = v.to_string();
    assert!(text.contains(&gold.hex_id()), "{run}");
    assert!(
        text.contains(&gold.layers[0].diff_id()),
        "layers with diff IDs:\n{run}"
    );
    assert!(text.contains("\"tier\""), "labels:\n{run}");

    d.imagectl(&["inspect", "nope"])
        .exit(125)
        .stderr_has("nope: image not known");
    let df = d.imagectl(&["df"]);
    df.ok();
    assert!(df.stdout.contains('3'), "3 images counted:\n{df}");
}
