//! The pieces of the file trail: the index of an unpacked file (the live file, or one just
//! rotated away), and packed segments. A segment is gzip with one member per block of about
//! [`BLOCK_BYTES`] (any gzip reader reads it whole), beside an index that files every record's
//! decision id and transaction under the blocks holding it, so a query by either inflates only
//! those blocks instead of the whole history.
//!
//! Index layout (`.idx`, little-endian): the magic `BATONIX1`; records, unreadable lines, the
//! first and last record time (Unix ms), the block count and the entry count (u64 each); per
//! block its offset in the `.jsonl.gz` (u64) and compressed length (u32); then the entries,
//! sorted, each a key (u64) and a block number (u32).

use std::fs::{self, File};
use std::io::{
    self, BufRead as _, BufReader, BufWriter, Read as _, Seek as _, SeekFrom, Write as _,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use flate2::Compression;
use flate2::read::{GzDecoder, MultiGzDecoder};
use flate2::write::GzEncoder;

use super::query::{AuditQuery, Selector};
use super::record::AuditRecord;

/// Uncompressed bytes of one gzip member: the most a keyed query inflates per block it visits.
pub const BLOCK_BYTES: usize = 64 * 1024;
const MAGIC: &[u8; 8] = b"BATONIX1";
const HEADER_BYTES: u64 = 8 + 6 * 8;
const BLOCK_ENTRY_BYTES: u64 = 12;
const ENTRY_BYTES: u64 = 12;
/// One key in this many is held in memory; a lookup reads the entries between two of them.
const FENCE_EVERY: u64 = 512;
/// Unreadable lines logged one by one per file; past that, one summary.
const LOGGED_PER_FILE: u64 = 10;

/// FNV-1a, 64 bits: the same on every build and platform, unlike std's hasher, so an index
/// written by one build is read by the next. A collision only makes a query read a block more.
fn key(tag: u8, value: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::iter::once(tag).chain(value.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The keys `record` is filed under: its id, and its transaction if it has one.
pub fn record_keys(record: &AuditRecord) -> impl Iterator<Item = u64> {
    std::iter::once(key(b'd', &record.id)).chain(record.transaction_id().map(|t| key(b't', t)))
}

/// The key `selector` is looked up by, when the index files it.
pub fn query_key(selector: &Selector) -> Option<u64> {
    match selector {
        Selector::DecisionId(id) => Some(key(b'd', id)),
        Selector::Transaction(txn) => Some(key(b't', txn)),
        Selector::All | Selector::Principal(_) | Selector::Agent(_) => None,
    }
}

/// Text every matching record's JSON line contains verbatim, tested before parsing a line.
/// `None` when the selector names nothing verbatim or JSON would escape the value.
fn needle(selector: &Selector) -> Option<&str> {
    let value = match selector {
        Selector::DecisionId(s) | Selector::Transaction(s) | Selector::Agent(s) => s.as_str(),
        Selector::All | Selector::Principal(_) => return None,
    };
    let verbatim = value
        .chars()
        .all(|c| c != '"' && c != '\\' && !c.is_control());
    verbatim.then_some(value)
}

/// Offers each line of `text` that `query` selects to `each`, until `each` returns false;
/// returns whether to go on. Lines that do not parse were reported when their file was indexed.
pub fn offer_lines(
    text: &[u8],
    query: &AuditQuery,
    each: &mut dyn FnMut(AuditRecord) -> bool,
) -> bool {
    let needle = needle(&query.selector);
    for line in text.split(|&b| b == b'\n') {
        if !offer(line, query, needle, each) {
            return false;
        }
    }
    true
}

fn offer(
    line: &[u8],
    query: &AuditQuery,
    needle: Option<&str>,
    each: &mut dyn FnMut(AuditRecord) -> bool,
) -> bool {
    let Ok(text) = std::str::from_utf8(line) else {
        return true;
    };
    if text.trim().is_empty() || needle.is_some_and(|n| !text.contains(n)) {
        return true;
    }
    match serde_json::from_str::<AuditRecord>(text) {
        Ok(record) if query.matches(&record) => each(record),
        _ => true,
    }
}

/// Where one record of an unpacked file starts, under one of its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// A key from [`record_keys`].
    pub key: u64,
    /// The byte offset of the record's line.
    pub offset: u64,
}

/// How many records a piece of the trail holds, and the times of its oldest and newest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// Records held.
    pub records: u64,
    /// The oldest record's time, Unix ms.
    pub min_ms: u64,
    /// The newest record's time, Unix ms.
    pub max_ms: u64,
}

impl Span {
    /// Takes a record at `ms` in.
    pub fn add(&mut self, ms: u64) {
        if self.records == 0 {
            (self.min_ms, self.max_ms) = (ms, ms);
        } else {
            self.min_ms = self.min_ms.min(ms);
            self.max_ms = self.max_ms.max(ms);
        }
        self.records += 1;
    }

    /// Whether a record in `[min, max]` may be here.
    pub fn overlaps(&self, (min, max): (u64, u64)) -> bool {
        self.records > 0 && self.min_ms <= max && self.max_ms >= min
    }
}

/// What indexing an unpacked file found.
#[derive(Debug, Default)]
pub struct Indexed {
    /// Every readable record under each of its keys, in file order.
    pub entries: Vec<Entry>,
    /// Its records' count and times.
    pub span: Span,
    /// The file's length: where the next line goes.
    pub len: u64,
    /// Lines that are not audit records (already logged, with file and line number).
    pub unreadable: u64,
}

impl Indexed {
    /// Files `record`, whose line starts at `offset`.
    pub fn add(&mut self, record: &AuditRecord, offset: u64) {
        self.span.add(record.time_ms());
        self.entries
            .extend(record_keys(record).map(|key| Entry { key, offset }));
    }
}

/// Reads every line of `path`, indexing the records and reporting (logging with file and line
/// number) every line that is not one. A missing file is empty. Blocking.
pub fn index_file(path: &Path) -> io::Result<Indexed> {
    let mut indexed = Indexed::default();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(indexed),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        number += 1;
        let offset = indexed.len;
        indexed.len += n as u64;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<AuditRecord>(text) {
            Ok(record) => indexed.add(&record, offset),
            Err(e) => {
                indexed.unreadable += 1;
                if indexed.unreadable <= LOGGED_PER_FILE {
                    tracing::warn!(file = %path.display(), line = number, error = %e, "an audit file line is not an audit record");
                }
            }
        }
    }
    if indexed.unreadable > LOGGED_PER_FILE {
        tracing::warn!(file = %path.display(), unreadable = indexed.unreadable, "more audit file lines are not audit records; only the first {LOGGED_PER_FILE} were logged");
    }
    Ok(indexed)
}

