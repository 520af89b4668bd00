//! The OpenAPI 3.1 document of the admin API, served at `/api/v1/openapi.json`. The schemas of
//! what the API accepts and returns are generated from the types it parses and stores
//! (`schemars` reads their serde attributes and doc comments), so the document cannot drift
//! from them; the paths are listed here, and a test checks them against the router.

use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Value};
use strangler_catalog::{AuditEntry, Catalog, Context, Route, Service, Side};

use super::handlers::{
    DismissNoise, LevelBody, NewRoute, NoisePath, PauseBody, Registration, WeightBody,
};

/// Schemas by reference into `#/components/schemas`.
struct Schemas(SchemaGenerator);

impl Schemas {
    fn new() -> Self {
        Self(
            SchemaSettings::draft2020_12()
                .with(|s| s.definitions_path = "/components/schemas".into())
                .into_generator(),
        )
    }

    /// `T`'s schema: a reference to its component (made on first use).
    fn of<T: JsonSchema>(&mut self) -> Value {
        serde_json::to_value(self.0.subschema_for::<T>()).unwrap_or(Value::Null)
    }

    /// The components made so far. An item's own schema refuses unknown fields; in a request
    /// body it sits beside the change's envelope (`allOf`), which a schema that refuses every
    /// other field would contradict, so that is said in words instead.
    fn components(&mut self) -> serde_json::Map<String, Value> {
        let mut defs = self.0.take_definitions(true);
        for schema in defs.values_mut() {
            if let Some(o) = schema.as_object_mut() {
                if o.get("additionalProperties") == Some(&Value::Bool(false)) {
                    o.remove("additionalProperties");
                    let said = o
                        .get("description")
                        .and_then(Value::as_str)
                        .map_or(String::new(), |d| format!("{d}\n\n"));
                    o.insert(
                        "description".into(),
                        format!("{said}Unknown fields are refused (400).").into(),
                    );
                }
            }
        }
        defs
    }
}

/// A change's body: the envelope and the item's fields (`item`: a schema, or none).
fn change_body(item: Option<Value>) -> Value {
    let mut all = vec![json!({ "$ref": "#/components/schemas/ChangeEnvelope" })];
    all.extend(item);
    json!({ "required": true, "content": { "application/json": { "schema": { "allOf": all } } } })
}

/// A PATCH's body: the envelope and any fields of the item, merged into the stored one.
fn merge_body(item: Value) -> Value {
    let schema = json!({ "allOf": [
        { "$ref": "#/components/schemas/ChangeEnvelope" },
        { "description": "Any of the item's fields (a JSON merge patch, RFC 7396): those sent replace the stored ones, `null` removes an optional one, objects merge member by member; the result must be a valid item.", "anyOf": [item, { "type": "object" }] }
    ] });
    json!({ "required": true, "content": {
        "application/merge-patch+json": { "schema": schema.clone() },
        "application/json": { "schema": schema }
    } })
}

