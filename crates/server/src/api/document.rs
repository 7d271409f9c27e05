//! What every operation of the OpenAPI document has in common, applied to the document
//! the handlers' annotations make, so that no annotation can forget it: operation ids
//! unique across the API, the problems any `/v1` operation may answer (as
//! `application/problem+json`), the `Idempotency-Key` header of every POST, the
//! `X-Request-Id` of every response, the 429 (with `Retry-After`) of every operation
//! that needs a token, the bounds
//! of `limit`, uploads as bytes, and schemas that flatten another described as one
//! object (a response
//! with more fields than its request would otherwise break the request's closed
//! schema).

use serde_json::{Map, Value, json};
use utoipa::openapi::OpenApi;

use super::MAX_LIMIT;

/// The document with the conventions applied.
pub fn conventions(doc: OpenApi) -> OpenApi {
    let mut v = serde_json::to_value(&doc).expect("the document is JSON");
    let schemas = v["components"]["schemas"].clone();
    if let Some(paths) = v["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                operation(path, method, op);
                request_id(op);
                retry_after(op);
            }
        }
    }
    merge_all_of(&mut v, &schemas);
    serde_json::from_value(v).expect("the document stays a document")
}

/// Every response carries an `X-Request-Id` (see `request_id.rs`). The request
/// header it may come from is told in the document's description, not as a parameter
/// of every operation: any value is taken, so a parameter would only invite tools to
/// fill it from other operations' answers.
fn request_id(op: &mut Value) {
    if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
        for response in responses.values_mut() {
            response["headers"]["X-Request-Id"] = json!({
                "description": "The request's id: the client's, or one the server made.",
                "schema": {"type": "string"}
            });
        }
    }
}

/// A 429 says when to retry (see `limits.rs`).
fn retry_after(op: &mut Value) {
    if let Some(response) = op.get_mut("responses").and_then(|r| r.get_mut("429")) {
        response["headers"]["Retry-After"] = json!({
            "description": "Whole seconds until the token may make a request again.",
            "schema": {"type": "integer", "minimum": 1}
        });
    }
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn operation(path: &str, method: &str, op: &mut Value) {
    // Handlers of different tags share names (`list`, `show`, `add`).
    if let (Some(tag), Some(id)) = (op["tags"][0].as_str(), op["operationId"].as_str()) {
        op["operationId"] = Value::String(format!("{tag}_{id}"));
    }
    let has_body = op.get("requestBody").is_some();
    // An operation open to all says so with an empty security requirement.
    let public = op["security"]
        .as_array()
        .is_some_and(|s| s.iter().any(|r| r.as_object().is_some_and(Map::is_empty)));
    // Uploads (a plugin, a CSV file) are bytes, which clients and generators know as
    // `application/octet-stream`; the server takes either type.
    if let Some(content) = op
        .get_mut("requestBody")
        .and_then(|b| b.get_mut("content"))
        .and_then(Value::as_object_mut)
    {
        let binary = json!({"schema": {"type": "string", "format": "binary"}});
        for kind in ["application/wasm", "text/csv"] {
            if content.contains_key(kind) {
                content.insert(kind.into(), binary.clone());
            }
        }
        if content.contains_key("application/wasm") || content.contains_key("text/csv") {
            content.insert("application/octet-stream".into(), binary);
        }
    }
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params.iter_mut() {
            if p["name"] == "limit" && p["in"] == "query" {
                p["schema"] = json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT});
            }
        }
    }
    if method == "post" && path.starts_with("/v1/") {
        let header = json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "A retry with the same key and the same request gets the first response again (marked `Idempotent-Replayed: true`) for 24 hours, without doing the work twice; the same key for another request is refused (422).",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255}
        });
        match op.get_mut("parameters").and_then(Value::as_array_mut) {
            Some(params) => params.push(header),
            None => op["parameters"] = json!([header]),
        }
    }
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    // Problems are problem+json, whatever the annotation said.
    for (status, response) in responses.iter_mut() {
        if (status.starts_with('4') || status.starts_with('5'))
            && let Some(content) = response.get_mut("content").and_then(Value::as_object_mut)
            && let Some(schema) = content.remove("application/json")
        {
            content.insert("application/problem+json".into(), schema);
        }
    }
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_string())
            .or_insert_with(|| problem(description));
    };
    if !public {
        add(
            "401",
            "No bearer token, or one not known, revoked or expired",
        );
        add("403", "The token's role does not allow this");
        add(
            "429",
            "The token made more requests than the server's rate limit allows; `Retry-After` says when to retry",
        );
    }
    if !path.starts_with("/v1/") {
        return;
    }
    add("400", "A parameter is not what the operation takes");
    add("503", "The store is busy; retry shortly");
    if method != "get" {
        add("422", "The request cannot be carried out as given");
    }
    if path.contains('{') {
        add("404", "No such resource");
    }
    if has_body {
        add("413", "The body is larger than the server takes");
        add(
            "415",
            "The body is not of the media type the operation takes",
        );
        add("422", "The body is not valid");
    }
    if method == "post" {
        add(
            "409",
            "A request with the same idempotency key is still being processed",
        );
    }
}

/// Replace an `allOf` of objects (what flattening a struct into another makes) with one
/// object holding all their properties, open to none beyond them only if every part
/// was closed.
fn merge_all_of(schema: &mut Value, schemas: &Value) {
    // Wherever it is: a component, a generic page's items, a response.
    match schema {
        Value::Object(map) => map.values_mut().for_each(|v| merge_all_of(v, schemas)),
        Value::Array(items) => items.iter_mut().for_each(|v| merge_all_of(v, schemas)),
        _ => return,
    }
    let Some(parts) = schema.get("allOf").and_then(Value::as_array).cloned() else {
        return;
    };
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    for part in &parts {
        let part = match part["$ref"].as_str() {
            Some(r) => &schemas[r.trim_start_matches("#/components/schemas/")],
            None => part,
        };
        if part["type"] != "object" {
            return;
        }
        if let Some(p) = part["properties"].as_object() {
            properties.extend(p.clone());
        }
        if let Some(r) = part["required"].as_array() {
            required.extend(r.iter().cloned());
        }
    }
    let mut merged = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        merged["required"] = Value::Array(required);
    }
    if let Some(description) = schema.get("description") {
        merged["description"] = description.clone();
    }
    *schema = merged;
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn operation_ids_are_unique_and_problems_are_problem_json() {
        let doc = serde_json::to_value(super::super::document()).expect("JSON");
        let mut ids = HashSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("operations") {
                let id = op["operationId"].as_str().expect("an id");
                assert!(ids.insert(id.to_string()), "`{id}` twice");
                for (status, response) in op["responses"].as_object().expect("responses") {
                    if status.starts_with('4') {
                        assert!(
                            response["content"].get("application/json").is_none(),
                            "{method} {path} {status}"
                        );
                    }
                }
                if path.starts_with("/v1/") {
                    let responses = &op["responses"];
                    assert!(responses.get("401").is_some() && responses.get("403").is_some());
                }
                if method == "post" && path.starts_with("/v1/") {
                    let params = op["parameters"].as_array().expect("parameters");
                    assert!(params.iter().any(|p| p["name"] == "Idempotency-Key"));
                }
            }
        }
        let text = doc.to_string();
        assert!(!text.contains("prefixItems"), "tuples break generators");
        assert!(
            !text.contains("allOf"),
            "a flattened response is one object"
        );
    }
}