/// A segment's name without extension: its sequence number and the times of its first and last
/// record, `00000042_20250602T091407198Z_20250602T101407000Z`.
pub fn segment_name(seq: u64, span: Span) -> String {
    format!(
        "{seq:08}_{}_{}",
        compact_time(span.min_ms),
        compact_time(span.max_ms)
    )
}

/// The sequence number and times in a segment name.
pub fn parse_segment_name(name: &str) -> Option<(u64, Span)> {
    let mut parts = name.split('_');
    let seq = parts.next()?;
    let (min, max) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || seq.len() < 8 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let span = Span {
        records: 1,
        min_ms: parse_compact_time(min)?,
        max_ms: parse_compact_time(max)?,
    };
    Some((seq.parse().ok()?, span))
}

fn compact_time(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t)
        .to_string()
        .replace(['-', ':', '.'], "")
}

fn parse_compact_time(s: &str) -> Option<u64> {
    if s.len() != 19 || !s.is_ascii() {
        return None;
    }
    let p = |a: usize, b: usize| s.get(a..b);
    let text = format!(
        "{}-{}-{}T{}:{}:{}.{}Z",
        p(0, 4)?,
        p(4, 6)?,
        p(6, 8)?,
        p(9, 11)?,
        p(11, 13)?,
        p(13, 15)?,
        p(15, 18)?
    );
    humantime::parse_rfc3339(&text)
        .ok()
        .map(super::record::unix_ms)
}

