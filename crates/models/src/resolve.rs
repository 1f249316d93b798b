//! Which providers this node can use: the configured `[[providers]]`, or, with none, what
//! zero-config detection finds (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, an Ollama server on its
//! default local port), with a one-line summary for start-up and the message every surface
//! shows when no model is connected.

use std::sync::Arc;
use std::time::Duration;

use coworker_core::config::{Config, ProviderConfig, ProviderKind};

use crate::catalog::Catalog;
use crate::client::ProviderSettings;
use crate::error::ModelError;
use crate::http::{self, ApiKey, CallOptions, join_url};
use crate::router::{ModelPolicy, Router};
use crate::types::{ModelRef, Purpose};

/// What people see when no model is connected: at start-up, in `doctor`, in the web app, and
/// as the error of a task that needs a model.
pub const NO_MODEL_MESSAGE: &str = "no model connected: set OPENAI_API_KEY or ANTHROPIC_API_KEY in the environment, start Ollama on this machine (it listens on 127.0.0.1:11434), or add a [[providers]] section to coworker.toml (see `coworker init`)";

/// Where Ollama listens by default.
pub const OLLAMA_DEFAULT_URL: &str = "http://127.0.0.1:11434";

/// How long start-up waits for an Ollama server to answer: it is on this machine, so a
/// server that is up answers at once, and a missing one must not delay start-up.
pub const OLLAMA_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Model chosen for a zero-config OpenAI key.
pub const OPENAI_ZERO_CONFIG_MODEL: &str = "gpt-4.1-mini";

/// Model chosen for a zero-config Anthropic key.
pub const ANTHROPIC_ZERO_CONFIG_MODEL: &str = "claude-sonnet-4-5";

/// How a provider came to be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderSource {
    /// A `[[providers]]` section.
    Configured,
    /// Zero-config: an API key in this environment variable.
    Environment(String),
    /// Zero-config: a local server answered at this URL.
    LocalServer(String),
}

/// One usable provider.
#[derive(Debug, Clone)]
pub struct ResolvedProvider {
    /// How to reach it (the key is redacted in `Debug`).
    pub settings: ProviderSettings,
    /// How it was found.
    pub source: ProviderSource,
    /// Set when its key variable is named but empty or unset.
    pub missing_key_env: Option<String>,
}

/// The providers this node can use and the default model policy.
#[derive(Debug, Clone)]
pub struct ResolvedProviders {
    /// Usable providers, configured order first.
    pub providers: Vec<ResolvedProvider>,
    /// `[models]` with zero-config defaults filled in.
    pub policy: ModelPolicy,
    /// Prices, built in plus configuration.
    pub catalog: Arc<Catalog>,
    /// Things worth telling the operator (unset keys, a local server without models).
    pub warnings: Vec<String>,
}

