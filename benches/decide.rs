//! The decision core's cost: over the shipped bundle, and over generated bundles of 100 to
//! 100,000 policies, where the index must keep the cost flat. The unindexed evaluation over the
//! same bundles is measured alongside for comparison. Then a hop's verification and signing,
//! the whole pipeline in process (cached, evaluated, and cached without a verdict), and the
//! pieces of a verdict's signing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)] // each user takes only part of it
#[path = "../tests/support/synthetic.rs"]
mod synthetic;

use std::hint::black_box;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton::bundle::{ContextInput, PolicyBundle};
use baton::decision::{Decision, DecisionRequest, DecisionSettings, Effect, decide};
use baton::delegation::{Delegation, upstream};
use baton::identity::{Identity, IdentityKind};
use baton::pipeline::{Asker, Parts, Pipeline, Question};
use cedar_policy::EntityUid;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::{Map, json};

fn request(
    caller: &str,
    callee: &str,
    principal: Identity,
    scopes: &[&str],
    context: Map<String, serde_json::Value>,
) -> DecisionRequest {
    DecisionRequest {
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        context,
        ..DecisionRequest::new(
            Identity::new(IdentityKind::Agent, caller),
            Identity::new(IdentityKind::Agent, callee),
            principal,
        )
    }
}

fn shipped(c: &mut Criterion) {
    let bundle =
        PolicyBundle::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))).unwrap();
    let settings = DecisionSettings::default();
    let mut group = c.benchmark_group("decide/shipped");
    let human_led = request(
        "user-assistant",
        "data-analyst",
        Identity::new(IdentityKind::User, "alice"),
        &["reports.generate", "finance.read"],
        Map::new(),
    );
    let refund = request(
        "support-assistant",
        "refund-agent",
        Identity::new(IdentityKind::User, "bob"),
        &["refunds.issue", "transactions.read"],
        json!({ "amount": 750 }).as_object().cloned().unwrap(),
    );
    assert_eq!(
        decide(&bundle, &human_led, &settings).unwrap().effect,
        Effect::Allow
    );
    assert_eq!(
        decide(&bundle, &refund, &settings).unwrap().effect,
        Effect::Allow
    );
    group.bench_function("human-led", |b| {
        b.iter(|| decide(&bundle, black_box(&human_led), &settings))
    });
    group.bench_function("refund", |b| {
        b.iter(|| decide(&bundle, black_box(&refund), &settings))
    });
    group.finish();
}

fn scaling(c: &mut Criterion) {
    let settings = DecisionSettings::default();
    let mut group = c.benchmark_group("decide/policies");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(4));
    let mut unindexed = Vec::new();
    for n in [100, 1_000, 10_000, 100_000] {
        let bundle = synthetic::bundle(n);
        let caller = 3;
        let callee = synthetic::partner(caller, synthetic::agents_for(n));
        let req = request(
            &format!("agent-{caller}"),
            &format!("agent-{callee}"),
            Identity::new(IdentityKind::User, "alice"),
            &["read", "write"],
            Map::new(),
        );
        let outcome = decide(&bundle, &req, &settings).unwrap();
        assert_eq!(outcome.effect, Effect::Allow, "{outcome:?}");
        group.bench_with_input(BenchmarkId::new("indexed", n), &n, |b, _| {
            b.iter(|| decide(&bundle, black_box(&req), &settings))
        });
        if n <= 10_000 {
            unindexed.push((n, bundle, req));
        }
    }
    group.finish();

    // One Cedar evaluation of the invoke check, over the candidates and over the whole set.
    let mut group = c.benchmark_group("evaluate/invoke");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    for (n, bundle, req) in &unindexed {
        let principal = Identity::new(IdentityKind::User, "alice");
        let chain = [principal.clone(), req.caller.clone(), req.callee.clone()];
        let task = Map::new();
        let context = bundle
            .contract()
            .context(&ContextInput {
                on_behalf_of: &principal,
                caller: &req.caller,
                delegated: true,
                depth: 2,
                chain: &chain,
                task: &task,
            })
            .unwrap();
        let caller = bundle.contract().uid(&req.caller).unwrap();
        let callee = bundle.contract().uid(&req.callee).unwrap();
        let invoke = EntityUid::from_str("Action::\"invoke\"").unwrap();
        group.bench_with_input(BenchmarkId::new("indexed", n), n, |b, _| {
            b.iter(|| bundle.evaluate(&caller, &[&invoke], &callee, &context))
        });
        group.bench_with_input(BenchmarkId::new("full-set", n), n, |b, _| {
            b.iter(|| bundle.evaluate_unindexed(&caller, &[&invoke], &callee, &context))
        });
    }
    group.finish();
}

