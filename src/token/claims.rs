//! The claims of Baton's verdicts and of the access tokens minted from them, and the RFC 8693
//! `act` claim that carries the delegation chain.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::identity::{Identity, IdentityKind};

/// Why the claims of a verified token cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// A required claim is absent; holds the claim's name.
    #[error("claim `{0}` is missing")]
    Missing(&'static str),
    /// A claim is present but unusable: empty, too long, too many entries or out of range.
    #[error("claim `{claim}` is invalid: {reason}")]
    Invalid {
        /// The claim's name.
        claim: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A `sub_kind` is not `user`, `service` or `agent`; holds it as given.
    #[error("unknown subject kind `{0}`; expected `user`, `service` or `agent`")]
    UnknownKind(String),
    /// The token's or an actor's `sub` is empty.
    #[error("a `sub` is empty")]
    EmptySubject,
    /// The `act` chain nests more actors than allowed.
    #[error("the `act` chain is deeper than {max}")]
    TooDeep {
        /// The most actors accepted.
        max: usize,
    },
    /// The verified payload is not the JSON object of claims expected; holds the parser's
    /// message, clipped.
    #[error("claims do not parse: {0}")]
    Unparsable(String),
}

/// One actor of an RFC 8693 §4.1 `act` claim. The outermost is the current actor; each `act`
/// inside names the one that acted before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The actor's id.
    pub sub: String,
    /// `user`, `service` or `agent`: ids are unique per kind only.
    pub sub_kind: String,
    /// The actor that acted before this one; `None` for the earliest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

/// The prefix of a resource kind in token claims: `resource:Tool`.
const RESOURCE_PREFIX: &str = "resource:";

/// The name of a kind in token claims (`sub_kind`): `user`, `service` and `agent` in lowercase,
/// and a resource at the end of a chain as `resource:` and its type (`resource:Tool`), so no
/// resource type can pass for an acting kind.
pub fn kind_name(kind: &IdentityKind) -> std::borrow::Cow<'static, str> {
    match kind {
        IdentityKind::User => "user".into(),
        IdentityKind::Service => "service".into(),
        IdentityKind::Agent => "agent".into(),
        IdentityKind::Resource(t) => format!("{RESOURCE_PREFIX}{}", t.as_str()).into(),
    }
}

/// The kind of a `sub_kind` claim: exact lowercase names of the acting kinds, or
/// `resource:` and a type name.
pub fn parse_kind(name: &str) -> Option<IdentityKind> {
    match name {
        "user" => Some(IdentityKind::User),
        "service" => Some(IdentityKind::Service),
        "agent" => Some(IdentityKind::Agent),
        _ => name
            .strip_prefix(RESOURCE_PREFIX)
            .and_then(crate::identity::ResourceType::parse)
            .map(IdentityKind::Resource),
    }
}

/// The identity a `sub` and `sub_kind` name.
pub fn identity_from_claims(sub: &str, sub_kind: &str) -> Result<Identity, ClaimsError> {
    let kind = parse_kind(sub_kind).ok_or_else(|| ClaimsError::UnknownKind(sub_kind.to_owned()))?;
    if sub.is_empty() {
        return Err(ClaimsError::EmptySubject);
    }
    Ok(Identity::new(kind, sub))
}

/// The `act` claim of a chain of actors given earliest first. RFC 8693 §4.1 puts the current
/// actor outermost, so the last identity is the outermost `act` and the first the innermost.
/// No actors, no claim.
pub fn act_from_actors(actors: &[Identity]) -> Option<Actor> {
    actors.iter().fold(None, |inner, identity| {
        Some(Actor {
            sub: identity.id.clone(),
            sub_kind: kind_name(&identity.kind).into_owned(),
            act: inner.map(Box::new),
        })
    })
}

/// The actors of an `act` claim, earliest first: the inverse of [`act_from_actors`]. A chain of
/// more than `max_depth` actors, an unknown kind or an empty `sub` is refused.
pub fn actors_from_act(act: &Actor, max_depth: usize) -> Result<Vec<Identity>, ClaimsError> {
    let mut actors = Vec::new();
    let mut next = Some(act);
    while let Some(actor) = next {
        if actors.len() == max_depth {
            return Err(ClaimsError::TooDeep { max: max_depth });
        }
        actors.push(identity_from_claims(&actor.sub, &actor.sub_kind)?);
        next = actor.act.as_deref();
    }
    actors.reverse();
    Ok(actors)
}

