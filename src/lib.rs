//! Baton: a policy decision point for AI agents that call other agents.
//!
//! - [`identity`]: users, services and agents, the members of a delegation chain.
//! - [`bundle`]: Cedar policy bundles, validated whole, indexed, and immutable once built.
//! - [`decision`]: the decision core, pure and synchronous over a bundle: connection allowlist,
//!   scope narrowing, chain rules, session length and obligations.

//! - [`state`]: the active bundle behind an atomic pointer, and the server's rules.
//! - [`transport`]: the gRPC handlers, the only code that sees wire types ([`pb`]).
//! - [`server`]: runs the gRPC server on a listener until shutdown.
//! - [`cli`], [`telemetry`]: the command line and logging of the `baton` binary.

pub mod bundle;
pub mod cli;
pub mod decision;
pub mod identity;
pub mod pb;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod transport;
