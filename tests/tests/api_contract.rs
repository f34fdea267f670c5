//! The API contract (SPEC §10): the committed `docs/openapi.json` is the document the code
//! generates, every operation documents its errors the way the code answers them, and the
//! local stack serves the document and a reference page a real browser renders.
//!
//! Route coverage (document ↔ code ↔ template) is in `infra.rs`; the document-driven fuzzing
//! (schemathesis) runs from the test command against `keystone-local` (`tests/support/
//! schemathesis.sh`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::http::StatusCode;
use keystone_tests::{TestResponse, admin_token, get, router};
use serde_json::Value;

fn committed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("docs/openapi.json")
}

fn committed() -> String {
    std::fs::read_to_string(committed_path()).unwrap()
}

/// Fails when a handler, a body or response type, or an error rule changed and the committed
/// document was not regenerated.
#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = keystone_local::openapi_json();
    let committed = committed();
    if generated != committed {
        let (line, (ours, theirs)) = generated
            .lines()
            .zip(committed.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .unwrap_or((
                generated.lines().count().min(committed.lines().count()),
                ("<end>", "<end>"),
            ));
        panic!(
            "docs/openapi.json is not the document the code generates; regenerate it with\n  \
             cargo run -p keystone-local -- --openapi > docs/openapi.json\n\
             first difference at line {}:\n  generated: {ours}\n  committed: {theirs}",
            line + 1
        );
    }
}

/// The document stands alone for client teams: it never sends them to a specification they
/// do not have.
#[test]
fn the_document_cites_no_outside_document() {
    let document = committed();
    let cited: Vec<&str> = document
        .lines()
        .filter(|line| line.contains("SPEC") || line.contains('§'))
        .collect();
    assert!(cited.is_empty(), "{cited:#?}");
}

/// SPEC §5: every documented error of every operation carries a snake_case `code`, required
/// and fixed by its schema, and one code always comes with one status, so a client can branch
/// on the code alone.
#[test]
fn every_documented_error_has_a_stable_code() {
    let document: Value = serde_json::from_str(&committed()).unwrap();
    let mut statuses: std::collections::BTreeMap<String, String> = Default::default();
    let mut seen = 0;
    for (method, path, operation) in operations(&document) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let response = match response.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let name = reference.rsplit('/').next().unwrap();
                    &document["components"]["responses"][name]
                }
                None => response,
            };
            if !status.starts_with('4') && !status.starts_with('5') {
                continue;
            }
            let content = &response["content"]["application/json"];
            for (name, example) in content["examples"].as_object().into_iter().flatten() {
                let code = example["value"]["code"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path} {status} {name:?} has no code"));
                assert!(
                    code.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                    "{code}"
                );
                let first = statuses
                    .entry(code.to_owned())
                    .or_insert_with(|| status.clone());
                assert_eq!(first, status, "{code} answers two statuses");
                seen += 1;
            }
            let shapes: Vec<&Value> = match content["schema"]["anyOf"].as_array() {
                Some(shapes) => shapes.iter().collect(),
                None => vec![&content["schema"]],
            };
            for shape in shapes {
                assert!(
                    shape["required"]
                        .as_array()
                        .is_some_and(|r| r.contains(&Value::from("code")))
                        && shape["properties"]["code"]["enum"].is_array(),
                    "{method} {path} {status}: {shape}"
                );
            }
        }
    }
    assert!(seen > 100, "{seen} error examples");
}

/// Lints a document with `@redocly/cli`'s recommended rules (installed by tests/run.sh) and
/// answers its `(errors, warnings)`.
fn redocly_totals(path: &Path) -> (u64, u64) {
    let redocly = std::env::var("KEYSTONE_REDOCLY")
        .expect("KEYSTONE_REDOCLY is unset: run the tests through tests/run.sh, which installs @redocly/cli");
    let output = std::process::Command::new(redocly)
        .args(["lint", "--format=json"])
        .arg(path)
        .output()
        .expect("redocly runs");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "redocly's report: {e}: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    (
        report["totals"]["errors"].as_u64().unwrap(),
        report["totals"]["warnings"].as_u64().unwrap(),
    )
}

