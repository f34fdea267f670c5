//! `GET /api/v1/batches/{id}` (SPEC §5.13): a batch's summary with per-status and per-group
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
    Errors = ErrorResponses {
        access: Access::Staff,
        path_id: Some(DomainError::InvalidBatchId),
        json_body: false,
        rules: vec![DomainError::BatchNotFound, DomainError::BatchNotOnWorkstation],
    }
);

#[utoipa::path(
    get,
    path = ROUTE,
    tag = "batches",
    operation_id = "get_batch",
    summary = "A batch's progress",
    description = "The batch summary with per-status task counts and its task groups (SPEC \
        §5.13). Admins see any batch; a data collector only the batches of their workstation.",
    security(("bearer" = [])),
    params(BatchIdPath),
    responses(
        (status = 200, description = "The batch.", body = BatchProgress),
        Errors,
    ),
)]
async fn batch(
    State(state): State<AppState>,
    staff: StaffAuth,
    PathId { id, .. }: PathId<BatchKind>,
) -> Result<JsonResponse<BatchProgress>, ApiError> {
    let (view, seated) = batch_progress(&state.db, id).await?;
    match staff {
        StaffAuth::Collector { collector_id } if seated != Some(collector_id) => {
            Err(DomainError::BatchNotOnWorkstation.into())
        }
        _ => Ok(JsonResponse(view)),
    }
}
