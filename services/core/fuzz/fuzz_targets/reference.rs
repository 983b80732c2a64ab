//! The reference grammar: parsing never panics, a successful parse formats back to its
//! input, normalisation is idempotent, resolution of any input on a small store never
//! panics.
#![no_main]

use std::sync::{Arc, OnceLock};

use imaged_core::reference::{Reference, normalize_docker_name, normalize_tag_name};
use imaged_testkit::images::{ImageSpec, add_images};
use imaged_core::{Engine, EngineConfig, MemoryStore, Store};
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        let store = Arc::new(MemoryStore::new());
        let base = ImageSpec::base("base", 1).name("quay.io/libpod/alpine:latest");
        let specs = [base.clone(), base.child("c", 2).name("localhost/c:1"), ImageSpec::base("d", 3)];
        let _ = add_images(&*store, &specs);
        Engine::new(store as Arc<dyn Store>, EngineConfig::default())
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Reference::parse(s) {
        assert_eq!(r.to_string(), s);
        assert_eq!(Reference::parse(&r.to_string()), Ok(r));
    }
    if let Ok(n) = normalize_tag_name(s) {
        assert_eq!(normalize_tag_name(&n).ok(), Some(n));
    }
    if let Ok(n) = normalize_docker_name(s) {
        assert_eq!(normalize_docker_name(&n).ok(), Some(n));
    }
    let _ = engine().inspect(s);
});
