//! Machine accounts: `POST·GET /api-keys`, `PATCH·DELETE /api-keys/{id}` (SPEC §7: list,
//! disable, delete). A key acts for its creator inside its scopes, capped at each scope's
//! access (`read`: read and download; `write`: also write).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::RequireAccount;
use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::store::ApiKeyRecord;
use crate::catalog::api_keys;
use crate::error::{ApiJson, ApiPath, ApiResult};
use crate::permissions::{GrantAccess, GrantTarget, MachineGrant};

/// One scope as the API writes it: `{project | namespace, access: read | write}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeView {
    /// A project id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// A namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `read` (viewer) or `write` (writer).
    #[schema(value_type = String)]
    pub access: GrantAccess,
}

impl ScopeView {
    fn into_grant(self) -> crate::catalog::Result<MachineGrant> {
        api_keys::scope_grant(self.project, self.namespace, self.access)
    }

    fn from_grant(grant: &MachineGrant) -> Self {
        let (project, namespace) = match &grant.target {
            GrantTarget::Project(project) => (Some(project.clone()), None),
            GrantTarget::Namespace(namespace) => (None, Some(namespace.clone())),
        };
        Self {
            project,
            namespace,
            access: grant.access,
        }
    }
}

/// `POST /api-keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// Machine name (principal `machine:<name>`).
    pub name: String,
    /// What the key may reach.
    pub scopes: Vec<ScopeView>,
    /// Lifetime in days (default 90, at most 3650).
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// An API key as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// Key id.
    pub id: String,
    /// Machine name.
    pub name: String,
    /// `machine:<name>`.
    pub principal: String,
    /// Scopes.
    pub scopes: Vec<ScopeView>,
    /// Creator.
    pub created_by: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// A disabled key is refused (`401 api_key_invalid`).
    pub disabled: bool,
    /// The secret bearer credential: only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<&ApiKeyRecord> for ApiKeyView {
    fn from(record: &ApiKeyRecord) -> Self {
        Self {
            id: record.id.clone(),
            name: record.name.clone(),
            principal: format!("machine:{}", record.name),
            scopes: record.scopes.iter().map(ScopeView::from_grant).collect(),
            created_by: record.created_by.clone(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            disabled: record.disabled,
            key: None,
        }
    }
}

/// Creates an API key (admins for anything, owners for what they own); the secret `key` is
/// shown in this answer only.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", request_body = NewApiKey,
    responses(
        (status = 201, description = "Created; `key` is shown once", body = ApiKeyView),
        (status = 403, description = "Not an owner of a scope", body = crate::error::ErrorBody),
        (status = 404, description = "A scope does not exist or the caller cannot see it", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid scopes or lifetime", body = crate::error::ErrorBody),
    ))]
pub async fn post_api_key(
    State(state): State<AppState>,
    RequireAccount(principal): RequireAccount,
    ApiJson(body): ApiJson<NewApiKey>,
) -> ApiResult<(StatusCode, ApiJson<ApiKeyView>)> {
    let event = AuditEvent::new("api_key.create")
        .by(&principal)
        .resource(format!("machine:{}", body.name))
        .detail("scopes", scopes_detail(&body.scopes))
        .detail("expires_in_days", body.expires_in_days);
    // Explicit begin/finish: the key id is known only afterwards (the secret is never recorded).
    let pending = state.audit.begin(event).await?;
    let result = create_key(&state, &principal, body).await;
    match &result {
        Ok(created) => {
            state
                .audit
                .finish(
                    pending,
                    Outcome::Ok,
                    201,
                    serde_json::json!({"key_id": created.record.id}),
                )
                .await;
        }
        Err(_) => state.audit.finish_result(pending, &result, 201).await,
    }
    let created = result?;
    let mut view = ApiKeyView::from(&created.record);
    view.key = Some(created.key);
    Ok((StatusCode::CREATED, ApiJson(view)))
}

/// The scopes of a new key as its audit event records them.
fn scopes_detail(scopes: &[ScopeView]) -> serde_json::Value {
    serde_json::to_value(
        scopes
            .iter()
            .map(|scope| {
                serde_json::json!({
                    "project": scope.project,
                    "namespace": scope.namespace,
                    "access": format!("{:?}", scope.access).to_lowercase(),
                })
            })
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default()
}

/// Creates the key `body` asks for (its scopes checked by the auth service).
async fn create_key(
    state: &AppState,
    principal: &crate::auth::Principal,
    body: NewApiKey,
) -> ApiResult<crate::auth::api_keys::CreatedApiKey> {
    let scopes = body
        .scopes
        .into_iter()
        .map(ScopeView::into_grant)
        .collect::<Result<Vec<_>, _>>()?;
    let (name, expires_in_days) = (&body.name, body.expires_in_days);
    Ok(api_keys::create_api_key(state, principal, name, scopes, expires_in_days).await?)
}

/// `GET /api-keys` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Keys (all for admins, else the caller's own).
    pub results: Vec<ApiKeyView>,
    /// How many.
    pub count: usize,
}

/// The caller's API keys (every key for admins).
#[utoipa::path(get, path = "/api-keys", tag = "api-keys",
    responses((status = 200, description = "Keys", body = ApiKeyList)))]
pub async fn get_api_keys(
    State(state): State<AppState>,
    RequireAccount(principal): RequireAccount,
) -> ApiResult<ApiJson<ApiKeyList>> {
    let results: Vec<ApiKeyView> = state
        .auth
        .list_api_keys(&principal)
        .await?
        .iter()
        .map(ApiKeyView::from)
        .collect();
    Ok(ApiJson(ApiKeyList {
        count: results.len(),
        results,
    }))
}

/// Deletes an API key (admins, or its creator); it stops working at once on this replica.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such key", body = crate::error::ErrorBody),
    ))]
pub async fn delete_api_key(
    State(state): State<AppState>,
    RequireAccount(principal): RequireAccount,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let event = AuditEvent::new("api_key.delete")
        .by(&principal)
        .resource(format!("api_key:{id}"));
    state
        .audit
        .mutation(event, 204, async {
            state.auth.delete_api_key(&principal, &id).await?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}

/// `PATCH /api-keys/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyPatch {
    /// Disable (true) or re-enable (false).
    pub disabled: bool,
}

/// Disables or re-enables an API key (admins, or its creator); a disabled key is refused
/// (`401 api_key_invalid`) at once on this replica.
#[utoipa::path(patch, path = "/api-keys/{id}", tag = "api-keys", request_body = ApiKeyPatch,
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 200, description = "The key", body = ApiKeyView),
        (status = 404, description = "No such key", body = crate::error::ErrorBody),
    ))]
pub async fn patch_api_key(
    State(state): State<AppState>,
    RequireAccount(principal): RequireAccount,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<ApiKeyPatch>,
) -> ApiResult<ApiJson<ApiKeyView>> {
    let action = if patch.disabled {
        "api_key.disable"
    } else {
        "api_key.enable"
    };
    let event = AuditEvent::new(action)
        .by(&principal)
        .resource(format!("api_key:{id}"));
    state
        .audit
        .mutation(event, 200, async {
            let record = state
                .auth
                .set_api_key_disabled(&principal, &id, patch.disabled)
                .await?;
            Ok(ApiJson(ApiKeyView::from(&record)))
        })
        .await
}

/// This module's routes, merged into the API's router by `api::api_router`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_api_key, get_api_keys))
        .routes(routes!(delete_api_key, patch_api_key))
}
