//! HubSpot-style CRM sync: find the contact by email (or create it), then
//! add a note with the call's analytics, associated with the contact. Later
//! conversations with the same email find the same contact.
//!
//! Speaks HubSpot's CRM v3 API: `POST /crm/v3/objects/contacts/search`,
//! `POST /crm/v3/objects/contacts`, `POST /crm/v3/objects/notes` with the
//! note-to-contact association (HubSpot-defined type 202), bearer token auth.

use serde_json::{Value, json};

/// HubSpot's association type id for a note on a contact.
const NOTE_TO_CONTACT: u32 = 202;

/// A CRM call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrmError {
    /// No answer (connection, timeout).
    #[error("CRM unreachable: {0}")]
    Unreachable(String),
    /// The CRM answered with an error status.
    #[error("CRM answered {status} to {what}: {message}")]
    Status { what: &'static str, status: u16, message: String },
    /// The answer lacks what the API promises.
    #[error("CRM's answer to {what} has no {field}")]
    Malformed { what: &'static str, field: &'static str },
}

/// A HubSpot-compatible CRM at `base_url`.
#[derive(Debug, Clone)]
pub struct Crm<'a> {
    pub http: &'a voxgate_guarded_http::Guarded,
    pub base_url: &'a str,
    pub token: &'a str,
}

impl Crm<'_> {
    async fn post(&self, what: &'static str, path: &str, body: &Value) -> Result<Value, CrmError> {
        let url = format!("{}{path}", self.base_url.trim_end_matches('/'));
        let request = self.http.post(&url).bearer_auth(self.token).json(body);
        let r =
            self.http.send(request).await.map_err(|e| CrmError::Unreachable(e.without_url().to_string()))?;
        let status = r.status.as_u16();
        let text = r.text();
        if !(200..300).contains(&status) {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(CrmError::Status { what, status, message });
        }
        serde_json::from_str(&text).map_err(|_| CrmError::Malformed { what, field: "JSON body" })
    }

    /// The id of the contact with `email`, if there is one.
    ///
    /// # Errors
    /// The CRM fails or answers something else.
    pub async fn find_contact(&self, email: &str) -> Result<Option<String>, CrmError> {
        let body = json!({
            "filterGroups": [{ "filters": [{ "propertyName": "email", "operator": "EQ", "value": email }] }],
            "properties": ["email"],
            "limit": 1,
        });
        let found = self.post("the contact search", "/crm/v3/objects/contacts/search", &body).await?;
        let results = found["results"]
            .as_array()
            .ok_or(CrmError::Malformed { what: "the contact search", field: "results" })?;
        Ok(results.first().and_then(id_of))
    }

    /// The contact with `email`: found, or made.
    ///
    /// # Errors
    /// The CRM fails.
    pub async fn contact(&self, email: &str) -> Result<String, CrmError> {
        if let Some(id) = self.find_contact(email).await? {
            return Ok(id);
        }
        let body = json!({ "properties": { "email": email } });
        match self.post("creating the contact", "/crm/v3/objects/contacts", &body).await {
            Ok(made) => id_of(&made).ok_or(CrmError::Malformed { what: "creating the contact", field: "id" }),
            // Made meanwhile (another call with the same email): use that one.
            Err(CrmError::Status { status: 409, .. }) => {
                self.find_contact(email).await?.ok_or(CrmError::Malformed {
                    what: "the contact search",
                    field: "the contact it said exists",
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Adds a note with `body` (HTML allowed) to `contact`, at `at_ms`; its id.
    ///
    /// # Errors
    /// The CRM fails.
    pub async fn add_note(&self, contact: &str, body: &str, at_ms: i64) -> Result<String, CrmError> {
        let note = json!({
            "properties": { "hs_timestamp": at_ms.to_string(), "hs_note_body": body },
            "associations": [{
                "to": { "id": contact },
                "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": NOTE_TO_CONTACT }],
            }],
        });
        let made = self.post("adding the note", "/crm/v3/objects/notes", &note).await?;
        id_of(&made).ok_or(CrmError::Malformed { what: "adding the note", field: "id" })
    }
}

/// An object's `id` (HubSpot sends strings; numbers are taken too).
fn id_of(v: &Value) -> Option<String> {
    match &v["id"] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A note's text for a call's analytics.
#[must_use]
pub fn note_body(agent: &str, call_id: &str, a: &super::analytics::Analytics) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<p><strong>Conversation with {}</strong> (call {})</p><p>Intent: {}<br>Category: {} ({})<br>\
         Sentiment: {:.2}</p><p>{}</p>",
        escape(agent),
        escape(call_id),
        escape(&a.intent),
        escape(&a.category),
        escape(&a.justification),
        a.sentiment,
        escape(&a.summary),
    )
}
