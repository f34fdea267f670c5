//! The API document (SPEC §10). Operations, bodies and success schemas come from each
//! handler's `#[utoipa::path]` annotation and the types it answers with; the error responses
//! are rendered here by the same [`ApiError`] mapping that answers real requests
//! ([`ApiError::status`], [`ApiError::body`]), so a documented message, status or extra field
//! cannot differ from the one a client receives.

use std::collections::BTreeMap;

use keystone_auth::{AuthError, Role};
use keystone_domain::{DomainError, OrderControl, OrderStatus};
use keystone_store::{Busy, StoreError};
use serde_json::Value;
use utoipa::IntoParams;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, Response, ResponseBuilder, Schema};

use crate::ApiError;

/// Name of the bearer security scheme operations refer to (`security(("bearer" = []))`).
pub const BEARER: &str = "bearer";

/// Who may call an operation, which decides its authentication errors (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token (log in).
    Public,
    /// A data collector's token.
    Collector,
    /// An admin's token.
    Admin,
    /// An admin's or a data collector's token.
    Staff,
}

/// Everything an operation can answer with besides its success: its access rule, whether it
/// takes a path id or a JSON body, and the domain rules it applies, in SPEC order.
#[derive(Debug, Clone)]
pub struct ErrorResponses {
    access: Access,
    /// The error for a path `{id}` that is not a positive 64-bit integer, when there is one.
    path_id: Option<DomainError>,
    json_body: bool,
    rules: Vec<DomainError>,
}

impl ErrorResponses {
    /// An operation open to `access`, with no path id, body or rules yet.
    pub fn new(access: Access) -> Self {
        Self {
            access,
            path_id: None,
            json_body: false,
            rules: Vec::new(),
        }
    }

    /// Takes a batch `{id}` in its path.
    pub fn batch_id(self) -> Self {
        Self {
            path_id: Some(DomainError::InvalidBatchId),
            ..self
        }
    }

    /// Takes an order `{id}` in its path.
    pub fn order_id(self) -> Self {
        Self {
            path_id: Some(DomainError::InvalidOrderId),
            ..self
        }
    }

    /// Takes a data collector `{id}` in its path.
    pub fn collector_id(self) -> Self {
        Self {
            path_id: Some(DomainError::InvalidCollectorId),
            ..self
        }
    }

    /// Takes a station binding `{id}` in its path.
    pub fn station_id(self) -> Self {
        Self {
            path_id: Some(DomainError::InvalidStationId),
            ..self
        }
    }

    /// Reads a JSON object body.
    pub fn json_body(self) -> Self {
        Self {
            json_body: true,
            ..self
        }
    }

