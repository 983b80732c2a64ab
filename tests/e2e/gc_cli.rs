//! `imagectl gc` and `imagectl gc policy` against a real daemon (SPEC §4.1): a policy set
//! from the command line and read back, a dry run that changes nothing, a run that spares
//! the image a container uses, the JSON form, and bad values (exit 125).

use serde_json::{Value, json};

use crate::remove::register;
use crate::support::*;

/// The table row of `img` in a `gc` output, if any.
fn row<'a>(run: &'a imaged_tests::Run, img: &ImageSpec) -> Option<&'a str> {
    let short = &img.hex_id()[..12];
    run.lines().into_iter().find(|l| l.starts_with(short))
}

#[test]
fn gc_by_policy_from_the_command_line() {
    let d = memory();
    let a = ImageSpec::new("gc-cli-a").named("localhost/e2e/gc-a:1");
    let b = ImageSpec::new("gc-cli-b").named("localhost/e2e/gc-b:1");
    let c = ImageSpec::new("gc-cli-c");
    load(&d, Format::Docker, &[a.clone(), b.clone(), c.clone()]);

    // Every image counts as unused (not used for 1ns), none is too young.
    let set = d.imagectl(&[
        "gc",
        "policy",
        "--set",
        "max_unused=1ns",
        "--set",
        "min_age=0s",
    ]);
    set.ok();
    let shown = d.imagectl(&["gc", "policy"]);
    eprintln!("$ imagectl gc policy\n{}", shown.ok().stdout);
    assert_eq!(
        shown.stdout, set.stdout,
        "--set prints the policy it stored"
    );
    assert_eq!(
        shown.lines(),
        [
            "high: off",
            "low: off",
            "budget: off",
            "max_unused: 1ns",
            "keep_tags: 0",
            "min_age: 0s",
            "interval: off",
        ]
    );

    // A dry run lists all three and deletes nothing.
    let before = snapshot(&d, &[]);
    let dry = d.imagectl(&["gc", "--dry-run"]);
    eprintln!("$ imagectl gc --dry-run\n{}", dry.ok().stdout);
    assert!(
        dry.lines()[0].starts_with("IMAGE ID      REPOSITORY:TAG"),
        "{dry}"
    );
    for (img, name) in [
        (&a, "localhost/e2e/gc-a:1"),
        (&b, "localhost/e2e/gc-b:1"),
        (&c, "<none>"),
    ] {
        let line = row(&dry, img).unwrap_or_else(|| panic!("{name} not listed:\n{dry}"));
        assert!(line.contains(name) && line.contains(" unused "), "{line}");
        assert!(line.contains(" ago "), "LAST USED: {line}");
    }
    assert_eq!(dry.lines().len(), 5, "header, 3 rows, total:\n{dry}");
    dry.stdout_has("\nwould free ").stdout_has(" (3 images)\n");
    assert!(dry.stderr.is_empty(), "{dry}");
    assert_eq!(
        snapshot(&d, &[]).raw,
        before.raw,
        "the dry run changed the store"
    );
    let ls = d.imagectl(&["images"]);
    ls.ok()
        .stdout_has("localhost/e2e/gc-a")
        .stdout_has("localhost/e2e/gc-b")
        .stdout_has(&c.hex_id()[..12]);

    // The JSON form of the same plan.
    let dry_json = d.imagectl(&["gc", "--dry-run", "--format", "json"]);
    let v: Value = serde_json::from_str(&dry_json.ok().stdout).expect("gc --format json");
    assert_eq!(v["DryRun"], json!(true));
    let mut chosen: Vec<String> = v["Chosen"]
        .as_array()
        .expect("Chosen")
        .iter()
        .map(|c| {
            assert_eq!(c["Reason"], json!("unused"), "{c}");
            assert!(c["UnusedFor"].as_u64().is_some_and(|n| n > 0), "{c}");
            c["ImageId"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    chosen.sort();
    let mut all = vec![a.hex_id(), b.hex_id(), c.hex_id()];
    all.sort();
    assert_eq!(chosen, all);
    assert_eq!(v["Reached"], json!(true));
    assert_eq!(v["Triggers"], json!([]));

    // A container holds a; the run deletes exactly b and c.
    register(&d, "localhost/e2e/gc-a:1", &[]);
    let run = d.imagectl(&["gc"]);
    eprintln!("$ imagectl gc\n{}", run.ok().stdout);
    assert!(row(&run, &a).is_none(), "{run}");
    assert!(row(&run, &b).is_some() && row(&run, &c).is_some(), "{run}");
    run.stdout_has("\nfreed ").stdout_has(" (2 images)\n");
    assert_eq!(snapshot(&d, &[]).hex_ids(), [a.hex_id()]);

    // Nothing left to take; the JSON of a real run.
    let again = d.imagectl(&["gc", "--format", "json"]);
    let v: Value = serde_json::from_str(&again.ok().stdout).expect("gc --format json");
    assert_eq!(v["DryRun"], json!(false));
    assert_eq!(v["Chosen"], json!([]));
    assert_eq!(v["Result"]["DeletedImages"], json!([]));
    assert_eq!(v["Result"]["ReclaimedBytes"], json!(0));
    assert_eq!(snapshot(&d, &[]).hex_ids(), [a.hex_id()]);
}

#[test]
fn bad_policy_values_exit_125_and_change_nothing() {
    let d = memory();
    let before = d.imagectl(&["gc", "policy"]);
    before.ok();
    // The CLI's own check, before any call.
    let bad = d.imagectl(&["gc", "policy", "--set", "high=120%"]);
    bad.exit(125)
        .stderr_has("Error: invalid --set high=120%: 120% is not a percentage from 0% to 100%");
    assert!(bad.stdout.is_empty(), "{bad}");
    d.imagectl(&["gc", "policy", "--set", "wake_up=5m"])
        .exit(125)
        .stderr_has("unknown key \"wake_up\"");
    // The daemon's check: a low threshold without a high one.
    d.imagectl(&["gc", "policy", "--set", "low=80%"])
        .exit(125)
        .stderr_has("Error: invalid GC policy: a low threshold needs a high one");
    assert_eq!(d.imagectl(&["gc", "policy"]).ok().stdout, before.stdout);
    // Thresholds in the config file's syntax, and unset again with an empty value.
    let set = d.imagectl(&[
        "gc",
        "policy",
        "--set",
        "high=90%",
        "--set",
        "low=80%",
        "--set",
        "budget=2GiB",
        "--set",
        "interval=5m",
    ]);
    set.ok()
        .stdout_has("high: 90%\nlow: 80%\nbudget: 2GiB\n")
        .stdout_has("interval: 5m0s\n");
    d.imagectl(&["gc", "policy", "--set", "low=", "--set", "interval="])
        .ok()
        .stdout_has("low: off (= high)\n")
        .stdout_has("interval: off\n");
}
