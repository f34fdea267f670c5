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
    let path = std::env::temp_dir().join(format!("keystone-broken-{}.yaml", std::process::id()));
    std::fs::write(&path, broken).unwrap();
    let output = cfn_lint().arg(&path).output().expect("cfn-lint runs");
    let _ = std::fs::remove_file(&path);
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
fn vpc_endpoints_are_optional_and_data_survives_a_stack_deletion() {
    let template = template();
    let resources = &template["Resources"];
    for endpoint in ["SecretsManagerEndpoint", "SqsEndpoint"] {
        assert_eq!(
            resources[endpoint]["Condition"].as_str(),
            Some("CreateVpcEndpoints"),
            "{endpoint}"
        );
    }
    for (id, policy) in [
        ("DbCluster", "Snapshot"),
        ("JwtSecret", "Retain"),
        ("AdminPasswordSecret", "Retain"),
        ("RecorderCommandsQueue", "Retain"),
        ("RecorderCommandsDeadLetterQueue", "Retain"),
    ] {
        assert_eq!(
            resources[id]["DeletionPolicy"].as_str(),
            Some(policy),
            "{id}"
        );
        assert_eq!(
            resources[id]["UpdateReplacePolicy"].as_str(),
            Some(policy),
            "{id}"
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
/// optional topic, and a dashboard whose body is JSON once CloudFormation substitutes it.
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
    for alarm in &alarms {
        let actions = serde_yaml::to_string(&alarm["Properties"]["AlarmActions"]).unwrap();
        assert!(actions.contains("HasAlarmTopic"), "{actions}");
    }
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
