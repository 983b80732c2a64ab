//! Bad input: each gets the right error and exit code and leaves the store unchanged.

use crate::support::*;

/// A daemon holding two images (one named, one with a child), and its listing.
fn populated() -> (Daemon, Snapshot) {
    let d = memory();
    let a = ImageSpec::new("bad-a").named("localhost/e2e/a:1");
    let b = a.child("bad-b").named("localhost/e2e/b:1");
    load(&d, Format::Docker, &[a, b]);
    let snap = snapshot(&d, &[]);
    assert_eq!(snap.images.len(), 2);
    (d, snap)
}

#[track_caller]
fn unchanged(d: &Daemon, before: &Snapshot) {
    assert_eq!(
        snapshot(d, &[]).raw,
        before.raw,
        "a failed call changed the store"
    );
}

#[test]
fn blank_and_malformed_references() {
    let (d, before) = populated();
    d.imagectl(&["rm", ""])
        .exit(125)
        .stderr_has("image name cannot be blank");
    d.imagectl(&["rm", "sha256:aa"])
        .exit(125)
        .stderr_has("sha256:aa: invalid format: no 64-byte hexadecimal value");
    d.imagectl(&["rm", "Localhost/UPPER:1"])
        .exit(125)
        .stderr_has("must be lowercase");
    d.imagectl(&["inspect", ""])
        .exit(125)
        .stderr_has("image name cannot be blank");
    unchanged(&d, &before);
}

#[test]
fn malformed_filters() {
    let (d, before) = populated();
    d.imagectl(&["ls", "--filter", "json"])
        .exit(125)
        .stderr_has(
            r#"invalid image filter "json": must be in the format "filter=value or filter!=value""#,
        );
    d.imagectl(&["ls", "--filter", "bogus=1"]).exit(125);
    d.imagectl(&["ls", "--filter", "dangling=maybe"]).exit(125);
    d.imagectl(&["ls", "--filter", "until=not-a-time"])
        .exit(125);
    d.imagectl(&["prune", "-a", "-f", "--filter", "json"])
        .exit(125);
    d.imagectl(&["prune", "-a", "-f", "--filter", "label"])
        .exit(125);
    unchanged(&d, &before);
}

#[test]
fn garbage_archive() {
    let (d, before) = populated();
    // Deterministic pseudo-random bytes (xorshift), not a tar and not gzip.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    load_bytes(&d, "garbage.tar", &garbage).exit(125);
    load_bytes(&d, "empty.tar", b"").exit(125);
    load_bytes(&d, "garbage.tar.gz", &archive::gzip(&garbage)).exit(125);
    unchanged(&d, &before);
}

#[test]
fn truncated_archives() {
    let (d, before) = populated();
    let images = [ImageSpec::new("trunc").named("localhost/e2e/trunc:1")];
    for format in [Format::Docker, Format::DockerGz, Format::Oci, Format::OciGz] {
        let bytes = format.bytes(&images);
        let half = &bytes[..bytes.len() / 2];
        let run = load_bytes(&d, &format!("truncated-{format:?}.tar"), half);
        run.exit(125);
        unchanged(&d, &before);
    }
}

#[test]
fn archives_failing_digest_verification_store_nothing() {
    let (d, before) = populated();
    // The second image is fine; all or nothing means it is not stored either.
    let bad = ImageSpec::new("tampered").named("localhost/e2e/tampered:1");
    let good = ImageSpec::new("innocent").named("localhost/e2e/innocent:1");
    let images = [bad, good];
    let docker = archive::docker_archive_with(&images, Tamper::LayerContent);
    let oci = archive::oci_archive_with(&images, Tamper::LayerContent);
    for (name, bytes) in [
        ("tampered-docker.tar", docker.clone()),
        ("tampered-docker.tar.gz", archive::gzip(&docker)),
        ("tampered-oci.tar", oci.clone()),
        ("tampered-oci.tar.gz", archive::gzip(&oci)),
    ] {
        let run = load_bytes(&d, name, &bytes);
        run.exit(125);
        unchanged(&d, &before);
    }
    // The same archive untampered loads: the failures were the tampering.
    load(&d, Format::Oci, &images);
    assert_eq!(snapshot(&d, &[]).images.len(), 4);
}
