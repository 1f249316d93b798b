//! Reduces an HTML page to readable text for a model: the title, headings (`# `), paragraphs,
//! list items (`- `), table cells, and links as `text [url]`; scripts, styles and other
//! non-content elements are dropped. Built on html5ever's spec-compliant tokenizer (so
//! entities, comments and `<script>` bodies are handled as a browser would), without
//! building a tree: a page is read once, start to end.

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, CharacterTokens, EndTag, StartTag, Tag, TagToken, Token, TokenSink, TokenSinkResult, Tokenizer,
    TokenizerOpts,
};

/// Longest link target shown, in characters (tracking URLs can be kilobytes long).
pub const MAX_LINK_CHARS: usize = 300;

/// The readable text of `html`. Relative links are resolved against `base` when given.
pub fn html_to_text(html: &str, base: Option<&reqwest::Url>) -> String {
    let sink = Reducer {
        state: RefCell::new(State {
            base: base.cloned(),
            ..State::default()
        }),
    };
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    // The sink never asks to pause for a script, so one feed consumes the whole input.
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.state.into_inner().finish()
}

/// Elements whose content is never text for a reader.
/// (`<head>` is not here: browsers close it implicitly, so a page that never closes it
/// would lose its whole body; its only text, the title, is handled apart.)
const DROPPED: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "canvas", "select",
];

/// Elements that start and end a block of text.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "main",
    "nav",
    "aside",
    "blockquote",
    "pre",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "hr",
    "form",
    "figure",
    "figcaption",
    "address",
    "details",
    "summary",
    "fieldset",
    "body",
    "html",
];

#[derive(Default)]
struct State {
    base: Option<reqwest::Url>,
    title: String,
    in_title: bool,
    /// Name and nesting depth of the dropped element being skipped.
    dropping: Option<(String, usize)>,
    pre_depth: usize,
    /// Links being read: their target and where their text started in `out`.
    links: Vec<(Option<String>, usize)>,
    out: String,
    /// A space is owed before the next word.
    pending_space: bool,
}

struct Reducer {
    state: RefCell<State>,
}

impl TokenSink for Reducer {
    type Handle = ();

