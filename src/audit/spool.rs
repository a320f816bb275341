//! Where records wait while Redis is unreachable: a local JSON Lines file, synced on every
//! append, replayed to Redis in order when it answers again. It outlives the process, so
//! records spooled before a restart are replayed after it.

use std::fs::{self, File};
use std::io::{self, BufRead as _, BufReader};
use std::path::{Path, PathBuf};

use super::jsonl::{JsonlFile, blocking};
use super::sink::Encoded;
use super::stream::RedisTrail;

pub struct Spool {
    file: JsonlFile,
    /// Records in the file, not yet replayed.
    pending: usize,
}

/// What one replay attempt did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    pub sent: usize,
    /// Lines that no longer parse: counted as lost, never retried.
    pub unreadable: usize,
}

impl Spool {
    /// Opens the spool at `path`, counting what a previous run left in it. Blocking.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = JsonlFile::open(path)?;
        let pending = BufReader::new(File::open(path)?).lines().count();
        Ok(Self { file, pending })
    }

    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Appends `batch` after everything already waiting, durably.
    pub async fn push(&mut self, batch: &[Encoded]) -> io::Result<()> {
        let lines: Vec<String> = batch.iter().map(|(_, json)| json.clone()).collect();
        let file = self.file.clone();
        blocking(move || {
            file.append(&lines)?;
            file.sync()
        })
        .await?;
        self.pending += batch.len();
        Ok(())
    }

    /// Sends what waits to `redis`, oldest first, `max_batch` records a round trip, and keeps
    /// only what was not sent. Stops at the first failure.
    pub async fn replay(&mut self, redis: &RedisTrail, max_batch: usize) -> io::Result<Replayed> {
        let path = self.file.path().to_owned();
        let lines = blocking(move || read_lines(&path)).await?;
        let mut outcome = Replayed::default();
        let mut waiting = Vec::with_capacity(lines.len());
        for line in lines {
            match serde_json::from_str(&line) {
                Ok(record) => waiting.push((record, line)),
                Err(e) => {
                    tracing::error!(error = %e, "an unreadable line in the audit spool is lost");
                    outcome.unreadable += 1;
                }
            }
        }
        let mut sent = 0;
        for chunk in waiting.chunks(max_batch.max(1)) {
            if !redis.write(chunk).await {
                break;
            }
            sent += chunk.len();
        }
        outcome.sent = sent;
        let rest: Vec<String> = waiting.drain(sent..).map(|(_, line)| line).collect();
        self.pending = rest.len();
        let path = self.file.path().to_owned();
        // The rename replaces the file the old handle appends to.
        self.file = blocking(move || {
            rewrite(&path, &rest)?;
            JsonlFile::open(&path)
        })
        .await?;
        Ok(outcome)
    }
}

fn read_lines(path: &Path) -> io::Result<Vec<String>> {
    BufReader::new(File::open(path)?)
        .lines()
        .filter(|l| l.as_ref().map_or(true, |l| !l.is_empty()))
        .collect()
}

/// Replaces the spool's content with `rest`: written beside it, synced, then renamed over it,
/// so a crash leaves either the old content or the new, never a mix.
fn rewrite(path: &Path, rest: &[String]) -> io::Result<()> {
    let mut tmp = PathBuf::from(path);
    tmp.as_mut_os_string().push(".tmp");
    let _ = fs::remove_file(&tmp);
    let file = JsonlFile::open(&tmp)?;
    file.append(rest)?;
    file.sync()?;
    fs::rename(&tmp, path)
}
