//! What the local stack serves: every HTTP function's routes on one router, with the same
//! paths as API Gateway. The binary in `main.rs` adds the database, demo data and signals.

use axum::Router;
use keystone_http::AppState;

/// Every HTTP function's routes, merged, with the shared fallbacks and body limit.
pub fn routes() -> Router<AppState> {
    keystone_http::finish_router(
        complete_task_group::routes()
            .merge(adjust_batch::routes())
            .merge(create_batch::routes())
            .merge(finalize_order::routes())
            .merge(auth_login::routes())
            .merge(auth_me::routes())
            .merge(my_batches::routes()),
    )
}
