//! Workstation bindings: bind, rebind, unbind, rename and status, with the old bindings kept so
//! their batches still show who produced them, and no binding left with an open batch.

use axum::Router;
use axum::http::{Method, StatusCode};
use keystone_tests::admin_call as admin;
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

const STATIONS: &str = "/api/v1/stations";

fn station(id: impl std::fmt::Display) -> String {
    format!("{STATIONS}/{id}")
}

/// Sends an admin request that must be refused with `status`, `code` and `message`, and
/// checks that nothing changed.
async fn refused(
    pool: &PgPool,
    router: &Router,
    (method, path, body): (Method, &str, Value),
    status: StatusCode,
    code: &str,
) -> TestResponse {
    let before = snapshot(pool).await;
    let response = admin(router, method, path, body).await;
    assert_eq!(response.status, status, "{path}: {}", response.text);
    assert_eq!(
        response.body["code"],
        json!(code),
        "{path}: {}",
        response.text
    );
    assert_eq!(
        snapshot(pool).await,
        before,
        "{path}: a refused request changed the database"
    );
    response
}

/// Completes every task of the scenario's batch (one of group A), which completes the batch.
async fn finish_scenario_batch(router: &Router, s: &Scenario) {
    let done = complete(router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(batch_status(&s.pool, s.batch_id).await, "completed");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_robot_and_a_collector_are_bound_once(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let robot = s.add_robot("arm-77").await;
    let collector = s.add_collector("DC077", true).await;
    let bound = admin(
        &router,
        Method::POST,
        STATIONS,
        json!({"robot_id": robot.to_string(), "data_collector_id": collector}),
    )
    .await;
    assert_eq!(bound.status, StatusCode::CREATED, "{}", bound.text);
    let id = bound.body["id"].as_str().unwrap().to_owned();
    assert_eq!(bound.body["name"], json!("arm-77 · DC077"));
    assert_eq!(bound.body["status"], json!("inactive"));
    assert_eq!(
        bound.body["organization_id"],
        json!(s.organization_id.to_string())
    );
    assert_eq!(bound.body["factory_id"], json!("1"));
    assert_eq!(bound.body["device_id"], json!("arm-77"));
    assert_eq!(bound.body["collector_operator_id"], json!("DC077"));
    assert_eq!(bound.body["is_current"], json!(true));
    assert_eq!(bound.body["metadata"], json!({}));
    assert_eq!(bound.body["binding_count"], json!(1));
    assert_eq!(bound.body["bindings"][0]["id"], json!(id));
    assert_eq!(
        admin(&router, Method::GET, &station(&id), Value::Null)
            .await
            .body,
        bound.body
    );

    // The collector's phone now has a workstation.
    let token = collector_token(collector);
    let me = get(&router, "/api/v1/auth/me", Some(&token)).await;
    assert_eq!(me.body["workstation_id"], json!(id), "{}", me.text);

    // Neither can be bound twice; the 409 names the binding that holds them.
    let other_robot = s.add_robot("arm-78").await;
    let other_collector = s.add_collector("DC078", true).await;
    let taken = refused(
        &pool,
        &router,
        (
            Method::POST,
            STATIONS,
            json!({"robot_id": robot, "data_collector_id": other_collector}),
        ),
        StatusCode::CONFLICT,
        "robot_already_bound",
    )
    .await;
    assert_eq!(taken.body["workstation_id"], json!(id));
    let taken = refused(
        &pool,
        &router,
        (
            Method::POST,
            STATIONS,
            json!({"robot_id": other_robot, "data_collector_id": collector}),
        ),
        StatusCode::CONFLICT,
        "data_collector_already_bound",
    )
    .await;
    assert_eq!(taken.body["workstation_id"], json!(id));

    // What cannot be bound at all.
    let on_leave = s.add_collector("DC079", true).await;
    sqlx::query("UPDATE data_collectors SET status = 'on_leave' WHERE id = $1")
        .bind(on_leave)
        .execute(&pool)
        .await
        .unwrap();
    let homeless = s.add_collector("DC080", false).await;
    for (body, status, code) in [
        (
            json!({"robot_id": other_robot, "data_collector_id": on_leave}),
            StatusCode::CONFLICT,
            "data_collector_not_active",
        ),
        (
            json!({"robot_id": other_robot, "data_collector_id": homeless}),
            StatusCode::CONFLICT,
            "data_collector_without_organization",
        ),
        (
            json!({"robot_id": other_robot, "data_collector_id": 999_999}),
            StatusCode::BAD_REQUEST,
            "unknown_data_collector",
        ),
        (
            json!({"robot_id": 999_999, "data_collector_id": other_collector}),
            StatusCode::BAD_REQUEST,
            "unknown_robot",
        ),
        (
            json!({"data_collector_id": other_collector}),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            json!({"robot_id": other_robot, "data_collector_id": other_collector, "name": " "}),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
    ] {
        refused(&pool, &router, (Method::POST, STATIONS, body), status, code).await;
    }
    let not_active = refused(
        &pool,
        &router,
        (
            Method::POST,
            STATIONS,
            json!({"robot_id": other_robot, "data_collector_id": on_leave}),
        ),
        StatusCode::CONFLICT,
        "data_collector_not_active",
    )
    .await;
    assert_eq!(not_active.body["collector_status"], json!("on_leave"));
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_rebind_keeps_the_old_binding_with_its_batches(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let old = s.seat.workstation_id;
    let new_robot = s.add_robot("arm-90").await;

    // While the batch is pending, the binding can be neither rebound nor unbound.
    let blocked = refused(
        &pool,
        &router,
        (Method::PATCH, &station(old), json!({"robot_id": new_robot})),
        StatusCode::CONFLICT,
        "station_has_open_batches",
    )
    .await;
    assert_eq!(blocked.body["error"], json!("station has open batches"));
    assert_eq!(blocked.body["open_batch_count"], json!(1));
    refused(
        &pool,
        &router,
        (Method::DELETE, &station(old), Value::Null),
        StatusCode::CONFLICT,
        "station_has_open_batches",
    )
    .await;

    finish_scenario_batch(&router, &s).await;
    let old_view = admin(&router, Method::GET, &station(old), Value::Null).await;
    let old_device = old_view.body["device_id"].clone();
    let rebound = admin(
        &router,
        Method::PATCH,
        &station(old),
        json!({"robot_id": new_robot.to_string(), "name": "WS swapped"}),
    )
    .await;
    assert_eq!(rebound.status, StatusCode::OK, "{}", rebound.text);
    let new = rebound.body["id"].as_str().unwrap().to_owned();
    assert_ne!(new, old.to_string());
    assert_eq!(rebound.body["device_id"], json!("arm-90"));
    assert_eq!(rebound.body["name"], json!("WS swapped"));
    assert_eq!(
        rebound.body["data_collector_id"],
        json!(s.seat.collector_id.to_string())
    );
    assert_eq!(rebound.body["binding_count"], json!(2));
    assert_eq!(rebound.body["bindings"][0]["id"], json!(new));
    assert_eq!(rebound.body["bindings"][1]["id"], json!(old.to_string()));
    assert_eq!(rebound.body["bindings"][1]["superseded_by"], json!(new));
    assert_eq!(rebound.body["bindings"][1]["device_id"], old_device);

    // The old binding reads as it was, no longer current, and its batch still shows the old
    // device and collector.
    let kept = admin(&router, Method::GET, &station(old), Value::Null).await;
    assert_eq!(kept.body["is_current"], json!(false));
    assert_eq!(kept.body["superseded_by"], json!(new));
    assert_eq!(kept.body["device_id"], old_device);
    assert_eq!(kept.body["name"], old_view.body["name"]);
    assert_eq!(kept.body["bindings"], rebound.body["bindings"]);
    let batches = admin(
        &router,
        Method::GET,
        &format!("/api/v1/batches?order_id={}", s.order_id),
        Value::Null,
    )
    .await;
    assert_eq!(
        batches.body["items"][0]["workstation_id"],
        json!(old.to_string())
    );
    assert_eq!(batches.body["items"][0]["device_id"], old_device);
    assert_eq!(
        batches.body["items"][0]["collector_operator_id"],
        old_view.body["collector_operator_id"]
    );

    // The collector works at the new binding now; the list shows only current bindings.
    let me = get(&router, "/api/v1/auth/me", Some(&s.seat.token)).await;
    assert_eq!(me.body["workstation_id"], json!(new));
    let list = admin(
        &router,
        Method::GET,
        &format!("{STATIONS}?organization_id={}", s.organization_id),
        Value::Null,
    )
    .await;
    assert_eq!(list.body["total"], json!(1), "{}", list.text);
    assert_eq!(list.body["items"][0]["id"], json!(new));

    // Nothing is opened on the old binding again: no new batch, no reopened completion.
    let create = refused(
        &pool,
        &router,
        (
            Method::POST,
            "/api/v1/batches",
            json!({"order_id": s.order_id, "workstation_id": old,
                   "task_groups": [s.group_a.body(1)]}),
        ),
        StatusCode::CONFLICT,
        "station_superseded",
    )
    .await;
    assert_eq!(create.body["superseded_by"], json!(new));
    refused(
        &pool,
        &router,
        (Method::POST, &reopen_path(s.batch_id), s.group_a.body(1)),
        StatusCode::CONFLICT,
        "station_superseded",
    )
    .await;
    // The old binding is history: it cannot be changed or unbound.
    for (method, body) in [
        (Method::PATCH, json!({"name": "again"})),
        (Method::DELETE, Value::Null),
    ] {
        let answer = refused(
            &pool,
            &router,
            (method, &station(old), body),
            StatusCode::CONFLICT,
            "station_superseded",
        )
        .await;
        assert_eq!(answer.body["superseded_by"], json!(new));
    }
    // A batch on the new binding works as before.
    let created = admin_post(
        &router,
        "/api/v1/batches",
        json!({"order_id": s.order_id, "workstation_id": new.parse::<i64>().unwrap(),
               "task_groups": [s.group_a.body(1)]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert!(counter_drift(&pool).await.is_empty());
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_collector_rebind_and_an_unbind_free_the_collector(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    finish_scenario_batch(&router, &s).await;
    let old = s.seat.workstation_id;
    let elsewhere = Scenario::new(&pool, 10, 1, 0).await;
    let foreign = elsewhere.add_collector("DC091", true).await;
    refused(
        &pool,
        &router,
        (
            Method::PATCH,
            &station(old),
            json!({"data_collector_id": foreign}),
        ),
        StatusCode::CONFLICT,
        "data_collector_organization_mismatch",
    )
    .await;
    // A collector already at a station is refused; sending the current one is no rebind.
    let neighbour = s
        .add_seat(
            "DC093",
            Some(json!({"requires_axon": false})),
            Some("dev-93"),
        )
        .await;
    let taken = refused(
        &pool,
        &router,
        (
            Method::PATCH,
            &station(old),
            json!({"data_collector_id": neighbour.collector_id}),
        ),
        StatusCode::CONFLICT,
        "data_collector_already_bound",
    )
    .await;
    assert_eq!(
        taken.body["workstation_id"],
        json!(neighbour.workstation_id.to_string())
    );
    let same = admin(
        &router,
        Method::PATCH,
        &station(old),
        json!({"data_collector_id": s.seat.collector_id, "metadata": {"bench": "B1"}}),
    )
    .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text);
    assert_eq!(same.body["id"], json!(old.to_string()));
    assert_eq!(same.body["metadata"], json!({"bench": "B1"}));
    assert_eq!(same.body["binding_count"], json!(1));

    let newcomer = s.add_collector("DC092", true).await;
    let rebound = admin(
        &router,
        Method::PATCH,
        &station(old),
        json!({"data_collector_id": newcomer}),
    )
    .await;
    assert_eq!(rebound.status, StatusCode::OK, "{}", rebound.text);
    let new = rebound.body["id"].as_str().unwrap().to_owned();
    assert_eq!(rebound.body["collector_operator_id"], json!("DC092"));
    assert_eq!(rebound.body["metadata"], json!({"bench": "B1"}));
    assert_eq!(rebound.body["status"], json!("inactive"));

    // The first collector has no workstation now, and may be deleted.
    let phone = get(&router, "/api/v1/me/batches", Some(&s.seat.token)).await;
    assert_eq!(phone.body["workstation"], Value::Null, "{}", phone.text);
    assert_eq!(phone.body["batches"], json!([]));
    let gone = admin(
        &router,
        Method::DELETE,
        &format!("/api/v1/data-collectors/{}", s.seat.collector_id),
        Value::Null,
    )
    .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    // The old binding still names the deleted collector who produced its batch.
    let kept = admin(&router, Method::GET, &station(old), Value::Null).await;
    assert_eq!(
        kept.body["collector_operator_id"],
        json!(format!("DC{:03}", 1))
    );

    // The newcomer cannot be deleted while bound; an unbind frees them, and is repeatable.
    refused(
        &pool,
        &router,
        (
            Method::DELETE,
            &format!("/api/v1/data-collectors/{newcomer}"),
            Value::Null,
        ),
        StatusCode::CONFLICT,
        "data_collector_has_station",
    )
    .await;
    let unbound = admin(&router, Method::DELETE, &station(&new), Value::Null).await;
    assert_eq!(unbound.status, StatusCode::OK, "{}", unbound.text);
    assert_eq!(unbound.body["is_current"], json!(false));
    assert_eq!(unbound.body["superseded_by"], Value::Null);
    assert!(unbound.body["superseded_at"].is_string());
    let before = snapshot(&pool).await;
    let again = admin(&router, Method::DELETE, &station(&new), Value::Null).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body, unbound.body);
    assert_eq!(snapshot(&pool).await, before);
    let me = get(&router, "/api/v1/auth/me", Some(&collector_token(newcomer))).await;
    assert_eq!(me.body["workstation_id"], Value::Null, "{}", me.text);
    let list = admin(
        &router,
        Method::GET,
        &format!("{STATIONS}?organization_id={}", s.organization_id),
        Value::Null,
    )
    .await;
    // Only the neighbour's station is left.
    assert_eq!(list.body["total"], json!(1), "{}", list.text);
    assert_eq!(
        list.body["items"][0]["id"],
        json!(neighbour.workstation_id.to_string())
    );
    // The robot and the collector are free to be bound again.
    let rebind = admin(
        &router,
        Method::POST,
        STATIONS,
        json!({"robot_id": s.seat.robot_id, "data_collector_id": newcomer}),
    )
    .await;
    assert_eq!(rebind.status, StatusCode::CREATED, "{}", rebind.text);
    assert_eq!(rebind.body["binding_count"], json!(1));
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn active_and_inactive_follow_the_batches(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 2, 0).await;
    let router = router(pool.clone());
    let id = s.seat.workstation_id;
    let path = station(id);
    let patch = |body: Value| admin(&router, Method::PATCH, &path, body);
    assert_eq!(
        patch(json!({"status": "break"})).await.body["status"],
        json!("break")
    );
    let refusal = refused(
        &pool,
        &router,
        (Method::PATCH, &station(id), json!({"status": "active"})),
        StatusCode::CONFLICT,
        "workstation_status_derived",
    )
    .await;
    assert_eq!(refusal.body["derived_status"], json!("inactive"));
    assert_eq!(
        patch(json!({"status": "inactive"})).await.body["status"],
        json!("inactive")
    );
    let done = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(workstation_status(&pool, id).await, "active");
    assert_eq!(
        patch(json!({"status": "offline"})).await.body["status"],
        json!("offline")
    );
    refused(
        &pool,
        &router,
        (Method::PATCH, &station(id), json!({"status": "inactive"})),
        StatusCode::CONFLICT,
        "workstation_status_derived",
    )
    .await;
    let back = patch(json!({"status": "active", "name": "WS back"})).await;
    assert_eq!(back.body["status"], json!("active"), "{}", back.text);
    assert_eq!(back.body["name"], json!("WS back"));
    for (body, code) in [
        (json!({}), "nothing_to_update"),
        (json!({"organization_id": "2"}), "immutable_field"),
        (json!({"factory_id": 2}), "immutable_field"),
        (json!({"name": ""}), "missing_field"),
        (json!({"status": "asleep"}), "invalid_request_body"),
    ] {
        refused(
            &pool,
            &router,
            (Method::PATCH, &station(id), body),
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
    }
    refused(
        &pool,
        &router,
        (Method::GET, &station(999_999), Value::Null),
        StatusCode::NOT_FOUND,
        "station_not_found",
    )
    .await;
    refused(
        &pool,
        &router,
        (Method::GET, &station("abc"), Value::Null),
        StatusCode::BAD_REQUEST,
        "invalid_station_id",
    )
    .await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn station_writes_are_for_admins(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let id = s.seat.workstation_id;
    assert_admin_only(
        &router,
        &s.seat.token,
        &[
            (Method::POST, STATIONS.to_owned()),
            (Method::GET, station(id)),
            (Method::PATCH, station(id)),
            (Method::DELETE, station(id)),
        ],
    )
    .await;
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn reading_a_long_history_runs_as_many_statements_as_a_short_one(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    finish_scenario_batch(&router, &s).await;
    let first = s.seat.workstation_id;
    let (short, view) = statements_run_by(
        &pool,
        admin(&router, Method::GET, &station(first), Value::Null),
    )
    .await;
    assert_eq!(view.body["binding_count"], json!(1));
    let mut current = first.to_string();
    for n in 0..6 {
        let robot = s.add_robot(&format!("swap-{n}")).await;
        let rebound = admin(
            &router,
            Method::PATCH,
            &station(&current),
            json!({"robot_id": robot}),
        )
        .await;
        assert_eq!(rebound.status, StatusCode::OK, "{}", rebound.text);
        current = rebound.body["id"].as_str().unwrap().to_owned();
    }
    // Read from the middle of the chain: both directions are walked.
    let middle: i64 = sqlx::query_scalar(
        "SELECT id FROM workstations WHERE superseded_by IS NOT NULL ORDER BY id OFFSET 3 LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (long, view) = statements_run_by(
        &pool,
        admin(&router, Method::GET, &station(middle), Value::Null),
    )
    .await;
    assert_eq!(view.body["binding_count"], json!(7), "{}", view.text);
    assert_eq!(view.body["bindings"][0]["id"], json!(current));
    assert_eq!(view.body["bindings"][6]["id"], json!(first.to_string()));
    assert_eq!(short, long);
}

/// Rebinds race batch creation on the same station: whichever commits first wins, the other is
/// refused with a 409, never a deadlock or a 5xx, and no batch is ever left open on a binding
/// that is no longer current.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_rebind_racing_a_new_batch_never_strands_it(pool: PgPool) {
    let s = Scenario::new(&pool, 1000, 1, 0).await;
    let router = router(pool.clone());
    finish_scenario_batch(&router, &s).await;
    let mut current = s.seat.workstation_id.to_string();
    let (mut rebinds, mut creates) = (0, 0);
    for round in 0..24 {
        let robot = s.add_robot(&format!("race-{round}")).await;
        let path = station(&current);
        let rebind = admin(&router, Method::PATCH, &path, json!({"robot_id": robot}));
        let create = admin_post(
            &router,
            "/api/v1/batches",
            json!({"order_id": s.order_id, "workstation_id": current.parse::<i64>().unwrap(),
                   "task_groups": [s.group_a.body(1)]}),
        );
        let (rebind, create) = tokio::join!(rebind, create);
        match (rebind.status, create.status) {
            (StatusCode::OK, StatusCode::CONFLICT) => {
                assert_eq!(
                    create.body["code"],
                    json!("station_superseded"),
                    "{}",
                    create.text
                );
                rebinds += 1;
                current = rebind.body["id"].as_str().unwrap().to_owned();
            }
            (StatusCode::CONFLICT, StatusCode::CREATED) => {
                assert_eq!(
                    rebind.body["code"],
                    json!("station_has_open_batches"),
                    "{}",
                    rebind.text
                );
                creates += 1;
                // Clear the way for the next round.
                let batch = create.body["batch"]["id"].as_str().unwrap().to_owned();
                let cancelled = admin_post(
                    &router,
                    &format!("/api/v1/batches/{batch}/cancel"),
                    json!({}),
                )
                .await;
                assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
            }
            other => panic!(
                "round {round}: {other:?}\nrebind {}\ncreate {}",
                rebind.text, create.text
            ),
        }
    }
    let stranded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM batches b JOIN workstations w ON w.id = b.workstation_id \
         WHERE NOT w.is_current AND b.status IN ('pending', 'active') AND b.deleted_at IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stranded, 0);
    eprintln!("{rebinds} rebinds and {creates} batches won their race");
}

/// A collector's deletion that waits for a bind of that collector sees the binding once the
/// bind commits: it answers 409, never deletes a collector who is at a station.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn deleting_a_collector_waits_for_a_bind_and_then_sees_it(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let robot = s.add_robot("arm-bind").await;
    let collector = s.add_collector("DC095", true).await;
    // A bind in flight: it holds the collector's row, as the bind does, and has inserted the
    // binding, not yet committed.
    let mut bind = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM data_collectors WHERE id = $1 FOR NO KEY UPDATE")
        .bind(collector)
        .execute(&mut *bind)
        .await
        .unwrap();
    let station: i64 = sqlx::query_scalar(
        "INSERT INTO workstations (robot_id, data_collector_id, organization_id, factory_id, name) \
         VALUES ($1, $2, $3, 1, 'in flight') RETURNING id",
    )
    .bind(robot)
    .bind(collector)
    .bind(s.organization_id)
    .fetch_one(&mut *bind)
    .await
    .unwrap();
    let deleting = {
        let router = router.clone();
        tokio::spawn(async move {
            admin(
                &router,
                Method::DELETE,
                &format!("/api/v1/data-collectors/{collector}"),
                Value::Null,
            )
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!deleting.is_finished(), "the deletion waits for the bind");
    bind.commit().await.unwrap();
    let deleted = deleting.await.unwrap();
    assert_eq!(deleted.status, StatusCode::CONFLICT, "{}", deleted.text);
    assert_eq!(deleted.body["workstation_id"], json!(station.to_string()));
    let live: bool =
        sqlx::query_scalar("SELECT deleted_at IS NULL FROM data_collectors WHERE id = $1")
            .bind(collector)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(live);
}
