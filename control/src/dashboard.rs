//! The operator dashboard: one page and its script, served as they are
//! (`dashboard/`); everything it shows comes from the control API with the
//! operator's login token.

use axum::http::header;
use axum::response::IntoResponse;

/// What the page may load: its own script and styles, recordings from here
/// or a pre-signed S3 URL; it may not be framed.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                      media-src 'self' https: http:; img-src 'self' data:; frame-ancestors 'none'";

/// `GET /dashboard`.
pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("dashboard/index.html"),
    )
}

/// `GET /dashboard/app.js`.
pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        include_str!("dashboard/app.js"),
    )
}
