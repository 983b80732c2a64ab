//! The filter language and page tokens: parsing and compiling any filter list never
//! panics, and every error names a `filters[i]` field; any page token is either accepted or
//! rejected with INVALID_PAGE_TOKEN.
#![no_main]

use std::sync::{Arc, OnceLock};

use imaged_core::error::ErrorKind;
use imaged_core::filter::{self, until};
use imaged_core::ops::ListOptions;
use imaged_testkit::images::{ImageSpec, add_images};
use imaged_core::{Engine, EngineConfig, MemoryStore, Store};
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        let store = Arc::new(MemoryStore::new());
        let specs = [
            ImageSpec::base("a", 1).name("localhost/a:latest").label("k", "v"),
            ImageSpec::base("b", 2),
        ];
        let _ = add_images(&*store, &specs);
        Engine::new(store as Arc<dyn Store>, EngineConfig::default())
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let filters: Vec<String> = s.split('\n').map(str::to_owned).collect();
    let _ = until::parse_time(s, 0);
    match filter::parse(&filters, "filters") {
        Ok(_) => {}
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::InvalidFilter);
            assert!(e.field_violations[0].field.starts_with("filters["));
        }
    }
    let listed = engine().list(&ListOptions { filters: filters.clone(), ..ListOptions::default() });
    if let Err(e) = listed {
        assert!(matches!(e.kind, ErrorKind::InvalidFilter), "{e:?}");
    }
    let token = engine().list(&ListOptions { page_token: s.to_owned(), ..ListOptions::default() });
    if let Err(e) = token {
        assert_eq!(e.kind, ErrorKind::InvalidPageToken);
    }
});
