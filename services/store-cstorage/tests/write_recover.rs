//! Recovery at open: the state an apply killed between `images.json` and `layers.json`
//! leaves (image record gone, its layers journaled, maybe flagged incomplete) is finished
//! by the next open, and podman is happy with the result.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use imaged_core::Store;
use imaged_store_cstorage::{Driver, StoreOptions};
use imaged_testkit::podman::PodmanStore;
use serde_json::Value;

fn read(p: &std::path::Path) -> Vec<Value> {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn write(p: &std::path::Path, v: &[Value]) {
    std::fs::write(p, serde_json::to_vec(v).unwrap()).unwrap();
}

#[test]
fn open_finishes_journaled_and_incomplete_layers() {
    let s = PodmanStore::new("vfs").unwrap();
    for name in ["localhost/a:1", "localhost/b:1"] {
        s.buildah_ok(&["from", "--name", "w", "scratch"]).unwrap();
        s.buildah_ok(&["copy", "w", "/bin/busybox", &format!("/{}", &name[10..11])])
            .unwrap();
        s.buildah_ok(&["commit", "-q", "w", name]).unwrap();
        s.buildah_ok(&["rm", "w"]).unwrap();
    }
    let images_json = s.root.join("vfs-images/images.json");
    let layers_json = s.root.join("vfs-layers/layers.json");
    let images = read(&images_json);
    assert_eq!(images.len(), 2);
    let layer_of = |name: &str| {
        images
            .iter()
            .find(|i| i["names"].as_array().unwrap().iter().any(|n| n == name))
            .unwrap()["layer"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (la, lb) = (layer_of("localhost/a:1"), layer_of("localhost/b:1"));

    // a: image record gone, layer only journaled (killed after images.json).
    // b: image record gone, layer flagged incomplete (killed after the flag write).
    let kept: Vec<Value> = images
        .iter()
        .filter(|i| i["layer"] != la.as_str() && i["layer"] != lb.as_str())
        .cloned()
        .collect();
    write(&images_json, &kept);
    let mut layers = read(&layers_json);
    for l in &mut layers {
        if l["id"] == lb.as_str() {
            l["flags"] = serde_json::json!({"incomplete": true});
        }
    }
    write(&layers_json, &layers);
    std::fs::create_dir_all(s.root.join("imaged")).unwrap();
    std::fs::write(
        s.root.join("imaged/cstorage-intent.json"),
        serde_json::to_vec(&serde_json::json!({"layers": [la.clone()]})).unwrap(),
    )
    .unwrap();
    // Temporaries of a killed apply (staged, not yet renamed), and a file that only looks
    // like one.
    let temporaries = [
        s.root.join("vfs-layers/.tmp-layers.json123"),
        s.root.join("vfs-images/.tmp-images.json4567"),
        s.root.join("imaged/.tmp-cstorage-intent.json89"),
    ];
    for t in &temporaries {
        std::fs::write(t, b"[]").unwrap();
    }
    let lookalike = s.root.join("vfs-images/.tmp-images.json-notes");
    std::fs::write(&lookalike, b"x").unwrap();

    let store = imaged_store_cstorage::open(StoreOptions::new(
        s.root.clone(),
        s.run.clone(),
        Driver::Vfs,
    ))
    .unwrap();
    assert!(store.view().is_empty());
    let left: Vec<String> = read(&layers_json)
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!left.contains(&la) && !left.contains(&lb), "{left:?}");
    assert!(!s.root.join("vfs/dir").join(&la).exists());
    assert!(!s.root.join("vfs/dir").join(&lb).exists());
    assert!(!s.root.join("imaged/cstorage-intent.json").exists());
    for t in &temporaries {
        assert!(!t.exists(), "{} left", t.display());
    }
    assert!(lookalike.exists());
    assert_eq!(
        std::fs::read_dir(s.root.join("imaged-trash"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(s.podman_ok(&["images", "-aq"]).unwrap().trim(), "");
    let report = store.check(true).unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
}
