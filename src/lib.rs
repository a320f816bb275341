//! Baton: a policy decision point for AI agents that call other agents.
//!
//! From the doors down, each layer importing only those below it:
//!
//! - **Doors**: [`transport`] (the gRPC services; the only code that sees wire types, [`pb`]),
//!   [`http`] (JWKS, metrics, probes), [`console`] (the web console) and [`cli`]. A door converts, asks the pipeline,
//!   converts back. Operators' actions go through [`governance`], whichever door they use.
//! - **The application**: [`app`] builds everything from a [`app::Config`] and runs it;
//!   [`server`] serves the gRPC doors on their listeners.
//! - **The pipeline**: [`pipeline`], the one path every question takes: admission of the
//!   chain, revocation, caches, the decision, the approval gate, signing, audit, metrics;
//!   [`shadow`] decides a sample of its questions again, off the path, against a shadow bundle.
//! - **Stores**: [`approval`], [`revocation`], [`cache`], [`audit`] and [`policy_store`], each
//!   behind a small trait with an embedded implementation (files written whole through
//!   [`store_dir`]) and a Redis one over [`fleet`], the one Redis connection the replicas share; [`minter`], the reference token minter, with its
//!   replay guard.
//! - **Replay**: [`replay`], the audit trail's recorded decisions decided again against a
//!   candidate bundle by the decision core, and what would change; [`standing_access`], the
//!   agents, grants and expiries an access review looks at, from a bundle and the trail.
//! - **Delegation and admission**: [`delegation`] (asserted-chain trust, applying a verified
//!   upstream token, signed verdicts) and [`admission`] (the gate every bundle passes).
//! - **The decision core**: [`decision`] (requests, the decision, chain rules, approvals as
//!   data, a bundle's own test cases) over [`bundle`] (Cedar policy bundles, validated whole
//!   and immutable), with [`token`] (keys, strict JWS, claims) and [`identity`]. Pure and
//!   synchronous: no store, transport, tokio or Redis.
//! - **Shared plumbing**: [`tls`] (certificates, listeners that reload them, peer
//!   identities), [`coalesced_writes`] (gRPC connections that gather HTTP/2
//!   writes), [`clock`], [`metrics`], [`telemetry`], [`readiness`], [`ewma`],
//!   [`named_tokens`].

pub mod admission;
pub mod app;
pub mod approval;
pub mod audit;
pub mod authzen;
pub mod bundle;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod coalesced_writes;
pub mod console;
pub mod decision;
pub mod delegation;
pub mod ewma;
pub mod fleet;
pub mod governance;
pub mod http;
pub mod identity;
pub mod mapping;
pub mod metrics;
pub mod minter;
pub mod named_tokens;
pub mod pb;
pub mod pipeline;
pub mod policy_store;
pub mod process_metrics;
pub mod readiness;
pub mod replay;
pub mod revocation;
pub mod server;
pub mod shadow;
pub mod standing_access;
pub mod store_dir;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod transport;
pub mod workload;
