//! A minimal HTTP(S) GET for fetching an identity provider's JWKS (hyper + rustls with the
//! system's root certificates; both already part of the build through the AWS SDK).

use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// GETs `url` and returns its body, failing on a non-2xx status, after `timeout`, or when
/// the body exceeds `max_bytes`. Errors are plain sentences (they never contain secrets).
pub async fn get_bytes(url: &str, timeout: Duration, max_bytes: usize) -> Result<Vec<u8>, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|error| format!("invalid url: {error}"))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|error| format!("cannot load root certificates: {error}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let request = hyper::Request::get(uri)
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|error| error.to_string())?;
    let fetch = async {
        let response = client
            .request(request)
            .await
            .map_err(|error| format!("request failed: {error}"))?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let body = Limited::new(response.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|error| format!("cannot read the body: {error}"))?;
        Ok(body.to_bytes().to_vec())
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| "timed out".to_owned())?
}
