//! Verifiable delegation end to end: a real Baton on ephemeral ports (see `helpers`), a token
//! minter it trusts (in process and as the `baton-minter` binary), and the attacks a delegation
//! chain must survive, each failing closed with its own reason.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod algorithms;
mod attacks;
mod chain;
mod exchange;
mod helpers;
mod keys;
mod minting;
#[path = "../support/redis.rs"]
mod redis;
mod revocation;
#[allow(dead_code)] // each user takes only part of it
#[path = "../support/spawn.rs"]
mod spawn;
mod token_endpoint;