fn responses(ok: &str, schema: Option<Value>) -> Value {
    let mut success = json!({ "description": ok });
    if let Some(s) = schema {
        success["content"] = json!({ "application/json": { "schema": s } });
    }
    json!({
        "200": success,
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

fn op(summary: &str, body: Option<Value>, answer: Option<Value>) -> Value {
    let mut o = json!({ "summary": summary, "responses": responses(summary, answer) });
    if let Some(b) = body {
        o["requestBody"] = b;
    }
    o
}

/// `{version, item}` with `item` as `schema` (a change's answer also names its `target`).
fn one(schema: &Value) -> Value {
    json!({ "type": "object", "required": ["version", "item"], "properties": {
        "version": { "type": "integer", "description": "The catalog version this reflects." },
        "target": { "type": "string", "description": "What a change changed: `context:NAME`, `service:NAME`, `route:ID`." },
        "item": schema } })
}

/// `{version, items: [...]}`.
fn many(schema: &Value) -> Value {
    json!({ "type": "object", "required": ["version", "items"], "properties": {
        "version": { "type": "integer" }, "items": { "type": "array", "items": schema } } })
}

/// A report the API assembles (figures over a window, runtime state): described in words.
fn report(what: &str) -> Value {
    json!({ "type": "object", "description": what })
}

/// The document.
pub fn spec() -> Value {
    let mut s = Schemas::new();
    let service = s.of::<Service>();
    let context = s.of::<Context>();
    let route = s.of::<Route>();
    let new_route = s.of::<NewRoute>();
    let side = s.of::<Side>();
    let catalog = s.of::<Catalog>();
    let audit = s.of::<AuditEntry>();
    let weight = s.of::<WeightBody>();
    let pause = s.of::<PauseBody>();
    let noise = s.of::<NoisePath>();
    let dismiss = s.of::<DismissNoise>();
    let registration = s.of::<Registration>();
    let level = s.of::<LevelBody>();
    let view = json!({ "$ref": "#/components/schemas/ContextView" });
    let mut components = s.components();
    components.insert(
        "ContextView".into(),
        json!({ "description": "A context as stored, with its write owner (read-only: it follows the state and the cutover).",
                "allOf": [context.clone(), { "type": "object", "required": ["owner"], "properties": { "owner": side } }] }),
    );
    components.insert(
        "ChangeEnvelope".into(),
        json!({ "type": "object", "required": ["base_version", "reason"], "properties": {
            "base_version": { "type": "integer", "description": "The catalog version the change is based on; a stale one gets 409." },
            "reason": { "type": "string", "minLength": 1, "description": "Why, for the audit log." },
            "force": { "type": "boolean", "default": false, "description": "Apply a change that moves a context's write owner (cutover, promotion to migrated, rollback after cutover) even though mirrored writes toward the new owner are still waiting; what is left behind is recorded in the audit log. Without it such a change gets 409 `outbox-not-drained` with `pending` and `oldest_pending_ms`." } } }),
    );
    let changed = |item: &Value| Some(one(item));
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Strangler admin API", "version": "1" },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/v1/catalog": { "get": op("The whole catalog at its current version", None, Some(catalog)) },
            "/api/v1/services": {
                "get": op("List services", None, Some(many(&service))),
                "post": op("Create a service", Some(change_body(Some(service.clone()))), changed(&service)) },
            "/api/v1/services/{name}": {
                "get": op("Read a service", None, Some(one(&service))),
                "put": op("Replace a service (fields left out are dropped; PATCH changes only those sent)", Some(change_body(Some(service.clone()))), changed(&service)),
                "patch": op("Change the fields a JSON merge patch (RFC 7396) names and keep the others", Some(merge_body(service.clone())), changed(&service)),
                "delete": op("Delete a service", Some(change_body(None)), None) },
            "/api/v1/services/{name}/instances": {
                "post": op("Register an instance of a service, or renew it (a heartbeat before `ttl_s` runs out); only a new registration is audited", Some(change_body(Some(registration))), None),
                "delete": op("Deregister an instance (?url=)", Some(change_body(None)), None) },
            "/api/v1/runtime/services": { "get": op("Each service's instances as this process sees them: health (checks and passive failures), ejections, in-flight requests, the breaker", None, Some(report("By service: `instances` (origin, health, ejected, in_flight) and `breaker`."))) },
            "/api/v1/contexts": {
                "get": op("List contexts", None, Some(many(&view))),
                "post": op("Create a context", Some(change_body(Some(context.clone()))), changed(&view)) },
            "/api/v1/contexts/{name}": {
                "get": op("Read a context and its routes", None, Some(json!({ "type": "object", "required": ["version", "item", "routes"], "properties": { "version": { "type": "integer" }, "item": view, "routes": { "type": "array", "items": route } } }))),
                "put": op("Replace a context (fields left out, such as sticky, shadow or translator, are dropped; PATCH changes only those sent)", Some(change_body(Some(context.clone()))), changed(&view)),
                "patch": op("Change the fields a JSON merge patch (RFC 7396) names and keep the others", Some(merge_body(context)), changed(&view)),
                "delete": op("Delete a context and its routes", Some(change_body(None)), None) },
            "/api/v1/traffic": { "get": op("Requests answered by legacy and by the new services per context (and unclaimed), with errors, latency and the new services' share (?minutes=60, up to 43200)", None, Some(report("Per context and side: requests, errors, error rate, mean, p50, p99; and the new services' share."))) },
            "/api/v1/contexts/{name}/traffic": { "get": op("One context's requests per minute and side, with errors, fallbacks and latency, and per route and side over the window (?minutes=60)", None, Some(report("`minutes` (per minute and side) and `routes` (per route and side)."))) },
            "/api/v1/events/sinks": { "get": op("Each event sink (webhook, NATS): deliveries pending, delivered and given up, the oldest pending's age and the last error", None, Some(report("One entry per sink."))) },
            "/api/v1/autopilot": { "get": op("Which replica holds the autopilot's lease, and this process's last decision per context", None, Some(report("`holder`, `evaluating`, and per context its last decision and why."))) },
            "/api/v1/contexts/{name}/shadow/pause": { "post": op("Pause ({paused: true}) or resume a context's shadowing; its sampling share is kept for the resume", Some(change_body(Some(pause.clone()))), changed(&view)) },
            "/api/v1/contexts/{name}/autopilot": { "post": op("Pause ({paused: true}) or resume the autopilot for a context; any manual transition pauses it too", Some(change_body(Some(pause))), changed(&view)) },
            "/api/v1/unclaimed": { "get": op("Requests no context claims, by method and path template (`GET /orders/{id}`), busiest first, with errors and mean time (?minutes=1440)", None, Some(report("Templates with requests, errors and mean time."))) },
            "/api/v1/identity/jwks": { "get": { "summary": "The identity bridge's public key (JWKS), for new services to verify X-Strangler-Identity", "security": [], "responses": { "200": { "description": "A JWKS" }, "404": { "$ref": "#/components/responses/Problem" } } } },
            "/api/v1/contexts/{name}/shadow": { "get": op("Shadow comparison results: per minute, totals, top mismatch signatures by route, reasons requests were not shadowed, latency, the mirror outbox both ways, the id map (?minutes=60)", None, Some(report("`compared`, `matched`, `match_rate`, `minutes`, `top_signatures`, `skipped`, `latency_ms`, `examples`, `outbox`, `reverse_outbox`, `id_map`."))) },
            "/api/v1/contexts/{name}/shadow/noise": { "get": op("Ignore rules proposed from two legacy answers to the same request", None, Some(report("Proposals: path, count, dismissed."))) },
            "/api/v1/contexts/{name}/shadow/noise/accept": { "post": op("Accept a proposed rule: adds it to the context's shadow.ignore (a catalog change)", Some(change_body(Some(noise))), changed(&view)) },
            "/api/v1/contexts/{name}/shadow/noise/dismiss": { "post": op("Dismiss a proposed rule ({path, dismissed: false} shows it again)", Some(change_body(Some(dismiss))), None) },
            "/api/v1/contexts/{name}/promote": { "post": op("Move the context one state forward", Some(change_body(None)), changed(&view)) },
            "/api/v1/contexts/{name}/cutover": { "post": op("Make the new service the owner of the context's writes (canary only)", Some(change_body(None)), changed(&view)) },
            "/api/v1/contexts/{name}/rollback": { "post": op("Return the context to legacy", Some(change_body(None)), changed(&view)) },
            "/api/v1/contexts/{name}/weight": { "post": op("Set the canary weight (basis points)", Some(change_body(Some(weight))), changed(&view)) },
            "/api/v1/routes": {
                "get": op("List routes (?context=NAME)", None, Some(many(&route))),
                "post": op("Add a route to a context", Some(change_body(Some(new_route.clone()))), changed(&route)) },
            "/api/v1/routes/{id}": {
                "get": op("Read a route", None, Some(one(&route))),
                "put": op("Replace a route's spec (the route gets the new spec's id)", Some(change_body(Some(new_route))), changed(&route)),
                "delete": op("Delete a route", Some(change_body(None)), None) },
            "/api/v1/audit": { "get": op("The audit log, newest first (?target=&actor=&action=&before_id=&limit=)", None, Some(json!({ "type": "object", "properties": { "items": { "type": "array", "items": audit } } }))) },
            "/api/v1/log-level": {
                "get": op("The log filter in force", None, Some(report("`level`: the filter."))),
                "put": op("Change the log filter (audited)", Some(change_body(Some(level))), None) },
            "/api/v1/openapi.json": { "get": { "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1" } } } }
        },
        "components": {
            "schemas": components,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "An operator's token for changes (the shared one or a person's own), a viewer's for reads." } },
            "responses": { "Problem": { "description": "An RFC 9457 problem naming the field and the fix", "content": { "application/problem+json": { "schema": { "type": "object", "properties": {
                "type": { "type": "string" }, "title": { "type": "string" }, "status": { "type": "integer" }, "detail": { "type": "string" }, "field": { "type": "string" }, "current_version": { "type": "integer" } } } } } } }
        }
    })
}

pub async fn document() -> Response {
    Json(spec()).into_response()
}

#[cfg(test)]
mod tests;
