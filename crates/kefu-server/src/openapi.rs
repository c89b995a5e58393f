//! The OpenAPI 3.1 document of kefu (README, "The OpenAPI document"): kefu's own API
//! under `/kefu/v1`, from one table of operations ([`OPERATIONS`]) whose schemas are
//! derived from the contract's types, and every WeChat endpoint served, from the
//! contract's catalog ([`kefu_api::catalog`]). Served at [`paths::OPENAPI`] and
//! printed by `kefu openapi`.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use kefu_api::admin::{
    self as paths, AdminError, AdminErrorCode, AppPatchBody, AppTokenAction, AppView, CheckAnswer,
    CheckRequest, ClockAdvance, ClockView, ComponentView, ConsoleToken, CreatedApp,
    CreatedAuthorization, CreatedComponent, ErrcodeView, FanActed, FanActionBody, FanView,
    FaultView, InvitationRequest, KfOnlineBody, KfView, NewAppBody, NewAuthorizationBody,
    NewComponentBody, NewFanBody, NewFaultBody, QueueRequest, Readiness, RequestLogEntry,
    RequestSummary, Ticket, TokenAction, TokenView,
};
use kefu_api::catalog::{self, Entry};
use kefu_api::endpoint::Method;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// A JSON Schema, made on demand.
type SchemaFn = fn() -> Value;

/// The JSON Schema of `T`, every subschema inline.
fn schema<T: JsonSchema>() -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.root_schema_for::<T>().to_value();
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
    }
    schema
}

/// Turns rustdoc's links (`` [`AppView`] ``) in every description into code (`` `AppView` ``),
/// and drops the descriptions that only point to another item of the contract (`See …`).
fn plain(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|text| text.starts_with("See [`"))
            {
                object.remove("description");
            }
            for (key, inner) in object.iter_mut() {
                match inner {
                    Value::String(text) if key == "description" => {
                        *text = text.replace("[`", "`").replace("`]", "`");
                    }
                    _ => plain(inner),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(plain),
        _ => {}
    }
}

/// Any JSON object: the export document (the format of `kefu export`).
fn object() -> Value {
    json!({ "type": "object" })
}

/// The answer of [`paths::HEALTH`].
fn health() -> Value {
    json!({
        "type": "object",
        "properties": { "status": { "const": "ok" } },
        "required": ["status"]
    })
}

/// What a successful call answers.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// A JSON body of this schema.
    Json(u16, SchemaFn),
    /// No body.
    Empty(u16),
    /// A JPEG image.
    Jpeg,
    /// Server-sent events, for as long as the reader reads.
    EventStream,
    /// Prometheus's text format.
    Metrics,
}

/// A query parameter: name, JSON Schema, description.
type QueryParameter = (&'static str, fn() -> Value, &'static str);

/// One operation of kefu's own API.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// `GET`, `POST`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// One of [`kefu_api::admin`]'s path constants.
    pub path: &'static str,
    /// Whether it needs the admin token.
    pub guarded: bool,
    summary: &'static str,
    query: &'static [QueryParameter],
    body: Option<SchemaFn>,
    answer: Answer,
    /// Another answer that is not a failure of the call (readyz's 503, a `204` when a
    /// call acts rather than creates).
    also: Option<Answer>,
}

const fn op(method: &'static str, path: &'static str, summary: &'static str) -> Operation {
    Operation {
        method,
        path,
        guarded: true,
        summary,
        query: &[],
        body: None,
        answer: Answer::Empty(204),
        also: None,
    }
}

impl Operation {
    const fn body(mut self, body: SchemaFn) -> Operation {
        self.body = Some(body);
        self
    }

    const fn answers(mut self, status: u16, body: SchemaFn) -> Operation {
        self.answer = Answer::Json(status, body);
        self
    }

    const fn public(mut self) -> Operation {
        self.guarded = false;
        self
    }
}

fn string_query() -> Value {
    json!({ "type": "string" })
}

