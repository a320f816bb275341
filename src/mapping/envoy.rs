//! The Envoy part of the gateway mapping: peer identities to Baton identities, and routes to
//! the callee and scopes of a hop.

use serde::Deserialize;

use super::typed_identity;
use crate::identity::{Identity, IdentityKind};

/// How Envoy `ext_authz` checks name a hop.
#[derive(Debug, Clone, Default)]
pub struct EnvoyMapping {
    /// Remove the `authorization` header from the request sent upstream on ALLOW.
    pub strip_authorization: bool,
    /// Honour `x-baton-callee`, `x-baton-scopes`, `x-baton-caller`, `x-baton-principal` and
    /// `x-baton-transaction-id` in the checked request, when the check comes from a trusted
    /// gateway. Off by default: the client sends those headers unless the edge removes them.
    pub trust_headers: bool,
    /// Sign no verdict for checks from this gateway unless a route asks for one
    /// (`baton.omit_verdict: false`): a gateway that only enforces redeems none.
    pub omit_verdict: bool,
    /// Peer identities (`source.principal`) to Baton identities, tried in order.
    pub identities: Vec<IdentityPattern>,
    /// Requests to hops, tried in order.
    pub routes: Vec<Route>,
}

/// A SPIFFE ID (or any URI) pattern with one `{id}` placeholder, and the kind it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityPattern {
    prefix: String,
    suffix: String,
    kind: IdentityKind,
}

impl IdentityPattern {
    /// The identity `principal` names under this pattern, if it matches. The id must be
    /// non-empty and hold no `/`, so a pattern never matches more than one path segment.
    pub fn identify(&self, principal: &str) -> Option<Identity> {
        let id = principal
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        (!id.is_empty() && !id.contains('/')).then(|| Identity::new(self.kind.clone(), id))
    }
}

/// One route: a request matching it is a call to `callee` for `scopes`.
#[derive(Debug, Clone)]
pub struct Route {
    host: Option<String>,
    path_prefix: String,
    methods: Vec<String>,
    /// The callee the route names.
    pub callee: Identity,
    /// The scopes a request on the route asks for.
    pub scopes: Vec<String>,
}

impl Route {
    /// Whether a request for `host`, `path` and `method` takes this route. A host pattern
    /// `*.example` matches any subdomain; the port is ignored.
    pub fn matches(&self, host: &str, path: &str, method: &str) -> bool {
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let host_ok = match &self.host {
            None => true,
            Some(pattern) => match pattern.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                None => pattern.eq_ignore_ascii_case(host),
            },
        };
        // A prefix matches whole segments: `/reports` takes `/reports/q4`, not `/reportsX`.
        let path_ok = path.strip_prefix(&self.path_prefix).is_some_and(|rest| {
            rest.is_empty() || self.path_prefix.ends_with('/') || rest.starts_with('/')
        });
        host_ok && path_ok && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
    }
}

