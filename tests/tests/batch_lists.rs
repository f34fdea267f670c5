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

/// Every batch filter, and a batch's task page and total, use an index on 20 000 batches of 200
/// orders on 500 stations and a batch of 20 000 tasks: no statement of a filtered list reads
/// the whole batches or tasks table (each call is planned for its own values).
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn every_batch_list_filter_uses_an_index(pool: PgPool) {
    let s = Scenario::new(&pool, 1_000_000, 0, 0).await;
    s.add_tasks(s.batch_id, s.group_a, 20_000, "pending").await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO organizations (name, slug) \
             SELECT 'Org ' || g, 'org-' || g FROM generate_series(1, 19) g; \
         INSERT INTO orders (organization_id, scene_id, name, target_count, status) \
             SELECT {org}, {scene}, 'order ' || g, 100, 'completed' FROM generate_series(1, 200) g; \
         INSERT INTO robot_types (name, capabilities) VALUES ('Plan arm', '{{\"requires_axon\": false}}'); \
         INSERT INTO robots (robot_type_id, device_id, factory_id) \
             SELECT (SELECT max(id) FROM robot_types), 'plan-' || g, 1 FROM generate_series(1, 500) g; \
         INSERT INTO data_collectors (name, operator_id) \
             SELECT 'Plan', 'P' || g FROM generate_series(1, 500) g; \
         INSERT INTO workstations (robot_id, data_collector_id, organization_id, factory_id, name, status) \
             SELECT r.id, c.id, {org}, 1, 'plan ' || r.device_id, 'inactive' \
             FROM robots r JOIN data_collectors c ON 'P' || substr(r.device_id, 6) = c.operator_id; \
         INSERT INTO batches (batch_id, order_id, workstation_id, organization_id, name, status, created_at) \
             SELECT 'batch_plan_' || g, o.id, w.id, {org}, 'b', \
                    CASE WHEN g % 1000 = 0 THEN 'pending' ELSE 'completed' END, \
                    now() - g * interval '1 minute' \
             FROM generate_series(1, 20000) g \
             JOIN LATERAL (SELECT id FROM orders WHERE name = 'order ' || (1 + g % 200)) o ON true \
             JOIN LATERAL (SELECT id FROM workstations WHERE name = 'plan plan-' || (1 + g % 500)) w ON true; \
         ANALYZE orders; ANALYZE batches; ANALYZE tasks; ANALYZE workstations; \
         ANALYZE robots; ANALYZE data_collectors; ANALYZE task_group_counts;",
        org = s.organization_id,
        scene = s.scene_id,
    )))
    .execute(&pool)
    .await
    .unwrap();
    let (order, workstation): (i64, i64) = sqlx::query_as(
        "SELECT order_id, workstation_id FROM batches WHERE batch_id = 'batch_plan_77'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let filters = "bigint, bigint, bigint, text[], text, text, text";
    let statements: Vec<(&str, String, &str)> = keystone_store::batch_lists::PLANNED_STATEMENTS
        .iter()
        .map(|(name, sql)| {
            let types = match *name {
                "list_batches" => format!("({filters}, bigint, bigint)"),
                "count_batches" => format!("({filters})"),
                "tally_batches" => "(bigint, text[])".to_owned(),
                "list_batch_tasks" => "(bigint, text[], bigint, bigint, bigint, bigint)".to_owned(),
                _ => "(bigint, text[], bigint, bigint)".to_owned(),
            };
            (*name, types, *sql)
        })
        .collect();
    let none = "NULL, NULL, NULL, '{}'";
    let mut executions = Vec::new();
    for filter in [
        format!("{order}, NULL, NULL, '{{}}', NULL, NULL, NULL"),
        format!("NULL, {workstation}, NULL, '{{}}', NULL, NULL, NULL"),
        format!(
            "NULL, NULL, {}, '{{}}', NULL, NULL, NULL",
            s.organization_id + 5
        ),
        "NULL, NULL, NULL, ARRAY['pending'], NULL, NULL, NULL".to_owned(),
        format!("{none}, 'batch_plan_77', NULL, NULL"),
        format!("{none}, NULL, 'plan-77', NULL"),
        format!("{none}, NULL, NULL, 'P77'"),
    ] {
        executions.push(format!("EXECUTE list_batches ({filter}, 50, 0)"));
        executions.push(format!("EXECUTE count_batches ({filter})"));
    }
    // Broad totals come from the folded tally.
    while keystone_store::batch_lists::fold_batch_tally(&app_db(&pool))
        .await
        .unwrap()
        > 0
    {}
    sqlx::query("ANALYZE batch_status_tally")
        .execute(&pool)
        .await
        .unwrap();
    executions.push("EXECUTE tally_batches (NULL, ARRAY['pending'])".to_owned());
    executions.push(format!(
        "EXECUTE tally_batches ({}, '{{}}')",
        s.organization_id
    ));
    // The first page without a filter walks the newest-first index.
    executions.push(format!(
        "EXECUTE list_batches ({none}, NULL, NULL, NULL, 50, 0)"
    ));
    let batch = s.batch_id;
    for filter in [
        "'{}', NULL, NULL".to_owned(),
        "ARRAY['pending'], NULL, NULL".to_owned(),
        format!("'{{}}', {}, {}", s.group_a.sop_id, s.group_a.subscene_id),
    ] {
        executions.push(format!(
            "EXECUTE list_batch_tasks ({batch}, {filter}, 50, 0)"
        ));
        executions.push(format!("EXECUTE count_batch_tasks ({batch}, {filter})"));
    }
    for (execution, plan) in plans_of(&pool, &statements, &executions).await {
        // The joined dimension tables (a page's orders and stations) are the planner's to
        // read as it likes; the tables that grow with the work must not be read whole.
        for table in ["batches", "tasks"] {
            assert!(
                !seq_scans(&plan, table),
                "{execution} scans every row of {table}: {plan:#}"
            );
        }
    }
}