/// What client teams run on the document: no error, no warning (an operation without a
/// security requirement, an `anyOf` listing one shape twice, an unused component, no licence
/// all used to show). The same linter on a document that lost its licence and the login's
/// `security: []` does complain, so the check can fail.
#[test]
fn the_document_passes_redocly_lint_recommended() {
    assert_eq!(redocly_totals(&committed_path()), (0, 0));
    let mut broken: Value = serde_json::from_str(&committed()).unwrap();
    broken["info"].as_object_mut().unwrap().remove("license");
    broken["paths"]["/api/v1/auth/login"]["post"]
        .as_object_mut()
        .unwrap()
        .remove("security");
    let path = std::env::temp_dir().join(format!("keystone-broken-{}.json", std::process::id()));
    std::fs::write(&path, broken.to_string()).unwrap();
    let (errors, warnings) = redocly_totals(&path);
    let _ = std::fs::remove_file(&path);
    assert!(
        errors >= 1 && warnings >= 1,
        "{errors} errors, {warnings} warnings"
    );
}

fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            found.push((method.to_uppercase(), path.clone(), operation));
        }
    }
    found
}

/// Every object schema of an answer (success or error), by where it sits: a component schema
/// that only answers use, or an inline one inside an answer.
fn answer_objects(document: &Value) -> Vec<(String, &Value)> {
    fn refs(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    into.push(r.trim_start_matches("#/components/schemas/").to_owned());
                }
                map.values().for_each(|v| refs(v, into));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, into)),
            _ => {}
        }
    }
    fn objects<'a>(at: String, value: &'a Value, into: &mut Vec<(String, &'a Value)>) {
        match value {
            Value::Object(map) => {
                if map.contains_key("properties") {
                    into.push((at.clone(), value));
                }
                for (key, child) in map {
                    objects(format!("{at}.{key}"), child, into);
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    objects(format!("{at}[{index}]"), child, into);
                }
            }
            _ => {}
        }
    }
    let schemas = &document["components"]["schemas"];
    let closure = |roots: Vec<&Value>| {
        let mut names = Vec::new();
        roots.into_iter().for_each(|root| refs(root, &mut names));
        let mut seen = std::collections::BTreeSet::new();
        while let Some(name) = names.pop() {
            if seen.insert(name.clone()) {
                refs(&schemas[&name], &mut names);
            }
        }
        seen
    };
    let ops = operations(document);
    let asked = closure(
        ops.iter()
            .flat_map(|(_, _, op)| [&op["requestBody"], &op["parameters"]])
            .collect(),
    );
    let mut answer_roots: Vec<&Value> = ops.iter().map(|(_, _, op)| &op["responses"]).collect();
    answer_roots.push(&document["components"]["responses"]);
    let answered = closure(answer_roots.clone());
    let mut found = Vec::new();
    for name in answered.difference(&asked) {
        objects(name.clone(), &schemas[name], &mut found);
    }
    for (method, path, op) in &ops {
        objects(format!("{method} {path}"), &op["responses"], &mut found);
    }
    objects(
        "components.responses".to_owned(),
        &document["components"]["responses"],
        &mut found,
    );
    found
}

/// Every answer field is always sent (`null` where there is nothing), so the document requires
/// every one: a generated client types it `T | null`, never `T | undefined`.
#[test]
fn every_answer_field_is_required() {
    let document: Value = serde_json::from_str(&committed()).unwrap();
    let mut optional = Vec::new();
    let objects = answer_objects(&document);
    for (at, object) in &objects {
        let required = object["required"].as_array().cloned().unwrap_or_default();
        for field in object["properties"].as_object().unwrap().keys() {
            if !required.contains(&Value::String(field.clone())) {
                optional.push(format!("{at}: {field}"));
            }
        }
    }
    assert!(objects.len() > 50, "{}", objects.len());
    assert!(optional.is_empty(), "{optional:#?}");
}

