//! Completes the generated OpenAPI document where the route annotations cannot say it all:
//! the error answers every operation may give, and path templates in OpenAPI's syntax.
//!
//! Every operation may answer the one error body (`ErrorBody`) with `400` (a malformed id,
//! path, parameter or body), `401` (missing, expired or revoked credentials), `403`, `404`
//! (what the caller may not read is not found), `429` (rate limits) and `503`
//! (`storage_unavailable`); operations that take a body or change something also `409`, `413`,
//! `415` and `422`. Listing them once here keeps the document true for every route (the
//! schema-driven API fuzz, `scripts/api-fuzz.sh`, checks each answer against it) without
//! repeating them in every annotation.

use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// Error statuses any operation may answer.
const EVERY_OPERATION: [(&str, &str); 6] = [
    ("400", "Malformed id, path, parameter or body"),
    ("401", "Missing, expired or revoked credentials"),
    ("403", "Not allowed"),
    ("404", "Not found, or not readable by the caller"),
    ("429", "Rate limited"),
    ("503", "Storage unavailable"),
];

/// Error statuses of operations that take a body or change state.
const MUTATIONS: [(&str, &str); 4] = [
    ("409", "Conflicts with the current state"),
    ("413", "Body too large"),
    ("415", "Unsupported content type"),
    ("422", "Well-formed but unacceptable"),
];

/// Adds the shared error answers to every operation and rewrites axum's wildcard path
/// parameters (`{*path}`) to OpenAPI's `{path}`.
pub fn complete(openapi: &mut OpenApi) {
    let paths = std::mem::take(&mut openapi.paths.paths);
    for (template, mut item) in paths {
        let operations: [(HttpMethod, &mut Option<Operation>); 5] = [
            (HttpMethod::Get, &mut item.get),
            (HttpMethod::Post, &mut item.post),
            (HttpMethod::Put, &mut item.put),
            (HttpMethod::Patch, &mut item.patch),
            (HttpMethod::Delete, &mut item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            let extra: &[(&str, &str)] = if method == HttpMethod::Get {
                &[]
            } else {
                &MUTATIONS
            };
            for (status, description) in EVERY_OPERATION.iter().chain(extra) {
                operation
                    .responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| error_response(description));
            }
        }
        openapi
            .paths
            .paths
            .insert(template.replace("{*", "{"), item);
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_the_error_answers_and_wildcards_are_renamed() {
        let mut openapi: OpenApi = serde_json::from_value(serde_json::json!({
            "openapi": "3.1.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/files/{*path}": {
                    "get": {"responses": {"200": {"description": "ok"}}},
                    "put": {"responses": {"201": {"description": "created"}, "409": {"description": "own"}}}
                }
            }
        }))
        .unwrap();
        complete(&mut openapi);
        let document = serde_json::to_value(&openapi).unwrap();
        let item = &document["paths"]["/files/{path}"];
        assert!(document["paths"].get("/files/{*path}").is_none());
        assert_eq!(
            item["get"]["responses"]["404"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
        assert!(item["get"]["responses"].get("422").is_none());
        assert!(item["put"]["responses"].get("422").is_some());
        // What a route documents itself is kept.
        assert_eq!(item["put"]["responses"]["409"]["description"], "own");
    }
}
