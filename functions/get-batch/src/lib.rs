//! `GET /api/v1/batches/{id}` (SPEC §5.13): a batch's summary with per-status and per-group
//! counts, for an admin or the collector of its workstation. The read lives in
//! `keystone_store::progress`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use keystone_domain::DomainError;
use keystone_http::extract::BatchKind;
use keystone_http::{ApiError, AppState, PathId, StaffAuth};
use keystone_store::progress::{BatchProgress, batch_progress};

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/batches/{id}";

/// The function's routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> Router<AppState> {
    Router::new().route(ROUTE, get(batch))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes()).with_state(state)
}

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
