//! Rendering for Slack: Markdown → mrkdwn, splitting long text safely (never more than
//! Slack's per-block limit, code fences closed and reopened across a split), and small typed
//! Block Kit builders that turn an [`OutboundMessage`] into `blocks` JSON.

use coworker_core::channel::{ActionStyle, OutboundMessage};
use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};
use serde_json::{Value, json};

/// Largest text of one section block, in characters (Slack refuses more than 3000).
pub const MAX_SECTION_CHARS: usize = 3000;

/// Largest number of blocks in one message (Slack's limit is 50).
pub const MAX_BLOCKS: usize = 50;

/// Largest fallback `text` sent with blocks, in characters.
pub const MAX_FALLBACK_CHARS: usize = 3000;

/// Escapes the three characters mrkdwn treats as control characters.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Converts Markdown to Slack mrkdwn (bold, italics, strike, links, code, lists, headings,
/// quotes).
pub fn markdown_to_mrkdwn(markdown: &str) -> String {
    let mut out = String::new();
    let mut list_stack: Vec<Option<u64>> = Vec::new();
    let mut link: Option<String> = None;
    let mut link_text = String::new();
    let mut in_code_block = false;
    let push = |out: &mut String, link: &Option<String>, link_text: &mut String, s: &str| {
        if link.is_some() {
            link_text.push_str(s);
        } else {
            out.push_str(s);
        }
    };
    for event in Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Paragraph) => {}
            Event::End(TagEnd::Paragraph) => out.push_str(if list_stack.is_empty() { "\n\n" } else { "\n" }),
            Event::Start(Tag::Heading { .. }) => out.push('*'),
            Event::End(TagEnd::Heading(_)) => out.push_str("*\n\n"),
            Event::Start(Tag::Strong) | Event::End(TagEnd::Strong) => push(&mut out, &link, &mut link_text, "*"),
            Event::Start(Tag::Emphasis) | Event::End(TagEnd::Emphasis) => push(&mut out, &link, &mut link_text, "_"),
            Event::Start(Tag::Strikethrough) | Event::End(TagEnd::Strikethrough) => {
                push(&mut out, &link, &mut link_text, "~")
            }
            Event::Start(Tag::BlockQuote(_)) => out.push_str("> "),
            Event::End(TagEnd::BlockQuote(_)) => {}
            Event::Start(Tag::CodeBlock(kind)) => {
                in_code_block = true;
                let _ = matches!(kind, CodeBlockKind::Fenced(_));
                out.push_str("```\n");
            }
            Event::End(TagEnd::CodeBlock) => {
                in_code_block = false;
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str("```\n\n");
            }
            Event::Start(Tag::List(start)) => list_stack.push(start),
            Event::End(TagEnd::List(_)) => {
                list_stack.pop();
                if list_stack.is_empty() {
                    out.push('\n');
                }
            }
            Event::Start(Tag::Item) => {
                let depth = list_stack.len().saturating_sub(1);
                out.push_str(&"    ".repeat(depth));
                match list_stack.last_mut() {
                    Some(Some(n)) => {
                        out.push_str(&format!("{n}. "));
                        *n += 1;
                    }
                    _ => out.push_str("• "),
                }
            }
            Event::End(TagEnd::Item) if !out.ends_with('\n') => out.push('\n'),
            Event::End(TagEnd::Item) => {}
            Event::Start(Tag::Link { dest_url, .. }) => {
                link = Some(dest_url.to_string());
                link_text.clear();
            }
            Event::End(TagEnd::Link) => {
                if let Some(url) = link.take() {
                    if link_text.is_empty() || link_text == url {
                        out.push_str(&format!("<{url}>"));
                    } else {
                        out.push_str(&format!("<{url}|{}>", link_text.replace('|', "¦")));
                    }
                }
            }
            Event::Code(code) => push(&mut out, &link, &mut link_text, &format!("`{}`", escape(&code))),
            Event::Text(text) => {
                let text = escape(&text);
                if in_code_block {
                    out.push_str(&text);
                } else {
                    push(&mut out, &link, &mut link_text, &text);
                }
            }
            Event::SoftBreak | Event::HardBreak => push(&mut out, &link, &mut link_text, "\n"),
            Event::Rule => out.push_str("———\n\n"),
            Event::Html(html) | Event::InlineHtml(html) => push(&mut out, &link, &mut link_text, &escape(&html)),
            _ => {}
        }
    }
    out.trim_end().to_owned()
}

