//! Router fallback, `doctor` provider checks and zero-config detection, against scripted
//! servers over loopback HTTP.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::options;
use coworker_core::config::{Config, ProviderConfig};
use coworker_core::doctor::CheckStatus;
use coworker_models::doctor::check_providers;
use coworker_models::resolve::detect_providers_at;
use coworker_models::{
    ApiKey, Catalog, Message, ModelError, ModelPolicy, ModelRequest, NO_MODEL_MESSAGE, ProviderSettings, Purpose,
    Router, Transport,
};
use coworker_testkit::scripted_model::{Fault, Format, Reply, Script, ScriptedModelServer, Turn};

fn named(name: &str, format: Format, base_url: String) -> ProviderSettings {
    ProviderSettings {
        name: name.to_owned(),
        kind: common::provider_kind(format),
        base_url,
        api_key: Some(ApiKey::new(common::GOOD_KEY)),
        api_key_env: None,
        options: options(Transport::Streaming),
    }
}

fn policy(primary: &str, fallback: &str) -> ModelPolicy {
    ModelPolicy {
        default: Some(primary.parse().unwrap()),
        purposes: Default::default(),
        fallback: Some(fallback.parse().unwrap()),
    }
}

async fn two_providers(
    primary_script: Script,
    fallback_script: Script,
) -> (ScriptedModelServer, ScriptedModelServer, Router) {
    let primary = ScriptedModelServer::start(Format::OpenAi, primary_script.require_api_key(common::GOOD_KEY)).await;
    let fallback =
        ScriptedModelServer::start(Format::Anthropic, fallback_script.require_api_key(common::GOOD_KEY)).await;
    let catalog = Arc::new(Catalog::built_in());
    let router = Router::new(
        vec![
            coworker_models::build_provider(
                named("primary", Format::OpenAi, primary.base_url()),
                Arc::clone(&catalog),
            )
            .unwrap(),
            coworker_models::build_provider(named("backup", Format::Anthropic, fallback.base_url()), catalog).unwrap(),
        ],
        ModelPolicy::default(),
    );
    (primary, fallback, router)
}

#[tokio::test]
async fn fallback_answers_when_the_primary_fails_after_its_retries() {
    let (primary, fallback, router) = two_providers(
        Script::new().turn(Turn::reply(Reply::text("never")).faults(Fault::ServerError, 10)),
        Script::new().turn(Turn::reply(Reply::text("from the backup"))),
    )
    .await;
    let request = ModelRequest::new(Purpose::Act, vec![Message::user("hi")]);
    let routed = router
        .complete(&policy("primary/model-a", "backup/model-b"), request)
        .await
        .expect("fallback answers");
    assert_eq!(routed.response.text, "from the backup");
    assert_eq!(routed.response.model, "backup/model-b");
    let note = routed.fallback.expect("the fallback is recorded");
    assert_eq!(note.primary, "primary/model-a");
    assert!(note.error.contains("server error (HTTP 500"), "{}", note.error);
    assert_eq!(
        primary.model_requests().len(),
        3,
        "the primary used all its attempts first"
    );
    assert_eq!(fallback.model_requests().len(), 1);
    assert_eq!(fallback.model_requests()[0].body["model"], "model-b");
}

#[tokio::test]
async fn no_fallback_for_requests_the_provider_rejected() {
    let (primary, fallback, router) = two_providers(
        Script::new().turn(Turn::reply(Reply::text("never")).fault(Fault::ContextTooLong)),
        Script::new().turn(Turn::reply(Reply::text("from the backup"))),
    )
    .await;
    let request = ModelRequest::new(Purpose::Act, vec![Message::user("hi")]);
    let err = router
        .complete(&policy("primary/model-a", "backup/model-b"), request)
        .await
        .expect_err("too long everywhere");
    assert!(matches!(err, ModelError::ContextTooLong { .. }), "{err:?}");
    assert_eq!(primary.model_requests().len(), 1);
    assert_eq!(fallback.model_requests().len(), 0);
}

#[tokio::test]
async fn purpose_picks_the_model_and_unknown_providers_are_named() {
    let (primary, fallback, router) = two_providers(
        Script::new().turn(Turn::reply(Reply::text("acting"))),
        Script::new().turn(Turn::reply(Reply::text("planning"))),
    )
    .await;
    let mut policy = policy("primary/model-a", "backup/model-b");
    policy.purposes.insert(Purpose::Plan, "backup/planner".parse().unwrap());
    let plan = router
        .complete(
            &policy,
            ModelRequest::new(Purpose::Plan, vec![Message::user("plan it")]),
        )
        .await
        .unwrap();
    assert_eq!(plan.response.model, "backup/planner");
    let act = router
        .complete(&policy, ModelRequest::new(Purpose::Act, vec![Message::user("do it")]))
        .await
        .unwrap();
    assert_eq!(act.response.model, "primary/model-a");
    assert_eq!(
        (primary.model_requests().len(), fallback.model_requests().len()),
        (1, 1)
    );

    let bad = ModelPolicy {
        default: Some("nowhere/x".parse().unwrap()),
        ..ModelPolicy::default()
    };
    let err = router
        .complete(&bad, ModelRequest::new(Purpose::Act, vec![]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no provider named \"nowhere\""), "{err}");
}

