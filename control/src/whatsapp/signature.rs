//! Meta signs each webhook it sends for an app: `X-Hub-Signature-256:
//! sha256=<hex>`, the HMAC-SHA256 of the raw body with the app's secret.

use aws_lc_rs::hmac;

/// Whether `header` (the `X-Hub-Signature-256` value) signs `body` with
/// `app_secret`. The comparison takes the same time whatever the guess.
#[must_use]
pub fn signed(app_secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_tag) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else { return false };
    let Ok(tag) = hex::decode(hex_tag) else { return false };
    let key = hmac::Key::new(hmac::HMAC_SHA256, app_secret.as_bytes());
    hmac::verify(&key, body, &tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        format!("sha256={}", hex::encode(hmac::sign(&key, body).as_ref()))
    }

    #[test]
    fn only_the_apps_own_signature_of_this_very_body_passes() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = sign("app-secret", body);
        assert!(signed("app-secret", body, Some(&header)));
        assert!(!signed("another-secret", body, Some(&header)));
        assert!(!signed(
            "app-secret",
            br#"{"object":"whatsapp_business_account","entry":[{}]}"#,
            Some(&header)
        ));
        assert!(!signed("app-secret", body, None));
        assert!(!signed("app-secret", body, Some(header.trim_start_matches("sha256="))));
        assert!(!signed("app-secret", body, Some("sha256=zz")));
        assert!(!signed("app-secret", body, Some("sha256=")));
    }
}
