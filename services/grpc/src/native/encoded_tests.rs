//! `EncodedPage` is wire-identical to the `ListImagesResponse` the summaries give, for
//! every page, filter and order, and never serves an encoding from an older catalog.

use std::sync::Arc;

use imaged_core::model::ContainerState;
use imaged_core::ops::{self, ListOptions, Order, RegisterContainer, RemoveOptions};
use imaged_core::{Engine, EngineConfig, MemoryStore};
use imaged_proto::imaged::v1 as pb;
use imaged_testkit::images::{ImageSpec, add_images};
use prost::Message;

use super::convert;
use super::encoded::{EncodedImages, EncodedPage};

fn engine() -> Engine {
    let mut specs = Vec::new();
    for f in 0..12 {
        let base = ImageSpec::base(&format!("base-{f}"), i64::from(f))
            .name(&format!("docker.io/library/base{f}:latest"))
            .label("tier", if f % 2 == 0 { "db" } else { "web" });
        specs.push(base.child("old", 100 + i64::from(f)));
        specs.push(
            base.child("app", 200 + i64::from(f))
                .name(&format!("registry.example.com/team/app{f}:1"))
                .name(&format!("registry.example.com/team/app{f}:2")),
        );
        specs.push(base);
    }
    let store = Arc::new(MemoryStore::new());
    add_images(&*store, &specs).expect("images");
    let config = EngineConfig {
        pinned_images: vec!["docker.io/library/base3:latest".into()],
        ..EngineConfig::default()
    };
    let e = Engine::new(store, config);
    e.register_container(&RegisterContainer {
        id: Some("c1".into()),
        image: "registry.example.com/team/app4:1".into(),
        state: ContainerState::Running,
        external: false,
        name: "one".into(),
    })
    .expect("container");
    e
}

/// The reference encoding of a page: the engine's summaries converted message by message.
fn list_page(page: ops::ListPage) -> pb::ListImagesResponse {
    pb::ListImagesResponse {
        images: page.images.into_iter().map(convert::image_owned).collect(),
        next_page_token: page.next_page_token,
        total_size: i32::try_from(page.total_size).unwrap_or(i32::MAX),
    }
}

/// Every page of `opts` both ways; returns the number of images listed.
fn same_pages(e: &Engine, cache: &EncodedImages, mut opts: ListOptions) -> usize {
    let mut listed = 0;
    loop {
        let want = list_page(e.list(&opts).expect("list"));
        let got = cache.page(e, &opts).expect("encoded page");
        let bytes = got.encode_to_vec();
        assert_eq!(bytes.len(), got.encoded_len());
        assert_eq!(bytes, want.encode_to_vec(), "{opts:?}");
        let decoded = pb::ListImagesResponse::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(decoded, want);
        assert_eq!(
            EncodedPage::decode(bytes.as_slice()).expect("round trip"),
            got
        );
        listed += want.images.len();
        if want.next_page_token.is_empty() {
            return listed;
        }
        opts.page_token = want.next_page_token;
    }
}

#[test]
fn encoded_pages_equal_the_summaries_for_every_listing() {
    let e = engine();
    let cache = EncodedImages::default();
    let filter_sets: &[&[&str]] = &[
        &[],
        &["dangling=true"],
        &["label=tier=db"],
        &["reference=registry.example.com/team/app1:1"],
        &["reference=registry.example.com/team/*"],
        &["containers=true"],
    ];
    for filters in filter_sets {
        for order in [Order::Created, Order::Size, Order::Name] {
            for all in [false, true] {
                let opts = ListOptions {
                    filters: filters.iter().map(ToString::to_string).collect(),
                    all,
                    order,
                    page_size: 5,
                    ..ListOptions::default()
                };
                same_pages(&e, &cache, opts);
            }
        }
    }
    let all = ListOptions {
        all: true,
        ..ListOptions::default()
    };
    assert_eq!(same_pages(&e, &cache, all), 36);
}

#[test]
fn a_change_is_seen_by_the_next_listing() {
    let e = engine();
    let cache = EncodedImages::default();
    let all = ListOptions {
        all: true,
        ..ListOptions::default()
    };
    assert_eq!(same_pages(&e, &cache, all.clone()), 36);
    let remove = |reference: &str| {
        e.remove(&RemoveOptions {
            reference: reference.into(),
            ..RemoveOptions::default()
        })
        .expect("remove")
    };
    // One of two names: an untag, the names and repo digests change.
    remove("registry.example.com/team/app7:1");
    assert_eq!(same_pages(&e, &cache, all.clone()), 36);
    // The last name: the app goes, its base is left with the dangling build as its only
    // child, so sizes, flags and parents of other images change.
    remove("registry.example.com/team/app7:2");
    assert_eq!(same_pages(&e, &cache, all), 35);
}

#[test]
fn an_empty_page_encodes_to_nothing() {
    let page = EncodedPage::default();
    assert!(page.encode_to_vec().is_empty());
    assert_eq!(
        pb::ListImagesResponse::decode(&[][..]).expect("empty"),
        pb::ListImagesResponse::default()
    );
}
