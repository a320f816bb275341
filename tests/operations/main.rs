//! Operating Baton: the real binary as processes, the way the compose file runs it, with an
//! in-test OTLP receiver standing in for the collector.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod compose_demo;
mod otlp;
mod process;
#[path = "../support/redis.rs"]
mod redis_server;
mod secrets;
mod shutdown;
mod traces;
