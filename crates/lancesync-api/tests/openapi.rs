//! The OpenAPI document against the router that serves it: valid OpenAPI 3 (checked by the
//! `openapi-spec-validator` package, which scripts/env.sh installs), every route in it and
//! nothing else, every path parameter declared, the id patterns the same as the server's
//! rules, and one request per operation, built only from the document's schemas and examples,
//! answered without a 5xx with a status and body the document lists.
//! Run: cargo test --workspace --test openapi

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Method, Request, header};
use common::*;
use serde_json::Value;

async fn document(s: &Server) -> Value {
    let r = s.get("/openapi.json", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// `(METHOD, path)` of every route `routes()` declares, read from its source: axum's
/// router cannot list its routes.
fn served_routes() -> BTreeSet<(String, String)> {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let source =
        std::fs::read_to_string(format!("{dir}/src/routes/mod.rs")).expect("routes/mod.rs");
    let body = &source[source.find("pub(crate) fn routes()").expect("routes()")..];
    let body = &body[..body.find("\n}\n").expect("end of routes()")];
    let mut out = BTreeSet::new();
    for call in body.split(".route(").skip(1) {
        let path = call.split('"').nth(1).expect("a path literal");
        // The method chain runs to the call's closing parenthesis.
        let mut depth = 1;
        let end = call
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("balanced route call");
        let chain = &call[..end];
        for method in ["get", "post", "put", "delete", "patch"] {
            let called = chain.match_indices(&format!("{method}(")).any(|(i, _)| {
                i == 0
                    || !chain.as_bytes()[i - 1].is_ascii_alphanumeric()
                        && chain.as_bytes()[i - 1] != b'_'
            });
            if called {
                out.insert((method.to_uppercase(), path.to_string()));
            }
        }
    }
    out
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().expect("ref name");
            let found = &doc["components"]["schemas"][name];
            assert!(found.is_object(), "{r} is not in the document's components");
            found
        }
        None => schema,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_and_covers_exactly_the_served_routes() {
    let s = server(&[]);
    let doc = document(&s).await;

    // A standard validator accepts it.
    let file = s.work.join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))\nprint('valid')",
        ])
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document (install it with `python3 -m pip install openapi-spec-validator`; scripts/env.sh does): {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every served route is documented, and nothing else is.
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let served = served_routes();
    assert!(served.len() >= 25, "{served:?}");
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not served"
    );

    // Every `{name}` of a path is a declared, required path parameter with a pattern or type.
    for (method, path, op) in operations(&doc) {
        let declared: BTreeMap<String, Value> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| (p["name"].as_str().unwrap().to_string(), p.clone()))
            .collect();
        let named: BTreeSet<String> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_string)
            .collect();
        assert_eq!(
            declared.keys().cloned().collect::<BTreeSet<_>>(),
            named,
            "{method} {path}"
        );
        for (name, p) in declared {
            assert_eq!(p["required"], true, "{method} {path} {name}");
            let schema = resolve(&doc, &p["schema"]);
            assert!(
                schema["pattern"].is_string() || schema["enum"].is_array(),
                "{method} {path}: {name} states no rule: {p}"
            );
        }
        // Every operation lists the rate limit's answer, and a secured one the 401.
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.contains_key("429"), "{method} {path}");
        let public = op["security"].as_array().is_some_and(|s| {
            s.iter()
                .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
        });
        assert_eq!(responses.contains_key("401"), !public, "{method} {path}");
    }
}

/// Sample ids checked with the document's patterns and with the server's own rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_s_id_patterns_are_the_server_s_rules() {
    let s = server(&[]);
    let doc = document(&s).await;
    let pattern_of = |path: &str, method: &str, name: &str| -> regex::Regex {
        let p = doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path} has no {name}"))
            .clone();
        regex::Regex::new(resolve(&doc, &p["schema"])["pattern"].as_str().unwrap()).unwrap()
    };
    let user = pattern_of("/api/v1/sync/status", "get", "user_id");
    let source = pattern_of(
        "/api/v1/sources/{source_type}/{source_id}",
        "get",
        "source_id",
    );
    let doc_id = pattern_of("/api/v1/documents/{doc_id}", "get", "doc_id");
    let samples = [
        "alice",
        "a",
        "bob@example.com",
        "x.y",
        "_u",
        "-",
        ".hidden",
        "",
        "a b",
        "a/b",
        "ü",
        "a'b",
        &"x".repeat(128),
        &"x".repeat(129),
        "0123456789abcdef0123456789abcdef",
        "0123456789ABCDEF0123456789ABCDEF",
        "job-1",
    ];
    for sample in samples {
        assert_eq!(
            user.is_match(sample),
            lancesync_engine::ids::validate_user_id(sample).is_ok(),
            "user id {sample:?}"
        );
        assert_eq!(
            source.is_match(sample),
            lancesync_engine::ids::validate_source_id(sample).is_ok(),
            "source id {sample:?}"
        );
        assert_eq!(
            doc_id.is_match(sample),
            lancesync_engine::ids::validate_doc_id(sample).is_ok(),
            "doc id {sample:?}"
        );
    }
}

