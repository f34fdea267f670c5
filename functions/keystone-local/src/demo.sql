-- Demo data for the local stack (SPEC §9): one order with two batches, an external-device
-- workstation (DC001, SynGloves) and an Axon one (DC002, AxonArm). Both collectors' password is
-- keystone-demo (bcrypt, as Keystone stores it). Loaded once, in one
-- transaction, only when the 'demo' organization does not exist yet.
WITH org AS (
    INSERT INTO organizations (name, slug) VALUES ('Demo Robotics', 'demo') RETURNING id
), scene AS (
    INSERT INTO scenes (name, factory_id) VALUES ('厨房', 1) RETURNING id, name
), counter AS (
    INSERT INTO subscenes (scene_id, name, initial_scene_layout)
    SELECT id, '台面', 'bottle on the left' FROM scene RETURNING id, scene_id, name, initial_scene_layout
), sink AS (
    INSERT INTO subscenes (scene_id, name) SELECT id, '水槽' FROM scene
    RETURNING id, scene_id, name, initial_scene_layout
), move_bottle AS (
    INSERT INTO sops (slug, version, description)
    VALUES ('move_bottle', 'v1', 'Move the bottle from the counter to the shelf') RETURNING id
), wipe AS (
    INSERT INTO sops (slug, version, description)
    VALUES ('wipe_sink', 'v1', 'Wipe the sink clean') RETURNING id
), gloves_type AS (
    INSERT INTO robot_types (name, model, capabilities)
    VALUES ('SynGloves', 'SG-2', '{"requires_axon": false}') RETURNING id
), axon_type AS (
    INSERT INTO robot_types (name, model, capabilities)
    VALUES ('AxonArm', 'AX-7', '{"requires_axon": true}') RETURNING id
), gloves AS (
    INSERT INTO robots (robot_type_id, device_id, factory_id)
    SELECT id, 'robot_dc86', 1 FROM gloves_type RETURNING id
), arm AS (
    INSERT INTO robots (robot_type_id, device_id, factory_id)
    SELECT id, 'axon-arm-01', 1 FROM axon_type RETURNING id
), spare_gloves AS (
    -- At no station: the README binds it to a new collector.
    INSERT INTO robots (robot_type_id, device_id, factory_id)
    SELECT id, 'robot_dc87', 1 FROM gloves_type RETURNING id
), zhang AS (
    INSERT INTO data_collectors (name, operator_id, password_hash, organization_id) -- password: keystone-demo
    SELECT '张三', 'DC001', '$2a$10$X9ILaK6lBn.2cEhGMXgjC.oWfDjIeLqTbvXlXmQy2VXymMezvB6Ua', org.id FROM org
    RETURNING id
), li AS (
    INSERT INTO data_collectors (name, operator_id, password_hash, organization_id) -- password: keystone-demo
    SELECT '李四', 'DC002', '$2a$10$X9ILaK6lBn.2cEhGMXgjC.oWfDjIeLqTbvXlXmQy2VXymMezvB6Ua', org.id FROM org
    RETURNING id
), ws_gloves AS (
    INSERT INTO workstations (robot_id, data_collector_id, organization_id, factory_id, name, status)
    SELECT gloves.id, zhang.id, org.id, 1, 'WS-01 SynGloves', 'inactive' FROM gloves, zhang, org
    RETURNING id, organization_id, factory_id
), ws_arm AS (
    INSERT INTO workstations (robot_id, data_collector_id, organization_id, factory_id, name, status)
    SELECT arm.id, li.id, org.id, 1, 'WS-02 AxonArm', 'active' FROM arm, li, org
    RETURNING id, organization_id, factory_id
), ord AS (
    INSERT INTO orders (organization_id, scene_id, name, target_count, priority)
    SELECT org.id, scene.id, 'Kitchen demo order', 40, 'high' FROM org, scene RETURNING id
), gloves_batch AS (
    INSERT INTO batches (batch_id, order_id, workstation_id, organization_id, name, notes)
    SELECT 'batch_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MISS_MS') || '_01_'
               || substr(md5(random()::text), 1, 8),
           ord.id, ws_gloves.id, ws_gloves.organization_id, 'Gloves batch', 'external device demo'
    FROM ord, ws_gloves RETURNING id, order_id, workstation_id, organization_id
), arm_batch AS (
    INSERT INTO batches (batch_id, order_id, workstation_id, organization_id, name, status, started_at)
    SELECT 'batch_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MISS_MS') || '_02_'
               || substr(md5(random()::text), 1, 8),
           ord.id, ws_arm.id, ws_arm.organization_id, 'Axon batch', 'active', now()
    FROM ord, ws_arm RETURNING id, order_id, workstation_id, organization_id
), plan (batch, sop, subscene, how_many, status) AS (
    SELECT 'gloves', 'move', 'counter', 20, 'pending'
    UNION ALL SELECT 'gloves', 'wipe', 'sink', 10, 'pending'
    UNION ALL SELECT 'arm', 'move', 'counter', 3, 'ready'
    UNION ALL SELECT 'arm', 'move', 'counter', 1, 'in_progress'
    UNION ALL SELECT 'arm', 'wipe', 'sink', 4, 'pending'
)
INSERT INTO tasks (task_id, batch_id, order_id, sop_id, subscene_id, scene_id, workstation_id,
                   scene_name, subscene_name, organization_id, factory_id, initial_scene_layout,
                   status, assigned_at)
SELECT 'task_' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MISS_MS') || '_'
           || lpad((row_number() OVER () % 100)::text, 2, '0') || '_'
           || substr(md5(random()::text), 1, 8),
       b.id, b.order_id, s.id, sub.id, sub.scene_id, b.workstation_id,
       scene.name, sub.name, b.organization_id, 1, sub.initial_scene_layout,
       plan.status, now() + g * interval '1 millisecond'
FROM plan
CROSS JOIN scene
CROSS JOIN LATERAL generate_series(1, plan.how_many) g
JOIN (SELECT 'gloves' AS label, * FROM gloves_batch UNION ALL SELECT 'arm', * FROM arm_batch) b
    ON b.label = plan.batch
JOIN (SELECT 'move' AS label, id FROM move_bottle UNION ALL SELECT 'wipe', id FROM wipe) s
    ON s.label = plan.sop
JOIN (SELECT 'counter' AS label, * FROM counter UNION ALL SELECT 'sink', * FROM sink) sub
    ON sub.label = plan.subscene;