/// A field naming one of a closed set of values (a status, a role, an action, a priority, a
/// workflow, a state) is an enum in every answer, so a client can switch on it exhaustively.
#[test]
fn closed_sets_in_answers_are_enums() {
    let document: Value = serde_json::from_str(&committed()).unwrap();
    let schemas = &document["components"]["schemas"];
    let is_enum = |schema: &Value| -> bool {
        let target = match schema["$ref"].as_str() {
            Some(r) => &schemas[r.trim_start_matches("#/components/schemas/")],
            None => schema,
        };
        target["enum"].is_array() || target["const"].is_string()
    };
    let mut open = Vec::new();
    for (at, object) in answer_objects(&document) {
        for (field, schema) in object["properties"].as_object().unwrap() {
            let closed = matches!(
                field.as_str(),
                "status"
                    | "current_status"
                    | "order_status"
                    | "role"
                    | "action"
                    | "priority"
                    | "workflow"
                    | "state"
            );
            let variants = schema["oneOf"].as_array().cloned().unwrap_or_default();
            let enum_like = is_enum(schema)
                || (!variants.is_empty()
                    && variants
                        .iter()
                        .all(|v| is_enum(v) || v["type"] == serde_json::json!("null")));
            if closed && !enum_like {
                open.push(format!("{at}.{field}: {schema}"));
            }
            // Counts per status name every status as a required property, not a free map.
            let target = match schema["$ref"].as_str() {
                Some(r) => &schemas[r.trim_start_matches("#/components/schemas/")],
                None => schema,
            };
            if field.ends_with("_counts") && target["properties"].as_object().is_none() {
                open.push(format!("{at}.{field}: {schema}"));
            }
        }
    }
    assert!(open.is_empty(), "{open:#?}");
}

/// The handoff payload is a string of JSON whose fields the document names in their order
/// (`contentSchema`), and its example decodes to exactly that object.
#[test]
fn the_handoff_payload_is_described_field_by_field() {
    let document: Value = serde_json::from_str(&committed()).unwrap();
    let schemas = &document["components"]["schemas"];
    let field = &schemas["MyTaskGroup"]["properties"]["handoff_payload"];
    assert_eq!(field["contentMediaType"], "application/json");
    assert_eq!(
        field["contentSchema"]["$ref"],
        "#/components/schemas/HandoffPayload"
    );
    let keys = [
        "sop_slug",
        "sop_version",
        "scene_name",
        "subscene_name",
        "collector_name",
        "collector_operator_id",
        "device_id",
        "device_type",
    ];
    assert_eq!(
        schemas["HandoffPayload"]["required"],
        serde_json::json!(keys)
    );
    let example = field["examples"][0].as_str().unwrap();
    let decoded: serde_json::Map<String, Value> = serde_json::from_str(example).unwrap();
    assert_eq!(decoded.len(), keys.len(), "{example}");
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| example.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(positions.is_sorted(), "keys out of order: {example}");
    assert!(
        !example.contains(' ') && !example.contains("\\u"),
        "{example}"
    );
}

/// The state tables a client needs are in the document itself, under their tags.
#[test]
fn the_document_carries_the_order_and_batch_state_tables() {
    let document: Value = serde_json::from_str(&committed()).unwrap();
    let tag = |name: &str| -> String {
        document["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .and_then(|t| t["description"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let orders = tag("orders");
    for row in [
        "| created / in_progress |",
        "| paused |",
        "| completed |",
        "| cancelled |",
    ] {
        assert!(orders.contains(row), "orders tag lacks {row}");
    }
    let batches = tag("batches");
    for row in [
        "| pending |",
        "| active |",
        "| completed |",
        "| cancelled |",
        "| recalled |",
    ] {
        assert!(batches.contains(row), "batches tag lacks {row}");
    }
}

/// Follows a `$ref` to `components.responses`.
fn resolve<'a>(document: &'a Value, response: &'a Value) -> &'a Value {
    match response["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/responses/");
            &document["components"]["responses"][name]
        }
        None => response,
    }
}