fn errcode_query() -> Value {
    json!({ "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX })
}

fn catalog() -> Value {
    json!({ "type": "array", "items": { "type": "object" } })
}

fn appid_query() -> Value {
    json!({ "type": "string", "description": "only this app's calls" })
}

fn limit_query() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": 4_294_967_295_u32, "default": 100 })
}

fn hours_query() -> Value {
    json!({ "type": "integer", "minimum": 0, "maximum": 4_294_967_295_u32, "default": 24 })
}

/// Every operation of kefu's own API: the one table the document's kefu half comes
/// from (a test checks it against the routes the admin router registers).
pub const OPERATIONS: &[Operation] = &[
    op("GET", paths::APPS, "List apps").answers(200, schema::<Vec<AppView>>),
    op("POST", paths::APPS, "Create an app")
        .body(schema::<NewAppBody>)
        .answers(201, schema::<CreatedApp>),
    op("GET", paths::APP, "Read an app").answers(200, schema::<AppView>),
    op("PATCH", paths::APP, "Change an app's settings")
        .body(schema::<AppPatchBody>)
        .answers(200, schema::<AppView>),
    op(
        "DELETE",
        paths::APP,
        "Delete an app and everything it holds",
    ),
    op("POST", paths::APP_SECRET, "Rotate an app's secret").answers(200, schema::<CreatedApp>),
    op("GET", paths::APP_KFS, "List an app's kf accounts").answers(200, schema::<Vec<KfView>>),
    op(
        "POST",
        paths::KF_INVITATION,
        "Accept or reject a pending invitation",
    )
    .body(schema::<InvitationRequest>)
    .answers(200, schema::<KfView>),
    op("POST", paths::KF_ONLINE, "Set a kf account's online state")
        .body(schema::<KfOnlineBody>)
        .answers(200, schema::<KfView>),
    op("GET", paths::FANS, "List an app's simulated fans").answers(200, schema::<Vec<FanView>>),
    op("POST", paths::FANS, "Create a simulated fan")
        .body(schema::<NewFanBody>)
        .answers(201, schema::<FanView>),
    op("GET", paths::FAN, "Read a fan").answers(200, schema::<FanView>),
    op("DELETE", paths::FAN, "Delete a fan"),
    op(
        "POST",
        paths::FAN_ACTIONS,
        "Make a fan act (a message, an event)",
    )
    .body(schema::<FanActionBody>)
    .answers(200, schema::<FanActed>),
    op("POST", paths::FAN_QUEUE, "Put a fan in the waiting queue")
        .body(schema::<QueueRequest>)
        .answers(200, schema::<FanView>),
    op("GET", paths::COMPONENTS, "List third-party platforms")
        .answers(200, schema::<Vec<ComponentView>>),
    op("POST", paths::COMPONENTS, "Create a third-party platform")
        .body(schema::<NewComponentBody>)
        .answers(201, schema::<CreatedComponent>),
    op("GET", paths::COMPONENT, "Read a platform").answers(200, schema::<ComponentView>),
    op("DELETE", paths::COMPONENT, "Delete a platform"),
    op(
        "POST",
        paths::COMPONENT_TICKET,
        "Issue a component_verify_ticket",
    )
    .answers(200, schema::<Ticket>),
    op(
        "POST",
        paths::COMPONENT_AUTHORIZATIONS,
        "Authorize an app to a platform",
    )
    .body(schema::<NewAuthorizationBody>)
    .answers(201, schema::<CreatedAuthorization>),
    op("GET", paths::FAULTS, "List fault rules").answers(200, schema::<Vec<FaultView>>),
    op("POST", paths::FAULTS, "Add a fault rule")
        .body(schema::<NewFaultBody>)
        .answers(201, schema::<FaultView>),
    op("DELETE", paths::FAULT, "Remove a fault rule"),
    op(
        "POST",
        paths::TOKENS,
        "Expire or revoke an app's access tokens",
    )
    .body(schema::<TokenAction>),
    Operation {
        query: &[
            ("appid", appid_query, "only this app's calls"),
            (
                "path",
                string_query,
                "only calls to this WeChat path, exactly",
            ),
            (
                "errcode",
                errcode_query,
                "only calls answered with this errcode",
            ),
            (
                "rid",
                string_query,
                "the call with this rid (a whole pasted errmsg `… rid: …` works too)",
            ),
            (
                "limit",
                limit_query,
                "at most this many, newest first (up to 1000)",
            ),
        ],
        ..op("GET", paths::REQUESTS, "The request log, newest first")
            .answers(200, schema::<Vec<RequestLogEntry>>)
    },
    Operation {
        query: &[
            ("appid", appid_query, "only this app's calls"),
            ("hours", hours_query, "the last this many hours (1-168)"),
        ],
        ..op(
            "GET",
            paths::REQUESTS_SUMMARY,
            "Calls counted by app, path and errcode",
        )
        .answers(200, schema::<RequestSummary>)
    },
    op("GET", paths::CLOCK, "Read the server clock").answers(200, schema::<ClockView>),
    op(
        "GET",
        paths::CATALOG,
        "Every WeChat endpoint kefu serves, from the contract",
    )
    .answers(200, catalog),
    op(
        "POST",
        paths::CATALOG_CHECK,
        "Check a request with the contract's rules",
    )
    .body(schema::<CheckRequest>)
    .answers(200, schema::<CheckAnswer>),
    op(
        "GET",
        paths::ERRCODES,
        "WeChat's errcodes and what each means",
    )
    .answers(200, schema::<Vec<ErrcodeView>>),
    op("GET", paths::APP_TOKENS, "An app's tokens and their state")
        .answers(200, schema::<Vec<TokenView>>),
    Operation {
        also: Some(Answer::Empty(204)),
        ..op(
            "POST",
            paths::APP_TOKENS,
            "Mint a console token for an app, or end one of its tokens",
        )
        .body(schema::<AppTokenAction>)
        .answers(201, schema::<ConsoleToken>)
    },
    Operation {
        answer: Answer::EventStream,
        ..op("GET", paths::REQUESTS_STREAM, "The request log, live")
    },
    op("POST", paths::CLOCK, "Move the server clock forward")
        .body(schema::<ClockAdvance>)
        .answers(200, schema::<ClockView>),
    op(
        "GET",
        paths::EXPORT,
        "Export every app, account and platform",
    )
    .answers(200, object),
    op(
        "POST",
        paths::IMPORT,
        "Import an export document into an empty store",
    )
    .body(object),
    op("POST", paths::RESET, "Put the server back to its fixtures"),
    Operation {
        answer: Answer::Metrics,
        ..op(
            "GET",
            paths::METRICS,
            "The server's metrics, for Prometheus",
        )
    },
    op("GET", paths::HEALTH, "Whether the server answers")
        .public()
        .answers(200, health),
    Operation {
        answer: Answer::Jpeg,
        ..op("GET", paths::HEADIMG, "A kf account's head image").public()
    },
    op("GET", paths::LIVEZ, "Whether the process answers")
        .public()
        .answers(200, schema::<Readiness>),
    Operation {
        also: Some(Answer::Json(503, schema::<Readiness>)),
        ..op(
            "GET",
            paths::READYZ,
            "Whether the server can serve WeChat's API",
        )
        .public()
        .answers(200, schema::<Readiness>)
    },
    op("GET", paths::OPENAPI, "This document")
        .public()
        .answers(200, object),
];

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

/// The names of a path's `{parameters}`.
fn path_parameters(path: &str) -> Vec<&str> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect()
}

