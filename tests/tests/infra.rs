//! Deployment checks (SPEC §9): the SAM template lints clean with a linter that applies the
//! SAM transform, and it deploys exactly the functions and routes the code has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use axum::http::{Method, StatusCode};
use keystone_tests::*;
use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn template_text() -> String {
    std::fs::read_to_string(repo().join("infra/template.yaml")).unwrap()
}

/// The linter tests/run.sh chose: cfn-lint 1.51 (1.58 stopped applying the SAM transform).
fn cfn_lint() -> Command {
    Command::new(std::env::var("KEYSTONE_CFN_LINT").unwrap_or_else(|_| "cfn-lint".to_owned()))
}

#[test]
fn the_template_passes_cfn_lint_informational_checks_included() {
    let output = cfn_lint()
        .args(["--include-checks", "I", "--"])
        .arg(repo().join("infra/template.yaml"))
        .output()
        .expect("cfn-lint runs");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_linter_rejects_a_template_only_the_sam_transform_can_find_broken() {
    // A route pointing at an API that does not exist is valid YAML and valid CloudFormation
    // syntax; only the SAM transform notices. A linter that skips the transform passes it.
    let broken = template_text().replacen("ApiId: !Ref HttpApi", "ApiId: !Ref NoSuchHttpApi", 1);
    let template = TempFile::new("broken.yaml", &broken);
    let output = cfn_lint().arg(&template.0).output().expect("cfn-lint runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "the broken template passed: {report}"
    );
    assert!(
        report.contains("E0001") && report.contains("ApiId"),
        "{report}"
    );
}

/// `(binary, [(method, path)])` of every `AWS::Serverless::Function`, from the template.
fn template_functions() -> Vec<(String, Vec<(String, String)>)> {
    let template: Value = serde_yaml::from_str(&template_text()).unwrap();
    let resources = template["Resources"].as_mapping().unwrap();
    let mut functions = Vec::new();
    for (_, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        assert_eq!(
            resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda")
        );
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut routes = Vec::new();
        if let Some(events) = resource["Properties"]["Events"].as_mapping() {
            for (_, event) in events {
                if event["Type"].as_str() == Some("HttpApi") {
                    let properties = &event["Properties"];
                    routes.push((
                        properties["Method"].as_str().unwrap().to_owned(),
                        properties["Path"].as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
        functions.push((binary, routes));
    }
    functions
}

/// Lambda binaries of the workspace: every `[[bin]]` under functions/ except crates marked
/// `[package.metadata.keystone] lambda = false` (keystone-local).
fn lambda_binaries() -> Vec<String> {
    let mut binaries = Vec::new();
    for entry in std::fs::read_dir(repo().join("functions")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let manifest: toml::Table = std::fs::read_to_string(&manifest).unwrap().parse().unwrap();
        let lambda = manifest["package"]
            .get("metadata")
            .and_then(|m| m.get("keystone"))
            .and_then(|k| k.get("lambda"));
        if lambda.and_then(toml::Value::as_bool) == Some(false) {
            continue;
        }
        for bin in manifest["bin"].as_array().unwrap() {
            binaries.push(bin["name"].as_str().unwrap().to_owned());
        }
    }
    binaries.sort();
    binaries
}

#[test]
fn every_lambda_binary_has_exactly_one_template_function_and_vice_versa() {
    let mut deployed: Vec<String> = template_functions()
        .into_iter()
        .map(|(binary, _)| binary)
        .collect();
    deployed.sort();
    assert_eq!(deployed, lambda_binaries());
}

#[test]
fn the_template_routes_are_the_code_routes() {
    let template: BTreeMap<String, BTreeSet<(String, String)>> = template_functions()
        .into_iter()
        .filter(|(_, routes)| !routes.is_empty())
        .map(|(binary, routes)| (binary, routes.into_iter().collect()))
        .collect();
    let code: BTreeMap<String, BTreeSet<(String, String)>> = keystone_local::HTTP_FUNCTIONS
        .iter()
        .map(|f| {
            (
                f.binary.to_owned(),
                BTreeSet::from([(f.method.to_owned(), f.path.to_owned())]),
            )
        })
        .collect();
    assert_eq!(template, code);
}

/// `(METHOD, path)` of every operation in an API document.
fn documented_routes(document: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert((method.to_uppercase(), path.clone()));
        }
    }
    routes
}

/// SPEC §10: the document describes exactly the routes the code serves and the template
/// deploys, both for the generated document and for the committed one.
#[test]
fn the_api_document_routes_are_the_code_and_template_routes() {
    let code: BTreeSet<(String, String)> = keystone_local::HTTP_FUNCTIONS
        .iter()
        .map(|f| (f.method.to_owned(), f.path.to_owned()))
        .collect();
    let template: BTreeSet<(String, String)> = template_functions()
        .into_iter()
        .flat_map(|(_, routes)| routes)
        .collect();
    let generated = serde_json::to_value(keystone_local::openapi()).unwrap();
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("docs/openapi.json")).unwrap())
            .unwrap();
    assert_eq!(
        documented_routes(&generated),
        code,
        "generated document vs code"
    );
    assert_eq!(
        documented_routes(&committed),
        code,
        "docs/openapi.json vs code"
    );
    assert_eq!(template, code, "infra/template.yaml vs code");
}

#[sqlx::test(migrator = "keystone_store::MIGRATOR")]
async fn the_merged_router_serves_every_code_route(pool: sqlx::PgPool) {
    let router = router(pool);
    for function in keystone_local::HTTP_FUNCTIONS {
        let method = Method::from_bytes(function.method.as_bytes()).unwrap();
        let path = function.path.replace("{id}", "1");
        let response = send(&router, method, &path, None, &[], "{}").await;
        assert!(
            ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&response.status),
            "{} {} is not routed: {}",
            function.method,
            path,
            response.status
        );
    }
}

fn template() -> Value {
    serde_yaml::from_str(&template_text()).unwrap()
}

/// The template's `AWS::Serverless::Function`s by logical id.
fn function_resources(template: &Value) -> BTreeMap<String, Value> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(id, r)| (id.as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

#[test]
fn only_db_migrate_holds_the_master_secret_and_every_other_function_connects_with_iam() {
    let template = template();
    let master = "DbCluster.MasterUserSecret.SecretArn";
    for (id, function) in function_resources(&template) {
        let policies = serde_yaml::to_string(&function["Properties"]["Policies"]).unwrap();
        if id == "DbMigrateFunction" {
            assert!(policies.contains(master), "{id}: {policies}");
            let env = &function["Properties"]["Environment"]["Variables"];
            assert_eq!(env["DB_IAM_AUTH"].as_str(), Some("false"));
        } else {
            assert!(
                !policies.contains(master),
                "{id} can read the master secret: {policies}"
            );
            assert!(policies.contains("DbConnectPolicy"), "{id}: {policies}");
        }
    }
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Tracing"].as_str(), Some("Active"));
    let env = &globals["Environment"]["Variables"];
    assert_eq!(env["DB_IAM_AUTH"].as_str(), Some("true"));
    assert_eq!(env["DB_USER"].as_str(), Some("keystone_app"));
    assert!(env.get("DB_SECRET_ARN").is_none());
    let proxy = &template["Resources"]["DbProxy"]["Properties"];
    assert_eq!(proxy["RequireTLS"].as_bool(), Some(true));
    assert_eq!(proxy["DefaultAuthScheme"].as_str(), Some("IAM_AUTH"));
}

#[test]
fn vpc_endpoints_are_optional_and_data_survives_a_stack_deletion_but_not_a_failed_create() {
    let template = template();
    let resources = &template["Resources"];
    for endpoint in ["SecretsManagerEndpoint", "SqsEndpoint"] {
        assert_eq!(
            resources[endpoint]["Condition"].as_str(),
            Some("CreateVpcEndpoints"),
            "{endpoint}"
        );
    }
    // Named resources that hold data survive a stack deletion, but not the rollback of a
    // failed first deploy: with plain `Retain` they would stay behind under their fixed names
    // and the retry would fail on "already exists".
    for (id, on_delete, on_replace) in [
        ("DbCluster", "Snapshot", "Snapshot"),
        ("JwtSecret", "RetainExceptOnCreate", "Retain"),
        ("AdminPasswordSecret", "RetainExceptOnCreate", "Retain"),
        ("RecorderCommandsQueue", "RetainExceptOnCreate", "Retain"),
        (
            "RecorderCommandsDeadLetterQueue",
            "RetainExceptOnCreate",
            "Retain",
        ),
    ] {
        assert_eq!(
            resources[id]["DeletionPolicy"].as_str(),
            Some(on_delete),
            "{id}"
        );
        assert_eq!(
            resources[id]["UpdateReplacePolicy"].as_str(),
            Some(on_replace),
            "{id}"
        );
    }
    for (id, resource) in resources.as_mapping().unwrap() {
        assert_ne!(
            resource["DeletionPolicy"].as_str(),
            Some("Retain"),
            "{id:?} would survive a failed first deploy and block the retry"
        );
    }
}

#[test]
fn the_login_route_has_a_tighter_throttle_than_the_api() {
    let template = template();
    let api = &template["Resources"]["HttpApi"]["Properties"];
    let login = &api["RouteSettings"]["POST /api/v1/auth/login"];
    let parameter = |name: &str| {
        template["Parameters"][name]["Default"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} has a numeric default"))
    };
    let rate = serde_yaml::to_string(&login["ThrottlingRateLimit"]).unwrap();
    assert!(rate.contains("LoginThrottleRateLimit"), "{rate}");
    assert!(
        parameter("LoginThrottleRateLimit")
            < api["DefaultRouteSettings"]["ThrottlingRateLimit"]
                .as_u64()
                .unwrap()
    );
    assert!(
        parameter("LoginThrottleBurstLimit")
            < api["DefaultRouteSettings"]["ThrottlingBurstLimit"]
                .as_u64()
                .unwrap()
    );
}

/// `Name=value` pairs of an environment's `parameter_overrides` in infra/samconfig.toml.
fn samconfig_parameters(environment: &str) -> BTreeMap<String, String> {
    let config: toml::Table = std::fs::read_to_string(repo().join("infra/samconfig.toml"))
        .unwrap()
        .parse()
        .unwrap();
    config[environment]["deploy"]["parameters"]["parameter_overrides"]
        .as_array()
        .unwrap_or_else(|| panic!("{environment}: parameter_overrides is a list"))
        .iter()
        .map(|pair| {
            let (name, value) = pair.as_str().unwrap().split_once('=').unwrap();
            // An empty value is written `Name=""`: SAM CLI refuses a bare `Name=`.
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn every_environment_sets_every_template_parameter_in_samconfig() {
    let template = template();
    let parameters: BTreeSet<String> = template["Parameters"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    for environment in ["dev", "prod"] {
        let set: BTreeSet<String> = samconfig_parameters(environment).into_keys().collect();
        assert_eq!(set, parameters, "{environment}");
    }
    // `--parameter-overrides` on the command line replaces samconfig's list (aws-sam-cli issue
    // 2380): the deploy guide must not tell anyone to use it.
    for doc in ["docs/deploy.md", "README.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        for line in text.lines().filter(|l| l.contains("--parameter-overrides")) {
            assert!(
                line.contains("not") || line.contains("never") || line.contains("Do not"),
                "{doc} passes --parameter-overrides: {line}"
            );
        }
    }
}

/// SPEC §9 "Operations": an alarm on every signal an operator must act on, all notifying the
/// stack's alarm topic, and a dashboard whose body is JSON once CloudFormation substitutes it.
#[test]
fn the_template_alarms_on_every_operational_signal_and_has_a_dashboard() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let alarms: Vec<&Value> = resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .collect();
    let watched = |alarm: &Value| -> Vec<String> {
        let properties = &alarm["Properties"];
        let mut names: Vec<String> = properties["MetricName"]
            .as_str()
            .map(str::to_owned)
            .into_iter()
            .collect();
        if let Some(metrics) = properties["Metrics"].as_sequence() {
            names.extend(metrics.iter().filter_map(|m| {
                m["MetricStat"]["Metric"]["MetricName"]
                    .as_str()
                    .map(str::to_owned)
            }));
        }
        names
    };
    let all: Vec<String> = alarms.iter().flat_map(|a| watched(a)).collect();
    for signal in [
        "5xx",
        "Errors",
        "Throttles",
        "OutboxOldestUnpublishedAgeSeconds",
        "ApproximateAgeOfOldestMessage",
        "ApproximateNumberOfMessagesVisible",
        "OutboxParkedRows",
        "RelayErrors",
    ] {
        assert!(
            all.iter().any(|n| n == signal),
            "no alarm on {signal}: {all:?}"
        );
    }
    // Every alarm notifies the stack's own topic, in every stage, when it fires and when it
    // clears.
    for alarm in &alarms {
        for actions in ["AlarmActions", "OKActions"] {
            let actions = serde_yaml::to_string(&alarm["Properties"][actions]).unwrap();
            assert_eq!(actions.trim(), "- !Ref AlarmTopic", "{actions}");
        }
    }
    assert_eq!(
        template["Resources"]["AlarmTopic"]["Type"].as_str(),
        Some("AWS::SNS::Topic")
    );
    // The functions emit to the namespace and dimension the alarms read.
    assert_eq!(keystone_http::telemetry::NAMESPACE, "Keystone");

    let dashboard = &template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"];
    let body = serde_yaml::to_string(dashboard).unwrap();
    let Value::Tagged(tagged) = dashboard else {
        panic!("DashboardBody is a !Sub: {body}")
    };
    let text = tagged.value[0].as_str().unwrap();
    let substituted = fill_placeholders(text);
    let parsed: serde_json::Value = serde_json::from_str(&substituted).unwrap();
    assert!(parsed["widgets"].as_array().unwrap().len() >= 6);
}

/// `${…}` placeholders replaced by a plain word, as CloudFormation would fill them in.
fn fill_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                out.push('X');
                rest = &rest[start + end + 1..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every function is watched by an errors alarm and a throttles alarm (CloudWatch allows ten
/// metrics per alarm, so they are split in groups).
#[test]
fn every_function_is_in_an_errors_and_a_throttles_alarm() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    for metric in ["Errors", "Throttles"] {
        let mut watched = BTreeSet::new();
        for resource in resources.values() {
            let Some(metrics) = resource["Properties"]["Metrics"].as_sequence() else {
                continue;
            };
            for m in metrics {
                let stat = &m["MetricStat"]["Metric"];
                if stat["MetricName"].as_str() == Some(metric) {
                    let dimension = serde_yaml::to_string(&stat["Dimensions"][0]["Value"]).unwrap();
                    watched.insert(dimension.trim().trim_start_matches("!Ref ").to_owned());
                }
            }
        }
        let functions: BTreeSet<String> = function_resources(&template).into_keys().collect();
        assert_eq!(watched, functions, "{metric}");
    }
}

// ------------------------------------------------------------------ the current SAM CLI

/// The current AWS SAM CLI tests/run.sh installed (tests/support/sam.sh), with no AWS
/// credentials, no region and no instance metadata: it can parse and lint, never call AWS.
#[track_caller]
fn sam() -> Command {
    let path = std::env::var("KEYSTONE_SAM").expect(
        "KEYSTONE_SAM is unset: run the tests through tests/run.sh, which installs aws-sam-cli",
    );
    let mut command = Command::new(path);
    command
        .current_dir(repo().join("infra"))
        .env("SAM_CLI_TELEMETRY", "0")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN");
    command
}

/// Runs a SAM CLI command: whether it succeeded, and everything it printed.
fn run_sam(command: &mut Command) -> (bool, String) {
    let output = command.output().expect("sam runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// A file under the system's temporary folder that is removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("keystone-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What `sam deploy --config-env <environment>` makes of a samconfig file: the parameters it
/// would hand to CloudFormation, or the reason it stopped before that. It stops right after
/// (no region to create its managed stack in), so nothing is sent anywhere.
fn sam_deploy_parameters(
    config: &Path,
    environment: &str,
) -> Result<BTreeMap<String, String>, String> {
    let (succeeded, log) = run_sam(
        sam()
            .args([
                "deploy",
                "--debug",
                "--config-env",
                environment,
                "--config-file",
            ])
            .arg(config),
    );
    assert!(!succeeded, "sam deploy went on without AWS: {log}");
    // `Converted N parameters: {'Stage': 'dev', …}`, a Python dict of plain strings.
    let Some(line) = log
        .lines()
        .find(|l| l.contains("Converted ") && l.contains(" parameters: {"))
    else {
        return Err(log);
    };
    let dict = &line[line.find('{').unwrap() + 1..line.rfind('}').unwrap()];
    let mut parameters = BTreeMap::new();
    for pair in dict.split("', '") {
        let pair = pair.trim_matches('\'');
        let (name, value) = pair.split_once("': '").unwrap_or_else(|| {
            // An empty value: `'AlarmEmail': ''`.
            (pair.trim_end_matches("': ").trim_end_matches("':"), "")
        });
        parameters.insert(name.to_owned(), value.to_owned());
    }
    Ok(parameters)
}

/// SPEC §9 "Deploy as written": `sam deploy --config-env <stage>` accepts the committed
/// samconfig for every stage and hands CloudFormation exactly its parameters (the current SAM
/// CLI refuses an entry without a value, such as `JwtIssuer=`).
#[test]
fn the_current_sam_cli_reads_every_environment_of_samconfig() {
    let config = repo().join("infra/samconfig.toml");
    for environment in ["dev", "prod"] {
        let parameters = sam_deploy_parameters(&config, environment)
            .unwrap_or_else(|log| panic!("{environment}: sam deploy refused samconfig: {log}"));
        assert_eq!(
            parameters,
            samconfig_parameters(environment),
            "{environment}"
        );
    }
}

#[test]
fn the_current_sam_cli_refuses_a_samconfig_entry_without_a_value() {
    let broken = std::fs::read_to_string(repo().join("infra/samconfig.toml"))
        .unwrap()
        .replacen("\"JwtIssuer=keystone-dev\"", "\"JwtIssuer=\"", 1);
    assert!(broken.contains("\"JwtIssuer=\""));
    let config = TempFile::new("samconfig.toml", &broken);
    let log = sam_deploy_parameters(&config.0, "dev").expect_err("the broken samconfig parsed");
    assert!(
        log.contains("Invalid value for '--parameter-overrides'"),
        "{log}"
    );
}

/// `sam validate --lint`: the SAM transform and the current cfn-lint with current AWS data
/// (retired engine versions, for one), as a new operator would run it. Answers the report.
fn sam_validate_lint(template: &Path) -> Result<String, String> {
    let (succeeded, report) = run_sam(
        sam()
            .args(["validate", "--lint", "--template"])
            .arg(template),
    );
    if succeeded { Ok(report) } else { Err(report) }
}

#[test]
fn the_template_passes_the_current_sam_cli_lint() {
    let report = sam_validate_lint(&repo().join("infra/template.yaml"))
        .unwrap_or_else(|report| panic!("{report}"));
    assert!(report.contains("is a valid SAM Template"), "{report}");
}

#[test]
fn the_current_sam_cli_lint_refuses_an_engine_version_new_clusters_cannot_use() {
    let text = template_text();
    let engine = template()["Resources"]["DbCluster"]["Properties"]["EngineVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let broken = text.replacen(
        &format!("EngineVersion: \"{engine}\""),
        "EngineVersion: \"16.4\"",
        1,
    );
    assert_ne!(broken, text);
    let template = TempFile::new("deprecated-engine.yaml", &broken);
    let report = sam_validate_lint(&template.0).expect_err("a retired engine version passed");
    assert!(report.contains("W3690"), "{report}");
}

// ------------------------------------------------------------------ CORS

/// Route methods the template's CORS configuration does not allow: a browser's preflight
/// for any of them fails.
fn methods_missing_from_cors(template: &Value) -> BTreeSet<String> {
    let allowed: BTreeSet<String> =
        template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]["AllowMethods"]
            .as_sequence()
            .map(|methods| {
                methods
                    .iter()
                    .filter_map(|m| m.as_str().map(str::to_uppercase))
                    .collect()
            })
            .unwrap_or_default();
    function_resources(template)
        .values()
        .filter_map(|f| f["Properties"]["Events"].as_mapping())
        .flat_map(|events| events.values())
        .filter(|event| event["Type"].as_str() == Some("HttpApi"))
        .filter_map(|event| {
            event["Properties"]["Method"]
                .as_str()
                .map(str::to_uppercase)
        })
        .filter(|method| !allowed.contains(method))
        .collect()
}

#[test]
fn cors_allows_every_route_method_of_the_template() {
    assert_eq!(methods_missing_from_cors(&template()), BTreeSet::new());
    // The local stack's CORS layer allows the same methods.
    let local = keystone_local::CORS_METHODS
        .iter()
        .map(|m| m.to_string())
        .collect::<BTreeSet<_>>();
    for function in keystone_local::HTTP_FUNCTIONS {
        assert!(local.contains(function.method), "{}", function.method);
    }
}

#[test]
fn the_cors_check_finds_a_route_method_the_configuration_misses() {
    let broken: Value = serde_yaml::from_str(&template_text().replacen(
        "AllowMethods: [GET, POST, PATCH, DELETE, OPTIONS]",
        "AllowMethods: [GET, POST, OPTIONS]",
        1,
    ))
    .unwrap();
    assert_eq!(
        methods_missing_from_cors(&broken),
        BTreeSet::from(["DELETE".to_owned(), "PATCH".to_owned()])
    );
}

// ------------------------------------------------------------------ time budgets

/// API Gateway HTTP API's integration timeout: past it the client gets a 503 whatever the
/// function does.
const API_GATEWAY_LIMIT_SECONDS: f64 = 30.0;

/// The figures of docs/deploy.md's time budget, as the template and the code defaults set them.
#[derive(Debug)]
struct Budget {
    lock_timeout: f64,
    statement_timeout: f64,
    idle_in_transaction_timeout: f64,
    acquire_timeout: f64,
    borrow_timeout: f64,
    publish_deadline: f64,
    http_timeout: f64,
    /// Timeouts of the functions behind a route, by logical id.
    route_timeouts: BTreeMap<String, f64>,
}

fn seconds_of_ms(value: &Value) -> f64 {
    value.as_str().unwrap().parse::<f64>().unwrap() / 1000.0
}

fn budget(template: &Value) -> Budget {
    let migrate_env =
        &template["Resources"]["DbMigrateFunction"]["Properties"]["Environment"]["Variables"];
    let http_timeout = template["Globals"]["Function"]["Timeout"].as_f64().unwrap();
    let route_timeouts = function_resources(template)
        .into_iter()
        .filter(|(_, f)| {
            f["Properties"]["Events"]
                .as_mapping()
                .is_some_and(|events| {
                    events
                        .values()
                        .any(|e| e["Type"].as_str() == Some("HttpApi"))
                })
        })
        .map(|(id, f)| {
            let timeout = f["Properties"]["Timeout"].as_f64().unwrap_or(http_timeout);
            (id, timeout)
        })
        .collect();
    let defaults = keystone_store::config::DbConfig::from_lookup(&|name: &str| {
        (name == "DATABASE_URL").then(|| "postgres://localhost/keystone".to_owned())
    })
    .unwrap();
    Budget {
        lock_timeout: seconds_of_ms(&migrate_env["DB_LOCK_TIMEOUT_MS"]),
        statement_timeout: seconds_of_ms(&migrate_env["DB_STATEMENT_TIMEOUT_MS"]),
        idle_in_transaction_timeout: seconds_of_ms(&migrate_env["DB_IDLE_IN_TRANSACTION_TIMEOUT_MS"]),
        acquire_timeout: defaults.acquire_timeout.as_secs_f64(),
        borrow_timeout: template["Resources"]["DbProxyTargetGroup"]["Properties"]
            ["ConnectionPoolConfigurationInfo"]["ConnectionBorrowTimeout"]
            .as_f64()
            .unwrap(),
        publish_deadline: keystone_http::config::DEFAULT_PUBLISH_DEADLINE.as_secs_f64(),
        http_timeout,
        route_timeouts,
    }
}

/// What breaks the nesting: database limits < Lambda timeout < API Gateway's 30 s, with the
/// worst single blocked request (a connection from the pool, one from the proxy, one statement
/// to its limit, the publishing after commit) inside the Lambda timeout.
fn budget_violations(budget: &Budget) -> Vec<String> {
    let mut violations = Vec::new();
    if budget.lock_timeout >= budget.statement_timeout {
        violations.push(format!(
            "lock timeout {budget:?} is not below the statement timeout"
        ));
    }
    let worst = budget.acquire_timeout
        + budget.borrow_timeout
        + budget.statement_timeout
        + budget.publish_deadline;
    for (id, timeout) in &budget.route_timeouts {
        if worst >= *timeout {
            violations.push(format!(
                "{id}: a blocked request may need {worst} s, its Lambda timeout is {timeout} s"
            ));
        }
        if budget.idle_in_transaction_timeout >= *timeout {
            violations.push(format!("{id}: the idle limit outlives the function"));
        }
        if *timeout >= API_GATEWAY_LIMIT_SECONDS {
            violations.push(format!(
                "{id}: Lambda timeout {timeout} s is not below API Gateway's {API_GATEWAY_LIMIT_SECONDS} s"
            ));
        }
    }
    violations
}

#[test]
fn the_time_budgets_nest_and_docs_deploy_md_states_them() {
    let budget = budget(&template());
    assert_eq!(budget_violations(&budget), Vec::<String>::new());
    // db-migrate writes the same limits the code and the migrations use by default.
    let defaults = keystone_store::TransactionLimits::default();
    assert_eq!(budget.lock_timeout, defaults.lock_timeout.as_secs_f64());
    assert_eq!(
        budget.statement_timeout,
        defaults.statement_timeout.as_secs_f64()
    );
    assert_eq!(
        budget.idle_in_transaction_timeout,
        defaults.idle_in_transaction_timeout.as_secs_f64()
    );
    let doc = std::fs::read_to_string(repo().join("docs/deploy.md")).unwrap();
    for (what, seconds) in [
        ("`lock_timeout`", budget.lock_timeout),
        ("`statement_timeout`", budget.statement_timeout),
        (
            "`idle_in_transaction_session_timeout`",
            budget.idle_in_transaction_timeout,
        ),
        ("pool acquire timeout", budget.acquire_timeout),
        ("RDS Proxy borrow timeout", budget.borrow_timeout),
        ("publishing after commit", budget.publish_deadline),
        ("Lambda timeout, HTTP functions", budget.http_timeout),
        ("API Gateway integration timeout", API_GATEWAY_LIMIT_SECONDS),
    ] {
        let row = format!("| {what} | {seconds} s |");
        assert!(doc.contains(&row), "docs/deploy.md lacks the row {row}");
    }
}

#[test]
fn the_budget_check_finds_a_lambda_timeout_below_the_statement_timeout() {
    let broken: Value =
        serde_yaml::from_str(&template_text().replacen("    Timeout: 25\n", "    Timeout: 5\n", 1))
            .unwrap();
    let violations = budget_violations(&budget(&broken));
    assert!(
        violations
            .iter()
            .any(|v| v.contains("Lambda timeout is 5 s")),
        "{violations:?}"
    );
}

/// The regions whose Amazon RDS CAs the compiled-in bundle holds, read from the certificates'
/// subjects ("Amazon RDS us-east-1 Root CA …", stored as plain text inside the DER).
fn bundle_regions() -> BTreeSet<String> {
    use base64::Engine;
    let bundle =
        std::fs::read_to_string(repo().join("shared/store/certs/rds-ca-bundle.pem")).unwrap();
    let mut regions = BTreeSet::new();
    for block in bundle.split("-----BEGIN CERTIFICATE-----").skip(1) {
        let body: String = block
            .split("-----END CERTIFICATE-----")
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        let text = String::from_utf8_lossy(&der);
        for name in text.split("Amazon RDS ").skip(1) {
            let word = name.split(' ').next().unwrap_or_default();
            let parts: Vec<&str> = word.split('-').collect();
            let is_region = parts.len() >= 3
                && parts[0].len() == 2
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
                && parts.last().unwrap().chars().all(|c| c.is_ascii_digit());
            if is_region {
                regions.insert(word.to_owned());
            }
        }
    }
    regions
}

#[test]
fn the_template_deploys_only_to_regions_whose_rds_ca_the_functions_carry() {
    let template = template();
    let allowed: BTreeSet<String> = template["Rules"]["RegionHasRdsCa"]["Assertions"][0]["Assert"]
        ["Fn::Contains"][0]
        .as_sequence()
        .expect("the region rule lists regions")
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let carried = bundle_regions();
    assert!(
        carried.len() >= 20 && carried.contains("us-east-1"),
        "{carried:?}"
    );
    assert_eq!(
        allowed, carried,
        "the region rule and the CA bundle disagree"
    );
}
