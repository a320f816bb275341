//! An append-only JSON Lines file, one record a line: the Redis spool. (The file trail, with
//! rotation and indexes, is [`file_trail`](super::file_trail).)

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Appends whole batches: a batch is one `write`, so a reader sees only whole lines, except
/// perhaps a last one being written.
#[derive(Clone)]
pub struct JsonlFile {
    path: PathBuf,
    file: Arc<File>,
}

impl JsonlFile {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_owned(),
            file: Arc::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `lines` (each a JSON record without its newline). Blocking.
    pub fn append(&self, lines: &[String]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        (&*self.file).write_all(&buf)
    }

    /// Makes what was appended durable. Blocking.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Runs blocking file work off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}
