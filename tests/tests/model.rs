//! Property test (SPEC §5.1–§5.4, §5.10–§5.12): random sequences of complete / adjust / create /
//! finalize / reopen / cancel-batch / pause / resume / cancel-order / re-target run against the
//! real functions and against a small in-memory model of the rules; after
//! every step the status codes and figures agree, and at the end so do the rows.
//!
//! Cases are drawn from a fixed seed (`MODEL_SEED`, `MODEL_CASES` override), so a failure
//! replays; the failing sequence is printed.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use keystone_tests::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};
use sqlx::PgPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Pending,
    Completed,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchState {
    Pending,
    Active,
    Completed,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OrderState {
    Created,
    InProgress,
    Paused,
    Completed,
    Cancelled,
}

#[derive(Debug, Clone)]
enum Op {
    Complete {
        batch: usize,
        group: usize,
        quantity: i64,
    },
    Adjust {
        batch: usize,
        group: usize,
        quantity: i64,
    },
    Create {
        quantity: i64,
    },
    Finalize,
    /// As the admin (no 15-minute window).
    Reopen {
        batch: usize,
        group: usize,
        quantity: i64,
    },
    CancelBatch {
        batch: usize,
    },
    Pause,
    Resume,
    CancelOrder,
    Retarget {
        target: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    // Weighted so that sequences mostly build and undo work before something ends the order.
    prop_oneof![
        10 => (0..2_usize, 0..2_usize, 1..4_i64)
            .prop_map(|(batch, group, quantity)| Op::Complete { batch, group, quantity }),
        3 => (0..3_usize, 0..2_usize, 0..7_i64)
            .prop_map(|(batch, group, quantity)| Op::Adjust { batch, group, quantity }),
        2 => (1..5_i64).prop_map(|quantity| Op::Create { quantity }),
        1 => Just(Op::Finalize),
        5 => (0..2_usize, 0..2_usize, 1..3_i64)
            .prop_map(|(batch, group, quantity)| Op::Reopen { batch, group, quantity }),
        1 => (0..3_usize).prop_map(|batch| Op::CancelBatch { batch }),
        1 => Just(Op::Pause),
        1 => Just(Op::Resume),
        1 => Just(Op::CancelOrder),
        1 => (0..24_i64).prop_map(|target| Op::Retarget { target }),
    ]
}

/// The rules of SPEC §5.1–§5.4 over counts: live tasks per (batch, group, status).
#[derive(Debug, Clone)]
struct Model {
    target: i64,
    order: OrderState,
    batches: Vec<BatchState>,
    tasks: BTreeMap<(usize, usize, Status), i64>,
}

impl Model {
    fn count(&self, batch: usize, group: Option<usize>, status: Option<Status>) -> i64 {
        self.tasks
            .iter()
            .filter(|((b, g, s), _)| {
                *b == batch && group.is_none_or(|x| x == *g) && status.is_none_or(|x| x == *s)
            })
            .map(|(_, n)| n)
            .sum()
    }

    fn order_tasks(&self, status: Option<Status>) -> i64 {
        (0..self.batches.len())
            .map(|b| self.count(b, None, status))
            .sum()
    }

    fn add(&mut self, batch: usize, group: usize, status: Status, n: i64) {
        *self.tasks.entry((batch, group, status)).or_insert(0) += n;
    }

    fn is_open(&self, batch: usize) -> bool {
        matches!(
            self.batches[batch],
            BatchState::Pending | BatchState::Active
        )
    }

    /// Batch advancement after completions (`completed`) or edits.
    fn advance_batch(&mut self, batch: usize, completed: bool) {
        let live = self.count(batch, None, None);
        let done = live > 0 && self.count(batch, None, Some(Status::Pending)) == 0;
        self.batches[batch] = match (self.batches[batch], done) {
            (BatchState::Pending, true) | (BatchState::Active, true) => BatchState::Completed,
            (BatchState::Pending, false) if completed => BatchState::Active,
            (state, _) => state,
        };
    }

    /// Cancels the runnable tasks of an open batch and moves it to `to`.
    fn close_batch(&mut self, batch: usize, to: BatchState) {
        for group in 0..2 {
            let pending = self.count(batch, Some(group), Some(Status::Pending));
            self.add(batch, group, Status::Pending, -pending);
            self.add(batch, group, Status::Cancelled, pending);
        }
        self.batches[batch] = to;
    }

    fn close_open_batches(&mut self, to: BatchState) {
        for batch in 0..self.batches.len() {
            if self.is_open(batch) {
                self.close_batch(batch, to);
            }
        }
    }

    fn finalize(&mut self) {
        self.order = OrderState::Completed;
        self.close_open_batches(BatchState::Completed);
    }

    /// Where an order that runs again stands: started once it has a completed task.
    fn running_state(&self) -> OrderState {
        if self.order_tasks(Some(Status::Completed)) > 0 {
            OrderState::InProgress
        } else {
            OrderState::Created
        }
    }

    fn is_closed(&self) -> bool {
        matches!(self.order, OrderState::Completed | OrderState::Cancelled)
    }

    fn apply(&mut self, op: &Op) -> u16 {
        match *op {
            Op::Complete {
                batch,
                group,
                quantity,
            } => {
                if quantity < 1 {
                    return 400;
                }
                if batch >= self.batches.len() {
                    return 404;
                }
                if self.order == OrderState::Cancelled || !self.is_open(batch) {
                    return 409;
                }
                if quantity > self.count(batch, None, None) {
                    return 400;
                }
                if self.count(batch, Some(group), None) == 0 {
                    return 404;
                }
                if self.count(batch, Some(group), Some(Status::Pending)) < quantity {
                    return 400;
                }
                self.add(batch, group, Status::Pending, -quantity);
                self.add(batch, group, Status::Completed, quantity);
                self.advance_batch(batch, true);
                let completed = self.order_tasks(Some(Status::Completed));
                match self.order {
                    OrderState::Created | OrderState::InProgress if completed >= self.target => {
                        self.finalize();
                    }
                    OrderState::Created if completed > 0 => self.order = OrderState::InProgress,
                    _ => {}
                }
                200
            }
            Op::Adjust {
                batch,
                group,
                quantity,
            } => {
                if batch >= self.batches.len() {
                    return 404;
                }
                if !self.is_open(batch) {
                    return 409;
                }
                let live = self.count(batch, Some(group), None);
                let locked = live - self.count(batch, Some(group), Some(Status::Pending));
                if quantity < locked {
                    return 400;
                }
                let delta = quantity - live;
                if delta > 0 {
                    if self.is_closed() {
                        return 409;
                    }
                    let batch_total = self.count(batch, None, None);
                    let others = self.order_tasks(None) - batch_total;
                    if others + batch_total + delta > self.target {
                        return 400;
                    }
                }
                self.add(batch, group, Status::Pending, delta);
                self.advance_batch(batch, false);
                200
            }
            Op::Create { quantity } => {
                if self.is_closed() {
                    return 409;
                }
                if quantity > self.target - self.order_tasks(None) {
                    return 400;
                }
                self.batches.push(BatchState::Pending);
                let batch = self.batches.len() - 1;
                self.add(batch, 0, Status::Pending, quantity);
                201
            }
            Op::Finalize => match self.order {
                OrderState::Cancelled => 409,
                OrderState::Completed => 200,
                _ => {
                    self.finalize();
                    200
                }
            },
            Op::Reopen {
                batch,
                group,
                quantity,
            } => {
                if quantity < 1 {
                    return 400;
                }
                if batch >= self.batches.len() {
                    return 404;
                }
                if self.is_closed() || self.batches[batch] == BatchState::Cancelled {
                    return 409;
                }
                if self.count(batch, Some(group), None) == 0 {
                    return 404;
                }
                if self.count(batch, Some(group), Some(Status::Completed)) < quantity {
                    return 400;
                }
                self.add(batch, group, Status::Completed, -quantity);
                self.add(batch, group, Status::Pending, quantity);
                if self.batches[batch] == BatchState::Completed {
                    self.batches[batch] = BatchState::Active;
                }
                if self.order == OrderState::InProgress {
                    self.order = self.running_state();
                }
                200
            }
            Op::CancelBatch { batch } => {
                if batch >= self.batches.len() {
                    return 404;
                }
                match self.batches[batch] {
                    BatchState::Cancelled => 200,
                    BatchState::Completed => 409,
                    BatchState::Pending | BatchState::Active => {
                        self.close_batch(batch, BatchState::Cancelled);
                        200
                    }
                }
            }
            Op::Pause => match self.order {
                OrderState::Created | OrderState::InProgress => {
                    self.order = OrderState::Paused;
                    200
                }
                OrderState::Paused => 200,
                OrderState::Completed | OrderState::Cancelled => 409,
            },
            Op::Resume => match self.order {
                OrderState::Paused => {
                    if self.order_tasks(Some(Status::Completed)) >= self.target {
                        self.finalize();
                    } else {
                        self.order = self.running_state();
                    }
                    200
                }
                OrderState::Created | OrderState::InProgress => 200,
                OrderState::Completed | OrderState::Cancelled => 409,
            },
            Op::CancelOrder => match self.order {
                OrderState::Cancelled => 200,
                OrderState::Completed => 409,
                _ => {
                    self.close_open_batches(BatchState::Cancelled);
                    self.order = OrderState::Cancelled;
                    200
                }
            },
            Op::Retarget { target } => {
                if target < 1 {
                    return 400;
                }
                if self.order == OrderState::Cancelled {
                    return 409;
                }
                let completed = self.order_tasks(Some(Status::Completed));
                if completed > target {
                    return 400;
                }
                if target == self.target {
                    return 200;
                }
                let old = std::mem::replace(&mut self.target, target);
                match self.order {
                    OrderState::Created | OrderState::InProgress if completed >= target => {
                        self.finalize();
                    }
                    OrderState::Completed if target > old && completed < target => {
                        self.order = self.running_state();
                    }
                    _ => {}
                }
                200
            }
        }
    }

    fn rows(&self) -> Vec<String> {
        let mut rows = vec![format!("order {:?}", self.order).to_lowercase()];
        for (b, state) in self.batches.iter().enumerate() {
            rows.push(format!("batch {b} {state:?}").to_lowercase());
        }
        for ((b, g, s), n) in &self.tasks {
            if *n > 0 {
                rows.push(format!("tasks {b} {g} {s:?} {n}").to_lowercase());
            }
        }
        rows.sort();
        rows
    }
}

/// The same rows read from the database.
async fn database_rows(pool: &PgPool, s: &Scenario, batches: &[i64]) -> Vec<String> {
    let mut rows = vec![format!(
        "order {}",
        order_status(pool, s.order_id).await.replace('_', "")
    )];
    for (b, id) in batches.iter().enumerate() {
        rows.push(format!("batch {b} {}", batch_status(pool, *id).await));
        let counts: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT sop_id, status, count(*) FROM tasks WHERE batch_id = $1 AND deleted_at IS NULL \
             GROUP BY sop_id, status",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .unwrap();
        for (sop, status, n) in counts {
            let group = usize::from(sop == s.group_b.sop_id);
            rows.push(format!("tasks {b} {group} {status} {n}"));
        }
    }
    rows.sort();
    rows
}

async fn run_case(pool: &PgPool, target: i64, a0: i64, b0: i64, ops: &[Op]) -> Result<(), String> {
    let s = Scenario::new(pool, i32::try_from(target).unwrap(), a0, b0).await;
    let router = router(pool.clone());
    let groups = [s.group_a, s.group_b];
    let mut model = Model {
        target,
        order: OrderState::Created,
        batches: vec![BatchState::Pending],
        tasks: BTreeMap::new(),
    };
    model.add(0, 0, Status::Pending, a0);
    model.add(0, 1, Status::Pending, b0);
    let mut batches = vec![s.batch_id];
    for (step, op) in ops.iter().enumerate() {
        let id = |b: usize| batches.get(b).copied().unwrap_or(i64::from(i32::MAX));
        let response = match *op {
            Op::Complete {
                batch,
                group,
                quantity,
            } => {
                complete(
                    &router,
                    &s.seat.token,
                    id(batch),
                    groups[group].body(quantity),
                    &[],
                )
                .await
            }
            Op::Adjust {
                batch,
                group,
                quantity,
            } => {
                admin_post(
                    &router,
                    &adjust_path(id(batch)),
                    json!({"task_groups": [groups[group].entry(quantity)]}),
                )
                .await
            }
            Op::Create { quantity } => {
                admin_post(
                    &router,
                    "/api/v1/batches",
                    json!({"order_id": s.order_id, "workstation_id": s.seat.workstation_id,
                           "task_groups": [groups[0].entry(quantity)]}),
                )
                .await
            }
            Op::Finalize => {
                send(
                    &router,
                    Method::POST,
                    &finalize_path(s.order_id),
                    Some(&admin_token()),
                    &[],
                    "",
                )
                .await
            }
            Op::Reopen {
                batch,
                group,
                quantity,
            } => {
                admin_post(
                    &router,
                    &reopen_path(id(batch)),
                    groups[group].body(quantity),
                )
                .await
            }
            Op::CancelBatch { batch } => {
                admin_post(
                    &router,
                    &format!("/api/v1/batches/{}/cancel", id(batch)),
                    json!({}),
                )
                .await
            }
            Op::Pause => {
                admin_post(&router, &order_control_path(s.order_id, "pause"), json!({})).await
            }
            Op::Resume => {
                admin_post(
                    &router,
                    &order_control_path(s.order_id, "resume"),
                    json!({}),
                )
                .await
            }
            Op::CancelOrder => {
                admin_post(
                    &router,
                    &order_control_path(s.order_id, "cancel"),
                    json!({}),
                )
                .await
            }
            Op::Retarget { target } => retarget(&router, s.order_id, json!(target)).await,
        };
        let expected = model.apply(op);
        if response.status.as_u16() != expected {
            return Err(format!(
                "step {step} {op:?}: the functions answered {} {}, the model {expected}",
                response.status, response.text
            ));
        }
        if response.status == StatusCode::CREATED {
            let created: i64 = response.body["batch"]["id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            batches.push(created);
        }
        let status = order_status(pool, s.order_id).await.replace('_', "");
        let modelled = format!("{:?}", model.order).to_lowercase();
        if status != modelled {
            return Err(format!(
                "step {step} {op:?}: order is {status}, the model says {modelled}; answer {}",
                response.text
            ));
        }
        if let (Op::Complete { .. } | Op::Reopen { .. }, StatusCode::OK) = (op, response.status) {
            let order: &Value = &response.body["order"];
            let completed = model.order_tasks(Some(Status::Completed));
            if order["completed_count"] != json!(completed) {
                return Err(format!(
                    "step {step} {op:?}: order figures {order}, model {completed}"
                ));
            }
        }
    }
    let target: i64 = sqlx::query_scalar("SELECT target_count::bigint FROM orders WHERE id = $1")
        .bind(s.order_id)
        .fetch_one(pool)
        .await
        .unwrap();
    if target != model.target {
        return Err(format!("target {target}, model {}", model.target));
    }
    let drift = counter_drift(pool).await;
    if !drift.is_empty() {
        return Err(format!("counters drifted: {drift:?}"));
    }
    let (actual, expected) = (database_rows(pool, &s, &batches).await, model.rows());
    if actual != expected {
        return Err(format!(
            "final rows differ:\n  database {actual:?}\n  model    {expected:?}"
        ));
    }
    Ok(())
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn random_dispatch_and_completion_sequences_follow_the_spec_model(pool: PgPool) {
    let cases: u32 = std::env::var("MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("MODEL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_124);
    let mut seed_bytes = [0_u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = (
        6..20_i64,
        1..6_i64,
        1..5_i64,
        prop::collection::vec(op(), 1..24),
    );
    for case in 0..cases {
        let (target, a0, b0, ops) = strategy.new_tree(&mut runner).unwrap().current();
        if let Err(failure) = run_case(&pool, target, a0, b0, &ops).await {
            panic!(
                "case {case} (MODEL_SEED={seed}): target {target}, group A {a0}, group B {b0}\n  \
                 ops {ops:#?}\n{failure}"
            );
        }
    }
}
