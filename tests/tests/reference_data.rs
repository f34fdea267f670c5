//! SPEC §5.16: the reference data the dispatch forms pick from — stations, SOPs, scenes,
//! robot types — through the API alone.

use axum::http::{Method, StatusCode};
use keystone_tests::*;
use serde_json::{Value, json};
use sqlx::PgPool;

async fn list(router: &axum::Router, path: &str) -> TestResponse {
    get(router, path, Some(&admin_token())).await
}

fn items(page: &TestResponse) -> &Vec<Value> {
    page.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", page.text))
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn stations_show_their_binding_workflow_and_open_batches(pool: PgPool) {
    // The scenario's seat (an external-device robot with a pending batch) and an Axon seat
    // with no batch.
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let axon = s.add_seat("DC900", None, Some("axon-9")).await;
    let router = router(pool.clone());

    let page = list(&router, "/api/v1/stations").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.body["total"], json!(2));
    let by_device = |device: &str| {
        items(&page)
            .iter()
            .find(|station| station["device_id"] == json!(device))
            .unwrap_or_else(|| panic!("{}", page.text))
            .clone()
    };
    let axon_station = by_device("axon-9");
    assert_eq!(axon_station["id"], json!(axon.workstation_id.to_string()));
    assert_eq!(axon_station["requires_axon"], json!(true));
    assert_eq!(axon_station["workflow"], json!("axon"));
    assert_eq!(axon_station["collector_operator_id"], json!("DC900"));
    assert_eq!(axon_station["collector_name"], json!("张三"));
    assert_eq!(axon_station["open_batch_count"], json!(0));
    assert_eq!(axon_station["robot_type"]["name"], json!("SynGloves"));
    let external = by_device("robot_dc86");
    assert_eq!(external["workflow"], json!("external_device"));
    assert_eq!(external["open_batch_count"], json!(1));
    assert_eq!(external["status"], json!("inactive"));
    assert_eq!(
        external["organization_id"],
        json!(s.organization_id.to_string())
    );

    // Filters.
    let one = |query: &str| {
        let router = router.clone();
        let query = query.to_owned();
        async move {
            let page = list(&router, &format!("/api/v1/stations{query}")).await;
            items(&page)
                .iter()
                .map(|station| station["device_id"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(one("?device_id=axon-9").await, ["axon-9"]);
    assert_eq!(one("?collector_operator_id=DC001").await, ["robot_dc86"]);
    assert_eq!(one("?keyword=dc900").await, ["axon-9"]);
    assert_eq!(one("?status=active,break").await, Vec::<String>::new());
    assert_eq!(one("?status=inactive").await.len(), 2);
    let robot_type: i64 =
        sqlx::query_scalar("SELECT robot_type_id FROM robots WHERE device_id = 'axon-9'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        one(&format!("?robot_type_id={robot_type}")).await,
        ["axon-9"]
    );
    assert_eq!(one("?organization_id=999999").await, Vec::<String>::new());
    let refused = list(&router, "/api/v1/stations?status=asleep").await;
    refused.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid status: unknown value \"asleep\"",
    );
    assert_eq!(refused.body["parameter"], json!("status"));
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn sops_scenes_and_robot_types_fill_the_batch_form(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    s.add_seat("DC900", None, Some("axon-9")).await;
    sqlx::query("INSERT INTO scenes (name, factory_id) VALUES ('Garage', 2)")
        .execute(&pool)
        .await
        .unwrap();
    let router = router(pool.clone());

    let sops = list(&router, "/api/v1/sops").await;
    assert_eq!(sops.status, StatusCode::OK, "{}", sops.text);
    let slugs: Vec<&str> = items(&sops)
        .iter()
        .map(|sop| sop["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["move_bottle", "wipe_table"]);
    assert_eq!(items(&sops)[0]["id"], json!(s.group_a.sop_id.to_string()));
    assert_eq!(items(&sops)[0]["version"], json!("v1"));
    let wipe = list(&router, "/api/v1/sops?keyword=WIPE").await;
    assert_eq!(items(&wipe).len(), 1);

    let scenes = list(&router, "/api/v1/scenes?factory_id=1").await;
    assert_eq!(scenes.body["total"], json!(1), "{}", scenes.text);
    let kitchen = &items(&scenes)[0];
    assert_eq!(kitchen["id"], json!(s.scene_id.to_string()));
    assert_eq!(kitchen["name"], json!("厨房"));
    assert_eq!(
        kitchen["subscenes"],
        json!([{"id": s.group_a.subscene_id.to_string(), "name": "台面"},
               {"id": s.group_b.subscene_id.to_string(), "name": "水槽"}])
    );
    let garage = list(&router, "/api/v1/scenes?keyword=gar").await;
    assert_eq!(items(&garage)[0]["subscenes"], json!([]));
    assert_eq!(
        list(&router, "/api/v1/scenes").await.body["total"],
        json!(2)
    );

    let types = list(&router, "/api/v1/robot-types").await;
    assert_eq!(types.status, StatusCode::OK, "{}", types.text);
    let workflows: Vec<(&Value, &Value)> = items(&types)
        .iter()
        .map(|t| (&t["workflow"], &t["requires_axon"]))
        .collect();
    assert!(
        workflows.contains(&(&json!("axon"), &json!(true))),
        "{}",
        types.text
    );
    assert!(
        workflows.contains(&(&json!("external_device"), &json!(false))),
        "{}",
        types.text
    );
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn reference_lists_are_for_admins_and_refuse_bad_pages(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    for path in [
        "/api/v1/stations",
        "/api/v1/sops",
        "/api/v1/scenes",
        "/api/v1/robot-types",
    ] {
        send(&router, Method::GET, path, None, &[], "")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "authentication required");
        send(&router, Method::GET, path, Some(&s.seat.token), &[], "")
            .await
            .assert_error(StatusCode::FORBIDDEN, "admin role required");
        for query in ["?limit=101", "?offset=-1", "?limit=x"] {
            let refused = list(&router, &format!("{path}{query}")).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{path}{query}");
            assert_eq!(refused.body["code"], json!("invalid_list_parameter"));
        }
        let paged = list(&router, &format!("{path}?limit=1")).await;
        assert_eq!(paged.body["limit"], json!(1), "{path}");
        assert!(items(&paged).len() <= 1);
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_station_list_runs_the_same_statements_for_few_and_many_stations(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 1, 0).await;
    let router = router(pool.clone());
    let few = statements_run_by(&pool, list(&router, "/api/v1/stations"))
        .await
        .0;
    for i in 0..60 {
        s.add_seat(&format!("DC{}", 500 + i), None, Some(&format!("axon-{i}")))
            .await;
    }
    let (many, page) = statements_run_by(&pool, list(&router, "/api/v1/stations")).await;
    assert_eq!(page.body["total"], json!(61));
    assert_eq!(items(&page).len(), 50);
    assert_eq!(few, many);
}

/// Every station filter uses an index on 20 000 stations: no statement of a filtered list reads
/// the whole workstations table (each call is planned for its own values).
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn every_station_filter_uses_an_index(pool: PgPool) {
    let s = Scenario::new(&pool, 10, 0, 0).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO organizations (name, slug) \
             SELECT 'Org ' || g, 'org-' || g FROM generate_series(1, 19) g; \
         INSERT INTO robot_types (name, capabilities) \
             SELECT 'Type ' || g, '{{\"requires_axon\": false}}' FROM generate_series(1, 50) g; \
         INSERT INTO robots (robot_type_id, device_id, factory_id) \
             SELECT (SELECT min(id) FROM robot_types) + g % 50, 'plan-' || g, 1 \
             FROM generate_series(1, 20000) g; \
         INSERT INTO data_collectors (name, operator_id) \
             SELECT 'Plan', 'P' || g FROM generate_series(1, 20000) g; \
         INSERT INTO workstations (robot_id, data_collector_id, organization_id, factory_id, name, status) \
             SELECT r.id, c.id, {org} + (r.id % 20), 1 + r.id % 40, 'station ' || md5(r.device_id), \
                    CASE WHEN r.id % 2000 = 0 THEN 'break' ELSE 'inactive' END \
             FROM robots r JOIN data_collectors c ON 'P' || substr(r.device_id, 6) = c.operator_id; \
         ANALYZE workstations; ANALYZE robots; ANALYZE data_collectors; ANALYZE robot_types; \
         ANALYZE batches;",
        org = s.organization_id,
    )))
    .execute(&pool)
    .await
    .unwrap();
    let robot_type: i64 = sqlx::query_scalar("SELECT min(id) + 7 FROM robot_types")
        .fetch_one(&pool)
        .await
        .unwrap();
    // Names as varied as real ones: a fragment of one station's name matches that station.
    let keyword: String = sqlx::query_scalar("SELECT substr(md5('plan-4321'), 9, 10)")
        .fetch_one(&pool)
        .await
        .unwrap();
    let filters = "text[], bigint, bigint, bigint, text, text, text";
    let statements: Vec<(&str, String, &str)> = keystone_store::reference::PLANNED_STATEMENTS
        .iter()
        .map(|(name, sql)| {
            let types = match *name {
                "list_stations" => format!("({filters}, bigint, bigint)"),
                _ => format!("({filters})"),
            };
            (*name, types, *sql)
        })
        .collect();
    let mut executions = Vec::new();
    for filter in [
        "ARRAY['break'], NULL, NULL, NULL, NULL, NULL, NULL".to_owned(),
        format!(
            "'{{}}', {}, NULL, NULL, NULL, NULL, NULL",
            s.organization_id + 3
        ),
        "'{}', NULL, 7, NULL, NULL, NULL, NULL".to_owned(),
        format!("'{{}}', NULL, NULL, {robot_type}, NULL, NULL, NULL"),
        "'{}', NULL, NULL, NULL, 'plan-77', NULL, NULL".to_owned(),
        "'{}', NULL, NULL, NULL, NULL, 'P77', NULL".to_owned(),
        format!("'{{}}', NULL, NULL, NULL, NULL, NULL, '%{keyword}%'"),
    ] {
        executions.push(format!("EXECUTE list_stations ({filter}, 50, 0)"));
        executions.push(format!("EXECUTE count_stations ({filter})"));
    }
    executions
        .push("EXECUTE list_stations ('{}', NULL, NULL, NULL, NULL, NULL, NULL, 50, 0)".to_owned());
    for (execution, plan) in plans_of(&pool, &statements, &executions).await {
        assert!(
            !seq_scans(&plan, "workstations"),
            "{execution} scans every station: {plan:#}"
        );
    }
}
