//! The admin's data collectors: created with a password of their own (no default), listed,
//! changed — a status other than active or a new password ends their tokens at once — and
//! deleted only without a workstation.

use axum::http::{Method, StatusCode};
use keystone_tests::admin_call as admin;
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

const COLLECTORS: &str = "/api/v1/data-collectors";

fn new_collector(organization_id: i64, operator_id: &str) -> Value {
    json!({"organization_id": organization_id.to_string(), "name": " 王五 ",
           "operator_id": operator_id, "password": "a-long-secret",
           "email": "wang@example.com", "metadata": {"shift": "night"}})
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_collector_is_created_with_their_own_password_and_logs_in(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let created = admin(
        &router,
        Method::POST,
        COLLECTORS,
        new_collector(s.organization_id, "DC300"),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.body,
        json!({"id": id, "organization_id": s.organization_id.to_string(), "name": "王五",
               "operator_id": "DC300", "email": "wang@example.com", "status": "active",
               "metadata": {"shift": "night"}, "created_at": created.body["created_at"],
               "updated_at": created.body["updated_at"]})
    );
    let stored: String =
        sqlx::query_scalar("SELECT password_hash FROM data_collectors WHERE operator_id = 'DC300'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    let login = log_in(&router, "DC300", "a-long-secret").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let read = admin(
        &router,
        Method::GET,
        &format!("{COLLECTORS}/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(read.body, created.body);

    // The operator id is unique among live collectors.
    let again = admin(
        &router,
        Method::POST,
        COLLECTORS,
        new_collector(s.organization_id, "DC300"),
    )
    .await;
    again.assert_error(StatusCode::CONFLICT, "operator id already exists");
    assert_eq!(again.body["code"], json!("operator_id_taken"));
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn creating_refuses_what_a_collector_cannot_be(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let before = snapshot(&pool).await;
    let org = s.organization_id.to_string();
    for (body, message) in [
        (
            json!({"organization_id": org, "name": "x", "operator_id": "DC301"}),
            "password must be at least 8 characters",
        ),
        (
            json!({"organization_id": org, "name": "x", "operator_id": "DC301", "password": "short"}),
            "password must be at least 8 characters",
        ),
        (
            json!({"name": "x", "operator_id": "DC301", "password": "a-long-secret"}),
            "organization_id is required",
        ),
        (
            json!({"organization_id": org, "name": "  ", "operator_id": "DC301", "password": "a-long-secret"}),
            "name is required",
        ),
        (
            json!({"organization_id": org, "name": "x", "password": "a-long-secret"}),
            "operator_id is required",
        ),
        (
            json!({"organization_id": org, "name": "x", "operator_id": "DC301",
                   "password": "a-long-secret", "email": "not-an-address"}),
            "invalid email",
        ),
        (
            json!({"organization_id": "999999", "name": "x", "operator_id": "DC301",
                   "password": "a-long-secret"}),
            "unknown organization",
        ),
    ] {
        admin(&router, Method::POST, COLLECTORS, body)
            .await
            .assert_error(StatusCode::BAD_REQUEST, message);
    }
    let long = "x".repeat(201);
    admin(
        &router,
        Method::POST,
        COLLECTORS,
        json!({"organization_id": org, "name": long, "operator_id": "DC301", "password": "a-long-secret"}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "name must be at most 200 characters");
    let one = format!("{COLLECTORS}/{}", s.seat.collector_id);
    assert_admin_only(
        &router,
        &s.seat.token,
        &[
            (Method::POST, COLLECTORS.to_owned()),
            (Method::GET, COLLECTORS.to_owned()),
            (Method::GET, one.clone()),
            (Method::PATCH, one.clone()),
            (Method::DELETE, one),
        ],
    )
    .await;
    assert_eq!(
        snapshot(&pool).await,
        before,
        "nothing refused changed anything"
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_list_filters_by_status_organization_and_keyword(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let other = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    for (scenario, operator, status) in [
        (&s, "DC310", "active"),
        (&s, "DC311", "on_leave"),
        (&other, "DC312", "inactive"),
    ] {
        let mut body = new_collector(scenario.organization_id, operator);
        body["status"] = json!(status);
        let made = admin(&router, Method::POST, COLLECTORS, body).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    }
    let operators = |page: &TestResponse| -> Vec<String> {
        page.body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", page.text))
            .iter()
            .map(|c| c["operator_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |query: String| {
        let router = router.clone();
        async move {
            admin(
                &router,
                Method::GET,
                &format!("{COLLECTORS}{query}"),
                Value::Null,
            )
            .await
        }
    };
    let all = list(String::new()).await;
    assert_eq!(all.body["total"], json!(5), "{}", all.text);
    assert_eq!(operators(&all)[..3], ["DC312", "DC311", "DC310"]);
    assert_eq!(
        operators(&list("?status=on_leave,inactive".to_owned()).await),
        ["DC312", "DC311"]
    );
    assert_eq!(
        operators(
            &list(format!(
                "?organization_id={}&keyword=dc31",
                s.organization_id
            ))
            .await
        ),
        ["DC311", "DC310"]
    );
    assert_eq!(
        operators(&list("?keyword=%E7%8E%8B".to_owned()).await).len(),
        3
    );
    let bad = list("?status=retired".to_owned()).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert_eq!(bad.body["parameter"], json!("status"));
    assert!(!all.text.contains("password"), "{}", all.text);
}

/// A status other than active, or a new password, ends the collector's tokens at once.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn changes_that_end_a_session_end_it_at_once(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 3, 0).await;
    let router = router(pool.clone());
    let made = admin(
        &router,
        Method::POST,
        COLLECTORS,
        new_collector(s.organization_id, "DC320"),
    )
    .await;
    let path = format!("{COLLECTORS}/{}", made.body["id"].as_str().unwrap());
    let token = log_in(&router, "DC320", "a-long-secret").await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = |token: String| {
        let router = router.clone();
        async move { get(&router, "/api/v1/auth/me", Some(&token)).await }
    };
    assert_eq!(me(token.clone()).await.status, StatusCode::OK);

    // Describing fields change nothing about the session; null clears the email.
    let renamed = admin(
        &router,
        Method::PATCH,
        &path,
        json!({"name": "王五五", "email": null, "metadata": {"team": "b"}}),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    assert_eq!(
        (
            &renamed.body["name"],
            &renamed.body["email"],
            &renamed.body["metadata"]
        ),
        (&json!("王五五"), &Value::Null, &json!({"team": "b"}))
    );
    assert_eq!(me(token.clone()).await.status, StatusCode::OK);

    // A new password: the old token and the old password stop working, the new one logs in.
    let reset = admin(
        &router,
        Method::PATCH,
        &path,
        json!({"password": "another-secret"}),
    )
    .await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.text);
    me(token.clone())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session ended");
    log_in(&router, "DC320", "a-long-secret")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid credentials");
    let fresh = log_in(&router, "DC320", "another-secret").await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text);
    let fresh = fresh.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(fresh.clone()).await.status, StatusCode::OK);

    // On leave: refused at once, and no login until active again.
    let away = admin(&router, Method::PATCH, &path, json!({"status": "on_leave"})).await;
    assert_eq!(away.body["status"], json!("on_leave"), "{}", away.text);
    me(fresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "session ended");
    log_in(&router, "DC320", "another-secret")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid credentials");
    admin(&router, Method::PATCH, &path, json!({"status": "active"})).await;
    assert_eq!(
        log_in(&router, "DC320", "another-secret").await.status,
        StatusCode::OK
    );

    // What an edit may not do.
    admin(
        &router,
        Method::PATCH,
        &path,
        json!({"operator_id": "DC999"}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "operator_id cannot be changed");
    admin(&router, Method::PATCH, &path, json!({}))
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            "the body changes nothing: send name, email, status, metadata or password",
        );
    admin(&router, Method::PATCH, &path, json!({"password": "short"}))
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            "password must be at least 8 characters",
        );
    admin(
        &router,
        Method::PATCH,
        &format!("{COLLECTORS}/999999"),
        json!({"name": "x"}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "data collector not found");
    admin(
        &router,
        Method::GET,
        &format!("{COLLECTORS}/abc"),
        Value::Null,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid data collector id");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn only_a_collector_without_a_workstation_is_deleted(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let seated = format!("{COLLECTORS}/{}", s.seat.collector_id);
    let before = snapshot(&pool).await;
    let refused = admin(&router, Method::DELETE, &seated, Value::Null).await;
    refused.assert_error(
        StatusCode::CONFLICT,
        "data collector has a workstation; unbind it first",
    );
    assert_eq!(
        refused.body["workstation_id"],
        json!(s.seat.workstation_id.to_string())
    );
    assert_eq!(snapshot(&pool).await, before);

    let made = admin(
        &router,
        Method::POST,
        COLLECTORS,
        new_collector(s.organization_id, "DC330"),
    )
    .await;
    let path = format!("{COLLECTORS}/{}", made.body["id"].as_str().unwrap());
    let token = log_in(&router, "DC330", "a-long-secret").await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let gone = admin(&router, Method::DELETE, &path, Value::Null).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    get(&router, "/api/v1/auth/me", Some(&token))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "collector not found");
    admin(&router, Method::DELETE, &path, Value::Null)
        .await
        .assert_error(StatusCode::NOT_FOUND, "data collector not found");
    admin(&router, Method::GET, &path, Value::Null)
        .await
        .assert_error(StatusCode::NOT_FOUND, "data collector not found");
    // The operator id is free again.
    let again = admin(
        &router,
        Method::POST,
        COLLECTORS,
        new_collector(s.organization_id, "DC330"),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
}

/// Every collector filter uses an index on 100 000 collectors: no statement of a filtered list
/// reads the whole table (each call is planned for its own values).
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn every_collector_filter_uses_an_index(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO organizations (name, slug) \
             SELECT 'Org ' || g, 'org-' || g FROM generate_series(1, 19) g; \
         INSERT INTO data_collectors (organization_id, name, operator_id, status) \
             SELECT {org} + g % 20, 'collector ' || encode(sha256(('n' || g)::bytea), 'base64'), \
                    'OP' || encode(sha256(g::text::bytea), 'base64'), \
                    CASE WHEN g % 10000 = 0 THEN 'on_leave' ELSE 'active' END \
             FROM generate_series(1, 100000) g; \
         ANALYZE data_collectors;",
        org = s.organization_id
    )))
    .execute(&pool)
    .await
    .unwrap();
    // Names as varied as real ones: a fragment of one collector's name matches that one.
    let fragment: String =
        sqlx::query_scalar("SELECT lower(substr(encode(sha256('n4321'::bytea), 'base64'), 5, 10))")
            .fetch_one(&pool)
            .await
            .unwrap();
    let filters = "text[], bigint, text";
    let statements: Vec<(&str, String, &str)> = keystone_store::collectors::PLANNED_STATEMENTS
        .iter()
        .map(|(name, sql)| {
            let types = match *name {
                "list_collectors" => format!("({filters}, bigint, bigint)"),
                _ => format!("({filters})"),
            };
            (*name, types, *sql)
        })
        .collect();
    let mut executions = Vec::new();
    for filter in [
        "ARRAY['on_leave'], NULL, NULL".to_owned(),
        format!("'{{}}', {}, NULL", s.organization_id + 3),
        format!("'{{}}', NULL, '%{fragment}%'"),
    ] {
        executions.push(format!("EXECUTE list_collectors ({filter}, 50, 0)"));
        executions.push(format!("EXECUTE count_collectors ({filter})"));
    }
    executions.push("EXECUTE list_collectors ('{}', NULL, NULL, 50, 0)".to_owned());
    for (execution, plan) in plans_of(&pool, &statements, &executions).await {
        assert!(
            !seq_scans(&plan, "data_collectors"),
            "{execution} scans every collector: {plan:#}"
        );
    }
}
