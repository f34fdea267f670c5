//! SPEC §7 "Retention" and growth: on a recorder history of 300 000 commands (most delivered,
//! a few in motion), the statements the notification paths run every minute or on every
//! message — leasing for the relay and for the inline publish, the backlog figures, an order's
//! notifications, the consumer's per-device gate — use indexes under the generic plan a
//! prepared statement settles on, never a scan of the whole history.

use keystone_store::{deliveries, notifications, outbox};
use serde_json::Value;
use sqlx::PgPool;

/// Every plan node of `plan` (EXPLAIN's JSON) as `(node type, relation)`.
fn nodes(plan: &Value, out: &mut Vec<(String, String)>) {
    let node_type = plan["Node Type"].as_str().unwrap_or_default().to_owned();
    let relation = plan["Relation Name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    out.push((node_type, relation));
    for child in plan["Plans"].as_array().into_iter().flatten() {
        nodes(child, out);
    }
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn notification_statements_use_indexes_on_a_large_history(pool: PgPool) {
    let first_order: i64 = sqlx::query_scalar(
        "WITH org AS (INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme') RETURNING id), \
              scene AS (INSERT INTO scenes (name, factory_id) VALUES ('厨房', 1) RETURNING id), \
              made AS (INSERT INTO orders (organization_id, scene_id, name, target_count) \
                       SELECT org.id, scene.id, 'History ' || g, 1 \
                       FROM org, scene, generate_series(1, 1000) g RETURNING id) \
         SELECT min(id) FROM made",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    // 300 000 commands of 3 000 devices over 1 000 orders; all published and delivered but
    // the last 300.
    sqlx::query(
        "INSERT INTO recorder_outbox (notification_id, action, device_id, task_id, batch_id, \
                                      order_id, published_at, publish_seq, settled_at) \
         SELECT 'order:' || (g % 1000) || ':task:task_' || g || ':clear', 'clear', \
                'axon-' || (g % 3000), 'task_' || g, 'batch_' || (g % 1000), $1 + g % 1000, \
                CASE WHEN g <= 299700 THEN now() END, CASE WHEN g <= 299700 THEN g END, \
                CASE WHEN g <= 299700 THEN now() END \
         FROM generate_series(1, 300000) g",
    )
    .bind(first_order)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO recorder_deliveries (notification_id, device_id, status, delivered_at) \
         SELECT notification_id, device_id, 'delivered', now() FROM recorder_outbox \
         WHERE published_at IS NOT NULL",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE recorder_outbox")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("ANALYZE recorder_deliveries")
        .execute(&pool)
        .await
        .unwrap();

    let statements: Vec<(&str, &str)> = outbox::PLANNED_STATEMENTS
        .into_iter()
        .chain(notifications::PLANNED_STATEMENTS)
        .chain(deliveries::PLANNED_STATEMENTS)
        .collect();
    assert_eq!(statements.len(), 5);
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await
        .unwrap();
    for (name, sql) in statements {
        let (types, arguments) = match name {
            "lease_waiting" => ("(bigint, bigint)", "(100, 60000)"),
            "lease_waiting_by_ids" => ("(bigint[], bigint)", "(ARRAY[299950, 299951], 60000)"),
            "backlog" => ("", ""),
            "order_notifications" => ("(bigint)", "(7)"),
            "delivery_gate" => ("(text)", "('order:7:task:task_299807:clear')"),
            other => panic!("no arguments for {other}"),
        };
        // Statement texts are the code's own constants; the test only wraps them.
        let prepare = format!("PREPARE plan_{name} {types} AS {sql}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(prepare))
            .execute(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let explain = format!("EXPLAIN (FORMAT JSON) EXECUTE plan_{name} {arguments}");
        let plan: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
            .fetch_one(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut all = Vec::new();
        nodes(&plan[0]["Plan"], &mut all);
        let scans: Vec<&(String, String)> = all
            .iter()
            .filter(|(node, relation)| {
                node == "Seq Scan"
                    && matches!(relation.as_str(), "recorder_outbox" | "recorder_deliveries")
            })
            .collect();
        assert!(scans.is_empty(), "{name} scans the history: {plan:#}");
    }
}