/// The parts of SPEC §4–§6 every operation must document: the bearer scheme and the auth
/// answers when it needs a token, 503 with `Retry-After`, 400 and 413 for a JSON body, and the
/// idempotency headers where a key is taken; every error example is an error body.
#[test]
fn every_operation_documents_the_answers_every_request_can_get() {
    let document = serde_json::to_value(keystone_local::openapi()).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (method, path, operation) in operations(&document) {
        let name = format!("{method} {path}");
        for text in ["summary", "description"] {
            let text = operation[text].as_str().unwrap_or_default();
            assert!(
                !text.is_empty() && !text.contains(['\\', '\n']),
                "{name}: {text:?}"
            );
        }
        let responses = operation["responses"].as_object().unwrap();
        let public = path == "/api/v1/auth/login";
        if !public {
            assert_eq!(
                operation["security"],
                serde_json::json!([{"bearer": []}]),
                "{name}"
            );
            for status in ["401", "403"] {
                assert!(responses.contains_key(status), "{name} lacks {status}");
            }
        }
        let busy = resolve(&document, &responses["503"]);
        assert!(
            busy["headers"]["Retry-After"].is_object(),
            "{name}: 503 Retry-After"
        );
        if operation.get("requestBody").is_some() {
            for status in ["400", "413"] {
                assert!(responses.contains_key(status), "{name} lacks {status}");
            }
        }
        let takes_key = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header");
        let success = responses
            .iter()
            .find(|(status, _)| status.starts_with('2'))
            .map(|(_, r)| r)
            .unwrap();
        assert_eq!(
            success["headers"]["Idempotent-Replayed"].is_object(),
            takes_key,
            "{name}: Idempotent-Replayed documented exactly where Idempotency-Key is taken"
        );
        if takes_key {
            assert!(
                responses.contains_key("422"),
                "{name} lacks 422 for a reused key"
            );
        }
        for (status, response) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
            let response = resolve(&document, response);
            let examples = response["content"]["application/json"]["examples"]
                .as_object()
                .unwrap_or_else(|| panic!("{name} {status} has no examples"));
            for (message, example) in examples {
                assert_eq!(
                    example["value"]["error"],
                    message.as_str(),
                    "{name} {status}"
                );
            }
        }
    }
}

/// The documented examples are what the code sends: a request that breaks a rule gets exactly
/// the body documented under that rule's message.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_documented_error_is_the_body_the_code_sends(pool: sqlx::PgPool) {
    let document = serde_json::to_value(keystone_local::openapi()).unwrap();
    let app = router(pool);
    let token = admin_token();
    let example = |status: &str, message: &str| {
        document["paths"]["/api/v1/orders/{id}"]["get"]["responses"][status]["content"]
            ["application/json"]["examples"][message]["value"]
            .clone()
    };
    let answer = get(&app, "/api/v1/orders/0", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body, example("400", "invalid order id"));
    let answer = get(&app, "/api/v1/orders/424242", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.body, example("404", "order not found"));
}

/// `/openapi.json` is the committed document; `/docs` and its assets come from the binary,
/// and the page names no other host.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_local_stack_serves_the_document_and_its_reference_page(pool: sqlx::PgPool) {
    let app = router(pool);
    let content_type = |r: &TestResponse| r.headers["content-type"].to_str().unwrap().to_owned();
    let document = get(&app, "/openapi.json", None).await;
    assert_eq!(document.status, StatusCode::OK);
    assert_eq!(content_type(&document), "application/json");
    assert_eq!(document.text, committed());

    let page = get(&app, "/docs", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(content_type(&page).starts_with("text/html"));
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "{}",
        page.text
    );
    for (asset, kind) in [
        ("/docs/swagger-ui-bundle.js", "text/javascript"),
        ("/docs/swagger-ui.css", "text/css"),
    ] {
        assert!(page.text.contains(asset), "{asset} not on the page");
        let served = get(&app, asset, None).await;
        assert_eq!(served.status, StatusCode::OK, "{asset}");
        assert!(content_type(&served).starts_with(kind), "{asset}");
        assert!(
            served.text.len() > 100_000,
            "{asset} is {} bytes",
            served.text.len()
        );
    }
}

