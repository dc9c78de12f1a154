//! `GET`/`PUT /storage/{key}`: the local backend's presigned URLs, served by Trove itself.
//!
//! A request is accepted only with a valid, unexpired signature for its method and key
//! ([`crate::storage::presign::LocalPresigner::verify`]); the signature is the credential, so
//! these routes take no other authentication. On S3 clients talk to the bucket directly and
//! these routes answer `404`.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::TryStreamExt as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::catalog::uploads::{self, PresignedPut};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorCode};
use crate::storage::presign::{LocalPresigner, VerifiedPresign};
use crate::storage::{ByteRange, PresignMethod};

/// Answer of a successful presigned upload.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PresignedPutOutcome {
    /// Stored size in bytes.
    pub size: u64,
    /// md5 of the body (hex).
    pub md5sum: String,
    /// sha256 of the body (hex).
    pub sha256: String,
    /// ETag of the stored object.
    pub etag: String,
}

fn verify(
    state: &AppState,
    method: PresignMethod,
    key: &str,
    query: &HashMap<String, String>,
) -> Result<VerifiedPresign, ApiError> {
    let presigner: &LocalPresigner = state
        .presigner
        .as_ref()
        .ok_or_else(|| ApiError::not_found("no such route"))?;
    Ok(presigner.verify(method, key, query)?)
}

/// Parses `Content-MD5` (base64 of the 16 raw bytes).
pub fn parse_content_md5(headers: &HeaderMap) -> Result<Option<[u8; 16]>, ApiError> {
    let Some(value) = headers.get("content-md5") else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            ErrorCode::BadRequest,
            "Content-MD5 must be the base64 of 16 bytes",
        )
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.as_bytes())
        .map_err(|_| invalid())?;
    let digest: [u8; 16] = decoded.try_into().map_err(|_| invalid())?;
    Ok(Some(digest))
}

/// `X-Checksum-Sha256`: 64 hexadecimal digits, lower-cased (`400 bad_request` otherwise).
pub fn parse_sha256(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("x-checksum-sha256") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if text.len() != 64 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "X-Checksum-Sha256 must be 64 hexadecimal digits",
        ));
    }
    Ok(Some(text))
}

/// Parses a single `Range: bytes=a-b` / `bytes=a-` / `bytes=-n` header (suffix ranges need the
/// size, so they are resolved by the caller with `size`).
pub fn parse_range(headers: &HeaderMap, size: Option<u64>) -> Result<Option<ByteRange>, ApiError> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            ErrorCode::RangeNotSatisfiable,
            "unsupported or malformed Range",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?;
    let spec = text.strip_prefix("bytes=").ok_or_else(invalid)?;
    if spec.contains(',') {
        return Err(invalid());
    }
    let (start, end) = spec.split_once('-').ok_or_else(invalid)?;
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() {
        let suffix: u64 = end.parse().map_err(|_| invalid())?;
        let size = size.ok_or_else(invalid)?;
        if suffix == 0 {
            return Err(invalid());
        }
        return Ok(Some(ByteRange {
            start: size.saturating_sub(suffix),
            end: None,
        }));
    }
    let start: u64 = start.parse().map_err(|_| invalid())?;
    let end: Option<u64> = if end.is_empty() {
        None
    } else {
        Some(end.parse().map_err(|_| invalid())?)
    };
    if end.is_some_and(|end| end < start) {
        return Err(invalid());
    }
    Ok(Some(ByteRange { start, end }))
}

/// Download through a presigned URL of the local backend (supports a single `Range`).
#[utoipa::path(get, path = "/storage/{*key}", tag = "storage",
    params(("key" = String, Path, description = "storage key")),
    responses(
        (status = 200, description = "The object"),
        (status = 206, description = "A range of the object"),
        (status = 403, description = "Missing, expired or invalid signature", body = crate::error::ErrorBody),
    ))]
pub async fn get_presigned(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    verify(&state, PresignMethod::Get, &key, &query)?;
    // The same streaming answer as a download (Range, ETag, If-None-Match).
    super::files::stream_object(&state, &key, &headers).await
}

/// A header's value, when it is text.
pub(super) fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The md5 a presigned PUT is checked against: the one the URL binds, else the one sent
/// (`Content-MD5`); `400 digest_mismatch` when both are there and differ.
fn content_md5(
    verified: &VerifiedPresign,
    headers: &HeaderMap,
) -> Result<Option<[u8; 16]>, ApiError> {
    let sent = parse_content_md5(headers)?;
    if let (Some(bound), Some(sent)) = (verified.content_md5, sent)
        && bound != sent
    {
        return Err(ApiError::new(
            ErrorCode::DigestMismatch,
            "Content-MD5 differs from the one this URL was signed for",
        ));
    }
    Ok(verified.content_md5.or(sent))
}

/// Upload through a presigned URL of the local backend; the body is streamed to storage and
/// checked against `Content-MD5` when sent (and against the md5 the URL binds, if any).
#[utoipa::path(put, path = "/storage/{*key}", tag = "storage",
    params(("key" = String, Path, description = "storage key")),
    responses(
        (status = 200, description = "Stored", body = PresignedPutOutcome),
        (status = 400, description = "Content-MD5 mismatch", body = crate::error::ErrorBody),
        (status = 403, description = "Missing, expired or invalid signature", body = crate::error::ErrorBody),
    ))]
pub async fn put_presigned(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
    ApiQuery(query): ApiQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let verified = verify(&state, PresignMethod::Put, &key, &query)?;
    // A presigned PUT only ever fills an announced file of an upload still in progress, by
    // someone who may still write there: checked now, not only when the URL was made.
    let path = uploads::presigned_upload_path(&state, &key).await?;
    let put = PresignedPut {
        key: &key,
        content_type: header_text(&headers, header::CONTENT_TYPE).map(str::to_owned),
        content_md5: content_md5(&verified, &headers)?,
        content_length: header_text(&headers, header::CONTENT_LENGTH)
            .and_then(|value| value.parse::<u64>().ok()),
    };
    let body = Box::pin(body.into_data_stream().map_err(std::io::Error::other));
    let outcome = uploads::store_presigned(&state, path, put, body).await?;
    Ok(ApiJson(PresignedPutOutcome {
        size: outcome.meta.size,
        md5sum: outcome.md5_hex,
        sha256: outcome.sha256_hex,
        etag: outcome.meta.etag,
    }))
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_presigned, put_presigned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, value.parse().unwrap());
        map
    }

    #[test]
    fn ranges_parse_or_are_refused() {
        let parse = |value: &str| parse_range(&headers("range", value), Some(100));
        assert_eq!(
            parse("bytes=0-9").unwrap(),
            Some(ByteRange {
                start: 0,
                end: Some(9)
            })
        );
        assert_eq!(
            parse("bytes=10-").unwrap(),
            Some(ByteRange {
                start: 10,
                end: None
            })
        );
        assert_eq!(
            parse("bytes=-10").unwrap(),
            Some(ByteRange {
                start: 90,
                end: None
            })
        );
        for bad in [
            "bytes=9-0",
            "items=0-1",
            "bytes=a-b",
            "bytes=0-1,3-4",
            "bytes=-0",
            "bytes=-",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_range(&HeaderMap::new(), None).unwrap(), None);
    }

    #[test]
    fn content_md5_must_be_base64_of_16_bytes() {
        assert!(
            parse_content_md5(&headers("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="))
                .unwrap()
                .is_some()
        );
        assert!(parse_content_md5(&headers("content-md5", "not base64!")).is_err());
        assert!(parse_content_md5(&headers("content-md5", "AAAA")).is_err());
    }
}
