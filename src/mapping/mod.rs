//! How the requests of other gateways name a hop: the gateway mapping file (`--gateway-mapping`,
//! TOML). Envoy's `ext_authz` checks carry an HTTP request, a peer identity and route settings;
//! AuthZEN evaluations carry a subject, an action and a resource. This module turns the file into
//! the rules the two doors apply, validated whole at start: a file with any mistake stops `serve`
//! with every problem named, never a door that guesses.
//!
//! ```toml
//! [envoy]
//! strip_authorization = false   # remove the presented token before the request goes upstream
//! trust_headers = false         # honour x-baton-* headers (only from a trusted gateway)
//! omit_verdict = false          # sign no x-baton-verdict (a route's baton.omit_verdict wins)
//!
//! [[envoy.identities]]          # peer identities (source.principal) to Baton identities
//! pattern = "spiffe://corp.example/agent/{id}"
//! kind = "Agent"
//!
//! [[envoy.routes]]              # the first route that matches names the callee and scopes
//! host = "analyst.corp.example" # optional: exact host, or "*.corp.example"
//! path_prefix = "/reports"      # optional, "/" by default
//! methods = ["GET"]             # optional, any method by default
//! callee = "Agent:data-analyst"
//! scopes = ["reports.generate"]
//!
//! [authzen]
//! subject_types = { identity = "User" }          # AuthZEN subject type → acting kind
//! resource_types = { todo = "Todo" }             # AuthZEN resource type → bundle entity type
//! ```

mod authzen;
mod envoy;

use std::path::Path;

use serde::Deserialize;

pub use self::authzen::AuthzenMapping;
pub use self::envoy::{EnvoyMapping, IdentityPattern, Route};

/// The rules of every gateway door; the default maps nothing beyond the built-in names.
#[derive(Debug, Clone, Default)]
pub struct GatewayMapping {
    /// How Envoy `ext_authz` checks name a hop.
    pub envoy: EnvoyMapping,
    /// How AuthZEN evaluations name a hop.
    pub authzen: AuthzenMapping,
}

/// Why a gateway mapping cannot be used; every problem found is listed.
#[derive(Debug, thiserror::Error)]
#[error("the gateway mapping `{path}` is invalid: {}", .problems.join("; "))]
pub struct MappingError {
    /// The file.
    pub path: String,
    /// Each problem, naming where it is.
    pub problems: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    envoy: envoy::EnvoyFile,
    #[serde(default)]
    authzen: authzen::AuthzenFile,
}

impl GatewayMapping {
    /// Reads and validates the mapping at `path`.
    pub fn from_file(path: &Path) -> Result<Self, MappingError> {
        let fail = |problems| MappingError {
            path: path.display().to_string(),
            problems,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(vec![format!("cannot read it: {e}")]))?;
        Self::parse(&text).map_err(fail)
    }

    /// Parses and validates a mapping's text.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let file: File = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut problems = Vec::new();
        let envoy = envoy::EnvoyMapping::from_file(file.envoy, &mut problems);
        let authzen = authzen::AuthzenMapping::from_file(file.authzen, &mut problems);
        if problems.is_empty() {
            Ok(Self { envoy, authzen })
        } else {
            Err(problems)
        }
    }
}

/// `Type:id` as an identity of any kind, for mapping files and headers.
pub fn typed_identity(text: &str) -> Option<crate::identity::Identity> {
    let (kind, id) = text.split_once(':')?;
    let kind = crate::identity::IdentityKind::parse_any(kind)?;
    (!id.is_empty()).then(|| crate::identity::Identity::new(kind, id))
}
