//! OpenAPI connections (issue 17): example documents, a local pet store that implements
//! them and records every request it receives, and a synthetic document of any size for
//! benches.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The OpenAPI Initiative's `petstore.yaml` (3.0.0).
pub const PETSTORE_30_YAML: &str = include_str!("../fixtures/openapi/petstore-3.0.yaml");
/// `petstore-expanded` in OpenAPI 3.1 form (JSON), with an API key in `X-API-Key`, a
/// path-item parameter by reference, `allOf`, and an anonymous `/health`.
pub const PETSTORE_31_JSON: &str = include_str!("../fixtures/openapi/petstore-3.1.json");
/// References, `allOf`, a cycle, `nullable`, `readOnly`, header/query/path parameters, a
/// form body, a multipart-only operation and bearer auth (3.0.3).
pub const REFS_ALLOF_YAML: &str = include_str!("../fixtures/openapi/refs-allof.yaml");

/// One request the pet store received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// Headers, names lower-case.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    pets: BTreeMap<i64, Value>,
    next_id: i64,
}

/// A pet store on 127.0.0.1 implementing the example documents under any prefix (`/v1`,
/// `/api`): `GET|POST /pets`, `GET|DELETE /pets/{id}`, `GET /health`; other routes answer
/// 404 as JSON. Every request is recorded. Stops when dropped.
pub struct FakePetstore {
    /// Where it listens.
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakePetstore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakePetstore {
    /// Starts it with two pets (1: Rex, 2: Tom).
    pub async fn start() -> FakePetstore {
        let mut inner = Inner {
            next_id: 3,
            ..Inner::default()
        };
        inner.pets.insert(1, json!({"id": 1, "name": "Rex", "tag": "dog"}));
        inner.pets.insert(2, json!({"id": 2, "name": "Tom", "tag": "cat"}));
        let inner = Arc::new(Mutex::new(inner));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake pet store");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakePetstore { addr, inner, task }
    }

    /// `http://127.0.0.1:port{prefix}`.
    pub fn url(&self, prefix: &str) -> String {
        format!("http://{}{prefix}", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().expect("pet store lock").requests.clone()
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: body.to_vec(),
    };
    let mut inner = inner.lock().expect("pet store lock");
    inner.requests.push(recorded.clone());
    // Any prefix: route on what follows it.
    let path = recorded.path.as_str();
    let route = path
        .find("/pets")
        .map(|i| &path[i..])
        .or_else(|| path.find("/health").map(|i| &path[i..]));
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"code": 404, "message": format!("no route {} {path}", recorded.method)})),
        )
            .into_response()
    };
    match (parts.method, route) {
        (Method::GET, Some("/health")) => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response()
        }
        (Method::GET, Some("/pets")) => {
            let limit = recorded
                .query
                .as_deref()
                .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "limit"))
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(usize::MAX);
            let pets: Vec<Value> = inner.pets.values().take(limit).cloned().collect();
            axum::Json(Value::Array(pets)).into_response()
        }
        (Method::POST, Some("/pets")) => {
            let Value::Object(mut pet) = recorded.json() else {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"code": 400, "message": "the body must be a JSON pet"})),
                )
                    .into_response();
            };
            let id = pet.get("id").and_then(Value::as_i64).unwrap_or(inner.next_id);
            inner.next_id = inner.next_id.max(id + 1);
            pet.insert("id".into(), json!(id));
            inner.pets.insert(id, Value::Object(pet.clone()));
            (StatusCode::CREATED, axum::Json(Value::Object(pet))).into_response()
        }
        (method, Some(route)) if route.starts_with("/pets/") => {
            let Ok(id) = route["/pets/".len()..].parse::<i64>() else {
                return not_found();
            };
            match method {
                Method::GET => match inner.pets.get(&id) {
                    Some(pet) => axum::Json(pet.clone()).into_response(),
                    None => not_found(),
                },
                Method::DELETE => match inner.pets.remove(&id) {
                    Some(_) => StatusCode::NO_CONTENT.into_response(),
                    None => not_found(),
                },
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}

/// A valid OpenAPI 3.0 document (JSON) with `operations` operations over shared component
/// schemas (with `allOf` and references), in groups of four per path: list, create, get,
/// delete. For measuring imports.
pub fn synthetic_spec(operations: usize) -> String {
    let mut paths = serde_json::Map::new();
    let resources = operations.div_ceil(4);
    let mut made = 0;
    for r in 0..resources {
        let collection = format!("/things{r}");
        let item = format!("/things{r}/{{thingId}}");
        let mut list = serde_json::Map::new();
        let mut one = serde_json::Map::new();
        for (method, on_item, body) in [
            ("get", false, false),
            ("post", false, true),
            ("get", true, false),
            ("delete", true, false),
        ] {
            if made == operations {
                break;
            }
            let mut op = json!({
                "operationId": format!("{method}Thing{r}_{made}"),
                "summary": format!("Operation {made} on resource {r}"),
                "parameters": [{"$ref": "#/components/parameters/Limit"}],
                "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}}},
            });
            if body {
                op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}});
            }
            if on_item { &mut one } else { &mut list }.insert(method.to_owned(), op);
            made += 1;
        }
        paths.insert(collection, Value::Object(list));
        if !one.is_empty() {
            one.insert(
                "parameters".into(),
                json!([{"name": "thingId", "in": "path", "required": true, "schema": {"type": "string"}}]),
            );
            paths.insert(item, Value::Object(one));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Synthetic", "version": "1"},
        "servers": [{"url": "https://api.example.com/v1"}],
        "components": {
            "parameters": {"Limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}},
            "schemas": {
                "Base": {"type": "object", "properties": {"id": {"type": "string", "readOnly": true}, "created": {"type": "string", "format": "date-time"}}},
                "Tag": {"type": "object", "required": ["key"], "properties": {"key": {"type": "string"}, "value": {"type": "string", "nullable": true}}},
                "Thing": {"allOf": [
                    {"$ref": "#/components/schemas/Base"},
                    {"type": "object", "required": ["name"], "properties": {
                        "name": {"type": "string", "maxLength": 200},
                        "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                        "parent": {"$ref": "#/components/schemas/Thing"}
                    }}
                ]}
            }
        },
        "paths": paths,
    })
    .to_string()
}
