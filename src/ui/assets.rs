//! The static assets of the web interface, compiled into the binary: one stylesheet and one
//! small plain script (no CDN, no build step).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The stylesheet.
pub const CSS: &str = include_str!("assets/trove.css");
/// The script: search-as-you-type, uploads with progress, confirmations.
pub const JS: &str = include_str!("assets/trove.js");

/// `GET /ui/assets/{name}`: an embedded asset, cached for an hour.
pub async fn get_asset(Path(name): Path<String>) -> Response {
    let (content_type, body) = match name.as_str() {
        "trove.css" => ("text/css; charset=utf-8", CSS),
        "trove.js" => ("text/javascript; charset=utf-8", JS),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_javascript_shipped_stays_under_50_kb() {
        assert!(JS.len() < 50 * 1024, "trove.js is {} bytes", JS.len());
        assert!(
            !JS.contains("http://") && !JS.contains("https://"),
            "no remote loads"
        );
    }
}
