//! OpenAPI connections: the example pet stores (3.0 YAML, 3.1 JSON) and a document with
//! references and `allOf` imported into the store (both backends), loaded into a registry
//! the way a node does, and called against a local pet store that records what it receives.
//! Malformed documents are refused with the JSON pointer of each problem.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use coworker_core::config::{HttpFetchConfig, McpToolOverride};
use coworker_core::domain::RiskClass;
use coworker_core::{RunId, TaskId};
use coworker_testkit::openapi::{FakePetstore, PETSTORE_30_YAML, PETSTORE_31_JSON, REFS_ALLOF_YAML, synthetic_spec};
use coworker_testkit::{TestDb, backend_tests};
use coworker_tools::mcp::SecretSource;
use coworker_tools::openapi::{
    ApiSources, CompileOptions, ImportRequest, OauthRequest, PutApiError, SignIn, SpecError, compile, import_org_api,
    list_apis, parse_document, remove_org_api,
};
use coworker_tools::schema::CompiledSchema;
use coworker_tools::{ToolCallContext, ToolRegistry};
use futures::future::BoxFuture;
use serde_json::{Value, json};

backend_tests!(
    petstore_30_is_imported_and_its_operations_called,
    petstore_31_sends_the_api_key_where_the_document_says,
    references_all_of_and_form_bodies_reach_the_api_as_specified,
    a_malformed_document_stores_nothing,
    replacing_and_removing_a_connection_reaches_the_registry,
    oauth_imports_keep_the_documents_sign_in_and_refuse_what_cannot_sign_in,
);

struct StaticSecrets(HashMap<String, String>);

impl SecretSource for StaticSecrets {
    fn secret(&self, name: &str) -> BoxFuture<'_, Result<Option<String>, String>> {
        let value = self.0.get(name).cloned();
        Box::pin(async move { Ok(value) })
    }
}

fn secrets(pairs: &[(&str, &str)]) -> Arc<dyn SecretSource> {
    Arc::new(StaticSecrets(
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    ))
}

/// The egress policy with the local pet store allowed (loopback is refused by default).
fn local_http() -> HttpFetchConfig {
    HttpFetchConfig {
        allow: vec!["127.0.0.1".into()],
        ..HttpFetchConfig::default()
    }
}

fn context() -> ToolCallContext {
    ToolCallContext {
        task_id: TaskId::new(),
        run_id: RunId::new(),
        call_id: "t1:call_0".into(),
        delegator: None,
    }
}

async fn call(registry: &ToolRegistry, tool: &str, arguments: Value) -> Result<String, String> {
    let found = registry
        .get(tool)
        .unwrap_or_else(|| panic!("{tool} is not registered; have {registry:?}"));
    if let Err(problem) = CompiledSchema::compile(&found.spec().input_schema)
        .unwrap()
        .check(&arguments)
    {
        return Err(format!("schema: {problem}"));
    }
    found.call(context(), arguments).await.map_err(|e| e.0)
}

fn request(name: &str, text: &str, base_url: &str) -> ImportRequest {
    ImportRequest {
        name: name.into(),
        text: text.into(),
        source: format!("/specs/{name}"),
        base_url: Some(base_url.into()),
        ..ImportRequest::default()
    }
}

async fn loaded(db: &TestDb, secrets: Arc<dyn SecretSource>) -> (ToolRegistry, ApiSources) {
    let registry = ToolRegistry::new();
    let sources = ApiSources::new(registry.clone(), secrets, local_http());
    let problems = sources.sync(&db.store).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    (registry, sources)
}