/// The browser the tests drive: `KEYSTONE_CHROMIUM` (set by the test command), else Debian's
/// `chromium` on the PATH.
fn chromium() -> String {
    std::env::var("KEYSTONE_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned())
}

/// `(METHOD, path)` of every operation Swagger UI rendered into the page.
fn rendered_operations(dom: &str) -> Vec<(String, String)> {
    dom.split(r#"class="opblock-summary-method">"#)
        .skip(1)
        .filter_map(|chunk| {
            let method = chunk.split('<').next()?.to_owned();
            let after = chunk.split(r#"data-path=""#).nth(1)?;
            let path = after.split('"').next()?.to_owned();
            Some((method, path))
        })
        .collect()
}

/// A real headless browser opens `/docs` on a served local stack and finds every operation of
/// the code listed: the viewer loads from the binary and renders the served document.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_headless_browser_lists_every_operation_on_the_reference_page(pool: sqlx::PgPool) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, router(pool)).into_future());
    let profile = std::env::temp_dir().join(format!("keystone-chromium-{}", address.port()));
    let run = tokio::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=30000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("http://{address}/docs"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("chromium did not finish within two minutes")
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}); the test command installs Debian's chromium",
                chromium()
            )
        });
    server.abort();
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered = rendered_operations(&dom);
    for function in keystone_local::HTTP_FUNCTIONS {
        let operation = (function.method.to_owned(), function.path.to_owned());
        assert!(
            rendered.contains(&operation),
            "{} {} is not listed on /docs; rendered: {rendered:?}",
            function.method,
            function.path
        );
    }
    assert_eq!(rendered.len(), keystone_local::HTTP_FUNCTIONS.len());
}

/// Checks one real answer against the document: its status is listed for the operation, its
/// body satisfies that status's schema, and the headers the document marks are there.
struct Contract {
    document: Value,
}

impl Contract {
    fn new() -> Self {
        Self {
            document: serde_json::to_value(keystone_local::openapi()).unwrap(),
        }
    }

    /// Where `instance` breaks `schema` (whose `$ref`s point into the document's components).
    fn violations(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let root = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.document["components"],
            "allOf": [schema],
        });
        jsonschema::validator_for(&root)
            .unwrap()
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    #[track_caller]
    fn check(&self, operation: &str, answer: &TestResponse) {
        let name = format!("{operation} answered {}", answer.status);
        let (method, template) = operation.split_once(' ').unwrap();
        let operation = &self.document["paths"][template][method.to_lowercase()];
        assert!(operation.is_object(), "{name}: no such operation");
        let status = answer.status.as_str();
        let response = &operation["responses"][status];
        assert!(
            response.is_object(),
            "{name}: status not documented: {}",
            answer.text
        );
        if status == "204" {
            assert!(answer.text.is_empty(), "{name}: a 204 with a body");
            return;
        }
        let response = resolve(&self.document, response);
        let errors = self.violations(
            &response["content"]["application/json"]["schema"],
            &answer.body,
        );
        assert!(errors.is_empty(), "{name}: {errors:?}\n{}", answer.text);
        if status == "503" {
            assert!(answer.headers.contains_key("retry-after"), "{name}");
        }
    }
}

/// Who calls in a workflow step.
#[derive(Clone, Copy)]
enum Who {
    Nobody,
    Admin,
    Collector,
}

