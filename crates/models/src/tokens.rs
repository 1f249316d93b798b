//! Token counts for context budgeting: how much of a model's window a request will take
//! before it is sent. OpenAI model families are counted with their real tokenizer
//! (`o200k_base`, `cl100k_base`, embedded in the binary by tiktoken-rs, nothing downloaded);
//! every other model (Claude, whose tokenizer is not public, and local models) gets a
//! conservative estimate. Counts err high: running over a window costs a failed call, while
//! a slightly early summary costs little.
//!
//! The estimate is one token per three bytes of UTF-8. Real tokenizers average about four
//! bytes per token on English and code and about three on CJK text (three bytes per
//! character, roughly one token each), so a third of the byte length is above the real count
//! for the text coworkers handle.
//!
//! Exact counting is CPU work proportional to the text: for whole contexts on an async hot
//! path, call it from `spawn_blocking`. The first exact count loads the vocabulary (once per
//! process).

use crate::types::{Message, ModelRequest};

/// How a model's tokens are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCounter {
    /// OpenAI's `o200k_base` (GPT-4o, GPT-4.1, GPT-5, o-series).
    O200k,
    /// OpenAI's `cl100k_base` (GPT-4, GPT-3.5).
    Cl100k,
    /// The conservative byte-based estimate.
    Estimate,
}

impl TokenCounter {
    /// The counter for a model name (with or without a `provider/` or vendor prefix, as in
    /// `openai/gpt-4.1-mini` or an OpenRouter id).
    pub fn for_model(model: &str) -> Self {
        let name = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
        let starts = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
        if starts(&[
            "gpt-4o",
            "gpt-4.1",
            "gpt-4.5",
            "gpt-5",
            "o1",
            "o3",
            "o4",
            "chatgpt-4o",
            "gpt-oss",
        ]) {
            TokenCounter::O200k
        } else if starts(&["gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada"]) {
            TokenCounter::Cl100k
        } else {
            TokenCounter::Estimate
        }
    }

    /// Tokens in `text` (exact for OpenAI families, an upper estimate otherwise).
    pub fn count(self, text: &str) -> u64 {
        match self {
            TokenCounter::O200k => tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len() as u64,
            TokenCounter::Cl100k => tiktoken_rs::cl100k_base_singleton().encode_ordinary(text).len() as u64,
            TokenCounter::Estimate => estimate_text_tokens(text),
        }
    }
}

/// Bytes per token assumed by the estimate.
pub const BYTES_PER_TOKEN: u64 = 3;

/// Tokens a provider adds around each message (role markers, separators); OpenAI documents
/// 3–4 per message, we assume more.
pub const TOKENS_PER_MESSAGE: u64 = 8;

/// Tokens a tool call or tool definition costs beyond its JSON text (names, wrappers).
pub const TOKENS_PER_TOOL: u64 = 16;

/// An upper estimate of the tokens in `text`.
pub fn estimate_text_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(BYTES_PER_TOKEN)
}

/// An upper estimate of the input tokens `request` will be billed for (system prompt,
/// messages, tool definitions), before any output, counted with the tokenizer of
/// `request.model` where one is known.
pub fn estimate_request_tokens(request: &ModelRequest) -> u64 {
    let counter = TokenCounter::for_model(&request.model);
    let estimate_text_tokens = |text: &str| counter.count(text);
    let mut total = request
        .system
        .iter()
        .map(|b| estimate_text_tokens(&b.text) + TOKENS_PER_MESSAGE)
        .sum::<u64>();
    for message in &request.messages {
        total += TOKENS_PER_MESSAGE
            + match message {
                Message::User { text } => estimate_text_tokens(text),
                Message::Assistant { text, tool_calls } => {
                    estimate_text_tokens(text)
                        + tool_calls
                            .iter()
                            .map(|c| {
                                TOKENS_PER_TOOL
                                    + estimate_text_tokens(&c.id)
                                    + estimate_text_tokens(&c.name)
                                    + estimate_text_tokens(&c.raw_arguments())
                            })
                            .sum::<u64>()
                }
                Message::ToolResult { call_id, content, .. } => {
                    estimate_text_tokens(call_id) + estimate_text_tokens(content)
                }
            };
    }
    for tool in &request.tools {
        total += TOKENS_PER_TOOL
            + estimate_text_tokens(&tool.name)
            + estimate_text_tokens(&tool.description)
            + estimate_text_tokens(&tool.parameters.to_string());
    }
    total
}

/// True when `request` plus its output budget fits a window of `context_window` tokens
/// (0 = unknown window: assumed to fit).
pub fn fits_context(request: &ModelRequest, context_window: u32) -> bool {
    context_window == 0
        || estimate_request_tokens(request) + u64::from(request.max_output_tokens) <= u64::from(context_window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Purpose, SystemBlock};

    #[test]
    fn estimates_are_above_typical_real_counts() {
        // "The quick brown fox jumps over the lazy dog." is 10 tokens in cl100k/o200k.
        assert!(estimate_text_tokens("The quick brown fox jumps over the lazy dog.") >= 10);
        // Japanese: about one token per character in real tokenizers.
        let ja = "今日は良い天気ですね";
        assert!(estimate_text_tokens(ja) >= ja.chars().count() as u64);
        assert_eq!(estimate_text_tokens(""), 0);
    }

    #[test]
    fn openai_families_use_their_real_tokenizer() {
        assert_eq!(TokenCounter::for_model("openai/gpt-4.1-mini"), TokenCounter::O200k);
        assert_eq!(TokenCounter::for_model("gpt-4-turbo"), TokenCounter::Cl100k);
        assert_eq!(
            TokenCounter::for_model("anthropic/claude-sonnet-4-5"),
            TokenCounter::Estimate
        );
        assert_eq!(TokenCounter::for_model("llama3.2"), TokenCounter::Estimate);
        // Known counts: "hello world" is 2 tokens in both vocabularies.
        assert_eq!(TokenCounter::O200k.count("hello world"), 2);
        assert_eq!(TokenCounter::Cl100k.count("hello world"), 2);
        let text = "The quarterly ad report compares spend, clicks and conversions by channel.";
        let exact = TokenCounter::O200k.count(text);
        assert!(
            exact > 5 && exact < estimate_text_tokens(text),
            "exact {exact} must be below the estimate"
        );
    }

    #[test]
    fn request_estimate_counts_every_part_and_checks_the_window() {
        let mut request = ModelRequest::new(Purpose::Act, vec![Message::user("x".repeat(300))]);
        request.system.push(SystemBlock::stable("y".repeat(300)));
        let estimate = estimate_request_tokens(&request);
        assert_eq!(estimate, 100 + 100 + 2 * TOKENS_PER_MESSAGE);
        request.max_output_tokens = 1_000;
        assert!(fits_context(&request, 2_000));
        assert!(!fits_context(&request, 1_100));
        assert!(fits_context(&request, 0));
    }
}