    /// The domain rules it applies, each with sample figures for its example.
    pub fn rules(mut self, rules: impl IntoIterator<Item = DomainError>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// An admin's order control (SPEC §5.12) that `refused_from` does not allow.
    pub fn order_control(control: OrderControl, refused_from: OrderStatus) -> Self {
        Self::new(Access::Admin).order_id().rules([
            DomainError::OrderNotFound,
            DomainError::OrderControlNotAllowed {
                control,
                current_status: refused_from,
            },
        ])
    }

    /// Every error answer, grouped by status: one response per status whose examples are the
    /// exact bodies and whose schema accepts exactly those shapes.
    pub fn responses(self) -> BTreeMap<String, RefOr<Response>> {
        let mut by_status: BTreeMap<u16, Vec<ApiError>> = BTreeMap::new();
        for case in self.cases() {
            by_status
                .entry(case.status().as_u16())
                .or_default()
                .push(case);
        }
        by_status
            .into_iter()
            .map(|(status, cases)| (status.to_string(), error_response(&cases).into()))
            .collect()
    }

    fn cases(self) -> Vec<ApiError> {
        let mut cases = Vec::new();
        if self.access != Access::Public {
            cases.extend(token_cases());
            cases.push(
                match self.access {
                    Access::Collector => AuthError::RoleRequired(Role::DataCollector),
                    Access::Admin => AuthError::RoleRequired(Role::Admin),
                    Access::Staff | Access::Public => AuthError::UnsupportedRole,
                }
                .into(),
            );
        }
        if matches!(self.access, Access::Collector | Access::Staff) {
            // Every collector request re-checks its collector (SPEC §4).
            cases.push(DomainError::CollectorNotFound.into());
            cases.push(DomainError::SessionEnded.into());
        }
        if let Some(invalid) = self.path_id {
            cases.push(invalid.into());
            // A request whose `{id}` segment is empty matches no route.
            cases.push(ApiError::NotFound);
        }
        if self.json_body {
            cases.push(
                DomainError::InvalidRequestBody {
                    detail: "invalid type: string \"1\", expected i64 at line 1 column 15"
                        .to_owned(),
                }
                .into(),
            );
            cases.push(
                DomainError::UnstorableText {
                    field: "metadata.note".to_owned(),
                }
                .into(),
            );
            cases.push(DomainError::UnstorableValue.into());
            cases.push(ApiError::PayloadTooLarge);
        }
        cases.extend(self.rules.into_iter().map(ApiError::from));
        cases.extend(busy_cases());
        cases
    }
}

/// The 401 answers every operation that needs a token gives (SPEC §4).
fn token_cases() -> [ApiError; 3] {
    [
        AuthError::MissingCredentials,
        AuthError::MalformedHeader,
        AuthError::InvalidToken,
    ]
    .map(ApiError::from)
}

/// The 503 answers: the database turned the request away before applying anything. The
/// cause is only logged, so an empty one stands in.
fn busy_cases() -> [ApiError; 6] {
    BUSY.map(|busy| ApiError::Busy(busy, StoreError::Invariant(String::new())))
}

/// Every reason the database can turn a request away with 503 and `Retry-After`.
const BUSY: [Busy; 6] = [
    Busy::LockWait,
    Busy::Statement,
    Busy::IdleTransaction,
    Busy::Conflict,
    Busy::Pool,
    Busy::ConnectionLost,
];

/// One status's response: a description listing each message, the bodies as named examples,
/// and a schema that is one object shape per case.
fn error_response(cases: &[ApiError]) -> Response {
    let mut description = String::new();
    let mut shapes = Vec::new();
    let mut examples = Vec::new();
    for case in cases {
        let body = case.body();
        let message = case.to_string();
        let extra: Vec<&str> = body
            .as_object()
            .map(|o| {
                o.keys()
                    .map(String::as_str)
                    .filter(|k| *k != "error" && *k != "code")
                    .collect()
            })
            .unwrap_or_default();
        description.push_str(&format!("- `{}`: `{message}`", case.code()));
        if !extra.is_empty() {
            description.push_str(&format!(", with `{}`", extra.join("`, `")));
        }
        description.push('\n');
        if !examples.iter().any(|(name, _)| *name == message) {
            let shape = error_shape(&body, case);
            // Cases of one rule with different messages (`name is required`, `scene_id is
            // required`) share a shape: list it once.
            if !shapes.contains(&shape) {
                shapes.push(shape);
            }
            examples.push((
                message.clone(),
                ExampleBuilder::new().value(Some(body)).build(),
            ));
        }
    }
    let schema: RefOr<Schema> = if shapes.len() == 1 {
        shapes.remove(0)
    } else {
        shapes
            .into_iter()
            .fold(AnyOfBuilder::new(), AnyOfBuilder::item)
            .into()
    };
    let content = ContentBuilder::new()
        .schema(Some(schema))
        .examples_from_iter(examples)
        .build();
    let mut response = ResponseBuilder::new()
        .description(description.trim_end())
        .content("application/json", content);
    if let Some(seconds) = cases.iter().find_map(ApiError::retry_after) {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .examples([Value::from(seconds)]),
                ))
                .description(Some(
                    "Seconds to wait before retrying; nothing was applied.",
                ))
                .build(),
        );
    }
    response.build()
}

/// The schema of one error body: `code` is the case's code (a one-value `enum`, so clients
/// can tell the shapes apart by it); `error` is the exact message too when the body has no
/// extra fields (the message is then fixed), else a string beside the required extra fields,
/// typed from the rendered body.
fn error_shape(body: &Value, case: &ApiError) -> RefOr<Schema> {
    let Some(fields) = body.as_object() else {
        return Schema::default().into();
    };
    let status = blocking_status_schema(case);
    let fixed = fields.len() == 2;
    let mut object = ObjectBuilder::new().schema_type(Type::Object);
    for (name, value) in fields {
        let property = if name == "code" || (name == "error" && fixed) {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([value.clone()]))
                .into()
        } else if let (Some(status), "current_status" | "order_status") = (status, name.as_str()) {
            utoipa::openapi::Ref::from_schema_name(status).into()
        } else if let Some(typed) = typed_error_field(case, name) {
            typed
        } else {
            value_schema(value)
        };
        object = object.property(name, property).required(name);
    }
    object.build().into()
}

