//! Reading an inbox's Server-Sent-Events stream: a small parser of `text/event-stream` (ids,
//! event names, multi-line data, comments) over the response's chunks.

use agentyard_core::message::Message;
use reqwest::Response;

use crate::ClientError;

/// One event as it came off the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Splits a byte stream into events.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    buffer: Vec<u8>,
    current: Event,
    has_data: bool,
}

impl Parser {
    /// Feeds bytes; returns the events they completed.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n' || *b == b'\r') {
            // A lone '\r' at the end may be the first half of "\r\n": wait for more.
            if self.buffer[end] == b'\r' && end + 1 == self.buffer.len() {
                break;
            }
            let skip = if self.buffer[end] == b'\r' && self.buffer.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line: Vec<u8> = self.buffer.drain(..end + skip).take(end).collect();
            let line = String::from_utf8_lossy(&line);
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.current);
            let had = std::mem::take(&mut self.has_data);
            return had.then_some(event);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" => self.current.id = Some(value.to_owned()),
            "event" => self.current.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

/// An inbox followed as Server-Sent Events (see `Client::inbox_stream`).
pub struct InboxStream {
    response: Response,
    parser: Parser,
    ready: std::collections::VecDeque<Event>,
    last_event_id: Option<u64>,
}

impl InboxStream {
    pub(crate) fn new(response: Response) -> Self {
        Self {
            response,
            parser: Parser::default(),
            ready: std::collections::VecDeque::new(),
            last_event_id: None,
        }
    }

    /// The id of the last message received: reconnect with it to resume.
    pub fn last_event_id(&self) -> Option<u64> {
        self.last_event_id
    }

    /// The next message; `None` when the server ended the stream (e.g. it shuts down).
    pub async fn next(&mut self) -> Result<Option<Message>, ClientError> {
        loop {
            while let Some(event) = self.ready.pop_front() {
                if event.event.as_deref().is_some_and(|e| e != "message") {
                    continue;
                }
                let message: Message = serde_json::from_str(&event.data)
                    .map_err(|e| ClientError::Decode(format!("a stream event is not a message: {e}")))?;
                self.last_event_id = Some(message.seq);
                return Ok(Some(message));
            }
            match self.response.chunk().await.map_err(ClientError::Transport)? {
                Some(bytes) => self.ready.extend(self.parser.feed(&bytes)),
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&str]) -> Vec<Event> {
        let mut p = Parser::default();
        chunks.iter().flat_map(|c| p.feed(c.as_bytes())).collect()
    }

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let got = parse(&[
            "id: 3\nevent: mess",
            "age\ndata: {\"a\":",
            "1}\n\n: keep-alive\n\n",
            "data: x\r",
            "\ndata: y\r\n\r\n",
        ]);
        assert_eq!(
            got,
            vec![
                Event {
                    id: Some("3".into()),
                    event: Some("message".into()),
                    data: "{\"a\":1}".into()
                },
                Event {
                    id: None,
                    event: None,
                    data: "x\ny".into()
                },
            ]
        );
    }

    #[test]
    fn comments_alone_make_no_event() {
        assert!(parse(&[":\n\n: ping\n\n"]).is_empty());
    }
}
