use super::spec;
use serde_json::Value;

/// The (method, path) pairs under `/api/v1` the routers serve, read from their source: each
/// `.route("PATH", get(…).post(…))` call.
fn served() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for src in [include_str!("../../api.rs"), include_str!("../../lib.rs")] {
        let mut rest = src;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let mut depth = 1;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &rest[..end];
            let Some(path) = call.split('"').nth(1) else {
                continue;
            };
            if !path.starts_with("/api/v1/") {
                continue;
            }
            for method in ["get", "post", "put", "patch", "delete"] {
                let named = call.match_indices(&format!("{method}(")).any(|(i, _)| {
                    !call[..i]
                        .chars()
                        .last()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                });
                if named {
                    out.push((method.to_owned(), path.to_owned()));
                }
            }
        }
    }
    out.sort();
    out
}

fn documented(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
        for method in ops.as_object().into_iter().flatten().map(|(m, _)| m) {
            out.push((method.clone(), path.clone()));
        }
    }
    out.sort();
    out
}

#[test]
fn every_route_the_api_serves_is_documented_and_nothing_else() {
    let doc = spec();
    let served = served();
    assert!(
        served.len() > 30,
        "the source scan found too little: {served:?}"
    );
    assert!(served.contains(&("patch".into(), "/api/v1/contexts/{name}".into())));
    let documented = documented(&doc);
    let missing: Vec<_> = served.iter().filter(|r| !documented.contains(r)).collect();
    assert!(
        missing.is_empty(),
        "served but not in the OpenAPI document: {missing:?}"
    );
    let stale: Vec<_> = documented.iter().filter(|r| !served.contains(r)).collect();
    assert!(stale.is_empty(), "documented but not served: {stale:?}");
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_schemas_come_from_the_types_and_every_reference_resolves() {
    let doc = spec();
    let schemas = &doc["components"]["schemas"];
    // The fields the hand-written document lacked, now generated from the types.
    let context = &schemas["Context"]["properties"];
    for field in [
        "shadow",
        "rollout",
        "translator",
        "fallback",
        "objective",
        "sticky",
        "weight",
        "fallback_after_ms",
    ] {
        assert!(context.get(field).is_some(), "Context.{field}: {context}");
    }
    assert!(
        schemas["ShadowPolicy"]["properties"]
            .get("redact")
            .is_some(),
        "{schemas}"
    );
    assert!(schemas["RouteShadow"]["properties"].get("writes").is_some());
    assert!(schemas["Service"]["properties"].get("policy").is_some());
    assert!(schemas["ServicePolicy"]["properties"]
        .get("breaker_failure_percent")
        .is_some());
    // Doc comments become descriptions.
    assert!(schemas["Objective"]["properties"]["p99_ms"]["description"]
        .as_str()
        .is_some_and(|d| d.contains("99th percentile")));
    // Unknown fields are refused, and the document says so.
    assert!(schemas["Context"]["description"]
        .as_str()
        .is_some_and(|d| d.contains("Unknown fields are refused")));
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20);
    for r in all {
        let name = r
            .strip_prefix("#/components/")
            .unwrap_or_else(|| panic!("{r} points outside the components"));
        let (kind, name) = name.split_once('/').unwrap_or(("", name));
        assert!(
            doc["components"][kind].get(name).is_some(),
            "{r} does not resolve"
        );
    }
    // Every answer that has a body describes it.
    for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in ops.as_object().into_iter().flatten() {
            if method == "get" && path != "/api/v1/openapi.json" && path != "/api/v1/identity/jwks"
            {
                assert!(
                    op["responses"]["200"]["content"]["application/json"]["schema"].is_object(),
                    "{method} {path} has no answer schema"
                );
            }
        }
    }
}
