//! SPEC §4: logins are throttled per account and per source address, in PostgreSQL, without
//! locking everyone out; old password hashes are upgraded on a successful login.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use keystone_tests::*;
use serde_json::json;
use sqlx::PgPool;
use tower::ServiceExt;

/// A bcrypt hash (Python's `bcrypt`, cost 10) of "collector-pass-1".
const B2B: &str = "$2b$10$0mA5zXbrv1rDnT3ekdaQA.7NnP44bbRxCkwFZiPBggjFDYqTcVCHG";
const PASSWORD: &str = "collector-pass-1";

async fn login_from(
    router: &axum::Router,
    source: &str,
    account: &str,
    password: &str,
) -> (StatusCode, Option<u64>) {
    let mut request = Request::builder()
        .method("POST")
        .uri("/api/v1/auth/login")
        .body(Body::from(
            json!({"account": account, "password": password}).to_string(),
        ))
        .unwrap();
    let address: SocketAddr = format!("{source}:40000").parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(address));
    let response = router.clone().oneshot(request).await.unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (response.status(), retry_after)
}

/// Runs every future at once, each on its own task; answers in order.
async fn all<T: Send + 'static>(
    work: impl Iterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let tasks: Vec<_> = work.map(tokio::spawn).collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

async fn with_password(pool: &PgPool, s: &Scenario, operator_id: &str) -> i64 {
    let seat = s.add_seat(operator_id, None, None).await;
    sqlx::query("UPDATE data_collectors SET password_hash = $2 WHERE id = $1")
        .bind(seat.collector_id)
        .bind(B2B)
        .execute(pool)
        .await
        .unwrap();
    seat.collector_id
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_guessing_loop_throttles_its_account_while_another_account_logs_in(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    with_password(&pool, &s, "VICTIM").await;
    with_password(&pool, &s, "COLLEAGUE").await;
    let router = router(pool.clone());

    // 60 wrong passwords, 20 at a time, from many addresses (a botnet).
    let mut answers = Vec::new();
    for round in 0..3 {
        let guesses = (0..20).map(|i| {
            let router = router.clone();
            async move {
                login_from(
                    &router,
                    &format!("198.51.100.{}", round * 20 + i),
                    "VICTIM",
                    "guess",
                )
                .await
            }
        });
        answers.extend(all(guesses).await);
    }
    let refused = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert!(
        (10..=29).contains(&refused),
        "{refused} guesses were checked: {answers:?}"
    );
    assert!(!throttled.is_empty());
    assert!(
        throttled
            .iter()
            .all(|(_, retry)| retry.is_some_and(|r| r >= 1)),
        "{throttled:?}"
    );

    // The right password does not get through while the account is blocked…
    let (status, retry_after) = login_from(&router, "203.0.113.9", "VICTIM", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some());
    // …while a colleague, from the same factory address as the guesses, logs in normally.
    let (status, _) = login_from(&router, "198.51.100.1", "COLLEAGUE", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    // An account that does not exist is throttled the same way: no way to tell them apart.
    for _ in 0..10 {
        login_from(&router, "203.0.113.10", "NOBODY", "guess").await;
    }
    assert_eq!(
        login_from(&router, "203.0.113.10", "NOBODY", "guess")
            .await
            .0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_success_resets_the_account_and_the_block_ends(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    with_password(&pool, &s, "TYPO").await;
    let router = router(pool.clone());
    for _ in 0..9 {
        assert_eq!(
            login_from(&router, "192.0.2.1", "TYPO", "typo").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&router, "192.0.2.1", "TYPO", PASSWORD).await.0,
        StatusCode::OK
    );
    for _ in 0..9 {
        assert_eq!(
            login_from(&router, "192.0.2.1", "TYPO", "typo").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // The 10th consecutive failure blocks for a second; after it, the account may try again.
    assert_eq!(
        login_from(&router, "192.0.2.1", "TYPO", "typo").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, retry_after) = login_from(&router, "192.0.2.1", "TYPO", PASSWORD).await;
    assert_eq!(
        (status, retry_after),
        (StatusCode::TOO_MANY_REQUESTS, Some(1))
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(
        login_from(&router, "192.0.2.1", "TYPO", PASSWORD).await.0,
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_address_is_throttled_only_after_a_hundred_failures(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    with_password(&pool, &s, "WORKER").await;
    let router = router(pool.clone());
    // 100 failures from one address over 100 different accounts (a spray): none is blocked by
    // its account, the address is.
    let spray = (0..100).map(|i| {
        let router = router.clone();
        async move {
            login_from(&router, "192.0.2.77", &format!("SPRAY{i}"), "guess")
                .await
                .0
        }
    });
    let answers = all(spray).await;
    assert!(
        answers.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{answers:?}"
    );
    assert_eq!(
        login_from(&router, "192.0.2.77", "WORKER", PASSWORD)
            .await
            .0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_from(&router, "192.0.2.78", "WORKER", PASSWORD)
            .await
            .0,
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_old_hash_is_upgraded_on_a_successful_login(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let id = with_password(&pool, &s, "LEGACY").await;
    let router = router(pool.clone());
    assert_eq!(
        login_from(&router, "192.0.2.5", "LEGACY", PASSWORD).await.0,
        StatusCode::OK
    );
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM data_collectors WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        hash.starts_with(keystone_auth::password::CURRENT_ARGON2ID_PREFIX),
        "{hash}"
    );
    assert_eq!(
        login_from(&router, "192.0.2.5", "LEGACY", PASSWORD).await.0,
        StatusCode::OK
    );
    assert_eq!(
        login_from(&router, "192.0.2.5", "LEGACY", "wrong").await.0,
        StatusCode::UNAUTHORIZED
    );
}
