//! Meta's Graph API, as the WhatsApp Cloud API uses it: send a message
//! (`POST /{phone-number-id}/messages`), mark one read with a typing
//! indicator, and fetch a media file (`GET /{media-id}`, then its URL).
//! Every request carries the app's access token as a bearer token.

use std::time::Duration;

use serde_json::{Value, json};

/// Meta refused to deliver free text: the contact wrote last more than 24
/// hours ago, so only an approved template may start the conversation again.
pub const OUTSIDE_WINDOW: i64 = 131_047;

/// The Graph API at one base URL (`[whatsapp] graph_url`, version included).
#[derive(Debug, Clone)]
pub struct Graph {
    http: reqwest::Client,
    base: String,
}

/// A Graph API request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// No answer, or not one we could read.
    #[error("the Graph API could not be reached: {0}")]
    Http(#[from] reqwest::Error),
    /// Meta answered with an error.
    #[error("the Graph API refused ({status}): {message} (code {code})")]
    Refused { status: u16, code: i64, message: String },
    /// A media file larger than we take.
    #[error("the media file is over {0} bytes")]
    TooLarge(usize),
}

impl GraphError {
    /// Meta's error code, when it gave one.
    #[must_use]
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl Graph {
    /// # Errors
    /// The HTTP client cannot be built (no TLS roots).
    pub fn new(base: &str, timeout: Duration) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // Meta answers itself; a redirect would carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned() })
    }

    async fn post(&self, token: &str, path: &str, body: &Value) -> Result<Value, GraphError> {
        let response =
            self.http.post(format!("{}/{path}", self.base)).bearer_auth(token).json(body).send().await?;
        answer(response).await
    }

    /// Sends `text` to `to` from number `phone_number_id`: Meta's id of the message.
    ///
    /// # Errors
    /// Meta refused it (e.g. [`OUTSIDE_WINDOW`]) or could not be reached.
    pub async fn send_text(
        &self,
        token: &str,
        phone_number_id: &str,
        to: &str,
        text: &str,
    ) -> Result<String, GraphError> {
        let body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": false, "body": text},
        });
        let sent = self.post(token, &format!("{phone_number_id}/messages"), &body).await?;
        Ok(sent["messages"][0]["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Sends the approved template `name` in `language` to `to`: Meta's id of the message.
    ///
    /// # Errors
    /// Meta refused it (an unknown or unapproved template) or could not be reached.
    pub async fn send_template(
        &self,
        token: &str,
        phone_number_id: &str,
        to: &str,
        (name, language): (&str, &str),
    ) -> Result<String, GraphError> {
        let body = json!({
            "messaging_product": "whatsapp",
            "to": to,
            "type": "template",
            "template": {"name": name, "language": {"code": language}},
        });
        let sent = self.post(token, &format!("{phone_number_id}/messages"), &body).await?;
        Ok(sent["messages"][0]["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Marks the contact's message `message_id` read and shows them the
    /// typing indicator while the answer is written.
    ///
    /// # Errors
    /// Meta refused it or could not be reached.
    pub async fn read_and_typing(
        &self,
        token: &str,
        phone_number_id: &str,
        message_id: &str,
    ) -> Result<(), GraphError> {
        let body = json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
            "typing_indicator": {"type": "text"},
        });
        self.post(token, &format!("{phone_number_id}/messages"), &body).await.map(drop)
    }

    /// Media file `media_id`, at most `max` bytes: its bytes and MIME type.
    ///
    /// # Errors
    /// Meta refused it, could not be reached, or the file is over `max`.
    pub async fn media(
        &self,
        token: &str,
        media_id: &str,
        max: usize,
    ) -> Result<(Vec<u8>, String), GraphError> {
        let response = self.http.get(format!("{}/{media_id}", self.base)).bearer_auth(token).send().await?;
        let about = answer(response).await?;
        let url = about["url"].as_str().unwrap_or_default();
        let mime = about["mime_type"].as_str().unwrap_or_default().to_owned();
        let mut response = self.http.get(url).bearer_auth(token).send().await?;
        if !response.status().is_success() {
            return Err(refused(response.status().as_u16(), &Value::Null));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if bytes.len() + chunk.len() > max {
                return Err(GraphError::TooLarge(max));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((bytes, mime))
    }
}

/// The JSON of a 2xx answer; a Graph error otherwise.
async fn answer(response: reqwest::Response) -> Result<Value, GraphError> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() { Ok(body) } else { Err(refused(status.as_u16(), &body)) }
}

fn refused(status: u16, body: &Value) -> GraphError {
    let error = &body["error"];
    GraphError::Refused {
        status,
        code: error["code"].as_i64().unwrap_or(0),
        message: error["message"].as_str().unwrap_or("no reason given").chars().take(300).collect(),
    }
}
