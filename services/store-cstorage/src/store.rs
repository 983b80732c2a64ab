//! The [`imaged_core::Store`] implementation.

use imaged_core::Result;

use crate::config::StoreOptions;

/// A containers-storage store managed in place.
#[derive(Debug)]
pub struct CStorageStore {
    opts: StoreOptions,
}

impl CStorageStore {
    /// Opens the store.
    pub fn open(opts: StoreOptions) -> Result<Self> {
        Ok(Self { opts })
    }

    /// Where the store is.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }
}
