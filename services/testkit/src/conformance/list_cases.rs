//! ListImages cases: every filter key with positive, `!=` and malformed forms (SPEC §5.3,
//! peers-semantics §5.4 and scenarios #60–#78), `all`, order and name narrowing.

use super::build::case;
use super::{Action, Case};
use crate::images::ImageSpec;
use imaged_core::model::ContainerState::Stopped;
use imaged_core::model::Platform;

const BUSYBOX: &str = "docker.io/library/busybox:latest";
const ALPINE: &str = "quay.io/libpod/alpine:latest";
const ALPINE_TAG: &str = "localhost/alpine:tag";
const PODMAN_LABEL: &str = "/usr/bin/podman run -it --name NAME -e NAME=NAME -e IMAGE=IMAGE IMAGE \
                            echo podman";

fn specs() -> Vec<(&'static str, ImageSpec)> {
    let base = ImageSpec::base("base", 5);
    let alpine = ImageSpec::base("alpine", 20)
        .name(ALPINE)
        .name(ALPINE_TAG)
        .label("foo", "bar")
        .label("PODMAN", PODMAN_LABEL);
    let alpine_digest = alpine.build().1.digest();
    vec![
        (
            "busybox",
            ImageSpec::base("busybox", 10)
                .name(BUSYBOX)
                .label("version", "1"),
        ),
        ("alpine", alpine),
        ("dang", ImageSpec::base("dang", 30)),
        ("base", base.clone()),
        (
            "child",
            base.child("child", 6).name("localhost/child:latest"),
        ),
        (
            "ro",
            ImageSpec::base("ro", 40)
                .name("localhost/ro:latest")
                .read_only(),
        ),
        (
            "list",
            ImageSpec::list(vec![(alpine_digest, Platform::host())], 50)
                .name("localhost/list:latest"),
        ),
    ]
}

/// Visible without `all`, newest first.
const VISIBLE: &[&str] = &["list", "ro", "dang", "alpine", "busybox", "child"];

fn world(name: String, source: &'static str) -> Case {
    let mut c = case(name, source);
    for (k, s) in specs() {
        c = c.image(k, s);
    }
    c.ctr("ctr1", "busybox", Stopped)
        .ext("x1", "alpine", Stopped)
}

