//! `coworker doctor` checks for model providers: is each one reachable, does it accept its
//! key, and does the model policy name providers that exist. Each failure carries the one
//! thing to do about it.
//!
//! The check lists the provider's models (`GET …/models`), which both formats offer, costs
//! nothing and needs the same authentication as a real call.

use std::time::Duration;

use coworker_core::config::{Config, ProviderKind};
use coworker_core::doctor::Check;

use crate::client::ProviderSettings;
use crate::http::{self, join_url};
use crate::resolve::{NO_MODEL_MESSAGE, ProviderSource, ResolvedProviders, detect_providers};

/// Limit on each provider check, connection included.
pub const PROVIDER_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks every configured (or detected) provider and the model policy.
pub async fn check_providers(config: &Config, env: &[(String, String)]) -> Vec<Check> {
    let resolved = detect_providers(config, env).await;
    check_resolved(&resolved, PROVIDER_CHECK_TIMEOUT).await
}

/// Checks already-resolved providers, each within `timeout`.
pub async fn check_resolved(resolved: &ResolvedProviders, timeout: Duration) -> Vec<Check> {
    if resolved.is_empty() {
        return vec![Check::warn(
            "models",
            "no model connected; coworkers cannot work until one is",
            NO_MODEL_MESSAGE,
        )];
    }
    let checks = futures::future::join_all(
        resolved
            .providers
            .iter()
            .map(|p| check_one(&p.settings, &p.source, p.missing_key_env.as_deref(), timeout)),
    );
    let mut out = checks.await;

    let names: Vec<&str> = resolved.providers.iter().map(|p| p.settings.name.as_str()).collect();
    let policy = &resolved.policy;
    let mut refs: Vec<(String, String)> = Vec::new();
    if let Some(m) = &policy.default {
        refs.push(("models.default".to_owned(), m.to_string()));
    }
    if let Some(m) = &policy.fallback {
        refs.push(("models.fallback".to_owned(), m.to_string()));
    }
    refs.extend(
        policy
            .purposes
            .iter()
            .map(|(p, m)| (format!("models.purposes.{p}"), m.to_string())),
    );
    let mut policy_ok = true;
    for (key, model) in refs {
        let provider = model.split_once('/').map_or(model.as_str(), |(p, _)| p);
        if !names.contains(&provider) {
            policy_ok = false;
            out.push(Check::fail(
                "models",
                format!(
                    "`{key}` = {model:?} names provider {provider:?}, which is not configured (providers: {})",
                    names.join(", ")
                ),
                format!("add a [[providers]] section named {provider:?}, or change `{key}`"),
            ));
        }
    }
    if policy.default.is_none() {
        out.push(Check::warn(
            "models",
            "no default model is chosen",
            "set models.default = \"provider/model\" in coworker.toml",
        ));
    } else if policy_ok {
        let default = policy.default.as_ref().map(ToString::to_string).unwrap_or_default();
        out.push(Check::ok("models", format!("default model {default}")));
    }
    out
}

fn models_url(settings: &ProviderSettings) -> String {
    match settings.kind {
        ProviderKind::Openai => join_url(&settings.base_url, "models"),
        ProviderKind::Anthropic => {
            let base = settings.base_url.trim_end_matches('/');
            if base.ends_with("/v1") {
                join_url(base, "models")
            } else {
                join_url(base, "v1/models")
            }
        }
    }
}

async fn check_one(
    settings: &ProviderSettings,
    source: &ProviderSource,
    missing_key_env: Option<&str>,
    timeout: Duration,
) -> Check {
    let name = format!("provider {}", settings.name);
    if let Some(var) = missing_key_env {
        return Check::fail(
            name,
            format!("{var} is not set"),
            format!("set {var} to the provider's API key (export {var}=…) before starting coworker"),
        );
    }
    let url = models_url(settings);
    let client = match http::build_client(timeout) {
        Ok(client) => client,
        Err(message) => return Check::fail(name, message, "this is a bug; please report it"),
    };
    let mut request = client.get(&url);
    if let Some(key) = &settings.api_key {
        request = match settings.kind {
            ProviderKind::Openai => request.bearer_auth(key.expose()),
            ProviderKind::Anthropic => request.header("x-api-key", key.expose()),
        };
    }
    if settings.kind == ProviderKind::Anthropic {
        request = request.header("anthropic-version", crate::ANTHROPIC_VERSION);
    }
    let response = match tokio::time::timeout(timeout, request.send()).await {
        Err(_) => {
            return Check::fail(
                name,
                format!("{url} did not answer within {} s", timeout.as_secs()),
                format!(
                    "check that {} is the right base_url and that the server is up",
                    settings.base_url
                ),
            );
        }
        Ok(Err(e)) => {
            return Check::fail(
                name,
                format!("cannot reach {url}: {}", http::error_chain(&e)),
                format!(
                    "check that base_url {} is right and the server is running and reachable from this machine",
                    settings.base_url
                ),
            );
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    let body = tokio::time::timeout(timeout, response.text())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect());
    match status {
        200..=299 => {
            let count = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["data"].as_array().map(Vec::len));
            let how = match source {
                ProviderSource::Configured => String::new(),
                ProviderSource::Environment(var) => format!(", key from {var}"),
                ProviderSource::LocalServer(_) => ", detected on this machine".to_owned(),
            };
            let models = count.map(|n| format!(", {n} models available")).unwrap_or_default();
            let key = if settings.api_key.is_some() {
                ", key accepted"
            } else {
                ""
            };
            Check::ok(name, format!("reachable at {}{key}{models}{how}", settings.base_url))
        }
        401 | 403 => Check::fail(
            name,
            format!("authentication failed (HTTP {status}: {message})"),
            settings.auth_fix(),
        ),
        _ => Check::warn(
            name,
            format!("{url} answered HTTP {status}: {message}"),
            format!(
                "check that base_url {} points at the API root of an {}-format server",
                settings.base_url,
                settings.kind.as_str()
            ),
        ),
    }
}
