//! The minter's own guarantees: a verdict is redeemed once (in memory, and across minter
//! processes through Redis), only for this minter, and never past an obligation it cannot meet.

use std::process::Output;
use std::sync::Arc;

use baton::fleet::{Fleet, RedisSettings};
use baton::minter::{Minter, RedisReplayGuard};
use baton::pb::Decision;
use baton::token::{KeySet, SigningKey};

use crate::helpers::*;
use crate::redis::RedisServer;

/// Asserts that `baton-minter` refused with `code` (exit status 1 for a refusal, 2 for a
/// minter that could not start).
fn assert_minter_failed(output: &Output, status: i32, code: &str) -> String {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(status), "{message}");
    assert!(
        message.starts_with(&format!("baton-minter: {code}: ")),
        "{message}"
    );
    assert!(stdout(output).is_empty(), "a refusal prints no token");
    message
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minter like the test Baton's own, remembering verdicts in `redis`.
async fn redis_minter(baton: &Baton, redis: &RedisServer) -> Minter {
    let fleet = Fleet::start(RedisSettings::new(vec![redis.url()])).expect("a Redis URL");
    let guard = RedisReplayGuard::connect(fleet, "test:")
        .await
        .expect("connect to the test Redis");
    Minter {
        issuer: MINTER_ISSUER.to_owned(),
        replay: Arc::new(guard),
        ..Minter::new(baton.minter_key.clone(), baton.minter.baton_keys.clone())
    }
}

fn code<T>(result: &Result<T, baton::minter::MintError>) -> &'static str {
    result.as_ref().map_or_else(|e| e.code(), |_| "OK")
}

#[tokio::test]
async fn a_verdict_is_redeemed_once_in_memory() {
    let baton = spawn_baton().await;
    let (hop1, _) = assistant_token(&baton).await;
    // `assistant_token` has redeemed this verdict already.
    let err = baton.minter.mint(&hop1.verdict, now()).await.unwrap_err();
    assert_eq!(err.code(), "REPLAYED");
    assert!(err.to_string().contains(&hop1.decision_id), "{err}");

    // Two redemptions racing: exactly one wins.
    let fresh = baton
        .authorize(first_hop(
            "User:alice",
            "Agent:user-assistant",
            &["reports.generate"],
        ))
        .await;
    let (a, b) = tokio::join!(
        baton.minter.mint(&fresh.verdict, now()),
        baton.minter.mint(&fresh.verdict, now())
    );
    let mut codes = [code(&a), code(&b)];
    codes.sort_unstable();
    assert_eq!(codes, ["OK", "REPLAYED"]);
}

