//! Token estimates for context budgeting: how much of a model's window a request will take
//! before it is sent. Estimates err high: running over a window costs a failed call, while a
//! slightly early summary costs little.
//!
//! The estimate is one token per three bytes of UTF-8. Real tokenizers average about four
//! bytes per token on English and code and about three on CJK text (three bytes per
//! character, roughly one token each), so a third of the byte length is above the real count
//! for the text coworkers handle, without shipping a vocabulary per model family.

use crate::types::{Message, ModelRequest};

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
/// messages, tool definitions), before any output.
pub fn estimate_request_tokens(request: &ModelRequest) -> u64 {
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