/// The status enum (a component schema's name) that an error's `current_status` (and
/// `order_status`) takes: the status vocabulary of the object that blocked the request.
fn blocking_status_schema(case: &ApiError) -> Option<&'static str> {
    use DomainError as E;
    let ApiError::Rejected(rule) = case else {
        return None;
    };
    match rule {
        E::OrderCancelled { .. }
        | E::OrderClosedForBatches { .. }
        | E::OrderClosedForReopen { .. }
        | E::OrderControlNotAllowed { .. }
        | E::OrderCompletedNoInsert
        | E::OrderCancelledNoInsert => Some("OrderStatus"),
        E::BatchNotOpen { .. }
        | E::BatchNotEditable { .. }
        | E::BatchNotCancellable { .. }
        | E::BatchNotRecallable { .. }
        | E::BatchNotReopenable { .. }
        | E::BatchNotDeletable { .. } => Some("BatchStatus"),
        E::WorkstationOffline => Some("WorkstationStatus"),
        _ => None,
    }
}

/// An extra error field whose type the example's value cannot tell: a closed set (an enum of
/// the document) or a field that may be null.
fn typed_error_field(case: &ApiError, field: &str) -> Option<RefOr<Schema>> {
    use DomainError as E;
    let ApiError::Rejected(rule) = case else {
        return None;
    };
    let named = |schema: &str| Some(utoipa::openapi::Ref::from_schema_name(schema).into());
    match (rule, field) {
        (E::CollectorNotActive { .. }, "collector_status") => named("CollectorStatus"),
        (E::WorkstationStatusDerived { .. }, "derived_status") => named("WorkstationStatus"),
        (E::StationSuperseded { .. }, "superseded_by") => Some(
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .description(Some("The current binding; null after an unbind."))
                .into(),
        ),
        _ => None,
    }
}

fn value_schema(value: &Value) -> RefOr<Schema> {
    let of = |kind: Type| ObjectBuilder::new().schema_type(SchemaType::new(kind));
    match value {
        Value::Bool(_) => of(Type::Boolean).into(),
        Value::Number(n) if n.is_i64() || n.is_u64() => of(Type::Integer).into(),
        Value::Number(_) => of(Type::Number).into(),
        Value::String(_) => of(Type::String).into(),
        Value::Array(items) => ArrayBuilder::new()
            .items(
                items
                    .first()
                    .map_or_else(|| Schema::default().into(), value_schema),
            )
            .into(),
        Value::Object(_) => of(Type::Object).into(),
        Value::Null => of(Type::Null).into(),
    }
}

/// The `{id}` of `/batches/{id}/…`: a positive 64-bit integer.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BatchIdPath {
    /// The batch's database id (`"id"` in batch views).
    #[param(minimum = 1, example = 1)]
    pub id: i64,
}

/// The `{id}` of `/orders/{id}/…`: a positive 64-bit integer.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OrderIdPath {
    /// The order's database id (`"id"` in order views).
    #[param(minimum = 1, example = 1)]
    pub id: i64,
}

/// The `{id}` of `/data-collectors/{id}`: a positive 64-bit integer.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CollectorIdPath {
    /// The collector's database id (`"id"` in collector views).
    #[param(minimum = 1, example = 1)]
    pub id: i64,
}

/// The `{id}` of `/stations/{id}`: a positive 64-bit integer.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StationIdPath {
    /// A station binding's database id (`"id"` in station views; an old binding's id still
    /// reads).
    #[param(minimum = 1, example = 1)]
    pub id: i64,
}

/// The optional `Idempotency-Key` header of SPEC §6.1.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// 1–255 visible ASCII characters. A repeat with the same key and request answers the stored
    /// response with `Idempotent-Replayed: true` and changes nothing; the same key with another
    /// request answers 422.
    #[param(
        rename = "Idempotency-Key",
        value_type = String,
        required = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$",
        example = "3f1c7a52-complete-1"
    )]
    pub idempotency_key: Option<String>,
}