/// `base` with `ext` appended: `…/00000042_…` → `…/00000042_….jsonl.gz`.
pub fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut path = base.to_owned();
    path.as_mut_os_string().push(".");
    path.as_mut_os_string().push(ext);
    path
}

/// Syncs a directory, so a rename or removal in it survives a crash. Not every platform lets a
/// directory be opened; there the rename stands as the file system keeps it.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir) {
        Ok(d) => d.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Packs the unpacked file `sealed`, indexed as `indexed`, into `base.jsonl.gz` and `base.idx`,
/// each written beside, synced and renamed into place, the index last; then removes `sealed`.
/// A crash at any point leaves `sealed` (packed again at the next start) or the finished
/// segment. Blocking.
pub fn pack(sealed: &Path, base: &Path, indexed: &Indexed) -> io::Result<Packed> {
    let gz_path = with_ext(base, "jsonl.gz");
    let idx_path = with_ext(base, "idx");
    let gz_tmp = with_ext(&gz_path, "tmp");
    let mut reader = BufReader::with_capacity(256 * 1024, File::open(sealed)?);
    let mut out = BufWriter::new(File::create(&gz_tmp)?);
    // Per block: where it starts in `sealed`, and where its member is in the `.jsonl.gz`.
    let mut starts = Vec::new();
    let mut blocks: Vec<(u64, u32)> = Vec::new();
    let mut block = Vec::with_capacity(BLOCK_BYTES + 4096);
    let mut at = 0u64;
    let mut written = 0u64;
    let mut line = Vec::new();
    let mut flush = |block: &mut Vec<u8>, out: &mut BufWriter<File>| -> io::Result<()> {
        // The fastest level: packing runs beside the decisions on the same cores, and on audit
        // records it costs about a third of the default level's time for a few percent more
        // bytes (benches/compare.sh, the `warm, audit file` row).
        let mut gz = GzEncoder::new(Vec::with_capacity(block.len() / 3), Compression::fast());
        gz.write_all(block)?;
        let member = gz.finish()?;
        out.write_all(&member)?;
        let len = u32::try_from(member.len()).map_err(|_| invalid("an oversized block"))?;
        blocks.push((written, len));
        written += u64::from(len);
        block.clear();
        Ok(())
    };
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if block.is_empty() {
            starts.push(at);
        }
        block.extend_from_slice(&line);
        at += n as u64;
        if block.len() >= BLOCK_BYTES {
            flush(&mut block, &mut out)?;
        }
    }
    if !block.is_empty() {
        flush(&mut block, &mut out)?;
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    drop(out);
    fs::rename(&gz_tmp, &gz_path)?;

    let mut filed: Vec<(u64, u32)> = Vec::with_capacity(indexed.entries.len());
    for entry in &indexed.entries {
        let n = starts
            .partition_point(|&s| s <= entry.offset)
            .saturating_sub(1);
        let n = u32::try_from(n).map_err(|_| invalid("too many blocks"))?;
        filed.push((entry.key, n));
    }
    filed.sort_unstable();
    filed.dedup();
    let idx_tmp = with_ext(&idx_path, "tmp");
    let mut idx = BufWriter::new(File::create(&idx_tmp)?);
    idx.write_all(MAGIC)?;
    let span = indexed.span;
    for n in [
        span.records,
        indexed.unreadable,
        span.min_ms,
        span.max_ms,
        blocks.len() as u64,
        filed.len() as u64,
    ] {
        idx.write_all(&n.to_le_bytes())?;
    }
    for (offset, len) in &blocks {
        idx.write_all(&offset.to_le_bytes())?;
        idx.write_all(&len.to_le_bytes())?;
    }
    for (key, block) in &filed {
        idx.write_all(&key.to_le_bytes())?;
        idx.write_all(&block.to_le_bytes())?;
    }
    idx.flush()?;
    idx.get_ref().sync_all()?;
    drop(idx);
    fs::rename(&idx_tmp, &idx_path)?;
    let dir = base.parent().unwrap_or(Path::new("."));
    sync_dir(dir)?;
    fs::remove_file(sealed)?;
    sync_dir(dir)?;
    Packed::open(gz_path, idx_path)
}

