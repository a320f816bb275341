//! Baton: a policy decision point for AI agents that call other agents.
//!
//! - [`identity`]: users, services and agents, the members of a delegation chain.
//! - [`bundle`]: Cedar policy bundles, validated whole, indexed, and immutable once built.
//! - [`decision`]: the decision core, pure and synchronous over a bundle: connection allowlist,
//!   scope narrowing, chain rules, session length and obligations.
//! - [`token`]: Ed25519 keys, strict compact JWS, verdict and access token claims, upstream tokens.
//! - [`delegation`]: chained hops from verified subject tokens, asserted-chain trust, and the
//!   signed verdicts token minters consume.
//! - [`minter`]: the reference token minter: a verdict in, once, an RFC 9068 access token out.
//! - [`http`]: the HTTP side: the verdict keys at `/.well-known/jwks.json`.
//! - [`cache`]: decisions remembered in process and, with Redis, across replicas, keyed by every
//!   input of a decision.
//! - [`fleet`]: what replicas share through Redis: the connection, its health, the cache epoch.
//! - [`audit`]: the audit trail: one record per decision, revocation and approval, through a
//!   bounded queue into a JSON Lines file or Redis Streams, and the queries over it.
//! - [`ewma`]: moving averages of what each way of answering costs.
//! - [`policy_store`]: pushed bundle revisions and the active pointer, in a local directory or
//!   Redis; each replica follows the pointer and keeps its last good bundle on disk.
//! - [`http`]: the HTTP side: the verdict keys at `/.well-known/jwks.json`, `/metrics`, and
//!   the `/healthz` and `/readyz` probes.
//! - [`metrics`]: every Prometheus instrument, in one registry reachable from the state.
//! - [`readiness`]: whether this replica takes new calls, for gRPC health and `/readyz` alike.
//! - [`state`]: the active bundle behind an atomic pointer, and the server's rules.
//! - [`transport`]: the gRPC handlers, the only code that sees wire types ([`pb`]).
//! - [`server`]: runs the gRPC server on a listener until shutdown.
//! - [`cli`], [`telemetry`]: the command line, and the logs and OTLP trace export of the
//!   `baton` binary.

pub mod approval;
pub mod audit;
pub mod bundle;
pub mod cache;
pub mod cli;
pub mod decision;
pub mod delegation;
pub mod ewma;
pub mod fleet;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod minter;
pub mod named_tokens;
pub mod pb;
pub mod policy_store;
pub mod readiness;
pub mod revocation;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod token;
pub mod transport;