/// Every success of a whole workflow, and the errors met on the way, satisfy the document:
/// the answers schemathesis rarely reaches with random ids (a completion, a reopen, a
/// finalization with device commands) are checked here on purpose.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_whole_workflow_answers_as_documented(pool: sqlx::PgPool) {
    use Who::{Admin, Collector, Nobody};
    use axum::http::Method;
    use keystone_tests::{ADMIN_PASSWORD, ADMIN_USERNAME, Scenario, send};
    use serde_json::json;
    let contract = Contract::new();
    let s = Scenario::new(&pool, 12, 5, 3).await;
    let (axon_seat, axon) = s
        .add_axon_batch("AX-C", "axon-c", &[("ready", 1), ("in_progress", 1)])
        .await;
    let spare_robot = s.add_robot("spare-c").await;
    let (station, axon_station) = (s.seat.workstation_id, axon_seat.workstation_id);
    let rebind = json!({"robot_id": spare_robot.to_string()});
    let bind = json!({"robot_id": axon_seat.robot_id, "data_collector_id": axon_seat.collector_id});
    let app = router(pool.clone());
    let (batch, order, a, b) = (s.batch_id, s.order_id, s.group_a, s.group_b);
    let seated = s.seat.collector_id;
    let login = json!({"account": ADMIN_USERNAME, "password": ADMIN_PASSWORD});
    let adjusted = json!({"task_groups": [b.entry(4)]});
    let created = json!({"order_id": order, "workstation_id": s.seat.workstation_id,
                         "task_groups": [a.entry(1)]});
    // A table: one request per line.
    #[rustfmt::skip]
    let steps = [
        ("POST /api/v1/auth/login", 0, Nobody, Some(login), 200),
        ("GET /api/v1/auth/me", 0, Collector, None, 200),
        ("GET /api/v1/auth/me", 0, Admin, None, 200),
        ("GET /api/v1/me/batches", 0, Collector, None, 200),
        ("POST /api/v1/me/station/break", 0, Collector, None, 200),
        ("POST /api/v1/me/station/end-break", 0, Collector, None, 200),
        ("GET /api/v1/data-collectors", 0, Admin, None, 200),
        ("GET /api/v1/data-collectors/{id}", seated, Admin, None, 200),
        ("PATCH /api/v1/data-collectors/{id}", seated, Admin, Some(json!({"name": ""})), 400),
        ("DELETE /api/v1/data-collectors/{id}", seated, Admin, None, 409),
        ("POST /api/v1/batches/{id}/complete-tasks", batch, Collector, Some(a.body(2)), 200),
        // The same key again: a replay; with another body: 422.
        ("POST /api/v1/batches/{id}/complete-tasks", batch, Collector, Some(a.body(2)), 200),
        ("POST /api/v1/batches/{id}/complete-tasks", batch, Collector, Some(b.body(1)), 422),
        ("POST /api/v1/batches/{id}/reopen-tasks", batch, Collector, Some(a.body(1)), 200),
        ("GET /api/v1/batches/{id}", batch, Collector, None, 200),
        ("GET /api/v1/orders/{id}", order, Admin, None, 200),
        ("POST /api/v1/batches/{id}/tasks", batch, Admin, Some(adjusted), 200),
        ("POST /api/v1/batches", 0, Admin, Some(created), 201),
        ("POST /api/v1/orders/{id}/pause", order, Admin, None, 200),
        ("POST /api/v1/orders/{id}/resume", order, Admin, None, 200),
        ("PATCH /api/v1/orders/{id}", order, Admin, Some(json!({"target_count": 20})), 200),
        ("PATCH /api/v1/orders/{id}", order, Admin, Some(json!({"target_count": 0})), 400),
        ("POST /api/v1/batches/{id}/cancel", axon, Admin, None, 200),
        ("POST /api/v1/batches/{id}/cancel", axon, Admin, None, 200),
        ("PATCH /api/v1/batches/{id}", batch, Admin, Some(json!({"notes": "left shelf", "metadata": null})), 200),
        ("PATCH /api/v1/batches/{id}", batch, Admin, Some(json!({"status": "recalled"})), 400),
        ("POST /api/v1/batches/{id}/recall", axon, Admin, None, 409),
        ("POST /api/v1/orders/{id}/finalize", order, Admin, None, 200),
        ("POST /api/v1/batches/{id}/recall", batch, Admin, None, 200),
        ("PATCH /api/v1/batches/{id}", axon, Admin, Some(json!({"status": "cancelled"})), 200),
        ("DELETE /api/v1/batches/{id}", batch, Admin, None, 409),
        ("DELETE /api/v1/batches/{id}", axon, Admin, None, 204),
        ("POST /api/v1/orders/{id}/pause", order, Admin, None, 409),
        ("POST /api/v1/batches/{id}/reopen-tasks", batch, Collector, Some(a.body(1)), 409),
        ("GET /api/v1/orders/{id}/notifications", order, Admin, None, 200),
        ("GET /api/v1/orders/{id}", 999_999, Admin, None, 404),
        ("GET /api/v1/me/batches", 0, Admin, None, 403),
        ("GET /api/v1/me/batches", 0, Nobody, None, 401),
        ("GET /api/v1/stations/{id}", station, Admin, None, 200),
        ("PATCH /api/v1/stations/{id}", station, Admin, Some(json!({"name": "WS C", "status": "break"})), 200),
        ("PATCH /api/v1/stations/{id}", station, Admin, Some(json!({"status": "active"})), 409),
        ("DELETE /api/v1/stations/{id}", axon_station, Admin, None, 200),
        ("POST /api/v1/stations", 0, Admin, Some(bind.clone()), 201),
        ("POST /api/v1/stations", 0, Admin, Some(bind), 409),
        ("PATCH /api/v1/stations/{id}", station, Admin, Some(rebind), 200),
        ("DELETE /api/v1/stations/{id}", station, Admin, None, 409),
        ("GET /api/v1/stations/{id}", station, Admin, None, 200),
        ("POST /api/v1/auth/logout", 0, Collector, None, 200),
        ("GET /api/v1/me/batches", 0, Collector, None, 401),
    ];
    let admin = admin_token();
    for (operation, id, who, body, expected) in steps {
        let (method, template) = operation.split_once(' ').unwrap();
        let path = template.replace("{id}", &id.to_string());
        let token = match who {
            Nobody => None,
            Admin => Some(admin.as_str()),
            Collector => Some(s.seat.token.as_str()),
        };
        let key = [("idempotency-key", "workflow-1")];
        let headers: &[(&str, &str)] = if path.ends_with("/complete-tasks") {
            &key
        } else {
            &[]
        };
        let body = body.map_or_else(axum::body::Body::empty, |b| b.to_string().into());
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let answer = send(&app, method, &path, token, headers, body).await;
        assert_eq!(
            answer.status.as_u16(),
            expected,
            "{operation}: {}",
            answer.text
        );
        contract.check(operation, &answer);
    }
}

