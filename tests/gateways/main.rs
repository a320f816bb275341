//! The gateway doors against the real server: Envoy `ext_authz` checks on the decision port and
//! AuthZEN evaluations on the HTTP port, including every public AuthZEN interop case, and
//! thousands of mutated requests on both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod authzen;
mod authzen_interop;
mod ext_authz;
mod fuzz;
#[allow(dead_code)] // each user takes only part of it
#[path = "../delegation/helpers.rs"]
mod helpers;
mod http;
#[allow(dead_code)]
#[path = "../support/spawn.rs"]
mod spawn;
