//! The OpenAPI description (`api-spec/openapi.yaml`) against what the server really answers:
//! every golden request whose recorded response is JSON is replayed against our server, and
//! the parsed body must validate against the schema the document gives for that path, method
//! and status. A second test checks the recorded CKAN bodies themselves, so the document also
//! stays true to CKAN.
//!
//! The document is OpenAPI 3.0, so before compiling a response schema as JSON Schema (draft 7)
//! we turn `nullable: true` into a `"null"` type, and move `#/components/schemas/*` under
//! `definitions` so that every `$ref` resolves inside one root schema.

use std::collections::HashMap;

use jsonschema::{Draft, JSONSchema};
use serde_json::{json, Map, Value};

use crate::harness::{golden_cases, spawn_app};

const SPEC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/api-spec/openapi.yaml");

/// Fewer validated responses than this means the test did not really look at the golden set.
const MIN_VALIDATED: usize = 300;

struct Spec {
    doc: Value,
    /// `components.schemas`, converted to JSON Schema.
    definitions: Value,
    compiled: HashMap<String, Result<JSONSchema, String>>,
}

impl Spec {
    fn load() -> Spec {
        let text = std::fs::read_to_string(SPEC_PATH)
            .unwrap_or_else(|e| panic!("reading {SPEC_PATH}: {e}"));
        let doc: Value =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("parsing {SPEC_PATH}: {e}"));
        assert_eq!(
            doc["openapi"],
            json!("3.0.3"),
            "not an OpenAPI 3.0.3 document"
        );
        let definitions = to_json_schema(&doc["components"]["schemas"]);
        assert!(
            definitions.as_object().is_some_and(|m| !m.is_empty()),
            "no components.schemas"
        );
        Spec {
            doc,
            definitions,
            compiled: HashMap::new(),
        }
    }

    /// Follows local `$ref`s (`#/components/responses/...` and the like) to the object itself.
    fn deref<'a>(&'a self, mut v: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..32 {
            match v.get("$ref").and_then(Value::as_str) {
                None => return Ok(v),
                Some(r) => {
                    let pointer = r
                        .strip_prefix('#')
                        .ok_or_else(|| format!("non-local $ref {r}"))?;
                    v = self
                        .doc
                        .pointer(pointer)
                        .ok_or_else(|| format!("unresolved $ref {r}"))?;
                }
            }
        }
        Err("$ref chain too long".into())
    }

    /// The document's path item for a request path: an exact path first, then a template
    /// (`/api/3/action/{action}`), as OpenAPI matches them.
    fn path_item(&self, path: &str) -> Option<(&str, &Value)> {
        let paths = self.doc["paths"].as_object()?;
        if let Some((k, v)) = paths.get_key_value(path) {
            return Some((k.as_str(), v));
        }
        paths
            .iter()
            .find(|(template, _)| template.contains('{') && template_matches(template, path))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// The compiled `application/json` schema of the response for `path`, `method`, `status`.
    fn validator(&mut self, path: &str, method: &str, status: u16) -> Result<&JSONSchema, String> {
        let (template, item) = self
            .path_item(path)
            .ok_or_else(|| format!("path {path} is not in the document"))?;
        let key = format!("{template} {method} {status}");
        if !self.compiled.contains_key(&key) {
            let compiled = self.compile(item, method, status);
            self.compiled.insert(key.clone(), compiled);
        }
        self.compiled[&key].as_ref().map_err(Clone::clone)
    }

    fn compile(&self, item: &Value, method: &str, status: u16) -> Result<JSONSchema, String> {
        let op = item
            .get(method.to_ascii_lowercase())
            .ok_or_else(|| format!("no {method} operation"))?;
        let response = op["responses"]
            .get(status.to_string())
            .ok_or_else(|| format!("no {status} response for {method}"))?;
        let response = self.deref(response)?;
        let schema = response
            .pointer("/content/application~1json/schema")
            .ok_or_else(|| {
                format!("the {status} response for {method} has no application/json schema")
            })?;
        let root = json!({
            "definitions": self.definitions,
            "allOf": [to_json_schema(schema)],
        });
        JSONSchema::options()
            .with_draft(Draft::Draft7)
            .compile(&root)
            .map_err(|e| format!("schema does not compile: {e}"))
    }

    /// `None` when `body` validates, else a short description of the violations.
    fn check(&mut self, path: &str, method: &str, status: u16, body: &Value) -> Option<String> {
        let path = path.split('?').next().unwrap_or(path);
        let validator = match self.validator(path, method, status) {
            Ok(v) => v,
            Err(e) => return Some(e),
        };
        let result = validator.validate(body);
        match result {
            Ok(()) => None,
            Err(errors) => {
                let msgs: Vec<String> = errors
                    .take(3)
                    .map(|e| {
                        let mut m = format!("at {}: {}", e.instance_path, e);
                        truncate(&mut m, 300);
                        m
                    })
                    .collect();
                Some(msgs.join("; "))
            }
        }
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}

/// `/api/3/action/{action}` matches `/api/3/action/datastore_foo` (one segment per variable).
fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') && t.ends_with('}') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

