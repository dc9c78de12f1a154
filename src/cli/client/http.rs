//! The small HTTP layer of the client commands: the server's base URL ([`ServerUrl`]), one
//! `reqwest` client with the bearer credential ([`ApiClient`]), and the translation of every
//! non-2xx answer into an [`ApiFailure`] carrying the server's `reason` and `code`.
//!
//! `http://` and `https://` (rustls, with the platform's certificate verifier) are spoken;
//! the stored credential only ever goes to the server it was issued by.

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use url::Url;

use super::CredentialSource;

/// How long to wait for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a response may stay silent (between two reads) before the request fails.
const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest error body read from a failing answer.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// How often a job is polled.
const JOB_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long a job is waited for before giving up (the job goes on on the server).
const JOB_WAIT_LIMIT: Duration = Duration::from_secs(30 * 60);

/// A validated base URL of a Trove server (`http[s]://host:port[/prefix]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl(Url);

impl ServerUrl {
    /// Parses a server URL; `host:port` without a scheme means `http://host:port`.
    ///
    /// # Errors
    /// When it is not an `http://` URL, or it carries credentials, a query or a fragment.
    pub fn parse(value: &str) -> anyhow::Result<Self> {
        let value = value.trim();
        let with_scheme = if value.contains("://") {
            value.to_owned()
        } else {
            format!("http://{value}")
        };
        let mut url = Url::parse(&with_scheme)
            .map_err(|error| anyhow::anyhow!("invalid server URL {value:?}: {error}"))?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                anyhow::bail!("invalid server URL {value:?}: scheme {other} is not http or https")
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            anyhow::bail!(
                "the server URL must not carry credentials; use trove login or TROVE_TOKEN"
            );
        }
        if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
            anyhow::bail!("invalid server URL {value:?}: no query or fragment allowed");
        }
        // One spelling per server, so a stored login is recognised: no trailing slash.
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&path);
        Ok(Self(url))
    }

    /// The URL of `segments` under the server, each segment percent-encoded (a `/` inside a
    /// segment becomes `%2F`).
    #[must_use]
    pub fn join(&self, segments: &[&str]) -> Url {
        let mut url = self.0.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}

/// A non-2xx answer of the server, with its error body's `reason` and `code`.
#[derive(Debug, thiserror::Error)]
#[error("server answered {status}: {reason} (code {code}){hint}")]
pub struct ApiFailure {
    /// The HTTP status.
    pub status: StatusCode,
    /// The server's human sentence.
    pub reason: String,
    /// The server's machine code (`not_found`, ...).
    pub code: String,
    /// What the user may do about it (empty when nothing obvious).
    pub hint: &'static str,
}

/// A request that got no answer (connection refused, timeout, broken connection): exit
/// status 4.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportFailure(pub String);