/// Every example in the document (request bodies from the demo data, success answers, every
/// error body) satisfies the schema it illustrates, so a client generated from the schemas
/// accepts what the examples show.
#[test]
fn every_example_satisfies_its_schema() {
    let contract = Contract::new();
    let document = &contract.document;
    let mut checked = 0;
    for (method, path, operation) in operations(document) {
        let content = &operation["requestBody"]["content"]["application/json"];
        if let Some(example) = content["example"].as_object() {
            // Unknown fields are ignored by the server, so the schema cannot refuse them: an
            // example must still name only fields the body has.
            let name = content["schema"]["$ref"].as_str().unwrap_or_default();
            let name = name.trim_start_matches("#/components/schemas/");
            let fields = &document["components"]["schemas"][name]["properties"];
            for field in example.keys() {
                assert!(
                    fields[field].is_object(),
                    "{method} {path} request example: {field}"
                );
            }
        }
        let mut examples = vec![(
            "request".to_owned(),
            &content["schema"],
            &content["example"],
        )];
        for (status, response) in operation["responses"].as_object().unwrap() {
            let content = &resolve(document, response)["content"]["application/json"];
            if content["example"].is_object() {
                examples.push((status.clone(), &content["schema"], &content["example"]));
            }
            for (message, example) in content["examples"].as_object().into_iter().flatten() {
                examples.push((
                    format!("{status} {message}"),
                    &content["schema"],
                    &example["value"],
                ));
            }
            // A 204 has no body to show.
            assert!(
                !status.starts_with('2') || status == "204" || content["example"].is_object(),
                "{method} {path} {status} has no example"
            );
        }
        for (what, schema, example) in examples.into_iter().filter(|(_, _, e)| !e.is_null()) {
            let errors = contract.violations(schema, example);
            assert!(errors.is_empty(), "{method} {path} {what}: {errors:?}");
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} examples");
}

/// The ways a body can carry a NUL for one operation: the body and the `field` the 400 must
/// name. Every string of the documented example, every string property of the schema, and a
/// free-form object's value and key.
fn nul_bodies(document: &Value, operation: &Value) -> Vec<(Value, String)> {
    use serde_json::json;
    let content = &operation["requestBody"]["content"]["application/json"];
    let example = content["example"].clone();
    let reference = content["schema"]["$ref"].as_str().unwrap();
    let name = reference.trim_start_matches("#/components/schemas/");
    let properties = document["components"]["schemas"][name]["properties"]
        .as_object()
        .unwrap();
    let mut bodies = Vec::new();
    let mut leaves = Vec::new();
    string_leaves(&example, &mut Vec::new(), &mut leaves);
    for pointer in leaves {
        let mut body = example.clone();
        *body.pointer_mut(&pointer).unwrap() = json!("x\u{0}y");
        let field = pointer.trim_start_matches('/').replace('/', ".");
        bodies.push((body, field));
    }
    for (property, schema) in properties {
        let types = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            // No type: free-form JSON (metadata).
            _ => vec!["object"],
        };
        let mut with = |value: Value, field: &str| {
            let mut body = example.clone();
            body[property.as_str()] = value;
            bodies.push((body, field.to_owned()));
        };
        if types.contains(&"string") {
            with(json!("\u{0}"), property);
        }
        if types.contains(&"object") {
            with(json!({"note": "a\u{0}"}), &format!("{property}.note"));
            with(json!({"k\u{0}": 1}), property);
        }
    }
    bodies
}

