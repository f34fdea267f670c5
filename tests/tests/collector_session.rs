//! The collector's session: logging out ends every token and takes the workstation offline, a
//! login brings it back, and a break shows on the workstation without stopping the work.

use axum::Router;
use axum::http::{Method, StatusCode};
use keystone_tests::*;
use serde_json::json;
use sqlx::PgPool;

/// A bcrypt hash of "collector-pass-1".
const PASSWORD_HASH: &str = "$2b$10$0mA5zXbrv1rDnT3ekdaQA.7NnP44bbRxCkwFZiPBggjFDYqTcVCHG";

async fn call(router: &Router, path: &str, token: &str) -> TestResponse {
    send(router, Method::POST, path, Some(token), &[], "").await
}

async fn log_in(router: &Router, operator_id: &str) -> String {
    let answer = send(
        router,
        Method::POST,
        "/api/v1/auth/login",
        None,
        &[],
        json!({"account": operator_id, "password": "collector-pass-1"}).to_string(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer.body["access_token"].as_str().unwrap().to_owned()
}

async fn operator_id(pool: &PgPool, collector_id: i64) -> String {
    sqlx::query_scalar(
        "UPDATE data_collectors SET password_hash = $2 WHERE id = $1 RETURNING operator_id",
    )
    .bind(collector_id)
    .bind(PASSWORD_HASH)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn logout_ends_every_token_and_a_login_brings_the_workstation_back(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 4, 0).await;
    let router = router(pool.clone());
    let operator = operator_id(&pool, s.seat.collector_id).await;
    let phone = log_in(&router, &operator).await;
    let tablet = log_in(&router, &operator).await;
    // A completion makes the batch active, so the derived status is `active`.
    let done = complete(&router, &phone, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(
        workstation_status(&pool, s.seat.workstation_id).await,
        "active"
    );

    let out = call(&router, "/api/v1/auth/logout", &phone).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text);
    assert_eq!(out.body, json!({"ok": true}));
    assert_eq!(
        workstation_status(&pool, s.seat.workstation_id).await,
        "offline"
    );
    // Every token issued so far is refused, on every collector call.
    for token in [&phone, &tablet, &s.seat.token] {
        get(&router, "/api/v1/me/batches", Some(token))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "session ended");
        complete(&router, token, s.batch_id, s.group_a.body(1), &[])
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "session ended");
        call(&router, "/api/v1/auth/logout", token)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "session ended");
    }

    // A login right after brings the workstation back to its derived status.
    let again = log_in(&router, &operator).await;
    assert_eq!(
        workstation_status(&pool, s.seat.workstation_id).await,
        "active"
    );
    let me = get(&router, "/api/v1/auth/me", Some(&again)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["workstation_status"], json!("active"));
    let done = complete(&router, &again, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    // A second logout from the new session works the same way.
    let out = call(&router, "/api/v1/auth/logout", &again).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text);
    get(&router, "/api/v1/auth/me", Some(&again))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session ended");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_break_shows_on_the_workstation_and_the_work_goes_on(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 4, 0).await;
    let router = router(pool.clone());
    let token = &s.seat.token;
    let workstation = s.seat.workstation_id.to_string();

    for _ in 0..2 {
        let on_break = call(&router, "/api/v1/me/station/break", token).await;
        assert_eq!(on_break.status, StatusCode::OK, "{}", on_break.text);
        assert_eq!(
            on_break.body,
            json!({"workstation_id": workstation, "status": "break"})
        );
    }
    // Completing still works on a break, and leaves the break alone.
    let done = complete(&router, token, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(
        workstation_status(&pool, s.seat.workstation_id).await,
        "break"
    );
    let me = get(&router, "/api/v1/auth/me", Some(token)).await;
    assert_eq!(me.body["workstation_status"], json!("break"));

    // Ending it derives the status from the batches: one is active now.
    for _ in 0..2 {
        let back = call(&router, "/api/v1/me/station/end-break", token).await;
        assert_eq!(back.status, StatusCode::OK, "{}", back.text);
        assert_eq!(
            back.body,
            json!({"workstation_id": workstation, "status": "active"})
        );
    }
    // With no active batch, ending a break answers inactive.
    set_batch_status(&pool, s.batch_id, "cancelled").await;
    call(&router, "/api/v1/me/station/break", token).await;
    let back = call(&router, "/api/v1/me/station/end-break", token).await;
    assert_eq!(back.body["status"], json!("inactive"), "{}", back.text);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_break_needs_a_seated_collector_at_work(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 1, 0).await;
    let router = router(pool.clone());
    sqlx::query("UPDATE workstations SET status = 'offline' WHERE id = $1")
        .bind(s.seat.workstation_id)
        .execute(&pool)
        .await
        .unwrap();
    for path in ["/api/v1/me/station/break", "/api/v1/me/station/end-break"] {
        let refused = call(&router, path, &s.seat.token).await;
        refused.assert_error(
            StatusCode::CONFLICT,
            "workstation is offline; log in to bring it back",
        );
        assert_eq!(refused.body["current_status"], json!("offline"));
        assert_eq!(refused.body["code"], json!("workstation_offline"));
        call(&router, path, &admin_token())
            .await
            .assert_error(StatusCode::FORBIDDEN, "data collector role required");
        send(&router, Method::POST, path, None, &[], "")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "authentication required");
    }
    assert_eq!(
        workstation_status(&pool, s.seat.workstation_id).await,
        "offline"
    );
    // A collector without a workstation has nothing to put on a break.
    let unseated: i64 = sqlx::query_scalar(
        "INSERT INTO data_collectors (name, operator_id) VALUES ('王五', 'DC900') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let refused = call(
        &router,
        "/api/v1/me/station/break",
        &collector_token(unseated),
    )
    .await;
    refused.assert_error(StatusCode::NOT_FOUND, "workstation not assigned");
    call(&router, "/api/v1/auth/logout", &admin_token())
        .await
        .assert_error(StatusCode::FORBIDDEN, "data collector role required");
}