async fn petstore_30_is_imported_and_its_operations_called(db: &TestDb) {
    let api = FakePetstore::start().await;
    let report = import_org_api(&db.store, request("pets", PETSTORE_30_YAML, &api.url("/v1")), "test")
        .await
        .unwrap();
    assert_eq!(report.openapi, "3.0");
    assert!(!report.replaced);
    let tools: Vec<(&str, RiskClass)> = report.tools.iter().map(|t| (t.name.as_str(), t.risk)).collect();
    assert_eq!(
        tools,
        [
            ("pets.listPets", RiskClass::Read),
            ("pets.createPets", RiskClass::Write),
            ("pets.showPetById", RiskClass::Read)
        ]
    );

    let (registry, _sources) = loaded(db, secrets(&[])).await;
    let list = registry.get("pets.listPets").unwrap();
    assert!(list.spec().idempotent);
    assert_eq!(list.spec().input_schema["properties"]["limit"]["maximum"], 100);
    assert!(list.spec().description.contains("List all pets"));
    let create = registry.get("pets.createPets").unwrap();
    assert!(!create.spec().idempotent, "POST is not idempotent");
    assert_eq!(
        create.spec().input_schema["properties"]["body"]["required"],
        json!(["id", "name"])
    );
    assert_eq!(create.spec().input_schema["required"], json!(["body"]));

    let out = call(&registry, "pets.listPets", json!({"limit": 1})).await.unwrap();
    assert!(out.starts_with("HTTP 200 OK"), "{out}");
    assert!(out.contains("Rex") && !out.contains("Tom"), "{out}");
    let out = call(
        &registry,
        "pets.createPets",
        json!({"body": {"id": 7, "name": "Kit", "tag": "cat"}}),
    )
    .await
    .unwrap();
    assert!(out.starts_with("HTTP 201 Created"), "{out}");
    let out = call(&registry, "pets.showPetById", json!({"petId": "7"}))
        .await
        .unwrap();
    assert!(out.contains("\"Kit\""), "{out}");
    let missing = call(&registry, "pets.showPetById", json!({"petId": "99"}))
        .await
        .unwrap_err();
    assert!(
        missing.contains("404 Not Found") && missing.contains("no route"),
        "{missing}"
    );
    let invalid = call(&registry, "pets.listPets", json!({"limit": 1000}))
        .await
        .unwrap_err();
    assert!(
        invalid.starts_with("schema:"),
        "the schema's maximum applies: {invalid}"
    );

    let seen = api.requests();
    let summary: Vec<(&str, &str, Option<&str>)> = seen
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.query.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET", "/v1/pets", Some("limit=1")),
            ("POST", "/v1/pets", None),
            ("GET", "/v1/pets/7", None),
            ("GET", "/v1/pets/99", None),
        ]
    );
    assert_eq!(seen[1].json(), json!({"id": 7, "name": "Kit", "tag": "cat"}));
    assert_eq!(seen[1].header("content-type"), Some("application/json"));
    assert_eq!(
        seen[1].header("idempotency-key").map(|k| k.ends_with(":t1:call_0")),
        Some(true)
    );
    assert_eq!(seen[0].header("idempotency-key"), None, "GET needs no idempotency key");
    assert!(
        seen.iter().all(|r| r.header("authorization").is_none()),
        "no credential configured"
    );
}

