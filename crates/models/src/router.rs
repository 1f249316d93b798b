//! The router: picks the model for a call from a coworker's policy (purpose → model, else the
//! default) and falls back to a second model when the first one's provider still fails after
//! its own retries. It holds the configured providers; with none, every call fails at once
//! with the "no model connected" message instead of hanging.

use std::collections::BTreeMap;
use std::sync::Arc;

use coworker_core::config::ModelsConfig;
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::provider::{EventStream, ModelProvider};
use crate::resolve::NO_MODEL_MESSAGE;
use crate::types::{ModelRef, ModelRequest, ModelResponse, Purpose};

/// Which model serves which purpose, for one coworker (or the node's defaults).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ModelPolicy {
    /// Model for purposes not listed in `purposes`.
    pub default: Option<ModelRef>,
    /// Model per purpose.
    #[serde(default)]
    pub purposes: BTreeMap<Purpose, ModelRef>,
    /// Model tried when the chosen one's provider fails after its retries.
    pub fallback: Option<ModelRef>,
}

impl ModelPolicy {
    /// The policy in `[models]`. Config validation has checked the references' shape.
    pub fn from_config(models: &ModelsConfig) -> Result<Self, ModelError> {
        let parse = |key: &str, text: &str| -> Result<Option<ModelRef>, ModelError> {
            if text.trim().is_empty() {
                return Ok(None);
            }
            text.parse().map(Some).map_err(|message| ModelError::Setup {
                provider: "(router)".to_owned(),
                message: format!("`{key}`: {message}"),
                fix: "fix it in coworker.toml".to_owned(),
            })
        };
        let mut purposes = BTreeMap::new();
        for (name, text) in models.purposes.entries() {
            if let Some(model) = parse(&format!("models.purposes.{name}"), text)? {
                let purpose: Purpose = name.parse().map_err(|message| ModelError::Setup {
                    provider: "(router)".to_owned(),
                    message,
                    fix: String::new(),
                })?;
                purposes.insert(purpose, model);
            }
        }
        Ok(Self {
            default: parse("models.default", &models.default)?,
            purposes,
            fallback: parse("models.fallback", &models.fallback)?,
        })
    }

    /// This policy with `overrides` (a coworker's own choices) applied on top.
    pub fn overlay(&self, overrides: &ModelPolicy) -> ModelPolicy {
        let mut purposes = self.purposes.clone();
        purposes.extend(overrides.purposes.iter().map(|(p, m)| (*p, m.clone())));
        ModelPolicy {
            default: overrides.default.clone().or_else(|| self.default.clone()),
            purposes,
            fallback: overrides.fallback.clone().or_else(|| self.fallback.clone()),
        }
    }

    /// The model chosen for `purpose`.
    pub fn model_for(&self, purpose: Purpose) -> Option<&ModelRef> {
        self.purposes.get(&purpose).or(self.default.as_ref())
    }
}

/// Why a response came from the fallback model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FallbackNote {
    /// The model that failed.
    pub primary: String,
    /// Its error, as shown to people.
    pub error: String,
}

/// A response and how it was routed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutedResponse {
    /// The response.
    pub response: ModelResponse,
    /// Set when the primary model failed and the fallback answered.
    pub fallback: Option<FallbackNote>,
}

/// Providers by name, and the node's default policy.
#[derive(Debug, Clone, Default)]
pub struct Router {
    providers: BTreeMap<String, Arc<dyn ModelProvider>>,
    default_policy: ModelPolicy,
}

impl Router {
    /// A router over `providers` with `default_policy` for coworkers that set nothing.
    pub fn new(providers: Vec<Arc<dyn ModelProvider>>, default_policy: ModelPolicy) -> Self {
        Self {
            providers: providers.into_iter().map(|p| (p.name().to_owned(), p)).collect(),
            default_policy,
        }
    }

    /// The node's default policy.
    pub fn default_policy(&self) -> ModelPolicy {
        self.default_policy.clone()
    }

    /// True when no provider is connected: every call fails with [`NO_MODEL_MESSAGE`].
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// The provider named `name`.
    pub fn provider(&self, name: &str) -> Option<Arc<dyn ModelProvider>> {
        self.providers.get(name).cloned()
    }

    /// The model `policy` picks for `purpose`, checked against the configured providers.
    pub fn choose(&self, policy: &ModelPolicy, purpose: Purpose) -> Result<ModelRef, ModelError> {
        if self.providers.is_empty() {
            return Err(ModelError::NoModelConnected(NO_MODEL_MESSAGE.to_owned()));
        }
        let model = policy.model_for(purpose).ok_or_else(|| ModelError::Setup {
            provider: "(router)".to_owned(),
            message: format!("no model is chosen for purpose {purpose}"),
            fix: "set models.default (or models.purposes.".to_owned() + purpose.as_str() + ") in coworker.toml",
        })?;
        self.provider_for(model)?;
        Ok(model.clone())
    }

