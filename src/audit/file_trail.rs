//! The embedded trail: an append-only JSON Lines file, rotated into segments in a directory
//! beside it (`baton-audit.jsonl` → `baton-audit.segments/`), packed and indexed in the
//! background, deleted oldest first past the retention.
//!
//! Every piece of the trail is indexed by decision id and transaction: the live file and a file
//! just rotated away in memory (built at start by reading them, then by the writer as it
//! appends), packed segments on disk ([`segment`](super::segment)). So a query by transaction
//! reads only the lines and blocks that can hold it, in the order they were written: the
//! segments oldest first, then the live file.
//!
//! Rotation never loses or repeats a record: the writer is the only appender; it syncs the live
//! file, renames it into the segments directory, opens a new one, and then, under the lock
//! queries take their view under, puts the old file (still open, still indexed) among the
//! segments. A query sees it either as the live file or as a segment, never both. Packing later
//! swaps the unpacked file for its packed form under the same lock.
//!
//! Lines that are not audit records and files in the segments directory that are not Baton's
//! are reported when found, at start or at packing: logged with file (and line) and counted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::AuditError;
use super::jsonl::blocking;
use super::query::{AuditPage, AuditQuery, AuditTrail};
use super::record::AuditRecord;
use super::segment::{
    self, Indexed, Packed, Span, index_file, offer_lines, parse_segment_name, query_key,
    segment_name, sync_dir, with_ext,
};
use super::sink::{AuditSink, Encoded, Outcome};
use super::writer::Counters;

/// When the live file is rotated, and which segments are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate once the live file holds this many bytes; 0 never rotates by size.
    pub max_bytes: u64,
    /// Rotate before a record that is this much newer than the live file's oldest.
    pub interval: Option<Duration>,
    /// Which segments to keep.
    pub keep: Keep,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            interval: None,
            keep: Keep::default(),
        }
    }
}

/// Which rotated segments are kept; the others are deleted whole, oldest first. The default
/// keeps them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keep {
    /// Delete a segment whose newest record is this much older than the trail's newest.
    pub age: Option<Duration>,
    /// Keep at most this many segments.
    pub segments: Option<usize>,
}

impl std::str::FromStr for Keep {
    type Err = String;

    /// `30d`, `200` (segments), or both: `30d,200`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut keep = Self::default();
        for part in s.split(',').map(str::trim) {
            if let Ok(n) = part.parse::<usize>() {
                if n == 0 || keep.segments.replace(n).is_some() {
                    return Err(format!("`{part}`: expected one segment count above zero"));
                }
            } else {
                let age = humantime::parse_duration(part).map_err(|e| {
                    format!("`{part}` is neither a number of segments nor a duration: {e}")
                })?;
                if keep.age.replace(age).is_some() {
                    return Err(format!("`{part}`: one age at most"));
                }
            }
        }
        Ok(keep)
    }
}

/// A file of JSON lines with its index in memory: the live file, or one rotated away and not
/// yet packed. The read handle stays valid across the rename.
struct Unpacked {
    read: Mutex<File>,
    indexed: Mutex<Indexed>,
}