/// Batches and a batch's tasks page in a total order even when timestamps tie (ids break the
/// ties): pages neither repeat nor skip, a batch created between two page reads lands on top,
/// and tasks added to a batch meanwhile come after the ones already read.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn pages_keep_a_stable_order_with_inserts_in_between(pool: PgPool) {
    let s = Scenario::new(&pool, 1_000, 6, 0).await;
    let router = router(pool.clone());
    let mut made = vec![s.batch_id];
    for _ in 0..6 {
        made.push(s.add_batch(s.order_id, s.seat.workstation_id).await);
    }
    sqlx::query("UPDATE batches SET created_at = '2026-12-01T00:00:00Z'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE tasks SET created_at = '2026-12-01T00:00:00Z'")
        .execute(&pool)
        .await
        .unwrap();
    let admin = admin_token();
    let page = async |path: String| ids(&get(&router, &path, Some(&admin)).await);
    let mut seen = Vec::new();
    for offset in [0, 3, 6] {
        seen.extend(page(format!("/api/v1/batches?limit=3&offset={offset}")).await);
        if offset == 3 {
            let late = admin_post(
                &router,
                "/api/v1/batches",
                json!({"order_id": s.order_id, "workstation_id": s.seat.workstation_id,
                       "task_groups": [s.group_b.body(1)]}),
            )
            .await;
            assert_eq!(late.status, StatusCode::CREATED, "{}", late.text);
        }
    }
    // Ids descending; the late batch shifted the last page by one (offset paging).
    let newest_first: Vec<String> = made.iter().rev().map(ToString::to_string).collect();
    let mut expected = newest_first[..6].to_vec();
    expected.extend_from_slice(&newest_first[5..]);
    assert_eq!(seen, expected);

    // A batch's tasks: creation order, ids breaking ties; added tasks come last.
    let tasks_path = |offset: usize| {
        format!(
            "/api/v1/batches/{}/tasks?limit=4&offset={offset}",
            s.batch_id
        )
    };
    let first = page(tasks_path(0)).await;
    let added = send(
        &router,
        Method::POST,
        &format!("/api/v1/batches/{}/tasks", s.batch_id),
        Some(&admin),
        &[],
        json!({"task_groups": [s.group_a.entry(8)]}).to_string(),
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text);
    let second = page(tasks_path(4)).await;
    let all: Vec<i64> = first
        .iter()
        .chain(&second)
        .map(|id| id.parse().unwrap())
        .collect();
    assert_eq!(all.len(), 8);
    assert!(all.is_sorted(), "{all:?}");
    let rest = page(tasks_path(6)).await;
    assert_eq!(rest.len(), 2, "the two added tasks come last");
}

