//! The OpenAPI 3.1 document of the admin API, served at `/api/v1/openapi.json`.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

fn change_body(item: Value) -> Value {
    let mut props = json!({
        "base_version": { "type": "integer", "description": "The catalog version the change is based on; a stale one gets 409." },
        "reason": { "type": "string", "minLength": 1, "description": "Why, for the audit log." },
        "force": { "type": "boolean", "default": false, "description": "Apply a change that moves a context's write owner (cutover, promotion to migrated, rollback after cutover) even though mirrored writes toward the new owner are still waiting; what is left behind is recorded in the audit log. Without it such a change gets 409 `outbox-not-drained` with `pending` and `oldest_pending_ms`." }
    });
    if let (Some(p), Some(extra)) = (
        props.as_object_mut(),
        item.get("properties").and_then(Value::as_object),
    ) {
        for (k, v) in extra {
            p.insert(k.clone(), v.clone());
        }
    }
    let mut required = vec![json!("base_version"), json!("reason")];
    if let Some(r) = item.get("required").and_then(Value::as_array) {
        required.extend(r.iter().cloned());
    }
    json!({ "required": true, "content": { "application/json": { "schema": { "type": "object", "properties": props, "required": required } } } })
}

/// A PATCH's body: the envelope and any fields of the item, merged into the stored one.
fn merge_body() -> Value {
    let mut body = change_body(json!({ "type": "object" }));
    for ct in ["application/merge-patch+json", "application/json"] {
        body["content"][ct] = body["content"]["application/json"].clone();
        body["content"][ct]["schema"]["additionalProperties"] = json!(true);
    }
    body
}

fn responses(ok: &str) -> Value {
    json!({
        "200": { "description": ok },
        "400": { "$ref": "#/components/responses/Problem" },
        "401": { "$ref": "#/components/responses/Problem" },
        "403": { "$ref": "#/components/responses/Problem" },
        "404": { "$ref": "#/components/responses/Problem" },
        "409": { "$ref": "#/components/responses/Problem" },
        "422": { "$ref": "#/components/responses/Problem" },
        "428": { "$ref": "#/components/responses/Problem" },
        "503": { "$ref": "#/components/responses/Problem" }
    })
}

fn op(summary: &str, body: Option<Value>) -> Value {
    let mut o = json!({ "summary": summary, "responses": responses(summary) });
    if let Some(b) = body {
        o["requestBody"] = b;
    }
    o
}