impl Unpacked {
    fn new(path: &Path, indexed: Indexed) -> io::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            read: Mutex::new(File::open(path)?),
            indexed: Mutex::new(indexed),
        }))
    }

    fn span(&self) -> Span {
        self.indexed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .span
    }

    /// As [`Packed::select`]: the lines filed under the query's key, or every line.
    fn select(
        &self,
        query: &AuditQuery,
        each: &mut dyn FnMut(AuditRecord) -> bool,
    ) -> io::Result<bool> {
        let key = query_key(&query.selector);
        let (offsets, len) = {
            let indexed = self.indexed.lock().unwrap_or_else(PoisonError::into_inner);
            if !indexed.span.overlaps(query.range_ms()) {
                return Ok(true);
            }
            let offsets: Vec<u64> = match key {
                Some(key) => indexed
                    .entries
                    .iter()
                    .filter(|e| e.key == key)
                    .map(|e| e.offset)
                    .collect(),
                None => Vec::new(),
            };
            (offsets, indexed.len)
        };
        let mut file = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        if key.is_none() {
            // Up to what the writer has finished, never a batch being written.
            file.seek(SeekFrom::Start(0))?;
            let mut reader = BufReader::with_capacity(256 * 1024, (&*file).take(len));
            let mut chunk = Vec::new();
            loop {
                chunk.clear();
                let n = reader.read_until(b'\n', &mut chunk)?;
                if n == 0 {
                    return Ok(true);
                }
                if !offer_lines(&chunk, query, each) {
                    return Ok(false);
                }
            }
        }
        let mut last = None;
        let mut line = Vec::new();
        for offset in offsets {
            // A record filed under two keys that are both asked for is read once.
            if last == Some(offset) {
                continue;
            }
            last = Some(offset);
            file.seek(SeekFrom::Start(offset))?;
            line.clear();
            BufReader::new(&*file).read_until(b'\n', &mut line)?;
            if !offer_lines(&line, query, each) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A rotated piece of the trail.
#[derive(Clone)]
enum Piece {
    Unpacked(Arc<Unpacked>),
    Packed(Arc<Packed>),
}

impl Piece {
    fn select(
        &self,
        query: &AuditQuery,
        each: &mut dyn FnMut(AuditRecord) -> bool,
    ) -> io::Result<bool> {
        match self {
            Self::Unpacked(u) => u.select(query, each),
            Self::Packed(p) => match p.select(query, each) {
                // Deleted by retention since the query took its view.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
                // A damaged segment must not make the rest of the trail unreadable; it is
                // named in the log on every query that passes it over.
                Err(e) => {
                    tracing::error!(file = %p.path().display(), error = %e, "an audit segment cannot be read; the query goes on without it");
                    Ok(true)
                }
                ok => ok,
            },
        }
    }

    fn span(&self) -> Span {
        match self {
            Self::Unpacked(u) => u.span(),
            Self::Packed(p) => p.span,
        }
    }
}

/// What queries read: the segments, oldest first, then the live file.
struct View {
    segments: Segments,
    live: Arc<Unpacked>,
}

struct Shared {
    path: PathBuf,
    dir: PathBuf,
    rotation: Rotation,
    view: RwLock<View>,
    counters: Arc<Counters>,
    /// Segments being packed; zero when everything rotated is packed.
    packing: watch::Sender<usize>,
}

/// Where queries read the file trail; cheap to clone.
#[derive(Clone)]
pub struct FileTrail {
    shared: Arc<Shared>,
}

/// What the writer owns: the live file's append handle, and the next segment's number.
struct Appender {
    trail: FileTrail,
    append: File,
    next_seq: u64,
}

/// The segments directory of the live file `path`: `baton-audit.jsonl` → `baton-audit.segments`.
pub fn segments_dir(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(|| "audit".into(), |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}.segments"))
}

/// Opens the live file for appending, so a last line cut short by a crash stays one line of its
/// own (reported as unreadable) rather than swallowing the next record.
fn open_live(path: &Path) -> io::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    let len = file.metadata()?.len();
    if len > 0 {
        let mut last = [0u8];
        file.seek(SeekFrom::Start(len - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            tracing::warn!(file = %path.display(), "the audit file ends in a line cut short, as by a crash; it is closed off and reported as unreadable");
            file.write_all(b"\n")?;
            file.sync_data()?;
        }
    }
    Ok(file)
}

/// Opens the trail at `path`: indexes the live file, takes stock of the segments directory
/// (reporting what is not Baton's), deletes what the retention no longer keeps, and packs in
/// the background whatever a crash left unpacked. Blocking, except that packing is spawned.
pub fn open(
    path: &Path,
    rotation: Rotation,
    counters: Arc<Counters>,
) -> io::Result<(FileSink, FileTrail)> {
    let dir = segments_dir(path);
    fs::create_dir_all(&dir)?;
    match fs::remove_file(next_live(path)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let append = open_live(path)?;
    let live_indexed = index_file(path)?;
    counters
        .unreadable
        .fetch_add(live_indexed.unreadable, Ordering::Relaxed);
    let live = Unpacked::new(path, live_indexed)?;
    let (segments, to_pack) = take_stock(&dir, &counters)?;
    let next_seq = segments.last().map_or(0, |(seq, _)| seq + 1);
    let (packing, _) = watch::channel(0);
    let trail = FileTrail {
        shared: Arc::new(Shared {
            path: path.to_owned(),
            dir,
            rotation,
            view: RwLock::new(View { segments, live }),
            counters,
            packing,
        }),
    };
    trail.apply_retention();
    for (seq, sealed, base, unpacked) in to_pack {
        trail.pack_in_background(seq, sealed, base, unpacked);
    }
    let sink = FileSink {
        inner: Arc::new(Mutex::new(Appender {
            trail: trail.clone(),
            append,
            next_seq,
        })),
    };
    Ok((sink, trail))
}

/// An unpacked segment waiting to be packed: its number, file, base name and index.
type ToPack = (u64, PathBuf, PathBuf, Arc<Unpacked>);

/// The segments of the view, each with its sequence number, oldest first.
type Segments = Vec<(u64, Piece)>;

/// The segments in `dir`, oldest first, and those a crash left unpacked.
fn take_stock(dir: &Path, counters: &Counters) -> io::Result<(Segments, Vec<ToPack>)> {
    let mut segments = Vec::new();
    let mut to_pack = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        names.push(name);
    }
    names.sort();
    let foreign = |name: &str, why: &str| {
        counters.foreign.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(file = %dir.join(name).display(), "{why}; it is left alone and never read");
    };
    for name in &names {
        let path = dir.join(name);
        if name.ends_with(".tmp") && parse_segment_name(base_of(name)).is_some() {
            // Half-written by a packing a crash interrupted; its source is still there.
            fs::remove_file(&path)?;
            continue;
        }
        if let Some(base) = name.strip_suffix(".idx") {
            if parse_segment_name(base).is_none() {
                foreign(name, "not a file of the audit trail");
            } else if !names.contains(&format!("{base}.jsonl.gz")) {
                foreign(name, "an audit index without its segment");
            }
            continue;
        }
        let (base, packed) = if let Some(base) = name.strip_suffix(".jsonl.gz") {
            (base, true)
        } else if let Some(base) = name.strip_suffix(".jsonl") {
            (base, false)
        } else {
            foreign(name, "not a file of the audit trail");
            continue;
        };
        let Some((seq, named)) = parse_segment_name(base) else {
            foreign(name, "not a file of the audit trail");
            continue;
        };
        let base_path = dir.join(base);
        let has = |ext: &str| names.contains(&format!("{base}.{ext}"));
        if packed && !has("idx") && has("jsonl") {
            // Packing was cut short; the unpacked file is packed again, over this one.
            continue;
        }
        if packed {
            let idx = with_ext(&base_path, "idx");
            let piece = match Packed::open(path.clone(), idx.clone()) {
                Ok(p) => {
                    counters
                        .unreadable
                        .fetch_add(p.unreadable, Ordering::Relaxed);
                    if p.unreadable > 0 {
                        tracing::warn!(file = %path.display(), unreadable = p.unreadable, "an audit segment holds lines that are not audit records");
                    }
                    p
                }
                Err(e) => {
                    counters.foreign.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(file = %path.display(), error = %e, "an audit segment without a usable index; queries read it whole");
                    Packed::unindexed(path, idx, named)
                }
            };
            segments.push((seq, Piece::Packed(Arc::new(piece))));
        } else if has("idx") && has("jsonl.gz") {
            // Packed and indexed, but the crash came before its source was removed.
            fs::remove_file(&path)?;
        } else {
            let indexed = index_file(&path)?;
            counters
                .unreadable
                .fetch_add(indexed.unreadable, Ordering::Relaxed);
            let unpacked = Unpacked::new(&path, indexed)?;
            segments.push((seq, Piece::Unpacked(Arc::clone(&unpacked))));
            to_pack.push((seq, path, base_path, unpacked));
        }
    }
    segments.sort_by_key(|(seq, _)| *seq);
    Ok((segments, to_pack))
}

/// The segment name in a file name, before its extensions.
fn base_of(name: &str) -> &str {
    name.split_once('.').map_or(name, |(base, _)| base)
}

impl FileTrail {
    fn view(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.shared
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn view_mut(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.shared
            .view
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Packs segment `seq` on a blocking thread, then swaps it into the view.
    fn pack_in_background(
        &self,
        seq: u64,
        sealed: PathBuf,
        base: PathBuf,
        unpacked: Arc<Unpacked>,
    ) {
        self.shared.packing.send_modify(|n| *n += 1);
        let trail = self.clone();
        tokio::task::spawn_blocking(move || {
            let packed = {
                let indexed = unpacked
                    .indexed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                segment::pack(&sealed, &base, &indexed)
            };
            match packed {
                Ok(packed) => {
                    let mut view = trail.view_mut();
                    if let Some((_, piece)) = view.segments.iter_mut().find(|(s, _)| *s == seq) {
                        *piece = Piece::Packed(Arc::new(packed));
                    }
                    drop(view);
                    trail.apply_retention();
                }
                Err(e) => {
                    tracing::error!(error = %e, file = %sealed.display(), "cannot pack a rotated audit file; it stays unpacked and is packed at the next start");
                }
            }
            trail.shared.packing.send_modify(|n| *n -= 1);
        });
    }

    /// Deletes whole packed segments, oldest first, past the retention; logs and counts each.
    fn apply_retention(&self) {
        let keep = self.shared.rotation.keep;
        let mut doomed = Vec::new();
        {
            let mut view = self.view_mut();
            let newest = view
                .segments
                .iter()
                .map(|(_, p)| p.span())
                .chain([view.live.span()])
                .filter(|s| s.records > 0)
                .map(|s| s.max_ms)
                .max()
                .unwrap_or(0);
            loop {
                let too_many = keep.segments.is_some_and(|n| view.segments.len() > n);
                let Some((_, Piece::Packed(oldest))) = view.segments.first() else {
                    break;
                };
                let too_old = keep.age.is_some_and(|age| {
                    let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
                    oldest.span.max_ms.saturating_add(age) < newest
                });
                if !too_many && !too_old {
                    break;
                }
                doomed.push(Arc::clone(oldest));
                view.segments.remove(0);
            }
        }
        for segment in doomed {
            match segment.remove() {
                Ok(()) => {
                    self.shared.counters.deleted.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(file = %segment.path().display(), records = segment.span.records, "deleted an audit segment past the retention");
                }
                Err(e) => {
                    tracing::error!(error = %e, file = %segment.path().display(), "cannot delete an audit segment past the retention");
                }
            }
        }
    }

    /// Returns once every rotated segment is packed and indexed.
    pub async fn packed(&self) {
        let mut packing = self.shared.packing.subscribe();
        let _ = packing.wait_for(|n| *n == 0).await;
    }

    /// Answers `query` from every piece, oldest first, stopping once the page is full.
    /// Blocking.
    fn answer(&self, query: &AuditQuery) -> io::Result<AuditPage> {
        let wanted = query.offset + query.page_size + 1;
        let mut matching = Vec::new();
        self.select(query, &mut |record: AuditRecord| {
            matching.push(record);
            matching.len() < wanted
        })?;
        Ok(query.page_of(matching.into_iter()))
    }

    /// Offers every record `query` selects to `each`, oldest first, from one view of the
    /// pieces, until `each` returns false; its page is not looked at. Blocking.
    pub fn select(
        &self,
        query: &AuditQuery,
        each: &mut dyn FnMut(AuditRecord) -> bool,
    ) -> io::Result<()> {
        let (segments, live) = {
            let view = self.view();
            let segments: Vec<Piece> = view.segments.iter().map(|(_, p)| p.clone()).collect();
            (segments, Arc::clone(&view.live))
        };
        for piece in &segments {
            if !piece.select(query, each)? {
                return Ok(());
            }
        }
        live.select(query, each)?;
        Ok(())
    }
}

#[async_trait]
impl AuditTrail for FileTrail {
    async fn query(&self, query: AuditQuery) -> Result<AuditPage, AuditError> {
        let trail = self.clone();
        blocking(move || trail.answer(&query))
            .await
            .map_err(AuditError::Unavailable)
    }
}

impl Appender {
    fn live(&self) -> Arc<Unpacked> {
        Arc::clone(&self.trail.view().live)
    }

    /// Whether a record at `ms` must start a new file, by the interval.
    fn due_by_time(&self, ms: u64) -> bool {
        let Some(interval) = self.trail.shared.rotation.interval else {
            return false;
        };
        let span = self.live().span();
        let interval = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        span.records > 0 && ms >= span.min_ms.saturating_add(interval)
    }

    fn due_by_size(&self) -> bool {
        let max = self.trail.shared.rotation.max_bytes;
        let live = self.live();
        let indexed = live.indexed.lock().unwrap_or_else(PoisonError::into_inner);
        max > 0 && indexed.len >= max && indexed.span.records > 0
    }

    /// Appends `batch` in one write and files its records in the live index. Blocking.
    fn write(&mut self, batch: &[Encoded]) -> io::Result<()> {
        let live = self.live();
        let start = live
            .indexed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len;
        let mut buf = Vec::with_capacity(batch.iter().map(|(_, l)| l.len() + 1).sum());
        let mut offsets = Vec::with_capacity(batch.len());
        for (_, line) in batch {
            offsets.push(start + buf.len() as u64);
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        let written = self.append.write_all(&buf);
        let mut indexed = live.indexed.lock().unwrap_or_else(PoisonError::into_inner);
        match written {
            Ok(()) => {
                for ((record, _), offset) in batch.iter().zip(offsets) {
                    indexed.add(record, offset);
                }
                indexed.len = start + buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Part of the batch may be there: the next line starts where the file ends.
                if let Ok(meta) = self.append.metadata() {
                    indexed.len = meta.len();
                }
                Err(e)
            }
        }
    }

    /// Syncs the live file, moves it into the segments directory and puts a new, empty one in
    /// its place; the old one joins the view's segments and is packed in the background. The
    /// new file is made first, so a failure leaves everything as it was. Blocking, but for the
    /// packing.
    fn rotate(&mut self) -> io::Result<()> {
        let shared = Arc::clone(&self.trail.shared);
        let live = self.live();
        let span = live.span();
        if span.records == 0 {
            return Ok(());
        }
        self.append.sync_data()?;
        let next_path = next_live(&shared.path);
        drop(File::create(&next_path)?);
        let append = OpenOptions::new().append(true).open(&next_path)?;
        let unpacked = Unpacked::new(&next_path, Indexed::default())?;
        let seq = self.next_seq;
        let base = shared.dir.join(segment_name(seq, span));
        let sealed = with_ext(&base, "jsonl");
        fs::rename(&shared.path, &sealed)?;
        if let Err(e) = fs::rename(&next_path, &shared.path) {
            fs::rename(&sealed, &shared.path)?;
            return Err(e);
        }
        self.next_seq += 1;
        sync_dir(&shared.dir)?;
        if let Some(parent) = shared.path.parent() {
            sync_dir(parent)?;
        }
        self.append = append;
        {
            let mut view = self.trail.view_mut();
            view.segments
                .push((seq, Piece::Unpacked(Arc::clone(&live))));
            view.live = unpacked;
        }
        shared.counters.rotated.fetch_add(1, Ordering::Relaxed);
        tracing::info!(file = %sealed.display(), records = span.records, "rotated the audit file");
        self.trail.pack_in_background(seq, sealed, base, live);
        Ok(())
    }

    /// Appends `batch`, rotating before it when the interval says so and after it when the
    /// size does. Blocking.
    fn take(&mut self, batch: &[Encoded]) -> Outcome {
        let n = batch.len();
        if batch
            .first()
            .is_some_and(|(record, _)| self.due_by_time(record.time_ms()))
        {
            self.rotate_or_log();
        }
        let outcome = match self.write(batch) {
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
        };
        if self.due_by_size() {
            self.rotate_or_log();
        }
        outcome
    }

    fn rotate_or_log(&mut self) {
        if let Err(e) = self.rotate() {
            tracing::error!(error = %e, "cannot rotate the audit file; appending to it still");
        }
    }
}

/// Where the next live file is made before it takes the live file's place. It is empty until
/// then, so one a crash leaves behind is simply removed.
fn next_live(path: &Path) -> PathBuf {
    with_ext(path, "next")
}

/// The writer's end, shared with the blocking thread each batch is written on.
pub struct FileSink {
    inner: Arc<Mutex<Appender>>,
}

impl FileSink {
    /// Runs `work` on the appender, on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Appender) -> T + Send + 'static,
    ) -> io::Result<T> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            Ok(work(
                &mut inner.lock().unwrap_or_else(PoisonError::into_inner),
            ))
        })
        .await
    }
}

#[async_trait]
impl AuditSink for FileSink {
    async fn append(&mut self, batch: Vec<Encoded>) -> Outcome {
        let n = batch.len();
        match self.with(move |a| a.take(&batch)).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, records = n, "the audit writer's thread failed; records lost");
                Outcome {
                    lost: n,
                    ..Outcome::default()
                }
            }
        }
    }

    async fn sync(&mut self) -> io::Result<()> {
        self.with(|a| a.append.sync_data()).await?
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::audit::record::ApprovalRecord;
    use crate::audit::{Audit, AuditMode, AuditSettings, AuditStats, Selector};

    const T0: u64 = 1_750_000_000_000;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(T0 + ms)
    }

    /// A record of transaction `txn` at `ms` after [`T0`].
    fn record(txn: &str, ms: u64) -> AuditRecord {
        AuditRecord::approval_granted(
            ApprovalRecord {
                approval_id: format!("ap-{txn}-{ms}"),
                transaction_id: Some(txn.to_owned()),
                request_hash: "h".repeat(64),
                approver: "carol".into(),
                admin: None,
                rationale: "padding to make a record the size of a decision's ".repeat(4),
                approvals_required: 1,
                approvals_needed: 0,
            },
            at(ms),
        )
    }

    fn settings(dir: &Path, rotation: Rotation) -> AuditSettings {
        AuditSettings {
            mode: AuditMode::File,
            file: dir.join("audit.jsonl"),
            rotation,
            // Small batches, so rotations fall between them often.
            max_batch: 16,
            ..AuditSettings::default()
        }
    }

    fn small(keep: Keep) -> Rotation {
        Rotation {
            max_bytes: 8 * 1024,
            interval: None,
            keep,
        }
    }

    async fn all_of(audit: &Audit, selector: Selector) -> Vec<AuditRecord> {
        let mut records = Vec::new();
        let mut query = AuditQuery {
            page_size: 1000,
            ..AuditQuery::new(selector)
        };
        loop {
            let page = audit.query(query.clone()).await.unwrap();
            records.extend(page.records);
            match page.next_offset {
                Some(next) => query.offset = next,
                None => return records,
            }
        }
    }

    fn ids(records: &[AuditRecord]) -> Vec<String> {
        records.iter().map(|r| r.id.clone()).collect()
    }

    fn files(dir: &Path, ext: &str) -> usize {
        fs::read_dir(dir.join("audit.segments"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(ext)
            })
            .count()
    }

    /// Eight writers, 320 transactions of three records each, into a file rotated every 8 KiB
    /// while queries run: no query ever sees a record twice, and afterwards every transaction
    /// has exactly its three records, in order, from packed segments and the live file alike.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn rotation_under_concurrent_writes_loses_and_repeats_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let audit =
            Arc::new(Audit::start(&settings(dir.path(), small(Keep::default())), None).unwrap());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (audit, stop) = (Arc::clone(&audit), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut rounds = 0;
                while !stop.load(Ordering::Relaxed) {
                    let seen = ids(&all_of(&audit, Selector::All).await);
                    let unique: BTreeSet<_> = seen.iter().collect();
                    assert_eq!(unique.len(), seen.len(), "a query saw a record twice");
                    let txn = all_of(&audit, Selector::Transaction("w3-t7".into())).await;
                    assert!(txn.len() <= 3, "{txn:?}");
                    rounds += 1;
                }
                rounds
            })
        };
        let mut writers = Vec::new();
        for w in 0..8u64 {
            let audit = Arc::clone(&audit);
            writers.push(tokio::spawn(async move {
                for t in 0..40u64 {
                    for hop in 0..3 {
                        audit
                            .record(record(&format!("w{w}-t{t}"), w * 1_000_000 + t * 10 + hop))
                            .await;
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
        audit.flush().await;
        stop.store(true, Ordering::Relaxed);
        assert!(reader.await.unwrap() > 0);
        audit.packed().await;

        let stats = audit.stats();
        assert!(stats.segments_rotated >= 5, "{stats:?}");
        assert_eq!(stats.written, 8 * 40 * 3);
        assert_eq!(
            files(dir.path(), ".jsonl.gz"),
            stats.segments_rotated as usize
        );
        assert_eq!(files(dir.path(), ".idx"), stats.segments_rotated as usize);
        assert_eq!(
            files(dir.path(), ".jsonl"),
            0,
            "every rotated file is packed"
        );
        for w in 0..8u64 {
            for t in 0..40u64 {
                let txn = format!("w{w}-t{t}");
                let found = all_of(&audit, Selector::Transaction(txn.clone())).await;
                let times: Vec<u64> = found.iter().map(|r| r.time_ms() - T0).collect();
                let base = w * 1_000_000 + t * 10;
                assert_eq!(times, vec![base, base + 1, base + 2], "{txn}");
            }
        }
        let every = all_of(&audit, Selector::All).await;
        assert_eq!(every.len(), 8 * 40 * 3);
        let one = &every[500];
        let by_id = all_of(&audit, Selector::DecisionId(one.id.clone())).await;
        assert_eq!(ids(&by_id), vec![one.id.clone()]);
        audit.close().await;
    }

    /// The writer lingers before it writes, so a record answered a moment ago may not be in
    /// the file yet; a query waits for it rather than miss it, and so does anything waiting on
    /// `written`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_sees_the_record_answered_just_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let settings = AuditSettings {
            max_batch: 512,
            ..settings(dir.path(), Rotation::default())
        };
        let audit = Audit::start(&settings, None).unwrap();
        for round in 0..20u64 {
            let txn = format!("q{round}");
            audit.record(record(&txn, round)).await;
            let found = audit
                .query(AuditQuery::new(Selector::Transaction(txn.clone())))
                .await
                .unwrap();
            assert_eq!(found.records.len(), 1, "{txn}");
        }

        for t in 0..200u64 {
            audit.record(record(&format!("b{t}"), 100 + t)).await;
        }
        audit.written().await;
        assert_eq!(all_of(&audit, Selector::All).await.len(), 220);
        audit.close().await;
    }

    /// After a restart the trail answers as before; a line cut short by a crash, a line that
    /// is not a record and a file that is not Baton's are each reported, and nothing else is
    /// lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_reads_everything_back_and_reports_what_is_not_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path(), small(Keep::default()));
        let audit = Audit::start(&settings, None).unwrap();
        for t in 0..100u64 {
            audit.record(record(&format!("t{t}"), t)).await;
        }
        audit.close().await;
        audit.packed().await;
        let rotated = audit.stats().segments_rotated;
        assert!(rotated >= 2);
        drop(audit);

        let mut live = OpenOptions::new()
            .append(true)
            .open(&settings.file)
            .unwrap();
        live.write_all(b"not json at all\n{\"id\":\"cut short")
            .unwrap();
        fs::write(dir.path().join("audit.segments/notes.txt"), "mine").unwrap();
        let audit = Audit::start(&settings, None).unwrap();
        let stats = audit.stats();
        assert_eq!(
            (stats.unreadable_lines, stats.foreign_files),
            (2, 1),
            "{stats:?}"
        );
        audit.record(record("t100", 100)).await;
        audit.flush().await;
        for t in 0..=100u64 {
            let found = all_of(&audit, Selector::Transaction(format!("t{t}"))).await;
            assert_eq!(found.len(), 1, "t{t}");
            assert_eq!(found[0].time_ms(), T0 + t);
        }
        let every = all_of(&audit, Selector::All).await;
        assert_eq!(every.len(), 101);
        assert!(dir.path().join("audit.segments/notes.txt").exists());
    }

    /// A segment whose index is gone is reported and read whole; one that is not gzip at all is
    /// reported and passed over, and the rest of the trail still answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_segment_without_its_index_is_reported_and_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path(), small(Keep::default()));
        let audit = Audit::start(&settings, None).unwrap();
        for t in 0..100u64 {
            audit.record(record(&format!("t{t}"), t)).await;
        }
        audit.close().await;
        audit.packed().await;
        drop(audit);
        let segments = dir.path().join("audit.segments");
        let mut idx: Vec<PathBuf> = fs::read_dir(&segments)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".idx"))
            .collect();
        idx.sort();
        fs::remove_file(&idx[0]).unwrap();
        let span = Span {
            records: 1,
            min_ms: T0 + 500,
            max_ms: T0 + 600,
        };
        fs::write(
            segments.join(format!("{}.jsonl.gz", segment_name(99_999_999, span))),
            "not gzip",
        )
        .unwrap();

        let audit = Audit::start(&settings, None).unwrap();
        assert_eq!(audit.stats().foreign_files, 2);
        assert_eq!(all_of(&audit, Selector::All).await.len(), 100);
        for t in 0..100u64 {
            let found = all_of(&audit, Selector::Transaction(format!("t{t}"))).await;
            assert_eq!(found.len(), 1, "t{t}");
        }
    }

    /// A crash between rotating and packing leaves an unpacked segment; the next start packs it.
    #[tokio::test]
    async fn a_segment_left_unpacked_is_packed_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path(), Rotation::default());
        let audit = Audit::start(&settings, None).unwrap();
        for t in 0..10u64 {
            audit.record(record(&format!("t{t}"), t)).await;
        }
        audit.close().await;
        drop(audit);
        let span = Span {
            records: 10,
            min_ms: T0,
            max_ms: T0 + 9,
        };
        let sealed = dir
            .path()
            .join("audit.segments")
            .join(format!("{}.jsonl", segment_name(0, span)));
        fs::rename(&settings.file, &sealed).unwrap();

        let audit = Audit::start(&settings, None).unwrap();
        audit.packed().await;
        assert!(!sealed.exists());
        assert_eq!(files(dir.path(), ".jsonl.gz"), 1);
        let found = all_of(&audit, Selector::Transaction("t4".into())).await;
        assert_eq!(found.len(), 1);
        audit.record(record("t10", 10)).await;
        audit.flush().await;
        assert_eq!(all_of(&audit, Selector::All).await.len(), 11);
    }

    /// Retention deletes whole segments, oldest first, and counts them; by count and by age.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_deletes_whole_segments_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let keep = Keep {
            age: None,
            segments: Some(2),
        };
        let audit = Audit::start(&settings(dir.path(), small(keep)), None).unwrap();
        for t in 0..200u64 {
            audit.record(record(&format!("t{t}"), t)).await;
        }
        audit.close().await;
        audit.packed().await;
        let AuditStats {
            segments_rotated,
            segments_deleted,
            ..
        } = audit.stats();
        assert!(segments_rotated > 3);
        assert_eq!(segments_deleted, segments_rotated - 2);
        assert_eq!(files(dir.path(), ".jsonl.gz"), 2);
        let every = all_of(&audit, Selector::All).await;
        // What is left is the newest records, without a gap up to the last.
        let times: Vec<u64> = every.iter().map(|r| r.time_ms() - T0).collect();
        let first = times[0];
        assert!(first > 0);
        assert_eq!(times, (first..200).collect::<Vec<_>>());
        assert!(
            all_of(&audit, Selector::Transaction("t0".into()))
                .await
                .is_empty()
        );

        // By age: once a record an hour newer is in, every segment is more than a minute older
        // than the newest record. Retention runs after each packing and at start; here at start.
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path(), small("1m".parse().unwrap()));
        let audit = Audit::start(&settings, None).unwrap();
        for t in 0..100u64 {
            audit.record(record(&format!("t{t}"), t)).await;
        }
        audit.flush().await;
        audit.packed().await;
        let rotated = audit.stats().segments_rotated;
        assert!(rotated > 0);
        assert_eq!(audit.stats().segments_deleted, 0);
        audit.record(record("late", 3_600_000)).await;
        audit.close().await;
        drop(audit);
        let audit = Audit::start(&settings, None).unwrap();
        assert_eq!(audit.stats().segments_deleted, rotated);
        assert_eq!(files(dir.path(), ".jsonl.gz"), 0);
        assert_eq!(files(dir.path(), ".idx"), 0);
        let left = all_of(&audit, Selector::All).await;
        assert!(left.iter().any(|r| r.transaction_id() == Some("late")));
        assert!(left.len() < 101);
    }

    /// With an interval, a record that much newer than the file's oldest starts a new file.
    #[tokio::test]
    async fn an_interval_rotates_by_record_time() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = Rotation {
            max_bytes: 0,
            interval: Some(Duration::from_secs(3600)),
            keep: Keep::default(),
        };
        let audit = Audit::start(&settings(dir.path(), rotation), None).unwrap();
        for t in 0..30u64 {
            let ms = t * 600_000; // every ten minutes
            audit.record(record(&format!("t{t}"), ms)).await;
            audit.flush().await;
        }
        audit.close().await;
        audit.packed().await;
        assert_eq!(audit.stats().segments_rotated, 4);
        assert_eq!(all_of(&audit, Selector::All).await.len(), 30);
    }

    #[test]
    fn keep_takes_an_age_a_count_or_both() {
        let both: Keep = "30d,200".parse().unwrap();
        assert_eq!(both.segments, Some(200));
        assert_eq!(both.age, Some(Duration::from_secs(30 * 86400)));
        assert!("0".parse::<Keep>().is_err());
        assert!("soon".parse::<Keep>().is_err());
        assert!("1d,2d".parse::<Keep>().is_err());
    }
}
