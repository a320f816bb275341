//! Revocations: which agents, principals, transactions and verdicts may no longer act, kept
//! where every replica sees them within a second and where a restart finds them again.
//!
//! With Redis, the hash `{prefix}:revocations` is the truth: a change is written there first
//! (so a revoke either reaches every replica or fails and can be retried), then a doorbell
//! makes every replica reload at once, and each also reloads every [`FOLLOW_INTERVAL`]. The
//! last set seen is also written to the local file, so a replica started while Redis is down
//! still enforces it. Without Redis, the local file is the truth.

mod set;

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

pub use self::set::{Revocation, RevocationSet, Target, revoked_outcome};
use crate::fleet::Fleet;

/// How often a replica re-reads the revocations even without a doorbell.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

const NOTICE: &str = "revocations";

#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("Redis did not take the change, so it is in force nowhere; retry")]
    Unavailable,
    #[error("cannot keep revocations in `{path}`: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the revocations file `{path}` is not valid: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("in_force", &self.current.load().all().count())
            .field("shared", &self.fleet.is_some())
            .field("file", &self.file)
            .finish()
    }
}

pub struct Revocations {
    current: ArcSwap<RevocationSet>,
    fleet: Option<Arc<Fleet>>,
    file: Option<PathBuf>,
    /// One change at a time, so the file and the snapshot never go back in time.
    changing: tokio::sync::Mutex<()>,
}

impl Revocations {
    /// None in force and nothing kept: what tests and the library default start from.
    pub fn in_memory() -> Self {
        Self {
            current: ArcSwap::from_pointee(RevocationSet::default()),
            fleet: None,
            file: None,
            changing: tokio::sync::Mutex::new(()),
        }
    }

    /// Starts from the local file, if any, then follows Redis, if configured. Must be called
    /// within a Tokio runtime when `fleet` is given.
    pub fn open(
        file: Option<PathBuf>,
        fleet: Option<Arc<Fleet>>,
    ) -> Result<Arc<Self>, RevocationError> {
        let initial = match &file {
            Some(path) => read_file(path)?,
            None => Vec::new(),
        };
        let revocations = Arc::new(Self {
            current: ArcSwap::from_pointee(RevocationSet::new(initial)),
            fleet,
            file,
            changing: tokio::sync::Mutex::new(()),
        });
        if let Some(fleet) = &revocations.fleet {
            tokio::spawn(follow(Arc::downgrade(&revocations), fleet.notices()));
        }
        Ok(revocations)
    }

