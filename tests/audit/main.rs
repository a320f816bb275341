//! The audit trail against the real server: one record per decision, queries over the
//! delegation tree of a transaction through the admin API only, and no record lost while Redis
//! is away.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../admin/helpers.rs"]
mod admin_helpers;
mod app;
#[path = "../support/eventually.rs"]
mod eventually;
mod every_decision;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod queries;
mod redis_outage;
#[path = "../support/redis.rs"]
mod redis_server;
mod replay;
#[allow(dead_code)]
#[path = "../support/spawn.rs"]
mod spawn;
mod standing_access;
