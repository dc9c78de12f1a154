//! The headers of every download (`GET /files/{id}`, streamed or through a presigned URL, and
//! the local backend's `GET /storage/{key}`): an attachment with a name that cannot break the
//! header, `nosniff`, a sandboxing `Content-Security-Policy`, and a content type a browser
//! would never run. Files of a public project must never become live pages of this origin.
//! Also the conditional and range parts of a streamed answer (`If-None-Match`, `206`).

use axum::http::{HeaderMap, StatusCode, header};

/// `Content-Security-Policy` of downloads: the bytes never run as a document, even if a
/// browser renders them.
const DOWNLOAD_CSP: &str = "default-src 'none'; sandbox";

/// The file name of a storage key (its last segment).
pub fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// The `Content-Type` a download answers: the stored one, except for types a browser would
/// run or render as a document (HTML, XML, SVG, scripts...), and missing or malformed ones,
/// which become `application/octet-stream`.
#[must_use]
pub fn download_content_type(stored: Option<&str>) -> String {
    const OCTET_STREAM: &str = "application/octet-stream";
    const ACTIVE: &[&str] = &[
        "text/html",
        "application/xhtml+xml",
        "text/xml",
        "application/xml",
        "text/xsl",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "text/ecmascript",
        "application/ecmascript",
        "multipart/x-mixed-replace",
    ];
    let Some(stored) = stored else {
        return OCTET_STREAM.to_owned();
    };
    let essence = stored
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let well_formed = essence.split_once('/').is_some_and(|(kind, subtype)| {
        !kind.is_empty() && !subtype.is_empty() && !subtype.contains('/')
    }) && stored
        .bytes()
        .all(|byte| byte.is_ascii_graphic() || byte == b' ');
    if !well_formed || ACTIVE.contains(&essence.as_str()) || essence.ends_with("+xml") {
        return OCTET_STREAM.to_owned();
    }
    stored.to_owned()
}

/// `attachment; filename="<name>"` with an ASCII-only name where quotes, backslashes, `%`,
/// control and non-ASCII characters are `_`; plus `filename*=UTF-8''<percent-encoded>`
/// (RFC 5987/6266) when the real name differs. Nothing in `name` can break the header.
#[must_use]
pub fn content_disposition(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let name = if name.trim().is_empty() {
        "download".to_owned()
    } else {
        name
    };
    let fallback: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() || c == ' ') && !matches!(c, '"' | '\\' | '%') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut value = format!("attachment; filename=\"{fallback}\"");
    if fallback != name {
        value.push_str("; filename*=UTF-8''");
        for byte in name.bytes() {
            // RFC 5987 attr-char; everything else percent-encoded.
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                value.push(char::from(byte));
            } else {
                value.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    value
}

/// The headers every download answers with, whatever the route (`GET /files/{id}`, the local
/// backend's presigned `GET /storage/{key}`): an attachment, never sniffed, never active.
pub fn download_headers(
    builder: axum::http::response::Builder,
    key: &str,
) -> axum::http::response::Builder {
    builder
        .header(
            header::CONTENT_DISPOSITION,
            content_disposition(file_name(key)),
        )
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, DOWNLOAD_CSP)
}

/// Whether `If-None-Match` names `etag` (or is `*`).
pub(super) fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|candidates| {
            candidates
                .split(',')
                .map(str::trim)
                .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
        })
}

/// The status and length headers of a whole object (`200`) or of the range served (`206`).
pub(super) fn with_range(
    builder: axum::http::response::Builder,
    range: Option<(u64, u64)>,
    size: u64,
) -> axum::http::response::Builder {
    match range {
        Some((start, end)) => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_LENGTH, end - start + 1)
            .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")),
        None => builder
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_name_is_quoted_as_is() {
        assert_eq!(
            content_disposition("page.html"),
            "attachment; filename=\"page.html\""
        );
    }

    #[test]
    fn quotes_control_characters_and_non_ascii_cannot_break_the_header() {
        for name in [
            "a\"; filename=evil.exe",
            "line\r\nSet-Cookie: x=1",
            "tab\there\u{0}",
            "back\\slash%22.html",
            "r\u{e9}sum\u{e9} \u{2028}\u{1f600}.txt",
            "",
            "   ",
        ] {
            let value = content_disposition(name);
            let header = axum::http::HeaderValue::from_str(&value).unwrap();
            assert!(header.to_str().is_ok(), "{value}");
            assert!(value.starts_with("attachment; filename=\""), "{value}");
            assert!(
                !value.chars().any(|c| c.is_control() || !c.is_ascii()),
                "{value}"
            );
            // Exactly two quotes: the quoted name cannot end early.
            assert_eq!(value.matches('"').count(), 2, "{value}");
        }
        assert_eq!(
            content_disposition("r\u{e9}sum\u{e9}.txt"),
            "attachment; filename=\"r_sum_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
        );
        assert_eq!(
            content_disposition("a\"b"),
            "attachment; filename=\"a_b\"; filename*=UTF-8''a%22b"
        );
        assert_eq!(content_disposition(""), "attachment; filename=\"download\"");
    }

    #[test]
    fn active_content_types_are_served_inert() {
        for active in [
            "text/html",
            "TEXT/HTML; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
            "application/xml",
            "text/javascript",
            "not a type",
            "text/plain\u{7f}",
        ] {
            assert_eq!(
                download_content_type(Some(active)),
                "application/octet-stream",
                "{active}"
            );
        }
        assert_eq!(download_content_type(None), "application/octet-stream");
        for passive in ["application/json", "text/plain; charset=utf-8", "image/png"] {
            assert_eq!(download_content_type(Some(passive)), passive);
        }
    }

    #[test]
    fn the_file_name_is_the_last_segment_of_the_key() {
        assert_eq!(file_name("p/v1/dir/page.html"), "page.html");
        assert_eq!(file_name("page.html"), "page.html");
    }
}