/// OpenAPI 3.0 schema → JSON Schema (draft 7): `nullable: true` adds `"null"` to `type` (and
/// to `enum`), or wraps a type-less schema in `anyOf [.., null]`; component references point at
/// `#/definitions/`.
fn to_json_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out: Map<String, Value> = m
                .iter()
                .filter(|(k, _)| k.as_str() != "nullable")
                .map(|(k, x)| (k.clone(), to_json_schema(x)))
                .collect();
            if let Some(Value::String(r)) = out.get_mut("$ref") {
                if let Some(name) = r.strip_prefix("#/components/schemas/") {
                    *r = format!("#/definitions/{name}");
                }
            }
            if m.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(t) = out.get_mut("type") {
                    let mut types = match t.take() {
                        Value::Array(a) => a,
                        other => vec![other],
                    };
                    types.push(json!("null"));
                    *t = Value::Array(types);
                    if let Some(Value::Array(e)) = out.get_mut("enum") {
                        e.push(Value::Null);
                    }
                } else {
                    return json!({"anyOf": [Value::Object(out), {"type": "null"}]});
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

/// Parts of a recorded CKAN body that our server deliberately does not send: the SQL text and
/// bind parameters in a 409 "Invalid query" error's `info` (we keep only `orig`).
fn without_ckan_only_parts(mut body: Value) -> Value {
    if let Some(info) = body
        .pointer_mut("/error/info")
        .and_then(Value::as_object_mut)
    {
        info.shift_remove("statement");
        info.shift_remove("params");
    }
    body
}

fn report(what: &str, validated: usize, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {} {what} do not match api-spec/openapi.yaml:\n{}",
        failures.len(),
        validated + failures.len(),
        failures.join("\n")
    );
    assert!(
        validated >= MIN_VALIDATED,
        "only {validated} {what} were validated (expected at least {MIN_VALIDATED}): are the golden cases there?"
    );
}

#[tokio::test]
async fn served_json_responses_match_openapi() {
    let mut spec = Spec::load();
    let app = spawn_app().await;
    let mut validated = 0usize;
    let mut failures = Vec::new();
    for dir in ["samples", "extra"] {
        for case in golden_cases(dir) {
            if !case.response_content_type.starts_with("application/json") {
                continue;
            }
            let resp = app
                .send(
                    &case.method,
                    &case.path,
                    &case.body,
                    case.content_type.as_deref(),
                )
                .await;
            let label = format!(
                "{dir}/{} ({} {} → {})",
                case.name, case.method, case.path, resp.status
            );
            if !resp.content_type.starts_with("application/json") {
                failures.push(format!(
                    "{label}: content type {:?} is not JSON",
                    resp.content_type
                ));
                continue;
            }
            let body: Value = match serde_json::from_slice(&resp.body) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{label}: body is not JSON: {e}"));
                    continue;
                }
            };
            match spec.check(&case.path, &case.method, resp.status, &body) {
                None => validated += 1,
                Some(why) => failures.push(format!("{label}: {why}")),
            }
        }
    }
    report("served responses", validated, &failures);
}

/// The recorded CKAN responses satisfy the document too (with the one deliberate difference
/// removed), so the document describes CKAN's API and not only our reading of it.
#[tokio::test]
async fn recorded_ckan_responses_match_openapi() {
    let mut spec = Spec::load();
    let mut validated = 0usize;
    let mut failures = Vec::new();
    for dir in ["samples", "extra"] {
        for case in golden_cases(dir) {
            if !case.response_content_type.starts_with("application/json") {
                continue;
            }
            let label = format!(
                "{dir}/{} ({} {} → {})",
                case.name, case.method, case.path, case.status
            );
            let body: Value = match serde_json::from_slice(&case.expected) {
                Ok(v) => without_ckan_only_parts(v),
                Err(e) => {
                    failures.push(format!("{label}: recorded body is not JSON: {e}"));
                    continue;
                }
            };
            match spec.check(&case.path, &case.method, case.status, &body) {
                None => validated += 1,
                Some(why) => failures.push(format!("{label}: {why}")),
            }
        }
    }
    report("recorded CKAN responses", validated, &failures);
}

