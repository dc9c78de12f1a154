//! Management pages: a project's permission profile as a form, namespaces, and the admin
//! pages (users and roles, groups, API keys, the sync report and its repair). Like every page
//! they call the API as the session; the API decides who may see and change what.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::UiState;
use super::forward::{ApiAnswer, csrf_refused};
use super::pages::segment;
use super::session::Browser;

/// The profile fields the form edits, in order.
const PROFILE_LISTS: &[&str] = &["owners", "writers", "viewers"];
/// The access rules and their choices.
const PROFILE_RULES: &[&str] = &["read_access", "download_access", "write_access"];
/// The values an access rule takes.
const ACCESS_VALUES: &[&str] = &[
    "owners",
    "writers",
    "viewers",
    "authenticated",
    "public",
    "none",
];

/// The profile field an API validation error is about: the field it names, else the list
/// holding the principal it names (`""` when neither).
fn profile_field(reason: &str, form: Option<&PermissionsForm>) -> &'static str {
    if let Some(field) = PROFILE_LISTS
        .iter()
        .chain(PROFILE_RULES)
        .chain(&["expires", "inherit"])
        .find(|field| reason.contains(*field))
    {
        return field;
    }
    let Some(form) = form else { return "" };
    PROFILE_LISTS
        .iter()
        .find(|field| {
            principals(form.list(field))
                .iter()
                .any(|principal| reason.split_whitespace().any(|word| word == principal))
        })
        .copied()
        .unwrap_or("")
}

