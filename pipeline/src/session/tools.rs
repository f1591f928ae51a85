//! Tools the agent can call: tools defined on the agent ([`Tool`]; HTTP
//! tools, whose arguments are checked against their JSON schema before
//! the request is made, with the `tools` feature), and the built-ins
//! `end_call`, `transfer_to_human`, `send_dtmf` and `escalate_to_human`,
//! which the session and its transport carry out.

use std::pin::Pin;
use std::time::Duration;
#[cfg(feature = "tools")]
use std::time::Instant;

use serde_json::{Value, json};
#[cfg(feature = "tools")]
use voxgate_guarded_http::Guarded;

use crate::providers::{ToolCall, ToolSpec};

/// Name of the built-in tool that ends the call.
pub const END_CALL: &str = "end_call";
/// Name of the built-in tool that hands the caller to a human.
pub const TRANSFER: &str = "transfer_to_human";
/// Name of the built-in tool that presses keys on the phone keypad.
pub const SEND_DTMF: &str = "send_dtmf";
/// Name of the built-in tool that hands a text conversation to the human desk.
pub const ESCALATE: &str = "escalate_to_human";

/// The longest tool result handed back to the model.
#[cfg(feature = "tools")]
const MAX_RESULT_CHARS: usize = 4000;

/// A tool defined on an agent.
pub trait Tool: Send + Sync + std::fmt::Debug {
    /// What the model is told about it.
    fn spec(&self) -> &ToolSpec;
    /// Runs the call: what the model should read (the result, or why it
    /// failed) and whether it succeeded.
    fn run<'a>(&'a self, call: &'a ToolCall) -> Pin<Box<dyn Future<Output = ToolResult> + Send + 'a>>;
}

/// A tool definition was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The arguments schema is not a valid JSON schema.
    #[error("tool {name}: invalid JSON schema: {message}")]
    Schema { name: String, message: String },
    /// A name the built-ins use, or not `[a-zA-Z0-9_-]{1,64}`.
    #[error("tool {name}: invalid or reserved name")]
    Name { name: String },
}

/// An HTTP tool: the model's arguments are POSTed as JSON to `url`; the
/// response body goes back to the model. Tenants choose the URL, so the
/// request goes through the guarded client ([`voxgate_guarded_http`]):
/// public addresses only unless the operator allows private ones, no
/// redirects, no proxy, at most 64 KiB of the answer read.
#[cfg(feature = "tools")]
#[derive(Clone)]
pub struct HttpTool {
    spec: ToolSpec,
    url: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    schema: Value,
    http: Guarded,
}

