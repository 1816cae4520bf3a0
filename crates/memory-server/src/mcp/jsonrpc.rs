//! Answers to JSON-RPC messages the server cannot take: what both transports (stdio and
//! streamable HTTP) send back for a message that does not parse or is not a JSON-RPC
//! message, instead of dropping it (JSON-RPC 2.0 §5.1: every request gets a response; the
//! client would otherwise wait forever).
//!
//! rmcp serialises an id-less error without the `id` member; JSON-RPC requires
//! `"id": null`, so these answers are written as plain JSON here.

use rmcp::model::{ClientJsonRpcMessage, CustomRequest, ErrorCode, ErrorData};
use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::{Value, json};

/// JSON-RPC `Parse error`: the text is not JSON (or JSON this server cannot read).
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC `Invalid Request`: JSON, but not one JSON-RPC message this server accepts.
pub const INVALID_REQUEST: i64 = -32600;

/// Why an incoming message is refused, and the answer it gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Not JSON: a `-32700` answer with `id: null`.
    Parse(String),
    /// JSON, but not a message this server accepts: a `-32600` answer carrying the
    /// message's id when one could be read (else `null`).
    Invalid {
        /// The request's `id` (a number or a string), or `null`.
        id: Value,
        /// What is wrong and what to send instead.
        reason: String,
    },
    /// A notification (no `id`) of a method this server does not know: no answer, as
    /// JSON-RPC forbids answering notifications (rmcp ignores these too, for clients that
    /// share the pipe with other protocols).
    Ignore,
}

impl Refusal {
    /// The JSON-RPC error response to send, as one line of JSON text (no newline), or
    /// `None` for [`Refusal::Ignore`].
    pub fn answer_text(&self) -> Option<String> {
        let (id, code, message) = match self {
            Self::Parse(detail) => (Value::Null, PARSE_ERROR, format!("Parse error: {detail}")),
            Self::Invalid { id, reason } => (
                id.clone(),
                INVALID_REQUEST,
                format!("Invalid Request: {reason}"),
            ),
            Self::Ignore => return None,
        };
        // Written by hand, not as a `Value`, to keep JSON-RPC's customary member order.
        Some(format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{}}}"#,
            json!({"code": code, "message": message})
        ))
    }
}

/// Parses one message the way rmcp would, and says why it is refused if it is.
pub fn parse_message(text: &[u8]) -> Result<ClientJsonRpcMessage, Refusal> {
    // RFC 8259 §8.1 lets a parser ignore a leading byte order mark; rmcp's stdio does.
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    serde_json::from_slice::<ClientJsonRpcMessage>(text).map_err(|e| refusal(text, &e))
}

/// The refusal for `text`, which failed to parse as a message with `error`.
fn refusal(text: &[u8], error: &serde_json::Error) -> Refusal {
    use serde_json::error::Category;
    match error.classify() {
        // Not JSON at all, or JSON serde_json will not read: NaN/Infinity, numbers beyond
        // f64 (`1e309`), invalid UTF-8, nesting deeper than its limit of 128.
        Category::Syntax | Category::Eof | Category::Io => Refusal::Parse(format!(
            "{}; send one JSON-RPC 2.0 message as UTF-8 JSON (finite numbers, nesting at most \
             128 deep)",
            without_position(error)
        )),
        // Well-formed JSON of the wrong shape.
        Category::Data => {
            let value: Value = serde_json::from_slice(text).unwrap_or(Value::Null);
            match &value {
                Value::Array(_) => Refusal::Invalid {
                    id: Value::Null,
                    reason: "batches (JSON arrays) are not supported; send each message on \
                             its own"
                        .into(),
                },
                Value::Object(map) => {
                    let id = map.get("id").filter(|id| id.is_number() || id.is_string());
                    if map.get("id").is_none() && map.get("method").is_some_and(Value::is_string) {
                        return Refusal::Ignore;
                    }
                    Refusal::Invalid {
                        id: id.cloned().unwrap_or(Value::Null),
                        reason: format!(
                            "not a JSON-RPC 2.0 message ({}); a request needs \"jsonrpc\": \
                             \"2.0\", an \"id\" (number or string), a \"method\" and object \
                             \"params\"",
                            without_position(error)
                        ),
                    }
                }
                _ => Refusal::Invalid {
                    id: Value::Null,
                    reason: "a message must be a JSON object".into(),
                },
            }
        }
    }
}

/// serde_json's message without " at line 1 column N" (one line is one message; the
/// column of a 60 MiB line helps nobody).
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The top-level `"id"` of a message (a number or a string) if it can be read from `text`,
/// which may be cut short (the start of an over-long line) or broken after the id.
pub fn readable_id(text: &[u8]) -> Option<Value> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut found = None;
    // The outcome is ignored on purpose: the text is allowed to break after the id (the
    // visitor stops reading there), which serde_json reports as an error.
    let _ = serde_json::Deserializer::from_slice(text).deserialize_map(IdProbe(&mut found));
    found.filter(|id: &Value| id.is_number() || id.is_string())
}

