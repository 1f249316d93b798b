//! The model catalog: context window and prices of known models, and the exact integer cost of
//! a call. Prices are integer micro-dollars per million tokens, so a call's cost is integer
//! arithmetic, rounded up once (we never under-report spend).
//!
//! Built-in prices are public list prices at the time of writing; `[[models.catalog]]` in the
//! configuration adds models or overrides any field. Models on a local server cost 0.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use coworker_core::config::{CatalogEntryConfig, ProviderKind};
use serde::Serialize;

use crate::types::Usage;

/// Prices of one model, in micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Price {
    /// Uncached input.
    pub input_micros_per_mtok: u64,
    /// Output.
    pub output_micros_per_mtok: u64,
    /// Input read from the prompt cache.
    pub cache_read_micros_per_mtok: u64,
    /// Input written to the prompt cache.
    pub cache_write_micros_per_mtok: u64,
}

impl Price {
    /// Free (local models).
    pub const FREE: Price = Price {
        input_micros_per_mtok: 0,
        output_micros_per_mtok: 0,
        cache_read_micros_per_mtok: 0,
        cache_write_micros_per_mtok: 0,
    };

    /// Cost of `usage` in micro-dollars, rounded up. Exact: the sum is formed in 128-bit
    /// integers and divided once.
    pub fn cost_micros_usd(&self, usage: &Usage) -> i64 {
        let numerator = u128::from(usage.input_tokens) * u128::from(self.input_micros_per_mtok)
            + u128::from(usage.output_tokens) * u128::from(self.output_micros_per_mtok)
            + u128::from(usage.cache_read_tokens) * u128::from(self.cache_read_micros_per_mtok)
            + u128::from(usage.cache_write_tokens) * u128::from(self.cache_write_micros_per_mtok);
        let micros = numerator.div_ceil(1_000_000);
        i64::try_from(micros).unwrap_or(i64::MAX)
    }
}

/// Where a model's numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceSource {
    /// Shipped with Coworker.
    BuiltIn,
    /// `[[models.catalog]]` in the configuration.
    Config,
    /// A model on a local server: free.
    Local,
    /// Not in the catalog: costed at 0 and flagged.
    Unknown,
}

/// One model's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// `provider/model`.
    pub id: String,
    /// Context window in tokens (0 = unknown).
    pub context_window: u32,
    /// Prices.
    pub price: Price,
    /// Where the numbers come from.
    pub source: PriceSource,
}

/// Who serves a model, as far as pricing is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIdentity {
    /// Configured name (the `provider` in `provider/model`).
    pub name: String,
    /// Wire format.
    pub kind: ProviderKind,
    /// The provider's base URL points at this machine (Ollama, llama.cpp…): models are free.
    pub local: bool,
    /// The base URL is the vendor's own API, so the vendor's list prices apply even if the
    /// provider was given another name.
    pub official: bool,
}

impl ProviderIdentity {
    /// Derives locality and officialness from the base URL.
    pub fn new(name: impl Into<String>, kind: ProviderKind, base_url: &str) -> Self {
        let host = host_of(base_url);
        let local = matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]" | "::1" | "0.0.0.0")
            || host.starts_with("127.");
        let official = matches!(
            (kind, host.as_str()),
            (ProviderKind::Openai, "api.openai.com") | (ProviderKind::Anthropic, "api.anthropic.com")
        );
        Self {
            name: name.into(),
            kind,
            local,
            official,
        }
    }
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if authority.starts_with('[') {
        authority
            .split_once(']')
            .map_or(authority.to_owned(), |(h, _)| format!("{h}]"))
    } else {
        authority.split(':').next().unwrap_or_default().to_owned()
    };
    host.to_ascii_lowercase()
}

/// The catalog: built-in entries plus configuration overrides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Catalog {
    entries: BTreeMap<String, ModelInfo>,
}