    fn process_token(&self, token: Token, _line_number: u64) -> TokenSinkResult<()> {
        let mut state = self.state.borrow_mut();
        match token {
            TagToken(tag) => return state.tag(&tag),
            CharacterTokens(text) => state.text(&text),
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

impl State {
    fn tag(&mut self, tag: &Tag) -> TokenSinkResult<()> {
        let name: &str = &tag.name;
        // Raw-text elements must switch the tokenizer, or `<script>a<b</script>` would be
        // read as markup (the tree builder does this in a full parser).
        let raw = match (tag.kind, name) {
            (StartTag, "script") => Some(RawKind::ScriptData),
            (StartTag, "style" | "xmp" | "iframe" | "noembed" | "noframes" | "noscript") => Some(RawKind::Rawtext),
            (StartTag, "title" | "textarea") => Some(RawKind::Rcdata),
            _ => None,
        };
        // A self-closing flag on these is ignored, as browsers do: `<script/>` still opens one.
        let result = raw.map_or(TokenSinkResult::Continue, TokenSinkResult::RawData);

        if let Some((dropped, depth)) = &mut self.dropping {
            if dropped == name {
                match tag.kind {
                    StartTag if !tag.self_closing => *depth += 1,
                    EndTag => *depth -= 1,
                    StartTag => {}
                }
                if *depth == 0 {
                    self.dropping = None;
                }
            }
            return result;
        }

        match (tag.kind, name) {
            (StartTag, "title") => self.in_title = true,
            (EndTag, "title") => self.in_title = false,
            (StartTag, _) if DROPPED.contains(&name) && (raw.is_some() || !tag.self_closing) => {
                self.dropping = Some((name.to_owned(), 1));
            }
            (StartTag, "br") => self.newline(),
            (StartTag, "h1" | "h2" | "h3" | "h4" | "h5" | "h6") => {
                self.block();
                let level = name[1..].parse::<usize>().unwrap_or(1);
                self.out.push_str(&"#".repeat(level));
                self.out.push(' ');
            }
            (EndTag, "h1" | "h2" | "h3" | "h4" | "h5" | "h6") => self.block(),
            (_, "tr") => self.newline(),
            (StartTag, "li") => {
                self.newline();
                self.out.push_str("- ");
            }
            (EndTag, "li") => self.newline(),
            (StartTag, "td" | "th") => {
                if !self.out.ends_with('\n') && !self.out.is_empty() {
                    self.out.push_str(" | ");
                }
                self.pending_space = false;
            }
            (StartTag, "img") => {
                if let Some(alt) = attribute(tag, "alt").filter(|a| !a.trim().is_empty()) {
                    self.pending_space = true;
                    self.word(&format!("[image: {}]", collapse(alt)));
                    self.pending_space = true;
                }
            }
            (StartTag, "a") => {
                let target = attribute(tag, "href").and_then(|href| self.link_target(href));
                self.links.push((target, self.out.len()));
            }
            (EndTag, "a") => {
                if let Some((Some(target), start)) = self.links.pop() {
                    let text = self.out.get(start..).unwrap_or_default().trim();
                    if text != target {
                        self.pending_space = true;
                        self.word(&format!("[{target}]"));
                    }
                }
            }
            (StartTag, "pre") => {
                self.block();
                self.pre_depth += 1;
            }
            (EndTag, "pre") => {
                self.pre_depth = self.pre_depth.saturating_sub(1);
                self.block();
            }
            (_, _) if BLOCKS.contains(&name) => self.block(),
            _ => {}
        }
        result
    }

    fn text(&mut self, text: &str) {
        if self.in_title {
            self.title.push_str(text);
            return;
        }
        if self.dropping.is_some() {
            return;
        }
        if self.pre_depth > 0 {
            self.out.push_str(text);
            self.pending_space = false;
            return;
        }
        if text.starts_with(char::is_whitespace) {
            self.pending_space = true;
        }
        let mut words = text.split_whitespace().peekable();
        while let Some(word) = words.next() {
            self.word(word);
            if words.peek().is_some() {
                self.pending_space = true;
            }
        }
        if text.ends_with(char::is_whitespace) {
            self.pending_space = true;
        }
    }

    fn word(&mut self, word: &str) {
        if self.pending_space && !self.out.is_empty() && !self.out.ends_with(['\n', ' ']) {
            self.out.push(' ');
        }
        self.out.push_str(word);
        self.pending_space = false;
    }

    fn newline(&mut self) {
        while self.out.ends_with(' ') {
            self.out.pop();
        }
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
        self.pending_space = false;
    }

    /// Ends the current block with a blank line.
    fn block(&mut self) {
        self.newline();
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn link_target(&self, href: &str) -> Option<String> {
        let href = href.trim();
        if href.is_empty() || href.starts_with('#') {
            return None;
        }
        let resolved = match &self.base {
            Some(base) => base.join(href).ok()?,
            None => reqwest::Url::parse(href).ok()?,
        };
        if !matches!(resolved.scheme(), "http" | "https" | "mailto") {
            return None;
        }
        let text = resolved.to_string();
        Some(match text.char_indices().nth(MAX_LINK_CHARS) {
            Some((at, _)) => format!("{}…", &text[..at]),
            None => text,
        })
    }

    fn finish(self) -> String {
        let mut text = String::new();
        let title = collapse(&self.title);
        if !title.is_empty() {
            text.push_str("Title: ");
            text.push_str(&title);
            text.push_str("\n\n");
        }
        let mut blank_lines = 0;
        for line in self.out.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                blank_lines += 1;
                if blank_lines > 1 {
                    continue;
                }
            } else {
                blank_lines = 0;
            }
            text.push_str(line);
            text.push('\n');
        }
        text.trim().to_owned()
    }
}

fn attribute<'t>(tag: &'t Tag, name: &str) -> Option<&'t str> {
    tag.attrs.iter().find(|a| &*a.name.local == name).map(|a| &*a.value)
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_reads_as_text() {
        let html = r#"<!doctype html><html><head><title>Quarterly  &amp; more</title>
            <style>body { color: red }</style><script>if (a<b) { document.write("<p>no</p>") }</script>
            <meta name="x" content="y"></head>
            <body><nav><a href="/home">Home</a></nav>
            <h1>Results</h1><p>Revenue grew <b>12%</b> this
            quarter. See <a href="report.pdf">the report</a>.</p>
            <ul><li>One</li><li>Two</li></ul>
            <table><tr><th>Name</th><th>Value</th></tr><tr><td>a</td><td>1</td></tr></table>
            <pre>line 1
  line 2</pre>
            <img src="x.png" alt="chart"><a href="javascript:alert(1)">click</a>
            <a href="https://example.com/">https://example.com/</a>
            <noscript>enable js</noscript><svg><text>drawn</text></svg>
            </body></html>"#;
        let base = reqwest::Url::parse("https://example.com/q3/index.html").unwrap();
        let text = html_to_text(html, Some(&base));
        let expected = "Title: Quarterly & more\n\n\
            Home [https://example.com/home]\n\n\
            # Results\n\n\
            Revenue grew 12% this quarter. See the report [https://example.com/q3/report.pdf].\n\n\
            - One\n- Two\n\n\
            Name | Value\n\
            a | 1\n\n\
            line 1\n  line 2\n\n\
            [image: chart] click https://example.com/";
        assert_eq!(text, expected);
    }

    #[test]
    fn unclosed_and_nested_markup_does_not_lose_text() {
        let text = html_to_text("<div><p>first<p>second <i>third</div> tail", None);
        assert_eq!(text, "first\n\nsecond third\n\ntail");
        let nested = html_to_text("<svg><svg></svg><text>x</text></svg>after", None);
        assert_eq!(nested, "after");
    }
}
