#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use imaged_testkit::podman::{PodmanStore, busybox_archive};

/// Branch pages met while listing `all-ctrs` (to show the test reached a split tree).
fn branch_pages_under_all_ctrs(file: &[u8]) -> usize {
    let meta = current_meta(file).unwrap();
    let w = Walker {
        file,
        page_size: meta.page_size,
    };
    let Some(Root::Page(root)) = w.bucket(&Root::Page(meta.root), b"all-ctrs").unwrap() else {
        return 0;
    };
    fn count(file: &[u8], page_size: usize, id: u64) -> usize {
        let p = page(file, page_size, id).unwrap();
        if u16_at(p, 8).unwrap() & BRANCH == 0 {
            return 0;
        }
        let n = usize::from(u16_at(p, 10).unwrap());
        1 + (0..n)
            .map(|i| {
                count(
                    file,
                    page_size,
                    u64_at(p, PAGE_HEADER + i * 16 + 8).unwrap(),
                )
            })
            .sum::<usize>()
    }
    count(file, meta.page_size, root)
}

fn store_with_image() -> PodmanStore {
    let s = PodmanStore::new("vfs").expect("podman store");
    s.load_archive(&busybox_archive("localhost/bb:1").unwrap())
        .expect("load");
    s
}

#[test]
fn missing_and_empty_files_are_empty_databases() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        read(&dir.path().join("nope.db")).unwrap(),
        PodmanDb::default()
    );
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(read(&empty).unwrap(), PodmanDb::default());
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.db");
    std::fs::write(&p, vec![0xAB; 10000]).unwrap();
    let e = read(&p).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert!(e.to_string().contains("no valid meta page"), "{e}");
}

#[test]
fn podman_containers_are_listed_buildah_ones_are_not() {
    let s = store_with_image();
    let c1 = s
        .podman_ok(&["create", "--name", "c1", "localhost/bb:1"])
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(c1.len(), 64, "{c1}");
    s.buildah_ok(&["from", "--name", "b1", "localhost/bb:1"])
        .unwrap();
    let b1 = s
        .buildah_ok(&["inspect", "--format", "{{.ContainerID}}", "b1"])
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(b1.len(), 64, "{b1}");

    let db = read(&s.root.join("libpod/bolt_state.db")).unwrap();
    assert_eq!(
        db.containers,
        [c1.clone()].into_iter().collect::<HashSet<_>>()
    );
    assert!(!db.containers.contains(&b1));
    assert_eq!(db.graph_driver.as_deref(), Some("vfs"));
    assert_eq!(
        db.graph_root.as_deref(),
        Some(s.root.to_str().unwrap()),
        "graph-root"
    );
    assert_eq!(
        db.run_root.as_deref(),
        Some(s.run.to_str().unwrap()),
        "run-root"
    );

    // A removed container is gone from the next read.
    s.podman_ok(&["rm", "c1"]).unwrap();
    let db = read(&s.root.join("libpod/bolt_state.db")).unwrap();
    assert!(db.containers.is_empty(), "{:?}", db.containers);
}

#[test]
fn many_containers_split_into_branch_pages() {
    // all-ctrs holds 64-byte IDs and short names (~85 bytes a leaf element): with 4096-byte
    // pages a leaf overflows past ~48 entries, so 60 containers need a branch page.
    const N: usize = 60;
    let s = store_with_image();
    let mut ids = HashSet::default();
    for i in 0..N {
        let id = s
            .podman_ok(&["create", "--name", &format!("c{i}"), "localhost/bb:1"])
            .unwrap();
        ids.insert(id.trim().to_owned());
    }
    let path = s.root.join("libpod/bolt_state.db");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(current_meta(&bytes).unwrap().page_size, 4096);
    assert!(
        branch_pages_under_all_ctrs(&bytes) >= 1,
        "all-ctrs did not split: the test does not cover branch pages"
    );
    let db = read(&path).unwrap();
    assert_eq!(db.containers.len(), N);
    assert_eq!(db.containers, ids);
}

#[test]
fn a_damaged_meta_page_falls_back_to_the_other() {
    let s = store_with_image();
    let c1 = s
        .podman_ok(&["create", "--name", "c1", "localhost/bb:1"])
        .unwrap()
        .trim()
        .to_owned();
    let mut bytes = std::fs::read(s.root.join("libpod/bolt_state.db")).unwrap();
    let m0 = meta_at(&bytes, 0).unwrap();
    let m1 = meta_at(&bytes, m0.page_size).unwrap();
    // Damage the newer meta's checksum: the older one (one transaction earlier) is read.
    let newer = if m1.txid > m0.txid { m0.page_size } else { 0 };
    bytes[newer + PAGE_HEADER + 56] ^= 0xFF;
    let older = parse(&bytes).unwrap();
    assert_eq!(current_meta(&bytes).unwrap().txid, m0.txid.min(m1.txid));
    // The older state is still a valid database (it may or may not have c1 yet).
    assert!(older.containers.is_empty() || older.containers.contains(&c1));
    // Both damaged: an error.
    let other = if newer == 0 { m0.page_size } else { 0 };
    bytes[other + PAGE_HEADER + 56] ^= 0xFF;
    assert!(parse(&bytes).is_err());
}

#[test]
fn a_shared_lock_is_held_while_reading_and_released() {
    // While another holder has the exclusive lock podman's writers take, the read waits;
    // once it is released the read completes, and it leaves no lock behind.
    let s = store_with_image();
    let path = s.root.join("libpod/bolt_state.db");
    let f = std::fs::File::open(&path).unwrap();
    let held = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let p2 = path.clone();
    let t = std::thread::spawn(move || {
        let r = read(&p2);
        tx.send(()).unwrap();
        r
    });
    // The reader cannot finish while the exclusive lock is held.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
    drop(held);
    rx.recv().unwrap();
    t.join().unwrap().unwrap();
    // No lock left: an exclusive one is granted at once.
    let f = std::fs::File::open(&path).unwrap();
    let _again = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
}