/// The document's frame: title, version, the bearer scheme, the local server and the tags.
/// Functions contribute their paths; this adds what no single function owns.
pub fn document(paths: OpenApi) -> OpenApi {
    use utoipa::openapi::{InfoBuilder, OpenApiBuilder, ServerBuilder, tag::TagBuilder};
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Keystone Serverless API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .license(Some(
                    utoipa::openapi::LicenseBuilder::new()
                        .name("Apache-2.0")
                        .identifier(Some("Apache-2.0"))
                        .build(),
                ))
                .build(),
        )
        .servers(Some([ServerBuilder::new()
            .url("/")
            .description(Some("The host serving this document"))
            .build()]))
        .tags(Some(TAGS.map(|(name, description)| {
            TagBuilder::new()
                .name(name)
                .description(Some(description))
                .build()
        })))
        .build();
    doc.merge(paths);
    share_common_responses(&mut doc);
    mark_public_operations(&mut doc);
    let components = doc.components.get_or_insert_with(Default::default);
    // Named by `contentSchema` inside a string, which utoipa does not follow.
    components.schemas.insert(
        <keystone_domain::HandoffPayload as utoipa::ToSchema>::name().into_owned(),
        <keystone_domain::HandoffPayload as utoipa::PartialSchema>::schema(),
    );
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some("HS256 JWT from `POST /api/v1/auth/login`."))
                .build(),
        ),
    );
    drop_unreferenced_schemas(&mut doc);
    require_answer_fields(&mut doc);
    doc
}

/// Every field of an answer is always sent (`null` where there is nothing: no answer type skips
/// a field), so every property of a schema that only answers use is required, and a generated
/// client types it `T | null`, never `T | undefined`. Schemas a request body or parameter also
/// uses keep their own rules: there a field may be left out.
fn require_answer_fields(doc: &mut OpenApi) {
    let Ok(json) = serde_json::to_value(&*doc) else {
        return;
    };
    let schemas = &json["components"]["schemas"];
    let mut asked = String::new();
    let mut answered = json["components"]["responses"].to_string();
    for item in json["paths"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        for operation in item.as_object().into_iter().flat_map(|o| o.values()) {
            asked.push_str(&operation["requestBody"].to_string());
            asked.push_str(&operation["parameters"].to_string());
            answered.push_str(&operation["responses"].to_string());
        }
    }
    let asked = referenced_schemas(schemas, &asked);
    let answered = referenced_schemas(schemas, &answered);
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for name in answered.difference(&asked) {
        if let Some(RefOr::T(schema)) = components.schemas.get_mut(name) {
            require_all_properties(schema);
        }
    }
}

/// The component schemas `text` refers to, and those they refer to, transitively.
fn referenced_schemas(schemas: &Value, text: &str) -> std::collections::BTreeSet<String> {
    const PREFIX: &str = "\"#/components/schemas/";
    let mut found = std::collections::BTreeSet::new();
    let mut pending = vec![text.to_owned()];
    while let Some(text) = pending.pop() {
        for piece in text.split(PREFIX).skip(1) {
            let name = piece.split('"').next().unwrap_or_default().to_owned();
            if found.insert(name.clone()) {
                pending.push(schemas[&name].to_string());
            }
        }
    }
    found
}

fn require_all_properties(schema: &mut Schema) {
    match schema {
        Schema::Object(object) => {
            for (name, property) in &mut object.properties {
                if !object.required.contains(name) {
                    object.required.push(name.clone());
                }
                if let RefOr::T(inner) = property {
                    require_all_properties(inner);
                }
            }
        }
        Schema::AllOf(all) => all.items.iter_mut().for_each(|item| {
            if let RefOr::T(inner) = item {
                require_all_properties(inner);
            }
        }),
        Schema::OneOf(one) => one.items.iter_mut().for_each(|item| {
            if let RefOr::T(inner) = item {
                require_all_properties(inner);
            }
        }),
        Schema::Array(array) => {
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(item) = &mut array.items
                && let RefOr::T(inner) = item.as_mut()
            {
                require_all_properties(inner);
            }
        }
        _ => {}
    }
}

/// An operation without a security requirement says so with an empty list (`security: []`),
/// so a linter and a client generator know it is public on purpose.
fn mark_public_operations(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            operation.security.get_or_insert_with(Vec::new);
        }
    }
}

/// Removes component schemas nothing refers to: utoipa registers a generic list's item type
/// as a component as well as inlining it in the list's schema.
fn drop_unreferenced_schemas(doc: &mut OpenApi) {
    loop {
        let text = serde_json::to_string(&*doc).unwrap_or_default();
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        let unused: Vec<String> = components
            .schemas
            .keys()
            .filter(|name| !text.contains(&format!("\"#/components/schemas/{name}\"")))
            .cloned()
            .collect();
        if unused.is_empty() {
            return;
        }
        for name in unused {
            components.schemas.remove(&name);
        }
    }
}

