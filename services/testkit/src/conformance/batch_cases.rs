//! RemoveImages cases (SPEC §3.3): a batch equals the same removals made one after
//! another (each reference resolved at its turn), a failing reference is its own result
//! and the batch goes on, and a filter / `all` selection removes whole images.

use super::build::{case, rm_opts, t};
use super::remove_cases::{A, B, both, del, img, then};
use super::{Case, Rec::D, Rec::U, Reclaim, Ref};
use imaged_core::model::ContainerState::Stopped;
use imaged_core::ops::{Policy, RemoveOptions};

const J: &str = "localhost/j:latest";
const M1: &str = "localhost/m:1";
const M2: &str = "localhost/m:2";

/// The batch cases.
pub(super) fn cases() -> Vec<Case> {
    let mut v = both(|p, n| {
        case(
            format!("{n}: RemoveImages a b, two names of one image: untag, then delete"),
            "SPEC §3.3, podman#930",
        )
        .image("i", img("i").name(A).name(B))
        .rm_batch(vec![t("a"), t("b")], rm_opts(p, false))
        .batch(vec![
            Ok(vec![U(A)]),
            Ok(then(vec![U(B)], del(p, "i", &[0]))),
        ])
        .records(then(vec![U(A), U(B)], del(p, "i", &[0])))
        .remaining(&[])
        .reclaimed(Reclaim::AllBlobs)
    });
    v.push(
        case(
            "podman: RemoveImages goes on past failures, each its own result",
            "SPEC §3.3, libimage RemoveImages",
        )
        .image("i", img("i").name(A).name(B))
        .image("j", img("j").name(J))
        .rm_batch(
            vec![t("nope"), Ref::Id("i"), t(J), t("a")],
            rm_opts(Policy::Podman, false),
        )
        .batch(vec![
            Err("IMAGE_NOT_KNOWN"),
            Err("MULTIPLE_NAMES"),
            Ok(vec![U(J), D("j")]),
            Ok(vec![U(A)]),
        ])
        .remaining(&["i"])
        .names("i", &[B]),
    );
    v.push(
        case(
            "podman: RemoveImages with ignore_missing: an unknown reference is an empty result",
            "SPEC §3.3",
        )
        .image("i", img("i").name(A))
        .rm_batch(
            vec![t("nope"), t("a")],
            RemoveOptions {
                ignore_missing: true,
                ..rm_opts(Policy::Podman, false)
            },
        )
        .batch(vec![Ok(vec![]), Ok(vec![U(A), D("i")])])
        .remaining(&[]),
    );
    v.push(
        case(
            "podman: RemoveImages of an image in use fails that reference only",
            "SPEC §3.3, table #3",
        )
        .image("i", img("i").name(A))
        .image("j", img("j").name(J))
        .ctr("ctr1", "i", Stopped)
        .rm_batch(vec![t("a"), t(J)], rm_opts(Policy::Podman, false))
        .batch(vec![Err("IMAGE_IN_USE"), Ok(vec![U(J), D("j")])])
        .remaining(&["i"])
        .containers(&["ctr1"]),
    );
    v.push(
        case(
            "podman: RemoveImages with external removes external containers only",
            "libimage RemoveImagesOptions.ExternalContainers",
        )
        .image("i", img("i").name(A))
        .image("j", img("j").name(J))
        .ext("build1", "i", Stopped)
        .ctr("ctr1", "j", Stopped)
        .rm_batch(
            vec![t("a"), t(J)],
            RemoveOptions {
                external: true,
                ..rm_opts(Policy::Podman, false)
            },
        )
        .batch(vec![Ok(vec![U(A), D("i")]), Err("IMAGE_IN_USE")])
        .removed(&["build1"])
        .containers(&["ctr1"])
        .remaining(&["j"]),
    );
    v.push(
        case(
            "podman: RemoveImages by filter removes the selected images whole",
            "SPEC §3.3, libimage RemoveImages (filters)",
        )
        .image("m", img("m").name(M1).name(M2))
        .image("x", img("x"))
        .image("y", img("y").name(A))
        .rm_selected(
            &["reference=localhost/m"],
            false,
            rm_opts(Policy::Podman, false),
        )
        .batch(vec![Ok(vec![U(M1), U(M2), D("m")])])
        .remaining(&["x", "y"]),
    );
    v.push(
        case(
            "podman: RemoveImages by dangling=true removes only the dangling images",
            "SPEC §3.3",
        )
        .image("x", img("x"))
        .image("y", img("y").name(A))
        .rm_selected(&["dangling=true"], false, rm_opts(Policy::Podman, false))
        .batch(vec![Ok(vec![D("x")])])
        .remaining(&["y"]),
    );
    v.push({
        let base = img("p");
        case(
            "podman: RemoveImages all removes every image",
            "SPEC §3.3, podman rmi --all",
        )
        .image("p", base.clone())
        .image("c", base.child("c", 2).name(A))
        .image("m", img("m").name(M1).name(M2))
        .rm_selected(&[], true, rm_opts(Policy::Podman, false))
        .remaining(&[])
        .reclaimed(Reclaim::AllBlobs)
    });
    v
}
