//! Any OpenAI-compatible chat completions endpoint (OpenAI, Ollama, vLLM,
//! llama.cpp's server, ...) through `async-openai`, streaming, with tool calls.
//!
//! The retrieved knowledge goes into the system prompt: large models heed it
//! there. The API key is sent as a bearer token and never logged.

use std::collections::BTreeMap;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{CreateChatCompletionRequest, FinishReason};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    CancellationToken, ChatRequest, LanguageModel, LlmEvent, ProviderError, ProviderName, Role, ToolCall,
};

const NAME: ProviderName = "openai-compatible";

/// Where the endpoint is and which model to ask.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenAiConfig {
    /// Base URL up to and including `/v1`, e.g. `https://api.openai.com/v1`
    /// or `http://127.0.0.1:11434/v1` for Ollama.
    pub base_url: String,
    /// API key; empty for servers that need none.
    pub api_key: String,
    /// Model name, e.g. `gpt-4o-mini` or `llama3.2`.
    pub model: String,
}

impl std::fmt::Debug for OpenAiConfig {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &if self.api_key.is_empty() { "" } else { "<redacted>" })
            .field("model", &self.model)
            .finish()
    }
}

/// The chat provider.
#[derive(Debug, Clone)]
pub struct OpenAiChat {
    client: Client<OpenAIConfig>,
    model: String,
}

impl OpenAiChat {
    /// A client for `config`.
    #[must_use]
    pub fn new(config: &OpenAiConfig) -> Self {
        let c = OpenAIConfig::new()
            .with_api_base(config.base_url.trim_end_matches('/'))
            .with_api_key(&config.api_key);
        Self { client: Client::with_config(c), model: config.model.clone() }
    }

    /// The wire request for `request`.
    fn body(&self, request: &ChatRequest) -> Value {
        let mut messages = Vec::new();
        let mut knowledge_placed = request.knowledge.is_empty();
        let knowledge = || {
            let facts: Vec<String> = request.knowledge.iter().map(|k| format!("- {k}")).collect();
            format!("\n\nKnowledge relevant to the caller's question:\n{}", facts.join("\n"))
        };
        for m in &request.messages {
            let mut message = json!({ "role": m.role.as_str(), "content": m.content });
            if m.role == Role::System && !knowledge_placed {
                message["content"] = Value::String(format!("{}{}", m.content, knowledge()));
                knowledge_placed = true;
            }
            if !m.tool_calls.is_empty() {
                message["tool_calls"] = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                    .collect();
            }
            if let Some(id) = &m.tool_call_id {
                message["tool_call_id"] = Value::String(id.clone());
            }
            messages.push(message);
        }
        if !knowledge_placed {
            messages.insert(0, json!({"role": "system", "content": knowledge().trim_start()}));
        }
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            // The last chunk then carries the tokens used, for billing.
            "stream_options": { "include_usage": true },
        });
        if let Some(format) = &request.response_schema {
            let schema: Value =
                serde_json::from_str(&format.schema).unwrap_or_else(|_| json!({"type": "object"}));
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": { "name": format.name, "schema": schema, "strict": true },
            });
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|t| {
                    let parameters: Value = serde_json::from_str(&t.parameters).unwrap_or_else(|_| json!({"type": "object"}));
                    json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": parameters}})
                })
                .collect();
        }
        body
    }

    async fn run(
        &self,
        request: &ChatRequest,
        cancel: &CancellationToken,
        tx: &mpsc::Sender<Result<LlmEvent, ProviderError>>,
    ) -> Result<(), ProviderError> {
        let wire: CreateChatCompletionRequest = serde_json::from_value(self.body(request)).map_err(|e| {
            ProviderError::Protocol { provider: NAME, message: format!("building the request: {e}") }
        })?;
        let chat = self.client.chat();
        let mut stream = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            s = chat.create_stream(wire) => s.map_err(map_error)?,
        };
        // Tool calls arrive in pieces keyed by index.
        let mut calls: BTreeMap<u32, ToolCall> = BTreeMap::new();
        let mut finished = false;
        let mut usage = None;
        loop {
            let next = tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                next = stream.next() => next,
            };
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(map_error)?;
            if let Some(u) = chunk.usage {
                usage = Some(LlmEvent::Usage {
                    prompt_tokens: u.prompt_tokens,
                    completion_tokens: u.completion_tokens,
                });
            }
            for choice in chunk.choices {
                if let Some(text) = choice.delta.content.filter(|t| !t.is_empty())
                    && tx.send(Ok(LlmEvent::Delta(text))).await.is_err()
                {
                    return Ok(()); // nobody listens any more
                }
                for piece in choice.delta.tool_calls.unwrap_or_default() {
                    let call = calls.entry(piece.index).or_insert_with(|| ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                    if let Some(id) = piece.id {
                        call.id = id;
                    }
                    if let Some(f) = piece.function {
                        call.name.push_str(f.name.as_deref().unwrap_or(""));
                        call.arguments.push_str(f.arguments.as_deref().unwrap_or(""));
                    }
                }
                if choice.finish_reason.is_some() {
                    finished = true;
                    if choice.finish_reason == Some(FinishReason::Length) {
                        tracing::debug!("reply cut at max_tokens");
                    }
                }
            }
        }
        if !finished {
            // The server closed the stream without finishing the reply.
            return Err(ProviderError::Connection { provider: NAME, message: "stream ended early".into() });
        }
        for call in calls.into_values() {
            if tx.send(Ok(LlmEvent::ToolCall(call))).await.is_err() {
                return Ok(());
            }
        }
        if let Some(usage) = usage {
            let _ = tx.send(Ok(usage)).await;
        }
        let _ = tx.send(Ok(LlmEvent::Done)).await;
        Ok(())
    }
}

/// Maps the client's errors to ours, keeping whether a retry may help.
fn map_error(e: OpenAIError) -> ProviderError {
    match e {
        OpenAIError::ApiError(r) => {
            ProviderError::from_status(NAME, r.status_code.as_u16(), r.api_error.message)
        }
        OpenAIError::Reqwest(e) => ProviderError::Connection { provider: NAME, message: e.to_string() },
        OpenAIError::StreamError(e) => ProviderError::Connection { provider: NAME, message: e.to_string() },
        other => ProviderError::Protocol { provider: NAME, message: other.to_string() },
    }
}

impl LanguageModel for OpenAiChat {
    fn name(&self) -> ProviderName {
        NAME
    }

    fn stream(
        &self,
        request: ChatRequest,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<Result<LlmEvent, ProviderError>> {
        let (tx, rx) = mpsc::channel(64);
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.run(&request, &cancel, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }
}
