//! The files of a bundle, read from a directory or received whole.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::diagnostic::{BundleDiagnostic, BundleError};

/// The name of the entity directory, the bundle's users, services, agents and groups.
pub const ENTITIES_FILE: &str = "entities.json";
/// The bundle's test cases live in `tests.json` or any `*.tests.json`.
pub const TESTS_FILE: &str = "tests.json";

/// One file of a bundle: its name within the bundle and its text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceFile {
    /// The file's name, without any directory; its extension says what it holds.
    pub name: String,
    /// The file's contents, UTF-8.
    pub text: String,
}

/// Which part of the policy contract a file holds, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `*.cedarschema`: the Cedar schema.
    Schema,
    /// `*.cedar`: policies.
    Policies,
    /// [`ENTITIES_FILE`]: the entity directory.
    Entities,
    /// [`TESTS_FILE`] or `*.tests.json`: the bundle's own test cases.
    Tests,
}

impl SourceFile {
    /// What the file holds, by its name; `None` for a file that is no part of a bundle.
    pub fn kind(&self) -> Option<SourceKind> {
        if self.name == ENTITIES_FILE {
            Some(SourceKind::Entities)
        } else if self.name == TESTS_FILE || self.name.ends_with(".tests.json") {
            Some(SourceKind::Tests)
        } else if self.name.ends_with(".cedarschema") {
            Some(SourceKind::Schema)
        } else if self.name.ends_with(".cedar") {
            Some(SourceKind::Policies)
        } else {
            None
        }
    }
}

/// Reads the bundle files at the top level of `dir`, sorted by name; other files are ignored.
pub fn read_dir(dir: &Path) -> Result<Vec<SourceFile>, BundleError> {
    let shown = dir.display().to_string();
    let unreadable = |e: std::io::Error| {
        BundleError::single(BundleDiagnostic::in_file(
            &shown,
            format!("cannot read the bundle directory: {e}"),
        ))
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let candidate = SourceFile {
            name,
            text: String::new(),
        };
        if candidate.kind().is_none() || !entry.path().is_file() {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).map_err(|e| {
            BundleError::single(BundleDiagnostic::in_file(
                &candidate.name,
                format!("cannot read: {e}"),
            ))
        })?;
        files.push(SourceFile { text, ..candidate });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// The content address of a bundle: a hash over its files' names and texts, in name order.
pub fn content_hash(files: &[SourceFile]) -> String {
    let mut sorted: Vec<&SourceFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut hasher = Sha256::new();
    for file in sorted {
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        hasher.update((file.name.len() as u64).to_be_bytes());
        hasher.update(file.name.as_bytes());
        hasher.update((file.text.len() as u64).to_be_bytes());
        hasher.update(file.text.as_bytes());
    }
    let digest = hasher.finalize();
    const_hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> SourceFile {
        SourceFile {
            name: name.into(),
            text: text.into(),
        }
    }

    #[test]
    fn hash_ignores_order_but_not_boundaries() {
        let a = [file("a.cedar", "x"), file("b.cedar", "y")];
        let b = [file("b.cedar", "y"), file("a.cedar", "x")];
        assert_eq!(content_hash(&a), content_hash(&b));
        let c = [file("a.cedar", "xb.cedar"), file("", "y")];
        assert_ne!(content_hash(&a), content_hash(&c));
        assert_eq!(content_hash(&a).len(), 16);
    }

    #[test]
    fn kinds_follow_the_contract() {
        assert_eq!(file("s.cedarschema", "").kind(), Some(SourceKind::Schema));
        assert_eq!(file("p.cedar", "").kind(), Some(SourceKind::Policies));
        assert_eq!(file("entities.json", "").kind(), Some(SourceKind::Entities));
        assert_eq!(file("tests.json", "").kind(), Some(SourceKind::Tests));
        assert_eq!(
            file("refunds.tests.json", "").kind(),
            Some(SourceKind::Tests)
        );
        assert_eq!(file("README.md", "").kind(), None);
    }
}