fn group(page: &TestResponse, batch_id: i64, sop_id: i64) -> &serde_json::Value {
    page.body["batches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == json!(batch_id.to_string()))
        .and_then(|b| {
            b["task_groups"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["sop_id"] == json!(sop_id.to_string()))
        })
        .unwrap_or_else(|| panic!("no group {sop_id} of batch {batch_id}: {}", page.text))
}

fn time(value: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

/// The phone learns in one call what it may still undo and until when, and a reopen then
/// enforces exactly that window.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_phone_sees_what_it_may_undo_and_until_when(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 4, 0).await;
    s.add_tasks(s.batch_id, s.group_b, 2, "ready").await;
    s.add_tasks(s.batch_id, s.group_b, 1, "in_progress").await;
    let router = router(pool.clone());
    let token = &s.seat.token;
    let done = complete(&router, token, s.batch_id, s.group_a.body(3), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    // One of the three was completed 16 minutes ago (outside the window), one 14 minutes ago.
    sqlx::query(
        "WITH picked AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM tasks \
                         WHERE batch_id = $1 AND status = 'completed') \
         UPDATE tasks t SET completed_at = now() - CASE picked.n WHEN 1 THEN interval '16 minutes' \
                                                           ELSE interval '14 minutes' END \
         FROM picked WHERE t.id = picked.id AND picked.n <= 2",
    )
    .bind(s.batch_id)
    .execute(&pool)
    .await
    .unwrap();

    let page = get(&router, "/api/v1/me/batches", Some(token)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let server_time = time(&page.body["server_time"]);
    assert!((chrono::Utc::now() - server_time).num_seconds().abs() < 5);
    assert_eq!(
        page.body["batches"][0]["order_status"],
        json!("in_progress")
    );
    let a = group(&page, s.batch_id, s.group_a.sop_id);
    assert_eq!(a["reopenable_count"], json!(2), "{}", page.text);
    let until = time(&a["reopenable_until"]);
    let oldest: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT min(completed_at) FROM tasks WHERE batch_id = $1 AND status = 'completed' \
           AND completed_at >= now() - interval '15 minutes'",
    )
    .bind(s.batch_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(until, oldest + chrono::Duration::minutes(15));
    assert!(until > server_time && until - server_time < chrono::Duration::minutes(2));
    let b = group(&page, s.batch_id, s.group_b.sop_id);
    assert_eq!(
        (
            &b["ready_count"],
            &b["in_progress_count"],
            &b["reopenable_count"],
            &b["reopenable_until"]
        ),
        (&json!(2), &json!(1), &json!(0), &json!(null))
    );

    // A reopen enforces the same window: 3 asked, the 2 the phone showed qualify.
    let reopen = |quantity: i64| {
        let router = router.clone();
        let body = s.group_a.body(quantity);
        async move {
            send(
                &router,
                Method::POST,
                &format!("/api/v1/batches/{}/reopen-tasks", s.batch_id),
                Some(token),
                &[],
                body.to_string(),
            )
            .await
        }
    };
    let refused = reopen(3).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert_eq!(refused.body["reopenable_count"], a["reopenable_count"]);
    assert_eq!(reopen(2).await.status, StatusCode::OK);
    let after = get(&router, "/api/v1/me/batches", Some(token)).await;
    let a = group(&after, s.batch_id, s.group_a.sop_id);
    assert_eq!(
        (&a["reopenable_count"], &a["reopenable_until"]),
        (&json!(0), &json!(null))
    );

    // A paused order shows as paused on its batches.
    set_order_status(&pool, s.order_id, "paused").await;
    let paused = get(&router, "/api/v1/me/batches", Some(token)).await;
    assert_eq!(paused.body["batches"][0]["order_status"], json!("paused"));
}

/// The completion that completes a batch can still be undone after a reload: the batch stays on
/// the phone for the window, and leaves it once its order is completed.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_batch_just_completed_stays_on_the_phone_while_it_can_be_undone(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 2, 0).await;
    let router = router(pool.clone());
    let token = &s.seat.token;
    let done = complete(&router, token, s.batch_id, s.group_a.body(2), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(batch_status(&pool, s.batch_id).await, "completed");
    let page = get(&router, "/api/v1/me/batches", Some(token)).await;
    assert_eq!(
        page.body["batches"][0]["status"],
        json!("completed"),
        "{}",
        page.text
    );
    assert_eq!(
        group(&page, s.batch_id, s.group_a.sop_id)["reopenable_count"],
        json!(2)
    );
    // Past the window it is gone.
    sqlx::query("UPDATE batches SET ended_at = now() - interval '16 minutes' WHERE id = $1")
        .bind(s.batch_id)
        .execute(&pool)
        .await
        .unwrap();
    let later = get(&router, "/api/v1/me/batches", Some(token)).await;
    assert_eq!(later.body["batches"], json!([]), "{}", later.text);
    // Within it, but with the order completed (finalized: nothing can be undone), gone too.
    sqlx::query("UPDATE batches SET ended_at = now() WHERE id = $1")
        .bind(s.batch_id)
        .execute(&pool)
        .await
        .unwrap();
    set_order_status(&pool, s.order_id, "completed").await;
    let finished = get(&router, "/api/v1/me/batches", Some(token)).await;
    assert_eq!(finished.body["batches"], json!([]), "{}", finished.text);
}
