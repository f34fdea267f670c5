//! `GET /api/v1/me/batches`: everything the collector's mobile page needs in one
//! call, read in a fixed number of statements by `keystone_store::identity::my_batches`.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{ApiError, AppState, CollectorAuth};
use keystone_store::identity::MyBatchesResponse;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/me/batches";

/// The routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(my_batches))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.7's rules.
    Errors = ErrorResponses::new(Access::Collector)
);

#[utoipa::path(
    get,
    path = ROUTE,
    tag = "collector",
    operation_id = "my_batches",
    summary = "My open batches",
    description = "Everything the collector's phone shows in one call: the collector, their \
        workstation, and its pending and active batches (and those completed in the last 15 \
        minutes of an order still running, whose last completions can be undone), newest \
        first, each with its order's status, progress and task groups. Each group has its \
        handoff payload, its ready and in-progress counts, and how many completions the \
        collector may still undo (`reopenable_count`) until when (`reopenable_until`, when the \
        oldest of them leaves the 15-minute window); `server_time` is the server's clock, so \
        the undo button can count down whatever the phone's clock says.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The collector's workstation and open batches.", body = MyBatchesResponse, example = json!({
            "collector": {
                "id": "1",
                "operator_id": "DC001",
                "name": "张三"
            },
            "workstation": {
                "id": "1",
                "name": "WS-01 SynGloves",
                "status": "active",
                "robot_id": "1",
                "device_id": "robot_dc86",
                "robot_type": {
                    "id": "1",
                    "name": "SynGloves",
                    "model": "SG-2",
                    "capabilities": {
                        "requires_axon": false
                    }
                },
                "requires_axon": false,
                "workflow": "external_device"
            },
            "batches": [
                {
                    "id": "1",
                    "batch_id": "batch_20261124_093000_000_01_7a8b3d43",
                    "name": "Gloves batch",
                    "notes": "external device demo",
                    "status": "active",
                    "order_id": "1",
                    "order_name": "Kitchen demo order",
                    "order_status": "in_progress",
                    "created_at": "2026-11-24T09:30:00.000000Z",
                    "started_at": "2026-11-24T09:35:12.380720Z",
                    "task_count": 30,
                    "completed_count": 2,
                    "pending_count": 28,
                    "failed_count": 0,
                    "cancelled_count": 0,
                    "task_groups": [
                        {
                            "sop_id": "1",
                            "subscene_id": "1",
                            "sop_slug": "move_bottle",
                            "sop_version": "v1",
                            "scene_name": "厨房",
                            "subscene_name": "台面",
                            "task_count": 20,
                            "pending_count": 18,
                            "ready_count": 0,
                            "in_progress_count": 0,
                            "completed_count": 2,
                            "reopenable_count": 2,
                            "reopenable_until": "2026-11-24T09:50:12.380720Z",
                            "handoff_payload": "{\"sop_slug\":\"move_bottle\",\"sop_version\":\"v1\",\"scene_name\":\"厨房\",\"subscene_name\":\"台面\",\"collector_name\":\"张三\",\"collector_operator_id\":\"DC001\",\"device_id\":\"robot_dc86\",\"device_type\":\"SynGloves\"}"
                        },
                        {
                            "sop_id": "2",
                            "subscene_id": "2",
                            "sop_slug": "wipe_sink",
                            "sop_version": "v1",
                            "scene_name": "厨房",
                            "subscene_name": "水槽",
                            "task_count": 10,
                            "pending_count": 10,
                            "ready_count": 0,
                            "in_progress_count": 0,
                            "completed_count": 0,
                            "reopenable_count": 0,
                            "reopenable_until": null,
                            "handoff_payload": "{\"sop_slug\":\"wipe_sink\",\"sop_version\":\"v1\",\"scene_name\":\"厨房\",\"subscene_name\":\"水槽\",\"collector_name\":\"张三\",\"collector_operator_id\":\"DC001\",\"device_id\":\"robot_dc86\",\"device_type\":\"SynGloves\"}"
                        }
                    ]
                }
            ],
            "server_time": "2026-11-24T09:36:40.112233Z"
        })),
        Errors,
    ),
)]
async fn my_batches(
    State(state): State<AppState>,
    collector: CollectorAuth,
) -> Result<JsonResponse<MyBatchesResponse>, ApiError> {
    let response = keystone_store::identity::my_batches(&state.db, &collector.session).await?;
    Ok(JsonResponse(response))
}