/// The document.
pub fn spec() -> Value {
    let service = json!({ "type": "object", "properties": { "name": { "type": "string" }, "urls": { "type": "array", "items": { "type": "string" } } }, "required": ["name", "urls"] });
    let context = json!({ "type": "object", "properties": {
        "name": { "type": "string" }, "target": { "type": "string" },
        "state": { "enum": ["legacy", "shadow", "canary", "migrated", "retired"] },
        "weight": { "type": "integer", "minimum": 0, "maximum": 10000 },
        "sticky": { "type": "string", "description": "cookie:NAME, header:NAME, jwt:sub or ip" },
        "description": { "type": "string" } }, "required": ["name", "target", "state"] });
    let route = json!({ "type": "object", "properties": {
        "context": { "type": "string" }, "methods": { "type": "array", "items": { "type": "string" } },
        "path": { "type": "string", "description": "/orders/{id}, /static/{*rest}" }, "host": { "type": "string" },
        "headers": { "type": "array" }, "query": { "type": "array" }, "version": { "type": "object" } }, "required": ["context", "path"] });
    let empty = json!({ "type": "object", "properties": {} });
    let weight = json!({ "type": "object", "properties": { "weight": { "type": "integer", "minimum": 0, "maximum": 10000 } }, "required": ["weight"] });
    let level = json!({ "type": "object", "properties": { "level": { "type": "string" } }, "required": ["level"] });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Strangler admin API", "version": "1" },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/v1/catalog": { "get": op("The whole catalog at its current version", None) },
            "/api/v1/services": { "get": op("List services", None), "post": op("Create a service", Some(change_body(service.clone()))) },
            "/api/v1/services/{name}": { "get": op("Read a service", None), "put": op("Replace a service (fields left out are dropped; PATCH changes only those sent)", Some(change_body(service))), "patch": op("Change the fields a JSON merge patch (RFC 7396) names and keep the others; `null` removes an optional field", Some(merge_body())), "delete": op("Delete a service", Some(change_body(empty.clone()))) },
            "/api/v1/contexts": { "get": op("List contexts", None), "post": op("Create a context", Some(change_body(context.clone()))) },
            "/api/v1/contexts/{name}": { "get": op("Read a context and its routes", None), "put": op("Replace a context (fields left out, such as sticky, shadow or translator, are dropped; PATCH changes only those sent)", Some(change_body(context))), "patch": op("Change the fields a JSON merge patch (RFC 7396) names and keep the others; `null` removes an optional field", Some(merge_body())), "delete": op("Delete a context and its routes", Some(change_body(empty.clone()))) },
            "/api/v1/traffic": { "get": op("Requests answered by legacy and by the new services per context (and unclaimed), with errors, latency and the new services' share (?minutes=60, up to 43200)", None) },
            "/api/v1/contexts/{name}/traffic": { "get": op("One context's requests per minute and side, with errors, fallbacks and latency, and per route and side over the window (?minutes=60)", None) },
            "/api/v1/events/sinks": { "get": op("Each event sink (webhook, NATS): deliveries pending, delivered and given up, the oldest pending's age and the last error", None) },
            "/api/v1/autopilot": { "get": op("Which replica holds the autopilot's lease, and this process's last decision per context", None) },
            "/api/v1/contexts/{name}/shadow/pause": { "post": op("Pause ({paused: true}) or resume a context's shadowing; its sampling share is kept for the resume", Some(change_body(json!({ "type": "object", "required": ["paused"], "properties": { "paused": { "type": "boolean" } } })))) },
            "/api/v1/contexts/{name}/autopilot": { "post": op("Pause ({paused: true}) or resume the autopilot for a context; any manual transition pauses it too", Some(change_body(json!({ "type": "object", "required": ["paused"], "properties": { "paused": { "type": "boolean" } } })))) },
            "/api/v1/unclaimed": { "get": op("Requests no context claims, by method and path template (`GET /orders/{id}`), busiest first, with errors and mean time (?minutes=1440)", None) },
            "/api/v1/identity/jwks": { "get": op("The identity bridge's public key (JWKS), for new services to verify X-Strangler-Identity", None) },
            "/api/v1/contexts/{name}/shadow": { "get": op("Shadow comparison results: per minute, totals, top mismatch signatures by route, reasons requests were not shadowed, latency, the mirror outbox (?minutes=60)", None) },
            "/api/v1/contexts/{name}/shadow/noise": { "get": op("Ignore rules proposed from two legacy answers to the same request", None) },
            "/api/v1/contexts/{name}/shadow/noise/accept": { "post": op("Accept a proposed rule: adds it to the context's shadow.ignore (a catalog change)", Some(change_body(json!({ "type": "object", "required": ["path"], "properties": { "path": { "type": "string" } } })))) },
            "/api/v1/contexts/{name}/shadow/noise/dismiss": { "post": op("Dismiss a proposed rule ({path, dismissed: false} shows it again)", Some(change_body(json!({ "type": "object", "required": ["path"], "properties": { "path": { "type": "string" }, "dismissed": { "type": "boolean" } } })))) },
            "/api/v1/contexts/{name}/promote": { "post": op("Move the context one state forward", Some(change_body(empty.clone()))) },
            "/api/v1/contexts/{name}/cutover": { "post": op("Make the new service the owner of the context's writes (canary only)", Some(change_body(empty.clone()))) },
            "/api/v1/contexts/{name}/rollback": { "post": op("Return the context to legacy", Some(change_body(empty.clone()))) },
            "/api/v1/contexts/{name}/weight": { "post": op("Set the canary weight (basis points)", Some(change_body(weight))) },
            "/api/v1/routes": { "get": op("List routes (?context=NAME)", None), "post": op("Add a route to a context", Some(change_body(route.clone()))) },
            "/api/v1/routes/{id}": { "get": op("Read a route", None), "put": op("Replace a route's spec (the route gets the new spec's id)", Some(change_body(route.clone()))), "delete": op("Delete a route", Some(change_body(empty))) },
            "/api/v1/audit": { "get": op("The audit log, newest first (?target=&actor=&action=&before_id=&limit=)", None) },
            "/api/v1/log-level": { "get": op("The log filter in force", None), "put": op("Change the log filter (audited)", Some(change_body(level))) },
            "/api/v1/openapi.json": { "get": { "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1" } } } }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "The operator token for changes, the viewer token for reads." } },
            "responses": { "Problem": { "description": "An RFC 9457 problem naming the field and the fix", "content": { "application/problem+json": { "schema": { "type": "object", "properties": {
                "type": { "type": "string" }, "title": { "type": "string" }, "status": { "type": "integer" }, "detail": { "type": "string" }, "field": { "type": "string" }, "current_version": { "type": "integer" } } } } } } }
        }
    })
}

pub async fn document() -> Response {
    Json(spec()).into_response()
}