/// The HTTP client of one command: a server and an optional bearer credential.
pub struct ApiClient {
    http: reqwest::Client,
    server: ServerUrl,
    credential: Option<String>,
    source: CredentialSource,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credential itself.
        f.debug_struct("ApiClient")
            .field("server", &self.server.to_string())
            .field("credential", &self.source)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client of `server` sending `credential` as a bearer token.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        server: ServerUrl,
        credential: Option<String>,
        source: CredentialSource,
    ) -> anyhow::Result<Self> {
        // Redirects are followed (presigned S3 URLs); reqwest drops the Authorization header
        // when a redirect leaves the host.
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("trove-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            server,
            credential,
            source,
        })
    }

    /// The server this client talks to.
    #[must_use]
    pub fn server(&self) -> &ServerUrl {
        &self.server
    }

    /// The URL of `segments` (percent-encoded) on the server.
    #[must_use]
    pub fn url(&self, segments: &[&str]) -> Url {
        self.server.join(segments)
    }

    /// A request with the credential attached (as a sensitive header).
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.credential {
            Some(credential) => request.bearer_auth(credential),
            None => request,
        }
    }

    /// Sends `request`: a 2xx answer is returned, anything else becomes an [`ApiFailure`];
    /// a connection failure a one-line message naming the server.
    ///
    /// # Errors
    /// On a transport failure or a non-2xx answer.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response = request
            .send()
            .await
            .map_err(|error| self.transport_error(&error))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.failure(response).await.into())
    }

    /// `method` on `segments` with an optional JSON body, answering the JSON body (`null`
    /// for an empty one).
    ///
    /// # Errors
    /// On a transport failure, a non-2xx answer or a body that is not JSON.
    pub async fn json(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.request(method, self.url(segments));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.send(request).await?;
        read_json(response).await
    }

    /// `GET` on `segments`, answering the JSON body.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn get_json(&self, segments: &[&str]) -> anyhow::Result<Value> {
        self.json(Method::GET, segments, None).await
    }

    /// Polls a job (`{job_id, ...}` as `202` answers give it) until it ends; answers the
    /// final job, or an error naming the job's error when it failed.
    ///
    /// # Errors
    /// When the job fails, cannot be polled, or runs longer than half an hour.
    pub async fn wait_for_job(&self, accepted: &Value) -> anyhow::Result<Value> {
        let job_id = accepted["job_id"]
            .as_str()
            .context("the server's answer names no job_id")?;
        let started = std::time::Instant::now();
        loop {
            let job = self.get_json(&["jobs", job_id]).await?;
            match job["status"].as_str() {
                Some("SUCCESS") => return Ok(job),
                Some("FAILURE") => anyhow::bail!(
                    "job {job_id} failed: {}",
                    job["error"].as_str().unwrap_or("no error given")
                ),
                status => {
                    if started.elapsed() > JOB_WAIT_LIMIT {
                        anyhow::bail!(
                            "job {job_id} is still {} after {} minutes; follow it with GET /jobs/{job_id}",
                            status.unwrap_or("unknown"),
                            JOB_WAIT_LIMIT.as_secs() / 60
                        );
                    }
                }
            }
            tokio::time::sleep(JOB_POLL_INTERVAL).await;
        }
    }

    /// The one-line [`TransportFailure`] of a request that got no answer.
    #[must_use]
    pub fn transport_error(&self, error: &reqwest::Error) -> anyhow::Error {
        let server = &self.server;
        let cause = root_cause(error);
        let message = if error.is_connect() {
            format!("cannot connect to the Trove server at {server}: {cause}")
        } else if error.is_timeout() {
            format!("the Trove server at {server} did not answer in time: {cause}")
        } else {
            format!("request to the Trove server at {server} failed: {cause}")
        };
        TransportFailure(message).into()
    }

    async fn failure(&self, response: Response) -> ApiFailure {
        let status = response.status();
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            let room = MAX_ERROR_BODY.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
        let (reason, code) = match serde_json::from_slice::<Value>(&body) {
            Ok(value) if value["code"].is_string() => (
                value["reason"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .to_owned(),
                value["code"].as_str().unwrap_or_default().to_owned(),
            ),
            _ => (
                "the answer is not a Trove error body (is this a Trove server?)".to_owned(),
                "unknown".to_owned(),
            ),
        };
        let hint = match (status, self.source) {
            (StatusCode::UNAUTHORIZED, CredentialSource::None) => {
                "; log in with `trove login` or set TROVE_TOKEN"
            }
            (StatusCode::UNAUTHORIZED, CredentialSource::File) => {
                "; the stored login may have expired: run `trove login` again"
            }
            _ => "",
        };
        ApiFailure {
            status,
            reason: one_line(&reason),
            code: one_line(&code),
            hint,
        }
    }
}

/// Reads a JSON answer (`null` when the body is empty).
///
/// # Errors
/// When the body cannot be read or is not JSON.
pub async fn read_json(response: Response) -> anyhow::Result<Value> {
    let bytes = response.bytes().await.map_err(|error| {
        TransportFailure(format!(
            "cannot read the server's answer: {}",
            root_cause(&error)
        ))
    })?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).context("the server's answer is not JSON")
}

/// The innermost cause of an error, on one line (`connection refused`, ...).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    one_line(&current.to_string())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_have_one_spelling() {
        for spelling in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "127.0.0.1:8080",
        ] {
            assert_eq!(
                ServerUrl::parse(spelling).unwrap().to_string(),
                "http://127.0.0.1:8080"
            );
        }
        assert_eq!(
            ServerUrl::parse("http://proxy/trove/").unwrap().to_string(),
            "http://proxy/trove"
        );
    }

    #[test]
    fn unusable_server_urls_are_refused() {
        assert_eq!(
            ServerUrl::parse("https://trove.example/")
                .unwrap()
                .to_string(),
            "https://trove.example"
        );
        for url in [
            "ftp://trove.example",
            "http://user:secret@trove.example",
            "http://trove.example/?q=1",
        ] {
            assert!(ServerUrl::parse(url).is_err(), "{url}");
        }
    }

    #[test]
    fn segments_are_percent_encoded() {
        let server = ServerUrl::parse("http://h:1/prefix").unwrap();
        assert_eq!(
            server.join(&["files", "p:dir/a b%.txt@v1"]).as_str(),
            "http://h:1/prefix/files/p:dir%2Fa%20b%25.txt@v1"
        );
        let root = ServerUrl::parse("http://h:1").unwrap();
        assert_eq!(
            root.join(&["projects", "p", "version", "v", "files", "a?", "b#"])
                .as_str(),
            "http://h:1/projects/p/version/v/files/a%3F/b%23"
        );
    }
}