/// The error responses many operations answer identically, named once under
/// `components.responses` and referred to from each operation.
fn shared_responses() -> [(&'static str, Response); 5] {
    [
        ("AuthenticationRequired", error_response(&token_cases())),
        (
            "AdminRoleRequired",
            error_response(&[AuthError::RoleRequired(Role::Admin).into()]),
        ),
        (
            "CollectorRoleRequired",
            error_response(&[AuthError::RoleRequired(Role::DataCollector).into()]),
        ),
        (
            "KnownRoleRequired",
            error_response(&[AuthError::UnsupportedRole.into()]),
        ),
        ("DatabaseBusy", error_response(&busy_cases())),
    ]
}

fn share_common_responses(doc: &mut OpenApi) {
    use utoipa::openapi::Ref;
    let shared = shared_responses();
    let mut used = BTreeMap::new();
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.put,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(inline) = response else { continue };
                if let Some((name, found)) = shared.iter().find(|(_, r)| r == inline) {
                    used.insert(*name, found.clone());
                    *response = Ref::new(format!("#/components/responses/{name}")).into();
                }
            }
        }
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.responses.extend(
        used.into_iter()
            .map(|(name, response)| (name.to_owned(), response.into())),
    );
}

const TAGS: [(&str, &str); 8] = [
    ("auth", "Log in and identify the caller."),
    ("collector", "What a data collector's phone calls."),
    ("batches", BATCHES_TAG),
    ("orders", ORDERS_TAG),
    (
        "notifications",
        "Recorder commands sent to devices through the outbox.",
    ),
    (
        "people",
        "Data collectors: who logs in, and who may keep using their tokens.",
    ),
    (
        "reference data",
        "What the dispatch forms pick from: stations, SOPs, scenes, robot types.",
    ),
    ("stations", STATIONS_TAG),
];

/// The stations tag: bindings and their history.
const STATIONS_TAG: &str = "\
Workstation bindings: a station is one robot and one data collector of the collector's \
organization, in the robot's factory. A robot and a collector are each in at most one current \
binding. Changing the robot or the collector (a rebind) or unbinding never rewrites the binding \
that batches and tasks point at: it stops being current (`is_current` false, `superseded_at`, \
`superseded_by` naming the new binding after a rebind) and stays readable, so an old batch \
still shows the robot and collector that produced it. A binding with a pending or active batch \
cannot be rebound or unbound (409 `station_has_open_batches`); cancel, recall or finish those \
batches first. No batch can be created on, or reopened onto, a binding that is no longer \
current (409 `station_superseded`). `active` and `inactive` follow the batches (`active` while \
one is active); `break` and `offline` are set by the collector's phone, by logout, or by an \
admin.";

/// The batches tag: what each call does from each batch status.
const BATCHES_TAG: &str = "\
Batches and their tasks. A batch is `pending` until its first task is completed, `active` while \
work runs, `completed` when every live task is completed, failed or cancelled. What each call \
does from each status (409 answers carry `current_status`):

| from | complete tasks | cancel (or PATCH `status: cancelled`) | recall | delete | reopen tasks |
|---|---|---|---|---|---|
| pending | → active (→ completed at the last task) | → cancelled | 409 | deleted, with its tasks | 400: nothing completed |
| active | → completed at the last task | → cancelled | → recalled | 409 | tasks back to pending |
| completed | 409 | 409 | → recalled | 409 | → active, tasks back to pending |
| cancelled | 409 | 200, unchanged | 409 | deleted if no task was completed | 409 |
| recalled | 409 | 409 | 200, unchanged | 409 | 409 |

Cancel and recall cancel the batch's pending, ready and in-progress tasks and tell the devices \
recording them; completed tasks stay completed and keep counting for the order. Name, notes and \
metadata change in any status.";

/// The orders tag: the order state table.
const ORDERS_TAG: &str = "\
Orders: create, list, progress, finalization, controls, delete. An order is `created` until its \
first completed task, `in_progress` while work runs, and `completed` when its completed count \
reaches its target (or an admin finalizes it): then its open batches are completed, their \
remaining tasks cancelled and the devices told. What each control does from each status (a \
call that would leave the order as it is answers 200 unchanged; a move its status forbids \
answers 409 `order_control_not_allowed` with `current_status`):

