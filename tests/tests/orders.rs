//! SPEC §5.14: the admin console's orders — create, list, delete — and the order view they
//! answer (also `GET /api/v1/orders/{id}`).

use axum::http::{Method, StatusCode};
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

/// An organization and a scene (the only SQL a console flow needs besides SOPs, robots and
/// collectors), named as given.
async fn organization_and_scene(pool: &PgPool, organization: &str, scene: &str) -> (i64, i64) {
    let organization_id: i64 = sqlx::query_scalar(
        "INSERT INTO organizations (name, slug) VALUES ($1, md5(random()::text)) RETURNING id",
    )
    .bind(organization)
    .fetch_one(pool)
    .await
    .unwrap();
    let scene_id: i64 =
        sqlx::query_scalar("INSERT INTO scenes (name, factory_id) VALUES ($1, 1) RETURNING id")
            .bind(scene)
            .fetch_one(pool)
            .await
            .unwrap();
    (organization_id, scene_id)
}

async fn create(router: &axum::Router, body: Value, headers: &[(&str, &str)]) -> TestResponse {
    send(
        router,
        Method::POST,
        "/api/v1/orders",
        Some(&admin_token()),
        headers,
        body.to_string(),
    )
    .await
}

fn order_body(organization: i64, scene: i64, name: &str) -> Value {
    json!({"organization_id": organization.to_string(), "scene_id": scene, "name": name,
           "target_count": 10})
}

async fn list(router: &axum::Router, query: &str) -> TestResponse {
    get(
        router,
        &format!("/api/v1/orders{query}"),
        Some(&admin_token()),
    )
    .await
}