fn path_parameter(name: &str) -> Value {
    let schema = match name {
        "id" | "kf_id" => json!({ "type": "integer", "minimum": 0 }),
        "file" => json!({ "type": "string", "pattern": "^[0-9]+\\.jpg$" }),
        _ => json!({ "type": "string" }),
    };
    json!({ "name": name, "in": "path", "required": true, "schema": schema })
}

/// The statuses a failed call of kefu's API may answer, with an [`AdminError`].
fn failures(guarded: bool) -> BTreeSet<u16> {
    AdminErrorCode::ALL
        .iter()
        .map(|code| code.status())
        .filter(|status| guarded || *status != 401)
        .collect()
}

fn admin_operation(operation: &Operation) -> Value {
    let mut parameters: Vec<Value> = path_parameters(operation.path)
        .into_iter()
        .map(path_parameter)
        .collect();
    for (name, schema, description) in operation.query {
        parameters.push(json!({
            "name": name, "in": "query", "required": false,
            "description": description, "schema": schema()
        }));
    }
    let mut responses = Map::new();
    for answer in std::iter::once(&operation.answer).chain(operation.also.as_ref()) {
        let (status, response) = match answer {
            Answer::Json(status, schema) => (
                *status,
                json!({ "description": "done", "content": json_content(schema()) }),
            ),
            Answer::Empty(status) => (*status, json!({ "description": "done" })),
            Answer::Jpeg => (
                200,
                json!({
                    "description": "the image",
                    "content": { "image/jpeg": { "schema": { "type": "string", "contentMediaType": "image/jpeg" } } }
                }),
            ),
            Answer::Metrics => (
                200,
                json!({
                    "description": "Prometheus's text format (0.0.4), or OpenMetrics when `Accept` asks for `application/openmetrics-text`",
                    "content": {
                        "text/plain": { "schema": { "type": "string" } },
                        "application/openmetrics-text": { "schema": { "type": "string" } }
                    }
                }),
            ),
            Answer::EventStream => (
                200,
                json!({
                    "description": "`event: call` with a recorded call as `data`, `event: dropped` with `{\"dropped\":N}`",
                    "content": { "text/event-stream": { "schema": { "type": "string" } } }
                }),
            ),
        };
        responses.insert(status.to_string(), response);
    }
    for status in failures(operation.guarded) {
        responses.insert(
            status.to_string(),
            json!({ "$ref": format!("#/components/responses/failure{status}") }),
        );
    }
    if let Answer::Json(status @ 201, _) = operation.answer {
        let links = links(operation);
        if !links.is_empty() {
            responses[&status.to_string()]["links"] = Value::Object(links);
        }
    }
    let mut value = json!({
        "operationId": operation_id(operation.method, operation.path),
        "summary": operation.summary,
        "tags": ["kefu"],
        "responses": responses,
    });
    if !parameters.is_empty() {
        value["parameters"] = Value::Array(parameters);
    }
    if let Some(body) = operation.body {
        value["requestBody"] = json!({ "required": true, "content": json_content(body()) });
    }
    value["security"] = if operation.guarded {
        json!([{ "admin": [] }])
    } else {
        json!([])
    };
    value
}