/// Reads the keys of the top-level object until `"id"`, skipping the other values.
struct IdProbe<'a>(&'a mut Option<Value>);

impl<'de> Visitor<'de> for IdProbe<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON-RPC message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "id" {
                *self.0 = Some(map.next_value()?);
                return Err(de::Error::custom("stop: the id is read"));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// The methods this server answers (besides notifications).
const SERVED_METHODS: &str = "initialize, ping, tools/list, tools/call";

/// The answer to a request rmcp could not read as any MCP request it knows, so it arrived
/// as a custom one: a known method whose params have the wrong shape is `-32602 Invalid
/// params` naming the parameter (rmcp's default says `-32601` "method not found" and gives
/// only the method's name); anything else is `-32601` naming the method.
pub fn unreadable_request(request: &CustomRequest) -> ErrorData {
    let method = request.method.as_str();
    let shown: String = method.chars().take(80).collect();
    if method == "tools/call" {
        return ErrorData::invalid_params(tools_call_problem(request.params.as_ref()), None);
    }
    // The other standard MCP requests land here only when rmcp could not read their params.
    const STANDARD: [&str; 12] = [
        "initialize",
        "ping",
        "tools/list",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
        "logging/setLevel",
    ];
    if STANDARD.contains(&method) {
        return ErrorData::invalid_params(
            format!(
                "invalid params for `{shown}`: `params` must be an object of the shape the MCP \
                 specification gives for this method"
            ),
            None,
        );
    }
    ErrorData::new(
        ErrorCode::METHOD_NOT_FOUND,
        format!("method not found: `{shown}`; this server answers {SERVED_METHODS}"),
        None,
    )
}

/// What is wrong with the params of a `tools/call` rmcp could not read.
fn tools_call_problem(params: Option<&Value>) -> String {
    let kind = memory_core::metadata::json_kind;
    let Some(Value::Object(params)) = params else {
        return format!(
            "invalid params for `tools/call`: `params` must be an object with the tool's \
             `name` and its `arguments` (got {})",
            params.map_or("nothing", kind)
        );
    };
    match (params.get("name"), params.get("arguments")) {
        (Some(Value::String(_)), Some(args)) if !args.is_object() && !args.is_null() => format!(
            "invalid params for `tools/call`: `arguments` must be an object of the tool's \
             arguments by name, e.g. {{\"content\": \"...\"}} (got {})",
            kind(args)
        ),
        (Some(Value::String(_)), _) => "invalid params for `tools/call`: `params` do not match \
                                        the MCP schema of a tool call (`name`, `arguments`, \
                                        `_meta`)"
            .into(),
        (name, _) => format!(
            "invalid params for `tools/call`: `name` must be the tool's name as a string (got \
             {})",
            name.map_or("nothing", kind)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> Refusal {
        parse_message(text.as_bytes()).expect_err(text)
    }

    impl Refusal {
        fn answer(&self) -> Option<Value> {
            self.answer_text()
                .map(|t| serde_json::from_str(&t).expect("an answer is JSON"))
        }
    }

    #[test]
    fn text_that_is_not_json_is_a_parse_error_with_a_null_id() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for text in [
            "not json",
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":NaN}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":Infinity}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":1e309}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping""#,
            &deep,
        ] {
            let answer = refused(text).answer().unwrap();
            assert_eq!(answer["id"], Value::Null, "{text}");
            assert_eq!(answer["error"]["code"], PARSE_ERROR, "{text}");
            assert!(answer.as_object().unwrap().contains_key("id"));
        }
        let bad_utf8 = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}";
        assert!(matches!(parse_message(bad_utf8), Err(Refusal::Parse(_))));
    }

    #[test]
    fn json_of_the_wrong_shape_is_an_invalid_request_with_its_id() {
        let r = refused(r#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#);
        let answer = r.answer().unwrap();
        assert_eq!(answer["id"], 7);
        assert_eq!(answer["error"]["code"], INVALID_REQUEST);
        assert_eq!(
            refused(r#"{"id":"a","foo":1}"#).answer().unwrap()["id"],
            "a"
        );
        let batch = refused(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
        assert!(
            batch.answer_text().unwrap().contains("batches"),
            "{batch:?}"
        );
        assert_eq!(refused("42").answer().unwrap()["id"], Value::Null);
        assert_eq!(
            refused(r#"{"jsonrpc":"2.0","method":"x/y","params":5}"#),
            Refusal::Ignore
        );
    }

    #[test]
    fn the_id_is_read_from_a_cut_or_broken_message() {
        assert_eq!(
            readable_id(br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"a":"xxxx"#),
            Some(json!(42))
        );
        assert_eq!(readable_id(br#"{"id":"abc","x":NaN}"#), Some(json!("abc")));
        assert_eq!(readable_id(br#"{"method":"x","params":{"id":3}}"#), None);
        assert_eq!(readable_id(br#"{"id":null}"#), None);
        assert_eq!(readable_id(b"garbage"), None);
    }
}