/// A second hop (alice's assistant asking the analyst) three ways: the decision alone; decided,
/// stamped and signed; and with the upstream verdict verified and applied first.
fn delegation(c: &mut Criterion) {
    let bundle =
        PolicyBundle::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))).unwrap();
    let settings = DecisionSettings::default();
    let delegation = Delegation::ephemeral();
    let alice = Identity::new(IdentityKind::User, "alice");
    let scopes = ["reports.generate", "finance.read"];
    let mut first = request(
        "user-assistant",
        "user-assistant",
        alice.clone(),
        &scopes,
        Map::new(),
    );
    first.caller = alice.clone();
    let now = SystemTime::now();
    let hop1 = Decision::stamp(decide(&bundle, &first, &settings).unwrap(), None, now, None);
    let verdict = delegation
        .verdicts
        .issue(
            delegation.keyring.signer(),
            &hop1,
            &first,
            &first.digest(),
            &[],
            None,
        )
        .unwrap()
        .unwrap();
    // The same hop as a gateway would assert it, and as it arrives with the verdict.
    let mut asserted = request("user-assistant", "data-analyst", alice, &scopes, Map::new());
    asserted.ceiling = Some(hop1.outcome.granted.iter().cloned().collect());
    asserted.transaction_id = Some(hop1.transaction_id.clone());
    let from_token = DecisionRequest {
        ceiling: None,
        transaction_id: None,
        ..asserted.clone()
    };

    let sign = |req: &DecisionRequest, bound: Option<SystemTime>| {
        let outcome = decide(&bundle, req, &settings).unwrap();
        let decision = Decision::stamp(
            outcome,
            req.transaction_id.clone(),
            SystemTime::now(),
            bound,
        );
        delegation
            .verdicts
            .issue(
                delegation.keyring.signer(),
                &decision,
                req,
                &req.digest(),
                &[],
                None,
            )
            .unwrap()
    };
    assert!(sign(&asserted, None).is_some());

    let mut group = c.benchmark_group("hop");
    group.bench_function("decide", |b| {
        b.iter(|| decide(&bundle, black_box(&asserted), &settings))
    });
    group.bench_function("decide+sign", |b| {
        b.iter(|| sign(black_box(&asserted), None))
    });
    let hop = |verify: &dyn Fn(&str, u64) -> baton::token::Upstream| {
        let now = SystemTime::now();
        let unix_now = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let upstream = verify(black_box(&verdict), unix_now);
        let bound = UNIX_EPOCH + Duration::from_secs(upstream.exp_max);
        let mut req = from_token.clone();
        upstream::apply(&mut req, &upstream, false, unix_now).unwrap();
        sign(&req, Some(bound))
    };
    let uncached = |t: &str, now| delegation.verifier.uncached().verify(t, now).unwrap();
    let cached = |t: &str, now| delegation.verifier.verify(t, now).unwrap();
    group.bench_function("verify+decide+sign", |b| b.iter(|| hop(&uncached)));
    group.bench_function("cached-verify+decide+sign", |b| b.iter(|| hop(&cached)));
    let unix_now = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    group.bench_function("verify", |b| {
        b.iter(|| uncached(black_box(&verdict), unix_now))
    });
    group.bench_function("cached-verify", |b| {
        b.iter(|| cached(black_box(&verdict), unix_now))
    });
    group.finish();
}