/// The broad totals (no filter, or only organization and status) come from the batch status
/// tally: they stay exact while batches are created, start, complete, are cancelled, recalled
/// and deleted, before and after the relay folds the tally, and equal a count of the rows.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn broad_totals_follow_every_batch_move_and_survive_a_fold(pool: PgPool) {
    let s = Scenario::new(&pool, 1_000, 2, 0).await;
    let other = Scenario::new(&pool, 1_000, 1, 0).await;
    let router = router(pool.clone());
    let db = app_db(&pool);
    let check = async |moment: &str| {
        for query in [
            String::new(),
            "?status=pending".to_owned(),
            "?status=active,completed".to_owned(),
            "?status=cancelled,recalled".to_owned(),
            format!("?organization_id={}", s.organization_id),
            format!(
                "?organization_id={}&status=pending,active",
                other.organization_id
            ),
        ] {
            let page = get(
                &router,
                &format!("/api/v1/batches{query}"),
                Some(&admin_token()),
            )
            .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.text);
            // The same filters, counted row by row through a narrow filter's path: every
            // listed batch, paged out in full.
            let counted: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM batches b WHERE b.deleted_at IS NULL \
                   AND ($1::bigint IS NULL OR b.organization_id = $1) \
                   AND (cardinality($2::text[]) = 0 OR b.status = ANY($2))",
            )
            .bind(
                query
                    .split("organization_id=")
                    .nth(1)
                    .and_then(|rest| rest.split('&').next())
                    .and_then(|id| id.parse::<i64>().ok()),
            )
            .bind(
                query
                    .split("status=")
                    .nth(1)
                    .map(|list| list.split(',').map(str::to_owned).collect::<Vec<_>>())
                    .unwrap_or_default(),
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(page.body["total"], json!(counted), "{moment}: {query}");
        }
        assert!(counter_drift(&pool).await.is_empty(), "{moment}");
    };
    check("at the start").await;
    // Moves of every kind: start, complete, cancel, recall, delete, create.
    let done = complete(&router, &s.seat.token, s.batch_id, s.group_a.body(1), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let finished = complete(
        &router,
        &other.seat.token,
        other.batch_id,
        other.group_a.body(1),
        &[],
    )
    .await;
    assert_eq!(finished.status, StatusCode::OK, "{}", finished.text);
    let spare = s.add_batch(s.order_id, s.seat.workstation_id).await;
    let cancelled = admin_post(
        &router,
        &format!("/api/v1/batches/{spare}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    check("after the moves").await;
    let recalled = admin_post(
        &router,
        &format!("/api/v1/batches/{}/recall", other.batch_id),
        json!({}),
    )
    .await;
    assert_eq!(recalled.status, StatusCode::OK, "{}", recalled.text);
    let deleted = send(
        &router,
        axum::http::Method::DELETE,
        &format!("/api/v1/batches/{spare}"),
        Some(&admin_token()),
        &[],
        "",
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let created = admin_post(
        &router,
        "/api/v1/batches",
        json!({"order_id": s.order_id, "workstation_id": s.seat.workstation_id,
               "task_groups": [s.group_a.body(3)]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    check("after recall, delete and create").await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM batch_status_tally")
        .fetch_one(&pool)
        .await
        .unwrap();
    let folded = keystone_store::batch_lists::fold_batch_tally(&db)
        .await
        .unwrap();
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM batch_status_tally")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        folded > 0 && after < before,
        "{before} rows, {folded} folded, {after} left"
    );
    // One row per organization and status that has batches: a total reads no more.
    let groups: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT DISTINCT organization_id, status FROM batches \
         WHERE deleted_at IS NULL) x",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(after, groups);
    check("after a fold").await;
    // A second fold finds nothing more to fold.
    assert_eq!(
        keystone_store::batch_lists::fold_batch_tally(&db)
            .await
            .unwrap(),
        0
    );
    check("after a second fold").await;
}