/// Each `baton-minter mint` is a process of its own: with the in-memory guard the same verdict
/// was redeemed twice through the documented pipe. With `--replay-file`, the second process
/// (or a restarted one) is refused.
#[tokio::test]
async fn a_verdict_is_redeemed_once_across_minter_processes_through_a_replay_file() {
    let baton = spawn_baton().await;
    let hop1 = baton
        .authorize(first_hop(
            "User:alice",
            "Agent:user-assistant",
            &["reports.generate"],
        ))
        .await;
    assert_allowed(&hop1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("minter").join("used.jsonl");
    let with_file = ["--replay-file", file.to_str().unwrap()];

    let first = baton.mint_with_binary(&hop1.verdict, &with_file).await;
    assert!(first.status.success(), "{}", stderr(&first));
    let second = baton.mint_with_binary(&hop1.verdict, &with_file).await;
    let message = assert_minter_failed(&second, 1, "REPLAYED");
    assert!(message.contains(&hop1.decision_id), "{message}");
}

#[tokio::test]
async fn a_verdict_is_redeemed_once_across_minter_processes_through_redis() {
    let redis = RedisServer::start();
    let baton = spawn_baton().await;
    let hop1 = baton
        .authorize(first_hop(
            "User:alice",
            "Agent:user-assistant",
            &["reports.generate"],
        ))
        .await;
    assert_allowed(&hop1);
    let url = redis.url();
    let with_redis = ["--redis", url.as_str()];

    let first = baton.mint_with_binary(&hop1.verdict, &with_redis).await;
    assert!(first.status.success(), "{}", stderr(&first));
    assert_allowed(
        &baton
            .authorize(next_hop(
                "Agent:user-assistant",
                "Agent:data-analyst",
                &stdout(&first),
                &["reports.generate"],
            ))
            .await,
    );

    // A second process with a memory of its own knows of the first only through Redis.
    let second = baton.mint_with_binary(&hop1.verdict, &with_redis).await;
    let message = assert_minter_failed(&second, 1, "REPLAYED");
    assert!(message.contains(&hop1.decision_id), "{message}");

    // The entry lives until the verdict could not be redeemed anyway, and no longer.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("baton-minter:jti:{}", hop1.decision_id);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    let verdict_exp: u64 = claims::<baton::token::VerdictClaims>(&hop1.verdict).exp;
    let most = i64::try_from(verdict_exp + Minter::LEEWAY_SECS - now() + 1).unwrap();
    assert!(ttl > 0 && ttl <= most, "TTL {ttl}, expected at most {most}");
}

#[tokio::test]
async fn minters_racing_on_one_verdict_through_redis_redeem_it_once() {
    let redis = RedisServer::start();
    let baton = spawn_baton().await;
    let (one, two) = (
        redis_minter(&baton, &redis).await,
        redis_minter(&baton, &redis).await,
    );
    for _ in 0..5 {
        let hop1 = baton
            .authorize(first_hop(
                "User:alice",
                "Agent:user-assistant",
                &["reports.generate"],
            ))
            .await;
        let (a, b) = tokio::join!(
            one.mint(&hop1.verdict, now()),
            two.mint(&hop1.verdict, now())
        );
        let mut codes = [code(&a), code(&b)];
        codes.sort_unstable();
        assert_eq!(codes, ["OK", "REPLAYED"]);
    }
}

#[tokio::test]
async fn a_minter_without_its_replay_store_refuses_to_mint() {
    let redis = RedisServer::start();
    let baton = spawn_baton().await;
    let minter = redis_minter(&baton, &redis).await;
    drop(redis);
    let hop1 = baton
        .authorize(first_hop(
            "User:alice",
            "Agent:user-assistant",
            &["reports.generate"],
        ))
        .await;
    let err = minter.mint(&hop1.verdict, now()).await.unwrap_err();
    assert_eq!(err.code(), "REPLAY_STORE_UNAVAILABLE", "{err}");
    assert!(err.to_string().contains("already redeemed"), "{err}");

    // The binary will not start without the Redis it was told to use.
    let dead = format!("redis://127.0.0.1:{}/", closed_port());
    let output = baton
        .mint_with_binary(&hop1.verdict, &["--redis", &dead])
        .await;
    let message = assert_minter_failed(&output, 2, "REPLAY_STORE_UNAVAILABLE");
    assert!(message.contains(&dead), "{message}");
}

/// Bob's support assistant asks the refund agent to pay back `amount`, with bob's delegation.
async fn refund_verdict(baton: &Baton, amount: f64) -> baton::pb::AuthorizeResponse {
    let (_, token) = baton
        .allow_and_mint(first_hop(
            "User:bob",
            "Agent:support-assistant",
            &["refunds.issue", "transactions.read"],
        ))
        .await;
    let mut request = next_hop(
        "Agent:support-assistant",
        "Agent:refund-agent",
        &token,
        &["refunds.issue"],
    );
    request.context = Some(self::amount(amount));
    let response = baton.authorize(request).await;
    assert_allowed(&response);
    response
}

#[tokio::test]
async fn an_obligation_the_minter_does_not_understand_is_refused() {
    // Baton leaves `human_approval` to the minter here, as a deployment whose minters enforce
    // it themselves would configure.
    // The shipped cases expect `human_approval` to hold refunds for a human, so they stay out.
    let bundle = tempfile::tempdir().unwrap();
    let mut baton = spawn_baton_with(Options {
        settings: baton::decision::DecisionSettings {
            approval_obligation: "approved-elsewhere".into(),
            ..Default::default()
        },
        bundle: Some(shipped_without_tests(bundle.path())),
        ..Options::default()
    })
    .await;
    let refund = refund_verdict(&baton, 750.0).await;
    assert_eq!(refund.obligations, ["human_approval"]);
    let err = baton.minter.mint(&refund.verdict, now()).await.unwrap_err();
    assert_eq!(err.code(), "OBLIGATION_NOT_UNDERSTOOD");
    assert!(err.to_string().contains("`human_approval`"), "{err}");

    let output = baton.mint_with_binary(&refund.verdict, &[]).await;
    assert_minter_failed(&output, 1, "OBLIGATION_NOT_UNDERSTOOD");

    // A deployment that enforces human approval says so; the refusal did not use the verdict.
    let output = baton
        .mint_with_binary(
            &refund.verdict,
            &["--understand", "human_approval", "--json"],
        )
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    baton.minter.understood.insert("human_approval".to_owned());
    let minted = baton.minter.mint(&refund.verdict, now()).await.unwrap();
    assert_eq!(minted.claims.aud, "Agent:refund-agent");
    assert_eq!(minted.claims.scope, "refunds.issue");

    // A small refund carries no obligation, and any minter redeems it.
    baton.minter.understood.clear();
    let small = refund_verdict(&baton, 300.0).await;
    assert!(small.obligations.is_empty());
    baton.minter.mint(&small.verdict, now()).await.unwrap();
}

#[tokio::test]
async fn a_minter_redeems_only_baton_verdicts_addressed_to_it() {
    let baton = spawn_baton().await;
    let (hop1, token) = assistant_token(&baton).await;
    let verdict = &hop1.verdict;

    let output = baton
        .mint_with_binary(verdict, &["--audience", "urn:another-minter"])
        .await;
    let message = assert_minter_failed(&output, 1, "WRONG_AUDIENCE");
    assert!(message.contains("`urn:baton:minter`"), "{message}");

    let output = baton
        .mint_with_binary(verdict, &["--baton-issuer", "urn:another-baton"])
        .await;
    assert_minter_failed(&output, 1, "WRONG_ISSUER");

    // An access token is not a verdict, even one this minter signed.
    let output = baton.mint_with_binary(&token, &[]).await;
    let message = assert_minter_failed(&output, 1, "VERDICT_INVALID");
    assert!(message.contains("WRONG_TOKEN_TYPE"), "{message}");

    // Nor is a verdict of another Baton, or one with a flipped byte.
    let other = spawn_baton().await;
    let foreign = other
        .authorize(first_hop(
            "User:alice",
            "Agent:user-assistant",
            &["reports.generate"],
        ))
        .await;
    let output = baton.mint_with_binary(&foreign.verdict, &[]).await;
    let message = assert_minter_failed(&output, 1, "VERDICT_INVALID");
    assert!(message.contains("UNKNOWN_KEY"), "{message}");
    let output = baton
        .mint_with_binary(&flip_signature_byte(&foreign.verdict), &[])
        .await;
    assert_minter_failed(&output, 1, "VERDICT_INVALID");

    // A DENY has no verdict to redeem.
    let deny = baton
        .authorize(first_hop(
            "User:dave",
            "Agent:user-assistant",
            &["finance.read"],
        ))
        .await;
    assert_eq!(deny.decision(), Decision::Deny);
    assert!(deny.verdict.is_empty());
    let output = baton.mint_with_binary(&deny.verdict, &[]).await;
    assert_minter_failed(&output, 1, "VERDICT_INVALID");
}

#[tokio::test]
async fn the_minter_binary_takes_the_verdict_as_an_argument() {
    let baton = spawn_baton().await;
    let hop1 = baton
        .authorize(first_hop(
            "User:alice",
            "Agent:user-assistant",
            &["reports.generate"],
        ))
        .await;
    let output = run_minter(
        [
            "mint",
            "--baton",
            &baton.url,
            "--key",
            baton.minter_key_file.to_str().unwrap(),
            "--issuer",
            MINTER_ISSUER,
            "--verdict",
            &hop1.verdict,
        ]
        .map(str::to_owned)
        .to_vec(),
        None,
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let token = stdout(&output);
    assert_eq!(token.split('.').count(), 3, "a bare compact JWS: {token}");
    assert_allowed(
        &baton
            .authorize(next_hop(
                "Agent:user-assistant",
                "Agent:data-analyst",
                &token,
                &["reports.generate"],
            ))
            .await,
    );
}

#[tokio::test]
async fn the_minter_binary_fails_to_start_without_baton_or_its_key() {
    let baton = spawn_baton().await;
    let unreachable = format!("http://127.0.0.1:{}", closed_port());
    let key = baton.minter_key_file.to_str().unwrap().to_owned();
    let output = run_minter(
        [
            "mint",
            "--baton",
            &unreachable,
            "--key",
            &key,
            "--verdict",
            "x",
        ]
        .map(str::to_owned)
        .to_vec(),
        None,
    )
    .await;
    let message = assert_minter_failed(&output, 2, "JWKS_UNAVAILABLE");
    assert!(message.contains(&unreachable), "{message}");

    let output = run_minter(
        [
            "mint",
            "--baton",
            &baton.url,
            "--key",
            "/nonexistent/minter.pem",
            "--verdict",
            "x",
        ]
        .map(str::to_owned)
        .to_vec(),
        None,
    )
    .await;
    assert_minter_failed(&output, 2, "KEY_INVALID");
}

#[tokio::test]
async fn the_minter_prints_the_keys_baton_must_trust() {
    let baton = spawn_baton().await;
    let output = run_minter(
        ["jwks", "--key", baton.minter_key_file.to_str().unwrap()]
            .map(str::to_owned)
            .to_vec(),
        None,
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = KeySet::from_jwks_json(&stdout(&output)).unwrap();
    assert_eq!(printed, baton.minter.jwks());
    assert_eq!(printed.keys()[0].kid(), baton.minter_key.kid());
    assert!(
        !stdout(&output).contains("\"d\""),
        "only the public key is printed"
    );
    // And it is not any other key.
    assert!(printed.get(SigningKey::generate().kid()).is_none());
}