    fn provider_for(&self, model: &ModelRef) -> Result<&Arc<dyn ModelProvider>, ModelError> {
        self.providers
            .get(&model.provider)
            .ok_or_else(|| ModelError::UnknownProvider {
                model: model.to_string(),
                provider: model.provider.clone(),
                configured: self.providers.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// Makes the call with the model `policy` picks for `request.purpose`; if that provider
    /// fails after its retries with an error another provider might not have, tries the
    /// fallback model once.
    pub async fn complete(&self, policy: &ModelPolicy, request: ModelRequest) -> Result<RoutedResponse, ModelError> {
        let primary = self.choose(policy, request.purpose)?;
        let provider = self.provider_for(&primary)?;
        let mut first = request.clone();
        first.model = primary.model.clone();
        let error = match provider.complete(first).await {
            Ok(response) => {
                record_call(&response);
                return Ok(RoutedResponse {
                    response,
                    fallback: None,
                });
            }
            Err(error) => error,
        };
        let Some(fallback) = Self::fallback_after(policy, &primary, &error) else {
            return Err(error);
        };
        let fallback_provider = self.provider_for(fallback)?;
        let mut second = request;
        second.model = fallback.model.clone();
        let response = fallback_provider.complete(second).await?;
        record_call(&response);
        Ok(RoutedResponse {
            response,
            fallback: Some(FallbackNote {
                primary: primary.to_string(),
                error: error.to_string(),
            }),
        })
    }

    /// The fallback model to try after `primary` failed with `error`, if the policy has a
    /// different one and the error is one another provider might not have.
    fn fallback_after<'p>(policy: &'p ModelPolicy, primary: &ModelRef, error: &ModelError) -> Option<&'p ModelRef> {
        let fallback = policy
            .fallback
            .as_ref()
            .filter(|f| *f != primary && error.warrants_fallback())?;
        tracing::warn!(primary = %primary, fallback = %fallback, "model call failed after retries; using the fallback model: {error}");
        Some(fallback)
    }

    /// Starts a streamed call, falling back like [`Router::complete`] if the primary fails
    /// before its first event. Returns the model that is answering and its events.
    pub async fn stream(
        &self,
        policy: &ModelPolicy,
        request: ModelRequest,
    ) -> Result<(ModelRef, EventStream), ModelError> {
        let primary = self.choose(policy, request.purpose)?;
        let provider = self.provider_for(&primary)?;
        let mut first = request.clone();
        first.model = primary.model.clone();
        let error = match provider.stream(first).await {
            Ok(events) => return Ok((primary, events)),
            Err(error) => error,
        };
        let Some(fallback) = Self::fallback_after(policy, &primary, &error) else {
            return Err(error);
        };
        let mut second = request;
        second.model = fallback.model.clone();
        let events = self.provider_for(fallback)?.stream(second).await?;
        Ok((fallback.clone(), events))
    }
}

/// Counts a successful call on the node's `/metrics` (`coworker_model_calls_total`,
/// `coworker_model_tokens_total`, `coworker_model_cost_micros_usd_total`). Every model call
/// of the product goes through [`Router::complete`], so this is the one place that sees all.
fn record_call(response: &ModelResponse) {
    use coworker_core::metrics as names;
    let model = response.model.clone();
    let usage = &response.usage;
    metrics::counter!(names::MODEL_CALLS_TOTAL, "model" => model.clone()).increment(1);
    // Cache writes are input processed (and billed) afresh, so they count as input; cache
    // reads are the `cached` kind, present only when the provider reports them.
    let tokens = [
        ("input", usage.input_tokens + usage.cache_write_tokens),
        ("output", usage.output_tokens),
        ("cached", usage.cache_read_tokens),
    ];
    for (kind, count) in tokens {
        if kind != "cached" || count > 0 {
            metrics::counter!(names::MODEL_TOKENS_TOTAL, "model" => model.clone(), "kind" => kind).increment(count);
        }
    }
    metrics::counter!(names::MODEL_COST_MICROS_USD_TOTAL, "model" => model)
        .increment(u64::try_from(response.cost_micros_usd).unwrap_or(0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coworker_policy_overrides_defaults_per_purpose() {
        let node = ModelPolicy {
            default: Some("openai/gpt-4.1-mini".parse().unwrap()),
            purposes: BTreeMap::new(),
            fallback: Some("anthropic/claude-haiku-4-5".parse().unwrap()),
        };
        let mut coworker = ModelPolicy::default();
        coworker
            .purposes
            .insert(Purpose::Plan, "anthropic/claude-sonnet-4-5".parse().unwrap());
        let merged = node.overlay(&coworker);
        assert_eq!(
            merged.model_for(Purpose::Plan).unwrap().to_string(),
            "anthropic/claude-sonnet-4-5"
        );
        assert_eq!(
            merged.model_for(Purpose::Act).unwrap().to_string(),
            "openai/gpt-4.1-mini"
        );
        assert_eq!(merged.fallback.unwrap().to_string(), "anthropic/claude-haiku-4-5");
    }

    #[tokio::test]
    async fn no_provider_fails_fast_with_the_connect_message() {
        let router = Router::default();
        let err = router
            .complete(&ModelPolicy::default(), ModelRequest::new(Purpose::Act, vec![]))
            .await
            .unwrap_err();
        assert_eq!(err, ModelError::NoModelConnected(NO_MODEL_MESSAGE.to_owned()));
        assert!(err.to_string().contains("OPENAI_API_KEY"));
    }
}