#[test]
fn nullable_becomes_a_null_type() {
    let s = to_json_schema(&json!({"type": "string", "nullable": true, "enum": ["a"]}));
    assert_eq!(s, json!({"type": ["string", "null"], "enum": ["a", null]}));
    let s = to_json_schema(&json!({"$ref": "#/components/schemas/X"}));
    assert_eq!(s, json!({"$ref": "#/definitions/X"}));
    assert!(template_matches(
        "/api/3/action/{action}",
        "/api/3/action/datastore_foo"
    ));
    assert!(!template_matches(
        "/api/3/action/{action}",
        "/api/3/action/a/b"
    ));
}

/// Responses beyond CKAN 2.12's recordings: the estimation switch's keys, /metrics, /healthz.
#[tokio::test]
async fn extension_responses_match_openapi() {
    let mut spec = Spec::load();
    let app = crate::harness::spawn_app_with(|s| s.honour_total_estimation = true).await;
    let path = "/api/3/action/datastore_search";
    for body in [
        serde_json::json!({"resource_id": crate::harness::SAMPLE, "total_estimation_threshold": 1}),
        serde_json::json!({"resource_id": crate::harness::SAMPLE, "total_estimation_threshold": 1000, "filters": {"category": "veg"}}),
    ] {
        let r = app.search(&body.to_string()).await;
        let v: Value = r.json();
        assert!(v["result"].get("total_was_estimated").is_some(), "{v}");
        if let Some(why) = spec.check(path, "POST", r.status, &v) {
            panic!("{body}: {why}");
        }
    }
    for p in ["/metrics", "/healthz"] {
        let r = app.send("GET", p, "", None).await;
        assert_eq!(r.status, 200);
        assert!(
            r.content_type.starts_with("text/plain"),
            "{p}: {}",
            r.content_type
        );
    }
}

/// Access-control answers (403 on both actions, 404 for orphan tables) as the document says.
#[tokio::test]
async fn access_control_responses_match_openapi() {
    let mut spec = Spec::load();
    let app = crate::access::spawn_with_access("", |_| {}).await;
    let cases = [
        (
            "datastore_search",
            json!({"resource_id": crate::access::PRIVATE_TABLE}),
            403,
        ),
        (
            "datastore_info",
            json!({"id": crate::access::PRIVATE_TABLE}),
            403,
        ),
        (
            "datastore_search",
            json!({"resource_id": crate::access::ORPHAN_TABLE}),
            404,
        ),
        (
            "datastore_info",
            json!({"id": crate::access::ORPHAN_TABLE}),
            404,
        ),
    ];
    for (action, body, status) in cases {
        let path = format!("/api/3/action/{action}");
        let r = app
            .send("POST", &path, &body.to_string(), Some("application/json"))
            .await;
        assert_eq!(r.status, status, "{action} {body}: {}", r.text());
        if let Some(why) = spec.check(&path, "POST", r.status, &r.json()) {
            panic!("{action} {body}: {why}");
        }
    }
}

/// datastore_search_sql's recorded cases, answered with access control on, as documented.
#[tokio::test]
async fn search_sql_responses_match_openapi() {
    let mut spec = Spec::load();
    let app =
        crate::access::spawn_with_access("ckan.datastore.sqlsearch.enabled = true", |_| {}).await;
    let mut validated = 0usize;
    let mut failures = Vec::new();
    for case in golden_cases("sql") {
        let resp = app
            .send(
                &case.method,
                &case.path,
                &case.body,
                case.content_type.as_deref(),
            )
            .await;
        if case.method != "POST" || !resp.content_type.starts_with("application/json") {
            continue;
        }
        let path = case.path.split('?').next().unwrap_or_default().to_string();
        match spec.check(&path, "POST", resp.status, &resp.json()) {
            None => validated += 1,
            Some(why) => failures.push(format!("{}: {why}", case.name)),
        }
    }
    assert!(validated >= 40, "{validated}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
