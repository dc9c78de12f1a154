//! `GET /docs`: the API reference, rendered on the server from the OpenAPI document the app
//! serves at `/openapi.json` (no script, nothing loaded from elsewhere).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use super::UiState;

/// One operation of the reference.
#[derive(Debug, Serialize)]
struct Operation {
    anchor: String,
    method: String,
    path: String,
    summary: String,
    description: String,
    parameters: Vec<Value>,
    request_body: Vec<String>,
    responses: Vec<(String, String)>,
}

/// The operations of an OpenAPI document grouped by tag, tags sorted.
fn operations(openapi: &Value) -> Vec<(String, Vec<Operation>)> {
    let mut groups: std::collections::BTreeMap<String, Vec<Operation>> = Default::default();
    let Some(paths) = openapi["paths"].as_object() else {
        return Vec::new();
    };
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for method in ["get", "post", "put", "patch", "delete", "head"] {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let tag = operation["tags"][0].as_str().unwrap_or("other").to_owned();
            let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
            let mut responses: Vec<(String, String)> = operation["responses"]
                .as_object()
                .map(|responses| {
                    responses
                        .iter()
                        .map(|(code, response)| (code.clone(), text(&response["description"])))
                        .collect()
                })
                .unwrap_or_default();
            responses.sort();
            groups.entry(tag).or_default().push(Operation {
                anchor: format!("{method}-{}", path.replace(['/', '{', '}', '*'], "-")),
                method: method.to_uppercase(),
                path: path.clone(),
                summary: text(&operation["summary"]),
                description: text(&operation["description"]),
                parameters: operation["parameters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                request_body: operation["requestBody"]["content"]
                    .as_object()
                    .map(|content| content.keys().cloned().collect())
                    .unwrap_or_default(),
                responses,
            });
        }
    }
    groups.into_iter().collect()
}

/// `GET /docs`: the reference page.
pub async fn get_docs(State(state): State<UiState>) -> Response {
    let openapi = &state.inner.openapi;
    state.render(
        StatusCode::OK,
        "docs.html",
        serde_json::json!({ "frame": serde_json::json!({ "user": None::<String>, "csrf": "" }), "title": openapi["info"]["title"], "version": openapi["info"]["version"], "description": openapi["info"]["description"], "groups": operations(openapi) }),
    )
}