/// A packed segment: its index's header, block table and every [`FENCE_EVERY`]th key in
/// memory, the rest on disk.
#[derive(Debug)]
pub struct Packed {
    gz: PathBuf,
    idx: PathBuf,
    /// Its records' count and times.
    pub span: Span,
    /// Lines that were not audit records when it was packed.
    pub unreadable: u64,
    /// `None` when the index is missing or unreadable: queries then inflate the whole segment.
    index: Option<Index>,
}

#[derive(Debug)]
struct Index {
    blocks: Vec<(u64, u32)>,
    entries: u64,
    entries_at: u64,
    fence: Vec<u64>,
}

fn read_u64(r: &mut impl io::Read) -> io::Result<u64> {
    let mut b = [0; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_u32(r: &mut impl io::Read) -> io::Result<u32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

impl Packed {
    /// Opens the segment `gz` with its index `idx`. Blocking.
    pub fn open(gz: PathBuf, idx: PathBuf) -> io::Result<Self> {
        let mut r = BufReader::with_capacity(256 * 1024, File::open(&idx)?);
        let mut magic = [0; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(invalid("not a Baton audit index"));
        }
        let records = read_u64(&mut r)?;
        let unreadable = read_u64(&mut r)?;
        let (min_ms, max_ms) = (read_u64(&mut r)?, read_u64(&mut r)?);
        let (nblocks, entries) = (read_u64(&mut r)?, read_u64(&mut r)?);
        let entries_at = nblocks
            .checked_mul(BLOCK_ENTRY_BYTES)
            .and_then(|b| b.checked_add(HEADER_BYTES));
        let expected = entries_at.and_then(|at| entries.checked_mul(ENTRY_BYTES)?.checked_add(at));
        let (Some(entries_at), Some(expected)) = (entries_at, expected) else {
            return Err(invalid("an index with impossible counts"));
        };
        if fs::metadata(&idx)?.len() != expected {
            return Err(invalid("an index whose length does not match its counts"));
        }
        let gz_len = fs::metadata(&gz)?.len();
        let mut blocks = Vec::new();
        for _ in 0..nblocks {
            let (offset, len) = (read_u64(&mut r)?, read_u32(&mut r)?);
            if offset.saturating_add(u64::from(len)) > gz_len {
                return Err(invalid(
                    "an index naming blocks past the end of its segment",
                ));
            }
            blocks.push((offset, len));
        }
        let mut fence = Vec::new();
        for n in 0..entries {
            let key = read_u64(&mut r)?;
            let block = read_u32(&mut r)?;
            if u64::from(block) >= nblocks {
                return Err(invalid("an index naming a block its segment lacks"));
            }
            if n % FENCE_EVERY == 0 {
                fence.push(key);
            }
        }
        Ok(Self {
            gz,
            idx,
            span: Span {
                records,
                min_ms,
                max_ms,
            },
            unreadable,
            index: Some(Index {
                blocks,
                entries,
                entries_at,
                fence,
            }),
        })
    }

    /// A segment without a usable index, its times taken from its name: queries inflate it all.
    pub fn unindexed(gz: PathBuf, idx: PathBuf, span: Span) -> Self {
        Self {
            gz,
            idx,
            span,
            unreadable: 0,
            index: None,
        }
    }

    /// The segment's file.
    pub fn path(&self) -> &Path {
        &self.gz
    }

    /// Removes the index, then the segment; a crash between leaves a segment queried whole.
    pub fn remove(&self) -> io::Result<()> {
        for path in [&self.idx, &self.gz] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// The blocks filed under `key`, in order.
    fn blocks_of(index: &Index, idx: &Path, key: u64) -> io::Result<Vec<u32>> {
        let first = index.fence.partition_point(|&k| k < key).saturating_sub(1) as u64;
        let end = index.fence.partition_point(|&k| k <= key) as u64;
        if end == 0 {
            return Ok(Vec::new());
        }
        let from = first * FENCE_EVERY;
        let to = (end * FENCE_EVERY).min(index.entries);
        let mut file = File::open(idx)?;
        file.seek(SeekFrom::Start(index.entries_at + from * ENTRY_BYTES))?;
        let len = usize::try_from((to - from) * ENTRY_BYTES).map_err(|_| invalid("oversized"))?;
        let mut buf = vec![0; len];
        file.read_exact(&mut buf)?;
        let mut found = Vec::new();
        for e in buf.chunks_exact(ENTRY_BYTES as usize) {
            let (k, b) = e.split_at(8);
            let k: [u8; 8] = k.try_into().map_err(|_| invalid("a short entry"))?;
            if u64::from_le_bytes(k) == key {
                let b: [u8; 4] = b.try_into().map_err(|_| invalid("a short entry"))?;
                found.push(u32::from_le_bytes(b));
            }
        }
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }

    /// Offers the records `query` selects to `each`, oldest first, until it returns false;
    /// returns whether to go on. Blocking.
    pub fn select(
        &self,
        query: &AuditQuery,
        each: &mut dyn FnMut(AuditRecord) -> bool,
    ) -> io::Result<bool> {
        if !self.span.overlaps(query.range_ms()) {
            return Ok(true);
        }
        let mut gz = File::open(&self.gz)?;
        match (&self.index, query_key(&query.selector)) {
            (Some(index), Some(key)) => {
                let mut member = Vec::new();
                let mut text = Vec::with_capacity(BLOCK_BYTES * 2);
                for n in Self::blocks_of(index, &self.idx, key)? {
                    let Some(&(offset, len)) = index.blocks.get(n as usize) else {
                        continue;
                    };
                    gz.seek(SeekFrom::Start(offset))?;
                    member.resize(len as usize, 0);
                    gz.read_exact(&mut member)?;
                    text.clear();
                    GzDecoder::new(member.as_slice()).read_to_end(&mut text)?;
                    if !offer_lines(&text, query, each) {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            _ => {
                let mut reader = BufReader::with_capacity(256 * 1024, MultiGzDecoder::new(gz));
                let needle = needle(&query.selector);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line)? == 0 {
                        return Ok(true);
                    }
                    let text = line.strip_suffix(b"\n").unwrap_or(&line);
                    if !offer(text, query, needle, each) {
                        return Ok(false);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_carry_sequence_and_times_both_ways() {
        let span = Span {
            records: 1,
            min_ms: 1_748_855_647_198,
            max_ms: 1_748_859_247_000,
        };
        let name = segment_name(42, span);
        assert_eq!(name, "00000042_20250602T091407198Z_20250602T101407000Z");
        assert_eq!(parse_segment_name(&name), Some((42, span)));
        for foreign in ["notes", "1_2_3", "00000042_2025_2026", "00000042_x_y_z"] {
            assert_eq!(parse_segment_name(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn needles_are_only_values_json_keeps_verbatim() {
        assert_eq!(needle(&Selector::Transaction("t-1".into())), Some("t-1"));
        assert_eq!(needle(&Selector::Transaction("a\"b".into())), None);
        assert_eq!(needle(&Selector::Agent("x\\y".into())), None);
        assert_eq!(needle(&Selector::Principal("User:alice".into())), None);
    }
}
