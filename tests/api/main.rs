//! Integration tests of the gRPC API: each test starts the real server on an ephemeral port
//! with the shipped `policies/` bundle (see `helpers::spawn_app`) and talks to it over TCP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod authorize;
mod bad_input;
mod batch;
mod cache;
#[path = "../support/eventually.rs"]
mod eventually;
mod health;
mod helpers;
mod lifecycle;
mod readiness;
mod redis_cache;
#[path = "../support/redis.rs"]
mod redis_server;
mod reflection;
mod shutdown;
#[allow(dead_code)] // each user takes only part of it
#[path = "../support/spawn.rs"]
mod spawn;