fn names(page: &TestResponse) -> Vec<String> {
    page.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", page.text))
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_owned())
        .collect()
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_admin_creates_an_order_and_sees_it_as_every_view_shows_it(pool: PgPool) {
    let (organization, scene) = organization_and_scene(&pool, "Acme Robotics", "厨房").await;
    let router = router(pool.clone());
    let response = create(
        &router,
        json!({"organization_id": organization, "scene_id": scene.to_string(),
               "name": "  Kitchen run  ", "target_count": 100, "priority": "high",
               "deadline": "2026-12-31T00:00:00Z", "metadata": {"customer": "acme"}}),
        &[],
    )
    .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    let order = &response.body;
    let id = order["id"].as_str().unwrap().to_owned();
    for (field, value) in [
        ("name", json!("Kitchen run")),
        ("status", json!("created")),
        ("priority", json!("high")),
        ("scene_id", json!(scene.to_string())),
        ("scene_name", json!("厨房")),
        ("organization_id", json!(organization.to_string())),
        ("organization_name", json!("Acme Robotics")),
        ("target_count", json!(100)),
        ("task_count", json!(0)),
        ("completed_count", json!(0)),
        ("failed_count", json!(0)),
        ("cancelled_count", json!(0)),
        ("remaining_assignable", json!(100)),
        ("deadline", json!("2026-12-31T00:00:00Z")),
        ("metadata", json!({"customer": "acme"})),
    ] {
        assert_eq!(order[field], value, "{field}: {}", response.text);
    }
    assert!(order["created_at"].is_string() && order["updated_at"].is_string());
    let view = get(
        &router,
        &format!("/api/v1/orders/{id}"),
        Some(&admin_token()),
    )
    .await;
    assert_eq!(
        view.body, response.body,
        "the view answers what creating answered"
    );

    // Defaults: normal priority, no deadline, empty metadata.
    let plain = create(&router, order_body(organization, scene, "Plain"), &[]).await;
    assert_eq!(plain.status, StatusCode::CREATED, "{}", plain.text);
    assert_eq!(
        (
            &plain.body["priority"],
            &plain.body["deadline"],
            &plain.body["metadata"]
        ),
        (&json!("normal"), &Value::Null, &json!({}))
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn every_rule_of_a_new_order_answers_its_error(pool: PgPool) {
    let (organization, scene) = organization_and_scene(&pool, "Acme", "Kitchen").await;
    let router = router(pool.clone());
    let base = order_body(organization, scene, "Kitchen run");
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    for (body, status, message) in [
        (without("name"), StatusCode::BAD_REQUEST, "name is required"),
        (
            with("name", json!("   ")),
            StatusCode::BAD_REQUEST,
            "name is required",
        ),
        (
            with("name", json!("x".repeat(201))),
            StatusCode::BAD_REQUEST,
            "name must be at most 200 characters",
        ),
        (
            without("organization_id"),
            StatusCode::BAD_REQUEST,
            "organization_id is required",
        ),
        (
            with("scene_id", json!("abc")),
            StatusCode::BAD_REQUEST,
            "scene_id is required",
        ),
        (
            with("organization_id", json!(999_999)),
            StatusCode::BAD_REQUEST,
            "unknown organization",
        ),
        (
            with("scene_id", json!("999999")),
            StatusCode::BAD_REQUEST,
            "unknown scene",
        ),
        (
            with("priority", json!("asap")),
            StatusCode::BAD_REQUEST,
            "invalid request body",
        ),
        (
            with("deadline", json!("tomorrow")),
            StatusCode::BAD_REQUEST,
            "invalid request body",
        ),
        (
            with("metadata", json!([1])),
            StatusCode::BAD_REQUEST,
            "invalid request body",
        ),
    ] {
        let response = create(&router, body.clone(), &[]).await;
        response.assert_error(status, message);
    }
    for target in [json!(0), json!(-3), json!(2_147_483_648_i64)] {
        let response = create(&router, with("target_count", target), &[]).await;
        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{}",
            response.text
        );
        assert_eq!(response.body["code"], json!("invalid_target_count"));
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing was created");

    // Names are unique among an organization's live orders.
    assert_eq!(
        create(&router, base.clone(), &[]).await.status,
        StatusCode::CREATED
    );
    create(&router, base.clone(), &[])
        .await
        .assert_error(StatusCode::CONFLICT, "order name already exists");
    let (other, _) = organization_and_scene(&pool, "Other", "Elsewhere").await;
    let elsewhere = create(&router, with("organization_id", json!(other)), &[]).await;
    assert_eq!(
        elsewhere.status,
        StatusCode::CREATED,
        "another organization may use it"
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_idempotency_key_makes_a_repeated_create_safe(pool: PgPool) {
    let (organization, scene) = organization_and_scene(&pool, "Acme", "Kitchen").await;
    let router = router(pool.clone());
    let body = order_body(organization, scene, "Once");
    let first = create(&router, body.clone(), &[("idempotency-key", "create-once")]).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let again = create(&router, body.clone(), &[("idempotency-key", "create-once")]).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.text, first.text);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    let mut other = body;
    other["target_count"] = json!(11);
    create(&router, other, &[("idempotency-key", "create-once")])
        .await
        .assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency key reused with a different request",
        );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_order_endpoints_are_for_admins(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let path = format!("/api/v1/orders/{}", s.order_id);
    for (method, path) in [
        (Method::POST, "/api/v1/orders"),
        (Method::GET, "/api/v1/orders"),
        (Method::DELETE, path.as_str()),
    ] {
        let body = if method == Method::POST { "{}" } else { "" };
        send(&router, method.clone(), path, None, &[], body)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "authentication required");
        send(
            &router,
            method.clone(),
            path,
            Some(&s.seat.token),
            &[],
            body,
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "admin role required");
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_list_filters_ranks_keywords_and_pages(pool: PgPool) {
    let (acme, kitchen) = organization_and_scene(&pool, "Acme Robotics", "Kitchen").await;
    let (_, garage) = organization_and_scene(&pool, "Other Org", "Garage").await;
    let (beta, lab) = organization_and_scene(&pool, "Beta Labs", "Lab").await;
    let router = router(pool.clone());
    for (organization, scene, name, priority) in [
        (acme, kitchen, "Bottle run", "high"),
        (acme, garage, "Run bottles", "low"),
        (acme, kitchen, "bottle", "urgent"),
        (beta, lab, "Sorting", "normal"),
        (beta, kitchen, "Wipe 50%_done", "normal"),
    ] {
        let mut body = order_body(organization, scene, name);
        body["priority"] = json!(priority);
        let response = create(&router, body, &[]).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    }
    // Newest first, then id.
    let all = list(&router, "").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(
        names(&all),
        [
            "Wipe 50%_done",
            "Sorting",
            "bottle",
            "Run bottles",
            "Bottle run"
        ]
    );
    assert_eq!(
        (&all.body["total"], &all.body["limit"], &all.body["offset"]),
        (&json!(5), &json!(50), &json!(0))
    );
    assert_eq!(
        (&all.body["hasNext"], &all.body["hasPrev"]),
        (&json!(false), &json!(false))
    );

    // Keyword: exact (any case) first, then prefixes, then the rest.
    let bottle = list(&router, "?keyword=BOTTLE").await;
    assert_eq!(names(&bottle), ["bottle", "Bottle run", "Run bottles"]);
    // Scene and organization names match too; LIKE wildcards are plain characters.
    assert_eq!(
        names(&list(&router, "?keyword=garage").await),
        ["Run bottles"]
    );
    assert_eq!(
        names(&list(&router, "?keyword=beta").await),
        ["Wipe 50%_done", "Sorting"]
    );
    assert_eq!(
        names(&list(&router, "?keyword=50%25_").await),
        ["Wipe 50%_done"]
    );
    assert_eq!(
        names(&list(&router, "?keyword=0%25").await),
        ["Wipe 50%_done"]
    );

    assert_eq!(
        names(&list(&router, "?priority=high,urgent").await),
        ["bottle", "Bottle run"]
    );
    assert_eq!(
        names(&list(&router, &format!("?organization_id={beta}")).await),
        ["Wipe 50%_done", "Sorting"]
    );
    assert_eq!(
        names(
            &list(
                &router,
                &format!("?scene_id={kitchen}&organization_id={acme}")
            )
            .await
        ),
        ["bottle", "Bottle run"]
    );
    assert_eq!(
        names(&list(&router, "?status=paused").await),
        Vec::<String>::new()
    );
    assert_eq!(
        list(&router, "?status=created,paused").await.body["total"],
        json!(5)
    );

    // Pages.
    let second = list(&router, "?limit=2&offset=2").await;
    assert_eq!(names(&second), ["bottle", "Run bottles"]);
    assert_eq!(
        (&second.body["hasNext"], &second.body["hasPrev"]),
        (&json!(true), &json!(true))
    );
    assert_eq!(second.body["total"], json!(5));

    for (query, parameter) in [
        ("?limit=101", "limit"),
        ("?limit=0", "limit"),
        ("?offset=-1", "offset"),
        ("?status=done", "status"),
        ("?priority=high,asap", "priority"),
        ("?organization_id=0", "organization_id"),
        ("?limit=ten", "query"),
    ] {
        let refused = list(&router, query).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            refused.text
        );
        assert_eq!(
            refused.body["code"],
            json!("invalid_list_parameter"),
            "{query}"
        );
        assert_eq!(refused.body["parameter"], json!(parameter), "{query}");
    }
}

/// The same `created_at` everywhere: the order is still total (id breaks ties), the pages
/// neither repeat nor skip, and an order created between two page reads lands on top.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn pages_keep_a_stable_order(pool: PgPool) {
    let (organization, scene) = organization_and_scene(&pool, "Acme", "Kitchen").await;
    let router = router(pool.clone());
    for i in 0..7 {
        let response = create(
            &router,
            order_body(organization, scene, &format!("o{i}")),
            &[],
        )
        .await;
        assert_eq!(response.status, StatusCode::CREATED);
    }
    sqlx::query("UPDATE orders SET created_at = '2026-12-01T00:00:00Z'")
        .execute(&pool)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for offset in [0, 3, 6] {
        let page = list(&router, &format!("?limit=3&offset={offset}")).await;
        seen.extend(names(&page));
        if offset == 3 {
            let late = create(&router, order_body(organization, scene, "late"), &[]).await;
            assert_eq!(late.status, StatusCode::CREATED);
        }
    }
    // Ids descending: o6 … o0; the late order shifted the last page by one (offset paging).
    assert_eq!(seen, ["o6", "o5", "o4", "o3", "o2", "o1", "o1", "o0"]);
    assert_eq!(names(&list(&router, "?limit=1").await), ["late"]);
    let again = list(&router, "?limit=3&offset=1").await;
    assert_eq!(names(&again), ["o6", "o5", "o4"]);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn listing_runs_the_same_statements_for_few_and_many_orders(pool: PgPool) {
    let (organization, scene) = organization_and_scene(&pool, "Acme", "Kitchen").await;
    let router = router(pool.clone());
    let few = statements_run_by(&pool, list(&router, "?keyword=run"))
        .await
        .0;
    sqlx::query(
        "INSERT INTO orders (organization_id, scene_id, name, target_count) \
         SELECT $1, $2, 'run ' || g, 5 FROM generate_series(1, 120) g",
    )
    .bind(organization)
    .bind(scene)
    .execute(&pool)
    .await
    .unwrap();
    let (many, page) = statements_run_by(&pool, list(&router, "?keyword=run")).await;
    assert_eq!(page.body["total"], json!(120));
    assert_eq!(names(&page).len(), 50);
    assert_eq!(few, many);
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn only_an_order_without_batches_can_be_deleted(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let delete = async |id: i64| {
        send(
            &router,
            Method::DELETE,
            &format!("/api/v1/orders/{id}"),
            Some(&admin_token()),
            &[],
            "",
        )
        .await
    };
    let refused = delete(s.order_id).await;
    refused.assert_error(StatusCode::CONFLICT, "order has batches");
    assert_eq!(refused.body["batch_count"], json!(1));

    let (organization, scene) = organization_and_scene(&pool, "Acme", "Kitchen").await;
    let fresh = create(&router, order_body(organization, scene, "Mistake"), &[]).await;
    let id: i64 = fresh.body["id"].as_str().unwrap().parse().unwrap();
    let deleted = delete(id).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert!(deleted.text.is_empty());
    delete(id)
        .await
        .assert_error(StatusCode::NOT_FOUND, "order not found");
    get(
        &router,
        &format!("/api/v1/orders/{id}"),
        Some(&admin_token()),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "order not found");
    assert!(!names(&list(&router, "").await).contains(&"Mistake".to_owned()));
    let again = create(&router, order_body(organization, scene, "Mistake"), &[]).await;
    assert_eq!(again.status, StatusCode::CREATED, "the name is free again");
    delete(999_999)
        .await
        .assert_error(StatusCode::NOT_FOUND, "order not found");
}

/// A completed order has nothing left to assign, whatever its target says.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_completed_order_has_nothing_left_to_assign(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 2, 0).await;
    let router = router(pool.clone());
    let before = get(
        &router,
        &format!("/api/v1/orders/{}", s.order_id),
        Some(&admin_token()),
    )
    .await;
    assert_eq!(before.body["remaining_assignable"], json!(8));
    set_order_status(&pool, s.order_id, "completed").await;
    let after = get(
        &router,
        &format!("/api/v1/orders/{}", s.order_id),
        Some(&admin_token()),
    )
    .await;
    assert_eq!(after.body["status"], json!("completed"));
    assert_eq!(after.body["remaining_assignable"], json!(0));
}

/// Every filter of the list uses an index on 20 000 orders over 100 scenes and 20
/// organizations: no statement of a filtered list reads the whole orders table (each call is
/// planned for its own values).
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn every_list_filter_uses_an_index(pool: PgPool) {
    let (organization, scene) = organization_and_scene(&pool, "Acme", "Kitchen").await;
    sqlx::query(
        "WITH orgs AS (INSERT INTO organizations (name, slug) \
                       SELECT 'Org ' || g, 'org-' || g FROM generate_series(1, 19) g RETURNING id), \
              scenes_made AS (INSERT INTO scenes (name, factory_id) \
                       SELECT 'Scene ' || g, 1 FROM generate_series(1, 99) g RETURNING id) \
         SELECT 1",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO orders (organization_id, scene_id, name, target_count, status, priority) \
         SELECT $1 + g % 20, $2 + g % 100, 'order ' || g, 5, \
                CASE WHEN g % 500 = 0 THEN 'paused' ELSE 'completed' END, \
                CASE WHEN g % 400 = 0 THEN 'urgent' ELSE 'normal' END \
         FROM generate_series(1, 20000) g",
    )
    .bind(organization)
    .bind(scene)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE orders").execute(&pool).await.unwrap();
    sqlx::query("ANALYZE scenes").execute(&pool).await.unwrap();
    sqlx::query("ANALYZE organizations")
        .execute(&pool)
        .await
        .unwrap();
    let filters = "text[], text[], bigint, bigint";
    let statements: Vec<(&str, String, &str)> = keystone_store::orders::PLANNED_STATEMENTS
        .iter()
        .map(|(name, sql)| {
            let types = match *name {
                "list_orders" => format!("({filters}, bigint, bigint)"),
                "count_orders" => format!("({filters})"),
                "list_matching_orders" => {
                    format!("({filters}, text, text, text, bigint, bigint)")
                }
                _ => format!("({filters}, text)"),
            };
            (*name, types, *sql)
        })
        .collect();
    let third_org = organization + 3;
    let tenth_scene = scene + 10;
    let mut explains = Vec::new();
    for filters in [
        "ARRAY['paused'], '{}', NULL, NULL".to_owned(),
        "'{}', ARRAY['urgent'], NULL, NULL".to_owned(),
        format!("'{{}}', '{{}}', {third_org}, NULL"),
        format!("'{{}}', '{{}}', NULL, {tenth_scene}"),
    ] {
        explains.push(format!("EXECUTE list_orders ({filters}, 50, 0)"));
        explains.push(format!("EXECUTE count_orders ({filters})"));
    }
    for keyword in ["order 1999", "scene 42", "org 7"] {
        let none = "'{}', '{}', NULL, NULL";
        explains.push(format!(
            "EXECUTE list_matching_orders ({none}, '%{keyword}%', '{keyword}', '{keyword}%', 50, 0)"
        ));
        explains.push(format!(
            "EXECUTE count_matching_orders ({none}, '%{keyword}%')"
        ));
    }
    for (explain, plan) in plans_of(&pool, &statements, &explains).await {
        assert!(
            !seq_scans(&plan, "orders"),
            "{explain} scans every order: {plan:#}"
        );
    }
}

async fn patch(router: &axum::Router, id: &str, body: Value) -> TestResponse {
    send(
        router,
        Method::PATCH,
        &format!("/api/v1/orders/{id}"),
        Some(&admin_token()),
        &[],
        body.to_string(),
    )
    .await
}

/// `PATCH /api/v1/orders/{id}` changes the descriptive fields in any status, with the target
/// when given, and refuses the status, the scene, the organization and a taken name.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn an_admin_edits_an_orders_name_priority_deadline_and_metadata(pool: PgPool) {
    let (organization, scene) = organization_and_scene(&pool, "Acme", "Kitchen").await;
    let router = router(pool.clone());
    let mut body = order_body(organization, scene, "First");
    body["deadline"] = json!("2026-12-31T00:00:00Z");
    let first = create(&router, body, &[]).await;
    let id = first.body["id"].as_str().unwrap().to_owned();
    create(&router, order_body(organization, scene, "Second"), &[]).await;

    let edited = patch(
        &router,
        &id,
        json!({"name": " Renamed ", "priority": "urgent", "deadline": null,
               "metadata": {"line": 2}, "target_count": 12}),
    )
    .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
    for (field, value) in [
        ("name", json!("Renamed")),
        ("priority", json!("urgent")),
        ("deadline", Value::Null),
        ("metadata", json!({"line": 2})),
        ("target_count", json!(12)),
        ("status", json!("created")),
    ] {
        assert_eq!(edited.body[field], value, "{field}");
    }
    let only_name = patch(&router, &id, json!({"name": "Renamed again"})).await;
    assert_eq!(
        only_name.body["priority"],
        json!("urgent"),
        "absent fields stay"
    );
    assert_eq!(only_name.body["target_count"], json!(12));

    // A cancelled order's details still change; its target does not.
    sqlx::query("UPDATE orders SET status = 'cancelled' WHERE id = $1")
        .bind(id.parse::<i64>().unwrap())
        .execute(&pool)
        .await
        .unwrap();
    let renamed = patch(&router, &id, json!({"name": "Archived"})).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    let refused = patch(
        &router,
        &id,
        json!({"name": "Not applied", "target_count": 20}),
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    let view = get(
        &router,
        &format!("/api/v1/orders/{id}"),
        Some(&admin_token()),
    )
    .await;
    assert_eq!(
        view.body["name"],
        json!("Archived"),
        "a refused call changes nothing"
    );

    for (body, status, code) in [
        (
            json!({"name": "Second"}),
            StatusCode::CONFLICT,
            "order_name_taken",
        ),
        (
            json!({"status": "paused"}),
            StatusCode::BAD_REQUEST,
            "status_not_patchable",
        ),
        (
            json!({"scene_id": "9"}),
            StatusCode::BAD_REQUEST,
            "immutable_field",
        ),
        (
            json!({"organization_id": 9}),
            StatusCode::BAD_REQUEST,
            "immutable_field",
        ),
        (
            json!({"name": "  "}),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            json!({"priority": "asap"}),
            StatusCode::BAD_REQUEST,
            "invalid_request_body",
        ),
        (
            json!({"metadata": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid_request_body",
        ),
        (json!({}), StatusCode::BAD_REQUEST, "nothing_to_update"),
    ] {
        let answer = patch(&router, &id, body.clone()).await;
        assert_eq!(
            (answer.status, answer.body["code"].clone()),
            (status, json!(code)),
            "{body}"
        );
    }
}