/// (id, context window, input, output, cache write, cache read), prices in micro-dollars per
/// million tokens. OpenAI has no cache-write surcharge, so its cache-write price is the input
/// price (and its usage never reports cache writes anyway).
const BUILT_IN: &[(&str, u32, u64, u64, u64, u64)] = &[
    ("openai/gpt-5", 400_000, 1_250_000, 10_000_000, 1_250_000, 125_000),
    ("openai/gpt-5-mini", 400_000, 250_000, 2_000_000, 250_000, 25_000),
    ("openai/gpt-5-nano", 400_000, 50_000, 400_000, 50_000, 5_000),
    ("openai/gpt-4.1", 1_047_576, 2_000_000, 8_000_000, 2_000_000, 500_000),
    ("openai/gpt-4.1-mini", 1_047_576, 400_000, 1_600_000, 400_000, 100_000),
    ("openai/gpt-4.1-nano", 1_047_576, 100_000, 400_000, 100_000, 25_000),
    ("openai/gpt-4o", 128_000, 2_500_000, 10_000_000, 2_500_000, 1_250_000),
    ("openai/gpt-4o-mini", 128_000, 150_000, 600_000, 150_000, 75_000),
    ("openai/o3", 200_000, 2_000_000, 8_000_000, 2_000_000, 500_000),
    ("openai/o4-mini", 200_000, 1_100_000, 4_400_000, 1_100_000, 275_000),
    (
        "anthropic/claude-opus-4-5",
        200_000,
        5_000_000,
        25_000_000,
        6_250_000,
        500_000,
    ),
    (
        "anthropic/claude-opus-4-1",
        200_000,
        15_000_000,
        75_000_000,
        18_750_000,
        1_500_000,
    ),
    (
        "anthropic/claude-sonnet-4-5",
        200_000,
        3_000_000,
        15_000_000,
        3_750_000,
        300_000,
    ),
    (
        "anthropic/claude-sonnet-4",
        200_000,
        3_000_000,
        15_000_000,
        3_750_000,
        300_000,
    ),
    (
        "anthropic/claude-haiku-4-5",
        200_000,
        1_000_000,
        5_000_000,
        1_250_000,
        100_000,
    ),
    (
        "anthropic/claude-3-5-haiku",
        200_000,
        800_000,
        4_000_000,
        1_000_000,
        80_000,
    ),
];

/// Converts a configured dollar price to micro-dollars. Config validation guarantees finite,
/// non-negative values; rounding to the nearest micro-dollar is exact for any price written
/// with up to six decimals.
fn usd_to_micros(usd: f64) -> u64 {
    let micros = (usd * 1_000_000.0).round();
    if micros.is_finite() && micros >= 0.0 {
        micros as u64
    } else {
        0
    }
}

impl Catalog {
    /// The shipped entries only.
    pub fn built_in() -> Self {
        let entries = BUILT_IN
            .iter()
            .map(|&(id, context_window, input, output, cache_write, cache_read)| {
                let price = Price {
                    input_micros_per_mtok: input,
                    output_micros_per_mtok: output,
                    cache_read_micros_per_mtok: cache_read,
                    cache_write_micros_per_mtok: cache_write,
                };
                (
                    id.to_owned(),
                    ModelInfo {
                        id: id.to_owned(),
                        context_window,
                        price,
                        source: PriceSource::BuiltIn,
                    },
                )
            })
            .collect();
        Self { entries }
    }

    /// Built-in entries with the configuration's `[[models.catalog]]` applied on top: an entry
    /// with a known id overrides the fields it sets; a new id adds a model.
    pub fn with_overrides(mut self, overrides: &[CatalogEntryConfig]) -> Self {
        for o in overrides {
            let entry = self.entries.entry(o.id.clone()).or_insert_with(|| ModelInfo {
                id: o.id.clone(),
                context_window: 0,
                price: Price::FREE,
                source: PriceSource::Config,
            });
            entry.source = PriceSource::Config;
            if let Some(w) = o.context_window {
                entry.context_window = w;
            }
            let p = &mut entry.price;
            if let Some(v) = o.input_usd_per_mtok {
                p.input_micros_per_mtok = usd_to_micros(v);
            }
            if let Some(v) = o.output_usd_per_mtok {
                p.output_micros_per_mtok = usd_to_micros(v);
            }
            if let Some(v) = o.cache_read_usd_per_mtok {
                p.cache_read_micros_per_mtok = usd_to_micros(v);
            }
            if let Some(v) = o.cache_write_usd_per_mtok {
                p.cache_write_micros_per_mtok = usd_to_micros(v);
            }
        }
        self
    }

    /// Built-in entries plus the configuration's overrides.
    pub fn from_config(config: &coworker_core::config::Config) -> Self {
        Self::built_in().with_overrides(&config.models.catalog)
    }

    /// Every entry, sorted by id.
    pub fn entries(&self) -> impl Iterator<Item = &ModelInfo> {
        self.entries.values()
    }

