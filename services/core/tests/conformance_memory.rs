//! The conformance suite on the MemoryStore (the reference backend).
#![cfg(feature = "conformance")]

use std::sync::Arc;

use imaged_core::{MemoryStore, Store, conformance};

#[test]
fn memory_store_conforms() {
    conformance::run_all(&|| Arc::new(MemoryStore::new()) as Arc<dyn Store>);
}

#[test]
fn every_decision_table_row_has_cases_for_both_policies() {
    let cases = conformance::removal_cases();
    for row in 1..=22 {
        let tag = format!("#{row}");
        let policies: &[&str] = match row {
            16 => &["podman"], // Docker has no external (build) containers.
            22 => &["cri"],
            _ => &["podman", "docker"],
        };
        for policy in policies {
            let found = cases.iter().any(|c| {
                c.name.starts_with(policy)
                    && c.source.starts_with("table")
                    && c.source.split([' ', ',']).any(|w| w == tag)
            });
            assert!(found, "no {policy} case for decision-table row {tag}");
        }
    }
}
