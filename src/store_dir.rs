//! Files in the store directory (`--store-dir`), the durable local state of one Baton process:
//! each written whole, so a crash or a power cut leaves either the old file or the new one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` whole and durably: a temporary file beside it, synced, renamed
/// into place, and the directory synced so the rename itself survives a power cut.
pub fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temporary(path);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Removes `path`, and syncs its directory so the removal survives a power cut. A file that is
/// already gone is not an error.
pub fn remove_file(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Moves `from` to `to` (in the same file system), and syncs both directories so the move
/// survives a power cut: the file is found in one place or the other, never in neither.
pub fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    sync_dir(to.parent().unwrap_or(Path::new(".")))?;
    sync_dir(from.parent().unwrap_or(Path::new(".")))
}

/// `{path}.tmp`: never ends in `.json`, so readers that list a directory's records skip it.
fn temporary(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_holds_the_new_bytes_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        replace_file(&path, b"one").unwrap();
        replace_file(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let moved = dir.path().join("sub").join("a.json");
        move_file(&path, &moved).unwrap();
        assert_eq!(std::fs::read(&moved).unwrap(), b"two");
        remove_file(&moved).unwrap();
        remove_file(&moved).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub")).unwrap().count(),
            0
        );
    }
}
