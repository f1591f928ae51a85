//! What Meta POSTs to a WhatsApp webhook (the `messages` field of a
//! WhatsApp Business Account): messages from contacts, and the statuses of
//! the messages we sent. Fields we do not use are ignored; a message of a
//! kind we do not read keeps its type, so it can be answered politely.

use serde::Deserialize;

/// One webhook delivery: several businesses' changes may be batched.
#[derive(Debug, Deserialize)]
pub struct Notification {
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
pub struct Change {
    pub field: String,
    pub value: serde_json::Value,
}

/// A `messages` change.
#[derive(Debug, Deserialize)]
pub struct MessagesChange {
    pub metadata: Metadata,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub messages: Vec<Inbound>,
    #[serde(default)]
    pub statuses: Vec<Status>,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    /// The business number's id: which agent answers.
    pub phone_number_id: String,
    #[serde(default)]
    pub display_phone_number: String,
}

#[derive(Debug, Deserialize)]
pub struct Contact {
    pub wa_id: String,
    #[serde(default)]
    pub profile: Option<Profile>,
}

#[derive(Debug, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: String,
}

/// A contact's message.
#[derive(Debug, Deserialize)]
pub struct Inbound {
    /// The contact's WhatsApp number.
    pub from: String,
    /// Meta's id (`wamid.…`): the same on every redelivery.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<Text>,
    /// A voice note or audio file.
    #[serde(default)]
    pub audio: Option<Media>,
}

#[derive(Debug, Deserialize)]
pub struct Text {
    pub body: String,
}

#[derive(Debug, Deserialize)]
pub struct Media {
    pub id: String,
    #[serde(default)]
    pub mime_type: String,
}

/// A status of a message we sent.
#[derive(Debug, Deserialize)]
pub struct Status {
    /// Our message's Meta id.
    pub id: String,
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    #[serde(default)]
    pub errors: Vec<StatusError>,
}

#[derive(Debug, Deserialize)]
pub struct StatusError {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub title: String,
}

impl Status {
    /// Why it failed, as Meta said.
    #[must_use]
    pub fn error(&self) -> Option<String> {
        self.errors.first().map(|e| format!("{} ({})", e.title, e.code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_s_messages_change_reads() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages",
          "value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"PN1"},
          "contacts":[{"profile":{"name":"Ann"},"wa_id":"15551234567"}],
          "messages":[{"from":"15551234567","id":"wamid.A","timestamp":"1700000000","type":"text","text":{"body":"Hi"}},
                      {"from":"15551234567","id":"wamid.B","timestamp":"1700000001","type":"audio",
                       "audio":{"id":"MEDIA1","mime_type":"audio/ogg; codecs=opus","voice":true}}],
          "statuses":[{"id":"wamid.C","status":"failed","timestamp":"1","recipient_id":"15551234567",
                       "errors":[{"code":131047,"title":"Re-engagement message"}]}]}}]}]}"#;
        let n: Notification = serde_json::from_str(body).expect("Meta's payload");
        let change: MessagesChange =
            serde_json::from_value(n.entry[0].changes[0].value.clone()).expect("a messages change");
        assert_eq!(change.metadata.phone_number_id, "PN1");
        assert_eq!(change.contacts[0].profile.as_ref().map(|p| p.name.as_str()), Some("Ann"));
        assert_eq!(change.messages[0].text.as_ref().map(|t| t.body.as_str()), Some("Hi"));
        assert_eq!(change.messages[1].audio.as_ref().map(|a| a.id.as_str()), Some("MEDIA1"));
        assert_eq!(change.statuses[0].error().as_deref(), Some("Re-engagement message (131047)"));
    }
}
