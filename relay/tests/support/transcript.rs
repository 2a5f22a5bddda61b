//! A raw WebSocket client (tokio-tungstenite) that records every message both ways,
//! and the normalisation that makes a transcript deterministic: known keys become
//! names, other 64-hex strings become `<id-N>` in order of appearance, signatures
//! `<sig>`, timestamps `<ts>`, and the NIP-42 challenge `<challenge>`.

use std::fmt::Write as _;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::WAIT;

/// A recording client.
pub struct Raw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    lines: Vec<String>,
}

impl Raw {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket connect");
        Self {
            ws,
            lines: Vec::new(),
        }
    }

    /// Sends a text message.
    pub async fn send(&mut self, text: String) {
        self.lines.push(format!("> {text}"));
        self.ws
            .send(Message::text(text))
            .await
            .expect("send a message");
    }

    /// The next text message from the relay, parsed.
    pub async fn recv(&mut self) -> serde_json::Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the relay answers in time")
                .expect("the connection is open")
                .expect("a message");
            if let Message::Text(text) = message {
                self.lines.push(format!("< {}", text.as_str()));
                return serde_json::from_str(text.as_str()).expect("JSON from the relay");
            }
        }
    }

    /// Reads (without recording) until the relay closes the connection; returns how
    /// many text messages arrived before that.
    pub async fn count_until_closed(&mut self) -> usize {
        let mut count = 0;
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("the relay closes the connection in time")
            {
                Some(Ok(Message::Text(_))) => count += 1,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return count,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Receives `n` messages.
    pub async fn recv_n(&mut self, n: usize) -> Vec<serde_json::Value> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.recv().await);
        }
        out
    }

    /// The transcript with `names` (hex → label) applied and everything else variable
    /// normalised.
    pub fn normalized(&self, names: &[(String, &str)]) -> String {
        let mut ids: Vec<String> = Vec::new();
        let mut out = String::new();
        for line in &self.lines {
            let line = if line.starts_with(r#"< ["AUTH","#) {
                r#"< ["AUTH","<challenge>"]"#.to_owned()
            } else {
                line.clone()
            };
            out.push_str(&normalize_line(&line, names, &mut ids));
            out.push('\n');
        }
        out
    }
}

fn normalize_line(line: &str, names: &[(String, &str)], ids: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(line.len());
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_hexdigit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let end = (i..bytes.len())
                .find(|&j| !bytes[j].is_ascii_hexdigit())
                .unwrap_or(bytes.len());
            let run = &line[i..end];
            let bounded = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
            if bounded && run.len() == 128 {
                out.push_str("<sig>");
                i = end;
                continue;
            }
            if bounded && run.len() == 64 {
                if let Some((_, name)) = names.iter().find(|(hex, _)| hex == run) {
                    let _ = write!(out, "<{name}>");
                } else {
                    let n = ids.iter().position(|x| x == run).unwrap_or_else(|| {
                        ids.push(run.to_owned());
                        ids.len() - 1
                    });
                    let _ = write!(out, "<id-{n}>");
                }
                i = end;
                continue;
            }
        }
        if line[i..].starts_with(r#""created_at":"#) {
            out.push_str(r#""created_at":"<ts>""#);
            i += r#""created_at":"#.len();
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            continue;
        }
        let c = line[i..].chars().next().expect("in bounds");
        out.push(c);
        i += c.len_utf8();
    }
    out
}
