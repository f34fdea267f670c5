//! JWT signing keys that rotate (SPEC §9): tokens carry a `kid`; the current and the previous
//! key verify, issuing uses the current one, and the key set is re-read from its secret while
//! the container lives.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keystone_auth::{AuthError, Claims, JwtKeys, Principal};
use keystone_http::{AppState, JwtKeyRing};
use keystone_secrets::{SecretSource, SecretsError};
use keystone_tests::*;
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;

const OCTOBER: &str = "october-secret-0123456789abcdef";
const NOVEMBER: &str = "november-secret-0123456789abcdef";
const DECEMBER: &str = "december-secret-0123456789abcdef";

fn key_set(current: (&str, &str), previous: Option<(&str, &str)>) -> String {
    let key = |(kid, secret): (&str, &str)| json!({"kid": kid, "secret": secret});
    match previous {
        Some(previous) => json!({"current": key(current), "previous": key(previous)}),
        None => json!({"current": key(current)}),
    }
    .to_string()
}

fn keys(document: &str) -> JwtKeys {
    JwtKeys::parse(&SecretString::from(document), None).unwrap()
}

fn collector() -> Principal {
    Principal::Collector {
        collector_id: 7,
        operator_id: "DC007".to_owned(),
    }
}

fn kid_of(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).unwrap().kid
}

/// A token as someone holding `secret` would sign it, with `kid` (or none).
fn signed_with(secret: &str, kid: Option<&str>) -> String {
    signed_for(7, secret, kid)
}

/// [`signed_with`] for collector `collector_id`.
fn signed_for(collector_id: i64, secret: &str, kid: Option<&str>) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        collector_id,
        operator_id: format!("DC{collector_id:03}"),
        role: "data_collector".to_owned(),
        iss: None,
        exp: now + 600,
        iat: Some(now),
        nbf: Some(now),
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[test]
fn tokens_are_issued_with_the_current_kid() {
    let keys = keys(&key_set(("2026-11", NOVEMBER), Some(("2026-10", OCTOBER))));
    let token = keys
        .issue(&collector(), chrono::Duration::minutes(5))
        .unwrap();
    assert_eq!(kid_of(&token).as_deref(), Some("2026-11"));
    assert_eq!(keys.verify(&token), Ok(collector()));
}

#[test]
fn a_token_signed_with_the_previous_key_verifies_during_the_overlap() {
    let october = keys(&key_set(("2026-10", OCTOBER), None));
    let token = october
        .issue(&collector(), chrono::Duration::minutes(5))
        .unwrap();

    let rotated = keys(&key_set(("2026-11", NOVEMBER), Some(("2026-10", OCTOBER))));

    assert_eq!(rotated.verify(&token), Ok(collector()));
}

#[test]
fn a_retired_key_or_an_unknown_kid_is_refused() {
    let october_token = keys(&key_set(("2026-10", OCTOBER), None))
        .issue(&collector(), chrono::Duration::minutes(5))
        .unwrap();
    // Two rotations later October is gone.
    let december = keys(&key_set(("2026-12", DECEMBER), Some(("2026-11", NOVEMBER))));
    assert_eq!(
        december.verify(&october_token),
        Err(AuthError::InvalidToken)
    );
    // A kid nobody issued, even with a key that is valid under another name.
    assert_eq!(
        december.verify(&signed_with(DECEMBER, Some("2027-01"))),
        Err(AuthError::InvalidToken)
    );
    // A known kid with another key's signature.
    assert_eq!(
        december.verify(&signed_with(NOVEMBER, Some("2026-12"))),
        Err(AuthError::InvalidToken)
    );
}

#[test]
fn a_token_without_kid_is_checked_against_the_current_key_only() {
    let keys = keys(&key_set(("2026-11", NOVEMBER), Some(("2026-10", OCTOBER))));
    assert_eq!(keys.verify(&signed_with(NOVEMBER, None)), Ok(collector()));
    assert_eq!(
        keys.verify(&signed_with(OCTOBER, None)),
        Err(AuthError::InvalidToken)
    );
}

#[test]
fn a_plain_secret_keeps_working_and_gets_a_kid_derived_from_it() {
    let plain = JwtKeys::parse(&SecretString::from(NOVEMBER), None).unwrap();
    let token = plain
        .issue(&collector(), chrono::Duration::minutes(5))
        .unwrap();
    let kid = kid_of(&token).unwrap();
    assert!(kid.starts_with("k-") && kid.len() == 18, "{kid}");
    assert_eq!(plain.verify(&token), Ok(collector()));
    // Keystone's tokens, signed with the shared secret and no kid.
    assert_eq!(plain.verify(&signed_with(NOVEMBER, None)), Ok(collector()));
}

#[test]
fn unusable_key_sets_are_refused_at_cold_start() {
    for bad in [
        "short".to_owned(),
        r#"{"current": {"kid": "a"}}"#.to_owned(),
        key_set(("a", "too-short"), None),
        key_set(("a", NOVEMBER), Some(("a", OCTOBER))),
        key_set(("", NOVEMBER), None),
        r#"{"current": {"kid": "a", "secret": "0123456789abcdef0"}, "next": {}}"#.to_owned(),
    ] {
        assert!(
            JwtKeys::parse(&SecretString::from(bad.as_str()), None).is_err(),
            "{bad}"
        );
    }
}

