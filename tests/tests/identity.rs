//! SPEC §4, §5.5–5.7 and §8: login, who-am-I, the collector's batches with handoff payloads,
//! and the JWT rules.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keystone_auth::{Claims, JwtKeys, Principal};
use keystone_tests::*;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;

const LOGIN: &str = "/api/v1/auth/login";
const ME: &str = "/api/v1/auth/me";
const MY_BATCHES: &str = "/api/v1/me/batches";

/// Hashes made by Python's `bcrypt` and `argon2-cffi` of "collector-pass-1".
const B2B: &str = "$2b$10$0mA5zXbrv1rDnT3ekdaQA.7NnP44bbRxCkwFZiPBggjFDYqTcVCHG";
const B2A: &str = "$2a$10$2zZZC85u/DF8m8Ab9uAZiOt0fkxeEDtsdHeFhrdg8ZUgxoybO1dZ2";
const ARGON2ID: &str = "$argon2id$v=19$m=65536,t=3,p=4$3m5ec7uX84YH0XANSuBUOw$GkFHGsxUbWDbNysDxeYkyO23/ktQcpkd0hLzGqNorIg";

async fn set_password_hash(pool: &PgPool, collector_id: i64, hash: Option<&str>) {
    sqlx::query("UPDATE data_collectors SET password_hash = $2 WHERE id = $1")
        .bind(collector_id)
        .bind(hash)
        .execute(pool)
        .await
        .unwrap();
}

