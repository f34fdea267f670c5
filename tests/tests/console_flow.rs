//! The admin console's whole flow through the HTTP API alone: create a collector, bind them to
//! a robot, let them log in from the phone, create an order, pick the station, a SOP and a
//! scene's subscene from the reference lists, create a batch, find it in the batch list,
//! annotate it, read its tasks, let the collector see and complete them from the phone, watch
//! the order, then finalize it or recall the batch. SQL sets up only what the API does not
//! manage: an organization, a scene with a subscene, a SOP and a robot.

use axum::http::{Method, StatusCode};
use keystone_tests::admin_call as admin;
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

/// Steps 1–4, up to two of three tasks done: the router, the order's and the batch's ids.
async fn dispatch_and_complete_two(pool: &PgPool) -> (axum::Router, String, String) {
    // Fixtures: the scenario's organization, scene (with subscenes), SOPs and a robot; its own
    // order and station are left alone.
    let s = Scenario::new(pool, 1, 0, 0).await;
    let robot = s.add_robot("console-arm").await;
    let router = router(pool.clone());

    // 0. People: a collector with a password of their own, bound to the robot, logs in from the
    // phone and finds their workstation.
    let collector = admin(
        &router,
        Method::POST,
        "/api/v1/data-collectors",
        json!({"organization_id": s.organization_id.to_string(), "name": "钱七",
               "operator_id": "DC500", "password": "console-secret"}),
    )
    .await;
    assert_eq!(collector.status, StatusCode::CREATED, "{}", collector.text);
    let bound = admin(
        &router,
        Method::POST,
        "/api/v1/stations",
        json!({"robot_id": robot.to_string(), "data_collector_id": collector.body["id"],
               "name": "Console station"}),
    )
    .await;
    assert_eq!(bound.status, StatusCode::CREATED, "{}", bound.text);
    let login = log_in(&router, "DC500", "console-secret").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let phone = login.body["access_token"].as_str().unwrap().to_owned();
    let me = get(&router, "/api/v1/auth/me", Some(&phone)).await;
    assert_eq!(me.body["workstation_id"], bound.body["id"], "{}", me.text);
    assert_eq!(me.body["workstation_status"], json!("inactive"));

    // 1. The forms' reference data.
    let stations = admin(
        &router,
        Method::GET,
        "/api/v1/stations?collector_operator_id=DC500",
        Value::Null,
    )
    .await;
    assert_eq!(stations.status, StatusCode::OK, "{}", stations.text);
    let station = stations.body["items"][0].clone();
    let workstation_id = station["id"].as_str().unwrap().to_owned();
    assert_eq!(station["id"], bound.body["id"]);
    assert_eq!(station["workflow"], json!("external_device"));
    let scenes = admin(&router, Method::GET, "/api/v1/scenes", Value::Null).await;
    let scene = scenes.body["items"][0].clone();
    let subscene_id = scene["subscenes"][0]["id"].as_str().unwrap().to_owned();
    let sops = admin(
        &router,
        Method::GET,
        "/api/v1/sops?keyword=move",
        Value::Null,
    )
    .await;
    let sop_id = sops.body["items"][0]["id"].as_str().unwrap().to_owned();

    // 2. The order.
    let created = admin(
        &router,
        Method::POST,
        "/api/v1/orders",
        json!({"organization_id": station["organization_id"], "scene_id": scene["id"],
               "name": "Console run", "target_count": 3, "priority": "high"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let order_id = created.body["id"].as_str().unwrap().to_owned();
    let listed = admin(
        &router,
        Method::GET,
        "/api/v1/orders?keyword=console",
        Value::Null,
    )
    .await;
    assert_eq!(listed.body["items"][0]["id"], json!(order_id));

    // 3. A batch of three tasks on the station (ids as the lists gave them, sent as numbers).
    let number = |text: &str| text.parse::<i64>().unwrap();
    let batch = admin(
        &router,
        Method::POST,
        "/api/v1/batches",
        json!({"order_id": number(&order_id), "workstation_id": number(&workstation_id),
               "task_groups": [{"sop_id": number(&sop_id), "subscene_id": number(&subscene_id),
                                "quantity": 3}]}),
    )
    .await;
    assert_eq!(batch.status, StatusCode::CREATED, "{}", batch.text);
    let batch_id = batch.body["batch"]["id"].as_str().unwrap().to_owned();
    let batches = admin(
        &router,
        Method::GET,
        &format!("/api/v1/batches?order_id={order_id}"),
        Value::Null,
    )
    .await;
    assert_eq!(batches.body["total"], json!(1));
    assert_eq!(batches.body["items"][0]["pending_count"], json!(3));
    let annotated = admin(
        &router,
        Method::PATCH,
        &format!("/api/v1/batches/{batch_id}"),
        json!({"name": "Console batch", "notes": "left shelf first"}),
    )
    .await;
    assert_eq!(annotated.status, StatusCode::OK, "{}", annotated.text);
    assert_eq!(annotated.body["batch"]["notes"], json!("left shelf first"));
    let tasks = admin(
        &router,
        Method::GET,
        &format!("/api/v1/batches/{batch_id}/tasks"),
        Value::Null,
    )
    .await;
    assert_eq!(tasks.body["total"], json!(3));
    assert!(
        tasks.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == json!("pending"))
    );

    // 4. The collector's phone shows the batch; they complete two; the admin watches.
    let mine = get(&router, "/api/v1/me/batches", Some(&phone)).await;
    assert_eq!(
        mine.body["batches"][0]["id"],
        json!(batch_id),
        "{}",
        mine.text
    );
    assert_eq!(mine.body["batches"][0]["pending_count"], json!(3));
    let body =
        json!({"sop_id": number(&sop_id), "subscene_id": number(&subscene_id), "quantity": 2});
    let done = complete(&router, &phone, number(&batch_id), body, &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let order = admin(
        &router,
        Method::GET,
        &format!("/api/v1/orders/{order_id}"),
        Value::Null,
    )
    .await;
    assert_eq!(
        (
            &order.body["status"],
            &order.body["completed_count"],
            &order.body["remaining_assignable"]
        ),
        (&json!("in_progress"), &json!(2), &json!(0))
    );
    (router, order_id, batch_id)
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_admin_runs_an_order_from_creation_to_finalization_through_the_api(pool: PgPool) {
    let (router, order_id, batch_id) = dispatch_and_complete_two(&pool).await;
    let finalized = admin(
        &router,
        Method::POST,
        &format!("/api/v1/orders/{order_id}/finalize"),
        json!({}),
    )
    .await;
    assert_eq!(finalized.status, StatusCode::OK, "{}", finalized.text);
    let after = admin(
        &router,
        Method::GET,
        &format!("/api/v1/orders/{order_id}"),
        Value::Null,
    )
    .await;
    assert_eq!(after.body["status"], json!("completed"));
    let cancelled = admin(
        &router,
        Method::GET,
        &format!("/api/v1/batches/{batch_id}/tasks?status=cancelled"),
        Value::Null,
    )
    .await;
    assert_eq!(
        cancelled.body["total"],
        json!(1),
        "the task nobody did was cancelled"
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_admin_recalls_a_running_batch_through_the_api(pool: PgPool) {
    let (router, order_id, batch_id) = dispatch_and_complete_two(&pool).await;
    let recalled = admin(
        &router,
        Method::POST,
        &format!("/api/v1/batches/{batch_id}/recall"),
        json!({}),
    )
    .await;
    assert_eq!(recalled.status, StatusCode::OK, "{}", recalled.text);
    assert_eq!(recalled.body["cancelled_task_count"], json!(1));
    let order = admin(
        &router,
        Method::GET,
        &format!("/api/v1/orders/{order_id}"),
        Value::Null,
    )
    .await;
    assert_eq!(
        (
            &order.body["status"],
            &order.body["completed_count"],
            &order.body["batch_counts"]["recalled"]
        ),
        (&json!("in_progress"), &json!(2), &json!(1)),
        "the completions still count; the order does not move back"
    );
    let recalled_list = admin(
        &router,
        Method::GET,
        &format!("/api/v1/batches?order_id={order_id}&status=recalled"),
        Value::Null,
    )
    .await;
    assert_eq!(recalled_list.body["items"][0]["id"], json!(batch_id));
    assert_eq!(
        recalled_list.body["items"][0]["name"],
        json!("Console batch")
    );
}
