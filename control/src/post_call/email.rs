//! The summary email to a visitor, sent over SMTP with `lettre` (a
//! well-kept client: STARTTLS and TLS through rustls, AUTH, pooling).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use crate::config::{SmtpSecurity, SmtpSettings};

/// The body used when the agent sets no template of its own.
pub const DEFAULT_TEMPLATE: &str = "Hello,\n\nThank you for talking with {{agent}}. Here is a summary of your \
conversation:\n\n{{summary}}\n\nThe conversation:\n{{transcript}}\n";

/// Why an email was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmailError {
    /// `[smtp] host` is empty.
    #[error("no SMTP server is configured ([smtp] host)")]
    NotConfigured,
    /// An address does not parse.
    #[error("{what} address {address:?} is not valid")]
    Address { what: &'static str, address: String },
    /// The message could not be built.
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
    /// The SMTP server could not be reached or refused the message.
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// Sends mail through the configured SMTP server.
#[derive(Clone)]
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("configured", &self.transport.is_some()).finish()
    }
}

impl Mailer {
    /// A mailer for `settings`; one that sends nothing when no host is set.
    ///
    /// # Errors
    /// The host does not make a TLS server name.
    pub fn new(settings: &SmtpSettings) -> Result<Self, EmailError> {
        if settings.host.trim().is_empty() {
            return Ok(Self { transport: None, from: settings.from.clone() });
        }
        let host = settings.host.trim();
        let builder = match settings.security {
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
        };
        let mut builder = builder.port(settings.port).timeout(Some(Duration::from_secs(20)));
        if !settings.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                settings.username.clone(),
                settings.password.expose().to_owned(),
            ));
        }
        Ok(Self { transport: Some(builder.build()), from: settings.from.clone() })
    }

    /// Sends `body` (plain text) to `to`. `message_id` stays the same on a
    /// retry, so a mail client shows a repeat once.
    ///
    /// # Errors
    /// No server is configured, an address is invalid, or the server refuses.
    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        body: String,
        message_id: &str,
    ) -> Result<(), EmailError> {
        let transport = self.transport.as_ref().ok_or(EmailError::NotConfigured)?;
        let from = self
            .from
            .parse()
            .map_err(|_| EmailError::Address { what: "sender", address: self.from.clone() })?;
        let to = to.parse().map_err(|_| EmailError::Address { what: "recipient", address: to.to_owned() })?;
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{message_id}>")))
            .header(ContentType::TEXT_PLAIN)
            .body(body)?;
        transport.send(message).await?;
        Ok(())
    }
}

/// `template` with `{{agent}}`, `{{summary}}` and `{{transcript}}` filled in.
#[must_use]
pub fn render(template: &str, agent: &str, summary: &str, transcript: &str) -> String {
    let template = if template.trim().is_empty() { DEFAULT_TEMPLATE } else { template };
    template.replace("{{agent}}", agent).replace("{{summary}}", summary).replace("{{transcript}}", transcript)
}

/// The first email address the caller gave in `lines` (their words):
/// typed (`ann@example.com`) or spoken (`ann at example dot com`).
#[must_use]
pub fn address_in<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<String> {
    for line in lines {
        let spoken = line.to_lowercase().replace(" at ", "@").replace(" dot ", ".");
        for text in [line.to_owned(), spoken] {
            for word in text.split(|c: char| c.is_whitespace() || ",;:<>()\"'!?".contains(c)) {
                let word = word.trim_end_matches('.');
                if is_address(word) {
                    return Some(word.to_lowercase());
                }
            }
        }
    }
    None
}

/// A plain `local@domain.tld` address.
#[must_use]
pub fn is_address(word: &str) -> bool {
    let Some((local, domain)) = word.split_once('@') else { return false };
    let local_ok =
        !local.is_empty() && local.chars().all(|c| c.is_ascii_alphanumeric() || "._%+-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_found_typed_or_spoken() {
        assert_eq!(
            address_in(["It's Ann.Lee+bread@Example.com, thanks!"]).as_deref(),
            Some("ann.lee+bread@example.com")
        );
        assert_eq!(
            address_in(["hi", "my email is ann at example dot com."]).as_deref(),
            Some("ann@example.com")
        );
        assert_eq!(address_in(["meet me at noon", "a@b", "x@y.c0m"]), None);
    }

    #[test]
    fn the_template_is_filled_and_an_empty_one_is_the_default() {
        let body = render("{{agent}}: {{summary}}", "Sunrise", "Asked the price.", "");
        assert_eq!(body, "Sunrise: Asked the price.");
        assert!(render(" ", "Sunrise", "S", "T").contains("Thank you for talking with Sunrise"));
    }
}