| from | pause | resume | cancel | change target | finalize |
|---|---|---|---|---|---|
| created / in_progress | → paused | 200, unchanged | → cancelled | new target; completes at it | → completed |
| paused | 200, unchanged | → in_progress (created without completions; completed at its target) | → cancelled | new target; stays paused | → completed |
| completed | 409 | 409 | 409 | new target; back in progress when raised above the old target and the completed count | 200, `finalized: false` |
| cancelled | 409 | 409 | 200, unchanged | 409 | 409 |

A paused order is not completed by completions; resuming it completes it when it has reached \
its target. Name, priority, deadline and metadata change in any status.";

const DESCRIPTION: &str = "\
The Keystone Serverless API: robot data-collection teams dispatch production work and data \
collectors complete it. Every error body is `{\"error\": \"<message>\", \"code\": \"<code>\", \
...extra fields}`: `code` is a stable snake_case name to branch on (one status per code), the \
message may be reworded; each response below lists its codes, exact messages and extra fields. \
Lists answer `{\"items\", \"total\", \"limit\", \"offset\", \"hasNext\", \"hasPrev\"}`, newest \
first unless the operation says otherwise; `limit` is 1–100 (default 50). A 503 means the database turned the \
request away before applying anything: retry after `Retry-After` seconds, with the same \
`Idempotency-Key` where the operation takes one.";