/// One question through the whole pipeline, in process: admission, revocation, the caches or
/// an evaluation, stamping, signing (audit off, as in the load runs that compare). What a door
/// adds on top is conversion and the transport.
fn pipeline(c: &mut Criterion) {
    let bundle =
        PolicyBundle::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let mut parts = Parts::embedded(bundle, DecisionSettings::default());
    let cached = Pipeline::new(Parts {
        cache: baton::cache::DecisionCache::new(baton::cache::CacheSettings::default()),
        ..Parts::embedded(
            PolicyBundle::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")))
                .unwrap(),
            DecisionSettings::default(),
        )
    });
    parts.cache = baton::cache::DecisionCache::new(baton::cache::CacheSettings {
        capacity: 0,
        ..baton::cache::CacheSettings::default()
    });
    let evaluated = Pipeline::new(parts);
    let question = Question::new(
        Identity::new(IdentityKind::Agent, "user-assistant"),
        Identity::new(IdentityKind::Agent, "data-analyst"),
        Identity::new(IdentityKind::User, "alice"),
        vec!["reports.generate".to_owned(), "finance.read".to_owned()],
    );
    let asker = Asker {
        peer: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9))),
        ..Asker::default()
    };
    let answer = |pipeline: &Pipeline| {
        runtime
            .block_on(pipeline.decide(black_box(question.clone()), &asker))
            .unwrap()
    };
    let no_verdict = Question {
        omit_verdict: true,
        ..question.clone()
    };
    let answer_no_verdict = |pipeline: &Pipeline| {
        runtime
            .block_on(pipeline.decide(black_box(no_verdict.clone()), &asker))
            .unwrap()
    };
    assert!(answer(&cached).verdict.is_some());
    assert!(answer_no_verdict(&cached).verdict.is_none());
    let mut group = c.benchmark_group("pipeline");
    group.bench_function("cached", |b| b.iter(|| answer(&cached)));
    group.bench_function("cached, no verdict", |b| {
        b.iter(|| answer_no_verdict(&cached))
    });
    group.bench_function("evaluated", |b| b.iter(|| answer(&evaluated)));
    group.finish();
}

/// A verdict's signing, piece by piece: its claims, the Ed25519 signature over a signing input
/// of a verdict's size by aws-lc (what Baton signs with), by ed25519-dalek (what it signed
/// with before) and by ring (already in the tree for RS256 and ES256): the same signature, bit
/// for bit, and the whole verdict.
fn verdict(c: &mut Criterion) {
    use ed25519_dalek::Signer as _;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let bundle =
        PolicyBundle::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))).unwrap();
    let settings = DecisionSettings::default();
    let delegation = Delegation::ephemeral();
    let request = DecisionRequest {
        scopes: vec!["reports.generate".to_owned(), "finance.read".to_owned()],
        ..DecisionRequest::new(
            Identity::new(IdentityKind::Agent, "user-assistant"),
            Identity::new(IdentityKind::Agent, "data-analyst"),
            Identity::new(IdentityKind::User, "alice"),
        )
    };
    let decision = Decision::stamp(
        decide(&bundle, &request, &settings).unwrap(),
        None,
        SystemTime::now(),
        None,
    );
    let digest = request.digest();
    let issuer = &delegation.verdicts;
    let token = issuer
        .issue(
            delegation.keyring.signer(),
            &decision,
            &request,
            &digest,
            &[],
            None,
        )
        .unwrap()
        .unwrap();
    // What an Ed25519 signature covers: the encoded header and claims.
    let input = token.rsplit_once('.').unwrap().0.as_bytes().to_vec();
    let dalek = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let pem = dalek.to_pkcs8_pem(pkcs8::LineEnding::LF).unwrap();
    let key = baton::token::SigningKey::from_pem(&pem).unwrap();
    assert_eq!(key.sign(&input).unwrap(), dalek.sign(&input).to_bytes());
    let ring_key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
    assert_eq!(
        ring_key.sign(&input).as_ref(),
        dalek.sign(&input).to_bytes()
    );

    let mut group = c.benchmark_group("verdict");
    group.bench_function("claims", |b| {
        b.iter(|| issuer.claims(black_box(&decision), &request, &digest, &[], None))
    });
    group.bench_function(format!("ed25519 aws-lc, {} bytes", input.len()), |b| {
        b.iter(|| key.sign(black_box(&input)).unwrap())
    });
    group.bench_function(format!("ed25519 dalek, {} bytes", input.len()), |b| {
        b.iter(|| dalek.sign(black_box(&input)))
    });
    group.bench_function(format!("ed25519 ring, {} bytes", input.len()), |b| {
        b.iter(|| ring_key.sign(black_box(&input)))
    });
    group.bench_function("issue", |b| {
        b.iter(|| {
            issuer.issue(
                delegation.keyring.signer(),
                black_box(&decision),
                &request,
                &digest,
                &[],
                None,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, shipped, scaling, delegation, pipeline, verdict);
criterion_main!(benches);