    /// The revocations in force for the length of one request.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<RevocationSet>> {
        self.current.load()
    }

    /// Puts `revocation` in force, replacing any earlier one of the same target.
    pub async fn revoke(&self, revocation: Revocation) -> Result<(), RevocationError> {
        let _one = self.changing.lock().await;
        if let Some(fleet) = &self.fleet {
            let value =
                serde_json::to_string(&revocation).map_err(|_| RevocationError::Unavailable)?;
            let cmd = redis::cmd("HSET")
                .arg(fleet.key("revocations"))
                .arg(revocation.target.key())
                .arg(value)
                .clone();
            fleet
                .query::<i64>("HSET revocation", &cmd)
                .await
                .ok_or(RevocationError::Unavailable)?;
            fleet.ring(NOTICE).await;
        }
        let mut all: Vec<Revocation> = self.current.load().all().cloned().collect();
        all.retain(|r| r.target != revocation.target);
        all.push(revocation);
        self.install(all)
    }

    /// Lifts the revocation of `target`; returns it, or None if there was none.
    pub async fn lift(&self, target: &Target) -> Result<Option<Revocation>, RevocationError> {
        let _one = self.changing.lock().await;
        let lifted = self.current.load().get(target, 0).cloned();
        if let Some(fleet) = &self.fleet {
            let cmd = redis::cmd("HDEL")
                .arg(fleet.key("revocations"))
                .arg(target.key())
                .clone();
            fleet
                .query::<i64>("HDEL revocation", &cmd)
                .await
                .ok_or(RevocationError::Unavailable)?;
            fleet.ring(NOTICE).await;
        }
        let all: Vec<Revocation> = self
            .current
            .load()
            .all()
            .filter(|r| &r.target != target)
            .cloned()
            .collect();
        self.install(all)?;
        Ok(lifted)
    }

    /// Keeps `all` on disk, then in force. The file is replaced whole, never half-written.
    fn install(&self, mut all: Vec<Revocation>) -> Result<(), RevocationError> {
        let now = crate::delegation::verdict::unix(std::time::SystemTime::now());
        all.retain(|r| r.in_force(now));
        if let Some(path) = &self.file {
            write_file(path, &all)?;
        }
        self.current.store(Arc::new(RevocationSet::new(all)));
        Ok(())
    }

    /// Reads the whole set from Redis now; false if Redis did not answer, in which case what
    /// was in force stays. Without Redis there is nothing to read.
    pub async fn reload(&self) -> bool {
        let Some(fleet) = &self.fleet else {
            return true;
        };
        let cmd = redis::cmd("HGETALL").arg(fleet.key("revocations")).clone();
        let Some(fields) = fleet
            .query::<Vec<(String, String)>>("HGETALL revocations", &cmd)
            .await
        else {
            return false;
        };
        let all: Vec<Revocation> = fields
            .iter()
            .filter_map(|(field, value)| {
                let parsed = serde_json::from_str::<Revocation>(value).ok();
                if parsed.is_none() {
                    tracing::warn!(
                        field,
                        "ignoring a revocation Redis holds in a form this release cannot read"
                    );
                }
                parsed
            })
            .collect();
        let _one = self.changing.lock().await;
        let now = crate::delegation::verdict::unix(std::time::SystemTime::now());
        let lapsed: Vec<String> = all
            .iter()
            .filter(|r| !r.in_force(now))
            .map(|r| r.target.key())
            .collect();
        if !lapsed.is_empty() {
            // Any replica may tidy up; HDEL of a field already gone is harmless.
            let cmd = redis::cmd("HDEL")
                .arg(fleet.key("revocations"))
                .arg(&lapsed)
                .clone();
            let _ = fleet.query::<i64>("HDEL lapsed revocations", &cmd).await;
        }
        if RevocationSet::new(all.clone()) != **self.current.load()
            && let Err(e) = self.install(all)
        {
            tracing::warn!(error = %e, "revocations are in force but not kept on disk");
        }
        true
    }
}

async fn follow(
    revocations: Weak<Revocations>,
    mut notices: tokio::sync::broadcast::Receiver<String>,
) {
    loop {
        let Some(strong) = revocations.upgrade() else {
            return;
        };
        let _ = strong.reload().await;
        drop(strong);
        // A doorbell for anything else, or a lagging receiver, also just means: look again.
        let _ = tokio::time::timeout(FOLLOW_INTERVAL, async {
            while let Ok(notice) = notices.recv().await {
                if notice == NOTICE {
                    return;
                }
            }
        })
        .await;
    }
}

fn read_file(path: &PathBuf) -> Result<Vec<Revocation>, RevocationError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| RevocationError::Corrupt {
            path: path.clone(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(RevocationError::File {
            path: path.clone(),
            source,
        }),
    }
}

fn write_file(path: &PathBuf, all: &[Revocation]) -> Result<(), RevocationError> {
    let io = |source| RevocationError::File {
        path: path.clone(),
        source,
    };
    let json = serde_json::to_vec_pretty(all).map_err(|e| io(std::io::Error::other(e)))?;
    let partial = path.with_extension("partial");
    std::fs::write(&partial, json).map_err(io)?;
    std::fs::rename(&partial, path).map_err(io)
}

#[cfg(test)]
mod tests;
