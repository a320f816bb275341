//! Properties of delegation chains, driven through the doors of the real application by random
//! walks of hops. Each hop continues the chain through `Authorize`, `BatchAuthorize` or
//! `Exchange`, presenting the previous grant as a verdict, as a token the trusted minter made
//! from it, or as a token the trusted issuer re-signed. Along every walk:
//!
//! - the chain only grows: each hop's chain is the previous one plus its callee;
//! - depth counts every hop, repeats included, and a chain deeper than `--max-depth` (or, unless
//!   cycles are allowed, one that repeats a member) is denied;
//! - granted scopes, the grant's end and `exp_max` never grow;
//! - obligations never vanish unmet: a verdict presented as it is passes its obligations on;
//! - a revocation of any member, the principal, the transaction or any verdict upstream denies
//!   the next hop at every door.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)] // each user takes only part of it
#[path = "support/spawn.rs"]
mod spawn;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton::app::{Application, Config};
use baton::decision::DecisionSettings;
use baton::delegation::trust::{AssertedChains, Gateways};
use baton::identity::{Identity, IdentityKind};
use baton::minter::Minter;
use baton::pb::decision_service_server::DecisionService;
use baton::pb::{self, Decision, DenialCode};
use baton::pipeline::Pipeline;
use baton::revocation::{Revocation, Target};
use baton::token::{ACCESS_TOKEN_TYP, KeySet, SigningKey, TrustedIssuer, VerdictClaims};
use baton::transport::DecisionApi;
use proptest::prelude::*;
use serde_json::Value;

const GATEWAY_TOKEN: &str = "property-gateway-token-0123456789";
const TRUSTED_ISSUER: &str = "urn:baton:property-issuer";

/// Five agents that may all call one another, on a user's behalf: `read` and `write` for
/// everyone, `audit` only with the `watermark` obligation, and a short session at `agent-4`.
const SCHEMA: &str = r#"
entity Group in [Group];
entity User in [Group];
entity Service in [Group];
entity Agent in [Group];
type Identity = { kind: String, id: String };
type Task = { amount?: Long };
type BatonContext = {
  on_behalf_of: Identity, caller: Identity, delegated: Bool, depth: Long,
  chain: Set<String>, agents: Set<Agent>, task: Task,
};
action invoke, read, write, audit
  appliesTo { principal: [User, Service, Agent], resource: [Agent], context: BatonContext };
"#;

const POLICIES: &str = r#"
@id("anyone-invokes-any-agent")
permit (principal, action == Action::"invoke", resource);

@id("read-and-write-everywhere")
@ttl("900")
permit (principal, action in [Action::"read", Action::"write"], resource);

@id("audit-with-a-watermark")
@ttl("600")
@obligation("watermark")
permit (principal, action == Action::"audit", resource);

@id("short-sessions-at-agent-4")
@ttl("120")
permit (principal, action == Action::"read", resource == Agent::"agent-4");
"#;

const AGENTS: usize = 5;
const SCOPES: [&str; 3] = ["read", "write", "audit"];

/// One running application, its door, and what the walks need to forge and mint.
struct Harness {
    api: DecisionApi,
    pipeline: Arc<Pipeline>,
    settings: DecisionSettings,
    minter: Minter,
    issuer_key: SigningKey,
    runtime: tokio::runtime::Runtime,
    _app: Application,
    _dir: tempfile::TempDir,
}

fn harness(allow_cycles: bool) -> &'static Harness {
    static WITH: OnceLock<Harness> = OnceLock::new();
    static WITHOUT: OnceLock<Harness> = OnceLock::new();
    let cell = if allow_cycles { &WITH } else { &WITHOUT };
    cell.get_or_init(|| build(allow_cycles))
}