/// The links from what a `POST` creates to the operations on it: for `POST
/// /kefu/v1/apps`, every operation under `/kefu/v1/apps/{appid}`, its `appid` taken
/// from the answer (each created resource's answer names it by the parameter's name),
/// and the creating call's own path parameters passed on.
fn links(creator: &Operation) -> Map<String, Value> {
    let prefix = format!("{}/{{", creator.path);
    let own = path_parameters(creator.path);
    let mut links = Map::new();
    for target in OPERATIONS.iter().filter(|t| t.path.starts_with(&prefix)) {
        let created = target.path[prefix.len()..]
            .split_once('}')
            .map_or("", |(name, _)| name);
        let mut parameters = Map::new();
        for name in path_parameters(target.path) {
            let expression = if own.contains(&name) {
                format!("$request.path.{name}")
            } else if name == created {
                format!("$response.body#/{name}")
            } else {
                parameters.clear();
                break;
            };
            parameters.insert(name.to_owned(), Value::String(expression));
        }
        if !parameters.is_empty() {
            let id = operation_id(target.method, target.path);
            links.insert(
                id.clone(),
                json!({ "operationId": id, "parameters": parameters }),
            );
        }
    }
    links
}

/// `get_kefu_v1_apps_appid`.
fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<String> = path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect();
    format!("{}_{}", method.to_ascii_lowercase(), words.join("_"))
}

/// The query parameters of a request whose fields travel in the query.
fn query_parameters(schema: &Value) -> Vec<Value> {
    let required: BTreeSet<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|keys| keys.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|properties| {
            // By name: the same order whichever order the map keeps.
            let mut properties: Vec<_> = properties.iter().collect();
            properties.sort_by_key(|(name, _)| name.as_str());
            properties
                .into_iter()
                .map(|(name, property)| {
                    let mut parameter = json!({
                        "name": name, "in": "query",
                        "required": required.contains(name.as_str()),
                        "schema": property,
                    });
                    if let Some(description) = property.get("description") {
                        parameter["description"] = description.clone();
                    }
                    parameter
                })
                .collect()
        })
        .unwrap_or_default()
}