    /// Looks a model up for a provider: its own `provider/model` id first, then (for the
    /// vendor's official API under another name) the vendor's id, ignoring a date suffix
    /// such as `-20250929`. Local servers not in the catalog are free; anything else unknown
    /// is flagged [`PriceSource::Unknown`] and costed at 0.
    pub fn lookup(&self, provider: &ProviderIdentity, model: &str) -> ModelInfo {
        let vendor = match provider.kind {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
        };
        let mut candidates = vec![format!("{}/{model}", provider.name)];
        if provider.official {
            candidates.push(format!("{vendor}/{model}"));
        }
        let undated = strip_date_suffix(model);
        if undated != model {
            candidates.push(format!("{}/{undated}", provider.name));
            if provider.official {
                candidates.push(format!("{vendor}/{undated}"));
            }
        }
        for id in &candidates {
            if let Some(info) = self.entries.get(id) {
                // A configured entry under the provider's own name applies anywhere; built-in
                // vendor prices only where the vendor actually serves the model.
                if info.source == PriceSource::Config || provider.official || provider.name == vendor {
                    return ModelInfo {
                        id: format!("{}/{model}", provider.name),
                        ..info.clone()
                    };
                }
            }
        }
        let source = if provider.local {
            PriceSource::Local
        } else {
            PriceSource::Unknown
        };
        ModelInfo {
            id: format!("{}/{model}", provider.name),
            context_window: 0,
            price: Price::FREE,
            source,
        }
    }

    /// Rows for `coworker models list` (also its `--json` form).
    pub fn rows(&self) -> Vec<CatalogRow> {
        self.entries().map(CatalogRow::from).collect()
    }
}

fn strip_date_suffix(model: &str) -> &str {
    // -20250929
    if let Some((head, tail)) = model.rsplit_once('-')
        && tail.len() == 8
        && tail.bytes().all(|b| b.is_ascii_digit())
    {
        return head;
    }
    // -2024-08-06
    let bytes = model.as_bytes();
    if bytes.len() > 11 {
        let tail = &model[model.len() - 11..];
        let t = tail.as_bytes();
        if t[0] == b'-' && t[5] == b'-' && t[8] == b'-' && tail[1..].bytes().filter(u8::is_ascii_digit).count() == 8 {
            return &model[..model.len() - 11];
        }
    }
    model
}

/// One row of `coworker models list`, serialisable for `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogRow {
    /// `provider/model`.
    pub id: String,
    /// Context window in tokens (0 = unknown).
    pub context_window: u32,
    /// Prices, micro-dollars per million tokens.
    pub price: Price,
    /// Input price, dollars per million tokens, for people.
    pub input_usd_per_mtok: String,
    /// Output price, dollars per million tokens.
    pub output_usd_per_mtok: String,
    /// Cache-read price, dollars per million tokens.
    pub cache_read_usd_per_mtok: String,
    /// Cache-write price, dollars per million tokens.
    pub cache_write_usd_per_mtok: String,
    /// Where the numbers come from.
    pub source: PriceSource,
}

impl From<&ModelInfo> for CatalogRow {
    fn from(info: &ModelInfo) -> Self {
        Self {
            id: info.id.clone(),
            context_window: info.context_window,
            price: info.price,
            input_usd_per_mtok: format_usd(info.price.input_micros_per_mtok),
            output_usd_per_mtok: format_usd(info.price.output_micros_per_mtok),
            cache_read_usd_per_mtok: format_usd(info.price.cache_read_micros_per_mtok),
            cache_write_usd_per_mtok: format_usd(info.price.cache_write_micros_per_mtok),
            source: info.source,
        }
    }
}

/// Formats micro-dollars as dollars with at least two decimals and no trailing zeros beyond
/// them: 2_500_000 → "2.50", 25_000 → "0.025".
pub fn format_usd(micros: u64) -> String {
    let whole = micros / 1_000_000;
    let frac = format!("{:06}", micros % 1_000_000);
    let trimmed = frac.trim_end_matches('0');
    let decimals = if trimmed.len() < 2 { &frac[..2] } else { trimmed };
    format!("{whole}.{decimals}")
}