async fn login(router: &axum::Router, body: Value) -> TestResponse {
    send(
        router,
        axum::http::Method::POST,
        LOGIN,
        None,
        &[],
        body.to_string(),
    )
    .await
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_collector_logs_in_and_the_token_works_on_auth_me(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    set_password_hash(&pool, s.seat.collector_id, Some(B2B)).await;
    let router = router(pool.clone());

    let response = login(
        &router,
        json!({"account": "DC001", "password": "collector-pass-1"}),
    )
    .await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["token_type"], "Bearer");
    assert_eq!(response.body["expires_in"], 3_600);
    assert_eq!(response.body["role"], "data_collector");
    assert_eq!(
        response.body["collector"],
        json!({"id": s.seat.collector_id.to_string(), "operator_id": "DC001", "name": "张三"})
    );
    let token = response.body["access_token"].as_str().unwrap();
    let me = get(&router, ME, Some(token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(
        me.body["collector_id"],
        json!(s.seat.collector_id.to_string())
    );
    // The legacy field name works too.
    let legacy = login(
        &router,
        json!({"operator_id": "DC001", "password": "collector-pass-1"}),
    )
    .await;
    assert_eq!(legacy.status, StatusCode::OK, "{}", legacy.text);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn hashes_as_keystone_and_other_implementations_store_them_verify(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let b2y = B2B.replacen("$2b$", "$2y$", 1);
    for hash in [B2A, B2B, b2y.as_str(), ARGON2ID] {
        set_password_hash(&pool, s.seat.collector_id, Some(hash)).await;
        let response = login(
            &router,
            json!({"account": "DC001", "password": "collector-pass-1"}),
        )
        .await;
        assert_eq!(response.status, StatusCode::OK, "{hash}: {}", response.text);
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn every_mismatch_gets_the_same_401(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    set_password_hash(&pool, s.seat.collector_id, Some(B2B)).await;
    let without_password = s.add_seat("DC050", None, None).await;
    let disabled = s.add_seat("DC051", None, None).await;
    set_password_hash(&pool, disabled.collector_id, Some(B2B)).await;
    sqlx::query("UPDATE data_collectors SET status = 'inactive' WHERE id = $1")
        .bind(disabled.collector_id)
        .execute(&pool)
        .await
        .unwrap();
    let deleted = s.add_seat("DC052", None, None).await;
    set_password_hash(&pool, deleted.collector_id, Some(B2B)).await;
    sqlx::query("UPDATE data_collectors SET deleted_at = now() WHERE id = $1")
        .bind(deleted.collector_id)
        .execute(&pool)
        .await
        .unwrap();
    let _ = without_password;
    let router = router(pool.clone());

    let mut bodies = Vec::new();
    for (account, password) in [
        ("DC001", "wrong"),
        ("nobody", "collector-pass-1"),
        ("DC050", "collector-pass-1"),
        ("DC051", "collector-pass-1"),
        ("DC052", "collector-pass-1"),
        (ADMIN_USERNAME, "wrong"),
        ("dc001", "collector-pass-1"),
    ] {
        let response = login(&router, json!({"account": account, "password": password})).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{account}");
        bodies.push(response.text);
    }
    assert!(
        bodies
            .iter()
            .all(|b| *b == r#"{"code":"invalid_credentials","error":"invalid credentials"}"#),
        "{bodies:?}"
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn missing_fields_get_400(pool: PgPool) {
    let router = router(pool.clone());
    for body in [
        json!({"password": "x"}),
        json!({"account": "DC001"}),
        json!({}),
        json!({"account": "", "password": ""}),
    ] {
        let response = login(&router, body.clone()).await;
        response.assert_error(StatusCode::BAD_REQUEST, "account and password are required");
    }
    let response = login(&router, json!({"account": 7, "password": "x"})).await;
    response.assert_error(StatusCode::BAD_REQUEST, "invalid request body");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_admin_logs_in_with_configured_credentials(pool: PgPool) {
    let router = router(pool.clone());
    let response = login(
        &router,
        json!({"account": ADMIN_USERNAME, "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.body["role"], "admin");
    assert_eq!(response.body["collector"], Value::Null);
    let me = get(&router, ME, response.body["access_token"].as_str()).await;
    assert_eq!(
        me.body,
        json!({"collector_id": null, "operator_id": "admin", "name": "Administrator", "role": "admin",
               "workstation_id": null, "workstation_status": null, "robot_id": null, "robot_type": null,
               "requires_axon": null, "workflow": null})
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn auth_me_reads_the_robot_type_fresh_on_every_call(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let robot_type_id: i64 = sqlx::query_scalar("SELECT robot_type_id FROM robots WHERE id = $1")
        .bind(s.seat.robot_id)
        .fetch_one(&pool)
        .await
        .unwrap();

    let me = get(&router, ME, Some(&s.seat.token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(
        me.body,
        json!({
            "collector_id": s.seat.collector_id.to_string(), "operator_id": "DC001", "name": "张三",
            "role": "data_collector", "workstation_id": s.seat.workstation_id.to_string(),
            "workstation_status": "inactive",
            "robot_id": s.seat.robot_id.to_string(),
            "robot_type": {"id": robot_type_id.to_string(), "name": "SynGloves", "model": "SG-1",
                           "capabilities": {"requires_axon": false}},
            "requires_axon": false, "workflow": "external_device",
        })
    );
    for (capabilities, requires_axon, workflow) in [
        (None, true, "axon"),
        (Some(json!({"arm_count": 2})), true, "axon"),
        (Some(json!({"requires_axon": true})), true, "axon"),
        (
            Some(json!({"requires_axon": false})),
            false,
            "external_device",
        ),
    ] {
        sqlx::query("UPDATE robot_types SET capabilities = $2 WHERE id = $1")
            .bind(robot_type_id)
            .bind(&capabilities)
            .execute(&pool)
            .await
            .unwrap();
        let me = get(&router, ME, Some(&s.seat.token)).await;
        assert_eq!(me.body["requires_axon"], requires_axon, "{capabilities:?}");
        assert_eq!(me.body["workflow"], workflow, "{capabilities:?}");
        assert_eq!(
            me.body["robot_type"]["capabilities"],
            capabilities.clone().unwrap_or(Value::Null)
        );
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn auth_me_for_a_collector_without_a_workstation_and_for_a_deleted_one(pool: PgPool) {
    let router = router(pool.clone());
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO data_collectors (name, operator_id) VALUES ('Li', 'DC077') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let me = get(&router, ME, Some(&collector_token(id))).await;
    assert_eq!(
        me.body,
        json!({"collector_id": id.to_string(), "operator_id": "DC077", "name": "Li", "role": "data_collector",
               "workstation_id": null, "workstation_status": null, "robot_id": null, "robot_type": null,
               "requires_axon": true, "workflow": "axon"})
    );
    sqlx::query("UPDATE data_collectors SET deleted_at = now() WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    get(&router, ME, Some(&collector_token(id)))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "collector not found");
    get(&router, MY_BATCHES, Some(&collector_token(id)))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "collector not found");
    let viewer = token_for(Principal::Unrecognized {
        role: "viewer".to_owned(),
    });
    get(&router, ME, Some(&viewer))
        .await
        .assert_error(StatusCode::FORBIDDEN, "unsupported role");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn my_batches_lists_the_open_batches_of_my_workstation_with_handoff_payloads(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 3, 2).await;
    s.add_tasks(s.batch_id, s.group_a, 1, "completed").await;
    s.add_tasks(s.batch_id, s.group_b, 1, "failed").await;
    let newer = s.add_batch(s.order_id, s.seat.workstation_id).await;
    s.add_tasks(newer, s.group_b, 1, "pending").await;
    sqlx::query("UPDATE batches SET status = 'active', created_at = now() + interval '1 minute' WHERE id = $1").bind(newer).execute(&pool).await.unwrap();
    let finished = s.add_batch(s.order_id, s.seat.workstation_id).await;
    sqlx::query("UPDATE batches SET status = 'completed' WHERE id = $1")
        .bind(finished)
        .execute(&pool)
        .await
        .unwrap();
    let someone_else = s
        .add_seat(
            "DC099",
            Some(json!({"requires_axon": false})),
            Some("other"),
        )
        .await;
    s.add_batch(s.order_id, someone_else.workstation_id).await;
    let router = router(pool.clone());

    let response = get(&router, MY_BATCHES, Some(&s.seat.token)).await;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let body = &response.body;
    assert_eq!(
        body["collector"],
        json!({"id": s.seat.collector_id.to_string(), "operator_id": "DC001", "name": "张三"})
    );
    assert_eq!(
        body["workstation"]["id"],
        json!(s.seat.workstation_id.to_string())
    );
    assert_eq!(body["workstation"]["requires_axon"], false);
    assert_eq!(body["workstation"]["workflow"], "external_device");
    assert_eq!(body["workstation"]["device_id"], "robot_dc86");
    let ids: Vec<&str> = body["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [newer.to_string(), s.batch_id.to_string()],
        "open batches of my workstation, newest first"
    );
    let batch = &body["batches"][1];
    assert_eq!(
        (
            batch["task_count"].clone(),
            batch["completed_count"].clone(),
            batch["pending_count"].clone(),
            batch["failed_count"].clone(),
            batch["cancelled_count"].clone()
        ),
        (json!(7), json!(1), json!(5), json!(1), json!(0))
    );
    let group_a = &batch["task_groups"][0];
    assert_eq!(group_a["sop_id"], json!(s.group_a.sop_id.to_string()));
    assert_eq!(
        (group_a["sop_slug"].clone(), group_a["sop_version"].clone()),
        (json!("move_bottle"), json!("v1"))
    );
    assert_eq!(
        (
            group_a["task_count"].clone(),
            group_a["pending_count"].clone(),
            group_a["completed_count"].clone()
        ),
        (json!(4), json!(3), json!(1))
    );
    // SPEC §8's example, byte for byte.
    assert_eq!(
        group_a["handoff_payload"],
        r#"{"sop_slug":"move_bottle","sop_version":"v1","scene_name":"厨房","subscene_name":"台面","collector_name":"张三","collector_operator_id":"DC001","device_id":"robot_dc86","device_type":"SynGloves"}"#
    );
    assert!(
        response.text.contains("厨房"),
        "non-ASCII stays UTF-8 in the response too"
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn missing_handoff_values_are_empty_strings(pool: PgPool) {
    let s = Scenario::new(&pool, 100, 1, 0).await;
    sqlx::query("UPDATE robots SET device_id = NULL WHERE id = $1")
        .bind(s.seat.robot_id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE sops SET deleted_at = now() WHERE id = $1")
        .bind(s.group_a.sop_id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE tasks SET scene_name = '' WHERE batch_id = $1")
        .bind(s.batch_id)
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());
    let response = get(&router, MY_BATCHES, Some(&s.seat.token)).await;
    assert_eq!(
        response.body["batches"][0]["task_groups"][0]["handoff_payload"],
        r#"{"sop_slug":"","sop_version":"","scene_name":"","subscene_name":"台面","collector_name":"张三","collector_operator_id":"DC001","device_id":"","device_type":"SynGloves"}"#
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn my_batches_statement_count_does_not_grow_with_batches_or_groups(pool: PgPool) {
    let small = Scenario::new(&pool, 10_000, 1, 0).await;
    let large = Scenario::new(&pool, 10_000, 5, 5).await;
    for _ in 0..20 {
        let batch = large
            .add_batch(large.order_id, large.seat.workstation_id)
            .await;
        large.add_tasks(batch, large.group_a, 3, "pending").await;
        large.add_tasks(batch, large.group_b, 2, "completed").await;
    }
    let router = router(pool.clone());
    let (one, r1) =
        statements_run_by(&pool, get(&router, MY_BATCHES, Some(&small.seat.token))).await;
    let (many, r21) =
        statements_run_by(&pool, get(&router, MY_BATCHES, Some(&large.seat.token))).await;
    assert_eq!(r1.body["batches"].as_array().map(Vec::len), Some(1));
    assert_eq!(r21.body["batches"].as_array().map(Vec::len), Some(21));
    assert!(one > 2, "the counter sees the request's statements ({one})");
    assert_eq!(
        one, many,
        "1 batch ran {one} statements, 21 batches ran {many}"
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn only_collectors_have_batches(pool: PgPool) {
    let router = router(pool.clone());
    get(&router, MY_BATCHES, Some(&admin_token()))
        .await
        .assert_error(StatusCode::FORBIDDEN, "data collector role required");
    get(&router, MY_BATCHES, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "authentication required");
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(claims: &Value, algorithm: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn collector_claims(collector_id: i64) -> Value {
    json!({"collector_id": collector_id, "operator_id": "DC001", "role": "data_collector",
           "exp": now() + 3_600, "iat": now(), "nbf": now()})
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn tokens_that_must_not_pass_get_401(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let id = s.seat.collector_id;
    let good = sign(&collector_claims(id), Algorithm::HS256, JWT_SECRET);
    assert_eq!(
        get(&router, ME, Some(&good)).await.status,
        StatusCode::OK,
        "the control token passes"
    );

    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(collector_claims(id).to_string())
    );
    let mut altered_parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut claims = collector_claims(id);
    claims["role"] = json!("admin");
    altered_parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let altered = altered_parts.join(".");
    let mut no_exp = collector_claims(id);
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut expired = collector_claims(id);
    expired["exp"] = json!(now() - 3_600);
    let mut not_yet = collector_claims(id);
    not_yet["nbf"] = json!(now() + 3_600);
    let mut no_collector = collector_claims(id);
    no_collector["collector_id"] = json!(0);

    let tokens = [
        ("alg none", none),
        (
            "wrong secret",
            sign(
                &collector_claims(id),
                Algorithm::HS256,
                "another-secret-0123456789",
            ),
        ),
        (
            "HS512 with the right secret",
            sign(&collector_claims(id), Algorithm::HS512, JWT_SECRET),
        ),
        ("claims altered after signing", altered),
        ("no exp", sign(&no_exp, Algorithm::HS256, JWT_SECRET)),
        ("expired", sign(&expired, Algorithm::HS256, JWT_SECRET)),
        (
            "nbf in the future",
            sign(&not_yet, Algorithm::HS256, JWT_SECRET),
        ),
        (
            "collector token without a collector",
            sign(&no_collector, Algorithm::HS256, JWT_SECRET),
        ),
        ("garbage", "not-a-jwt".to_owned()),
    ];
    for (case, token) in tokens {
        let response = get(&router, ME, Some(&token)).await;
        assert_eq!(
            response.status,
            StatusCode::UNAUTHORIZED,
            "{case}: {}",
            response.text
        );
        assert_eq!(
            response.body,
            json!({"error": "invalid or expired token", "code": "invalid_token"}),
            "{case}"
        );
    }
    for header in ["Basic abc", "Bearer", "Token x.y.z", "Bearer a b"] {
        let response = send(
            &router,
            axum::http::Method::GET,
            ME,
            None,
            &[("authorization", header)],
            "",
        )
        .await;
        response.assert_error(
            StatusCode::UNAUTHORIZED,
            "invalid authorization header format",
        );
    }
    get(&router, ME, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "authentication required");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_issuer_is_checked_when_configured(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let keys = JwtKeys::new(&SecretString::from(JWT_SECRET), Some("keystone".to_owned()));
    let router =
        keystone_local::routes().with_state(keystone_http::AppState::new(app_db(&pool), keys));
    let id = s.seat.collector_id;
    let mut right = collector_claims(id);
    right["iss"] = json!("keystone");
    let mut wrong = collector_claims(id);
    wrong["iss"] = json!("someone-else");
    assert_eq!(
        get(
            &router,
            ME,
            Some(&sign(&right, Algorithm::HS256, JWT_SECRET))
        )
        .await
        .status,
        StatusCode::OK
    );
    for claims in [wrong, collector_claims(id)] {
        let response = get(
            &router,
            ME,
            Some(&sign(&claims, Algorithm::HS256, JWT_SECRET)),
        )
        .await;
        response.assert_error(StatusCode::UNAUTHORIZED, "invalid or expired token");
    }
    // Tokens it issues carry the issuer.
    let token = JwtKeys::new(&SecretString::from(JWT_SECRET), Some("keystone".to_owned()))
        .issue(
            &Principal::Collector {
                collector_id: id,
                operator_id: "DC001".into(),
                issued_at: None,
            },
            chrono::Duration::minutes(5),
        )
        .unwrap();
    let payload: Claims = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload.iss.as_deref(), Some("keystone"));
}

/// SPEC §5.6 "similar timing": every refused login reads the database the same way, the
/// admin's included (hashing work is equal by construction and counted in keystone_auth's
/// tests).
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn every_login_outcome_runs_the_same_statements(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    set_password_hash(&pool, s.seat.collector_id, Some(B2B)).await;
    let blocked = s.add_seat("DC777", None, None).await;
    set_password_hash(&pool, blocked.collector_id, Some(B2B)).await;
    sqlx::query("UPDATE data_collectors SET status = 'inactive' WHERE id = $1")
        .bind(blocked.collector_id)
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());
    // A first success upgrades the bcrypt hash (an UPDATE only after a match, so it tells an
    // attacker nothing); the comparison starts after it.
    let upgrade = login(
        &router,
        json!({"account": "DC001", "password": "collector-pass-1"}),
    )
    .await;
    assert_eq!(upgrade.status.as_u16(), 200);
    let attempts = [
        (
            json!({"account": "DC001", "password": "collector-pass-1"}),
            200,
        ),
        (json!({"account": "DC001", "password": "wrong"}), 401),
        (
            json!({"account": "DC777", "password": "collector-pass-1"}),
            401,
        ),
        (
            json!({"account": "nobody", "password": "collector-pass-1"}),
            401,
        ),
        (
            json!({"account": ADMIN_USERNAME, "password": ADMIN_PASSWORD}),
            200,
        ),
        (json!({"account": ADMIN_USERNAME, "password": "x"}), 401),
    ];
    let mut counts = Vec::new();
    for (body, status) in attempts {
        let (statements, response) = statements_run_by(&pool, login(&router, body.clone())).await;
        assert_eq!(
            response.status.as_u16(),
            status,
            "{body}: {}",
            response.text
        );
        counts.push((status, statements));
    }
    // Every refusal reads and writes alike, whether the account exists, may log in, or is the
    // admin's; a success may do its own work on top (a collector's workstation is brought back
    // from offline), which tells nothing the 200 does not.
    let refused: Vec<i64> = counts
        .iter()
        .filter(|(status, _)| *status == 401)
        .map(|(_, n)| *n)
        .collect();
    assert!(refused.iter().all(|c| *c == refused[0]), "{counts:?}");
    let admin_success = counts[4].1;
    assert!(
        counts[0].1 >= admin_success && admin_success == refused[0],
        "{counts:?}"
    );
}
