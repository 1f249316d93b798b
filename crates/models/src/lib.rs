//! How every coworker thinks: model providers behind one object-safe interface, the catalog
//! that prices every call in integer micro-dollars, the router that picks a model per purpose
//! with a fallback, and the checks `coworker doctor` and start-up run on providers.
//!
//! Architecture invariant: this crate talks to model providers over HTTP and to nothing else.
//! It never touches the store or the journal; callers record what it returns. Nothing in it
//! fakes a provider: tests drive the real clients against `coworker-testkit`'s scripted
//! servers over loopback HTTP.
//!
//! ```no_run
//! # async fn demo(config: &coworker_core::config::Config, env: &[(String, String)]) -> Result<(), coworker_models::ModelError> {
//! use coworker_models::{Message, ModelRequest, Purpose};
//! let resolved = coworker_models::detect_providers(config, env).await;
//! println!("{}", resolved.summary());
//! let router = resolved.router()?;
//! let request = ModelRequest::new(Purpose::Act, vec![Message::user("hi")]);
//! let routed = router.complete(&router.default_policy(), request).await?;
//! println!("{} ({} µ$)", routed.response.text, routed.response.cost_micros_usd);
//! # Ok(()) }
//! ```

mod anthropic;
pub mod catalog;
mod client;
pub mod doctor;
pub mod error;
pub mod http;
mod openai;
pub mod provider;
pub mod resolve;
pub mod retry;
pub mod router;
pub mod sse;
pub mod tokens;
pub mod types;

use std::sync::Arc;

pub use anthropic::ANTHROPIC_VERSION;
pub use catalog::{Catalog, CatalogRow, ModelInfo, Price, PriceSource, render_catalog_table};
pub use client::ProviderSettings;
pub use coworker_core::config::ProviderKind;
pub use error::{ModelError, TimeoutPhase};
pub use http::{ApiKey, CallOptions, Transport};
pub use provider::{EventStream, ModelProvider, collect};
pub use resolve::{
    NO_MODEL_MESSAGE, ResolvedProvider, ResolvedProviders, detect_providers, probe_ollama, resolve_providers,
};
pub use retry::RetryPolicy;
pub use router::{ModelPolicy, Router};
pub use types::*;

/// The rows of `coworker models list`: every catalog entry (built in and from config), plus
/// any model the policy names that the catalog lacks (shown as local = free, or unknown =
/// costed at 0 until priced). Render with [`render_catalog_table`] or serialise for `--json`.
pub fn models_list(resolved: &ResolvedProviders) -> Vec<CatalogRow> {
    let mut rows = resolved.catalog.rows();
    let policy = &resolved.policy;
    let named = policy
        .default
        .iter()
        .chain(policy.fallback.iter())
        .chain(policy.purposes.values());
    for model in named {
        if rows.iter().any(|r| r.id == model.to_string()) {
            continue;
        }
        if let Some(p) = resolved.providers.iter().find(|p| p.settings.name == model.provider) {
            let identity =
                catalog::ProviderIdentity::new(p.settings.name.clone(), p.settings.kind, &p.settings.base_url);
            let info = resolved.catalog.lookup(&identity, &model.model);
            if info.source != PriceSource::BuiltIn {
                rows.push(CatalogRow::from(&info));
            }
        }
    }
    rows
}

/// Builds the client for one provider. `catalog` prices its calls.
pub fn build_provider(settings: ProviderSettings, catalog: Arc<Catalog>) -> Result<Arc<dyn ModelProvider>, ModelError> {
    Ok(match settings.kind {
        ProviderKind::Openai => Arc::new(client::HttpProvider::new(settings, catalog, openai::OpenAiWire)?),
        ProviderKind::Anthropic => Arc::new(client::HttpProvider::new(settings, catalog, anthropic::AnthropicWire)?),
    })
}
