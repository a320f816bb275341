//! The `baton.v1.PolicyAdmin` handlers: convert, call the replica, log who did what, reply.

use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use super::admin_auth::author;
use super::replay_convert;
use super::status::{AdminError, ApiError};
use crate::admission::{Phases, Rejection};
use crate::audit::Audit;
use crate::bundle::{BundleDiagnostic, SourceFile};
use crate::decision::CaseFailure;
use crate::decision::FieldViolation;
use crate::pb::policy_admin_server::PolicyAdmin;
use crate::pb::{self};
use crate::policy_store::replica::{DEFAULT_LIST_LIMIT, Replica};
use crate::policy_store::{BundleRecord, StoreError};
use crate::replay::{phase, replay_records};

/// Answers admin RPCs for one replica.
#[derive(Clone)]
pub struct AdminApi {
    replica: Arc<Replica>,
    audit: Arc<Audit>,
}

impl AdminApi {
    /// Admin RPCs acting through `replica`, replaying decisions from `audit`.
    pub fn new(replica: Arc<Replica>, audit: Arc<Audit>) -> Self {
        Self { replica, audit }
    }

    /// The candidate of a replay: its files, or those of a stored revision.
    async fn candidate(
        &self,
        author: &str,
        files: Vec<pb::BundleFile>,
        revision: u64,
    ) -> Result<Vec<SourceFile>, Status> {
        let one_of = |why: &str| -> Status {
            ApiError::from(crate::decision::InvalidRequest::from(FieldViolation::new(
                "files", why,
            )))
            .into()
        };
        match (files.is_empty(), revision) {
            (false, 0) => Ok(self::files(files)),
            (true, 0) => Err(one_of(
                "is empty and no `revision` is given: name the candidate bundle by its files or a stored revision",
            )),
            (false, _) => Err(one_of(
                "and `revision` are both given: name the candidate one way only",
            )),
            (true, revision) => {
                let stored = self
                    .replica
                    .store()
                    .get(revision)
                    .await
                    .and_then(|s| s.ok_or(StoreError::UnknownRevision(revision)))
                    .map_err(AdminError::from);
                Ok(logged(author, "replay", stored)?.files)
            }
        }
    }
}

/// Logs an admin action's outcome with its author, and turns a failure into its status.
fn logged<T>(
    author: &str,
    action: &'static str,
    result: Result<T, AdminError>,
) -> Result<T, Status> {
    match result {
        Ok(value) => Ok(value),
        Err(e) => {
            tracing::warn!(author, action, error = %e, "admin action refused");
            Err(e.into())
        }
    }
}

fn files(files: Vec<pb::BundleFile>) -> Vec<SourceFile> {
    files
        .into_iter()
        .map(|f| SourceFile {
            name: f.name,
            text: f.content,
        })
        .collect()
}

fn diagnostic(d: &BundleDiagnostic) -> pb::Diagnostic {
    pb::Diagnostic {
        file: d.file.clone(),
        line: u32::try_from(d.line).unwrap_or(u32::MAX),
        column: u32::try_from(d.column).unwrap_or(u32::MAX),
        message: d.message.clone(),
    }
}