fn build(allow_cycles: bool) -> Harness {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("schema.cedarschema"), SCHEMA).unwrap();
    std::fs::write(bundle.join("policies.cedar"), POLICIES).unwrap();
    let gateways = dir.path().join("gateways");
    std::fs::write(&gateways, format!("property {GATEWAY_TOKEN}\n")).unwrap();
    let issuer_key = SigningKey::generate();

    let settings = DecisionSettings {
        allow_cycles,
        max_depth: if allow_cycles { 6 } else { 5 },
        ..DecisionSettings::default()
    };
    let mut config = Config::new(&bundle, dir.path().join("store"));
    config.settings = settings.clone();
    config.delegation = baton::delegation::Delegation::new(
        config.delegation.keyring.clone(),
        baton::delegation::verdict::VerdictIssuer {
            issuer: baton::delegation::DEFAULT_ISSUER.to_owned(),
            audience: baton::delegation::DEFAULT_VERDICT_AUDIENCE.to_owned(),
            lifetime_secs: 60,
        },
        vec![TrustedIssuer {
            issuer: TRUSTED_ISSUER.to_owned(),
            keys: KeySet::new(vec![issuer_key.public()]),
        }],
        AssertedChains::FirstHop,
        Gateways::from_file(&gateways).unwrap(),
    );
    let app = runtime.block_on(Application::build(config)).unwrap();
    let pipeline = Arc::clone(app.pipeline());
    let baton_keys = pipeline.delegation().keyring.published().clone();
    let mut minter = Minter {
        issuer: TRUSTED_ISSUER.to_owned(),
        ..Minter::new(issuer_key.clone(), baton_keys)
    };
    // This minter enforces the watermark itself, so what it mints owes nothing.
    minter.understood.insert("watermark".to_owned());
    Harness {
        api: app.decision_api(),
        pipeline,
        settings,
        minter,
        issuer_key,
        runtime,
        _app: app,
        _dir: dir,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn entity(kind: &str, id: &str) -> pb::EntityRef {
    pb::EntityRef {
        r#type: kind.to_owned(),
        id: id.to_owned(),
    }
}

fn agent(i: usize) -> String {
    format!("agent-{i}")
}

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn gatewayed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {GATEWAY_TOKEN}").parse().unwrap(),
    );
    request
}

/// Which door a hop goes through.
#[derive(Debug, Clone, Copy)]
enum Door {
    Authorize,
    Batch,
    Exchange,
}

const DOORS: [Door; 3] = [Door::Authorize, Door::Batch, Door::Exchange];

/// How the previous grant is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    /// The verdict as it is: its obligations are still owed.
    Verdict,
    /// A token the trusted minter made from it, which met the obligations it understood.
    Minted,
    /// The previous credential's claims re-signed by the trusted issuer as an access token,
    /// as another token service would issue it.
    Reissued,
}

impl Harness {
    /// Asks through `door` for `callee` with `scopes`, presenting `token` as the caller
    /// `holder`. An error is a refusal of the question itself.
    fn ask(
        &self,
        door: Door,
        holder: &pb::EntityRef,
        callee: &str,
        scopes: &[String],
        token: &str,
    ) -> Result<pb::AuthorizeResponse, tonic::Status> {
        let authorize = pb::AuthorizeRequest {
            caller: Some(holder.clone()),
            callee: Some(entity("Agent", callee)),
            scopes: scopes.to_vec(),
            subject_token: token.to_owned(),
            ..Default::default()
        };
        self.runtime.block_on(async {
            match door {
                Door::Authorize => self
                    .api
                    .authorize(gatewayed(authorize))
                    .await
                    .map(tonic::Response::into_inner),
                Door::Batch => {
                    let batch = pb::BatchAuthorizeRequest {
                        requests: vec![authorize],
                    };
                    let results = self
                        .api
                        .batch_authorize(gatewayed(batch))
                        .await?
                        .into_inner()
                        .results;
                    match results.into_iter().next().and_then(|r| r.result) {
                        Some(pb::batch_authorize_result::Result::Response(r)) => Ok(r),
                        Some(pb::batch_authorize_result::Result::Error(e)) => {
                            Err(tonic::Status::unknown(format!("{}: {}", e.code, e.message)))
                        }
                        None => Err(tonic::Status::internal("an empty batch result")),
                    }
                }
                Door::Exchange => {
                    let exchange = pb::ExchangeRequest {
                        subject_token: token.to_owned(),
                        scope: scopes.join(" "),
                        resource: format!("Agent:{callee}"),
                        ..Default::default()
                    };
                    let response = self.api.exchange(gatewayed(exchange)).await?.into_inner();
                    let decision = response.decision.expect("Exchange carries its decision");
                    assert_eq!(response.issued_token, decision.verdict);
                    Ok(decision)
                }
            }
        })
    }