/// Splits mrkdwn into chunks of at most `max_chars` characters, at line ends where it can
/// (else at a character boundary), closing an open code fence at the end of a chunk and
/// reopening it at the start of the next.
pub fn split(text: &str, max_chars: usize) -> Vec<String> {
    const FENCE: &str = "```";
    // Room for a closing and a reopening fence.
    let budget = max_chars.saturating_sub(2 * (FENCE.len() + 1)).max(1);
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut current_chars = 0usize;
    let mut in_fence = false;
    let flush = |current: &mut String, current_chars: &mut usize, in_fence: bool, chunks: &mut Vec<String>| {
        if current.trim().is_empty() {
            current.clear();
            *current_chars = 0;
            return;
        }
        let mut chunk = std::mem::take(current);
        if in_fence {
            if !chunk.ends_with('\n') {
                chunk.push('\n');
            }
            chunk.push_str(FENCE);
        }
        chunks.push(chunk.trim_end_matches('\n').to_owned());
        if in_fence {
            current.push_str(FENCE);
            current.push('\n');
        }
        *current_chars = current.chars().count();
    };
    for line in text.split_inclusive('\n') {
        let mut rest = line;
        loop {
            let room = budget.saturating_sub(current_chars);
            let len = rest.chars().count();
            if len <= room {
                current.push_str(rest);
                current_chars += len;
                break;
            }
            if current_chars > 0 && len <= budget {
                flush(&mut current, &mut current_chars, in_fence, &mut chunks);
                continue;
            }
            // A line longer than a chunk: cut it at a character boundary.
            let cut = rest.char_indices().nth(room.max(1)).map_or(rest.len(), |(i, _)| i);
            current.push_str(&rest[..cut]);
            current_chars += rest[..cut].chars().count();
            rest = &rest[cut..];
            flush(&mut current, &mut current_chars, in_fence, &mut chunks);
            if rest.is_empty() {
                break;
            }
        }
        if line.trim_start().starts_with(FENCE) {
            in_fence = !in_fence;
        }
    }
    if !(current.trim().is_empty() || in_fence && current.trim() == FENCE) {
        chunks.push(current.trim_end_matches('\n').to_owned());
    }
    chunks
}

/// A Block Kit button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    /// `action_id` returned on a click.
    pub action_id: String,
    /// Label.
    pub label: String,
    /// Value returned on a click.
    pub value: String,
    /// Look.
    pub style: ActionStyle,
}

/// The Block Kit blocks this module builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// A section of mrkdwn text (at most [`MAX_SECTION_CHARS`]).
    Section(String),
    /// Labelled fields.
    Fields(Vec<(String, String)>),
    /// Small print.
    Context(String),
    /// A row of buttons, with a block id.
    Actions(String, Vec<Button>),
}

impl Block {
    /// The block's JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Block::Section(text) => json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}),
            Block::Fields(fields) => json!({
                "type": "section",
                "fields": fields.iter().take(10).map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{}*\n{}", escape(k), truncate(&escape(v), 1900))})).collect::<Vec<_>>(),
            }),
            Block::Context(text) => {
                json!({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, 2900)}]})
            }
            Block::Actions(block_id, buttons) => json!({
                "type": "actions",
                "block_id": block_id,
                "elements": buttons.iter().map(|b| {
                    let mut button = json!({
                        "type": "button",
                        "action_id": b.action_id,
                        "text": {"type": "plain_text", "text": b.label, "emoji": true},
                        "value": b.value,
                    });
                    match b.style {
                        ActionStyle::Primary => button["style"] = json!("primary"),
                        ActionStyle::Danger => button["style"] = json!("danger"),
                        ActionStyle::Default => {}
                    }
                    button
                }).collect::<Vec<_>>(),
            }),
        }
    }
}

/// Cuts `text` to at most `max_chars` characters, marking the cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars.saturating_sub(1)) {
        Some((cut, _)) if text.chars().count() > max_chars => format!("{}…", &text[..cut]),
        _ => text.to_owned(),
    }
}

/// Prefix of the `action_id` of every button this node renders.
pub const ACTION_PREFIX: &str = "coworker_";

/// A message rendered for `chat.postMessage`/`chat.update`: fallback `text` and `blocks`.
/// Text longer than one message can hold comes back in `overflow` chunks, to post as
/// follow-up messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Notification/fallback text.
    pub text: String,
    /// Blocks.
    pub blocks: Vec<Value>,
}

