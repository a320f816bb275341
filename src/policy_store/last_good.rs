//! Each replica's own copy of the last bundle it activated, so it can start and serve while the
//! shared store is unreachable.

use std::path::{Path, PathBuf};

use super::dir::{read_json, write_json};
use super::{StoreError, StoredBundle};

/// The local copy of the last bundle this replica activated, `last-good.json`.
pub struct LastGood {
    path: PathBuf,
}

impl LastGood {
    /// The copy kept in `dir`, created if needed.
    pub fn in_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("`{}`: {e}", dir.display())))?;
        Ok(Self {
            path: dir.join("last-good.json"),
        })
    }

    /// Replaces the copy with `bundle`, written whole.
    pub async fn save(&self, bundle: &StoredBundle) -> Result<(), StoreError> {
        write_json(self.path.clone(), bundle.clone()).await
    }

    /// The copy, or `None` if there is none yet.
    pub async fn load(&self) -> Result<Option<StoredBundle>, StoreError> {
        read_json(self.path.clone()).await
    }
}
