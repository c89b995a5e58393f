//! The OpenAPI document (README, "The OpenAPI document"): it names every route the
//! server registers and nothing else, it is served, and its examples are answered as
//! it documents them.

use std::collections::BTreeSet;

use kefu_api::catalog;
use kefu_server::admin::registered_routes;
use kefu_server::openapi::{OPERATIONS, document};
use serde_json::{Value, json};

use crate::helpers::TestServer;

const METHODS: [&str; 4] = ["get", "post", "patch", "delete"];

/// Every (method, path) the document names.
fn documented() -> BTreeSet<(String, String)> {
    let document = document();
    let mut all = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                all.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    all
}

#[test]
fn every_admin_route_is_documented_and_every_documented_one_registered() {
    let registered: BTreeSet<(String, String, bool)> = registered_routes()
        .into_iter()
        .map(|(route, guarded)| (route.method.to_owned(), route.path.to_owned(), guarded))
        .collect();
    let table: BTreeSet<(String, String, bool)> = OPERATIONS
        .iter()
        .map(|op| (op.method.to_owned(), op.path.to_owned(), op.guarded))
        .collect();
    assert_eq!(
        registered.len(),
        registered_routes().len(),
        "a route registered twice"
    );
    assert_eq!(
        registered.symmetric_difference(&table).collect::<Vec<_>>(),
        Vec::<&(String, String, bool)>::new(),
        "the admin router and the document's table of operations differ"
    );
    // The security the document gives each operation is the router's.
    let document = document();
    for (method, path, guarded) in &registered {
        let operation = &document["paths"][path][method.to_ascii_lowercase()];
        assert_eq!(
            operation["security"].as_array().unwrap().is_empty(),
            !guarded,
            "{method} {path}"
        );
    }
}

#[test]
fn the_document_names_every_wechat_path_and_method_served_and_no_other() {
    let mut served = BTreeSet::new();
    for (path, method) in kefu_server::wechat_paths() {
        let methods: &[&str] = match method {
            kefu_api::Method::Get => &["GET"],
            kefu_api::Method::Post => &["POST"],
            kefu_api::Method::GetOrPost => &["GET", "POST"],
        };
        for method in methods {
            served.insert(((*method).to_owned(), path.to_owned()));
        }
    }
    for (method, path, _) in registered_routes()
        .into_iter()
        .map(|(r, g)| (r.method, r.path, g))
    {
        served.insert((method.to_owned(), path.to_owned()));
    }
    assert_eq!(documented(), served);
}

#[tokio::test]
async fn the_served_document_is_the_built_one_and_needs_no_token() {
    let server = TestServer::spawn().await;
    let answer = server.get(kefu_api::admin::OPENAPI).await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
    assert_eq!(answer.content_type, "application/json");
    assert_eq!(answer.json, document());
    assert_eq!(answer.json["openapi"], "3.1.0");
}

/// Whether `value` is what the document promises a WeChat call answers: the result or
/// the envelope.
fn documented_wechat_answer(entry: &catalog::Entry, value: &Value) -> bool {
    let envelope = value["errcode"].is_i64() && value["errmsg"].is_string();
    entry.is_answer(value) || envelope
}

#[tokio::test]
async fn the_documented_examples_are_answered_as_documented() {
    let server = TestServer::spawn().await;
    // The examples name accounts of the WeChat ID `test`.
    let app = server.app("test").await;
    let document = document();
    let mut answered = 0;
    for entry in catalog::entries() {
        for method in entry.methods() {
            let operation = &document["paths"][entry.path][method.to_ascii_lowercase()];
            let mut url = server.url(entry.path);
            let mut query = vec![];
            if let Some(credential) = entry.credential.parameter() {
                query.push(format!("{credential}={}", app.token));
            }
            for parameter in operation["parameters"].as_array().unwrap() {
                if let Some(example) = parameter.get("example") {
                    let value = example
                        .as_str()
                        .map_or_else(|| example.to_string(), str::to_owned);
                    query.push(format!("{}={value}", parameter["name"].as_str().unwrap()));
                }
            }
            url = format!("{url}?{}", query.join("&"));
            let request = if *method == "GET" {
                server.http.get(url)
            } else if let Some(example) =
                operation["requestBody"]["content"]["application/json"].get("example")
            {
                server.http.post(url).json(example)
            } else {
                // A file upload: its example is the other fields, in the query.
                continue;
            };
            let answer = server.send(request).await;
            assert_eq!(
                answer.status, 200,
                "{method} {}: {}",
                entry.path, answer.raw
            );
            assert!(answer.content_type.starts_with("application/json"));
            assert!(
                documented_wechat_answer(&entry, &answer.json),
                "{method} {}: {}",
                entry.path,
                answer.raw
            );
            assert_ne!(answer.json["errcode"], json!(-1), "{}", answer.raw);
            if entry.name == "kf_add" {
                assert_eq!(answer.json["errcode"], 0, "{}", answer.raw);
            }
            answered += 1;
        }
    }
    assert!(answered >= 20, "only {answered} examples sent");
}

#[test]
fn every_link_names_an_operation_of_the_document_and_its_parameters() {
    let document = document();
    let mut operations = std::collections::BTreeMap::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                operations.insert(
                    operation["operationId"].as_str().unwrap().to_owned(),
                    path.clone(),
                );
            }
        }
    }
    assert_eq!(
        operations.len(),
        documented().len(),
        "operationIds are unique"
    );
    let created = &document["paths"][kefu_api::admin::APPS]["post"]["responses"]["201"]["links"];
    assert!(
        created.as_object().is_some_and(|links| links.len() >= 5),
        "{created}"
    );
    let mut links = 0;
    for item in document["paths"].as_object().unwrap().values() {
        for method in METHODS {
            let Some(responses) = item.get(method).map(|o| &o["responses"]) else {
                continue;
            };
            for response in responses.as_object().unwrap().values() {
                for link in response
                    .get("links")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(_, l)| l)
                {
                    let path = &operations[link["operationId"].as_str().unwrap()];
                    for name in link["parameters"].as_object().unwrap().keys() {
                        assert!(path.contains(&format!("{{{name}}}")), "{link}");
                    }
                    links += 1;
                }
            }
        }
    }
    assert!(links >= 15, "{links} links");
}

#[tokio::test]
async fn a_malformed_query_or_path_of_the_admin_api_is_answered_with_an_admin_error() {
    let server = TestServer::spawn().await;
    for (path, status, error) in [
        ("/kefu/v1/requests?limit=-1", 400, "invalid_query"),
        ("/kefu/v1/requests/summary?hours=many", 400, "invalid_query"),
        (
            "/kefu/v1/headimg/wx0123456789abcdef/one/1.jpg",
            404,
            "not_found",
        ),
    ] {
        let answer = server.send(server.admin(reqwest::Method::GET, path)).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.raw);
        assert_eq!(answer.content_type, "application/json", "{path}");
        assert_eq!(answer.json["error"], error, "{path}: {}", answer.raw);
    }
    let answer = server
        .send(server.admin(reqwest::Method::DELETE, "/kefu/v1/faults/first"))
        .await;
    assert_eq!(answer.status, 404, "{}", answer.raw);
    assert_eq!(answer.json["error"], "not_found");
    // A valid query still works.
    let answer = server
        .send(server.admin(reqwest::Method::GET, "/kefu/v1/requests?limit=5"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.raw);
}