fn string_leaves(value: &Value, path: &mut Vec<String>, found: &mut Vec<String>) {
    match value {
        Value::String(_) => found.push(format!("/{}", path.join("/"))),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                string_leaves(item, path, found);
                path.pop();
            }
        }
        Value::Object(members) => {
            for (key, member) in members {
                path.push(key.clone());
                string_leaves(member, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}

/// SPEC §5: a NUL in any string of any operation's body (an object's keys included) is a 400
/// naming the field, never a 500 — and the check happens before the database is asked, so
/// even an anonymous login cannot trip the 5xx alarm.
#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn a_nul_in_any_string_of_any_body_is_a_400_naming_the_field(pool: sqlx::PgPool) {
    use axum::http::Method;
    use keystone_tests::{Scenario, send};
    let contract = Contract::new();
    let document = &contract.document;
    let s = Scenario::new(&pool, 12, 5, 3).await;
    let app = router(pool.clone());
    let admin = admin_token();
    let mut sent = 0;
    for (method, template, operation) in operations(document) {
        if operation.get("requestBody").is_none() {
            continue;
        }
        let path = template.replace("{id}", &s.batch_id.to_string());
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let collector_only = operation["responses"]["403"]["content"].to_string();
        let token = if collector_only.contains("data collector role required") {
            s.seat.token.as_str()
        } else {
            admin.as_str()
        };
        for (body, field) in nul_bodies(document, operation) {
            let answer = send(
                &app,
                method.clone(),
                &path,
                Some(token),
                &[],
                body.to_string(),
            )
            .await;
            let name = format!("{method} {template} with {body}");
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{name}: {}",
                answer.text
            );
            assert_eq!(answer.body["field"], field.as_str(), "{name}");
            contract.check(&format!("{method} {template}"), &answer);
            sent += 1;
        }
    }
    // Login (2 fields), create-batch (name, notes, metadata ×2, the example's notes).
    assert!(sent >= 8, "only {sent} bodies sent");
}
