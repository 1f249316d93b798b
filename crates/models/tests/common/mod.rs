//! Shared set-up for the provider tests: a scripted server of the right format and a real
//! client pointed at it over loopback HTTP.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use coworker_core::config::CatalogEntryConfig;
use coworker_models::{
    ApiKey, CallOptions, Catalog, ModelProvider, ProviderKind, ProviderSettings, RetryPolicy, Transport,
};
use coworker_testkit::scripted_model::{Format, Script, ScriptedModelServer};

/// One client configuration the behavioural suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub format: Format,
    pub transport: Transport,
}

/// The key the scripted servers expect.
pub const GOOD_KEY: &str = "sk-scripted-good-key-0123456789";
/// The variable the tests pretend the key came from.
pub const KEY_ENV: &str = "SCRIPTED_API_KEY";
/// Provider name used in the tests; its prices come from [`catalog`].
pub const PROVIDER: &str = "scripted";
/// Model name used in the tests.
pub const MODEL: &str = "test-model";

/// Test prices in dollars per million tokens: input 2, output 8, cache read 0.5, cache write 2.5.
pub fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::built_in().with_overrides(&[CatalogEntryConfig {
        id: format!("{PROVIDER}/{MODEL}"),
        context_window: Some(100_000),
        input_usd_per_mtok: Some(2.0),
        output_usd_per_mtok: Some(8.0),
        cache_read_usd_per_mtok: Some(0.5),
        cache_write_usd_per_mtok: Some(2.5),
    }]))
}

/// Fast retries so fault tests stay quick; limits generous enough never to fire by accident.
pub fn options(transport: Transport) -> CallOptions {
    CallOptions {
        connect_timeout: Duration::from_secs(5),
        first_byte_timeout: Duration::from_secs(20),
        call_timeout: Duration::from_secs(30),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            deadline: Duration::from_secs(30),
        },
        transport,
    }
}

pub fn provider_kind(format: Format) -> ProviderKind {
    match format {
        Format::OpenAi => ProviderKind::Openai,
        Format::Anthropic => ProviderKind::Anthropic,
    }
}

pub fn settings(kind: Kind, base_url: String, key: &str, options: CallOptions) -> ProviderSettings {
    ProviderSettings {
        name: PROVIDER.to_owned(),
        kind: provider_kind(kind.format),
        base_url,
        api_key: Some(ApiKey::new(key)),
        api_key_env: Some(KEY_ENV.to_owned()),
        options,
    }
}

/// A server running `script` (which requires [`GOOD_KEY`]) and a client for it.
pub async fn harness(kind: Kind, script: Script) -> (ScriptedModelServer, Arc<dyn ModelProvider>) {
    harness_with(kind, script, options(kind.transport)).await
}

pub async fn harness_with(
    kind: Kind,
    script: Script,
    options: CallOptions,
) -> (ScriptedModelServer, Arc<dyn ModelProvider>) {
    let server = ScriptedModelServer::start(kind.format, script.require_api_key(GOOD_KEY)).await;
    let provider = coworker_models::build_provider(settings(kind, server.base_url(), GOOD_KEY, options), catalog())
        .expect("client builds");
    (server, provider)
}