async fn petstore_31_sends_the_api_key_where_the_document_says(db: &TestDb) {
    let api = FakePetstore::start().await;
    let mut import = request("store", PETSTORE_31_JSON, &api.url("/api"));
    import.auth_secret = Some("secret:pet-key".into());
    import.tools = BTreeMap::from([(
        "deletePet".to_owned(),
        McpToolOverride {
            risk: Some(RiskClass::External),
            idempotent: None,
        },
    )]);
    let report = import_org_api(&db.store, import, "test").await.unwrap();
    assert_eq!(report.openapi, "3.1");
    assert_eq!(report.auth.as_deref(), Some("API key in header X-API-Key"));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("secret \"pet-key\" does not exist")),
        "{:?}",
        report.warnings
    );
    let names: Vec<&str> = report.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "store.get_health",
            "store.findPets",
            "store.addPet",
            "store.find_pet_by_id",
            "store.deletePet"
        ],
        "by path, then method; a spaced operationId is sanitised and a missing one derived"
    );

    let (registry, _sources) = loaded(db, secrets(&[("pet-key", "k-123")])).await;
    assert_eq!(
        registry.get("store.deletePet").unwrap().spec().risk,
        RiskClass::External,
        "the override wins over DELETE's destructive"
    );
    let add = registry.get("store.addPet").unwrap();
    assert_eq!(
        add.spec().input_schema["properties"]["body"]["properties"]["tag"]["type"],
        json!(["string", "null"])
    );
    let by_id = registry.get("store.find_pet_by_id").unwrap();
    assert_eq!(by_id.spec().input_schema["properties"]["id"]["type"], "integer");
    assert_eq!(by_id.spec().input_schema["required"], json!(["id"]));

    call(&registry, "store.findPets", json!({"tags": ["dog", "cat"], "limit": 5}))
        .await
        .unwrap();
    call(&registry, "store.addPet", json!({"body": {"name": "Kit", "tag": null}}))
        .await
        .unwrap();
    call(&registry, "store.deletePet", json!({"id": 2})).await.unwrap();
    let health = call(&registry, "store.get_health", json!({})).await.unwrap();
    assert!(health.contains("text/plain") && health.ends_with("ok"), "{health}");

    let seen = api.requests();
    assert_eq!(seen[0].path, "/api/pets");
    assert_eq!(seen[0].query.as_deref(), Some("tags=dog&tags=cat&limit=5"));
    assert_eq!(seen[1].json(), json!({"name": "Kit", "tag": null}));
    assert_eq!(
        (seen[2].method.as_str(), seen[2].path.as_str()),
        ("DELETE", "/api/pets/2")
    );
    for secured in &seen[..3] {
        assert_eq!(secured.header("x-api-key"), Some("k-123"), "{secured:?}");
    }
    assert_eq!(seen[3].path, "/api/health");
    assert_eq!(
        seen[3].header("x-api-key"),
        None,
        "security: [] means the operation gets no credential"
    );
}

async fn references_all_of_and_form_bodies_reach_the_api_as_specified(db: &TestDb) {
    let api = FakePetstore::start().await;
    // The server URL is relative ("/v2"): without a base URL it needs a document fetched
    // from a URL to resolve against.
    let mut from_file = request("orders", REFS_ALLOF_YAML, "");
    from_file.base_url = None;
    let error = import_org_api(&db.store, from_file, "test")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("\"/v2\" is relative") && error.contains("--base-url"),
        "{error}"
    );
    let mut from_url = request("orders", REFS_ALLOF_YAML, "");
    from_url.base_url = None;
    from_url.source = api.url("/specs/orders.yaml");
    from_url.auth_secret = Some("orders-token".into());
    let report = import_org_api(&db.store, from_url, "test").await.unwrap();
    assert_eq!(report.base_url, api.url("/v2"));
    assert_eq!(report.auth.as_deref(), Some("bearer token (Authorization: Bearer …)"));
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(report.skipped[0].contains("uploadAttachment") && report.skipped[0].contains("multipart/form-data"));

    let (registry, _sources) = loaded(db, secrets(&[("orders-token", "tok")])).await;
    let create = registry.get("orders.createOrder").unwrap();
    let schema = &create.spec().input_schema;
    assert_eq!(schema["properties"]["X-Tenant"]["pattern"], "^[a-z]+$");
    assert_eq!(schema["required"], json!(["X-Tenant", "body"]));
    let body = &schema["properties"]["body"];
    let properties: Vec<&String> = body["properties"].as_object().unwrap().keys().collect();
    assert_eq!(
        properties,
        ["lines", "note", "parent"],
        "allOf merged, readOnly dropped: {body}"
    );
    assert_eq!(body["required"], json!(["lines"]));
    assert_eq!(body["properties"]["note"]["type"], json!(["string", "null"]));
    assert_eq!(
        body["properties"]["lines"]["items"]["properties"]["quantity"]["exclusiveMinimum"],
        0
    );
    let cut = body["properties"]["parent"]["description"].as_str().unwrap_or_default();
    assert!(
        cut.contains("recursive reference to #/components/schemas/Order"),
        "{body}"
    );
    assert!(body.get("allOf").is_none(), "{body}");

    let created = call(
        &registry,
        "orders.createOrder",
        json!({"X-Tenant": "acme", "dry-run": true, "body": {"lines": [{"sku": "a", "quantity": 2}]}}),
    )
    .await
    .unwrap_err();
    assert!(created.contains("404"), "the pet store has no /orders: {created}");
    let patched = call(
        &registry,
        "orders.patch_orders_orderId",
        json!({"orderId": "o/1", "X-Tenant": "acme", "body": {"note": "call me"}}),
    )
    .await
    .unwrap_err();
    assert!(patched.contains("404"), "{patched}");

    let seen = api.requests();
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("POST", "/v2/orders"));
    assert_eq!(seen[0].query.as_deref(), Some("dry-run=true"));
    assert_eq!(seen[0].header("x-tenant"), Some("acme"));
    assert_eq!(seen[0].header("authorization"), Some("Bearer tok"));
    assert_eq!(seen[0].json(), json!({"lines": [{"sku": "a", "quantity": 2}]}));
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("PATCH", "/v2/orders/o%2F1")
    );
    assert_eq!(
        seen[1].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(seen[1].body, b"note=call+me");
}

