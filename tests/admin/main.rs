//! Integration tests of the admin API: pushes, validation, rollbacks and authentication against
//! a real server with its own bundle store, and replicas sharing a real Redis; revocation and
//! human approval through the governance API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod approval_outage;
mod approvals;
mod approvers;
mod fault_run;
mod governance;
mod helpers;
mod long_tokens;
mod lost_redis;
mod nesting;
mod push;
mod redis_store;
mod reflection;
mod replicas;
mod shadow;
#[allow(dead_code)] // each user takes only part of it
#[path = "../support/spawn.rs"]
mod spawn;
mod store_start;
mod swaps;
mod undecodable;
