//! Where records wait while Redis is unreachable: a local JSON Lines file, synced on every
//! append, replayed to Redis in order when it answers again. It outlives the process, so
//! records spooled before a restart are replayed after it.
//!
//! A replay sends at most its budget and returns, so the writer goes back to its queue between
//! rounds: replaying a whole spool at once, after a long outage, held the writer for seconds
//! while the queue filled and Authorize blocked behind it. What was sent is remembered as a
//! byte offset (in `<spool>.offset`), so a round reads only what it sends, and the file is
//! emptied once everything is sent. A crash between a send and the offset's write sends those
//! records again: the spool delivers at least once, in order.

use std::fs::{self, File};
use std::io::{self, BufRead as _, BufReader, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::jsonl::{JsonlFile, blocking};
use super::sink::Encoded;
use super::stream::RedisTrail;

pub struct Spool {
    file: JsonlFile,
    /// Records in the file after `offset`, not yet replayed.
    pending: usize,
    /// Where the first record not yet replayed starts.
    offset: u64,
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
        let len = fs::metadata(path)?.len();
        // An offset past the end (the file was replaced meanwhile) replays everything.
        let offset = read_offset(path).filter(|&o| o <= len).unwrap_or(0);
        let mut reader = BufReader::new(File::open(path)?);
        reader.seek(SeekFrom::Start(offset))?;
        let pending = reader
            .lines()
            .filter(|l| l.as_ref().map_or(true, |l| !l.is_empty()))
            .count();
        Ok(Self {
            file,
            pending,
            offset,
        })
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

    /// Sends up to `budget` of what waits to `redis`, oldest first, `max_batch` records a
    /// round trip, and remembers how far it got. Stops at the first failure.
    pub async fn replay(
        &mut self,
        redis: &RedisTrail,
        max_batch: usize,
        budget: usize,
    ) -> io::Result<Replayed> {
        let path = self.file.path().to_owned();
        let offset = self.offset;
        let (lines, to_the_end) = blocking(move || read_from(&path, offset, budget.max(1))).await?;
        let mut outcome = Replayed::default();
        // Each line with the offset just past it.
        let mut waiting = Vec::with_capacity(lines.len());
        let mut skipped_to = self.offset;
        for (line, end) in lines {
            match serde_json::from_str(&line) {
                Ok(record) => waiting.push(((Arc::new(record), line), end)),
                Err(e) => {
                    tracing::error!(error = %e, "an unreadable line in the audit spool is lost");
                    outcome.unreadable += 1;
                    if waiting.is_empty() {
                        skipped_to = end;
                    }
                }
            }
        }
        let mut reached = skipped_to;
        let mut done = outcome.unreadable;
        let mut failed = false;
        let records: Vec<Encoded> = waiting.iter().map(|(r, _)| r.clone()).collect();
        for (chunk, ends) in records
            .chunks(max_batch.max(1))
            .zip(waiting.chunks(max_batch.max(1)))
        {
            if !redis.write(chunk).await {
                failed = true;
                break;
            }
            outcome.sent += chunk.len();
            done += chunk.len();
            reached = ends.last().map_or(reached, |(_, end)| *end);
        }
        if to_the_end && !failed {
            // Everything was read and sent: nothing waits, whatever the count said.
            done = self.pending;
        }
        self.advance(reached, done).await?;
        Ok(outcome)
    }

    /// Records that everything before `offset` (`done` records) was sent; empties the file
    /// once nothing waits.
    async fn advance(&mut self, offset: u64, done: usize) -> io::Result<()> {
        self.pending = self.pending.saturating_sub(done);
        self.offset = offset;
        let path = self.file.path().to_owned();
        if self.pending == 0 {
            self.offset = 0;
            // The rename replaces the file the old handle appends to.
            self.file = blocking(move || {
                rewrite(&path, &[])?;
                remove_offset(&path)?;
                JsonlFile::open(&path)
            })
            .await?;
        } else {
            blocking(move || write_offset(&path, offset)).await?;
        }
        Ok(())
    }
}

fn offset_path(spool: &Path) -> PathBuf {
    let mut path = PathBuf::from(spool);
    path.as_mut_os_string().push(".offset");
    path
}

fn read_offset(spool: &Path) -> Option<u64> {
    fs::read_to_string(offset_path(spool))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn write_offset(spool: &Path, offset: u64) -> io::Result<()> {
    let path = offset_path(spool);
    let mut tmp = path.clone();
    tmp.as_mut_os_string().push(".tmp");
    fs::write(&tmp, offset.to_string())?;
    fs::rename(&tmp, &path)
}

fn remove_offset(spool: &Path) -> io::Result<()> {
    match fs::remove_file(offset_path(spool)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Up to `most` whole lines from `offset`, each with the offset just past it, and whether
/// they run to the end of the file; blank lines are stepped over, a last line without its
/// newline (being written) is left for later.
fn read_from(path: &Path, offset: u64, most: usize) -> io::Result<(Vec<(String, u64)>, bool)> {
    let mut reader = BufReader::new(File::open(path)?);
    reader.seek(SeekFrom::Start(offset))?;
    let mut lines = Vec::new();
    let mut at = offset;
    let mut buf = String::new();
    let mut to_the_end = false;
    while lines.len() < most {
        buf.clear();
        let n = reader.read_line(&mut buf)?;
        if n == 0 || !buf.ends_with('\n') {
            to_the_end = n == 0;
            break;
        }
        at += n as u64;
        let line = buf.trim_end_matches(['\n', '\r']);
        if !line.is_empty() {
            lines.push((line.to_owned(), at));
        }
    }
    if lines.len() == most {
        // Full budget: at the end only if nothing follows.
        to_the_end = reader.fill_buf()?.is_empty();
    }
    Ok((lines, to_the_end))
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
