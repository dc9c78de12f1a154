//! `GET /projects/{p}/version/{v}/files`: a version's files and links. The files' part is
//! the kept rendering of the version's storage listing ([`crate::catalog::file_listing`]),
//! sent as it is; links are decided per caller (a target's id only for those who may read
//! it).

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access::authorize_version;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiPath, ApiResult};
use crate::permissions::Action;

/// Lists a version's files with size, checksums and upload time.
#[utoipa::path(get, path = "/projects/{project}/version/{version}/files", tag = "files",
    params(("project" = String, Path), ("version" = String, Path)),
    responses(
        (status = 200, description = "`{project_id, version, files: [{id, path, size, md5sum, sha256, content_type, uploaded_at}]}`"),
        (status = 404, description = "No such version, or not readable", body = crate::error::ErrorBody),
    ))]
pub async fn get_files(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, version)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let view =
        authorize_version(&app, &principal, &project, &version, Action::ReadMetadata).await?;
    let version = view.record.version;
    let listed = crate::catalog::file_listing::listed_files(&app, &project, &version).await?;
    let links = link_entries(&app, &principal, &project, &version, &listed.links).await?;
    let body = files_answer(listed.files_json, &links, &project, &version)?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::new(body),
    )
        .into_response())
}

/// `{"files":[<files>,<links>],"project_id":…,"version":…}` with the files' JSON as kept (not
/// copied): the bytes `serde_json` writes for the same object.
fn files_answer(
    files_json: bytes::Bytes,
    links: &[Value],
    project: &str,
    version: &str,
) -> ApiResult<ChunksBody> {
    let mut tail = Vec::new();
    for link in links {
        if !files_json.is_empty() || !tail.is_empty() {
            tail.push(b',');
        }
        serde_json::to_writer(&mut tail, link).map_err(ApiError::internal)?;
    }
    tail.extend_from_slice(b"],\"project_id\":");
    serde_json::to_writer(&mut tail, project).map_err(ApiError::internal)?;
    tail.extend_from_slice(b",\"version\":");
    serde_json::to_writer(&mut tail, version).map_err(ApiError::internal)?;
    tail.push(b'}');
    Ok(ChunksBody::new(vec![
        bytes::Bytes::from_static(b"{\"files\":["),
        files_json,
        bytes::Bytes::from(tail),
    ]))
}

/// A response body of chunks already in memory, sent as they are (no copy into one buffer),
/// with its exact length (so the answer has a `Content-Length`).
struct ChunksBody {
    chunks: std::collections::VecDeque<bytes::Bytes>,
    remaining: u64,
}

impl ChunksBody {
    fn new(chunks: Vec<bytes::Bytes>) -> Self {
        let remaining = chunks.iter().map(|chunk| chunk.len() as u64).sum();
        Self {
            chunks: chunks
                .into_iter()
                .filter(|chunk| !chunk.is_empty())
                .collect(),
            remaining,
        }
    }
}

impl http_body::Body for ChunksBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let chunk = self.chunks.pop_front();
        if let Some(chunk) = &chunk {
            self.remaining -= chunk.len() as u64;
        }
        std::task::Poll::Ready(chunk.map(|chunk| Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// The listing's entries of a version's links: the target's id only for those who may read
/// it (a search per link: off the runtime).
async fn link_entries(
    app: &AppState,
    principal: &Principal,
    project: &str,
    version: &str,
    links: &std::sync::Arc<std::collections::BTreeMap<String, Value>>,
) -> ApiResult<Vec<Value>> {
    if links.is_empty() {
        return Ok(Vec::new());
    }
    let linked = {
        let (app, principal, links) = (app.clone(), principal.clone(), links.clone());
        crate::index::off_runtime(move || {
            links
                .iter()
                .map(|(path, link)| {
                    let readable = link
                        .get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|target| {
                            super::hits::link_target_readable(&app, &principal, target)
                        });
                    (path.clone(), link.clone(), readable)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(ApiError::internal)?
    };
    Ok(linked
        .into_iter()
        .map(|(path, link, readable)| link_entry(project, version, &path, link, readable))
        .collect())
}

/// A link as listed: its target's id hidden unless `readable`.
fn link_entry(project: &str, version: &str, path: &str, link: Value, readable: bool) -> Value {
    let link = if readable {
        link
    } else {
        json!({"type": link.get("type").cloned().unwrap_or(Value::Null), "id": Value::Null})
    };
    json!({
        "id": format!("{project}:{path}@{version}"),
        "path": path,
        "link": link,
    })
}

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_files))
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;
    use http_body_util::BodyExt as _;

    use super::*;

    #[tokio::test]
    async fn a_chunks_body_sends_its_chunks_in_order_with_its_exact_length() {
        let body = ChunksBody::new(vec![
            bytes::Bytes::from_static(b"{\"files\":["),
            bytes::Bytes::new(),
            bytes::Bytes::from_static(b"1,2"),
            bytes::Bytes::from_static(b"]}"),
        ]);
        assert_eq!(body.size_hint().exact(), Some(15));
        assert!(!body.is_end_stream());
        let mut body = std::pin::pin!(body);
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            frames.push(data);
            // What is left is announced exactly after each frame.
            let left: usize = 15 - frames.iter().map(bytes::Bytes::len).sum::<usize>();
            assert_eq!(body.size_hint().exact(), Some(left as u64));
        }
        assert_eq!(frames.len(), 3, "the empty chunk is not sent");
        assert_eq!(frames.concat(), b"{\"files\":[1,2]}");
        assert!(body.is_end_stream());
        assert!(ChunksBody::new(Vec::new()).is_end_stream());
    }

    #[tokio::test]
    async fn a_files_answer_is_written_as_serde_json_writes_it() {
        let files = [
            json!({"id": "p:a@v1", "path": "a"}),
            json!({"id": "p:b\"@v1"}),
        ];
        let links = [
            json!({"id": "p:l@v1", "link": {"id": null}, "path": "l"}),
            json!({"id": "p:m@v1", "path": "m\u{e9}"}),
        ];
        for files in [&files[..0], &files[..1], &files[..]] {
            for links in [&links[..0], &links[..1], &links[..]] {
                let files_json = files
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                let body = files_answer(files_json.into(), links, "p\"q", "v1").unwrap();
                let written = body.collect().await.unwrap().to_bytes();
                let all: Vec<Value> = files.iter().chain(links).cloned().collect();
                let expected = json!({"files": all, "project_id": "p\"q", "version": "v1"});
                assert_eq!(written, serde_json::to_vec(&expected).unwrap());
            }
        }
    }
}
