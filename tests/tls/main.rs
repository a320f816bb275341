//! TLS everywhere Baton talks: `rediss://` to Redis, and its own listeners.
//! Every test makes its own CA and certificates with `baton::tls::pki`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod binding;
mod cli;
mod clients;
#[path = "../support/eventually.rs"]
mod eventually;
mod listeners;
mod pki;
mod redis;
#[path = "../support/redis.rs"]
mod redis_server;
#[allow(dead_code)] // each user takes only part of it
#[path = "../support/spawn.rs"]
mod spawn;
mod workloads;