/// Renders a message into one or more Slack messages (long text is split across several; the
/// title, fields, preview, actions and footer go with the first, the actions last).
pub fn render(message: &OutboundMessage) -> Vec<Rendered> {
    let mut blocks = Vec::new();
    if !message.title.is_empty() {
        blocks.push(Block::Section(format!("*{}*", escape(&truncate(&message.title, 2900)))));
    }
    let body = markdown_to_mrkdwn(&message.text);
    let mut chunks = split(&body, MAX_SECTION_CHARS).into_iter();
    // Leave room in the first message for the other blocks.
    let first_room = MAX_BLOCKS - 6;
    for chunk in chunks.by_ref().take(first_room) {
        blocks.push(Block::Section(chunk));
    }
    if !message.fields.is_empty() {
        blocks.push(Block::Fields(message.fields.clone()));
    }
    if let Some(preview) = &message.preview {
        let preview = truncate(&escape(preview), MAX_SECTION_CHARS - 10);
        blocks.push(Block::Section(format!("```\n{preview}\n```")));
    }
    if !message.actions.is_empty() {
        let buttons = message
            .actions
            .iter()
            .map(|a| Button {
                action_id: format!("{ACTION_PREFIX}{}", a.id),
                label: a.label.clone(),
                value: a.value.clone(),
                style: a.style,
            })
            .collect();
        let block_id = message.actions.first().map(|a| a.value.clone()).unwrap_or_default();
        blocks.push(Block::Actions(block_id, buttons));
    }
    if let Some(footer) = &message.footer {
        blocks.push(Block::Context(escape(footer)));
    }
    let fallback = if message.title.is_empty() {
        truncate(&body, MAX_FALLBACK_CHARS)
    } else {
        truncate(&message.title, MAX_FALLBACK_CHARS)
    };
    let mut out = vec![Rendered {
        text: fallback,
        blocks: blocks.iter().map(Block::to_json).collect(),
    }];
    let rest: Vec<String> = chunks.collect();
    for group in rest.chunks(MAX_BLOCKS) {
        out.push(Rendered {
            text: truncate(&group[0], MAX_FALLBACK_CHARS),
            blocks: group.iter().map(|c| Block::Section(c.clone()).to_json()).collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_mrkdwn() {
        assert_eq!(markdown_to_mrkdwn("**bold** and *it* ~~x~~"), "*bold* and _it_ ~x~");
        assert_eq!(
            markdown_to_mrkdwn("[docs](https://a.example/x)"),
            "<https://a.example/x|docs>"
        );
        assert_eq!(markdown_to_mrkdwn("# Title\n\ntext"), "*Title*\n\ntext");
        assert_eq!(markdown_to_mrkdwn("- a\n- b"), "• a\n• b");
        assert_eq!(markdown_to_mrkdwn("1. a\n2. b"), "1. a\n2. b");
        assert_eq!(markdown_to_mrkdwn("a < b & c"), "a &lt; b &amp; c");
        assert_eq!(markdown_to_mrkdwn("```\nlet x = 1;\n```"), "```\nlet x = 1;\n```");
        assert_eq!(markdown_to_mrkdwn("use `a<b`"), "use `a&lt;b`");
    }

    #[test]
    fn long_text_splits_within_limits_and_keeps_fences_balanced() {
        let text = format!("intro\n```\n{}```\nafter", "line of code\n".repeat(600));
        let chunks = split(&text, 1000);
        assert!(chunks.len() > 5, "{}", chunks.len());
        for chunk in &chunks {
            assert!(chunk.chars().count() <= 1000, "{}", chunk.chars().count());
            assert_eq!(chunk.matches("```").count() % 2, 0, "balanced: {chunk}");
        }
        let joined: String = chunks.join("\n");
        assert_eq!(joined.matches("line of code").count(), 600, "nothing lost");
        assert!(joined.ends_with("after"));
        // A single line longer than a chunk is cut, not dropped.
        let long = "x".repeat(2500);
        let chunks = split(&long, 1000);
        assert_eq!(chunks.concat(), long);
        // Multibyte text is cut at character boundaries.
        let chunks = split(&"é".repeat(2500), 1000);
        assert_eq!(chunks.concat().chars().count(), 2500);
    }

    #[test]
    fn a_long_result_becomes_several_messages() {
        let text = (0..8000)
            .map(|i| format!("paragraph {i} with some words in it"))
            .collect::<Vec<_>>()
            .join("\n\n");
        let rendered = render(&OutboundMessage::text(text));
        assert!(rendered.len() >= 2);
        for message in &rendered {
            assert!(message.blocks.len() <= MAX_BLOCKS);
        }
    }
}