    /// The first hop: `principal` (`User:…` or `Agent:…`) calls `callee` on its own
    /// authority, through the trusted gateway.
    fn first(
        &self,
        principal: &pb::EntityRef,
        callee: &str,
        scopes: &[String],
    ) -> pb::AuthorizeResponse {
        let request = pb::AuthorizeRequest {
            caller: Some(principal.clone()),
            callee: Some(entity("Agent", callee)),
            principal: Some(principal.clone()),
            scopes: scopes.to_vec(),
            ..Default::default()
        };
        self.runtime
            .block_on(self.api.authorize(gatewayed(request)))
            .unwrap()
            .into_inner()
    }

    /// `verdict` presented as `how`.
    fn present(&self, verdict: &str, how: Credential) -> String {
        match how {
            Credential::Verdict => verdict.to_owned(),
            Credential::Minted => {
                self.runtime
                    .block_on(self.minter.mint(verdict, now()))
                    .expect("the minter redeems a fresh verdict")
                    .token
            }
            Credential::Reissued => {
                let mut claims = payload(verdict);
                let claims_map = claims.as_object_mut().unwrap();
                let jti = claims_map["jti"].clone();
                claims_map.insert("iss".into(), TRUSTED_ISSUER.into());
                claims_map.insert(
                    "jti".into(),
                    format!("reissued-{}", uuid::Uuid::now_v7()).into(),
                );
                // It names the verdict it stands for, and keeps owing what the verdict owed.
                claims_map.insert("verdict".into(), jti);
                baton::token::jws::sign(&self.issuer_key, ACCESS_TOKEN_TYP, &claims).unwrap()
            }
        }
    }

    fn revoke(&self, target: Target) {
        let revocations = self.pipeline.revocations();
        self.runtime
            .block_on(revocations.revoke(Revocation {
                target,
                reason: "property walk".to_owned(),
                revoked_by: "test".to_owned(),
                revoked_at: now(),
                expires_at: None,
            }))
            .unwrap();
    }

    fn lift(&self, target: &Target) {
        self.runtime
            .block_on(self.pipeline.revocations().lift(target))
            .unwrap();
    }
}

/// One hop of a walk.
#[derive(Debug, Clone)]
struct Hop {
    callee: usize,
    door: Door,
    credential: Credential,
    /// Which held scopes to keep asking for.
    keep: [bool; 3],
    /// A scope that may lie above the ceiling.
    extra: Option<&'static str>,
    /// Before asking, revoke one thing the hop touches (by index into what it touches) and
    /// check that every door denies; then lift it and go on.
    revoke: Option<usize>,
}

fn hop() -> impl Strategy<Value = Hop> {
    (
        0..AGENTS,
        prop::sample::select(DOORS.to_vec()),
        prop::sample::select(vec![
            Credential::Verdict,
            Credential::Minted,
            Credential::Reissued,
        ]),
        any::<[bool; 3]>(),
        prop::option::of(prop::sample::select(SCOPES.to_vec())),
        prop::option::weighted(0.25, 0usize..32),
    )
        .prop_map(|(callee, door, credential, keep, extra, revoke)| Hop {
            callee,
            door,
            credential,
            keep,
            extra,
            revoke,
        })
}

fn assert_revoked(
    h: &Harness,
    holder: &pb::EntityRef,
    callee: &str,
    scopes: &[String],
    token: &str,
    what: &Target,
) {
    for door in DOORS {
        let answer = h
            .ask(door, holder, callee, scopes, token)
            .unwrap_or_else(|s| panic!("{door:?} after revoking {what}: {s:?}"));
        assert_eq!(
            answer.decision(),
            Decision::Deny,
            "{door:?} after revoking {what}"
        );
        assert_eq!(
            answer.denial.as_ref().map(pb::Denial::code),
            Some(DenialCode::Revoked),
            "{door:?} after revoking {what}: {answer:?}"
        );
        assert!(answer.verdict.is_empty());
    }
}