/// The scopes of a space-separated `scope` claim (RFC 6749 §3.3).
pub fn parse_scope(scope: &str) -> BTreeSet<String> {
    scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A `scope` claim: the scopes separated by single spaces.
pub fn join_scope<S: AsRef<str>>(scopes: impl IntoIterator<Item = S>) -> String {
    let mut joined = String::new();
    for scope in scopes {
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(scope.as_ref());
    }
    joined
}

/// The `client_id` of an access token: its holder, the outermost actor, as `Agent:id`.
pub fn client_id(holder: &Identity) -> String {
    format!("{}:{}", holder.kind.as_str(), holder.id)
}

/// RFC 7800 confirmation: the key a token is bound to. Baton binds to a client certificate's
/// SHA-256 thumbprint, RFC 8705 §3.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The base64url SHA-256 thumbprint of the holder's certificate.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// One approver of the approval a verdict consumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproverClaim {
    /// The approver's directory identity as `User:id`, else the admin's name.
    pub sub: String,
    /// When the approver approved, in seconds since the Unix epoch.
    pub at: u64,
    /// Why, as the approver wrote it.
    pub rationale: String,
}

/// What Baton signs with every ALLOW: the decision, for one audience, in a form the next hop can
/// verify. Every field is always present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictClaims {
    /// Baton's issuer name.
    pub iss: String,
    /// The token minter that redeems the verdict: its single audience.
    pub aud: String,
    /// When it was issued, in seconds since the Unix epoch.
    pub iat: u64,
    /// Not valid before this instant, in seconds since the Unix epoch; equal to `iat`.
    pub nbf: u64,
    /// The verdict's own expiry, in seconds since the Unix epoch: `iat` plus the verdict
    /// lifetime, never after `exp_max`.
    pub exp: u64,
    /// The decision id, which a minter redeems once.
    pub jti: String,
    /// The transaction the whole delegation chain belongs to.
    pub txn: String,
    /// The principal on whose behalf the chain acts.
    pub sub: String,
    /// The principal's kind: `user`, `service` or `agent`.
    pub sub_kind: String,
    /// The actors of the chain, the callee (the holder of whatever is minted) outermost.
    pub act: Actor,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// Seconds a token minted from this verdict may live.
    pub ttl: u64,
    /// No token of this chain, here or further down, may outlive this instant.
    pub exp_max: u64,
    /// What the enforcement point must do; a minter refuses obligations it does not know.
    pub obligations: Vec<String>,
    /// The policies that allowed the call.
    pub policies: Vec<String>,
    /// The content hash of the bundle that decided.
    pub bundle_version: String,
    /// A digest of the request the verdict answers.
    pub req_hash: String,
    /// The human approval this verdict consumed, when policy asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// Every approver who approved that approval, in order: who, when and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<ApproverClaim>,
    /// The verdicts this grant derives from, earliest first: the `jti` of every verdict
    /// upstream of it in its chain. Revoking any of them revokes this one and whatever is
    /// minted from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<String>,
    /// The certificate the callee (the holder) must present with this verdict, or anything
    /// minted from it, at the next hop; absent when the callee is not known by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// Under `--agent-lifecycle warn`, the orphaned agents of the chain (`agent`, `reason`,
    /// `detail`); absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifecycle_warnings: Vec<crate::decision::LifecycleWarning>,
}

