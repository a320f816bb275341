//! The embedded sink: an append-only JSON Lines file, one record a line, and the queries a
//! scan of it answers. Also the format of the Redis spool.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use super::AuditError;
use super::query::{AuditPage, AuditQuery, AuditTrail};
use super::record::AuditRecord;
use super::sink::{AuditSink, Encoded, Outcome};

/// Appends whole batches: a batch is one `write`, so a reader sees only whole lines, except
/// perhaps a last one being written, which it skips.
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

#[async_trait]
impl AuditSink for JsonlFile {
    async fn append(&mut self, batch: Vec<Encoded>) -> Outcome {
        let n = batch.len();
        let file = self.clone();
        let lines: Vec<String> = batch.into_iter().map(|(_, json)| json).collect();
        match blocking(move || file.append(&lines)).await {
            Ok(()) => Outcome {
                written: n,
                ..Outcome::default()
            },
            Err(e) => {
                tracing::error!(error = %e, records = n, "cannot append to the audit file; records lost");
                Outcome {
                    lost: n,
                    ..Outcome::default()
                }
            }
        }
    }

    async fn sync(&mut self) -> io::Result<()> {
        let file = self.clone();
        blocking(move || file.sync()).await
    }
}

/// Queries scan the file the sink appends to; a line being written is skipped.
#[async_trait]
impl AuditTrail for JsonlFile {
    async fn query(&self, query: AuditQuery) -> Result<AuditPage, AuditError> {
        let path = self.path.clone();
        blocking(move || self::query(&path, &query))
            .await
            .map_err(AuditError::Unavailable)
    }
}

/// Answers `query` by scanning the file, stopping once the page is full. Blocking.
pub fn query(path: &Path, query: &AuditQuery) -> io::Result<AuditPage> {
    let wanted = query.offset + query.page_size + 1;
    let mut matching = Vec::new();
    scan(path, |record| {
        if query.matches(&record) {
            matching.push(record);
        }
        matching.len() < wanted
    })?;
    Ok(query.page_of(matching.into_iter()))
}

/// Feeds each readable record to `each` until it returns false.
fn scan(path: &Path, mut each: impl FnMut(AuditRecord) -> bool) -> io::Result<()> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for line in BufReader::new(file).lines() {
        match serde_json::from_str(&line?) {
            Ok(record) => {
                if !each(record) {
                    break;
                }
            }
            Err(e) => tracing::debug!(error = %e, "skipping an unreadable audit line"),
        }
    }
    Ok(())
}

/// Runs blocking file work off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?
}