/// Everything a hop touches that can be revoked: every agent of the chain so far and the
/// callee, the principal, the transaction, the presented token and every verdict upstream.
fn touched(previous: &pb::AuthorizeResponse, token: &str, callee: &str) -> Vec<Target> {
    let mut targets: Vec<Target> = previous
        .chain
        .iter()
        .filter(|e| e.r#type == "Agent")
        .map(|e| Target::Agent(e.id.clone()))
        .collect();
    targets.push(Target::Agent(callee.to_owned()));
    let principal = &previous.chain[0];
    targets.push(Target::Principal(Identity::new(
        IdentityKind::parse(&principal.r#type).unwrap(),
        principal.id.clone(),
    )));
    targets.push(Target::Transaction(previous.transaction_id.clone()));
    let claims = payload(token);
    targets.push(Target::Verdict(claims["jti"].as_str().unwrap().to_owned()));
    if let Some(v) = claims.get("verdict").and_then(Value::as_str) {
        targets.push(Target::Verdict(v.to_owned()));
    }
    let verdict: VerdictClaims = serde_json::from_value(payload(&previous.verdict)).unwrap();
    targets.extend(verdict.lineage.into_iter().map(Target::Verdict));
    targets
}

/// Who a walk acts for: a user, or an agent on its own authority, whose chain may come back to
/// it (with cycles allowed) and then be held by its own principal.
#[derive(Debug, Clone, Copy)]
enum Principal {
    User(usize),
    Agent(usize),
}

/// Walks `hops` from a first hop of `principal` to `first_callee`; returns the depth the chain
/// reached, counting a hop refused for its depth.
fn walk(
    allow_cycles: bool,
    principal: Principal,
    first_callee: usize,
    hops: Vec<Hop>,
) -> Result<usize, TestCaseError> {
    // Walks share one application per setting, and a walk's revocation (lifted before its next
    // hop) would deny another walk's hop in the meantime: walks take turns.
    static TURN: Mutex<()> = Mutex::new(());
    let _turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    let h = harness(allow_cycles);
    let scopes: Vec<String> = SCOPES.iter().map(|s| (*s).to_owned()).collect();
    let principal = match principal {
        Principal::User(i) => entity("User", &format!("user-{i}")),
        Principal::Agent(i) => entity("Agent", &agent(i)),
    };
    let mut previous = h.first(&principal, &agent(first_callee), &scopes);
    if principal == entity("Agent", &agent(first_callee)) && !allow_cycles {
        // An agent calling itself repeats in its own chain.
        prop_assert_eq!(
            previous.denial.as_ref().map(pb::Denial::code),
            Some(DenialCode::ChainCycle)
        );
        return Ok(2);
    }
    prop_assert_eq!(previous.decision(), Decision::Allow);
    let mut deepest = 1;
    for hop in hops {
        let holder = previous.chain.last().cloned().unwrap();
        let callee = agent(hop.callee);
        let token = h.present(&previous.verdict, hop.credential);
        let mut asked: BTreeSet<String> = previous
            .granted_scopes
            .iter()
            .zip(hop.keep.iter().cycle())
            .filter(|(_, keep)| **keep)
            .map(|(s, _)| s.clone())
            .collect();
        asked.extend(hop.extra.map(str::to_owned));
        if asked.is_empty() {
            asked.insert(previous.granted_scopes[0].clone());
        }
        let asked: Vec<String> = asked.into_iter().collect();

        if let Some(pick) = hop.revoke {
            let targets = touched(&previous, &token, &callee);
            let target = targets[pick % targets.len()].clone();
            h.revoke(target.clone());
            assert_revoked(h, &holder, &callee, &asked, &token, &target);
            h.lift(&target);
        }

        let answer = h
            .ask(hop.door, &holder, &callee, &asked, &token)
            .map_err(|s| {
                TestCaseError::fail(format!("{:?} refused a valid credential: {s:?}", hop.door))
            })?;
        // The chain grows by the callee, whatever the answer.
        let mut expected_chain = previous.chain.clone();
        expected_chain.push(entity("Agent", &callee));
        prop_assert_eq!(&answer.chain, &expected_chain, "the chain only grows");
        prop_assert_eq!(&answer.transaction_id, &previous.transaction_id);
        let depth = answer.chain.len() - 1;
        deepest = depth;
        let repeats = answer.chain[..answer.chain.len() - 1].contains(&entity("Agent", &callee));
        if depth > h.settings.max_depth {
            prop_assert_eq!(answer.decision(), Decision::Deny);
            prop_assert_eq!(
                answer.denial.as_ref().map(pb::Denial::code),
                Some(DenialCode::ChainTooDeep)
            );
            break;
        }
        if repeats && !allow_cycles {
            prop_assert_eq!(answer.decision(), Decision::Deny);
            prop_assert_eq!(
                answer.denial.as_ref().map(pb::Denial::code),
                Some(DenialCode::ChainCycle)
            );
            break;
        }
        if answer.decision() != Decision::Allow {
            prop_assert!(answer.verdict.is_empty(), "a deny carries no verdict");
            break;
        }
        let held: BTreeSet<&String> = previous.granted_scopes.iter().collect();
        for scope in &answer.granted_scopes {
            prop_assert!(
                held.contains(scope),
                "`{}` was granted but not held upstream",
                scope
            );
        }
        let (up, down) = (payload(&previous.verdict), payload(&answer.verdict));
        prop_assert!(
            down["exp_max"].as_u64() <= up["exp_max"].as_u64(),
            "exp_max grew"
        );
        prop_assert!(
            answer.expires_at.as_ref().unwrap().seconds
                <= previous.expires_at.as_ref().unwrap().seconds,
            "the grant's end grew"
        );
        if hop.credential != Credential::Minted {
            for owed in &previous.obligations {
                prop_assert!(
                    answer.obligations.contains(owed),
                    "`{}` vanished unmet through {:?}",
                    owed,
                    hop.credential
                );
            }
        }
        previous = answer;
    }
    Ok(deepest)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn along_every_walk_the_chain_only_grows_and_nothing_widens_or_vanishes(
        allow_cycles in any::<bool>(),
        principal in prop_oneof![
            (0usize..3).prop_map(Principal::User),
            (0..AGENTS).prop_map(Principal::Agent),
        ],
        first_callee in 0..AGENTS,
        hops in prop::collection::vec(hop(), 1..8),
    ) {
        walk(allow_cycles, principal, first_callee, hops)?;
    }
}

#[test]
fn a_walk_that_keeps_coming_back_reaches_the_depth_limit_and_keeps_what_it_owes() {
    // agent-1 and agent-0 call each other back and forth, with cycles allowed, through every
    // door in turn, presenting each verdict as it is (so `watermark` is owed all the way).
    let hops: Vec<Hop> = (0..7)
        .map(|i| Hop {
            callee: i % 2,
            door: DOORS[i % 3],
            credential: Credential::Verdict,
            keep: [true; 3],
            extra: None,
            revoke: None,
        })
        .collect();
    let deepest = walk(true, Principal::User(0), 1, hops).unwrap();
    assert_eq!(deepest, harness(true).settings.max_depth + 1);
}

#[test]
fn a_chain_that_comes_back_to_its_agent_principal_is_never_shortened() {
    // agent-0 acts for itself and calls itself first: agent-0 → agent-0 → agent-1 → agent-0 →
    // agent-2. The tokens agent-0 holds name it as principal and as holder.
    let hops: Vec<Hop> = [1, 0, 2]
        .iter()
        .enumerate()
        .map(|(i, &callee)| Hop {
            callee,
            door: DOORS[i % 3],
            credential: [
                Credential::Verdict,
                Credential::Reissued,
                Credential::Minted,
            ][i % 3],
            keep: [true; 3],
            extra: None,
            revoke: None,
        })
        .collect();
    assert_eq!(walk(true, Principal::Agent(0), 0, hops).unwrap(), 4);
}