#[cfg(feature = "tools")]
impl std::fmt::Debug for HttpTool {
    // Header values are often credentials: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTool")
            .field("name", &self.spec.name)
            .field("url", &self.url)
            .field("headers", &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tools")]
impl Tool for HttpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn run<'a>(&'a self, call: &'a ToolCall) -> Pin<Box<dyn Future<Output = ToolResult> + Send + 'a>> {
        Box::pin(HttpTool::run(self, call))
    }
}

#[cfg(feature = "tools")]
impl HttpTool {
    /// A tool named `name` whose arguments follow `schema`.
    ///
    /// # Errors
    /// A reserved or malformed name, or a schema that does not compile.
    pub fn new(
        name: &str,
        description: &str,
        schema: Value,
        url: &str,
        headers: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<Self, ToolError> {
        let valid_name = (1..=64).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name || [END_CALL, TRANSFER, SEND_DTMF, ESCALATE].contains(&name) {
            return Err(ToolError::Name { name: name.to_owned() });
        }
        jsonschema::validator_for(&schema)
            .map_err(|e| ToolError::Schema { name: name.to_owned(), message: e.to_string() })?;
        let spec = ToolSpec {
            name: name.to_owned(),
            description: description.to_owned(),
            parameters: schema.to_string(),
        };
        let http = voxgate_guarded_http::shared(false);
        Ok(Self { spec, url: url.to_owned(), headers, timeout, schema, http })
    }

    /// The tool, sending through `http` (by default the public-only client).
    #[must_use]
    pub fn through(self, http: Guarded) -> Self {
        Self { http, ..self }
    }

    /// What the model is told about it.
    #[must_use]
    pub fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    /// Runs the call: checks the arguments, POSTs them, returns what the
    /// model should read (the response, or why it failed) and whether it
    /// succeeded.
    pub async fn run(&self, call: &ToolCall) -> ToolResult {
        let started = Instant::now();
        let (content, ok) = match self.check(&call.arguments) {
            Err(problem) => (json!({ "error": problem }).to_string(), false),
            Ok(args) => self.post(&args).await,
        };
        ToolResult { content, ok, elapsed: started.elapsed() }
    }

    /// Parses the arguments and checks them against the schema.
    fn check(&self, arguments: &str) -> Result<Value, String> {
        let args: Value = serde_json::from_str(if arguments.trim().is_empty() { "{}" } else { arguments })
            .map_err(|e| format!("arguments are not JSON: {e}"))?;
        // Compiled at construction; cannot fail here.
        let validator = jsonschema::validator_for(&self.schema).map_err(|e| e.to_string())?;
        let problems: Vec<String> = validator.iter_errors(&args).map(|e| e.to_string()).collect();
        if problems.is_empty() {
            Ok(args)
        } else {
            Err(format!("invalid arguments: {}", problems.join("; ")))
        }
    }

    async fn post(&self, args: &Value) -> (String, bool) {
        let mut request = self.http.post(&self.url).timeout(self.timeout).json(args);
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        match self.http.send(request).await {
            Err(e) if e.is_timeout() => (json!({ "error": "the tool timed out" }).to_string(), false),
            Err(e) => (json!({ "error": format!("the tool could not be reached: {e}") }).to_string(), false),
            Ok(response) => {
                let status = response.status;
                let body: String = response.text().chars().take(MAX_RESULT_CHARS).collect();
                if status.is_success() {
                    (body, true)
                } else {
                    (
                        json!({ "error": format!("the tool answered {status}"), "body": body }).to_string(),
                        false,
                    )
                }
            }
        }
    }
}

/// What a tool call gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    /// For the model.
    pub content: String,
    /// Whether the tool did its job.
    pub ok: bool,
    /// How long it took.
    pub elapsed: Duration,
}

/// The built-in `end_call` tool's spec.
#[must_use]
pub fn end_call_spec() -> ToolSpec {
    ToolSpec {
        name: END_CALL.to_owned(),
        description: "End the phone call. Use it after saying goodbye, when the caller is done.".to_owned(),
        parameters: json!({"type": "object", "properties": {"reason": {"type": "string"}}}).to_string(),
    }
}

/// The built-in `transfer_to_human` tool's spec; a warm transfer asks for
/// the summary the colleague hears first.
#[must_use]
pub fn transfer_spec(warm: bool) -> ToolSpec {
    let (description, parameters) = if warm {
        (
            "Transfer the caller to a human colleague, when they ask for a person or you cannot help. \
             Tell the caller to hold. Your colleague first hears your summary.",
            json!({
                "type": "object",
                "properties": {"summary": {"type": "string", "description":
                    "One or two sentences for your colleague: who is calling, and what they need."}},
                "required": ["summary"],
            }),
        )
    } else {
        (
            "Transfer the caller to a human colleague, when they ask for a person or you cannot help.",
            json!({"type": "object", "properties": {"reason": {"type": "string"}}}),
        )
    };
    ToolSpec {
        name: TRANSFER.to_owned(),
        description: description.to_owned(),
        parameters: parameters.to_string(),
    }
}

/// The summary a `transfer_to_human` call gives (its first 600 characters), if any.
#[must_use]
pub fn transfer_summary(call: &ToolCall) -> Option<String> {
    let args: Value = serde_json::from_str(&call.arguments).ok()?;
    let summary: String = args["summary"].as_str()?.trim().chars().take(600).collect();
    (!summary.is_empty()).then_some(summary)
}

/// The built-in `escalate_to_human` tool's spec.
#[must_use]
pub fn escalate_spec() -> ToolSpec {
    ToolSpec {
        name: ESCALATE.to_owned(),
        description: "Hand this conversation to a person of the team, when the customer asks for \
                      a person or you cannot help. Tell the customer a colleague will reply here."
            .to_owned(),
        parameters: json!({"type": "object", "properties": {"reason": {"type": "string"}}}).to_string(),
    }
}

/// The built-in `send_dtmf` tool's spec.
#[must_use]
pub fn send_dtmf_spec() -> ToolSpec {
    ToolSpec {
        name: SEND_DTMF.to_owned(),
        description: "Press keys on the phone keypad, e.g. to choose an option in a phone menu.".to_owned(),
        parameters: json!({
            "type": "object",
            "properties": {"digits": {"type": "string", "pattern": "^[0-9*#A-D]{1,32}$",
                                      "description": "The keys to press, in order, e.g. \"1\" or \"1234#\"."}},
            "required": ["digits"],
        })
        .to_string(),
    }
}

/// The keys a `send_dtmf` call asks for, or why they cannot be pressed.
///
/// # Errors
/// Arguments that are not `{"digits": "<1 to 32 of 0-9 * # A-D>"}`.
pub fn dtmf_digits(call: &ToolCall) -> Result<String, String> {
    let args: Value =
        serde_json::from_str(&call.arguments).map_err(|e| format!("arguments are not JSON: {e}"))?;
    let digits = args["digits"].as_str().ok_or("no \"digits\" string")?.to_ascii_uppercase();
    let valid = (1..=32).contains(&digits.len()) && digits.chars().all(|c| "0123456789*#ABCD".contains(c));
    if valid { Ok(digits) } else { Err(format!("{digits:?} are not 1 to 32 keypad keys")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_digits_are_keypad_keys_only() {
        let call = |args: &str| ToolCall { id: "1".into(), name: SEND_DTMF.into(), arguments: args.into() };
        assert_eq!(dtmf_digits(&call(r#"{"digits": "12#*a"}"#)), Ok("12#*A".to_owned()));
        for bad in [r#"{"digits": ""}"#, r#"{"digits": "1 2"}"#, r#"{"digits": 5}"#, "{}", "nope"] {
            assert!(dtmf_digits(&call(bad)).is_err(), "{bad}");
        }
        assert!(dtmf_digits(&call(&format!(r#"{{"digits": "{}"}}"#, "1".repeat(33)))).is_err());
    }

    #[test]
    fn a_transfers_summary_is_read_from_its_arguments() {
        let call = |args: &str| ToolCall { id: "1".into(), name: TRANSFER.into(), arguments: args.into() };
        assert_eq!(
            transfer_summary(&call(r#"{"summary": " Ann wants a refund. "}"#)).as_deref(),
            Some("Ann wants a refund.")
        );
        for none in [r#"{"summary": "  "}"#, r#"{"reason": "x"}"#, "{}", "", r#"{"summary": 3}"#] {
            assert_eq!(transfer_summary(&call(none)), None, "{none}");
        }
        let long = format!(r#"{{"summary": "{}"}}"#, "a".repeat(700));
        assert_eq!(transfer_summary(&call(&long)).map(|s| s.len()), Some(600));
        assert!(transfer_spec(true).parameters.contains("summary"));
        assert!(!transfer_spec(false).parameters.contains("summary"));
    }

    #[cfg(feature = "tools")]
    fn tool() -> HttpTool {
        let schema = json!({
            "type": "object",
            "properties": {"date": {"type": "string"}, "people": {"type": "integer", "minimum": 1}},
            "required": ["date", "people"],
            "additionalProperties": false
        });
        HttpTool::new(
            "book_table",
            "Books a table",
            schema,
            "http://127.0.0.1:9/",
            vec![],
            Duration::from_secs(1),
        )
        .expect("valid")
    }

    #[test]
    #[cfg(feature = "tools")]
    fn arguments_are_checked_against_the_schema() {
        let t = tool();
        assert!(t.check(r#"{"date":"friday","people":2}"#).is_ok());
        let e = t.check(r#"{"date":"friday","people":0}"#).expect_err("minimum");
        assert!(e.contains("invalid arguments"), "{e}");
        assert!(t.check(r#"{"date":"friday"}"#).is_err(), "required");
        assert!(t.check(r#"{"date":"friday","people":2,"x":1}"#).is_err(), "additional");
        assert!(t.check("not json").expect_err("json").contains("not JSON"));
    }

    #[test]
    #[cfg(feature = "tools")]
    fn reserved_names_and_bad_schemas_are_refused() {
        let ok = json!({"type": "object"});
        let new = |name: &str, schema: Value| {
            HttpTool::new(name, "", schema, "http://x/", vec![], Duration::from_secs(1))
        };
        assert!(matches!(new(END_CALL, ok.clone()), Err(ToolError::Name { .. })));
        assert!(matches!(new(SEND_DTMF, ok.clone()), Err(ToolError::Name { .. })));
        assert!(matches!(new(ESCALATE, ok.clone()), Err(ToolError::Name { .. })));
        assert!(matches!(new("has space", ok.clone()), Err(ToolError::Name { .. })));
        assert!(matches!(new("t", json!({"type": 12})), Err(ToolError::Schema { .. })));
    }

    #[test]
    #[cfg(feature = "tools")]
    fn header_values_never_show_in_debug_output() {
        let t = HttpTool::new(
            "crm",
            "",
            json!({"type": "object"}),
            "http://x/",
            vec![("Authorization".into(), "Bearer hunter2".into())],
            Duration::from_secs(1),
        )
        .expect("valid");
        let shown = format!("{t:?}");
        assert!(shown.contains("Authorization") && !shown.contains("hunter2"), "{shown}");
    }
}