async fn a_malformed_document_stores_nothing(db: &TestDb) {
    let broken = PETSTORE_30_YAML.replace(
        "$ref: \"#/components/schemas/Pets\"",
        "$ref: \"#/components/schemas/Pest\"",
    );
    let error = import_org_api(&db.store, request("pets", &broken, "https://api.example.com"), "test")
        .await
        .unwrap_err();
    assert!(matches!(error, PutApiError::Spec { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains(
            "/paths/~1pets/get/responses/200/content/application~1json/schema/$ref: \"#/components/schemas/Pest\" does not exist"
        ),
        "{text}"
    );
    assert!(list_apis(&db.store).await.unwrap().is_empty());
    let error = import_org_api(
        &db.store,
        request("http", PETSTORE_30_YAML, "https://a.example"),
        "test",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("built-in toolset"), "{error}");
    assert!(list_apis(&db.store).await.unwrap().is_empty());
}

async fn replacing_and_removing_a_connection_reaches_the_registry(db: &TestDb) {
    import_org_api(
        &db.store,
        request("pets", PETSTORE_30_YAML, "https://a.example/v1"),
        "test",
    )
    .await
    .unwrap();
    let (registry, sources) = loaded(db, secrets(&[])).await;
    assert_eq!(registry.get("pets.createPets").unwrap().spec().risk, RiskClass::Write);

    // Replaced with an override: the next sync swaps the tools.
    let mut again = request("pets", PETSTORE_30_YAML, "https://a.example/v1");
    again.tools = BTreeMap::from([(
        "create*".to_owned(),
        McpToolOverride {
            risk: Some(RiskClass::External),
            idempotent: None,
        },
    )]);
    assert!(import_org_api(&db.store, again, "test").await.unwrap().replaced);
    sources.sync(&db.store).await.unwrap();
    assert_eq!(
        registry.get("pets.createPets").unwrap().spec().risk,
        RiskClass::External
    );

    // The 3.1 document under the same name replaces all of its tools.
    import_org_api(
        &db.store,
        request("pets", PETSTORE_31_JSON, "https://a.example/api"),
        "test",
    )
    .await
    .unwrap();
    sources.sync(&db.store).await.unwrap();
    assert!(registry.get("pets.createPets").is_none());
    assert!(registry.get("pets.findPets").is_some());

    assert!(remove_org_api(&db.store, "pets", "test").await.unwrap());
    sources.sync(&db.store).await.unwrap();
    assert!(registry.specs().is_empty(), "{registry:?}");
    assert!(!remove_org_api(&db.store, "pets", "test").await.unwrap());
}

fn problems_of(text: &str) -> Vec<String> {
    let document = match parse_document(text) {
        Ok(document) => document,
        Err(e) => return vec![e.to_string()],
    };
    match compile(&document, &CompileOptions { connection: "t".into() }) {
        Ok(_) => Vec::new(),
        Err(SpecError::Invalid { problems, .. }) => problems.iter().map(ToString::to_string).collect(),
        Err(other) => vec![other.to_string()],
    }
}

#[test]
fn malformed_documents_are_refused_with_the_pointer_of_each_problem() {
    let cases: &[(&str, &str)] = &[
        (
            "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /pets:\n    get:\n      operationId: list\n",
            "/paths/~1pets/get/responses: is required by OpenAPI 3.0 but missing",
        ),
        (
            "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /pets/{id}:\n    get:\n      responses: {'200': {description: ok}}\n",
            "/paths/~1pets~1{id}/get/parameters: the path template has {id} but no path parameter \"id\" is declared",
        ),
        (
            "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      parameters: [{$ref: 'common.yaml#/Limit'}]\n",
            "/paths/~1a/get/parameters/0/$ref: \"common.yaml#/Limit\" points outside this document",
        ),
        (
            "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get: {operationId: same}\n  /b:\n    get: {operationId: same}\n",
            "/paths/~1b/get/operationId: \"same\" is already the operationId of /paths/~1a/get",
        ),
        (
            "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a:\n    get:\n      parameters: [{name: q, in: body}]\n",
            "/paths/~1a/get/parameters/0/in: \"body\" is not path, query, header or cookie",
        ),
        (
            "openapi: 3.1.0\ninfo: {title: t}\npaths: {}\n",
            "/info/version: is required but missing",
        ),
        ("swagger: '2.0'\n", "/swagger: this is a Swagger 2.0 description"),
        ("openapi: 4.0.0\n", "/openapi: version \"4.0.0\" is not supported"),
        ("openapi: 3.0.0\npaths: [\n", "the document is not valid YAML"),
    ];
    for (text, expected) in cases {
        let problems = problems_of(text);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "expected {expected:?} among {problems:?}"
        );
    }
}

#[test]
fn every_input_schema_compiles_as_json_schema() {
    let large = synthetic_spec(400);
    for text in [PETSTORE_30_YAML, PETSTORE_31_JSON, REFS_ALLOF_YAML, large.as_str()] {
        let document = parse_document(text).unwrap();
        let compiled = compile(&document, &CompileOptions { connection: "t".into() }).unwrap();
        assert!(!compiled.operations.is_empty());
        for operation in &compiled.operations {
            CompiledSchema::compile(&operation.input_schema)
                .unwrap_or_else(|e| panic!("{}: {e}: {}", operation.tool, operation.input_schema));
        }
    }
    let compiled = compile(
        &parse_document(&large).unwrap(),
        &CompileOptions { connection: "t".into() },
    )
    .unwrap();
    assert_eq!(compiled.operations.len(), 400);
}

#[tokio::test]
async fn the_egress_policy_applies_to_every_call() {
    let api = FakePetstore::start().await;
    let db = TestDb::new(coworker_testkit::Backend::Sqlite).await.unwrap();
    import_org_api(&db.store, request("pets", PETSTORE_30_YAML, &api.url("/v1")), "test")
        .await
        .unwrap();
    // The node's default policy: loopback refused.
    let registry = ToolRegistry::new();
    let sources = ApiSources::new(registry.clone(), secrets(&[]), HttpFetchConfig::default());
    sources.sync(&db.store).await.unwrap();
    let refused = call(&registry, "pets.listPets", json!({})).await.unwrap_err();
    assert!(refused.contains("127.0.0.1 is a loopback"), "{refused}");
    assert!(api.requests().is_empty(), "nothing may reach a refused address");
}

/// A document with an `oauth2` scheme (relative URLs, an authorization code flow), an
/// `openIdConnect` one and a client-credentials-only one.
fn oauth_document() -> String {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Crm", "version": "2"},
        "servers": [{"url": "https://crm.example.com/api"}],
        "components": {"securitySchemes": {
            "user_code": {"type": "oauth2", "flows": {"authorizationCode": {
                "authorizationUrl": "/oauth/authorize",
                "tokenUrl": "https://auth.example.com/token",
                "scopes": {"deals.read": "", "deals.write": ""},
            }}},
            "oidc": {"type": "openIdConnect", "openIdConnectUrl": "https://id.example.com/.well-known/openid-configuration"},
            "machines": {"type": "oauth2", "flows": {"clientCredentials": {
                "tokenUrl": "https://auth.example.com/token", "scopes": {},
            }}},
        }},
        "security": [{"user_code": []}],
        "paths": {"/deals": {"get": {"operationId": "listDeals", "responses": {"200": {"description": "ok"}}}},
                  "/health": {"get": {"operationId": "health", "security": [], "responses": {"200": {"description": "ok"}}}}},
    })
    .to_string()
}

