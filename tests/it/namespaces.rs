//! Teams and governance (issue 7) through the real router: namespaces, grants with the rules
//! of a team registry, lifecycle states and stable versions. Every scenario is checked by
//! direct access (records, pushes, downloads) and by search.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use md5::Digest as _;
use serde_json::{Value, json};
use trove::permissions::Role;

use crate::both_backends;
use crate::common::artifacts::{enc, hit_project_ids, wait_job};
use crate::common::{Backend, BackendApp, TestResponse};

/// A registry with an admin and a few accounts.
struct Registry {
    app: BackendApp,
    admin: String,
}

impl Registry {
    async fn new() -> Self {
        Self::on(Backend::Local).await
    }

    async fn on(backend: Backend) -> Self {
        let app = BackendApp::start(backend).await;
        let admin = app.user_token("root", Role::Admin).await;
        Self { app, admin }
    }

    async fn user(&self, name: &str, role: Role) -> String {
        self.app.user_token(name, role).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> TestResponse {
        self.app.bearer(method, path, token, body.as_ref()).await
    }

    /// The status of a call with a body (for the steps that check only that).
    async fn status(&self, method: Method, path: &str, token: &str, body: Value) -> StatusCode {
        self.call(method, path, token, Some(body)).await.status
    }

    async fn namespace(&self, name: &str, visibility: &str, auto_create: bool) {
        self
            .call(
                Method::POST,
                "/namespaces",
                &self.admin,
                Some(json!({"name": name, "description": "team", "visibility": visibility, "auto_create": auto_create})),
            )
            .await.assert_status(StatusCode::CREATED);
    }

    async fn grant(&self, token: &str, on: &str, principal: &str, level: &str) -> TestResponse {
        self.call(
            Method::POST,
            &format!("/{on}/members"),
            token,
            Some(json!({"principal": principal, "level": level})),
        )
        .await
    }

    async fn grant_ok(&self, token: &str, on: &str, principal: &str, level: &str) {
        self.grant(token, on, principal, level)
            .await
            .assert_status(StatusCode::CREATED);
    }

    async fn create_project(&self, token: &str, namespace: &str, project: &str) -> TestResponse {
        self.call(
            Method::POST,
            "/projects",
            token,
            Some(json!({"project_id": project, "title": project, "type": "MODEL", "namespace": namespace})),
        )
        .await
    }

    async fn group(&self, name: &str, members: &[&str]) {
        self.call(
            Method::POST,
            "/groups",
            &self.admin,
            Some(json!({"name": name, "members": members})),
        )
        .await
        .assert_status(StatusCode::CREATED);
    }

    /// Creates version `version` and puts `data.txt` in it; answers the two statuses.
    async fn push(&self, token: &str, project: &str, version: &str) -> (StatusCode, StatusCode) {
        let created = self
            .call(
                Method::POST,
                &format!("/projects/{project}/versions"),
                token,
                Some(json!({"version": version})),
            )
            .await;
        let upload = self.upload(token, project, version, "data.txt").await;
        (created.status, upload.status)
    }

    async fn upload(&self, token: &str, project: &str, version: &str, path: &str) -> TestResponse {
        let body = format!("{project} {version} {path}").into_bytes();
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
        let request = Request::builder()
            .method(Method::PUT)
            .uri(format!(
                "/projects/{project}/version/{version}/files/{path}"
            ))
            .header("authorization", format!("Bearer {token}"))
            .header("content-md5", md5)
            .body(Body::from(body))
            .unwrap();
        self.app.send(request).await
    }

    async fn read(&self, token: &str, project: &str) -> StatusCode {
        self.call(Method::GET, &format!("/projects/{project}"), token, None)
            .await
            .status
    }

    async fn download(&self, token: &str, project: &str, version: &str) -> StatusCode {
        let id = enc(&format!("{project}:data.txt@{version}"));
        self.call(
            Method::GET,
            &format!("/files/{id}?redirect=false"),
            token,
            None,
        )
        .await
        .status
    }

    /// The projects whose documents `token` finds.
    async fn found(&self, token: &str) -> BTreeSet<String> {
        let response = self
            .call(Method::GET, "/search?q=*&size=500", token, None)
            .await
            .assert_status(StatusCode::OK);
        hit_project_ids(&response.json()).into_iter().collect()
    }

    async fn members(&self, token: &str, on: &str) -> Value {
        let response = self
            .call(Method::GET, &format!("/{on}/members"), token, None)
            .await
            .assert_status(StatusCode::OK);
        response.json()
    }

    async fn patch(&self, token: &str, path: &str, body: Value) -> TestResponse {
        self.call(Method::PATCH, path, token, Some(body)).await
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// The grants of one member in a `GET .../members` answer, as `(level, source)`.
fn grants_of(members: &Value, principal: &str) -> Vec<(String, String)> {
    members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["principal"] == principal)
        .map(|member| {
            member["grants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|grant| {
                    (
                        grant["level"].as_str().unwrap().to_owned(),
                        grant["source"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A private namespace with alice (maintainer), bob (developer), carol (guest) and a stranger
/// dave; alice creates `p1` and `p2` in it and bob pushes `v1` of each.
struct Team {
    registry: Registry,
    alice: String,
    bob: String,
    carol: String,
    dave: String,
}

async fn team() -> Team {
    team_on(Backend::Local).await
}

async fn team_on(backend: Backend) -> Team {
    let registry = Registry::on(backend).await;
    let alice = registry.user("alice", Role::Maintainer).await;
    let bob = registry.user("bob", Role::Developer).await;
    // A developer by role, granted only guest in the namespace.
    let carol = registry.user("carol", Role::Developer).await;
    let dave = registry.user("dave", Role::Maintainer).await;
    registry.namespace("nlp", "private", false).await;
    let admin = registry.admin.clone();
    registry
        .grant_ok(&admin, "namespaces/nlp", "alice", "maintainer")
        .await;
    registry
        .grant_ok(&alice, "namespaces/nlp", "bob", "developer")
        .await;
    registry
        .grant_ok(&alice, "namespaces/nlp", "carol", "guest")
        .await;
    for project in ["p1", "p2"] {
        registry
            .create_project(&alice, "nlp", project)
            .await
            .assert_status(StatusCode::CREATED);
        assert_eq!(
            registry.push(&bob, project, "v1").await,
            (StatusCode::CREATED, StatusCode::CREATED)
        );
    }
    Team {
        registry,
        alice,
        bob,
        carol,
        dave,
    }
}

async fn namespace_grants_reach_every_project_of_the_namespace(backend: Backend) {
    let Team {
        registry: r,
        alice,
        bob,
        carol,
        dave,
    } = team_on(backend).await;
    // Projects created in a namespace inherit its grants.
    let profile = r
        .call(Method::GET, "/projects/p1/permissions", &alice, None)
        .await
        .json();
    assert_eq!(profile["inherit"], true, "{profile}");
    for project in ["p1", "p2"] {
        for token in [&alice, &bob, &carol] {
            assert_eq!(r.read(token, project).await, StatusCode::OK);
            assert_eq!(r.download(token, project, "v1").await, StatusCode::OK);
        }
        // A guest reads but never pushes; a stranger sees nothing.
        assert_eq!(r.push(&carol, project, "v2").await.0, StatusCode::FORBIDDEN);
        assert_eq!(r.read(&dave, project).await, StatusCode::NOT_FOUND);
        assert_eq!(
            r.download(&dave, project, "v1").await,
            StatusCode::NOT_FOUND
        );
    }
    for token in [&alice, &bob, &carol] {
        assert_eq!(r.found(token).await, set(&["p1", "p2"]));
    }
    assert_eq!(r.found(&dave).await, set(&[]));
    // The namespace itself: listed for members, hidden from strangers.
    let listed = r
        .call(Method::GET, "/namespaces", &carol, None)
        .await
        .json();
    assert_eq!(listed["count"], 1, "{listed}");
    let hidden = r.call(Method::GET, "/namespaces", &dave, None).await.json();
    assert_eq!(hidden["count"], 0, "{hidden}");
    assert_eq!(
        r.call(Method::GET, "/namespaces/nlp", &dave, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Who can access p1, and why, in one call — for those who manage it (issue 12: a
    // developer does not learn the access list).
    assert_eq!(
        r.call(Method::GET, "/projects/p1/members", &carol, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let members = r.members(&alice, "projects/p1").await;
    assert_eq!(members["access"]["read_access"], "viewers", "{members}");
    assert_eq!(members["access"]["write_access"], "writers", "{members}");
    assert_eq!(
        grants_of(&members, "alice"),
        vec![
            ("maintainer".to_owned(), "project:p1".to_owned()),
            ("maintainer".to_owned(), "namespace:nlp".to_owned())
        ]
    );
    assert_eq!(
        grants_of(&members, "bob"),
        vec![("developer".to_owned(), "namespace:nlp".to_owned())]
    );
    assert_eq!(
        grants_of(&members, "carol"),
        vec![("guest".to_owned(), "namespace:nlp".to_owned())]
    );
    assert!(grants_of(&members, "dave").is_empty());

    // Developers create projects only when the namespace has auto_create; owners switch it on.
    assert_eq!(
        r.create_project(&bob, "nlp", "p3").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        r.patch(&bob, "/namespaces/nlp", json!({"auto_create": true}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    r.patch(&alice, "/namespaces/nlp", json!({"auto_create": true}))
        .await
        .assert_status(StatusCode::OK);
    r.create_project(&bob, "nlp", "p3")
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(r.push(&bob, "p3", "v1").await.1, StatusCode::CREATED);
    assert_eq!(r.found(&carol).await, set(&["p1", "p2", "p3"]));
    // Strangers can't create in it; revoking a grant takes effect at once, search included.
    assert_eq!(
        r.create_project(&dave, "nlp", "p4").await.status,
        StatusCode::NOT_FOUND
    );
    r.call(
        Method::DELETE,
        "/namespaces/nlp/members/carol",
        &alice,
        None,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(r.read(&carol, "p1").await, StatusCode::NOT_FOUND);
    assert_eq!(r.found(&carol).await, set(&[]));
    r.call(
        Method::DELETE,
        "/namespaces/nlp/members/carol",
        &alice,
        None,
    )
    .await
    .assert_status(StatusCode::NOT_FOUND);
}

both_backends!(namespace_grants_reach_every_project_of_the_namespace);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_guest_elevated_to_developer_pushes_to_that_project_only() {
    let Team {
        registry: r,
        alice,
        carol,
        ..
    } = team().await;
    assert_eq!(r.push(&carol, "p1", "v2").await.0, StatusCode::FORBIDDEN);
    // Project owners grant on their project; guests can't.
    assert_eq!(
        r.grant(&carol, "projects/p1", "carol", "developer")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    r.grant_ok(&alice, "projects/p1", "carol", "developer")
        .await;
    assert_eq!(
        r.push(&carol, "p1", "v2").await,
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(r.push(&carol, "p2", "v2").await.0, StatusCode::FORBIDDEN);
    let profile = r
        .call(Method::GET, "/projects/p1/permissions", &alice, None)
        .await
        .json();
    assert_eq!(profile["inherit"], true);
    assert_eq!(profile["writers"], json!(["carol"]));
    let members = r.members(&alice, "projects/p1").await;
    assert_eq!(
        grants_of(&members, "carol"),
        vec![
            ("developer".to_owned(), "project:p1".to_owned()),
            ("guest".to_owned(), "namespace:nlp".to_owned())
        ]
    );
    let carol_entry = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["principal"] == "carol")
        .unwrap();
    assert_eq!(carol_entry["level"], "developer");
    // Her push on p1 is searchable; p2 is unchanged and still readable.
    let hits = r
        .call(Method::GET, "/search?q=_extra.version:v2", &carol, None)
        .await
        .json();
    let projects: BTreeSet<&str> = hits["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|hit| hit["_extra"]["project_id"].as_str())
        .collect();
    assert_eq!(projects, BTreeSet::from(["p1"]));
    assert_eq!(r.read(&carol, "p2").await, StatusCode::OK);
    // Removing the project grant leaves the namespace guest grant.
    r.call(Method::DELETE, "/projects/p1/members/carol", &alice, None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(r.push(&carol, "p1", "v3").await.0, StatusCode::FORBIDDEN);
    assert_eq!(r.read(&carol, "p1").await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintainer_grants_at_project_level_and_redundant_grants_are_refused() {
    let Team {
        registry: r,
        alice,
        bob,
        carol,
        dave,
    } = team().await;
    let maintainer = r
        .grant(&alice, "projects/p1", "dave", "maintainer")
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(maintainer.code(), "no_maintainer_at_project_level");
    for (who, level) in [
        ("bob", "developer"),
        ("bob", "guest"),
        ("alice", "developer"),
        ("carol", "guest"),
    ] {
        let redundant = r.grant(&alice, "projects/p1", who, level).await;
        assert_eq!(redundant.status, StatusCode::CONFLICT, "{who} {level}");
        assert_eq!(redundant.code(), "redundant_grant", "{who} {level}");
    }
    // Nothing was written: bob's and carol's access is what the namespace gives.
    let profile = r
        .call(Method::GET, "/projects/p1/permissions", &alice, None)
        .await
        .json();
    assert_eq!(profile["writers"], json!([]), "{profile}");
    assert_eq!(profile["viewers"], json!([]), "{profile}");
    // A stranger to the namespace may be given one project.
    r.grant_ok(&alice, "projects/p1", "dave", "guest").await;
    assert_eq!(r.read(&dave, "p1").await, StatusCode::OK);
    assert_eq!(r.download(&dave, "p1", "v1").await, StatusCode::OK);
    assert_eq!(r.read(&dave, "p2").await, StatusCode::NOT_FOUND);
    assert_eq!(r.found(&dave).await, set(&["p1"]));
    // Guests and developers (not owners) grant nothing.
    assert_eq!(
        r.grant(&carol, "projects/p2", "dave", "guest").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        r.grant(&bob, "projects/p2", "dave", "guest").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        r.grant(&bob, "namespaces/nlp", "dave", "guest")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

/// Malformed grants are 4xx, never 500: unknown level, wrong types, bad path principal.
async fn assert_malformed_grants_are_4xx(r: &Registry, admin: &str) {
    // Malformed grants are 4xx, never 500: unknown level, wrong types, bad path principal.
    for body in [
        json!({"principal": "gus", "level": "owner"}),
        json!({"principal": 7, "level": "guest"}),
        json!({"principal": "gus", "level": "guest", "expires_at": "soon"}),
        json!({"principal": "gus", "level": "guest", "extra": true}),
    ] {
        let response = r
            .call(
                Method::POST,
                "/namespaces/vision/members",
                admin,
                Some(body.clone()),
            )
            .await;
        assert!(
            response.status.is_client_error(),
            "{body}: {}",
            response.text()
        );
    }
    let bad_path = r
        .call(
            Method::DELETE,
            "/namespaces/vision/members/%00x",
            admin,
            None,
        )
        .await;
    assert_eq!(
        bad_path.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad_path.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_check_the_grantees_role_and_existence() {
    let r = Registry::new().await;
    r.user("gus", Role::Guest).await;
    r.user("rita", Role::Reviewer).await;
    r.user("dev", Role::Developer).await;
    r.user("mae", Role::Maintainer).await;
    r.namespace("vision", "private", false).await;
    let admin = r.admin.clone();
    for (who, level) in [
        ("gus", "developer"),
        ("gus", "maintainer"),
        ("rita", "developer"),
        ("dev", "maintainer"),
        ("machine:ci", "maintainer"),
    ] {
        let response = r.grant(&admin, "namespaces/vision", who, level).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{who} {level}"
        );
        assert_eq!(response.code(), "role_too_low", "{who} {level}");
    }
    for (who, level) in [
        ("gus", "guest"),
        ("rita", "guest"),
        ("dev", "developer"),
        ("mae", "maintainer"),
        ("machine:ci", "developer"),
    ] {
        r.grant_ok(&admin, "namespaces/vision", who, level).await;
    }
    let unknown = r
        .grant(&admin, "namespaces/vision", "nobody", "guest")
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.code(), "unknown_principal");
    let unknown_group = r
        .grant(&admin, "namespaces/vision", "group:nope", "guest")
        .await;
    assert_eq!(unknown_group.code(), "unknown_principal");
    let invalid = r
        .grant(&admin, "namespaces/vision", "Bad Name", "guest")
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.code(), "invalid_principal");
    assert_malformed_grants_are_4xx(&r, &admin).await;
    // Project level: a guest account can't be elevated to developer either.
    let mae = r.app.login("mae", "password-of-tests").await;
    assert_eq!(
        r.create_project(&mae, "vision", "seg").await.status,
        StatusCode::CREATED
    );
    r.user("gina", Role::Guest).await;
    let low = r
        .grant(&mae, "projects/seg", "gina", "developer")
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(low.code(), "role_too_low");
    // A refused grant gives nothing; the guest grant gus holds gives reading only.
    assert_eq!(r.push(&mae, "seg", "v1").await.1, StatusCode::CREATED);
    let gina = r.app.login("gina", "password-of-tests").await;
    let gus = r.app.login("gus", "password-of-tests").await;
    assert_eq!(r.read(&gina, "seg").await, StatusCode::NOT_FOUND);
    assert_eq!(r.found(&gina).await, set(&[]));
    assert_eq!(r.read(&gus, "seg").await, StatusCode::OK);
    assert_eq!(r.found(&gus).await, set(&["seg"]));
    assert_eq!(r.push(&gus, "seg", "v2").await.0, StatusCode::FORBIDDEN);
    let members = r.members(&admin, "namespaces/vision").await;
    assert_eq!(members["count"], 5, "{members}");
    assert_eq!(
        grants_of(&members, "machine:ci"),
        vec![("developer".to_owned(), "namespace:vision".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_teams_are_developers_of_one_project_each_and_guests_of_the_rest() {
    let r = Registry::new().await;
    let lead = r.user("lead", Role::Maintainer).await;
    let ann = r.user("ann", Role::Developer).await;
    let art = r.user("art", Role::Developer).await;
    let ben = r.user("ben", Role::Developer).await;
    let out = r.user("out", Role::Developer).await;
    r.group("team-a", &["ann", "art"]).await;
    r.group("team-b", &["ben"]).await;
    r.namespace("vision", "private", false).await;
    let admin = r.admin.clone();
    r.grant_ok(&admin, "namespaces/vision", "lead", "maintainer")
        .await;
    // Everyone on the teams is a guest of the namespace.
    r.grant_ok(&lead, "namespaces/vision", "group:team-a", "guest")
        .await;
    r.grant_ok(&lead, "namespaces/vision", "group:team-b", "guest")
        .await;
    for project in ["detector", "segmenter"] {
        assert_eq!(
            r.create_project(&lead, "vision", project).await.status,
            StatusCode::CREATED
        );
        assert_eq!(r.push(&lead, project, "v1").await.1, StatusCode::CREATED);
    }
    r.grant_ok(&lead, "projects/detector", "group:team-a", "developer")
        .await;
    r.grant_ok(&lead, "projects/segmenter", "group:team-b", "developer")
        .await;
    for token in [&ann, &art] {
        assert_eq!(
            r.push(token, "detector", "a-v2").await.1,
            StatusCode::CREATED
        );
        assert_eq!(
            r.push(token, "segmenter", "a-v2").await.0,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        r.push(&ben, "segmenter", "b-v2").await.1,
        StatusCode::CREATED
    );
    assert_eq!(
        r.push(&ben, "detector", "b-v2").await.0,
        StatusCode::FORBIDDEN
    );
    for token in [&ann, &art, &ben] {
        assert_eq!(r.read(token, "detector").await, StatusCode::OK);
        assert_eq!(r.download(token, "segmenter", "v1").await, StatusCode::OK);
        assert_eq!(r.found(token).await, set(&["detector", "segmenter"]));
    }
    assert_eq!(r.read(&out, "detector").await, StatusCode::NOT_FOUND);
    assert_eq!(r.found(&out).await, set(&[]));
    let members = r.members(&lead, "projects/detector").await;
    assert_eq!(
        grants_of(&members, "group:team-a"),
        vec![
            ("developer".to_owned(), "project:detector".to_owned()),
            ("guest".to_owned(), "namespace:vision".to_owned())
        ]
    );
    assert_eq!(
        grants_of(&members, "group:team-b"),
        vec![("guest".to_owned(), "namespace:vision".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deprecated_namespace_refuses_pushes_but_serves_pulls() {
    let Team {
        registry: r,
        alice,
        bob,
        carol,
        ..
    } = team().await;
    // Owners may deprecate, not disable.
    r.patch(&alice, "/namespaces/nlp", json!({"state": "disabled"}))
        .await
        .assert_status(StatusCode::FORBIDDEN);
    let deprecate = r
        .patch(&alice, "/namespaces/nlp", json!({"state": "deprecated"}))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(deprecate.json()["state"], "deprecated");
    let refused = r
        .call(
            Method::POST,
            "/projects/p1/versions",
            &bob,
            Some(json!({"version": "v2"})),
        )
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(refused.code(), "deprecated");
    let created = r
        .create_project(&alice, "nlp", "p9")
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(created.code(), "deprecated");
    let record = r.patch(&bob, "/projects/p1", json!({"title": "new"})).await;
    assert_eq!(record.code(), "deprecated");
    let grant = r.grant(&alice, "namespaces/nlp", "dave", "guest").await;
    assert_eq!(grant.code(), "deprecated");
    for token in [&alice, &bob, &carol] {
        assert_eq!(r.read(token, "p1").await, StatusCode::OK);
        assert_eq!(r.download(token, "p2", "v1").await, StatusCode::OK);
        assert_eq!(r.found(token).await, set(&["p1", "p2"]));
    }
    let version = r
        .call(Method::GET, "/projects/p1/version/v1", &carol, None)
        .await
        .json();
    assert_eq!(version["status"], "open");
    // Back to active: pushes work again.
    r.patch(&alice, "/namespaces/nlp", json!({"state": "active"}))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        r.push(&bob, "p1", "v2").await,
        (StatusCode::CREATED, StatusCode::CREATED)
    );
}

async fn a_disabled_namespace_is_invisible_to_all_but_admins(backend: Backend) {
    let Team {
        registry: r,
        alice,
        bob,
        carol,
        ..
    } = team_on(backend).await;
    let admin = r.admin.clone();
    r.patch(&admin, "/namespaces/nlp", json!({"state": "disabled"}))
        .await
        .assert_status(StatusCode::OK);
    for token in [&alice, &bob, &carol] {
        assert_eq!(r.read(token, "p1").await, StatusCode::NOT_FOUND);
        assert_eq!(r.download(token, "p2", "v1").await, StatusCode::NOT_FOUND);
        assert_eq!(r.found(token).await, set(&[]));
        assert_eq!(
            r.call(Method::GET, "/namespaces/nlp", token, None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        let listed = r.call(Method::GET, "/namespaces", token, None).await.json();
        assert_eq!(listed["count"], 0);
    }
    assert_eq!(r.read(&admin, "p1").await, StatusCode::OK);
    assert_eq!(r.found(&admin).await, set(&["p1", "p2"]));
    // Nothing below a disabled namespace changes state, not even by an admin.
    let below = r
        .patch(&admin, "/projects/p1", json!({"state": "deprecated"}))
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(below.code(), "parent_disabled");
    // The owner can't re-enable; an admin can, and everything is back.
    assert_eq!(
        r.patch(&alice, "/namespaces/nlp", json!({"state": "active"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    r.patch(&admin, "/namespaces/nlp", json!({"state": "active"}))
        .await
        .assert_status(StatusCode::OK);
    for token in [&alice, &bob, &carol] {
        assert_eq!(r.read(token, "p1").await, StatusCode::OK);
        assert_eq!(r.found(token).await, set(&["p1", "p2"]));
    }
    // A disabled project is invisible on its own too.
    r.patch(&admin, "/projects/p2", json!({"state": "disabled"}))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(r.read(&carol, "p2").await, StatusCode::NOT_FOUND);
    assert_eq!(r.found(&carol).await, set(&["p1"]));
}

both_backends!(a_disabled_namespace_is_invisible_to_all_but_admins);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_lifecycle_visibility_and_profile() {
    let r = Registry::new().await;
    let alice = r.user("alice", Role::Maintainer).await;
    let eve = r.user("eve", Role::Guest).await;
    let admin = r.admin.clone();
    let (get, post, put, delete) = (Method::GET, Method::POST, Method::PUT, Method::DELETE);
    // Only admins create; names are validated; names are unique.
    let x = json!({"name": "x"});
    assert_eq!(
        r.status(post.clone(), "/namespaces", &alice, x).await,
        StatusCode::FORBIDDEN
    );
    let bad_name = Some(json!({"name": "Bad_Name"}));
    let invalid = r
        .call(post.clone(), "/namespaces", &admin, bad_name)
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(invalid.code(), "invalid_name");
    r.namespace("open", "public", false).await;
    let open = json!({"name": "open"});
    assert_eq!(
        r.status(post, "/namespaces", &admin, open).await,
        StatusCode::CONFLICT
    );
    let path = "/namespaces/open/permissions";
    let profile = r.call(get.clone(), path, &admin, None).await.json();
    assert_eq!(profile["read_access"], "authenticated", "{profile}");
    assert_eq!(profile["download_access"], "viewers");
    assert_eq!(profile["write_access"], "writers");

    r.grant_ok(&admin, "namespaces/open", "alice", "maintainer")
        .await;
    r.create_project(&alice, "open", "corpus")
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(r.push(&alice, "corpus", "v1").await.1, StatusCode::CREATED);
    // Public: every logged-in caller sees the metadata; downloads need a grant; anonymous
    // callers see nothing.
    assert_eq!(r.read(&eve, "corpus").await, StatusCode::OK);
    assert_eq!(r.found(&eve).await, set(&["corpus"]));
    let download = r.download(&eve, "corpus", "v1").await;
    assert_eq!(download, StatusCode::FORBIDDEN);
    r.app
        .get("/projects/corpus")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let listed = r.call(get.clone(), "/namespaces", &eve, None).await.json();
    assert_eq!(listed["results"][0]["name"], "open");

    // Owners turn it private: eve loses sight at once, search included.
    let change = json!({"visibility": "private", "description": "now private"});
    let private = r
        .patch(&alice, "/namespaces/open", change)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(private.json()["description"], "now private");
    assert_eq!(r.read(&eve, "corpus").await, StatusCode::NOT_FOUND);
    assert_eq!(r.found(&eve).await, set(&[]));

    // PUT of the namespace profile merges, re-indexes by a job, and grants reach projects.
    let viewers = Some(json!({"viewers": ["eve"]}));
    let accepted = r.call(put.clone(), path, &alice, viewers).await;
    wait_job(&r.app, &alice, &accepted).await;
    assert_eq!(r.download(&eve, "corpus", "v1").await, StatusCode::OK);
    assert_eq!(r.found(&eve).await, set(&["corpus"]));
    let scope = json!({"scope": "global"});
    let bad_scope = r.status(put.clone(), path, &alice, scope).await;
    assert_eq!(bad_scope, StatusCode::UNPROCESSABLE_ENTITY);
    let no_viewers = json!({"viewers": []});
    let by_eve = r.status(put, path, &eve, no_viewers).await;
    assert_eq!(by_eve, StatusCode::FORBIDDEN);

    // Deleting: admins only, and never while it holds projects.
    r.call(delete.clone(), "/namespaces/open", &alice, None)
        .await
        .assert_status(StatusCode::FORBIDDEN);
    let busy = r
        .call(delete.clone(), "/namespaces/open", &admin, None)
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(busy.code(), "namespace_not_empty");
    r.namespace("empty", "private", false).await;
    r.call(delete, "/namespaces/empty", &admin, None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    r.call(get.clone(), "/namespaces/empty", &admin, None)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    // Unknown fields and bad values are 4xx, never 500.
    let unknown = r
        .patch(&alice, "/namespaces/open", json!({"colour": "red"}))
        .await;
    assert!(unknown.status.is_client_error(), "{}", unknown.text());
    let bad_state = r
        .patch(&alice, "/namespaces/open", json!({"state": "frozen"}))
        .await;
    assert!(bad_state.status.is_client_error());
    r.call(get, "/namespaces/NOPE", &alice, None)
        .await
        .assert_status(StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stable_version_is_frozen_for_everyone_and_deleted_in_two_steps() {
    let Team {
        registry: r,
        alice,
        bob,
        ..
    } = team().await;
    let admin = r.admin.clone();
    r.call(Method::PUT, "/projects/p1/version/v1/complete", &bob, None)
        .await
        .assert_status(StatusCode::ACCEPTED);
    // Writers can't mark stable; owners can.
    r.patch(&bob, "/projects/p1/version/v1", json!({"stable": true}))
        .await
        .assert_status(StatusCode::FORBIDDEN);
    r.patch(&alice, "/projects/p1/version/v1", json!({"stable": true}))
        .await
        .assert_status(StatusCode::OK);
    // No file change, by anyone — admins included.
    for token in [&admin, &alice, &bob] {
        let upload = r
            .upload(token, "p1", "v1", "more.txt")
            .await
            .assert_status(StatusCode::CONFLICT);
        assert_eq!(upload.code(), "stable_version");
        let overwrite = r.upload(token, "p1", "v1", "data.txt").await;
        assert_eq!(overwrite.code(), "stable_version");
        let delete = r
            .call(
                Method::DELETE,
                &format!("/files/{}", enc("p1:data.txt@v1")),
                token,
                None,
            )
            .await;
        if token == &bob {
            // Deleting files is the owners' right in any version.
            assert_eq!(delete.status, StatusCode::FORBIDDEN);
        } else {
            assert_eq!(delete.status, StatusCode::CONFLICT);
            assert_eq!(delete.code(), "stable_version");
        }
        let version = r
            .call(Method::DELETE, "/projects/p1/version/v1", token, None)
            .await
            .assert_status(StatusCode::CONFLICT);
        assert_eq!(version.code(), "stable_version");
    }
    assert_eq!(r.download(&bob, "p1", "v1").await, StatusCode::OK);
    // Two deliberate steps: unmark (owners and admins only), then delete.
    r.patch(&bob, "/projects/p1/version/v1", json!({"stable": false}))
        .await
        .assert_status(StatusCode::FORBIDDEN);
    r.patch(&admin, "/projects/p1/version/v1", json!({"stable": false}))
        .await
        .assert_status(StatusCode::OK);
    r.call(Method::DELETE, "/projects/p1/version/v1", &alice, None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(r.found(&alice).await, set(&["p2"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_member_grant_ends_on_direct_access_and_in_search() {
    let Team {
        registry: r,
        alice,
        dave,
        ..
    } = team().await;
    let _reindexer = trove::jobs::schedule::spawn_expiry_reindexer(r.app.state.clone());
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(2);
    r.call(
        Method::POST,
        "/projects/p1/members",
        &alice,
        Some(json!({"principal": "dave", "level": "guest", "expires_at": expires_at})),
    )
    .await
    .assert_status(StatusCode::CREATED);
    assert_eq!(r.read(&dave, "p1").await, StatusCode::OK);
    assert_eq!(r.found(&dave).await, set(&["p1"]));
    let members = r.members(&alice, "projects/p1").await;
    let dave_entry = &members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["principal"] == "dave")
        .unwrap()["grants"][0];
    assert!(dave_entry["expires_at"].is_string(), "{members}");
    // Past the expiry: refused at once, and gone from search once the re-index ran.
    while chrono::Utc::now() <= expires_at {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(r.read(&dave, "p1").await, StatusCode::NOT_FOUND);
    assert_eq!(r.found(&dave).await, set(&[]));
    r.call(
        Method::POST,
        "/projects/p1/members",
        &alice,
        Some(json!({"principal": "dave", "level": "guest", "expires_at": "2020-01-01T00:00:00Z"})),
    )
    .await
    .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_grants_outside_namespaces_open_what_they_grant() {
    let r = Registry::new().await;
    let owner = r.user("owner", Role::Maintainer).await;
    let dev = r.user("dev", Role::Developer).await;
    let gus = r.user("gus", Role::Guest).await;
    // A private project: read, download and write are the owners'.
    r.call(
        Method::POST,
        "/projects",
        &owner,
        Some(json!({"project_id": "solo", "visibility": "private"})),
    )
    .await
    .assert_status(StatusCode::CREATED);
    assert_eq!(r.push(&owner, "solo", "v1").await.1, StatusCode::CREATED);
    assert_eq!(r.read(&dev, "solo").await, StatusCode::NOT_FOUND);
    r.grant_ok(&owner, "projects/solo", "dev", "developer")
        .await;
    r.grant_ok(&owner, "projects/solo", "gus", "guest").await;
    // Each grant means what it says: the developer pushes, the guest reads and downloads.
    assert_eq!(
        r.push(&dev, "solo", "v2").await,
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(r.read(&gus, "solo").await, StatusCode::OK);
    assert_eq!(r.download(&gus, "solo", "v1").await, StatusCode::OK);
    assert_eq!(r.push(&gus, "solo", "v3").await.0, StatusCode::FORBIDDEN);
    assert_eq!(r.found(&gus).await, set(&["solo"]));
    let members = r.members(&owner, "projects/solo").await;
    assert_eq!(members["access"]["write_access"], "writers", "{members}");
    assert_eq!(members["access"]["read_access"], "viewers", "{members}");
    assert_eq!(members["count"], 3, "{members}");
    // Shares name existing accounts and groups too.
    let nobody = r
        .call(
            Method::POST,
            "/projects/solo/share",
            &owner,
            Some(json!({"principal": "nobody"})),
        )
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(nobody.code(), "unknown_principal");
}

/// A local-storage instance deciding against a clock the test moves, and an admin's token.
async fn movable_clock_instance() -> (BackendApp, trove::clock::Clock, String) {
    let clock = trove::clock::Clock::manual();
    let app = BackendApp::start_on(tempfile::tempdir().unwrap(), None, clock.clone(), |_| {}).await;
    let admin = app.user_token("root", Role::Admin).await;
    (app, clock, admin)
}

/// Creates the private namespace `name` as `admin`.
async fn create_namespace(app: &BackendApp, admin: &str, name: &str) {
    app.post_json(
        "/namespaces",
        admin,
        &json!({"name": name, "visibility": "private"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
}

/// The storage keys under `prefix`.
async fn keys_under(app: &BackendApp, prefix: &str) -> Vec<String> {
    app.state
        .storage
        .list_all(prefix)
        .await
        .unwrap()
        .iter()
        .map(|object| object.key.clone())
        .collect()
}

/// Deleting a namespace and creating a project in it cannot both succeed: a creation claims
/// its id in storage before writing the project, a deletion marks the namespace first. A
/// creation that finds the mark (or a namespace changed since it was authorized) gives up and
/// leaves nothing, and who may not see the namespace learns nothing of the deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_deletion_and_a_project_creation_cannot_both_win() {
    use trove::storage::ObjectStoreExt as _;
    let (app, clock, admin) = movable_clock_instance().await;
    create_namespace(&app, &admin, "team").await;
    let project = |id: &str| json!({"project_id": id, "title": "T", "type": "MODEL", "visibility": "private", "namespace": "team"});
    let claims = trove::storage::keys::namespace_claims_prefix("team");
    let record_key = trove::storage::keys::namespace_record("team");

    // Who may not see the namespace gets the same answer with a deletion in progress.
    let stranger = app.user_token("stranger", Role::Maintainer).await;
    let unseen = app
        .post_json("/projects", &stranger, &project("peek"))
        .await;
    assert_ne!(unseen.status, StatusCode::CREATED);

    // A deletion in progress (its mark on the record): creations are refused, nothing left.
    let original = app.state.storage.get_bytes(&record_key).await.unwrap().0;
    let mut marked: Value = serde_json::from_slice(&original).unwrap();
    marked["deleting"] = json!(true);
    app.state
        .storage
        .put_bytes(&record_key, marked.to_string().into(), Default::default())
        .await
        .unwrap();
    let refused = app
        .post_json("/projects", &admin, &project("late"))
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(refused.code(), "conflict");
    assert_eq!(
        app.get_as("/projects/late", &admin).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(keys_under(&app, &claims).await, Vec::<String>::new());
    let unseen_marked = app
        .post_json("/projects", &stranger, &project("peek"))
        .await;
    assert_eq!(
        (unseen_marked.status, unseen_marked.text()),
        (unseen.status, unseen.text())
    );
    app.state
        .storage
        .put_bytes(&record_key, original, Default::default())
        .await
        .unwrap();

    // A claim against a record that changed after the creation read it is given back.
    let stale = trove::catalog::namespaces::claim_project(&app.state, "team", "late", "old-etag")
        .await
        .unwrap_err();
    assert_eq!(stale.code().as_str(), "conflict");
    assert_eq!(keys_under(&app, &claims).await, Vec::<String>::new());

    // A created project holds the namespace through its claim (not only through the index).
    app.post_json("/projects", &admin, &project("kept"))
        .await
        .assert_status(StatusCode::CREATED);
    let held = trove::catalog::namespaces::claimed_projects(&app.state, "team", clock.now())
        .await
        .unwrap();
    assert_eq!(held, vec!["kept".to_owned()]);
    // A creation that fails (the id is taken) gives its claim back: one claim, kept's.
    app.post_json("/projects", &admin, &project("kept"))
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(keys_under(&app, &claims).await.len(), 1);
    let busy = app
        .delete_as("/namespaces/team", &admin)
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(busy.code(), "namespace_not_empty");
    // The refused deletion took its mark back: creations go on.
    let after = app.get_as("/namespaces/team", &admin).await;
    assert_eq!(after.json().get("deleting"), None, "{}", after.text());
    app.post_json("/projects", &admin, &project("more"))
        .await
        .assert_status(StatusCode::CREATED);
}

/// A namespace deleted and created again with the very same request is another namespace to
/// a project creation authorized against the first: on S3 an ETag is the content's digest, so
/// the record must never be byte-identical (a claim against the first one's ETag is refused).
async fn a_namespace_created_again_is_never_the_one_before(backend: Backend) {
    use trove::storage::ObjectStoreExt as _;
    let app = BackendApp::start(backend).await;
    let admin = app.user_token("root", Role::Admin).await;
    let record_key = trove::storage::keys::namespace_record("team");
    create_namespace(&app, &admin, "team").await;
    let (first, first_meta) = app.state.storage.get_bytes(&record_key).await.unwrap();
    app.delete_as("/namespaces/team", &admin)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    create_namespace(&app, &admin, "team").await;
    let (second, second_meta) = app.state.storage.get_bytes(&record_key).await.unwrap();
    assert_ne!(first, second);
    assert_ne!(first_meta.etag, second_meta.etag);
    let stale =
        trove::catalog::namespaces::claim_project(&app.state, "team", "late", &first_meta.etag)
            .await
            .unwrap_err();
    assert_eq!(stale.code().as_str(), "conflict");
    let current =
        trove::catalog::namespaces::claim_project(&app.state, "team", "kept", &second_meta.etag)
            .await;
    assert!(current.is_ok(), "{current:?}");
}
both_backends!(a_namespace_created_again_is_never_the_one_before);

/// A claim left by a creation that crashed before its project record holds the namespace
/// while it could still be a creation in flight (15 minutes), not after; the deletion removes
/// every claim, so a namespace created again under the name holds nothing of the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_left_by_a_crashed_creation_holds_a_namespace_for_15_minutes_only() {
    use trove::storage::ObjectStoreExt as _;
    let (app, clock, admin) = movable_clock_instance().await;
    // A claim left by a creation that crashed before its project record: in flight at first,
    // stale after 15 minutes.
    let orphan = trove::storage::keys::namespace_claim("empty", "ghost", "0");
    create_namespace(&app, &admin, "empty").await;
    app.state
        .storage
        .put_bytes(&orphan, "{}".into(), Default::default())
        .await
        .unwrap();
    let in_flight = app
        .delete_as("/namespaces/empty", &admin)
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_eq!(in_flight.code(), "namespace_not_empty");
    assert!(clock.advance(chrono::Duration::minutes(16)));
    app.delete_as("/namespaces/empty", &admin)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        keys_under(
            &app,
            &trove::storage::keys::namespace_claims_prefix("empty")
        )
        .await,
        Vec::<String>::new()
    );
    // The name again: a new namespace, holding nothing of the old one.
    create_namespace(&app, &admin, "empty").await;
    app.delete_as("/namespaces/empty", &admin)
        .await
        .assert_status(StatusCode::NO_CONTENT);
}

/// The purge takes back only the `deleting` marks no deletion can still be behind: one older
/// than a deletion takes, or one without a time (written before marks had one) — never a
/// fresh one, whose deletion may be looking for projects right now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_takes_back_only_deletion_marks_no_deletion_is_behind() {
    use trove::storage::ObjectStoreExt as _;
    let (app, _clock, admin) = movable_clock_instance().await;
    create_namespace(&app, &admin, "team").await;
    let record_key = trove::storage::keys::namespace_record("team");
    let mark = |since: Option<chrono::DateTime<chrono::Utc>>| {
        let app = &app;
        let record_key = &record_key;
        async move {
            let bytes = app.state.storage.get_bytes(record_key).await.unwrap().0;
            let mut record: Value = serde_json::from_slice(&bytes).unwrap();
            record["deleting"] = json!(true);
            match since {
                Some(since) => record["deleting_since"] = json!(since),
                None => {
                    record.as_object_mut().unwrap().remove("deleting_since");
                }
            }
            app.state
                .storage
                .put_bytes(record_key, record.to_string().into(), Default::default())
                .await
                .unwrap();
        }
    };
    let marked = || async {
        let bytes = app.state.storage.get_bytes(&record_key).await.unwrap().0;
        serde_json::from_slice::<Value>(&bytes).unwrap()["deleting"] == json!(true)
    };
    let purge = || async {
        trove::jobs::schedule::run_purge(&app.state).await.unwrap();
    };
    let now = chrono::Utc::now();

    mark(Some(now - chrono::TimeDelta::minutes(14))).await;
    purge().await;
    assert!(
        marked().await,
        "a deletion 14 minutes old may still be running"
    );

    mark(Some(now - chrono::TimeDelta::minutes(16))).await;
    purge().await;
    assert!(!marked().await, "a 16-minute-old mark was left");

    mark(None).await;
    purge().await;
    assert!(!marked().await, "a mark without a time was left");

    app.post_json(
        "/projects",
        &admin,
        &json!({"project_id": "after", "title": "T", "type": "MODEL", "namespace": "team"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
}

/// A deletion that died after deleting the namespace's profile (it had found no project,
/// and its mark has refused every creation since) is finished by the purge once its mark is
/// stale — claims and record deleted, audited — instead of leaving a namespace whose grants
/// are gone. The same stale mark over a namespace that holds a project is only taken back.
#[tokio::test]
async fn the_purge_finishes_a_deletion_that_died_after_deleting_the_profile() {
    use trove::storage::ObjectStoreExt as _;
    let (app, _clock, admin) = movable_clock_instance().await;
    let stale = chrono::Utc::now() - chrono::TimeDelta::minutes(16);
    // What a deletion that died after its profile step leaves: a stale mark, no profile.
    let die_after_profile = |name: &'static str| {
        let app = &app;
        async move {
            let record_key = trove::storage::keys::namespace_record(name);
            let bytes = app.state.storage.get_bytes(&record_key).await.unwrap().0;
            let mut record: Value = serde_json::from_slice(&bytes).unwrap();
            record["deleting"] = json!(true);
            record["deleting_since"] = json!(stale);
            app.state
                .storage
                .put_bytes(&record_key, record.to_string().into(), Default::default())
                .await
                .unwrap();
            let profile = trove::permissions::ProfileLocation::Namespace(name.to_owned()).key();
            app.state.storage.delete(&profile).await.unwrap();
        }
    };
    create_namespace(&app, &admin, "empty").await;
    create_namespace(&app, &admin, "held").await;
    app.post_json(
        "/projects",
        &admin,
        &json!({"project_id": "kept", "title": "T", "type": "MODEL", "namespace": "held"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    die_after_profile("empty").await;
    die_after_profile("held").await;

    trove::jobs::schedule::run_purge(&app.state).await.unwrap();

    app.get_as("/namespaces/empty", &admin)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    assert!(
        keys_under(
            &app,
            &trove::storage::keys::namespace_claims_prefix("empty")
        )
        .await
        .is_empty()
    );
    let events = app
        .get_as("/audit?action=namespace.purge", &admin)
        .await
        .json();
    assert!(
        events.to_string().contains("namespace:empty"),
        "the finished deletion is audited: {events}"
    );
    // A project holds the other: its mark is taken back, the namespace and project stay.
    let held = app.get_as("/namespaces/held", &admin).await;
    held.assert_status(StatusCode::OK);
    app.get_as("/projects/kept", &admin)
        .await
        .assert_status(StatusCode::OK);
    let bytes = app
        .state
        .storage
        .get_bytes(&trove::storage::keys::namespace_record("held"))
        .await
        .unwrap()
        .0;
    let record: Value = serde_json::from_slice(&bytes).unwrap();
    assert_ne!(record["deleting"], json!(true), "{record}");
    // The name can be taken again, from scratch.
    create_namespace(&app, &admin, "empty").await;
}