fn config_with(format: Format, base_url: String, key_env: &str) -> Config {
    let mut config = Config::default();
    config.providers.push(ProviderConfig {
        name: "main".into(),
        kind: common::provider_kind(format),
        base_url,
        api_key_env: key_env.into(),
        api_key_secret: String::new(),
    });
    config.models.default = "main/some-model".into();
    config.models.detect_ollama = false;
    config
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[tokio::test]
async fn doctor_reports_a_bad_key_with_the_variable_to_fix() {
    for format in [Format::OpenAi, Format::Anthropic] {
        let server = ScriptedModelServer::start(format, Script::new().require_api_key(common::GOOD_KEY)).await;
        let config = config_with(format, server.base_url(), "OPENAI_API_KEY");
        let checks = check_providers(&config, &env(&[("OPENAI_API_KEY", "sk-wrong")])).await;
        let check = checks
            .iter()
            .find(|c| c.name == "provider main")
            .expect("a check for the provider");
        assert_eq!(check.status, CheckStatus::Fail, "{format:?}: {check:?}");
        assert!(check.detail.starts_with("authentication failed (HTTP 401"), "{check:?}");
        assert_eq!(check.fix, "set OPENAI_API_KEY to a valid key");
        assert!(!format!("{checks:?}").contains("sk-wrong"));

        let checks = check_providers(&config, &env(&[("OPENAI_API_KEY", common::GOOD_KEY)])).await;
        assert!(
            checks.iter().all(|c| c.status == CheckStatus::Ok),
            "{format:?}: {checks:?}"
        );
        let recorded = server.requests();
        assert!(
            recorded.iter().all(|r| r.method == "GET" && r.path == "/v1/models"),
            "doctor costs nothing: {recorded:?}"
        );
    }
}

#[tokio::test]
async fn doctor_names_an_unreachable_base_url_and_the_connection_error() {
    // A port that was just free: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base_url = format!("http://127.0.0.1:{port}/v1");
    let config = config_with(Format::OpenAi, base_url.clone(), "OPENAI_API_KEY");
    let checks = check_providers(&config, &env(&[("OPENAI_API_KEY", "sk-anything")])).await;
    let check = checks.iter().find(|c| c.name == "provider main").unwrap();
    assert_eq!(check.status, CheckStatus::Fail);
    assert!(
        check.detail.starts_with(&format!("cannot reach {base_url}/models: ")),
        "{check:?}"
    );
    assert!(
        check.detail.to_lowercase().contains("connection refused"),
        "the connection error is shown: {check:?}"
    );
    assert_eq!(
        check.detail.matches(&base_url).count(),
        1,
        "the URL is named once: {check:?}"
    );
    assert!(check.fix.contains(&base_url), "{check:?}");
}

#[tokio::test]
async fn doctor_reports_unset_keys_missing_providers_and_no_model() {
    let server = ScriptedModelServer::start(Format::OpenAi, Script::new()).await;
    let mut config = config_with(Format::OpenAi, server.base_url(), "MY_KEY");
    config.models.fallback = "elsewhere/model".into();
    let checks = check_providers(&config, &[]).await;
    let provider = checks.iter().find(|c| c.name == "provider main").unwrap();
    assert_eq!(provider.status, CheckStatus::Fail);
    assert_eq!(provider.detail, "MY_KEY is not set");
    let policy = checks
        .iter()
        .find(|c| c.name == "models" && c.status == CheckStatus::Fail)
        .expect("policy check");
    assert!(
        policy
            .detail
            .contains("`models.fallback` = \"elsewhere/model\" names provider \"elsewhere\""),
        "{policy:?}"
    );
    assert!(server.requests().is_empty(), "no request without a key");

    let mut nothing = Config::default();
    nothing.models.detect_ollama = false;
    let checks = check_providers(&nothing, &[]).await;
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].status, CheckStatus::Warn);
    assert_eq!(checks[0].fix, NO_MODEL_MESSAGE);
}

#[tokio::test]
async fn a_local_ollama_is_detected_and_used_for_free() {
    let server = ScriptedModelServer::start(
        Format::OpenAi,
        Script::new()
            .ollama_models(&["llama3.2:latest", "qwen3"])
            .turn(Turn::reply(Reply::text("hi from llama").usage(100, 10))),
    )
    .await;
    let resolved = detect_providers_at(&Config::default(), &[], &server.root_url(), Duration::from_secs(5)).await;
    assert_eq!(resolved.providers.len(), 1);
    assert_eq!(
        resolved.policy.default.as_ref().unwrap().to_string(),
        "ollama/llama3.2:latest"
    );
    assert_eq!(
        resolved.summary(),
        format!(
            "models: ollama (local server at {}); default model ollama/llama3.2:latest",
            server.root_url()
        )
    );
    let listed = coworker_models::models_list(&resolved);
    let local = listed
        .iter()
        .find(|r| r.id == "ollama/llama3.2:latest")
        .expect("the local default model is listed");
    assert_eq!(local.input_usd_per_mtok, "0.00");
    assert!(coworker_models::render_catalog_table(&listed).contains("ollama/llama3.2:latest"));
    let router = resolved.router().unwrap();
    let routed = router
        .complete(
            &router.default_policy(),
            ModelRequest::new(Purpose::Act, vec![Message::user("hello")]),
        )
        .await
        .unwrap();
    assert_eq!(routed.response.text, "hi from llama");
    assert_eq!(routed.response.cost_micros_usd, 0, "local models are free");
    let call = &server.model_requests()[0];
    assert_eq!(call.path, "/v1/chat/completions");
    assert!(
        call.header("authorization").is_none(),
        "no key is sent to a local server"
    );
}

#[tokio::test]
async fn with_nothing_to_find_every_call_fails_fast_with_the_connect_message() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let resolved = detect_providers_at(
        &Config::default(),
        &[],
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(5),
    )
    .await;
    assert!(resolved.is_empty());
    assert_eq!(resolved.summary(), NO_MODEL_MESSAGE);
    let router = resolved.router().unwrap();
    let err = router
        .complete(
            &router.default_policy(),
            ModelRequest::new(Purpose::Act, vec![Message::user("hi")]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), NO_MODEL_MESSAGE);
}