/// Declares a unit type whose `utoipa::IntoResponses` are the given [`ErrorResponses`], for an
/// operation's `responses(...)` list:
/// `keystone_http::error_responses!(Errors = ErrorResponses::new(Access::Admin).order_id());`
#[macro_export]
macro_rules! error_responses {
    ($(#[$meta:meta])* $name:ident = $errors:expr) => {
        $(#[$meta])*
        struct $name;

        impl ::utoipa::IntoResponses for $name {
            fn responses() -> ::std::collections::BTreeMap<
                String,
                ::utoipa::openapi::RefOr<::utoipa::openapi::response::Response>,
            > {
                $crate::openapi::ErrorResponses::responses($errors)
            }
        }
    };
}

/// Success examples several operations share, from the demo data (`keystone-local --demo`),
/// for `example = keystone_http::openapi::examples::…` in `#[utoipa::path]` responses.
pub mod examples {
    use serde_json::{Value, json};

    /// The demo order as `GET /api/v1/orders/{id}` shows it after two completions.
    pub fn order() -> Value {
        json!({
            "id": "1",
            "name": "Kitchen demo order",
            "status": "in_progress",
            "priority": "high",
            "target_count": 40,
            "task_count": 38,
            "completed_count": 2,
            "failed_count": 0,
            "cancelled_count": 0,
            "remaining_assignable": 2,
            "batch_counts": {"active": 2, "cancelled": 0, "completed": 0, "pending": 0, "recalled": 0},
            "scene_id": "1",
            "scene_name": "厨房",
            "organization_id": "1",
            "organization_name": "Acme Robotics",
            "deadline": "2026-12-31T00:00:00Z",
            "metadata": {"customer": "acme"},
            "created_at": "2026-12-01T08:00:00Z",
            "updated_at": "2026-12-01T09:30:00Z"
        })
    }

    fn page(item: Value) -> Value {
        json!({"items": [item], "total": 1, "limit": 50, "offset": 0, "hasNext": false, "hasPrev": false})
    }

    /// The demo collector DC001 as the admin console shows it.
    pub fn collector() -> Value {
        json!({
            "id": "1",
            "organization_id": "1",
            "name": "张三",
            "operator_id": "DC001",
            "email": "dc001@example.com",
            "status": "active",
            "metadata": {"shift": "morning"},
            "created_at": "2026-11-24T09:00:00Z",
            "updated_at": "2026-11-24T09:00:00Z"
        })
    }

    /// A page of collectors holding DC001.
    pub fn collector_page() -> Value {
        page(collector())
    }

    /// DC001 put on leave: its tokens end.
    pub fn collector_on_leave() -> Value {
        with(
            collector(),
            json!({"status": "on_leave", "updated_at": "2026-12-06T18:00:00Z"}),
        )
    }

    /// The demo's Axon arm station, as the station list shows it.
    fn station() -> Value {
        json!({
            "id": "2", "name": "WS-02 AxonArm", "status": "active", "organization_id": "1",
            "factory_id": "1", "robot_id": "2", "device_id": "axon-arm-01",
            "robot_type": {"id": "2", "name": "AxonArm", "model": "AA-7", "capabilities": null},
            "requires_axon": true, "workflow": "axon", "data_collector_id": "2",
            "collector_operator_id": "DC002", "collector_name": "李四", "open_batch_count": 1,
            "created_at": "2026-12-01T08:00:00Z"
        })
    }

    /// A page of stations: the demo's Axon arm station.
    pub fn station_page() -> Value {
        page(station())
    }

    /// One binding of a station's history.
    fn binding(id: &str, robot: (&str, &str), current: bool, superseded_by: Value) -> Value {
        json!({
            "id": id, "robot_id": robot.0, "device_id": robot.1, "data_collector_id": "2",
            "collector_operator_id": "DC002", "collector_name": "李四", "is_current": current,
            "created_at": "2026-12-01T08:00:00Z",
            "superseded_at": if current { Value::Null } else { json!("2026-12-06T17:00:00Z") },
            "superseded_by": superseded_by
        })
    }

    /// The demo's Axon arm station with its one binding.
    pub fn station_detail() -> Value {
        with(
            station(),
            json!({
                "metadata": {"bench": "A3"}, "is_current": true, "superseded_at": null,
                "superseded_by": null, "updated_at": "2026-12-01T08:00:00Z",
                "bindings": [binding("2", ("2", "axon-arm-01"), true, Value::Null)],
                "binding_count": 1
            }),
        )
    }

    /// The Axon arm station after its robot was swapped: a new current binding, the old one
    /// kept with its batches.
    pub fn station_rebound() -> Value {
        with(
            station_detail(),
            json!({
                "id": "5", "robot_id": "4", "device_id": "axon-arm-02", "status": "inactive",
                "open_batch_count": 0, "created_at": "2026-12-06T17:00:00Z",
                "updated_at": "2026-12-06T17:00:00Z",
                "bindings": [
                    binding("5", ("4", "axon-arm-02"), true, Value::Null),
                    binding("2", ("2", "axon-arm-01"), false, json!("5"))
                ],
                "binding_count": 2
            }),
        )
    }

    /// The Axon arm station unbound: kept, no longer current.
    pub fn station_unbound() -> Value {
        with(
            station_detail(),
            json!({
                "status": "inactive", "open_batch_count": 0, "is_current": false,
                "superseded_at": "2026-12-06T17:00:00Z", "updated_at": "2026-12-06T17:00:00Z",
                "bindings": [binding("2", ("2", "axon-arm-01"), false, Value::Null)]
            }),
        )
    }

    /// A page of batches: the demo's Axon batch.
    pub fn batch_page() -> Value {
        page(json!({
            "id": "2", "batch_id": "batch_20261201_080000_000_02_1a2b3c4d", "order_id": "1",
            "order_name": "Kitchen demo order", "workstation_id": "2",
            "workstation_name": "WS-02 AxonArm", "device_id": "axon-arm-01",
            "collector_operator_id": "DC002", "organization_id": "1", "name": "Axon batch",
            "notes": null, "metadata": null, "status": "active", "task_count": 20,
            "completed_count": 2, "failed_count": 0, "cancelled_count": 0, "pending_count": 15,
            "created_at": "2026-12-01T08:00:00Z", "updated_at": "2026-12-01T09:30:00Z"
        }))
    }

    /// A page of a batch's tasks.
    pub fn batch_task_page() -> Value {
        page(json!({
            "id": "41", "task_id": "task_20261201_080000_000_02_5e6f7a8b", "sop_id": "1",
            "subscene_id": "1", "scene_name": "厨房", "subscene_name": "台面",
            "status": "completed", "assigned_at": "2026-12-01T08:00:00Z",
            "started_at": "2026-12-01T08:10:00Z", "completed_at": "2026-12-01T08:20:00Z",
            "episode_id": null
        }))
    }

    /// A page of SOPs.
    pub fn sop_page() -> Value {
        page(
            json!({"id": "1", "slug": "move_bottle", "version": "v1", "description": "Move the bottle to the tray"}),
        )
    }

    /// A page of scenes with their subscenes.
    pub fn scene_page() -> Value {
        page(json!({"id": "1", "name": "厨房", "factory_id": "1",
                    "subscenes": [{"id": "1", "name": "台面"}, {"id": "2", "name": "水槽"}]}))
    }

    /// A page of robot types.
    pub fn robot_type_page() -> Value {
        page(json!({"id": "1", "name": "SynGloves", "model": "SG-1",
                    "capabilities": {"requires_axon": false}, "requires_axon": false,
                    "workflow": "external_device"}))
    }

    /// A first page of orders holding the demo order.
    pub fn order_page() -> Value {
        json!({
            "items": [order()], "total": 1, "limit": 50, "offset": 0,
            "hasNext": false, "hasPrev": false
        })
    }

    /// The demo order once paused.
    pub fn order_paused() -> Value {
        with(order(), json!({"status": "paused"}))
    }

    /// The demo order once cancelled, its two batches with it.
    pub fn order_cancelled() -> Value {
        with(
            order(),
            json!({
                "status": "cancelled",
                "batch_counts": {"active": 0, "cancelled": 2, "completed": 0, "pending": 0, "recalled": 0}
            }),
        )
    }

    /// The demo order given a target of 60.
    pub fn order_retargeted() -> Value {
        with(
            order(),
            json!({"target_count": 60, "remaining_assignable": 22}),
        )
    }

    /// The demo's Axon batch as the §5.3 summary shows it, two tasks done.
    fn batch() -> Value {
        json!({
            "id": "2",
            "batch_id": "batch_20261124_093000_000_02_b4abb622",
            "order_id": "1",
            "workstation_id": "2",
            "organization_id": "1",
            "name": "Axon batch",
            "notes": null,
            "metadata": null,
            "status": "active",
            "task_count": 8,
            "completed_count": 2,
            "created_at": "2026-11-24T09:30:00.000000Z"
        })
    }

    /// The Axon batch renamed and annotated (no cancel asked).
    pub fn batch_updated() -> Value {
        json!({
            "batch": with(batch(), json!({
                "name": "Kitchen, morning shift",
                "notes": "Bottles on the left shelf",
                "metadata": {"shift": "morning"}
            })),
            "cancelled": false,
            "cancelled_task_count": 0,
            "notifications_enqueued": 0
        })
    }

    /// The Axon batch recalled: its six open tasks cancelled, two devices told.
    pub fn batch_recalled() -> Value {
        json!({
            "batch": with(batch(), json!({"status": "recalled"})),
            "recalled": true,
            "cancelled_task_count": 6,
            "notifications_enqueued": 2
        })
    }

    fn with(mut base: Value, changes: Value) -> Value {
        if let (Some(base), Value::Object(changes)) = (base.as_object_mut(), changes) {
            base.extend(changes);
        }
        base
    }
}

#[cfg(test)]
mod tests {
    use keystone_domain::BatchStatus;
    use serde_json::json;

    use super::*;

    fn documented(errors: ErrorResponses) -> Value {
        serde_json::to_value(errors.responses()).unwrap_or_default()
    }

    #[test]
    fn a_fixed_message_is_exact_and_extra_fields_are_required() {
        let responses = documented(ErrorResponses::new(Access::Admin).batch_id().rules([
            DomainError::BatchNotCancellable {
                current_status: BatchStatus::Completed,
            },
        ]));
        let invalid_id = &responses["400"]["content"]["application/json"];
        assert_eq!(
            invalid_id["schema"]["properties"]["error"]["enum"],
            json!(["invalid batch id"])
        );
        assert_eq!(
            invalid_id["schema"]["properties"]["code"]["enum"],
            json!(["invalid_batch_id"])
        );
        let conflict = &responses["409"]["content"]["application/json"];
        assert_eq!(
            conflict["schema"]["required"],
            json!(["code", "current_status", "error"])
        );
        assert!(conflict["schema"]["properties"]["error"]["enum"].is_null());
        assert_eq!(
            conflict["schema"]["properties"]["code"]["enum"],
            json!(["batch_not_cancellable"])
        );
        let message = "batch is completed; only pending or active batches can be cancelled";
        assert_eq!(
            conflict["examples"][message]["value"],
            json!({"error": message, "code": "batch_not_cancellable", "current_status": "completed"})
        );
    }

    #[test]
    fn every_operation_documents_busy_answers_with_retry_after_and_its_token_errors() {
        let responses = documented(ErrorResponses::new(Access::Collector));
        assert!(responses["503"]["headers"]["Retry-After"].is_object());
        assert_eq!(
            responses["503"]["content"]["application/json"]["examples"]
                .as_object()
                .map(serde_json::Map::len),
            Some(BUSY.len())
        );
        assert!(
            responses["403"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("data collector role required"))
        );
        let public = documented(ErrorResponses::new(Access::Public).json_body());
        assert!(public["401"].is_null() && public["403"].is_null());
        assert!(public["413"].is_object());
    }
}