fn except(keys: &[&'static str]) -> Vec<&'static str> {
    VISIBLE
        .iter()
        .copied()
        .filter(|k| !keys.contains(k))
        .collect()
}

fn filtered(filters: Vec<String>, want: Vec<&'static str>, source: &'static str) -> Case {
    let mut c = world(format!("list: {}", filters.join(" ")), source).listed(&want);
    c.action = Action::List(filters, false);
    c
}

fn f(filters: &[&str], want: &[&'static str], source: &'static str) -> Case {
    filtered(
        filters.iter().map(|s| (*s).to_owned()).collect(),
        want.to_vec(),
        source,
    )
}

fn bad(filters: &[&str], message: &'static str) -> Case {
    let mut c = world(
        format!("list: malformed {}", filters.join(" ")),
        "SPEC §5.3",
    )
    .err("INVALID_FILTER", message);
    c.action = Action::List(filters.iter().map(|s| (*s).to_owned()).collect(), false);
    c
}

/// The list cases.
pub(super) fn cases() -> Vec<Case> {
    let specs = specs();
    let id_of = |k: &str| {
        specs
            .iter()
            .find(|(x, _)| *x == k)
            .map(|(_, s)| s.build().1)
    };
    let busybox = id_of("busybox").map(|i| (i.id.hex(), i.digest().to_string()));
    let (bb_hex, bb_digest) = busybox.unwrap_or_default();
    let mut v = vec![
        world(
            "list: default hides intermediate images, newest first".into(),
            "SPEC §5.2",
        )
        .list(&[], false)
        .listed_in_order(VISIBLE),
        world(
            "list: all shows intermediate images".into(),
            "SPEC §5.2, scenario #67",
        )
        .list(&[], true)
        .listed_in_order(&["list", "ro", "dang", "alpine", "busybox", "child", "base"]),
        f(
            &["after=busybox"],
            &["list", "ro", "dang", "alpine"],
            "scenario #63",
        ),
        f(
            &["since=busybox"],
            &["list", "ro", "dang", "alpine"],
            "scenario #63, Docker alias",
        ),
        f(&["after!=busybox"], &["busybox", "child"], "scenario #63"),
        f(&["before=alpine"], &["busybox", "child"], "scenario #63"),
        f(
            &["before!=alpine"],
            &["list", "ro", "dang", "alpine"],
            "scenario #63",
        ),
        f(
            &["until=25"],
            &["alpine", "busybox", "child"],
            "SPEC §5.3 until",
        ),
        f(&["until!=25"], &["list", "ro", "dang"], "SPEC §5.3 until"),
        f(
            &["until=1970-01-01T00:00:25Z"],
            &["alpine", "busybox", "child"],
            "SPEC §5.3 until",
        ),
        f(&["until=1h"], VISIBLE, "SPEC §5.3 until duration"),
        f(&["containers=true"], &["busybox", "alpine"], "peers §5.4"),
        f(
            &["containers=false"],
            &["list", "ro", "dang", "child"],
            "peers §5.4",
        ),
        f(
            &["containers!=true"],
            &["list", "ro", "dang", "child"],
            "peers §5.4",
        ),
        f(
            &["containers=external"],
            &except(&["busybox"]),
            "peers §5.4",
        ),
        f(&["dangling=true"], &["dang"], "peers §5.4"),
        f(&["dangling=1"], &["dang"], "Docker alias"),
        f(&["dangling=false"], &except(&["dang"]), "peers §5.4"),
        f(&["dangling!=true"], &except(&["dang"]), "peers §5.4"),
        f(&["intermediate=true"], &["base"], "scenario #67"),
        f(&["intermediate!=true"], VISIBLE, "peers §5.4"),
        f(&["label=foo"], &["alpine"], "scenario #68"),
        f(&["label=foo=bar"], &["alpine"], "scenario #68"),
        f(&["label=foo=baz"], &[], "scenario #68"),
        f(&["label!=foo"], &except(&["alpine"]), "peers §5.4"),
        f(&["label=f*"], &["alpine"], "peers §4.4 label glob"),
        f(
            &["label=foo", "label=version"],
            &[],
            "scenario #68: repeated labels AND",
        ),
        f(
            &[&format!("label=PODMAN={PODMAN_LABEL}")],
            &["alpine"],
            "scenario #64",
        ),
        f(
            &[&format!("label!=PODMAN={PODMAN_LABEL}")],
            &except(&["alpine"]),
            "scenario #64",
        ),
        f(&["readonly=true"], &["ro"], "peers §5.4"),
        f(&["readonly=false"], &except(&["ro"]), "peers §5.4"),
        f(&["manifest=true"], &["list"], "scenario #62"),
        f(&["manifest=false"], &except(&["list"]), "scenario #62"),
        f(
            &["manifest!=false", "reference!=*alpine"],
            &["list"],
            "scenario #62",
        ),
        f(&["manifest=true", "reference=*alpine"], &[], "scenario #62"),
        f(
            &[&format!("id={}", &bb_hex[..bb_hex.len().min(6)])],
            &["busybox"],
            "scenario #61",
        ),
        f(
            &[&format!("id!={}", &bb_hex[..bb_hex.len().min(6)])],
            &except(&["busybox"]),
            "#64",
        ),
        f(
            &[&format!("digest={}", &bb_digest[..bb_digest.len().min(17)])],
            &["busybox"],
            "scenario #61",
        ),
        f(
            &["reference=alpine"],
            &["alpine"],
            "scenario #5 fuzzy lookup",
        ),
        f(&["reference=*alpine*"], &["alpine"], "scenario #60"),
        f(
            &["reference=localhost/*"],
            &["list", "ro", "alpine", "child"],
            "scenario #60",
        ),
        f(&["reference=quay.io/libpod"], &[], "scenario #60"),
        f(&["reference=quay.io/libpod/*"], &["alpine"], "scenario #60"),
        f(&["reference!=alpine"], &except(&["alpine"]), "scenario #60"),
        f(
            &["reference=busybox", "reference=alpine"],
            &["busybox", "alpine"],
            "positive OR",
        ),
        f(
            &["reference=busybox", "reference!=*box"],
            &[],
            "scenario #60",
        ),
        f(
            &["reference=alpine:tag"],
            &["alpine"],
            "scenario #60 last component with tag",
        ),
        f(&["reference=busy?ox"], &["busybox"], "scenario #60 glob"),
        f(&["reference=dang"], &[], "no name, no match"),
        bad(
            &["json"],
            "invalid image filter \"json\": must be in the format",
        ),
        bad(&["foo=1"], "invalid image filter \"foo\""),
        bad(
            &["dangling=maybe"],
            "non-boolean value \"maybe\" for dangling filter",
        ),
        bad(
            &["intermediate=x"],
            "non-boolean value \"x\" for intermediate filter",
        ),
        bad(
            &["readonly=2"],
            "non-boolean value \"2\" for readonly filter",
        ),
        bad(
            &["manifest=yes"],
            "non-boolean value \"yes\" for manifest filter",
        ),
        bad(
            &["containers=maybe"],
            "unsupported value \"maybe\" for containers filter",
        ),
        bad(
            &["digest=this-is-not-a-digest"],
            "invalid value \"this-is-not-a-digest\" for digest",
        ),
        bad(
            &["until=notatime"],
            "failed to parse value as time or duration: \"notatime\"",
        ),
        bad(
            &["after=missing"],
            "could not find local image for filter \"after\"=\"missing\"",
        ),
        bad(
            &["before=missing"],
            "could not find local image for filter \"before\"",
        ),
        bad(
            &["dangling=true", "dangling=false"],
            "specifying \"dangling\" filter more than once with different values is not supported",
        ),
        bad(&["reference=[unclosed"], "invalid reference filter"),
    ];
    v.push(
        world(
            "list: a canonical reference narrows the names".into(),
            "scenario #60",
        )
        .list(&[&format!("reference={ALPINE_TAG}")], false)
        .listed(&["alpine"])
        .names("alpine", &[ALPINE_TAG]),
    );
    v.push(
        world(
            "list: a short reference keeps every name".into(),
            "scenario #60",
        )
        .list(&["reference=alpine:tag"], false)
        .listed(&["alpine"])
        .names("alpine", &[ALPINE, ALPINE_TAG]),
    );
    v.push(
        world(
            "list: two positive references do not narrow".into(),
            "scenario #71",
        )
        .deviation("Docker drops non-matching names; libimage narrows single queries only")
        .list(
            &[&format!("reference={ALPINE_TAG}"), "reference=busybox"],
            false,
        )
        .listed(&["alpine", "busybox"])
        .names("alpine", &[ALPINE, ALPINE_TAG]),
    );
    v.push(
        case(
            "list: a moved tag's old image is listed once as dangling",
            "scenario #77",
        )
        .image("old", ImageSpec::base("old", 1))
        .image(
            "new",
            ImageSpec::base("new", 2).name("localhost/foobox:latest"),
        )
        .list(&["dangling=true"], false)
        .listed(&["old"]),
    );
    v
}
