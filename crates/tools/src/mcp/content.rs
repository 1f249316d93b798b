//! Turning an MCP tool result into the text the model sees: text blocks joined, everything
//! else (images, audio, embedded resources, resource links) described in words with its
//! type and size, never dumped as base64. `isError: true` becomes a [`ToolError`].

use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};

use crate::tool::ToolError;

/// Separator between content blocks.
const BLOCK_SEPARATOR: &str = "\n";

/// The model's view of a tool result.
pub(crate) fn render_tool_result(server: &str, tool: &str, result: CallToolResult) -> Result<String, ToolError> {
    let mut parts: Vec<String> = result.content.iter().map(describe_block).collect();
    let has_text = result.content.iter().any(|b| matches!(b, ContentBlock::Text(_)));
    // Structured content is also meant to be serialised into a text block (spec 2025-06-18);
    // when a server skips that, the JSON is the result.
    if !has_text && let Some(structured) = &result.structured_content {
        parts.push(structured.to_string());
    }
    let text = parts.join(BLOCK_SEPARATOR);
    if result.is_error.unwrap_or(false) {
        return Err(ToolError::new(if text.trim().is_empty() {
            format!("MCP tool {server}.{tool} reported an error without a message")
        } else {
            text
        }));
    }
    if text.is_empty() {
        return Ok("(the tool returned no content)".to_owned());
    }
    Ok(text)
}

/// One resource's contents for `{server}.read_resource`: text as is, binary described.
pub(crate) fn render_resource_contents(contents: &[ResourceContents]) -> String {
    let parts: Vec<String> = contents
        .iter()
        .map(|c| match c {
            ResourceContents::TextResourceContents { text, .. } => text.clone(),
            ResourceContents::BlobResourceContents {
                uri, mime_type, blob, ..
            } => format!(
                "[binary resource {uri}: {}, {}]",
                mime_type.as_deref().unwrap_or("unknown type"),
                human_size(base64_decoded_len(blob))
            ),
            #[allow(unreachable_patterns, reason = "rmcp's model types may grow variants")]
            _ => "[resource contents of an unknown kind]".to_owned(),
        })
        .collect();
    if parts.is_empty() {
        "(the resource is empty)".to_owned()
    } else {
        parts.join(BLOCK_SEPARATOR)
    }
}

fn describe_block(block: &ContentBlock) -> String {
    match block {
        ContentBlock::Text(text) => text.text.clone(),
        ContentBlock::Image(image) => format!(
            "[image: {}, {}]",
            image.mime_type,
            human_size(base64_decoded_len(&image.data))
        ),
        ContentBlock::Audio(audio) => format!(
            "[audio: {}, {}]",
            audio.mime_type,
            human_size(base64_decoded_len(&audio.data))
        ),
        ContentBlock::Resource(embedded) => match &embedded.resource {
            ResourceContents::TextResourceContents {
                uri, mime_type, text, ..
            } => format!(
                "[embedded resource {uri}: {}, {} of text]",
                mime_type.as_deref().unwrap_or("text"),
                human_size(text.len() as u64)
            ),
            ResourceContents::BlobResourceContents {
                uri, mime_type, blob, ..
            } => format!(
                "[embedded resource {uri}: {}, {}]",
                mime_type.as_deref().unwrap_or("binary"),
                human_size(base64_decoded_len(blob))
            ),
            #[allow(unreachable_patterns, reason = "rmcp's model types may grow variants")]
            _ => "[embedded resource of an unknown kind]".to_owned(),
        },
        ContentBlock::ResourceLink(link) => {
            let mut details = vec![format!("name {:?}", link.name)];
            if let Some(mime) = &link.mime_type {
                details.push(mime.clone());
            }
            if let Some(size) = link.size {
                details.push(human_size(size));
            }
            format!("[resource link {}: {}]", link.uri, details.join(", "))
        }
        #[allow(unreachable_patterns, reason = "rmcp's model types may grow variants")]
        _ => "[content of a kind Coworker does not know]".to_owned(),
    }
}

/// Bytes encoded by a base64 string (without decoding it).
fn base64_decoded_len(data: &str) -> u64 {
    let data = data.trim_end();
    let padding = data.bytes().rev().take_while(|&b| b == b'=').count() as u64;
    (data.len() as u64 / 4 * 3
        + match data.len() % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        })
    .saturating_sub(padding)
}

/// `512 bytes`, `1.5 KB`, `2.0 MB`.
fn human_size(bytes: u64) -> String {
    const KB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KB {
        format!("{bytes} bytes")
    } else if b < KB * KB {
        format!("{:.1} KB", b / KB)
    } else {
        format!("{:.1} MB", b / (KB * KB))
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{Resource, ResourceContents};

    use super::*;

    fn result(content: Vec<ContentBlock>, is_error: bool) -> CallToolResult {
        let mut result = CallToolResult::success(content);
        result.is_error = Some(is_error);
        result
    }

    #[test]
    fn text_is_joined_and_other_content_described() {
        let png = "iVBORw0KGgo="; // 8 bytes
        let content = vec![
            ContentBlock::text("first"),
            ContentBlock::image(png, "image/png"),
            ContentBlock::resource(ResourceContents::text("hello", "demo://a")),
            ContentBlock::resource(ResourceContents::blob("AAAA", "demo://b").with_mime_type("application/gzip")),
            ContentBlock::ResourceLink(Resource::new("demo://c", "c.txt")),
            ContentBlock::text("last"),
        ];
        let text = render_tool_result("srv", "t", result(content, false)).unwrap();
        assert_eq!(
            text,
            "first\n[image: image/png, 8 bytes]\n[embedded resource demo://a: text/plain, 5 bytes of text]\n\
             [embedded resource demo://b: application/gzip, 3 bytes]\n[resource link demo://c: name \"c.txt\"]\nlast"
        );
        assert!(!text.contains(png), "binary data is never dumped");
    }

    #[test]
    fn errors_and_empty_results() {
        let err = render_tool_result("srv", "t", result(vec![ContentBlock::text("no such file")], true)).unwrap_err();
        assert_eq!(err.0, "no such file");
        let err = render_tool_result("srv", "t", result(vec![], true)).unwrap_err();
        assert!(err.0.contains("srv.t reported an error"), "{err}");
        assert_eq!(
            render_tool_result("srv", "t", result(vec![], false)).unwrap(),
            "(the tool returned no content)"
        );
        let mut structured = result(vec![], false);
        structured.structured_content = Some(serde_json::json!({"temperature": 21}));
        assert_eq!(
            render_tool_result("srv", "t", structured).unwrap(),
            r#"{"temperature":21}"#
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(base64_decoded_len("AAAA"), 3);
        assert_eq!(base64_decoded_len("AAA="), 2);
        assert_eq!(base64_decoded_len("AA=="), 1);
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MB");
    }
}