/// The status `GET /api/v1/auth/me` answers `token`.
async fn me_status(router: &axum::Router, token: &str) -> StatusCode {
    send(router, Method::GET, "/api/v1/auth/me", Some(token), &[], "")
        .await
        .status
}

/// A secret whose value an operator changes mid-test, as Secrets Manager rotation does.
#[derive(Debug, Clone)]
struct RotatingSecret(Arc<Mutex<String>>);

impl SecretSource for RotatingSecret {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<SecretString, SecretsError>> + Send + '_>> {
        let value = self.0.lock().unwrap().clone();
        Box::pin(async move { Ok(SecretString::from(value)) })
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_rotation_in_the_secret_reaches_a_running_container_without_a_401(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 10, 0).await;
    let secret = RotatingSecret(Arc::new(Mutex::new(key_set(("2026-10", OCTOBER), None))));
    let ring = JwtKeyRing::rotating(
        keys(&key_set(("2026-10", OCTOBER), None)),
        Arc::new(secret.clone()),
        None,
        Duration::ZERO,
    );
    let router = keystone_local::routes().with_state(AppState::new(app_db(&pool), ring));
    let id = s.seat.collector_id;
    let october_token = signed_for(id, OCTOBER, Some("2026-10"));
    let me = |token: String| {
        let router = router.clone();
        async move { me_status(&router, &token).await }
    };
    assert_eq!(me(october_token.clone()).await, StatusCode::OK);

    // November becomes current, October stays as previous: old tokens keep working, new ones
    // carry November's kid.
    *secret.0.lock().unwrap() = key_set(("2026-11", NOVEMBER), Some(("2026-10", OCTOBER)));
    assert_eq!(me(october_token.clone()).await, StatusCode::OK);
    let november_token = signed_for(id, NOVEMBER, Some("2026-11"));
    assert_eq!(me(november_token.clone()).await, StatusCode::OK);

    // December: October is retired.
    *secret.0.lock().unwrap() = key_set(("2026-12", DECEMBER), Some(("2026-11", NOVEMBER)));
    assert_eq!(me(october_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(november_token).await, StatusCode::OK);

    // A broken secret keeps the keys in use rather than locking everyone out.
    *secret.0.lock().unwrap() = "{not json".to_owned();
    assert_eq!(
        me(signed_for(id, DECEMBER, Some("2026-12"))).await,
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn login_issues_tokens_with_the_current_kid(pool: PgPool) {
    let router = router(pool.clone());
    let response = send(
        &router,
        Method::POST,
        "/api/v1/auth/login",
        None,
        &[],
        json!({"account": ADMIN_USERNAME, "password": ADMIN_PASSWORD}).to_string(),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let token = response.body["access_token"].as_str().unwrap();
    assert_eq!(kid_of(token).as_deref(), Some(jwt_keys().current_kid()));
}

/// [`RotatingSecret`] that counts its reads.
#[derive(Debug, Clone)]
struct CountedSecret(RotatingSecret, Arc<std::sync::atomic::AtomicUsize>);

impl SecretSource for CountedSecret {
    fn fetch(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<SecretString, SecretsError>> + Send + '_>> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.fetch()
    }
}

/// SPEC §9 "rotate without errors": right after a rotation, a container that started later (and
/// signs with the new key) and one that started before (and would re-read the secret only
/// minutes later) serve each other's tokens: a token naming a key a container does not know
/// makes it re-read the secret once, at most every few seconds, before it refuses.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn containers_on_both_sides_of_a_rotation_accept_each_others_tokens(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 10, 0).await;
    let id = s.seat.collector_id;
    let secret = RotatingSecret(Arc::new(Mutex::new(key_set(("2026-10", OCTOBER), None))));
    let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let container = |document: &str| {
        let ring = JwtKeyRing::rotating(
            keys(document),
            Arc::new(CountedSecret(secret.clone(), reads.clone())),
            None,
            Duration::from_secs(3_600),
        );
        keystone_local::routes().with_state(AppState::new(app_db(&pool), ring))
    };
    let me = |router: axum::Router, token: String| async move { me_status(&router, &token).await };
    let older = container(&key_set(("2026-10", OCTOBER), None));

    // The rotation, then a container that starts after it and signs with November's key.
    let rotated = key_set(("2026-11", NOVEMBER), Some(("2026-10", OCTOBER)));
    *secret.0.lock().unwrap() = rotated.clone();
    let newer = container(&rotated);
    let november_token = keys(&rotated)
        .issue(
            &Principal::Collector {
                collector_id: id,
                operator_id: format!("DC{id:03}"),
            },
            chrono::Duration::hours(1),
        )
        .unwrap();
    assert_eq!(kid_of(&november_token).as_deref(), Some("2026-11"));

    assert_eq!(
        me(older.clone(), november_token.clone()).await,
        StatusCode::OK
    );
    assert_eq!(
        me(newer.clone(), signed_for(id, OCTOBER, Some("2026-10"))).await,
        StatusCode::OK
    );
    assert_eq!(
        reads.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one re-read"
    );

    // Forged key ids cost at most one read per interval, and are refused.
    for n in 0..5 {
        let forged = signed_for(id, "forged-secret-0123456789abcdef", Some(&format!("x{n}")));
        assert_eq!(me(older.clone(), forged).await, StatusCode::UNAUTHORIZED);
    }
    assert!(reads.load(std::sync::atomic::Ordering::SeqCst) <= 2);
}
