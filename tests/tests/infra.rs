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
fn the_template_passes_cfn_lint() {
    let output = cfn_lint()
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
