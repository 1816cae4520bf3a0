//! The stdio transport: newline-delimited JSON-RPC on stdin/stdout that answers every line
//! it cannot take.
//!
//! rmcp's own stdio transport drops a line that is not JSON (NaN, `1e309`, invalid UTF-8,
//! nesting deeper than 128, plain text) and one over its length limit without a word, so
//! the client waits forever for an answer. This one reads each line with a byte bound,
//! parses it as rmcp would, and answers what it cannot take itself: `-32700 Parse error`
//! with `id: null` for text that is not JSON, `-32600 Invalid Request` (with the message's
//! id when it can be read) for JSON that is not a message and for a line over the limit.
//! Good messages go on to rmcp. Every line written to stdout, rmcp's and these answers,
//! goes through one writer task, so lines never interleave.

use std::io;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::jsonrpc::{self, Refusal};

/// How much of an over-long line is kept to read its id from.
const ID_PREFIX_BYTES: usize = 4096;

/// One line for the writer task, and where to report that it was written (rmcp's sends
/// wait for that; the transport's own answers do not).
type Outgoing = (Vec<u8>, Option<oneshot::Sender<io::Result<()>>>);

/// Newline-delimited JSON-RPC over a reader and a writer (stdin and stdout when serving).
pub struct LineTransport<R> {
    read: BufReader<R>,
    max_line_bytes: usize,
    line: Vec<u8>,
    /// Set while the rest of an over-long line is skipped. Kept here, not in a local,
    /// because rmcp polls `receive` inside a `select!` and may drop it mid-line.
    discarding: bool,
    /// The start of the over-long line being skipped, to read its id from.
    oversized_prefix: Vec<u8>,
    out: Option<mpsc::UnboundedSender<Outgoing>>,
    writer: Option<JoinHandle<()>>,
}

/// Where one bounded line read ended.
enum Read {
    /// A whole line is in `line` (without its newline).
    Line,
    /// A line longer than the limit ended (or is being skipped to its end).
    Oversized,
    /// End of input (a last line without a newline is dropped, as rmcp does).
    Eof,
}

impl<R: AsyncRead + Send + Unpin + 'static> LineTransport<R> {
    /// A transport reading lines of at most `max_line_bytes` from `read`, writing to
    /// `write`. Must be called inside a Tokio runtime (it starts the writer task).
    pub fn new<W: AsyncWrite + Send + Unpin + 'static>(
        read: R,
        write: W,
        max_line_bytes: usize,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            read: BufReader::new(read),
            max_line_bytes,
            line: Vec::new(),
            discarding: false,
            oversized_prefix: Vec::new(),
            out: Some(tx),
            writer: Some(tokio::spawn(write_lines(write, rx))),
        }
    }

    /// Reads one line into `self.line` without letting it grow past the limit. Safe to
    /// cancel: what was read stays in `self.line` (or the skip state) for the next call.
    async fn read_line(&mut self) -> io::Result<Read> {
        loop {
            let available = self.read.fill_buf().await?;
            if available.is_empty() {
                return Ok(Read::Eof);
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let chunk = &available[..newline.unwrap_or(take)];
            let result = if self.discarding {
                newline.map(|_| Read::Oversized)
            } else if self.line.len().saturating_add(chunk.len()) > self.max_line_bytes {
                let room = ID_PREFIX_BYTES.saturating_sub(self.line.len());
                self.oversized_prefix = std::mem::take(&mut self.line);
                self.oversized_prefix
                    .extend_from_slice(&chunk[..room.min(chunk.len())]);
                self.discarding = newline.is_none();
                Some(Read::Oversized)
            } else {
                self.line.extend_from_slice(chunk);
                newline.map(|_| Read::Line)
            };
            // No await between the copy above and this consume: a cancelled call never
            // loses or repeats bytes.
            self.read.consume(take);
            match result {
                Some(Read::Oversized) if self.discarding && newline.is_some() => {
                    self.discarding = false;
                }
                Some(Read::Oversized) if self.discarding => {
                    // First sight of an over-long line that does not end in this chunk:
                    // answer now, then skip to its end.
                    return Ok(Read::Oversized);
                }
                Some(read) => return Ok(read),
                None => {}
            }
        }
    }

    /// Queues an answer of the transport's own (not awaited: `receive` may be cancelled,
    /// and the writer task keeps the order of whatever is queued).
    fn answer(&self, refusal: &Refusal) {
        if let (Some(text), Some(out)) = (refusal.answer_text(), &self.out) {
            tracing::debug!("answering a message that cannot be taken: {text}");
            let mut line = text.into_bytes();
            line.push(b'\n');
            let _ = out.send((line, None));
        }
    }
}

/// Writes queued lines in order, flushing whenever the queue runs dry.
async fn write_lines<W: AsyncWrite + Unpin>(
    mut write: W,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some((line, done)) = rx.recv().await {
        let mut result = write.write_all(&line).await;
        if result.is_ok() && rx.is_empty() {
            result = write.flush().await;
        }
        let failed = result.is_err();
        if let Some(done) = done {
            let _ = done.send(result);
        }
        if failed {
            // The peer is gone; later sends fail with "closed" instead of writing.
            return;
        }
    }
    let _ = write.flush().await;
}