fn case_failure(f: &CaseFailure) -> pb::CaseFailure {
    pb::CaseFailure {
        file: f.file.clone(),
        line: u32::try_from(f.line).unwrap_or(u32::MAX),
        name: f.name.clone(),
        problems: f.problems.clone(),
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn timings(phases: &Phases) -> pb::PhaseTimings {
    pb::PhaseTimings {
        parse_micros: micros(phases.parse),
        validate_micros: micros(phases.validate),
        index_micros: micros(phases.index),
        tests_micros: micros(phases.tests),
    }
}

fn seconds(unix: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: i64::try_from(unix).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn info(record: &BundleRecord, active: Option<u64>) -> pb::BundleInfo {
    pb::BundleInfo {
        revision: record.revision,
        version: record.version.clone(),
        author: record.author.clone(),
        message: record.message.clone(),
        created_at: Some(seconds(record.created_at)),
        policy_count: count(record.policies),
        test_count: count(record.tests),
        active: active == Some(record.revision),
    }
}

#[tonic::async_trait]
impl PolicyAdmin for AdminApi {
    async fn validate_bundle(
        &self,
        request: Request<pb::ValidateBundleRequest>,
    ) -> Result<Response<pb::ValidateBundleResponse>, Status> {
        let author = author(&request)?;
        let files = files(request.into_inner().files);
        let response = match self.replica.validate(files).await {
            Ok(admitted) => pb::ValidateBundleResponse {
                valid: true,
                version: admitted.bundle.version().to_owned(),
                policy_count: count(admitted.bundle.policy_count()),
                warnings: admitted.bundle.warnings().iter().map(diagnostic).collect(),
                tests_run: count(admitted.tests.run),
                timings: Some(timings(&admitted.timings)),
                ..Default::default()
            },
            Err(rejection) => {
                let mut response = pb::ValidateBundleResponse {
                    warnings: rejection.warnings().iter().map(diagnostic).collect(),
                    ..Default::default()
                };
                match &rejection {
                    Rejection::Invalid(e) => {
                        response.errors = e.errors.iter().map(diagnostic).collect();
                    }
                    Rejection::TestsFailed { run, failures, .. } => {
                        response.tests_run = count(*run);
                        response.test_failures = failures.iter().map(case_failure).collect();
                    }
                    other => response.limit_exceeded = other.to_string(),
                }
                response
            }
        };
        tracing::info!(
            author,
            action = "validate",
            valid = response.valid,
            "admin action"
        );
        Ok(Response::new(response))
    }

    async fn push_bundle(
        &self,
        request: Request<pb::PushBundleRequest>,
    ) -> Result<Response<pb::PushBundleResponse>, Status> {
        let author = author(&request)?;
        let msg = request.into_inner();
        let files = files(msg.files);
        let pushed = if msg.shadow {
            self.replica.push_shadow(files, &author, &msg.message).await
        } else {
            self.replica.push(files, &author, &msg.message).await
        };
        let pushed = logged(&author, "push", pushed.map_err(AdminError::from))?;
        tracing::info!(
            author,
            action = "push",
            shadow = msg.shadow,
            revision = pushed.record.revision,
            version = pushed.record.version,
            message = pushed.record.message,
            "admin action"
        );
        let active = (!msg.shadow).then_some(pushed.record.revision);
        Ok(Response::new(pb::PushBundleResponse {
            bundle: Some(info(&pushed.record, active)),
            warnings: pushed.warnings.iter().map(diagnostic).collect(),
            tests_run: count(pushed.tests_run),
            timings: Some(timings(&pushed.timings)),
            shadow: msg.shadow,
        }))
    }

    async fn list_bundles(
        &self,
        request: Request<pb::ListBundlesRequest>,
    ) -> Result<Response<pb::ListBundlesResponse>, Status> {
        let author = author(&request)?;
        let limit = match request.into_inner().limit {
            0 => DEFAULT_LIST_LIMIT,
            n => n as usize,
        };
        let store = self.replica.store();
        let listed = async {
            let active = store.active().await?;
            let records = store.list(limit).await?;
            Ok::<_, StoreError>((active, records))
        }
        .await
        .map_err(AdminError::from);
        let (active, records) = logged(&author, "list", listed)?;
        tracing::info!(author, action = "list", "admin action");
        Ok(Response::new(pb::ListBundlesResponse {
            bundles: records.iter().map(|r| info(r, active)).collect(),
            active_revision: active.unwrap_or(0),
        }))
    }

    async fn get_bundle(
        &self,
        request: Request<pb::GetBundleRequest>,
    ) -> Result<Response<pb::GetBundleResponse>, Status> {
        let author = author(&request)?;
        let asked = request.into_inner().revision;
        let store = self.replica.store();
        let fetched = async {
            let active = store.active().await?;
            let revision = match asked {
                0 => active.ok_or(StoreError::UnknownRevision(0))?,
                n => n,
            };
            let stored = store
                .get(revision)
                .await?
                .ok_or(StoreError::UnknownRevision(revision))?;
            Ok::<_, StoreError>((active, stored))
        }
        .await
        .map_err(AdminError::from);
        let (active, stored) = logged(&author, "get", fetched)?;
        tracing::info!(
            author,
            action = "get",
            revision = stored.record.revision,
            "admin action"
        );
        Ok(Response::new(pb::GetBundleResponse {
            bundle: Some(info(&stored.record, active)),
            files: stored
                .files
                .into_iter()
                .map(|f| pb::BundleFile {
                    name: f.name,
                    content: f.text,
                })
                .collect(),
        }))
    }

    async fn activate_bundle(
        &self,
        request: Request<pb::ActivateBundleRequest>,
    ) -> Result<Response<pb::ActivateBundleResponse>, Status> {
        let author = author(&request)?;
        let revision = request.into_inner().revision;
        let previous = self.replica.current().await.map_or(0, |r| r.revision);
        let (record, phases) = logged(
            &author,
            "activate",
            self.replica
                .activate(revision, &author)
                .await
                .map_err(AdminError::from),
        )?;
        tracing::info!(
            author,
            action = "activate",
            revision,
            previous,
            "admin action"
        );
        Ok(Response::new(pb::ActivateBundleResponse {
            active: Some(info(&record, Some(record.revision))),
            previous_revision: previous,
            timings: Some(timings(&phases)),
        }))
    }

    async fn get_shadow_status(
        &self,
        request: Request<pb::GetShadowStatusRequest>,
    ) -> Result<Response<pb::GetShadowStatusResponse>, Status> {
        let author = author(&request)?;
        tracing::info!(author, action = "shadow status", "admin action");
        let Some(status) = self.replica.shadow_status() else {
            return Ok(Response::new(pb::GetShadowStatusResponse::default()));
        };
        Ok(Response::new(pb::GetShadowStatusResponse {
            shadowing: true,
            revision: status.revision,
            version: status.version,
            since: Some(seconds(status.since)),
            sample: status.sample,
            compared: status.compared,
            agreed: status.agreed,
            disagreed: status.disagreed,
            dropped: status.dropped,
            policies: status
                .policies
                .into_iter()
                .map(|p| pb::PolicyDisagreements {
                    policy: p.policy,
                    count: p.count,
                    example_decision_ids: p.examples,
                })
                .collect(),
        }))
    }

    async fn stop_shadow(
        &self,
        request: Request<pb::StopShadowRequest>,
    ) -> Result<Response<pb::StopShadowResponse>, Status> {
        let author = author(&request)?;
        let stopped = logged(
            &author,
            "stop shadow",
            self.replica
                .stop_shadow(&author)
                .await
                .map_err(AdminError::from),
        )?;
        tracing::info!(author, action = "stop shadow", revision = ?stopped, "admin action");
        Ok(Response::new(pb::StopShadowResponse {
            revision: stopped.unwrap_or(0),
        }))
    }

    async fn replay_bundle(
        &self,
        request: Request<pb::ReplayBundleRequest>,
    ) -> Result<Response<pb::ReplayBundleResponse>, Status> {
        let author = author(&request)?;
        let msg = request.into_inner();
        let window = replay_convert::window(&msg).map_err(ApiError::from)?;
        let started = Instant::now();
        let files = self.candidate(&author, msg.files, msg.revision).await?;
        let admitted = logged(
            &author,
            "replay",
            self.replica.validate(files).await.map_err(AdminError::from),
        )?;
        let loaded = started.elapsed();
        let records = self
            .audit
            .records_in(window.from, window.until)
            .map_err(ApiError::from)?;
        let mut report = replay_records(
            Arc::new(admitted.bundle),
            self.replica.settings().clone(),
            window,
            records,
            |_| {},
        )
        .await
        .map_err(ApiError::from)?;
        report.phases.insert(0, phase("load bundle", loaded));
        tracing::info!(
            author,
            action = "replay",
            version = report.candidate_version,
            replayed = report.replayed,
            changed = report.changed,
            "admin action"
        );
        Ok(Response::new(report.into()))
    }

    async fn rollback_bundle(
        &self,
        request: Request<pb::RollbackBundleRequest>,
    ) -> Result<Response<pb::ActivateBundleResponse>, Status> {
        let author = author(&request)?;
        let (from, record) = logged(
            &author,
            "rollback",
            self.replica
                .rollback(&author)
                .await
                .map_err(AdminError::from),
        )?;
        tracing::info!(
            author,
            action = "rollback",
            from,
            to = record.revision,
            "admin action"
        );
        Ok(Response::new(pb::ActivateBundleResponse {
            active: Some(info(&record, Some(record.revision))),
            previous_revision: from,
            timings: None,
        }))
    }
}