fn wechat_operation(entry: &Entry, method: &str, path: &str) -> Value {
    let mut parameters = Vec::new();
    if let Some(credential) = entry.credential.parameter() {
        parameters.push(json!({
            "name": credential, "in": "query", "required": true,
            "schema": { "type": "string" }
        }));
    }
    let request = entry.request_schema().to_value();
    let example = entry.example_value();
    let mut value = json!({
        "operationId": operation_id(method, path),
        "summary": entry.summary,
        "tags": [entry.group.title()],
        "responses": {
            "200": {
                "description": "WeChat's answer: the result, or the envelope {errcode, errmsg} \
                                (errcode 0 on a success without a result)",
                "content": json_content(json!({
                    "anyOf": [entry.response_schema().to_value(), catalog::envelope_schema().to_value()]
                }))
            }
        }
    });
    if let Some(field) = entry.file_field {
        parameters.extend(query_parameters(&request));
        value["requestBody"] = json!({
            "required": true,
            "content": { "multipart/form-data": { "schema": {
                "type": "object",
                "properties": { field: { "type": "string", "contentMediaType": "application/octet-stream" } },
                "required": [field]
            } } }
        });
    } else if method == "GET" {
        for mut parameter in query_parameters(&request) {
            let name = parameter["name"].as_str().unwrap_or_default().to_owned();
            if let Some(value) = example.get(&name) {
                parameter["example"] = value.clone();
            }
            parameters.push(parameter);
        }
    } else {
        let mut content = json!({ "schema": request });
        if !example.is_null() {
            content["example"] = example;
        }
        value["requestBody"] =
            json!({ "required": true, "content": { "application/json": content } });
    }
    value["parameters"] = Value::Array(parameters);
    value
}

fn methods(entry: &Entry) -> &'static [&'static str] {
    match entry.method {
        Method::Get => &["GET"],
        Method::Post => &["POST"],
        Method::GetOrPost => &["GET", "POST"],
    }
}

/// The document, built from the table and the catalog.
#[must_use]
pub fn document() -> Value {
    let mut path_items = Map::new();
    for operation in OPERATIONS {
        let item = path_items
            .entry(operation.path)
            .or_insert_with(|| json!({}));
        item[operation.method.to_ascii_lowercase()] = admin_operation(operation);
    }
    for entry in catalog::entries() {
        for path in std::iter::once(entry.path).chain(entry.aliases.iter().copied()) {
            let item = path_items.entry(path).or_insert_with(|| json!({}));
            for method in methods(&entry) {
                item[method.to_ascii_lowercase()] = wechat_operation(&entry, method, path);
            }
        }
    }
    let mut failures = Map::new();
    for status in failures_all() {
        failures.insert(
            format!("failure{status}"),
            json!({
                "description": "the call failed; `error` names why",
                "content": json_content(schema::<AdminError>())
            }),
        );
    }
    let mut tags =
        vec![json!({ "name": "kefu", "description": "kefu's own API: apps, simulation, health" })];
    let mut seen = BTreeSet::new();
    for entry in catalog::entries() {
        if seen.insert(entry.group.title()) {
            tags.push(json!({ "name": entry.group.title(), "description": "WeChat's API: always HTTP 200" }));
        }
    }
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "kefu",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "kefu's own API under /kefu/v1 (ordinary HTTP statuses, an AdminError body on a failure; \
                            most calls need the admin token as a bearer token) and every WeChat customer service \
                            endpoint kefu serves (always HTTP 200, with the result or WeChat's envelope)."
        },
        "tags": tags,
        "paths": path_items,
        "components": {
            "securitySchemes": { "admin": { "type": "http", "scheme": "bearer", "description": "the admin token" } },
            "responses": failures
        }
    });
    plain(&mut document);
    sort_keys(document)
}

/// The value with every object's keys in order, so that the text is the same whether
/// or not `serde_json` keeps insertion order (a feature another crate of the build may
/// turn on).
fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut entries: Vec<(String, Value)> = object.into_iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.cmp(b));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key, sort_keys(value)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

fn failures_all() -> BTreeSet<u16> {
    failures(true)
}

/// The document as `kefu openapi` prints it and `docs/openapi.json` holds it.
#[must_use]
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// `GET /kefu/v1/openapi.json`: the document, built once.
pub(crate) async fn serve() -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(document_text).clone();
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