impl<R: AsyncRead + Send + Unpin + 'static> Transport<RoleServer> for LineTransport<R> {
    type Error = io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let out = self.out.clone();
        async move {
            let mut line = serde_json::to_vec(&item)?;
            line.push(b'\n');
            let (done, written) = oneshot::channel();
            let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "stdout is closed");
            out.ok_or_else(closed)?
                .send((line, Some(done)))
                .map_err(|_| closed())?;
            written.await.map_err(|_| closed())?
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            match self.read_line().await {
                Ok(Read::Line) => {}
                Ok(Read::Oversized) => {
                    let id = jsonrpc::readable_id(&std::mem::take(&mut self.oversized_prefix));
                    self.answer(&Refusal::Invalid {
                        id: id.unwrap_or_default(),
                        reason: format!(
                            "the message is longer than the limit of {} bytes for one line; \
                             memory content is limited to {} bytes",
                            self.max_line_bytes,
                            memory_core::limits::MAX_CONTENT_BYTES
                        ),
                    });
                    continue;
                }
                Ok(Read::Eof) => return None,
                Err(e) => {
                    tracing::error!("reading stdin failed: {e}");
                    return None;
                }
            }
            let line = std::mem::take(&mut self.line);
            let text = line.strip_suffix(b"\r").unwrap_or(&line);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match jsonrpc::parse_message(text) {
                Ok(message) => {
                    // Keep the buffer's capacity for the next line.
                    self.line = line;
                    self.line.clear();
                    return Some(message);
                }
                Err(refusal) => self.answer(&refusal),
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        // Dropping the sender ends the writer once everything queued is written; waiting
        // for it keeps the last answers from being lost when the process exits.
        drop(self.out.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Feeds `input` through a transport with a `limit`-byte line bound; returns what it
    /// passed on (method names) and what it wrote back.
    async fn run(input: Vec<u8>, limit: usize) -> (Vec<String>, String) {
        let (mut client_out, server_out) = tokio::io::duplex(1 << 16);
        let mut transport = LineTransport::new(std::io::Cursor::new(input), server_out, limit);
        let mut passed = Vec::new();
        // Bounded: every call consumes at least one line or ends the input.
        for _ in 0..1000 {
            let Some(message) = transport.receive().await else {
                break;
            };
            let value = serde_json::to_value(&message).unwrap();
            passed.push(value["method"].as_str().unwrap_or("?").to_owned());
        }
        transport.close().await.unwrap();
        drop(transport);
        let mut written = String::new();
        client_out.read_to_string(&mut written).await.unwrap();
        (passed, written)
    }

    fn answers(written: &str) -> Vec<serde_json::Value> {
        written
            .lines()
            .map(|l| serde_json::from_str(l).expect("each answer is one JSON line"))
            .collect()
    }

    #[tokio::test]
    async fn every_line_that_cannot_be_taken_is_answered_and_the_rest_pass() {
        let ping = |id: u32| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        let long = format!(
            r#"{{"jsonrpc":"2.0","id":77,"method":"ping","params":{{"x":"{}"}}}}"#,
            "a".repeat(300)
        );
        let mut input = Vec::new();
        for line in [
            ping(1),
            "not json".into(),
            "".into(),
            long,
            ping(2),
            r#"{"jsonrpc":"2.0","id":3,"method":"ping","params":{"x":NaN}}"#.into(),
            format!("{}\r", ping(4)),
        ] {
            input.extend_from_slice(line.as_bytes());
            input.push(b'\n');
        }
        input.extend_from_slice(b"{\"id\":\xff}\n");
        let (passed, written) = run(input, 200).await;
        assert_eq!(passed, ["ping", "ping", "ping"]);
        let answers = answers(&written);
        let codes: Vec<_> = answers.iter().map(|a| a["error"]["code"].clone()).collect();
        assert_eq!(codes, [-32700, -32600, -32700, -32700], "{written}");
        assert_eq!(answers[1]["id"], 77, "the id of an over-long line is read");
        assert!(
            answers[1]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("200 bytes"),
            "{written}"
        );
        assert_eq!(answers[0]["id"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn an_over_long_line_split_across_reads_is_skipped_to_its_end() {
        // Longer than the reader's buffer, so it arrives in many chunks.
        let mut input = format!(r#"{{"id":"big","x":"{}"}}"#, "b".repeat(100_000)).into_bytes();
        input.push(b'\n');
        input.extend_from_slice(br#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#);
        input.push(b'\n');
        let (passed, written) = run(input, 1000).await;
        assert_eq!(passed, ["ping"]);
        let answers = answers(&written);
        assert_eq!(answers.len(), 1, "{written}");
        assert_eq!(answers[0]["id"], "big");
    }
}