/// The claims of an RFC 9068 access token that a minter issues from a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The minter's issuer name.
    pub iss: String,
    /// The principal, copied from the verdict.
    pub sub: String,
    /// The principal's kind, copied from the verdict.
    pub sub_kind: String,
    /// The holder, as `Agent:id`: the same as `client_id`.
    pub aud: String,
    /// When it was minted, in seconds since the Unix epoch.
    pub iat: u64,
    /// `iat` plus the verdict's `ttl`, never after `exp_max`; seconds since the Unix epoch.
    pub exp: u64,
    /// A fresh UUIDv7 of the token itself.
    pub jti: String,
    /// The verdict's transaction, carried unchanged.
    pub txn: String,
    /// The granted scopes, space-separated: the next hop's ceiling.
    pub scope: String,
    /// The verdict's actors, the holder outermost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The verdict's `exp_max`: no token further down the chain may outlive it.
    pub exp_max: u64,
    /// The holder, the outermost actor, as `Agent:id` (see [`client_id`]).
    pub client_id: String,
    /// The `jti` of the verdict this token was minted from: revoking that verdict revokes
    /// this token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// The verdict's own lineage, carried unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<String>,
    /// The verdict's binding, carried unchanged: the token is its holder's only with the
    /// same certificate (RFC 8705 §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn user(id: &str) -> Identity {
        Identity::new(IdentityKind::User, id)
    }

    fn agent(id: &str) -> Identity {
        Identity::new(IdentityKind::Agent, id)
    }

    #[test]
    fn kinds_have_lowercase_names() {
        for kind in IdentityKind::ALL {
            assert_eq!(kind_name(&kind), kind.as_str().to_lowercase());
            assert_eq!(parse_kind(&kind_name(&kind)), Some(kind));
        }
        assert_eq!(parse_kind("Agent"), None);
        assert_eq!(parse_kind(""), None);
        let tool = IdentityKind::parse_any("Tool").unwrap();
        assert_eq!(kind_name(&tool), "resource:Tool");
        assert_eq!(parse_kind("resource:Tool"), Some(tool));
        assert_eq!(
            parse_kind("resource:Agent"),
            None,
            "an actor is never a resource"
        );
        assert_eq!(parse_kind("Tool"), None);
    }

    #[test]
    fn the_current_actor_is_outermost() {
        let chain = [user("alice"), agent("assistant"), agent("analyst")];
        let act = act_from_actors(&chain).unwrap();
        assert_eq!(
            serde_json::to_value(&act).unwrap(),
            json!({
                "sub": "analyst", "sub_kind": "agent",
                "act": {
                    "sub": "assistant", "sub_kind": "agent",
                    "act": {"sub": "alice", "sub_kind": "user"},
                },
            })
        );
        assert_eq!(actors_from_act(&act, 32).unwrap(), chain);
        assert_eq!(act_from_actors(&[]), None);
    }

    #[test]
    fn deep_or_unknown_chains_are_refused() {
        let chain: Vec<Identity> = (0..5).map(|i| agent(&format!("a{i}"))).collect();
        let act = act_from_actors(&chain).unwrap();
        assert_eq!(actors_from_act(&act, 5).unwrap(), chain);
        assert_eq!(
            actors_from_act(&act, 4),
            Err(ClaimsError::TooDeep { max: 4 })
        );

        let unknown: Actor =
            serde_json::from_value(json!({"sub": "x", "sub_kind": "robot"})).unwrap();
        assert_eq!(
            actors_from_act(&unknown, 32),
            Err(ClaimsError::UnknownKind("robot".to_owned()))
        );
        let empty: Actor = serde_json::from_value(json!({"sub": "", "sub_kind": "agent"})).unwrap();
        assert_eq!(actors_from_act(&empty, 32), Err(ClaimsError::EmptySubject));
    }

    #[test]
    fn scopes_split_and_join_on_spaces() {
        let scopes = parse_scope("read:x  write:y read:x");
        assert_eq!(
            scopes.iter().map(String::as_str).collect::<Vec<_>>(),
            ["read:x", "write:y"]
        );
        assert_eq!(join_scope(&scopes), "read:x write:y");
        assert!(parse_scope("").is_empty());
        assert_eq!(join_scope(Vec::<String>::new()), "");
    }

    #[test]
    fn access_token_claims_omit_a_missing_act() {
        let claims = AccessTokenClaims {
            iss: "minter".to_owned(),
            sub: "alice".to_owned(),
            sub_kind: "user".to_owned(),
            aud: "Agent:analyst".to_owned(),
            iat: 1,
            exp: 2,
            jti: "j".to_owned(),
            txn: "t".to_owned(),
            scope: "read".to_owned(),
            act: None,
            exp_max: 2,
            client_id: client_id(&user("alice")),
            verdict: None,
            lineage: Vec::new(),
            cnf: None,
        };
        let value = serde_json::to_value(&claims).unwrap();
        assert!(value.get("act").is_none());
        assert_eq!(value["client_id"], "User:alice");
        assert_eq!(
            serde_json::from_value::<AccessTokenClaims>(value).unwrap(),
            claims
        );
    }

    fn identity() -> impl Strategy<Value = Identity> {
        (
            prop::sample::select(IdentityKind::ALL.to_vec()),
            "[a-z0-9-]{1,12}",
        )
            .prop_map(|(kind, id)| Identity::new(kind, id))
    }

    proptest! {
        #[test]
        fn act_round_trips(chain in prop::collection::vec(identity(), 1..40)) {
            let act = act_from_actors(&chain).unwrap();
            prop_assert_eq!(actors_from_act(&act, 40).unwrap(), chain.clone());
            let json = serde_json::to_string(&act).unwrap();
            let back: Actor = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(actors_from_act(&back, chain.len()).unwrap(), chain.clone());
            if chain.len() > 1 {
                prop_assert!(actors_from_act(&back, chain.len() - 1).is_err());
            }
        }
    }
}
