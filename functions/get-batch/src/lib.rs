//! `GET /api/v1/batches/{id}`: a batch's summary with per-status and per-group
//! counts, for an admin or the collector of its workstation. The read lives in
//! `keystone_store::progress`.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_domain::DomainError;
use keystone_http::extract::BatchKind;
use keystone_http::openapi::{Access, BatchIdPath, ErrorResponses};
use keystone_http::{ApiError, AppState, PathId, StaffAuth};
use keystone_store::progress::{BatchProgress, batch_progress};
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/batches/{id}";

/// The function's routes and their API document, without state or fallbacks, for merging
/// into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(batch))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.13's rules for batches: an admin, or the collector of the batch's workstation.
    Errors = ErrorResponses::new(Access::Staff)
        .batch_id()
        .rules([DomainError::BatchNotFound, DomainError::BatchNotOnWorkstation])
);

#[utoipa::path(
    get,
    path = ROUTE,
    tag = "batches",
    operation_id = "get_batch",
    summary = "A batch's progress",
    description = "The batch summary with per-status task counts and its task groups. Admins \
        see any batch; a data collector only the batches of their workstation.",
    security(("bearer" = [])),
    params(BatchIdPath),
    responses(
        (status = 200, description = "The batch.", body = BatchProgress, example = json!({
            "id": "1",
            "batch_id": "batch_20261124_093000_000_01_7a8b3d43",
            "order_id": "1",
            "workstation_id": "1",
            "organization_id": "1",
            "name": "Gloves batch",
            "notes": "external device demo",
            "metadata": null,
            "status": "active",
            "task_count": 30,
            "completed_count": 2,
            "created_at": "2026-11-24T09:30:00.000000Z",
            "status_counts": {
                "cancelled": 0,
                "completed": 2,
                "failed": 0,
                "in_progress": 0,
                "pending": 28,
                "ready": 0,
                "uploading": 0
            },
            "task_groups": [
                {
                    "sop_id": "1",
                    "subscene_id": "1",
                    "sop_slug": "move_bottle",
                    "scene_name": "厨房",
                    "subscene_name": "台面",
                    "task_count": 20,
                    "status_counts": {
                        "cancelled": 0,
                        "completed": 2,
                        "failed": 0,
                        "in_progress": 0,
                        "pending": 18,
                        "ready": 0,
                        "uploading": 0
                    }
                },
                {
                    "sop_id": "2",
                    "subscene_id": "2",
                    "sop_slug": "wipe_sink",
                    "scene_name": "厨房",
                    "subscene_name": "水槽",
                    "task_count": 10,
                    "status_counts": {
                        "cancelled": 0,
                        "completed": 0,
                        "failed": 0,
                        "in_progress": 0,
                        "pending": 10,
                        "ready": 0,
                        "uploading": 0
                    }
                }
            ]
        })),
        Errors,
    ),
)]
async fn batch(
    State(state): State<AppState>,
    staff: StaffAuth,
    PathId { id, .. }: PathId<BatchKind>,
) -> Result<JsonResponse<BatchProgress>, ApiError> {
    let collector = match &staff {
        StaffAuth::Collector(session) => Some(session),
        StaffAuth::Admin { .. } => None,
    };
    Ok(JsonResponse(
        batch_progress(&state.db, id, collector).await?,
    ))
}
