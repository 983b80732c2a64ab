//! PruneImages cases (SPEC §4, peers-semantics §4 and scenarios #45–#59).

use super::build::case;
use super::{Case, Rec::D, Rec::U, Reclaim};
use crate::images::ImageSpec;
use imaged_core::model::ContainerState::{Running, Stopped};
use imaged_core::model::Platform;

fn img(c: &str) -> ImageSpec {
    ImageSpec::base(c, 1)
}

/// The prune cases.
pub(super) fn cases() -> Vec<Case> {
    let mut v = vec![
        case("prune: nothing dangling, nothing removed", "scenario #45")
            .image("n", img("n").name("localhost/n:latest"))
            .prune(false, &[], false)
            .records(vec![])
            .remaining(&["n"])
            .reclaimed(Reclaim::Zero),
        case("prune: a dangling image goes", "scenario #45")
            .image("n", img("n").name("localhost/n:latest"))
            .image("d", img("d"))
            .prune(false, &[], false)
            .records(vec![D("d")])
            .remaining(&["n"])
            .reclaimed(Reclaim::Positive),
        case(
            "prune: a dangling image used by a container stays",
            "scenario #53",
        )
        .image("d", img("d"))
        .ctr("ctr1", "d", Stopped)
        .prune(false, &[], false)
        .records(vec![])
        .remaining(&["d"]),
        case(
            "prune: intermediate images stay without all",
            "scenario #47, podman#10832",
        )
        .image("p", img("p"))
        .image("c", img("p").child("c", 2).name("localhost/c:latest"))
        .prune(false, &[], false)
        .records(vec![])
        .remaining(&["p", "c"]),
        case(
            "prune: all removes every unused image, children first",
            "scenario #48",
        )
        .image("p", img("p").name("localhost/p:latest"))
        .image("c", img("p").child("c", 2).name("localhost/c:latest"))
        .image("used", img("used").name("localhost/used:latest"))
        .ctr("ctr1", "used", Stopped)
        .prune(true, &[], false)
        .records(vec![
            U("localhost/c:latest"),
            D("c"),
            U("localhost/p:latest"),
            D("p"),
        ])
        .remaining(&["used"]),
        case(
            "prune: all removes the parent record of an image in use",
            "peers §4.1",
        )
        .image("p", img("p"))
        .image("c", img("p").child("c", 2).name("localhost/c:latest"))
        .ctr("ctr1", "c", Running)
        .prune(true, &[], false)
        .records(vec![])
        .remaining(&["c"]),
        case("prune: all reclaims every blob", "scenario #55")
            .image("i", img("i").name("docker.io/library/busybox:latest"))
            .prune(true, &[], false)
            .remaining(&[])
            .reclaimed(Reclaim::AllBlobs),
        case(
            "prune: an image of external containers stays",
            "scenario #50",
        )
        .image("e", img("e"))
        .ext("x1", "e", Stopped)
        .prune(false, &[], false)
        .records(vec![])
        .remaining(&["e"])
        .containers(&["x1"]),
        case(
            "prune: external removes external containers and their image",
            "scenario #50",
        )
        .image("e", img("e"))
        .ext("x1", "e", Stopped)
        .prune(false, &[], true)
        .records(vec![D("e")])
        .removed(&["x1"])
        .containers(&[])
        .remaining(&[]),
        case(
            "prune: external never takes an image a non-external container uses",
            "SPEC §4",
        )
        .image("e", img("e"))
        .ext("x1", "e", Stopped)
        .ctr("ctr1", "e", Stopped)
        .prune(false, &[], true)
        .remaining(&["e"]),
        case(
            "prune: a failing image is reported, the prune goes on",
            "SPEC §4",
        )
        .deviation("podman aborts the whole prune on the first error")
        .image("e", img("e"))
        .image("d", img("d"))
        .ext("x1", "e", Running)
        .prune(false, &[], true)
        .records(vec![D("d")])
        .prune_errors(&["e"])
        .remaining(&["e"]),
        case("prune: label filter", "scenario #49")
            .image("abc", img("abc").label("abc", ""))
            .image("xyz", img("xyz").label("xyz", ""))
            .prune(false, &["label=abc"], false)
            .records(vec![D("abc")])
            .remaining(&["xyz"]),
        case("prune: label!= filter with all", "scenario #57")
            .image(
                "keep",
                img("keep")
                    .name("localhost/withlabel:latest")
                    .label("on_prune", "keep"),
            )
            .image("go", img("go").name("localhost/nolabel:latest"))
            .prune(true, &["label!=on_prune=keep"], false)
            .records(vec![U("localhost/nolabel:latest"), D("go")])
            .remaining(&["keep"]),
        case("prune: a tagged image stays without all", "scenario #58")
            .image(
                "t",
                img("t").name("localhost/test:latest").label("foo", "bar"),
            )
            .prune(false, &[], false)
            .remaining(&["t"]),
        case("prune: label=k=v with all", "scenario #59")
            .image(
                "t1",
                img("t1").name("localhost/test1:latest").label("foo", "bar"),
            )
            .image(
                "t2",
                img("t2").name("localhost/test2:latest").label("bar", "foo"),
            )
            .prune(true, &["label=foo=bar"], false)
            .remaining(&["t2"]),
        case(
            "prune: dangling=false prunes named unused images only",
            "podman#20469",
        )
        .image("n", img("n").name("localhost/n:latest"))
        .image("d", img("d"))
        .prune(false, &["dangling=false"], false)
        .records(vec![U("localhost/n:latest"), D("n")])
        .remaining(&["d"]),
        case("prune: until keeps newer images", "scenario #51")
            .image("old", ImageSpec::base("old", 10))
            .image("new", ImageSpec::base("new", 2000))
            .prune(false, &["until=1000"], false)
            .records(vec![D("old")])
            .remaining(&["new"]),
        case("prune: pinned images stay", "SPEC §8")
            .image(
                "pin",
                img("pin").label("io.cri-containerd.pinned", "pinned"),
            )
            .prune(true, &[], false)
            .remaining(&["pin"]),
        case("prune: read-only images stay", "SPEC §4")
            .image("ro", img("ro").read_only())
            .prune(true, &[], false)
            .remaining(&["ro"]),
        case("prune: bad filter", "SPEC §5.3")
            .image("d", img("d"))
            .prune(false, &["dangling=maybe"], false)
            .err(
                "INVALID_FILTER",
                "non-boolean value \"maybe\" for dangling filter",
            )
            .remaining(&["d"]),
    ];
    let scratch = ImageSpec {
        history: vec!["ENV a=1".into()],
        created: 1,
        ..ImageSpec::default()
    };
    v.push(
        case(
            "prune: layer-less images: a tagged child keeps its parent",
            "scenario #46",
        )
        .image("p", scratch.clone())
        .image("c", scratch.child("", 2).name("localhost/scratch:latest"))
        .prune(false, &[], false)
        .remaining(&["p", "c"]),
    );
    v.push(
        case(
            "prune: layer-less images: untagged, both go",
            "scenario #46, podman#10832",
        )
        .image("p", scratch.clone())
        .image("c", scratch.child("", 2))
        .prune(false, &[], false)
        .records(vec![D("c"), D("p")])
        .remaining(&[]),
    );
    let inst = img("inst");
    let digest = inst.build().1.digest();
    v.push(
        case(
            "prune: fixpoint: an unnamed list goes, then its instance",
            "SPEC §4 fixpoint",
        )
        .image("inst", inst.clone())
        .image("list", ImageSpec::list(vec![(digest, Platform::host())], 2))
        .prune(false, &[], false)
        .records(vec![D("list"), D("inst")])
        .remaining(&[]),
    );
    v.push(
        case(
            "prune: an instance of a named list is not dangling",
            "SPEC §1",
        )
        .image("inst", inst)
        .image(
            "list",
            ImageSpec::list(vec![(digest, Platform::host())], 2).name("localhost/l:latest"),
        )
        .prune(false, &[], false)
        .records(vec![])
        .remaining(&["inst", "list"]),
    );
    v
}
