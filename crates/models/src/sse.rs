//! A minimal server-sent-events parser: bytes in, `(event, data)` pairs out, per the WHATWG
//! event-stream rules model providers use (`event:` and `data:` fields, multi-line data joined
//! with `\n`, a blank line dispatches, `:` comments ignored, `\n`/`\r\n`/`\r` line ends).

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; empty when the server sent none (OpenAI never does).
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Longest single line accepted, in bytes; a provider never sends more in one line, so a
/// longer one means a broken or hostile server rather than a big answer.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Incremental parser: feed chunks as they arrive, collect the events each chunk completes.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    event: String,
    data: Vec<String>,
    /// A `\r` ended the previous chunk; a `\n` starting the next one belongs to it.
    pending_cr: bool,
}

impl SseParser {
    /// A fresh parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes `chunk` and returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, String> {
        let mut events = Vec::new();
        let mut chunk = chunk;
        if self.pending_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.pending_cr = false;
        self.buffer.extend_from_slice(chunk);
        let mut start = 0;
        let mut i = 0;
        while i < self.buffer.len() {
            let byte = self.buffer[i];
            if byte == b'\n' || byte == b'\r' {
                let line = String::from_utf8_lossy(&self.buffer[start..i]).into_owned();
                let mut next = i + 1;
                if byte == b'\r' {
                    if next < self.buffer.len() {
                        if self.buffer[next] == b'\n' {
                            next += 1;
                        }
                    } else {
                        self.pending_cr = true;
                    }
                }
                if let Some(event) = self.line(&line) {
                    events.push(event);
                }
                start = next;
                i = next;
            } else {
                i += 1;
            }
        }
        self.buffer.drain(..start);
        if self.buffer.len() > MAX_LINE_BYTES {
            return Err(format!("an event-stream line exceeded {MAX_LINE_BYTES} bytes"));
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            if self.data.is_empty() && self.event.is_empty() {
                return None;
            }
            let event = SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data).join("\n"),
            };
            return Some(event);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let mut p = SseParser::new();
        let mut all = Vec::new();
        for chunk in [
            "event: a\r",
            "\ndata: {\"x\"",
            ":1}\r\n\r\n: comment\n",
            "data: one\ndata: two\n",
            "\ndata: [DONE]\n\n",
        ] {
            all.extend(p.feed(chunk.as_bytes()).unwrap());
        }
        assert_eq!(
            all,
            vec![
                SseEvent {
                    event: "a".into(),
                    data: "{\"x\":1}".into()
                },
                SseEvent {
                    event: String::new(),
                    data: "one\ntwo".into()
                },
                SseEvent {
                    event: String::new(),
                    data: "[DONE]".into()
                },
            ]
        );
    }

    #[test]
    fn incomplete_event_is_not_dispatched() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: partial").unwrap().is_empty());
        assert!(p.feed(b"\n").unwrap().is_empty());
        assert_eq!(p.feed(b"\n").unwrap().len(), 1);
    }
}