/// A value for a parameter: its example (the document gives one for every path parameter).
fn example(doc: &Value, p: &Value) -> Option<String> {
    let value = p
        .get("example")
        .or_else(|| resolve(doc, &p["schema"]).get("example"))?;
    Some(match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_a_request_built_from_the_document() {
    let s = server(&[]);
    let doc = document(&s).await;
    let mut tried = 0;
    // Deletions last, so the other operations meet what the examples created.
    let mut ops = operations(&doc);
    ops.sort_by_key(|(method, _, _)| method == "DELETE");
    let mut statuses = BTreeMap::new();
    for (method, path, op) in ops {
        let mut uri = path.clone();
        let mut query = Vec::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap();
            match (p["in"].as_str(), example(&doc, p)) {
                (Some("path"), Some(v)) => uri = uri.replace(&format!("{{{name}}}"), &v),
                (Some("path"), None) => {
                    panic!("{method} {path}: path parameter {name} has no example")
                }
                (Some("query"), Some(v)) => query.push(format!("{name}={v}")),
                _ => {}
            }
        }
        if !query.is_empty() {
            uri = format!("{uri}?{}", query.join("&"));
        }
        let mut request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(&uri);
        let public = op["security"].as_array().is_some_and(|s| {
            s.iter()
                .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
        });
        if !public {
            request = request.header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
        }
        let content = &op["requestBody"]["content"];
        let body = if let Some(json) = content.get("application/json") {
            let schema = resolve(&doc, &json["schema"]);
            let example = schema
                .get("example")
                .unwrap_or_else(|| panic!("{method} {path}: the body schema has no example"));
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(example.to_string())
        } else if let Some(form) = content.get("multipart/form-data") {
            let schema = resolve(&doc, &form["schema"]);
            let boundary = "lancesync-openapi-test";
            let mut bytes = Vec::new();
            for (name, property) in schema["properties"].as_object().expect("form properties") {
                assert_eq!(property["format"], "binary", "{name}");
                bytes.extend_from_slice(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"example.md\"\r\nContent-Type: application/octet-stream\r\n\r\n# Example\n\nAn example document.\r\n"
                    )
                    .as_bytes(),
                );
            }
            bytes.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            request = request.header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            );
            Body::from(bytes)
        } else {
            Body::empty()
        };
        let reply = s.send(request.body(body).unwrap()).await;
        let status = reply.status.as_u16();
        assert!(status < 500, "{method} {uri}: {status} {}", reply.text);
        let documented = &op["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {uri} answered {status}, which the document does not list: {}",
            reply.text
        );
        if (200..300).contains(&status)
            && reply.headers.get(header::CONTENT_TYPE).is_some_and(|v| {
                v.to_str()
                    .unwrap_or_default()
                    .starts_with("application/json")
            })
            && path != "/openapi.json"
        {
            assert!(
                documented["content"]["application/json"]["schema"].is_object(),
                "{method} {path} {status}: a JSON answer without a documented schema"
            );
        }
        // The body is what the document says: its content type, and its schema's fields.
        if let Some(types) = documented["content"].as_object() {
            let sent = reply
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(
                types.keys().any(|t| sent.starts_with(t.as_str())),
                "{method} {uri} {status}: content type {sent:?}, documented {:?}",
                types.keys().collect::<Vec<_>>()
            );
            if let Some(json) = types.get("application/json") {
                let schema = resolve(&doc, &json["schema"]);
                let body = reply.json();
                for field in schema["required"].as_array().into_iter().flatten() {
                    let field = field.as_str().unwrap();
                    assert!(
                        body.get(field).is_some(),
                        "{method} {uri} {status}: no {field} in {body}"
                    );
                }
            }
        }
        statuses.insert(format!("{method} {path}"), status);
        tried += 1;
    }
    assert!(tried >= 27, "{tried} operations");
    // The examples describe real use: adding, scanning and searching succeed.
    for (op, want) in [
        ("POST /api/v1/sources", 201),
        ("POST /api/v1/sources/{source_type}/{source_id}/scan", 200),
        ("POST /api/v1/sync/manual", 201),
        ("POST /api/v1/documents", 201),
        ("POST /api/v1/search", 200),
        ("DELETE /api/v1/sources/{source_type}/{source_id}", 200),
    ] {
        assert_eq!(statuses[op], want, "{op}: {statuses:?}");
    }
}