fn env_value<'a>(env: &'a [(String, String)], var: &str) -> Option<&'a str> {
    env.iter()
        .find(|(k, v)| k == var && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

fn settings_for(
    config: &Config,
    provider: &ProviderConfig,
    env: &[(String, String)],
) -> (ProviderSettings, Option<String>) {
    let var = provider.effective_api_key_env().map(str::to_owned);
    let key = var.as_deref().and_then(|v| env_value(env, v)).map(ApiKey::new);
    let missing = if key.is_none() { var.clone() } else { None };
    let settings = ProviderSettings {
        name: provider.name.trim().to_owned(),
        kind: provider.kind,
        base_url: provider.effective_base_url().to_owned(),
        api_key: key,
        api_key_env: var,
        options: CallOptions::from_config(&config.models),
    };
    (settings, missing)
}

/// Resolves the configured providers, or, when there are none, the ones whose API keys are in
/// `env`. Does no I/O; see [`detect_providers`] for the Ollama probe.
pub fn resolve_providers(config: &Config, env: &[(String, String)]) -> ResolvedProviders {
    let mut providers = Vec::new();
    let mut warnings = Vec::new();
    if config.providers.is_empty() {
        for kind in [ProviderKind::Openai, ProviderKind::Anthropic] {
            let var = kind.default_api_key_env();
            if env_value(env, var).is_some() {
                let provider = ProviderConfig {
                    name: kind.as_str().to_owned(),
                    kind,
                    base_url: String::new(),
                    api_key_env: var.to_owned(),
                    api_key_secret: String::new(),
                };
                let (settings, _) = settings_for(config, &provider, env);
                providers.push(ResolvedProvider {
                    settings,
                    source: ProviderSource::Environment(var.to_owned()),
                    missing_key_env: None,
                });
            }
        }
    } else {
        for provider in &config.providers {
            let (settings, missing) = settings_for(config, provider, env);
            if let Some(var) = &missing {
                warnings.push(format!(
                    "provider {}: {var} is not set, so calls will fail authentication; set it to the API key",
                    settings.name
                ));
            }
            providers.push(ResolvedProvider {
                settings,
                source: ProviderSource::Configured,
                missing_key_env: missing,
            });
        }
    }
    let mut resolved = ResolvedProviders {
        providers,
        policy: ModelPolicy::default(),
        catalog: Arc::new(Catalog::from_config(config)),
        warnings,
    };
    resolved.policy = resolved.policy_for(config, None);
    resolved
}

impl ResolvedProviders {
    /// `[models]`, with the default filled from the first provider whose vendor default is
    /// known (or from `local_model`, the first model of a detected local server).
    fn policy_for(&self, config: &Config, local_model: Option<&str>) -> ModelPolicy {
        let mut policy = ModelPolicy::from_config(&config.models).unwrap_or_else(|e| {
            // Config validation already rejected malformed references; keep going without them.
            tracing::warn!("ignoring [models]: {e}");
            ModelPolicy::default()
        });
        if policy.default.is_none() {
            policy.default = self.providers.iter().find_map(|p| {
                let official = p.settings.base_url.trim_end_matches('/') == p.settings.kind.default_base_url();
                match (p.settings.kind, official, &p.source) {
                    (ProviderKind::Openai, true, _) => Some(ModelRef::new(&p.settings.name, OPENAI_ZERO_CONFIG_MODEL)),
                    (ProviderKind::Anthropic, true, _) => {
                        Some(ModelRef::new(&p.settings.name, ANTHROPIC_ZERO_CONFIG_MODEL))
                    }
                    (_, _, ProviderSource::LocalServer(_)) => local_model.map(|m| ModelRef::new(&p.settings.name, m)),
                    _ => None,
                }
            });
        }
        policy
    }

    /// True when no provider is usable.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// One line for start-up, e.g. `models: openai (from OPENAI_API_KEY); default
    /// openai/gpt-4.1-mini`, or [`NO_MODEL_MESSAGE`].
    pub fn summary(&self) -> String {
        if self.providers.is_empty() {
            return NO_MODEL_MESSAGE.to_owned();
        }
        let list: Vec<String> = self
            .providers
            .iter()
            .map(|p| {
                let how = match &p.source {
                    ProviderSource::Configured => format!("configured, {}", p.settings.base_url),
                    ProviderSource::Environment(var) => format!("from {var}"),
                    ProviderSource::LocalServer(url) => format!("local server at {url}"),
                };
                format!("{} ({how})", p.settings.name)
            })
            .collect();
        let default = match self.policy.model_for(Purpose::Act) {
            Some(model) => format!("default model {model}"),
            None => "no default model: set models.default in coworker.toml".to_owned(),
        };
        let mut line = format!("models: {}; {default}", list.join(", "));
        for warning in &self.warnings {
            line.push_str("; warning: ");
            line.push_str(warning);
        }
        line
    }

    /// Builds the clients and the router. With no provider the router is empty, and every call
    /// through it fails at once with [`NO_MODEL_MESSAGE`].
    pub fn router(&self) -> Result<Router, ModelError> {
        let mut clients = Vec::new();
        for p in &self.providers {
            clients.push(crate::build_provider(p.settings.clone(), Arc::clone(&self.catalog))?);
        }
        Ok(Router::new(clients, self.policy.clone()))
    }
}

/// Asks an Ollama server at `base_url` for its models (`GET /api/tags`), within `timeout`.
/// Returns the model names, or why the server did not answer.
pub async fn probe_ollama(base_url: &str, timeout: Duration) -> Result<Vec<String>, String> {
    let client = http::build_client(timeout)?;
    let url = join_url(base_url, "api/tags");
    let response = tokio::time::timeout(timeout, client.get(&url).send())
        .await
        .map_err(|_| format!("{url} did not answer within {} ms", timeout.as_millis()))?
        .map_err(|e| format!("{url}: {}", http::error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered HTTP {}", response.status().as_u16()));
    }
    let body: serde_json::Value = tokio::time::timeout(timeout, response.json())
        .await
        .map_err(|_| format!("{url} did not finish answering within {} ms", timeout.as_millis()))?
        .map_err(|e| format!("{url} did not answer with JSON: {e}"))?;
    Ok(body["models"]
        .as_array()
        .map(|models| {
            models
                .iter()
                .filter_map(|m| m["name"].as_str().or_else(|| m["model"].as_str()).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// [`resolve_providers`], then, if nothing was found and `models.detect_ollama` is on, a quick
/// probe for Ollama on its default local port.
pub async fn detect_providers(config: &Config, env: &[(String, String)]) -> ResolvedProviders {
    detect_providers_at(config, env, OLLAMA_DEFAULT_URL, OLLAMA_PROBE_TIMEOUT).await
}

/// [`detect_providers`] with the Ollama URL and timeout given (tests point it at a scripted
/// server).
pub async fn detect_providers_at(
    config: &Config,
    env: &[(String, String)],
    ollama_url: &str,
    timeout: Duration,
) -> ResolvedProviders {
    let mut resolved = resolve_providers(config, env);
    if !resolved.providers.is_empty() || !config.providers.is_empty() || !config.models.detect_ollama {
        return resolved;
    }
    match probe_ollama(ollama_url, timeout).await {
        Ok(models) => {
            let provider = ProviderConfig {
                name: "ollama".to_owned(),
                kind: ProviderKind::Openai,
                base_url: join_url(ollama_url, "v1"),
                api_key_env: String::new(),
                api_key_secret: String::new(),
            };
            let (settings, _) = settings_for(config, &provider, env);
            if models.is_empty() {
                resolved
                    .warnings
                    .push("Ollama is running but has no models; pull one, e.g. `ollama pull llama3.2`".to_owned());
            }
            resolved.providers.push(ResolvedProvider {
                settings,
                source: ProviderSource::LocalServer(ollama_url.to_owned()),
                missing_key_env: None,
            });
            resolved.policy = resolved.policy_for(config, models.first().map(String::as_str));
        }
        Err(reason) => tracing::debug!("no Ollama server detected: {reason}"),
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn keys_in_the_environment_are_picked_up_when_nothing_is_configured() {
        let resolved = resolve_providers(
            &Config::default(),
            &env(&[("OPENAI_API_KEY", "sk-test-123"), ("ANTHROPIC_API_KEY", "")]),
        );
        assert_eq!(resolved.providers.len(), 1, "an empty variable is not a key");
        assert_eq!(
            resolved.providers[0].source,
            ProviderSource::Environment("OPENAI_API_KEY".into())
        );
        assert_eq!(
            resolved.policy.default.as_ref().unwrap().to_string(),
            "openai/gpt-4.1-mini"
        );
        let summary = resolved.summary();
        assert_eq!(
            summary,
            "models: openai (from OPENAI_API_KEY); default model openai/gpt-4.1-mini"
        );
        assert!(
            !format!("{resolved:?}").contains("sk-test-123"),
            "the key must never be Debug-printed"
        );

        let both = resolve_providers(&Config::default(), &env(&[("ANTHROPIC_API_KEY", "k")]));
        assert_eq!(both.policy.default.unwrap().to_string(), "anthropic/claude-sonnet-4-5");
    }

    #[test]
    fn nothing_found_says_how_to_connect_a_model() {
        let resolved = resolve_providers(&Config::default(), &[]);
        assert!(resolved.is_empty());
        assert_eq!(resolved.summary(), NO_MODEL_MESSAGE);
        assert!(NO_MODEL_MESSAGE.contains("OPENAI_API_KEY") && NO_MODEL_MESSAGE.contains("[[providers]]"));
    }

    #[test]
    fn configured_providers_win_and_missing_keys_are_reported() {
        let mut config = Config::default();
        config.providers.push(ProviderConfig {
            name: "work".into(),
            kind: ProviderKind::Anthropic,
            base_url: String::new(),
            api_key_env: "WORK_KEY".into(),
            api_key_secret: String::new(),
        });
        let resolved = resolve_providers(&config, &env(&[("OPENAI_API_KEY", "sk")]));
        assert_eq!(resolved.providers.len(), 1);
        assert_eq!(resolved.providers[0].missing_key_env.as_deref(), Some("WORK_KEY"));
        assert!(
            resolved.summary().contains("WORK_KEY is not set"),
            "{}",
            resolved.summary()
        );
        assert_eq!(resolved.policy.default.unwrap().to_string(), "work/claude-sonnet-4-5");
    }
}
