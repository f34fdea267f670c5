//! `GET /api/v1/auth/me`: who the token speaks for, with the collector's
//! workstation, robot and robot type read fresh from the database on every call.

use axum::extract::State;
use axum::{Json as JsonResponse, Router};
use keystone_auth::{AuthError, Principal, Role};
use keystone_domain::CollectorSession;
use keystone_domain::{Workflow, WorkstationStatus};
use keystone_http::openapi::{Access, ErrorResponses};
use keystone_http::{ApiError, AppState, Authenticated};
use keystone_store::identity::{RobotTypeView, collector_seat};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;

/// The API Gateway method and route this function serves.
pub const METHOD: &str = "GET";
pub const ROUTE: &str = "/api/v1/auth/me";

/// The routes, without state or fallbacks, for merging into the local stack.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(utoipa_axum::routes!(me))
}

/// The function's whole application, as `lambda_http` runs it.
pub fn app(state: AppState) -> Router {
    keystone_http::finish_router(routes().into()).with_state(state)
}

keystone_http::error_responses!(
    /// SPEC §5.5's rules: any known role.
    Errors = ErrorResponses::new(Access::Staff)
);

/// The 200 body: who the caller is; a data collector's also names their workstation, robot
/// and robot type, with `requires_axon` and `workflow`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeResponse {
    pub collector_id: Option<String>,
    pub operator_id: String,
    pub name: String,
    pub role: Role,
    pub workstation_id: Option<String>,
    /// The workstation's status (`break` on a break, `offline` after a logout); null without
    /// one.
    pub workstation_status: Option<WorkstationStatus>,
    pub robot_id: Option<String>,
    pub robot_type: Option<RobotTypeView>,
    /// Null for the admin.
    pub requires_axon: Option<bool>,
    /// Null for the admin.
    pub workflow: Option<Workflow>,
}

#[utoipa::path(
    get,
    path = ROUTE,
    tag = "auth",
    operation_id = "who_am_i",
    summary = "Who am I",
    description = "The caller, and for a data collector their workstation, robot and robot type, \
        read from the database on every call, with `requires_axon` and `workflow` so clients \
        need not derive them.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller.", body = MeResponse, example = json!({
            "collector_id": "1",
            "operator_id": "DC001",
            "name": "张三",
            "role": "data_collector",
            "workstation_id": "1",
            "workstation_status": "active",
            "robot_id": "1",
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
        })),
        Errors,
    ),
)]
async fn me(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<JsonResponse<MeResponse>, ApiError> {
    let session = match principal {
        Principal::Admin { operator_id } => {
            return Ok(JsonResponse(MeResponse {
                collector_id: None,
                operator_id: if operator_id.is_empty() {
                    "admin".to_owned()
                } else {
                    operator_id
                },
                name: "Administrator".to_owned(),
                role: Role::Admin,
                workstation_id: None,
                workstation_status: None,
                robot_id: None,
                robot_type: None,
                requires_axon: None,
                workflow: None,
            }));
        }
        Principal::Collector {
            collector_id,
            issued_at,
            ..
        } => CollectorSession {
            collector_id,
            issued_at,
        },
        Principal::Unrecognized { .. } => return Err(AuthError::UnsupportedRole.into()),
    };
    let seat = collector_seat(&state.db, &session).await?;
    let workstation = seat.workstation;
    // No workstation, no robot type: the Axon default, as for a robot type without
    // capabilities.
    let requires_axon = workstation.as_ref().is_none_or(|w| w.requires_axon);
    Ok(JsonResponse(MeResponse {
        collector_id: Some(seat.collector_id.to_string()),
        operator_id: seat.operator_id,
        name: seat.name,
        role: Role::DataCollector,
        workstation_id: workstation.as_ref().map(|w| w.id.clone()),
        workstation_status: workstation.as_ref().map(|w| w.status),
        robot_id: workstation.as_ref().and_then(|w| w.robot_id.clone()),
        robot_type: workstation.and_then(|w| w.robot_type),
        requires_axon: Some(requires_axon),
        workflow: Some(Workflow::from_requires_axon(requires_axon)),
    }))
}
