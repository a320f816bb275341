//! Reading a file trail whole, read-only, from outside the server that writes it (`baton
//! policy replay --audit-file`): the segments whose names say they overlap a time range, oldest
//! first, then the live file. Nothing is opened for writing, packed, indexed or deleted, so it
//! is safe beside a running server; a rotation during the read can only make it miss or repeat
//! the records of the file being rotated, which a report over the trail tolerates.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;

use super::file_trail::segments_dir;
use super::record::AuditRecord;
use super::segment::parse_segment_name;

/// The files of a trail to read, in order.
#[derive(Debug, Clone)]
pub struct TrailFiles {
    files: Vec<(PathBuf, bool)>,
    bytes: u64,
}

impl TrailFiles {
    /// The segments beside `live` that may hold records in `[min, max]` (Unix ms), then `live`.
    /// Refused when there is neither a live file nor a segments directory.
    pub fn find(live: &Path, (min, max): (u64, u64)) -> io::Result<Self> {
        let dir = segments_dir(live);
        let mut names: Vec<String> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        if names.is_empty() && !live.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no audit trail at `{}` (neither the file nor `{}`)",
                    live.display(),
                    dir.display()
                ),
            ));
        }
        names.sort();
        let mut segments: Vec<(u64, PathBuf, bool)> = Vec::new();
        for name in &names {
            let (base, packed) = if let Some(base) = name.strip_suffix(".jsonl.gz") {
                (base, true)
            } else if let Some(base) = name.strip_suffix(".jsonl") {
                (base, false)
            } else {
                continue;
            };
            let Some((seq, span)) = parse_segment_name(base) else {
                continue;
            };
            let has = |ext: &str| names.contains(&format!("{base}.{ext}"));
            // The server's own rules for a packing a crash cut short (`take_stock`): a packed
            // file without its index is being written, its source is whole; a source beside a
            // finished pack is about to be removed.
            let complete_pack = has("jsonl.gz") && has("idx");
            if (packed && !has("idx") && has("jsonl")) || (!packed && complete_pack) {
                continue;
            }
            if span.max_ms < min || span.min_ms > max {
                continue;
            }
            segments.push((seq, dir.join(name), packed));
        }
        segments.sort_by_key(|(seq, _, _)| *seq);
        let mut files: Vec<(PathBuf, bool)> =
            segments.into_iter().map(|(_, p, g)| (p, g)).collect();
        if live.exists() {
            files.push((live.to_owned(), false));
        }
        let bytes = files
            .iter()
            .filter_map(|(p, _)| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        Ok(Self { files, bytes })
    }

    /// Bytes on disk of every file to read.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The records, oldest first, adding the bytes read from disk to `read` as it goes.
    pub fn records(self, read: Arc<AtomicU64>) -> Records {
        Records {
            files: self.files.into_iter(),
            current: None,
            line: Vec::new(),
            read,
            unreadable: 0,
        }
    }
}

/// Every record of a trail's files, in order; lines that are not records are counted.
pub struct Records {
    files: std::vec::IntoIter<(PathBuf, bool)>,
    current: Option<Box<dyn BufRead + Send>>,
    line: Vec<u8>,
    read: Arc<AtomicU64>,
    unreadable: u64,
}

impl Records {
    /// Lines read so far that are not audit records.
    pub fn unreadable(&self) -> u64 {
        self.unreadable
    }

    fn open_next(&mut self) -> Option<io::Result<()>> {
        let (path, packed) = self.files.next()?;
        let file = match File::open(&path) {
            Ok(f) => f,
            // Deleted by retention, or rotated into a segment, since it was listed.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(Ok(())),
            Err(e) => {
                return Some(Err(io::Error::new(
                    e.kind(),
                    format!("cannot read `{}`: {e}", path.display()),
                )));
            }
        };
        let counted = Counted {
            inner: file,
            read: Arc::clone(&self.read),
        };
        self.current = Some(if packed {
            Box::new(BufReader::with_capacity(
                256 * 1024,
                MultiGzDecoder::new(counted),
            ))
        } else {
            Box::new(BufReader::with_capacity(256 * 1024, counted))
        });
        Some(Ok(()))
    }
}

impl Iterator for Records {
    type Item = io::Result<AuditRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let Some(reader) = &mut self.current else {
                match self.open_next()? {
                    Ok(()) => continue,
                    Err(e) => return Some(Err(e)),
                }
            };
            self.line.clear();
            match reader.read_until(b'\n', &mut self.line) {
                Ok(0) => {
                    self.current = None;
                    continue;
                }
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
            let text = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<AuditRecord>(text) {
                Ok(record) => return Some(Ok(record)),
                // A line cut short by a write in progress, or not Baton's; the server reports
                // these when it indexes the file.
                Err(_) => self.unreadable += 1,
            }
        }
    }
}

/// A reader that counts the bytes it reads.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
