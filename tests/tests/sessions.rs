//! SPEC §4: a collector's token is only as good as the collector behind it. Every collector
//! request re-checks, on the read it already makes, that the collector is live, `active`, and
//! that the token was issued after the collector's last revocation.

use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keystone_auth::Principal;
use keystone_tests::*;
use serde_json::Value;
use sqlx::PgPool;

/// Every operation a collector token may call, from the API document (those whose 403 is not
/// "admin role required"), with a body that would otherwise be accepted.
fn collector_operations(s: &Scenario) -> Vec<(Method, String, Option<Value>)> {
    let document = serde_json::to_value(keystone_local::openapi()).unwrap();
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let forbidden = operation["responses"]["403"]["$ref"].as_str();
            let public = operation["security"]
                .as_array()
                .is_none_or(|requirements| requirements.is_empty());
            if public || forbidden == Some("#/components/responses/AdminRoleRequired") {
                continue;
            }
            let body = operation["requestBody"]["content"]["application/json"]["example"]
                .as_object()
                .map(|_| s.group_a.body(1));
            let path = path.replace("{id}", &s.batch_id.to_string());
            found.push((
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                path,
                body,
            ));
        }
    }
    // Logging out ends the session the later calls use: last.
    found.sort_by_key(|(_, path, _)| path == "/api/v1/auth/logout");
    found
}

async fn call(
    router: &axum::Router,
    token: &str,
    op: &(Method, String, Option<Value>),
) -> TestResponse {
    let (method, path, body) = op;
    let body = body.as_ref().map_or_else(String::new, Value::to_string);
    send(router, method.clone(), path, Some(token), &[], body).await
}

async fn refused_everywhere(router: &axum::Router, s: &Scenario, token: &str, message: &str) {
    let operations = collector_operations(s);
    // complete-tasks, reopen-tasks, get-batch, /auth/me, /me/batches.
    assert!(operations.len() >= 5, "{operations:?}");
    for op in &operations {
        let answer = call(router, token, op).await;
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some(message)),
            "{} {}: {}",
            op.0,
            op.1,
            answer.text
        );
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_collector_who_is_not_active_is_refused_at_once_on_every_collector_endpoint(
    pool: PgPool,
) {
    let s = Scenario::new(&pool, 10, 3, 0).await;
    let router = router(pool.clone());
    // The token works while the collector is active.
    assert_eq!(
        get(&router, "/api/v1/auth/me", Some(&s.seat.token))
            .await
            .status,
        StatusCode::OK
    );

    for status in ["inactive", "on_leave"] {
        sqlx::query("UPDATE data_collectors SET status = $2 WHERE id = $1")
            .bind(s.seat.collector_id)
            .bind(status)
            .execute(&pool)
            .await
            .unwrap();
        let before = snapshot(&pool).await;
        refused_everywhere(&router, &s, &s.seat.token, "session ended").await;
        assert_eq!(
            snapshot(&pool).await,
            before,
            "{status}: nothing may change"
        );
    }

    // Back to active, the same token works again: the check reads the status, it does not
    // remember anything.
    sqlx::query("UPDATE data_collectors SET status = 'active' WHERE id = $1")
        .bind(s.seat.collector_id)
        .execute(&pool)
        .await
        .unwrap();
    let answer = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_deleted_collector_is_not_found_even_on_its_old_workstations_batch(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 0).await;
    let router = router(pool.clone());
    sqlx::query("UPDATE data_collectors SET deleted_at = now() WHERE id = $1")
        .bind(s.seat.collector_id)
        .execute(&pool)
        .await
        .unwrap();
    refused_everywhere(&router, &s, &s.seat.token, "collector not found").await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn tokens_issued_before_a_revocation_end_and_a_login_after_it_works_at_once(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 0).await;
    sqlx::query("UPDATE data_collectors SET password_hash = $2 WHERE id = $1")
        .bind(s.seat.collector_id)
        .bind("$2b$10$0mA5zXbrv1rDnT3ekdaQA.7NnP44bbRxCkwFZiPBggjFDYqTcVCHG")
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());
    sqlx::query("UPDATE data_collectors SET tokens_revoked_at = now() WHERE id = $1")
        .bind(s.seat.collector_id)
        .execute(&pool)
        .await
        .unwrap();
    refused_everywhere(&router, &s, &s.seat.token, "session ended").await;

    // A login in the same second as the revocation still gets a token that works.
    let login = log_in(&router, "DC001", "collector-pass-1").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let fresh = login.body["access_token"].as_str().unwrap().to_owned();
    for op in collector_operations(&s) {
        let answer = call(&router, &fresh, &op).await;
        assert!(
            answer.status != StatusCode::UNAUTHORIZED && !answer.status.is_server_error(),
            "{} {}: {}",
            op.0,
            op.1,
            answer.text
        );
    }
}

/// The `iat` a token carries.
fn issued_at(token: &str) -> i64 {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["iat"].as_i64().unwrap()
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn complete_tasks_checks_the_session_in_its_lock_statement_to_the_second(pool: PgPool) {
    // complete-tasks reads the seat, checks the session and locks in one statement, which must
    // draw the revocation line where `CollectorSession::admit` draws it: a token outlives a
    // revocation when issued in a later second.
    let s = Scenario::new(&pool, 10, 5, 0).await;
    let router = router(pool.clone());
    let token = s.seat.token.clone();
    let second = issued_at(&token);
    let revoke = |at: f64| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "UPDATE data_collectors SET tokens_revoked_at = to_timestamp($2) WHERE id = $1",
            )
            .bind(s.seat.collector_id)
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    #[allow(clippy::cast_precision_loss)]
    let second_f = second as f64;

    revoke(second_f - 0.5).await;
    let answer = complete(&router, &token, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);

    revoke(second_f + 0.5).await;
    let answer = complete(&router, &token, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(
        (answer.status, answer.body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("session ended")),
        "{}",
        answer.text
    );
    let later = token_for(Principal::Collector {
        collector_id: s.seat.collector_id,
        operator_id: "DC001".to_owned(),
        issued_at: Some(second + 1),
    });
    assert!(issued_at(&later) > second);
    let answer = complete(&router, &later, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}
