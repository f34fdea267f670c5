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

/// A key set whose previous key (if any) retired a minute ago.
fn key_set(current: (&str, &str), previous: Option<(&str, &str)>) -> String {
    key_set_retired(
        current,
        previous,
        chrono::Utc::now() - chrono::Duration::minutes(1),
    )
}

fn key_set_retired(
    current: (&str, &str),
    previous: Option<(&str, &str)>,
    retired_at: chrono::DateTime<chrono::Utc>,
) -> String {
    let key = |(kid, secret): (&str, &str)| json!({"kid": kid, "secret": secret});
    match previous {
        Some(previous) => {
            let mut previous = key(previous);
            previous["retired_at"] = json!(retired_at.to_rfc3339());
            json!({"current": key(current), "previous": previous})
        }
        None => json!({"current": key(current)}),
    }
    .to_string()
}

/// The collector a verification found, or its error.
fn who(verified: Result<Principal, AuthError>) -> Result<i64, AuthError> {
    match verified? {
        Principal::Collector { collector_id, .. } => Ok(collector_id),
        other => panic!("not a collector: {other:?}"),
    }
}

fn keys(document: &str) -> JwtKeys {
    JwtKeys::parse(&SecretString::from(document), None).unwrap()
}

fn collector() -> Principal {
    Principal::Collector {
        collector_id: 7,
        operator_id: "DC007".to_owned(),
        issued_at: None,
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
    signed_at(
        collector_id,
        secret,
        kid,
        Some(chrono::Utc::now().timestamp()),
    )
}

/// [`signed_for`] with the `iat` given (or none).
fn signed_at(collector_id: i64, secret: &str, kid: Option<&str>, iat: Option<i64>) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        collector_id,
        operator_id: format!("DC{collector_id:03}"),
        role: "data_collector".to_owned(),
        iss: None,
        exp: now + 600,
        iat,
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
    assert_eq!(who(keys.verify(&token)), Ok(7));
}

#[test]
fn a_token_signed_with_the_previous_key_verifies_during_the_overlap() {
    let october = keys(&key_set(("2026-10", OCTOBER), None));
    let token = october
        .issue(&collector(), chrono::Duration::minutes(5))
        .unwrap();

    let rotated = keys(&key_set(("2026-11", NOVEMBER), Some(("2026-10", OCTOBER))));

    assert_eq!(who(rotated.verify(&token)), Ok(7));
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
    assert_eq!(who(keys.verify(&signed_with(NOVEMBER, None))), Ok(7));
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
    assert_eq!(who(plain.verify(&token)), Ok(7));
    // Keystone's tokens, signed with the shared secret and no kid.
    assert_eq!(who(plain.verify(&signed_with(NOVEMBER, None))), Ok(7));
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
        // A previous key must say when it retired; the current one has not.
        json!({"current": {"kid": "b", "secret": NOVEMBER},
               "previous": {"kid": "a", "secret": OCTOBER}})
        .to_string(),
        json!({"current": {"kid": "b", "secret": NOVEMBER, "retired_at": "2026-12-01T00:00:00Z"}})
            .to_string(),
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
                issued_at: None,
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

/// SPEC §4: the previous key verifies only tokens issued before the rotation that retired it
/// (with the allowance for containers that have not re-read the key set yet), and only for as
/// long as such a token can live; no key verifies a token issued in the future.
#[test]
fn the_previous_key_has_a_bounded_life() {
    let now = chrono::Utc::now();
    let at = |when: chrono::DateTime<chrono::Utc>| Some(when.timestamp());
    let rotated_hour_ago = keys(&key_set_retired(
        ("2026-11", NOVEMBER),
        Some(("2026-10", OCTOBER)),
        now - chrono::Duration::hours(1),
    ));
    let by_previous = |iat| signed_at(7, OCTOBER, Some("2026-10"), iat);
    // Issued before the rotation, or within the allowance after it: valid.
    let before = at(now - chrono::Duration::hours(2));
    assert_eq!(who(rotated_hour_ago.verify(&by_previous(before))), Ok(7));
    let within = at(now - chrono::Duration::minutes(55));
    assert_eq!(who(rotated_hour_ago.verify(&by_previous(within))), Ok(7));
    // Signed with the retired key after the rotation (a leaked key), or saying nothing.
    for late in [at(now - chrono::Duration::minutes(30)), at(now), None] {
        assert_eq!(
            rotated_hour_ago.verify(&by_previous(late)),
            Err(AuthError::InvalidToken),
            "{late:?}"
        );
    }
    // Once every token it signed has expired, the previous key verifies nothing at all.
    let rotated_two_days_ago = keys(&key_set_retired(
        ("2026-11", NOVEMBER),
        Some(("2026-10", OCTOBER)),
        now - chrono::Duration::days(2),
    ));
    let early = at(now - chrono::Duration::days(3));
    assert_eq!(
        rotated_two_days_ago.verify(&by_previous(early)),
        Err(AuthError::InvalidToken)
    );
    // A shorter token lifetime shortens it: 1 h tokens, a key retired 2 h ago.
    let short = keys(&key_set_retired(
        ("2026-11", NOVEMBER),
        Some(("2026-10", OCTOBER)),
        now - chrono::Duration::hours(2),
    ))
    .with_token_lifetime(Duration::from_secs(3_600));
    let before = at(now - chrono::Duration::hours(3));
    assert_eq!(
        short.verify(&by_previous(before)),
        Err(AuthError::InvalidToken)
    );
    // An `iat` 30 days ahead is refused with the current key too.
    let ahead = at(now + chrono::Duration::days(30));
    assert_eq!(
        rotated_hour_ago.verify(&signed_at(7, NOVEMBER, Some("2026-11"), ahead)),
        Err(AuthError::InvalidToken)
    );
}

/// A line-collecting writer for a tracing subscriber.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// SPEC §9 and the security review: a key set of the wrong shape is reported by what is wrong
/// and where, never by quoting it — at cold start (the configuration error) and on a refresh
/// (the log line).
#[tokio::test]
async fn malformed_key_sets_never_reach_the_logs() {
    const LEAK: &str = "leaked-signing-material-0123456789";
    let malformed = [
        format!(r#"{{"current": "{LEAK}"}}"#),
        format!(r#"{{"current": {{"kid": "a", "secret": "{LEAK}"}}, "previous": "{LEAK}"}}"#),
        format!(r#"{{"current": {{"kid": "a", "secret": "{LEAK}", "{LEAK}": 1}}}}"#),
        format!(
            r#"{{"current": {{"kid": "a", "secret": "{LEAK}"}}, "previous": {{"kid": "b", "secret": "{LEAK}x", "retired_at": "{LEAK}"}}}}"#
        ),
        format!(r#"{{"current": {{"kid": "a", "secret": "{LEAK}""#),
    ];
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    for bad in &malformed {
        let config = keystone_http::Config::from_lookup(|name| match name {
            "JWT_SECRET" => Some(bad.clone()),
            "DATABASE_URL" => Some("postgres://localhost/keystone".to_owned()),
            _ => None,
        });
        let error = config.expect_err(bad).to_string();
        assert!(!error.contains(LEAK), "{error}");
        tracing::error!(error = %error, "cold start failed");

        let secret = RotatingSecret(Arc::new(Mutex::new(bad.clone())));
        let ring = JwtKeyRing::rotating(
            keys(&key_set(("2026-11", NOVEMBER), None)),
            Arc::new(secret),
            None,
            Duration::ZERO,
        );
        ring.keys().await;
    }
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("unusable"),
        "the refresh must be logged: {text}"
    );
    assert!(!text.contains(LEAK), "{text}");
}
