//! SPEC §5.15: the admin console's batch list and a batch's tasks.

use axum::http::{Method, StatusCode};
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

fn items(page: &TestResponse) -> &Vec<Value> {
    page.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", page.text))
}

fn ids(page: &TestResponse) -> Vec<String> {
    items(page)
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect()
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_batch_list_filters_by_every_parameter(pool: PgPool) {
    // The scenario's batch (pending, external device robot_dc86, collector DC001) and an
    // active Axon batch of the same order.
    let s = Scenario::new(&pool, 20, 2, 1).await;
    let (axon, axon_batch) = s.add_axon_batch("AX-1", "axon-1", &[("ready", 2)]).await;
    set_batch_status(&pool, axon_batch, "active").await;
    let router = router(pool.clone());
    let list = |query: &str| {
        let router = router.clone();
        let query = query.to_owned();
        async move {
            get(
                &router,
                &format!("/api/v1/batches{query}"),
                Some(&admin_token()),
            )
            .await
        }
    };

    let all = list("").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(ids(&all), [axon_batch.to_string(), s.batch_id.to_string()]);
    let first = &items(&all)[1];
    for (field, value) in [
        ("order_id", json!(s.order_id.to_string())),
        ("order_name", json!("Kitchen run")),
        ("workstation_id", json!(s.seat.workstation_id.to_string())),
        ("device_id", json!("robot_dc86")),
        ("collector_operator_id", json!("DC001")),
        ("status", json!("pending")),
        ("task_count", json!(3)),
        ("pending_count", json!(3)),
        ("completed_count", json!(0)),
    ] {
        assert_eq!(first[field], value, "{field}: {}", all.text);
    }
    let public_id = first["batch_id"].as_str().unwrap().to_owned();
    assert!(public_id.starts_with("batch_"));

    let only = |query: String| async move { ids(&list(&query).await) };
    let scenario = vec![s.batch_id.to_string()];
    let axon_only = vec![axon_batch.to_string()];
    assert_eq!(only(format!("?batch_id={public_id}")).await, scenario);
    assert_eq!(only("?status=active".to_owned()).await, axon_only);
    assert_eq!(only("?status=pending,completed".to_owned()).await, scenario);
    assert_eq!(only("?device_id=axon-1".to_owned()).await, axon_only);
    assert_eq!(
        only("?collector_operator_id=DC001".to_owned()).await,
        scenario
    );
    assert_eq!(
        only(format!("?workstation_id={}", axon.workstation_id)).await,
        axon_only
    );
    assert_eq!(only(format!("?order_id={}", s.order_id)).await.len(), 2);
    assert_eq!(
        only(format!("?organization_id={}", s.organization_id))
            .await
            .len(),
        2
    );
    assert_eq!(
        only("?order_id=999999".to_owned()).await,
        Vec::<String>::new()
    );
    for (query, parameter) in [("?status=done", "status"), ("?order_id=0", "order_id")] {
        let refused = list(query).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
        assert_eq!(refused.body["parameter"], json!(parameter));
    }
    send(
        &router,
        Method::GET,
        "/api/v1/batches",
        Some(&s.seat.token),
        &[],
        "",
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "admin role required");
    send(&router, Method::GET, "/api/v1/batches", None, &[], "")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "authentication required");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_batch_lists_its_tasks_for_an_admin_and_its_own_collector(pool: PgPool) {
    let s = Scenario::new(&pool, 20, 3, 2).await;
    let router = router(pool.clone());
    let done = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(2), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let path = format!("/api/v1/batches/{}/tasks", s.batch_id);
    let tasks = |token: String, query: &str| {
        let router = router.clone();
        let path = format!("{path}{query}");
        async move { get(&router, &path, Some(&token)).await }
    };

    let all = tasks(admin_token(), "").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(all.body["total"], json!(5));
    let first = &items(&all)[0];
    assert!(first["task_id"].as_str().unwrap().starts_with("task_"));
    assert_eq!(first["sop_id"], json!(s.group_a.sop_id.to_string()));
    assert_eq!(first["scene_name"], json!("厨房"));
    let completed = tasks(admin_token(), "?status=completed").await;
    assert_eq!(completed.body["total"], json!(2));
    assert!(
        items(&completed)
            .iter()
            .all(|t| t["status"] == json!("completed") && t["completed_at"].is_string())
    );
    let group_b = tasks(admin_token(), &format!("?sop_id={}", s.group_b.sop_id)).await;
    assert_eq!(
        (group_b.body["total"].clone(), items(&group_b).len()),
        (json!(2), 2)
    );
    let page = tasks(admin_token(), "?limit=2&offset=2").await;
    assert_eq!(items(&page).len(), 2);
    assert_eq!(
        (&page.body["hasNext"], &page.body["hasPrev"]),
        (&json!(true), &json!(true))
    );

    // The batch's own collector reads it; another collector may not; unknown batches are 404.
    let own = tasks(s.seat.token.clone(), "").await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    let other = s.add_seat("DC777", None, Some("axon-7")).await;
    tasks(other.token.clone(), "").await.assert_error(
        StatusCode::FORBIDDEN,
        "batch is not assigned to current workstation",
    );
    get(
        &router,
        "/api/v1/batches/999999/tasks",
        Some(&admin_token()),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "batch not found");
    tasks(admin_token(), "?status=lost").await.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid status: unknown value \"lost\"",
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn batch_lists_run_the_same_statements_for_small_and_large_data(pool: PgPool) {
    let s = Scenario::new(&pool, 100_000, 2, 0).await;
    let router = router(pool.clone());
    let tasks_path = format!("/api/v1/batches/{}/tasks?status=pending", s.batch_id);
    let few_batches =
        statements_run_by(&pool, get(&router, "/api/v1/batches", Some(&admin_token())))
            .await
            .0;
    let few_tasks = statements_run_by(&pool, get(&router, &tasks_path, Some(&admin_token())))
        .await
        .0;
    s.add_tasks(s.batch_id, s.group_a, 500, "pending").await;
    for _ in 0..60 {
        s.add_batch(s.order_id, s.seat.workstation_id).await;
    }
    let (many_batches, batches) =
        statements_run_by(&pool, get(&router, "/api/v1/batches", Some(&admin_token()))).await;
    assert_eq!(batches.body["total"], json!(61));
    let (many_tasks, tasks) =
        statements_run_by(&pool, get(&router, &tasks_path, Some(&admin_token()))).await;
    assert_eq!(tasks.body["total"], json!(502));
    assert_eq!((few_batches, few_tasks), (many_batches, many_tasks));
}