async fn oauth_imports_keep_the_documents_sign_in_and_refuse_what_cannot_sign_in(db: &TestDb) {
    let with = |scheme: Option<&str>, oauth: OauthRequest| ImportRequest {
        name: "crm".into(),
        text: oauth_document(),
        source: "/specs/crm".into(),
        auth_scheme: scheme.map(str::to_owned),
        oauth: Some(oauth),
        ..ImportRequest::default()
    };
    // The top-level default among several OAuth schemes; its relative URL made absolute
    // against the base URL; the flow's scopes asked for.
    let report = import_org_api(&db.store, with(None, OauthRequest::default()), "test")
        .await
        .unwrap();
    assert!(
        report.auth.as_deref().unwrap().contains("OAuth, scheme user_code"),
        "{report:?}"
    );
    let authenticated: Vec<(&str, bool)> = report
        .tools
        .iter()
        .map(|t| (t.name.as_str(), t.authenticated))
        .collect();
    assert_eq!(authenticated, [("crm.listDeals", true), ("crm.health", false)]);
    let (_, stored) = list_apis(&db.store).await.unwrap().into_iter().next().unwrap();
    let oauth = stored.unwrap().oauth.expect("stored with its sign-in");
    assert_eq!(oauth.scheme, "user_code");
    assert_eq!(oauth.scopes, ["deals.read", "deals.write"]);
    assert_eq!(
        oauth.sign_in,
        SignIn::AuthorizationCode {
            authorization_url: "https://crm.example.com/oauth/authorize".into(),
            token_url: "https://auth.example.com/token".into(),
            refresh_url: None,
            scopes: vec!["deals.read".into(), "deals.write".into()],
        }
    );
    let targets = coworker_tools::openapi::stored::oauth_apis(&db.store).await.unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].base_url, "https://crm.example.com/api");

    // OpenID Connect, with a pre-registered confidential client and chosen scopes.
    let chosen = OauthRequest {
        client_id: "coworker".into(),
        client_secret: "secret:crm-client".into(),
        scopes: vec!["openid".into(), "profile".into()],
    };
    import_org_api(&db.store, with(Some("oidc"), chosen), "test")
        .await
        .unwrap();
    let (_, stored) = list_apis(&db.store).await.unwrap().into_iter().next().unwrap();
    let oauth = stored.unwrap().oauth.unwrap();
    assert_eq!(oauth.client_id, "coworker");
    assert_eq!(oauth.client_secret, "secret:crm-client");
    assert!(matches!(oauth.sign_in, SignIn::OpenIdConnect { .. }));

    // Refused, each with why: a flow people cannot sign in with, a scheme that is not OAuth,
    // a client secret given as its value, a secret and OAuth at once.
    let refused = |result: Result<_, PutApiError>| match result {
        Err(PutApiError::Invalid { message, .. }) => message,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let message = refused(import_org_api(&db.store, with(Some("machines"), OauthRequest::default()), "test").await);
    assert!(message.contains("no authorizationCode flow"), "{message}");
    let message = refused(import_org_api(&db.store, with(Some("nope"), OauthRequest::default()), "test").await);
    assert!(message.contains("no security scheme \"nope\""), "{message}");
    let inline = OauthRequest {
        client_id: "coworker".into(),
        client_secret: "s3cr3t".into(),
        scopes: Vec::new(),
    };
    let message = refused(import_org_api(&db.store, with(None, inline), "test").await);
    assert!(message.contains("stored secret"), "{message}");
    assert!(!message.contains("s3cr3t"), "the value is not echoed: {message}");
    let mut both = with(None, OauthRequest::default());
    both.auth_secret = Some("secret:k".into());
    let message = refused(import_org_api(&db.store, both, "test").await);
    assert!(message.contains("choose one way"), "{message}");
    // What was stored last is still there, unchanged.
    let (_, stored) = list_apis(&db.store).await.unwrap().into_iter().next().unwrap();
    assert_eq!(stored.unwrap().oauth.unwrap().client_id, "coworker");
}