/// Principals from a textarea: one per line or comma-separated.
fn principals(text: &str) -> Vec<String> {
    text.split(['\n', ','])
        .map(str::trim)
        .filter(|principal| !principal.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn permissions_page(
    state: &UiState,
    browser: &Browser,
    project: &str,
    status: StatusCode,
    submitted: Option<&PermissionsForm>,
    error: Option<(&str, &str)>,
) -> Response {
    let here = format!("/ui/projects/{}/permissions", segment(project));
    let frame = match state.frame(browser, &here).await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let answer = state
        .get_json(
            browser,
            &format!("/projects/{}/permissions", segment(project)),
        )
        .await;
    if !answer.ok() {
        return state.error_page(browser, Some(&frame), &answer);
    }
    let profile = &answer.body;
    let mut lists = Vec::new();
    for field in PROFILE_LISTS {
        let value = match submitted {
            Some(form) => form.list(field).to_owned(),
            None => profile[field]
                .as_array()
                .map(|values| {
                    values
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default(),
        };
        lists.push(json!({"name": field, "value": value}));
    }
    let mut rules = Vec::new();
    for field in PROFILE_RULES {
        let value = match submitted {
            Some(form) => form.rule(field).to_owned(),
            None => profile[field].as_str().unwrap_or_default().to_owned(),
        };
        rules.push(json!({"name": field, "value": value}));
    }
    let (error_field, error_reason) = error.unwrap_or(("", ""));
    state.render(
        status,
        "permissions.html",
        json!({
            "frame": frame,
            "project_id": project,
            "project_url": format!("/ui/projects/{}", segment(project)),
            "here": here,
            "lists": lists,
            "rules": rules,
            "access_values": ACCESS_VALUES,
            "inherit": submitted.map_or_else(|| profile["inherit"].as_bool().unwrap_or(false), |form| form.inherit.is_some()),
            "error_field": error_field,
            "error_reason": error_reason,
            "saved": status == StatusCode::OK && submitted.is_some(),
        }),
    )
}

/// `GET /ui/projects/{project}/permissions`: the profile as a form (owners and admins).
pub async fn get_permissions(
    State(state): State<UiState>,
    browser: Browser,
    Path(project): Path<String>,
) -> Response {
    permissions_page(&state, &browser, &project, StatusCode::OK, None, None).await
}

/// The profile form.
#[derive(Debug, Deserialize)]
pub struct PermissionsForm {
    csrf: String,
    #[serde(default)]
    owners: String,
    #[serde(default)]
    writers: String,
    #[serde(default)]
    viewers: String,
    #[serde(default)]
    read_access: String,
    #[serde(default)]
    download_access: String,
    #[serde(default)]
    write_access: String,
    inherit: Option<String>,
}

impl PermissionsForm {
    fn list(&self, field: &str) -> &str {
        match field {
            "owners" => &self.owners,
            "writers" => &self.writers,
            _ => &self.viewers,
        }
    }

    fn rule(&self, field: &str) -> &str {
        match field {
            "read_access" => &self.read_access,
            "download_access" => &self.download_access,
            _ => &self.write_access,
        }
    }
}

/// `POST /ui/projects/{project}/permissions`: `PUT /projects/{p}/permissions`; a validation
/// error is shown next to the field it names.
pub async fn post_permissions(
    State(state): State<UiState>,
    browser: Browser,
    Path(project): Path<String>,
    axum::Form(form): axum::Form<PermissionsForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let mut body = json!({"inherit": form.inherit.is_some()});
    for field in PROFILE_LISTS {
        body[*field] = json!(principals(form.list(field)));
    }
    for field in PROFILE_RULES {
        let value = form.rule(field);
        if !value.is_empty() {
            body[*field] = json!(value);
        }
    }
    let answer = state
        .call(
            &browser,
            Method::PUT,
            &format!("/projects/{}/permissions", segment(&project)),
            Some(&body),
        )
        .await;
    if answer.ok() {
        return permissions_page(
            &state,
            &browser,
            &project,
            StatusCode::OK,
            Some(&form),
            None,
        )
        .await;
    }
    if answer.status == StatusCode::NOT_FOUND {
        let frame = state.frame(&browser, "/ui/search").await.ok();
        return state.error_page(&browser, frame.as_ref(), &answer);
    }
    let reason = answer.reason().to_owned();
    permissions_page(
        &state,
        &browser,
        &project,
        answer.status,
        Some(&form),
        Some((profile_field(&reason, Some(&form)), &reason)),
    )
    .await
}

// ------------------------------------------------------------------------ namespaces

/// `GET /ui/namespaces`: the namespaces the caller can see.
pub async fn get_namespaces(State(state): State<UiState>, browser: Browser) -> Response {
    namespaces_page(&state, &browser, StatusCode::OK, None).await
}

async fn namespaces_page(
    state: &UiState,
    browser: &Browser,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let browser = browser.clone();
    let frame = match state.frame(&browser, "/ui/namespaces").await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let answer = state.get_json(&browser, "/namespaces").await;
    if !answer.ok() {
        return state.error_page(&browser, Some(&frame), &answer);
    }
    let namespaces: Vec<Value> = answer.body["results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .map(|namespace| {
                    let name = namespace["name"].as_str().unwrap_or_default();
                    json!({
                        "record": namespace,
                        "url": format!("/ui/namespaces/{}", segment(name)),
                        "projects_url": format!("/ui/search?q=&kind=project&namespace={}", segment(name)),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    state.render(
        status,
        "namespaces.html",
        json!({"frame": frame, "namespaces": namespaces, "error": error}),
    )
}

async fn namespace_page(
    state: &UiState,
    browser: &Browser,
    namespace: &str,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let here = format!("/ui/namespaces/{}", segment(namespace));
    let frame = match state.frame(browser, &here).await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let base = format!("/namespaces/{}", segment(namespace));
    let members_path = format!("{base}/members");
    let (record, mut members) = tokio::join!(
        state.get_json(browser, &base),
        state.get_json(browser, &members_path),
    );
    if !record.ok() {
        return state.error_page(browser, Some(&frame), &record);
    }
    // Only the namespace's own grants can be revoked here.
    let own = format!("namespace:{namespace}");
    if let Some(list) = members.body["members"].as_array_mut() {
        for member in list {
            let revocable = member["grants"]
                .as_array()
                .is_some_and(|grants| grants.iter().any(|grant| grant["source"] == own.as_str()));
            member["revocable"] = json!(revocable);
        }
    }
    state.render(
        status,
        "namespace.html",
        json!({
            "frame": frame,
            "here": here,
            "namespace": record.body,
            "members": if members.ok() { members.body } else { Value::Null },
            "projects_url": format!("/ui/search?q=&kind=project&namespace={}", segment(namespace)),
            "error": error,
        }),
    )
}

/// `GET /ui/namespaces/{namespace}`: a namespace and who can access it, with grant and
/// revoke forms (admins and the namespace's owners; the API decides).
pub async fn get_namespace(
    State(state): State<UiState>,
    browser: Browser,
    Path(namespace): Path<String>,
) -> Response {
    namespace_page(&state, &browser, &namespace, StatusCode::OK, None).await
}

/// The new-namespace form.
#[derive(Debug, Deserialize)]
pub struct NamespaceForm {
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    visibility: String,
    auto_create: Option<String>,
}

/// `POST /ui/namespaces`: `POST /namespaces` (admins).
pub async fn post_namespace(
    State(state): State<UiState>,
    browser: Browser,
    axum::Form(form): axum::Form<NamespaceForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let visibility = if form.visibility == "public" {
        "public"
    } else {
        "private"
    };
    let body = json!({
        "name": form.name.trim(),
        "description": form.description,
        "visibility": visibility,
        "auto_create": form.auto_create.is_some(),
    });
    let answer = state
        .call(&browser, Method::POST, "/namespaces", Some(&body))
        .await;
    if answer.ok() {
        let name = answer.body["name"].as_str().unwrap_or_default();
        return Redirect::to(&format!("/ui/namespaces/{}", segment(name))).into_response();
    }
    namespaces_page(&state, &browser, answer.status, Some(answer.reason())).await
}

/// The namespace grant form.
#[derive(Debug, Deserialize)]
pub struct NamespaceGrantForm {
    csrf: String,
    principal: String,
    #[serde(default)]
    level: String,
}

/// `POST /ui/namespaces/{namespace}/members`: `POST /namespaces/{ns}/members`.
pub async fn post_namespace_member(
    State(state): State<UiState>,
    browser: Browser,
    Path(namespace): Path<String>,
    axum::Form(form): axum::Form<NamespaceGrantForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let answer = state
        .call(
            &browser,
            Method::POST,
            &format!("/namespaces/{}/members", segment(&namespace)),
            Some(&json!({"principal": form.principal.trim(), "level": form.level})),
        )
        .await;
    after_namespace_change(&state, &browser, &namespace, &answer).await
}

/// `POST /ui/namespaces/{namespace}/members/revoke`: `DELETE /namespaces/{ns}/members/{p}`.
pub async fn post_namespace_revoke(
    State(state): State<UiState>,
    browser: Browser,
    Path(namespace): Path<String>,
    axum::Form(form): axum::Form<NamespaceGrantForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let answer = state
        .call(
            &browser,
            Method::DELETE,
            &format!(
                "/namespaces/{}/members/{}",
                segment(&namespace),
                segment(form.principal.trim())
            ),
            None,
        )
        .await;
    after_namespace_change(&state, &browser, &namespace, &answer).await
}

async fn after_namespace_change(
    state: &UiState,
    browser: &Browser,
    namespace: &str,
    answer: &ApiAnswer,
) -> Response {
    if answer.ok() {
        return Redirect::to(&format!("/ui/namespaces/{}", segment(namespace))).into_response();
    }
    namespace_page(
        state,
        browser,
        namespace,
        answer.status,
        Some(answer.reason()),
    )
    .await
}

// ----------------------------------------------------------------------------- admin

async fn admin_page(
    state: &UiState,
    browser: &Browser,
    here: &str,
    api_path: &str,
    template: &str,
    status: StatusCode,
    extra: Value,
) -> Response {
    let frame = match state.frame(browser, here).await {
        Ok(frame) => frame,
        Err(response) => return response,
    };
    let answer = state.get_json(browser, api_path).await;
    if !answer.ok() {
        return state.error_page(browser, Some(&frame), &answer);
    }
    let mut context = json!({"frame": frame, "data": answer.body});
    if let (Some(context), Value::Object(extra)) = (context.as_object_mut(), extra) {
        context.extend(extra);
    }
    state.render(status, template, context)
}

/// After an admin form: back to `here` on success, else the page with the API's reason.
async fn after_admin_change(
    state: &UiState,
    browser: &Browser,
    answer: &ApiAnswer,
    here: &str,
    api_path: &str,
    template: &str,
) -> Response {
    if answer.ok() {
        return Redirect::to(here).into_response();
    }
    admin_page(
        state,
        browser,
        here,
        api_path,
        template,
        answer.status,
        json!({"error": answer.reason()}),
    )
    .await
}

/// `GET /ui/admin/users`: accounts and roles (admins).
pub async fn get_users(State(state): State<UiState>, browser: Browser) -> Response {
    admin_page(
        &state,
        &browser,
        "/ui/admin/users",
        "/users",
        "users.html",
        StatusCode::OK,
        json!({}),
    )
    .await
}

/// The role form of one account.
#[derive(Debug, Deserialize)]
pub struct UserForm {
    csrf: String,
    role: Option<String>,
    disabled: Option<String>,
}

/// `POST /ui/admin/users/{username}`: `PATCH /users/{u}` (role, disabled).
pub async fn post_user(
    State(state): State<UiState>,
    browser: Browser,
    Path(username): Path<String>,
    axum::Form(form): axum::Form<UserForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let mut body = json!({});
    if let Some(role) = form.role.filter(|role| !role.is_empty()) {
        body["role"] = json!(role);
    }
    if let Some(disabled) = form.disabled {
        body["disabled"] = json!(disabled == "true");
    }
    let answer = state
        .call(
            &browser,
            Method::PATCH,
            &format!("/users/{}", segment(&username)),
            Some(&body),
        )
        .await;
    after_admin_change(
        &state,
        &browser,
        &answer,
        "/ui/admin/users",
        "/users",
        "users.html",
    )
    .await
}

/// `GET /ui/admin/groups`: local groups.
pub async fn get_groups(State(state): State<UiState>, browser: Browser) -> Response {
    admin_page(
        &state,
        &browser,
        "/ui/admin/groups",
        "/groups",
        "groups.html",
        StatusCode::OK,
        json!({}),
    )
    .await
}

/// The new-group form.
#[derive(Debug, Deserialize)]
pub struct GroupForm {
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    members: String,
}

/// `POST /ui/admin/groups`: `POST /groups`.
pub async fn post_group(
    State(state): State<UiState>,
    browser: Browser,
    axum::Form(form): axum::Form<GroupForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let body = json!({"name": form.name.trim(), "description": form.description, "members": principals(&form.members)});
    let answer = state
        .call(&browser, Method::POST, "/groups", Some(&body))
        .await;
    after_admin_change(
        &state,
        &browser,
        &answer,
        "/ui/admin/groups",
        "/groups",
        "groups.html",
    )
    .await
}

/// The members form of one group: principals to add and to remove.
#[derive(Debug, Deserialize)]
pub struct GroupMembersForm {
    csrf: String,
    #[serde(default)]
    add: String,
    #[serde(default)]
    remove: String,
}

/// `POST /ui/admin/groups/{group}/members`: `PUT /groups/{group}/members`.
pub async fn post_group_members(
    State(state): State<UiState>,
    browser: Browser,
    axum::extract::Path(group): axum::extract::Path<String>,
    axum::Form(form): axum::Form<GroupMembersForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let body = json!({"add": principals(&form.add), "remove": principals(&form.remove)});
    let answer = state
        .call(
            &browser,
            Method::PUT,
            &format!("/groups/{}/members", super::pages::segment(&group)),
            Some(&body),
        )
        .await;
    after_admin_change(
        &state,
        &browser,
        &answer,
        "/ui/admin/groups",
        "/groups",
        "groups.html",
    )
    .await
}

/// `GET /ui/keys`: the caller's API keys (all of them for admins).
pub async fn get_api_keys(State(state): State<UiState>, browser: Browser) -> Response {
    admin_page(
        &state,
        &browser,
        "/ui/keys",
        "/api-keys",
        "api_keys.html",
        StatusCode::OK,
        json!({}),
    )
    .await
}

/// The new-key form: one project or namespace scope.
#[derive(Debug, Deserialize)]
pub struct ApiKeyForm {
    csrf: String,
    name: String,
    scope_kind: String,
    scope: String,
    access: String,
    #[serde(default)]
    expires_in_days: String,
}

/// `POST /ui/keys`: `POST /api-keys`; the secret is shown on this answer only.
pub async fn post_api_key(
    State(state): State<UiState>,
    browser: Browser,
    axum::Form(form): axum::Form<ApiKeyForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, &form.csrf) {
        return csrf_refused();
    }
    let scope_kind = if form.scope_kind == "namespace" {
        "namespace"
    } else {
        "project"
    };
    let mut body = json!({
        "name": form.name.trim(),
        "scopes": [{scope_kind: form.scope.trim(), "access": form.access}],
    });
    if let Ok(days) = form.expires_in_days.trim().parse::<u32>() {
        body["expires_in_days"] = json!(days);
    }
    let answer = state
        .call(&browser, Method::POST, "/api-keys", Some(&body))
        .await;
    let extra = if answer.ok() {
        json!({"created": answer.body})
    } else {
        json!({"error": answer.reason()})
    };
    let status = if answer.ok() {
        StatusCode::OK
    } else {
        answer.status
    };
    admin_page(
        &state,
        &browser,
        "/ui/keys",
        "/api-keys",
        "api_keys.html",
        status,
        extra,
    )
    .await
}

/// `POST /ui/keys/{id}/delete`: `DELETE /api-keys/{id}`.
pub async fn post_delete_api_key(
    State(state): State<UiState>,
    browser: Browser,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<super::pages::CsrfForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, form.token()) {
        return csrf_refused();
    }
    let answer = state
        .call(
            &browser,
            Method::DELETE,
            &format!("/api-keys/{}", segment(&id)),
            None,
        )
        .await;
    after_admin_change(
        &state,
        &browser,
        &answer,
        "/ui/keys",
        "/api-keys",
        "api_keys.html",
    )
    .await
}

/// `GET /ui/admin/sync`: the global sync report (admins).
pub async fn get_sync(State(state): State<UiState>, browser: Browser) -> Response {
    admin_page(
        &state,
        &browser,
        "/ui/admin/sync",
        "/index/sync",
        "sync.html",
        StatusCode::OK,
        json!({}),
    )
    .await
}

/// `POST /ui/admin/sync`: the sync check with repair.
pub async fn post_sync(
    State(state): State<UiState>,
    browser: Browser,
    axum::Form(form): axum::Form<super::pages::CsrfForm>,
) -> Response {
    if !state.session_csrf_valid(&browser, form.token()) {
        return csrf_refused();
    }
    admin_page(
        &state,
        &browser,
        "/ui/admin/sync",
        "/index/sync?repair=true",
        "sync.html",
        StatusCode::OK,
        json!({"repaired": true}),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_split_on_lines_and_commas() {
        assert_eq!(
            principals("alice\n bob, group:ml\n\n"),
            ["alice", "bob", "group:ml"]
        );
    }

    #[test]
    fn a_validation_error_points_at_the_field_it_names() {
        assert_eq!(
            profile_field("viewers: unknown principal zed", None),
            "viewers"
        );
        assert_eq!(
            profile_field("invalid read_access value", None),
            "read_access"
        );
        assert_eq!(profile_field("something else", None), "");
        let form = PermissionsForm {
            csrf: String::new(),
            owners: "alice".into(),
            writers: String::new(),
            viewers: "bob\nzed".into(),
            read_access: String::new(),
            download_access: String::new(),
            write_access: String::new(),
            inherit: None,
        };
        assert_eq!(
            profile_field("no such principal zed", Some(&form)),
            "viewers"
        );
    }
}