/// The human table for `coworker models list`: one line per model, prices in dollars per
/// million tokens.
pub fn render_catalog_table(rows: &[CatalogRow]) -> String {
    let headers = [
        "MODEL",
        "CONTEXT",
        "INPUT $/M",
        "OUTPUT $/M",
        "CACHE READ $/M",
        "CACHE WRITE $/M",
        "SOURCE",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                if r.context_window == 0 {
                    "?".to_owned()
                } else {
                    r.context_window.to_string()
                },
                r.input_usd_per_mtok.clone(),
                r.output_usd_per_mtok.clone(),
                r.cache_read_usd_per_mtok.clone(),
                r.cache_write_usd_per_mtok.clone(),
                match r.source {
                    PriceSource::BuiltIn => "built-in",
                    PriceSource::Config => "config",
                    PriceSource::Local => "local",
                    PriceSource::Unknown => "unknown",
                }
                .to_owned(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &[String]| {
        let mut text = String::new();
        for (i, (cell, w)) in cols.iter().zip(widths).enumerate() {
            // Model names left-aligned, numbers right-aligned, source left.
            if i == 0 || i == 6 {
                let _ = write!(text, "{cell:<w$}  ");
            } else {
                let _ = write!(text, "{cell:>w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&headers.map(str::to_owned));
    for row in &cells {
        line(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_exact_and_rounded_up_once() {
        let price = Price {
            input_micros_per_mtok: 400_000,
            output_micros_per_mtok: 1_600_000,
            cache_read_micros_per_mtok: 100_000,
            cache_write_micros_per_mtok: 400_000,
        };
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 500_000,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
        };
        assert_eq!(price.cost_micros_usd(&usage), 400_000 + 800_000);
        // 1 token at $0.40/M is 0.4 micro-dollars: rounds up to 1, never down to 0.
        assert_eq!(
            price.cost_micros_usd(&Usage {
                input_tokens: 1,
                ..Usage::default()
            }),
            1
        );
        // Fractions add up before rounding: 3 × 0.4 = 1.2 → 2, not 3 × 1.
        assert_eq!(
            price.cost_micros_usd(&Usage {
                input_tokens: 3,
                ..Usage::default()
            }),
            2
        );
        assert_eq!(Price::FREE.cost_micros_usd(&usage), 0);
    }

    #[test]
    fn lookup_handles_dates_renamed_providers_and_local_servers() {
        let catalog = Catalog::built_in();
        let anthropic = ProviderIdentity::new("anthropic", ProviderKind::Anthropic, "https://api.anthropic.com");
        let info = catalog.lookup(&anthropic, "claude-sonnet-4-5-20250929");
        assert_eq!(info.source, PriceSource::BuiltIn);
        assert_eq!(info.price.output_micros_per_mtok, 15_000_000);
        let renamed = ProviderIdentity::new("work-openai", ProviderKind::Openai, "https://api.openai.com/v1");
        assert_eq!(
            catalog
                .lookup(&renamed, "gpt-4o-2024-08-06")
                .price
                .input_micros_per_mtok,
            2_500_000
        );
        let ollama = ProviderIdentity::new("ollama", ProviderKind::Openai, "http://127.0.0.1:11434/v1");
        assert_eq!(catalog.lookup(&ollama, "llama3.2").source, PriceSource::Local);
        // An OpenAI-compatible proxy is not OpenAI: its prices are unknown, not OpenAI's.
        let proxy = ProviderIdentity::new("openrouter", ProviderKind::Openai, "https://openrouter.ai/api/v1");
        assert_eq!(catalog.lookup(&proxy, "gpt-4o").source, PriceSource::Unknown);
    }

    #[test]
    fn config_overrides_and_extends() {
        let overrides = vec![
            CatalogEntryConfig {
                id: "openai/gpt-4o".into(),
                input_usd_per_mtok: Some(1.0),
                ..Default::default()
            },
            CatalogEntryConfig {
                id: "openrouter/gpt-4o".into(),
                context_window: Some(128_000),
                input_usd_per_mtok: Some(2.5),
                output_usd_per_mtok: Some(10.0),
                ..Default::default()
            },
        ];
        let catalog = Catalog::built_in().with_overrides(&overrides);
        let openai = ProviderIdentity::new("openai", ProviderKind::Openai, "https://api.openai.com/v1");
        let info = catalog.lookup(&openai, "gpt-4o");
        assert_eq!(
            (info.price.input_micros_per_mtok, info.price.output_micros_per_mtok),
            (1_000_000, 10_000_000)
        );
        let proxy = ProviderIdentity::new("openrouter", ProviderKind::Openai, "https://openrouter.ai/api/v1");
        let info = catalog.lookup(&proxy, "gpt-4o");
        assert_eq!(info.source, PriceSource::Config);
        assert_eq!(info.price.output_micros_per_mtok, 10_000_000);
    }

    #[test]
    fn table_lists_prices_in_dollars() {
        assert_eq!(format_usd(2_500_000), "2.50");
        assert_eq!(format_usd(25_000), "0.025");
        assert_eq!(format_usd(0), "0.00");
        let table = render_catalog_table(&Catalog::built_in().rows());
        let line = table
            .lines()
            .find(|l| l.starts_with("openai/gpt-4.1-mini "))
            .expect("row");
        assert!(
            line.contains("0.40") && line.contains("1.60") && line.contains("0.10"),
            "{line}"
        );
        assert!(table.starts_with("MODEL"));
    }
}
