//! The web interface: plain router tests (CSRF, cookies, CSP, the 404 page, the `/`
//! redirect) and scenarios in a real headless Chromium (`browser`).

mod browser;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use trove::permissions::Role;

use crate::common::artifacts::create_project;
use crate::common::{TestApp, TestResponse, hidden_value};

/// A browser session obtained through the sign-in form: its `Cookie` header and the CSRF
/// token of its pages.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

fn set_cookies(response: &TestResponse) -> Vec<String> {
    response
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    let mut builder = Request::builder().method(Method::GET).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    app.send(builder.body(Body::empty()).unwrap()).await
}

async fn post_form(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    form: &[(&str, &str)],
) -> TestResponse {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in form {
        body.append_pair(key, value);
    }
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    app.send(builder.body(Body::from(body.finish())).unwrap())
        .await
}

/// Signs in through `GET`/`POST /ui/login`, as a browser would (extra headers on the POST).
async fn sign_in_with(
    app: &TestApp,
    username: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> TestResponse {
    let form = get_with(app, "/ui/login", &[])
        .await
        .assert_status(StatusCode::OK);
    let nonce = cookie_pair(&set_cookies(&form)[0]);
    let csrf = hidden_value(&form.text(), "csrf");
    let mut all = vec![("cookie", nonce.as_str())];
    all.extend_from_slice(headers);
    post_form(
        app,
        "/ui/login",
        &all,
        &[
            ("username", username),
            ("password", password),
            ("csrf", &csrf),
            ("next", "/ui/search"),
        ],
    )
    .await
}

/// Signs in and answers the session.
pub async fn sign_in(app: &TestApp, username: &str, password: &str) -> Session {
    let answer = sign_in_with(app, username, password, &[])
        .await
        .assert_status(StatusCode::SEE_OTHER);
    let session = set_cookies(&answer)
        .into_iter()
        .find(|cookie| cookie.starts_with("trove_session="))
        .expect("a session cookie");
    let cookie = cookie_pair(&session);
    let page = get_with(app, "/ui/search", &[("cookie", &cookie)]).await;
    let html = page.text();
    let marker = "name=\"csrf-token\" content=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let csrf = html[start..].split('"').next().unwrap().to_owned();
    assert!(!csrf.is_empty());
    Session { cookie, csrf }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_forms_and_forwarding_refuse_requests_without_the_sessions_csrf_token() {
    let app = TestApp::local().await;
    app.user_token("alice", Role::Maintainer).await;
    app.user_token("bob", Role::Maintainer).await;
    let alice = sign_in(&app, "alice", "password-of-tests").await;
    let bob = sign_in(&app, "bob", "password-of-tests").await;
    let new_project = [
        ("project_id", "p1"),
        ("title", "T"),
        ("type", "MODEL"),
        ("visibility", "private"),
    ];

    // A form without a token, with a wrong one, with another session's token: refused.
    for token in ["", "00", bob.csrf.as_str()] {
        let mut form = new_project.to_vec();
        form.push(("csrf", token));
        let refused = post_form(&app, "/ui/new", &[("cookie", &alice.cookie)], &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{token}");
        assert_eq!(refused.code(), "csrf_failed");
    }
    // The forwarding route wants the header, not only the cookie.
    let body = json!({"project_id": "p2", "title": "T", "type": "MODEL", "visibility": "private"})
        .to_string();
    let forwarded = |csrf: Option<&str>| {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri("/ui/api/projects")
            .header("cookie", &alice.cookie)
            .header("content-type", "application/json");
        if let Some(csrf) = csrf {
            builder = builder.header("x-csrf-token", csrf);
        }
        builder.body(Body::from(body.clone())).unwrap()
    };
    let refused = app.send(forwarded(None)).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (StatusCode::FORBIDDEN, "csrf_failed")
    );
    app.send(forwarded(Some(&bob.csrf)))
        .await
        .assert_status(StatusCode::FORBIDDEN);
    // Nothing was created by the refused requests.
    let listing = app
        .get_as("/projects", &app.login("alice", "password-of-tests").await)
        .await;
    assert_eq!(listing.json()["total"], 0, "{}", listing.text());

    // With the right token both work, as alice.
    let mut form = new_project.to_vec();
    form.push(("csrf", alice.csrf.as_str()));
    let created = post_form(&app, "/ui/new", &[("cookie", &alice.cookie)], &form)
        .await
        .assert_status(StatusCode::SEE_OTHER);
    assert_eq!(created.headers["location"], "/ui/projects/p1/upload");
    let created = app
        .send(forwarded(Some(&alice.csrf)))
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(created.json()["created_by"], "alice");

    // Signing out needs the token too, and then the old token is revoked.
    post_form(
        &app,
        "/ui/logout",
        &[("cookie", &alice.cookie)],
        &[("csrf", "")],
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);
    let out = post_form(
        &app,
        "/ui/logout",
        &[("cookie", &alice.cookie)],
        &[("csrf", &alice.csrf)],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    assert!(set_cookies(&out)[0].starts_with("trove_session=; Max-Age=0"));
    let stale = get_with(&app, "/ui/search", &[("cookie", &alice.cookie)]).await;
    assert_eq!(
        stale.status,
        StatusCode::SEE_OTHER,
        "a revoked session goes back to sign-in"
    );
    assert!(
        stale.headers["location"]
            .to_str()
            .unwrap()
            .starts_with("/ui/login")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_login_form_needs_its_own_csrf_token() {
    let app = TestApp::local().await;
    app.user_token("alice", Role::Maintainer).await;
    let refused = post_form(
        &app,
        "/ui/login",
        &[("cookie", "trove_login=0123")],
        &[
            ("username", "alice"),
            ("password", "password-of-tests"),
            ("csrf", "00"),
        ],
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);
    assert!(
        set_cookies(&refused)
            .iter()
            .all(|cookie| !cookie.starts_with("trove_session="))
    );
    // Wrong passwords answer the API's status on the form.
    let wrong = sign_in_with(&app, "alice", "not-the-password", &[])
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    assert!(wrong.text().contains("Wrong username or password."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_session_cookie_is_http_only_strict_and_secure_behind_an_https_proxy() {
    let app = TestApp::local().await;
    app.user_token("alice", Role::Maintainer).await;
    for (headers, secure) in [
        (vec![], false),
        (vec![("x-forwarded-proto", "https")], true),
    ] {
        let answer = sign_in_with(&app, "alice", "password-of-tests", &headers)
            .await
            .assert_status(StatusCode::SEE_OTHER);
        let session = set_cookies(&answer)
            .into_iter()
            .find(|cookie| cookie.starts_with("trove_session="))
            .unwrap();
        let attributes: Vec<&str> = session.split("; ").skip(1).collect();
        for wanted in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(attributes.contains(&wanted), "{session}");
        }
        assert_eq!(attributes.contains(&"Secure"), secure, "{session}");
    }
    // The public API never takes the cookie as a credential.
    let session = sign_in(&app, "alice", "password-of-tests").await;
    get_with(&app, "/auth/me", &[("cookie", &session.cookie)])
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_pages_and_docs_carry_a_strict_content_security_policy() {
    let app = TestApp::local().await;
    for path in ["/ui/search", "/ui/login", "/docs", "/ui/no-such-page"] {
        let page = get_with(&app, path, &[]).await;
        assert!(
            page.status == StatusCode::OK || page.status == StatusCode::NOT_FOUND,
            "{path}"
        );
        let policy = page.headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert!(
            !policy.contains("unsafe-inline") && !policy.contains("https:"),
            "{path}: {policy}"
        );
        assert_eq!(page.headers["x-frame-options"], "DENY");
        let html = page.text();
        assert!(html.contains("<script src=\"/ui/assets/trove.js\" defer></script>"));
        assert_eq!(
            html.matches("<script").count(),
            1,
            "{path}: no inline script"
        );
        assert!(
            !html.contains("cdn.") && !html.contains("https://"),
            "{path}: nothing remote"
        );
    }
    // The reference page is generated from the OpenAPI document: every route is there.
    let docs = get_with(&app, "/docs", &[])
        .await
        .text()
        .replace("&#x2f;", "/");
    assert!(docs.contains("/projects/{project}/version/{version}/complete"));
    assert!(docs.contains("/auth/login"));
    let js = get_with(&app, "/ui/assets/trove.js", &[])
        .await
        .assert_status(StatusCode::OK);
    assert!(js.bytes.len() < 50 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_unreadable_project_is_the_same_404_page_as_a_missing_one() {
    let app = TestApp::local().await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    app.user_token("bob", Role::Maintainer).await;
    create_project(&app, &alice, "secret-model", "private").await;
    let bob = sign_in(&app, "bob", "password-of-tests").await;
    let hidden = get_with(
        &app,
        "/ui/projects/secret-model",
        &[("cookie", &bob.cookie)],
    )
    .await;
    let missing = get_with(
        &app,
        "/ui/projects/no-such-model",
        &[("cookie", &bob.cookie)],
    )
    .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(hidden.text(), missing.text(), "nothing tells the two apart");
    assert!(!hidden.text().contains("secret-model"));
    for path in [
        "/ui/projects/secret-model/versions/v1",
        "/ui/projects/secret-model/members",
        "/ui/projects/secret-model/audit",
    ] {
        let page = get_with(&app, path, &[("cookie", &bob.cookie)]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
    // Anonymous visitors get the same 404; the owner gets the page.
    assert_eq!(
        get_with(&app, "/ui/projects/secret-model", &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let owner = sign_in(&app, "alice", "password-of-tests").await;
    get_with(
        &app,
        "/ui/projects/secret-model",
        &[("cookie", &owner.cookie)],
    )
    .await
    .assert_status(StatusCode::OK);
    // Malformed names are a clear 400, never a 500.
    let bad = get_with(&app, "/ui/projects/..bad", &[("cookie", &owner.cookie)]).await;
    assert!(bad.status.is_client_error(), "{}", bad.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_redirects_browsers_to_the_ui_and_keeps_json_for_api_clients() {
    let app = TestApp::local().await;
    let browser = get_with(
        &app,
        "/",
        &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    assert_eq!(browser.headers["location"], "/ui/");
    for accept in [None, Some("application/json"), Some("*/*")] {
        let headers: Vec<(&str, &str)> = accept.map(|a| vec![("accept", a)]).unwrap_or_default();
        let client = get_with(&app, "/", &headers).await;
        assert_eq!(client.status, StatusCode::OK, "{accept:?}");
        assert_eq!(client.json()["name"], "trove");
    }
    let home = get_with(&app, "/ui/", &[])
        .await
        .assert_status(StatusCode::SEE_OTHER);
    assert_eq!(home.headers["location"], "/ui/search");
    // Other methods on / still reach the API (its JSON error).
    let post = app.request(Method::POST, "/", Body::empty()).await;
    assert!(post.status.is_client_error());
    assert_eq!(post.json()["status"], "error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_permission_form_shows_the_servers_validation_error_next_to_the_field() {
    let app = TestApp::local().await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    app.user_token("bob", Role::Guest).await;
    create_project(&app, &alice, "model-x", "private").await;
    let session = sign_in(&app, "alice", "password-of-tests").await;
    let cookie = [("cookie", session.cookie.as_str())];
    let form = get_with(&app, "/ui/projects/model-x/permissions", &cookie)
        .await
        .assert_status(StatusCode::OK);
    assert!(
        form.text().contains(">alice</textarea>"),
        "the owners are filled in"
    );

    // An unknown principal: the API's 422, shown next to the viewers field, input kept.
    let refused = post_form(
        &app,
        "/ui/projects/model-x/permissions",
        &cookie,
        &[
            ("csrf", &session.csrf),
            ("owners", "alice"),
            ("viewers", "bob\nno-such-user"),
            ("read_access", "viewers"),
        ],
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text()
    );
    let html = refused.text();
    assert!(html.contains("id=\"viewers-error\""), "{html}");
    assert!(
        html.contains("no-such-user</textarea>"),
        "the input is kept"
    );
    let profile = app
        .get_as("/projects/model-x/permissions", &alice)
        .await
        .json();
    assert_eq!(profile["viewers"], json!([]), "nothing changed: {profile}");

    // A valid change is saved through the API.
    let saved = post_form(
        &app,
        "/ui/projects/model-x/permissions",
        &cookie,
        &[
            ("csrf", &session.csrf),
            ("owners", "alice"),
            ("viewers", "bob"),
            ("read_access", "viewers"),
        ],
    )
    .await
    .assert_status(StatusCode::OK);
    assert!(saved.text().contains("id=\"permissions-saved\""));
    let profile = app
        .get_as("/projects/model-x/permissions", &alice)
        .await
        .json();
    assert_eq!(profile["viewers"], json!(["bob"]));
    // A viewer may not change it: the API's 403, the form untouched.
    let bob = sign_in(&app, "bob", "password-of-tests").await;
    let denied = post_form(
        &app,
        "/ui/projects/model-x/permissions",
        &[("cookie", &bob.cookie)],
        &[
            ("csrf", &bob.csrf),
            ("owners", "bob"),
            ("read_access", "public"),
        ],
    )
    .await;
    assert!(
        denied.status == StatusCode::FORBIDDEN || denied.status == StatusCode::NOT_FOUND,
        "{}",
        denied.status
    );
    let profile = app
        .get_as("/projects/model-x/permissions", &alice)
        .await
        .json();
    assert_eq!(profile["owners"], json!(["alice"]));
}

/// The admin pages answer admins, and the global audit log is filtered by action; a maintainer
/// is refused both.
async fn step_admin_pages_are_for_admins(app: &TestApp, admin: &Session, maintainer: &Session) {
    for path in [
        "/ui/admin/users",
        "/ui/admin/groups",
        "/ui/admin/sync",
        "/ui/admin/audit",
    ] {
        let page = get_with(app, path, &[("cookie", &admin.cookie)]).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text());
    }
    assert!(
        get_with(app, "/ui/admin/users", &[("cookie", &admin.cookie)])
            .await
            .text()
            .contains("alice")
    );
    let sync = get_with(app, "/ui/admin/sync", &[("cookie", &admin.cookie)])
        .await
        .text();
    assert!(sync.contains("id=\"sync-status\">ok<"), "{sync}");
    let denied = get_with(app, "/ui/admin/users", &[("cookie", &maintainer.cookie)])
        .await
        .assert_status(StatusCode::FORBIDDEN);
    assert!(!denied.text().contains("root"), "no account listed");
    // The global audit log: admins only, filtered by action.
    let audit = get_with(
        app,
        "/ui/admin/audit?action=auth.login",
        &[("cookie", &admin.cookie)],
    )
    .await
    .assert_status(StatusCode::OK);
    let audit = audit.text();
    assert!(
        audit.contains("<code>auth.login</code>") && !audit.contains("<code>project.create</code>"),
        "{audit}"
    );
    get_with(app, "/ui/admin/audit", &[("cookie", &maintainer.cookie)])
        .await
        .assert_status(StatusCode::FORBIDDEN);
}

/// Role change through the form; an unknown role is refused on the page.
async fn step_a_role_change_through_the_form(app: &TestApp, admin: &Session) {
    // Role change through the form.
    post_form(
        app,
        "/ui/admin/users/alice",
        &[("cookie", &admin.cookie)],
        &[("csrf", &admin.csrf), ("role", "developer")],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    let account = app
        .get_as(
            "/users/alice",
            &app.login("root", "password-of-tests").await,
        )
        .await;
    assert_eq!(account.json()["role"], "developer");
    let bad = post_form(
        app,
        "/ui/admin/users/alice",
        &[("cookie", &admin.cookie)],
        &[("csrf", &admin.csrf), ("role", "emperor")],
    )
    .await
    .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text().contains("id=\"admin-error\""));
}

/// An API key: its secret on the creation answer only, and it works.
async fn step_an_api_key_secret_shows_once(app: &TestApp, admin: &Session) {
    // An API key: its secret on the creation answer only, and it works.
    let created = post_form(
        app,
        "/ui/keys",
        &[("cookie", &admin.cookie)],
        &[
            ("csrf", &admin.csrf),
            ("name", "ci"),
            ("scope_kind", "project"),
            ("scope", "model-y"),
            ("access", "read"),
            ("expires_in_days", "30"),
        ],
    )
    .await
    .assert_status(StatusCode::OK);
    let html = created.text();
    let marker = "id=\"new-key-secret\">";
    let start = html.find(marker).expect("the secret is shown") + marker.len();
    let secret = html[start..].split('<').next().unwrap().to_owned();
    assert!(secret.len() > 20, "{secret}");
    let listing = get_with(app, "/ui/keys", &[("cookie", &admin.cookie)])
        .await
        .text();
    assert!(
        listing.contains("ci") && !listing.contains(&secret),
        "shown once"
    );
    app.get_as("/projects/model-y", &secret)
        .await
        .assert_status(StatusCode::OK);
}

/// Groups: created, then members added and removed through each group's form (a forged form
/// and an invalid name refused).
async fn step_groups_through_their_forms(app: &TestApp, admin: &Session) {
    // Groups: created, then members added and removed through each group's form.
    app.user_token("bob", Role::Developer).await;
    post_form(
        app,
        "/ui/admin/groups",
        &[("cookie", &admin.cookie)],
        &[
            ("csrf", &admin.csrf),
            ("name", "vision"),
            ("members", "alice"),
        ],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    let root = app.login("root", "password-of-tests").await;
    post_form(
        app,
        "/ui/admin/groups/vision/members",
        &[("cookie", &admin.cookie)],
        &[("csrf", "00"), ("add", "bob")],
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);
    post_form(
        app,
        "/ui/admin/groups/vision/members",
        &[("cookie", &admin.cookie)],
        &[("csrf", &admin.csrf), ("add", "bob"), ("remove", "alice")],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    let group = app.get_as("/groups/vision", &root).await;
    assert_eq!(group.json()["members"], json!(["bob"]), "{}", group.text());
    let invalid = post_form(
        app,
        "/ui/admin/groups/vision/members",
        &[("cookie", &admin.cookie)],
        &[("csrf", &admin.csrf), ("add", "not a name!")],
    )
    .await
    .assert_status(StatusCode::BAD_REQUEST);
    assert!(invalid.text().contains("id=\"admin-error\""));
    let listing = get_with(app, "/ui/admin/groups", &[("cookie", &admin.cookie)])
        .await
        .text();
    assert!(
        listing.contains("action=\"/ui/admin/groups/vision/members\""),
        "{listing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_admin_pages_are_the_apis_admin_routes_and_api_key_secrets_show_once() {
    let app = TestApp::local().await;
    app.user_token("root", Role::Admin).await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    create_project(&app, &alice, "model-y", "private").await;
    let admin = sign_in(&app, "root", "password-of-tests").await;
    let maintainer = sign_in(&app, "alice", "password-of-tests").await;
    step_admin_pages_are_for_admins(&app, &admin, &maintainer).await;

    step_a_role_change_through_the_form(&app, &admin).await;

    step_an_api_key_secret_shows_once(&app, &admin).await;

    step_groups_through_their_forms(&app, &admin).await;
}

/// A grant the API refuses (owner level is not offered; maintainer is refused) shows its reason;
/// developer is granted.
async fn step_a_refused_grant_then_a_granted_one(
    app: &TestApp,
    cookie: &[(&str, &str)],
    owner: &Session,
) {
    // A grant the API refuses (owner level is not offered; maintainer is refused): its reason.
    let refused = post_form(
        app,
        "/ui/projects/shared-model/members",
        cookie,
        &[
            ("csrf", &owner.csrf),
            ("principal", "dev"),
            ("level", "maintainer"),
        ],
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text()
    );
    assert!(refused.text().contains("id=\"members-error\""));
    post_form(
        app,
        "/ui/projects/shared-model/members",
        cookie,
        &[
            ("csrf", &owner.csrf),
            ("principal", "dev"),
            ("level", "developer"),
        ],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
}

/// bob cannot use the forms either: his revoke of dev is the API's 404 page, dev stays.
async fn step_a_revoked_member_cannot_use_the_forms(app: &TestApp, bob: &Session, alice: &str) {
    // bob cannot use the forms either: his revoke of dev is the API's 404 page.
    post_form(
        app,
        "/ui/projects/shared-model/members/revoke",
        &[("cookie", &bob.cookie)],
        &[("csrf", &bob.csrf), ("principal", "dev")],
    )
    .await
    .assert_status(StatusCode::NOT_FOUND);
    let members = app
        .get_as("/projects/shared-model/members", alice)
        .await
        .json();
    assert!(members.to_string().contains("\"dev\""), "{members}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_members_page_grants_shares_and_revokes_through_the_api() {
    let app = TestApp::local().await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    app.user_token("bob", Role::Guest).await;
    app.user_token("dev", Role::Developer).await;
    create_project(&app, &alice, "shared-model", "private").await;
    let owner = sign_in(&app, "alice", "password-of-tests").await;
    let bob = sign_in(&app, "bob", "password-of-tests").await;
    let cookie = [("cookie", owner.cookie.as_str())];
    let bob_sees = |status: StatusCode| {
        let app = &app;
        let cookie = bob.cookie.clone();
        async move {
            let page = get_with(app, "/ui/projects/shared-model", &[("cookie", &cookie)]).await;
            assert_eq!(page.status, status);
        }
    };
    bob_sees(StatusCode::NOT_FOUND).await;

    // A malformed date is a clear 400 on the page, nothing shared.
    let bad = post_form(
        &app,
        "/ui/projects/shared-model/share",
        &cookie,
        &[
            ("csrf", &owner.csrf),
            ("principal", "bob"),
            ("expires_on", "next week"),
        ],
    )
    .await
    .assert_status(StatusCode::BAD_REQUEST);
    assert!(bad.text().contains("id=\"members-error\""));
    bob_sees(StatusCode::NOT_FOUND).await;

    let until = (chrono::Utc::now() + chrono::Duration::days(7))
        .date_naive()
        .to_string();
    post_form(
        &app,
        "/ui/projects/shared-model/share",
        &cookie,
        &[
            ("csrf", &owner.csrf),
            ("principal", "bob"),
            ("expires_on", &until),
        ],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    bob_sees(StatusCode::OK).await;
    let page = get_with(&app, "/ui/projects/shared-model/members", &cookie)
        .await
        .text();
    assert!(
        page.contains(&format!(
            "until <time datetime=\"{until}T23:59:59Z\">{until}</time>"
        )),
        "{page}"
    );

    step_a_refused_grant_then_a_granted_one(&app, &cookie, &owner).await;

    // Revoke: bob is gone at once.
    post_form(
        &app,
        "/ui/projects/shared-model/members/revoke",
        &cookie,
        &[("csrf", &owner.csrf), ("principal", "bob")],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    bob_sees(StatusCode::NOT_FOUND).await;
    step_a_revoked_member_cannot_use_the_forms(&app, &bob, &alice).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_namespaces_are_created_granted_and_revoked_by_admins_only() {
    let app = TestApp::local().await;
    app.user_token("root", Role::Admin).await;
    app.user_token("dev", Role::Developer).await;
    let admin = sign_in(&app, "root", "password-of-tests").await;
    let dev = sign_in(&app, "dev", "password-of-tests").await;
    let cookie = [("cookie", admin.cookie.as_str())];
    // A developer's attempt is the API's refusal, shown on the page; nothing is created.
    let refused = post_form(
        &app,
        "/ui/namespaces",
        &[("cookie", &dev.cookie)],
        &[
            ("csrf", &dev.csrf),
            ("name", "speech"),
            ("visibility", "private"),
        ],
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);
    assert!(refused.text().contains("id=\"namespaces-error\""));
    let invalid = post_form(
        &app,
        "/ui/namespaces",
        &cookie,
        &[("csrf", &admin.csrf), ("name", "Bad Name!")],
    )
    .await;
    assert_eq!(
        invalid.status,
        StatusCode::BAD_REQUEST,
        "{}",
        invalid.text()
    );

    let created = post_form(
        &app,
        "/ui/namespaces",
        &cookie,
        &[
            ("csrf", &admin.csrf),
            ("name", "speech"),
            ("description", "Speech team"),
            ("visibility", "private"),
        ],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    assert_eq!(created.headers["location"], "/ui/namespaces/speech");
    let page = get_with(&app, "/ui/namespaces", &cookie).await.text();
    assert!(page.contains("Speech team"));
    // The developer cannot see a private namespace they have no grant in.
    get_with(&app, "/ui/namespaces/speech", &[("cookie", &dev.cookie)])
        .await
        .assert_status(StatusCode::NOT_FOUND);

    post_form(
        &app,
        "/ui/namespaces/speech/members",
        &cookie,
        &[
            ("csrf", &admin.csrf),
            ("principal", "dev"),
            ("level", "developer"),
        ],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    get_with(&app, "/ui/namespaces/speech", &[("cookie", &dev.cookie)])
        .await
        .assert_status(StatusCode::OK);
    let members = get_with(&app, "/ui/namespaces/speech", &cookie)
        .await
        .text();
    assert!(
        members.contains("developer via <code>namespace:speech</code>"),
        "{members}"
    );

    post_form(
        &app,
        "/ui/namespaces/speech/members/revoke",
        &cookie,
        &[("csrf", &admin.csrf), ("principal", "dev")],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    get_with(&app, "/ui/namespaces/speech", &[("cookie", &dev.cookie)])
        .await
        .assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_owners_mark_a_version_stable_and_viewers_get_the_apis_refusal() {
    let app = TestApp::local().await;
    let alice = app.user_token("alice", Role::Maintainer).await;
    app.user_token("bob", Role::Guest).await;
    create_project(&app, &alice, "frozen", "private").await;
    crate::common::artifacts::create_version(&app, &alice, "frozen", "v1").await;
    crate::common::artifacts::upload(&app, Some(&alice), "frozen", "v1", "a.txt", b"a").await;
    crate::common::artifacts::complete(&app, &alice, "frozen", "v1", None).await;
    let shared = app
        .post_json(
            "/projects/frozen/share",
            &alice,
            &json!({"principal": "bob"}),
        )
        .await;
    assert!(shared.status.is_success(), "{}", shared.text());
    let owner = sign_in(&app, "alice", "password-of-tests").await;
    let viewer = sign_in(&app, "bob", "password-of-tests").await;
    let page = get_with(
        &app,
        "/ui/projects/frozen/versions/v1",
        &[("cookie", &owner.cookie)],
    )
    .await
    .text();
    assert!(page.contains("id=\"stable-submit\">Mark stable"), "{page}");

    post_form(
        &app,
        "/ui/projects/frozen/versions/v1/stable",
        &[("cookie", &viewer.cookie)],
        &[("csrf", &viewer.csrf), ("stable", "true")],
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);
    post_form(
        &app,
        "/ui/projects/frozen/versions/v1/stable",
        &[("cookie", &owner.cookie)],
        &[("csrf", &owner.csrf), ("stable", "true")],
    )
    .await
    .assert_status(StatusCode::SEE_OTHER);
    let record = app
        .get_as("/projects/frozen/version/v1", &alice)
        .await
        .json();
    assert_eq!(record["stable"], true);
    let page = get_with(
        &app,
        "/ui/projects/frozen/versions/v1",
        &[("cookie", &owner.cookie)],
    )
    .await
    .text();
    assert!(page.contains("class=\"badge stable\"") && page.contains("Unmark stable"));
}