impl EnvoyMapping {
    /// The first route `host`, `path` and `method` take.
    pub fn route(&self, host: &str, path: &str, method: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(host, path, method))
    }

    /// The identity a peer principal (a SPIFFE ID) names, by the first pattern that matches.
    pub fn identify(&self, principal: &str) -> Option<Identity> {
        self.identities.iter().find_map(|p| p.identify(principal))
    }

    pub(super) fn from_file(file: EnvoyFile, problems: &mut Vec<String>) -> Self {
        let identities = file
            .identities
            .into_iter()
            .enumerate()
            .filter_map(|(i, raw)| {
                let at = format!("envoy.identities[{i}]");
                let kind = IdentityKind::parse(&raw.kind);
                let parts = raw.pattern.split_once("{id}");
                match (kind, parts) {
                    (Some(kind), Some((prefix, suffix))) if !suffix.contains("{id}") => {
                        Some(IdentityPattern {
                            prefix: prefix.to_owned(),
                            suffix: suffix.to_owned(),
                            kind,
                        })
                    }
                    (None, _) => {
                        problems.push(format!(
                            "{at}.kind is `{}`: expected `User`, `Service` or `Agent`",
                            raw.kind
                        ));
                        None
                    }
                    _ => {
                        problems.push(format!(
                            "{at}.pattern must hold `{{id}}` exactly once, such as `spiffe://corp.example/agent/{{id}}`"
                        ));
                        None
                    }
                }
            })
            .collect();
        let routes = file
            .routes
            .into_iter()
            .enumerate()
            .filter_map(|(i, raw)| {
                let at = format!("envoy.routes[{i}]");
                let callee = typed_identity(&raw.callee);
                if callee.is_none() {
                    problems.push(format!(
                        "{at}.callee is `{}`: expected `Type:id`, such as `Agent:data-analyst`",
                        raw.callee
                    ));
                }
                if raw.scopes.is_empty() || raw.scopes.iter().any(|s| s.trim().is_empty()) {
                    problems.push(format!(
                        "{at}.scopes must name at least one scope, none empty"
                    ));
                }
                let path_prefix = raw.path_prefix.unwrap_or_else(|| "/".to_owned());
                if !path_prefix.starts_with('/') {
                    problems.push(format!("{at}.path_prefix must start with `/`"));
                }
                Some(Route {
                    host: raw.host,
                    path_prefix,
                    methods: raw.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
                    callee: callee?,
                    scopes: raw.scopes,
                })
            })
            .collect();
        Self {
            strip_authorization: file.strip_authorization,
            trust_headers: file.trust_headers,
            omit_verdict: file.omit_verdict,
            identities,
            routes,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct EnvoyFile {
    #[serde(default)]
    strip_authorization: bool,
    #[serde(default)]
    trust_headers: bool,
    #[serde(default)]
    omit_verdict: bool,
    #[serde(default)]
    identities: Vec<RawIdentity>,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    pattern: String,
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    host: Option<String>,
    path_prefix: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    callee: String,
    scopes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::super::GatewayMapping;
    use super::*;

    const MAPPING: &str = r#"
[[envoy.identities]]
pattern = "spiffe://corp.example/agent/{id}"
kind = "Agent"
[[envoy.identities]]
pattern = "spiffe://corp.example/svc/{id}"
kind = "Service"

[[envoy.routes]]
host = "analyst.corp.example"
path_prefix = "/reports"
methods = ["get", "POST"]
callee = "Agent:data-analyst"
scopes = ["reports.generate"]
[[envoy.routes]]
host = "*.tools.corp.example"
callee = "Tool:sql-query"
scopes = ["db.read"]
"#;

    #[test]
    fn spiffe_ids_name_their_identity_by_the_first_pattern() {
        let m = GatewayMapping::parse(MAPPING).unwrap().envoy;
        assert_eq!(
            m.identify("spiffe://corp.example/agent/user-assistant"),
            Some(Identity::new(IdentityKind::Agent, "user-assistant"))
        );
        assert_eq!(
            m.identify("spiffe://corp.example/svc/monitoring"),
            Some(Identity::new(IdentityKind::Service, "monitoring"))
        );
        assert_eq!(m.identify("spiffe://corp.example/agent/a/b"), None);
        assert_eq!(m.identify("spiffe://corp.example/agent/"), None);
        assert_eq!(m.identify("spiffe://evil.example/agent/x"), None);
    }

    #[test]
    fn the_first_matching_route_names_the_hop() {
        let m = GatewayMapping::parse(MAPPING).unwrap().envoy;
        let route = m
            .route("analyst.corp.example:8443", "/reports/q4", "GET")
            .unwrap();
        assert_eq!(route.callee.id, "data-analyst");
        assert!(m.route("analyst.corp.example", "/admin", "GET").is_none());
        assert!(
            m.route("analyst.corp.example", "/reportsX", "GET")
                .is_none()
        );
        assert!(m.route("analyst.corp.example", "/reports", "GET").is_some());
        assert!(
            m.route("analyst.corp.example", "/reports", "DELETE")
                .is_none()
        );
        let tool = m.route("sql.tools.corp.example", "/x", "PUT").unwrap();
        assert_eq!(tool.callee.kind.as_str(), "Tool");
        assert!(m.route("tools.corp.example", "/x", "PUT").is_none());
    }

    #[test]
    fn every_mistake_is_named() {
        let problems = GatewayMapping::parse(
            r#"
[[envoy.identities]]
pattern = "spiffe://corp.example/agent/"
kind = "Robot"
[[envoy.routes]]
callee = "data-analyst"
scopes = []
path_prefix = "reports"
"#,
        )
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("envoy.identities[0].kind"));
        assert!(GatewayMapping::parse("[envoy]\nunknown = 1").is_err());
    }
}
