//! Scenarios in a real headless Chromium driven over WebDriver (chromedriver, fantoccini),
//! against a Trove instance served on a real TCP port. Each saves a screenshot under
//! `<target>/tmp/ui-screenshots/`.
//!
//! Chromium and chromedriver come from Debian's packages (`.ci/run` installs them); when
//! they are missing these tests fail and say so, they never pass silently.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::StatusCode;
use fantoccini::{Client, ClientBuilder, Locator, key::Key};
use serde_json::{Value, json};
use trove::permissions::Role;

use crate::common::artifacts::{complete, create_version, upload};
use crate::common::{TestApp, free_port};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PASSWORD: &str = "password-of-tests";

/// One browser at a time: two cores, and each Chromium is heavy.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A chromedriver process, a WebDriver session in headless Chromium, and the Trove server.
struct Browser {
    client: Client,
    driver: Child,
    base: String,
    downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where screenshots go.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots")
}

impl Browser {
    async fn start(app: &TestApp) -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the browser tests need Debian's chromium and chromium-driver \
                 packages; run .ci/run (it installs them) or `apt-get install -y chromium chromium-driver`"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let downloads = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.path().display().to_string(),
                    "download.prompt_for_download": false,
                },
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut attempts = 0;
        let client = loop {
            match ClientBuilder::rustls()
                .unwrap()
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) if attempts < 100 => {
                    attempts += 1;
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("no webdriver session from chromedriver: {error}"),
            }
        };
        Self {
            client,
            driver,
            base: app.base_url.clone().expect("served over tcp"),
            downloads,
            _profile: profile,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(error) => {
                let path = self.path().await;
                let source = self.client.source().await.unwrap_or_default();
                panic!("no {css} on {path}: {error}\n{source}")
            }
        }
    }

    async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    async fn text(&self, css: &str) -> String {
        for _ in 0..50 {
            match self.find(css).await.text().await {
                Ok(text) => return text,
                // The document changed between finding the element and reading it (a form
                // sent, its answer loading): find it again.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        self.find(css).await.text().await.unwrap()
    }

    /// The text of `css` once it contains `needle` (or what it is after 10 s): a page that
    /// follows a sent form may still show the one before for a moment.
    async fn text_containing(&self, css: &str, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text(css).await;
            if text.contains(needle) || std::time::Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a png");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn sign_in(&self, username: &str) {
        self.goto("/ui/login").await;
        self.find("#username")
            .await
            .send_keys(username)
            .await
            .unwrap();
        self.find("#password")
            .await
            .send_keys(PASSWORD)
            .await
            .unwrap();
        self.find("#sign-in-submit").await.click().await.unwrap();
        let who = self.text("#whoami").await;
        assert_eq!(who, username);
    }

    async fn sign_out(&self) {
        self.find("#sign-out").await.click().await.unwrap();
        self.find("#sign-in").await;
    }

    async fn script(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// No alert is open and no injected element or handler ran.
    async fn assert_inert(&self) {
        let alert = self.client.get_alert_text().await;
        assert!(alert.is_err(), "an alert opened: {alert:?}");
        let state = self
            .script(
                "return { pwned: window.pwned === undefined ? null : window.pwned, \
                 images: document.images.length, scripts: document.scripts.length, \
                 iframes: document.querySelectorAll('iframe,object,embed').length };",
            )
            .await;
        assert_eq!(
            state,
            json!({"pwned": null, "images": 0, "scripts": 1, "iframes": 0}),
            "on {}",
            self.path().await
        );
    }

    /// Presses Tab until the focused element matches `css` (at most `limit` presses).
    async fn tab_to(&self, css: &str, limit: usize) {
        for _ in 0..limit {
            let hit = self
                .client
                .execute(
                    "return document.activeElement && document.activeElement.matches(arguments[0]);",
                    vec![json!(css)],
                )
                .await
                .unwrap();
            if hit == json!(true) {
                return;
            }
            self.client
                .active_element()
                .await
                .unwrap()
                .send_keys(&Key::Tab.to_string())
                .await
                .unwrap();
        }
        panic!("tab never reached {css} on {}", self.path().await);
    }

    /// Presses a key on the focused element.
    async fn press(&self, key: Key) {
        self.client
            .active_element()
            .await
            .unwrap()
            .send_keys(&key.to_string())
            .await
            .unwrap();
    }

    async fn close(self) {
        let client = self.client.clone();
        client.close().await.unwrap();
    }
}

/// An instance on a real TCP port with the given accounts (all with [`PASSWORD`]).
async fn app_with(accounts: &[(&str, Role)]) -> (TestApp, Vec<String>) {
    let app = TestApp::spawn_local().await;
    let mut tokens = Vec::new();
    for (name, role) in accounts {
        tokens.push(app.user_token(name, *role).await);
    }
    (app, tokens)
}

/// Creates a project through the API.
async fn project(app: &TestApp, token: &str, body: Value) {
    app.post_json("/projects", token, &body)
        .await
        .assert_status(StatusCode::CREATED);
}

/// Pushes a completed version with `files` through the API.
async fn push(app: &TestApp, token: &str, project: &str, version: &str, files: &[(&str, &[u8])]) {
    create_version(app, token, project, version).await;
    for (path, bytes) in files {
        upload(app, Some(token), project, version, path, bytes)
            .await
            .assert_status(StatusCode::CREATED);
    }
    complete(app, token, project, version, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sign_in_shows_who_is_signed_in_and_rejects_a_wrong_password() {
    let _one = ONE_BROWSER.lock().await;
    let (app, _) = app_with(&[("alice", Role::Maintainer)]).await;
    let browser = Browser::start(&app).await;
    // A wrong password: the form again, with the reason, no session.
    browser.goto("/ui/login").await;
    browser
        .find("#username")
        .await
        .send_keys("alice")
        .await
        .unwrap();
    browser
        .find("#password")
        .await
        .send_keys("wrong-password")
        .await
        .unwrap();
    browser.find("#sign-in-submit").await.click().await.unwrap();
    assert_eq!(
        browser.text("#login-error").await,
        "Wrong username or password."
    );
    assert_eq!(browser.count("#whoami").await, 0);
    // The right one: signed in, the cookie invisible to scripts.
    browser.sign_in("alice").await;
    assert_eq!(browser.path().await, "/ui/search");
    assert_eq!(browser.script("return document.cookie;").await, json!(""));
    browser.screenshot("sign-in").await;
    browser.sign_out().await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_search_finds_a_project_by_a_title_word_and_narrows_by_a_facet() {
    let _one = ONE_BROWSER.lock().await;
    let (app, tokens) = app_with(&[("alice", Role::Maintainer)]).await;
    let alice = &tokens[0];
    project(
        &app,
        alice,
        json!({"project_id": "sentiment-model", "title": "Multilingual sentiment classifier",
        "type": "MODEL", "visibility": "private", "tags": ["nlp", "sentiment"],
        "description": "A classifier of review polarity in 12 languages."}),
    )
    .await;
    project(
        &app,
        alice,
        json!({"project_id": "sentiment-reviews", "title": "Sentiment reviews corpus",
        "type": "DATASET", "visibility": "private", "tags": ["nlp"]}),
    )
    .await;
    project(
        &app,
        alice,
        json!({"project_id": "resnet", "title": "Image classifier",
        "type": "MODEL", "visibility": "private"}),
    )
    .await;
    push(
        &app,
        alice,
        "sentiment-model",
        "v1",
        &[("weights.bin", b"0123456789")],
    )
    .await;
    push(
        &app,
        alice,
        "sentiment-reviews",
        "2026-11",
        &[("train.csv", b"text,label\n")],
    )
    .await;

    let browser = Browser::start(&app).await;
    browser.sign_in("alice").await;
    browser
        .find("#q")
        .await
        .send_keys("sentiment")
        .await
        .unwrap();
    browser
        .find("#search-form button")
        .await
        .click()
        .await
        .unwrap();
    browser.find(".hit").await;
    let titles = browser.text(".results").await;
    assert!(
        titles.contains("Multilingual sentiment classifier"),
        "{titles}"
    );
    assert!(titles.contains("Sentiment reviews corpus"), "{titles}");
    assert!(!titles.contains("Image classifier"), "{titles}");
    assert!(browser.count(".snippet mark").await > 0, "highlights");
    // The type facet lists both types; DATASET narrows to the corpus.
    let facet = browser.text("[data-facet=type]").await;
    assert!(
        facet.contains("MODEL") && facet.contains("DATASET"),
        "{facet}"
    );
    browser.screenshot("search").await;
    browser
        .find("[data-facet=type] a[href*='type=DATASET']")
        .await
        .click()
        .await
        .unwrap();
    browser.find(".filters").await;
    let narrowed = browser.text(".results").await;
    assert!(narrowed.contains("Sentiment reviews corpus"), "{narrowed}");
    assert!(
        !narrowed.contains("Multilingual sentiment classifier"),
        "{narrowed}"
    );
    assert!(
        browser.path().await.contains("type=DATASET"),
        "a URL to paste"
    );
    // Projects only.
    browser
        .find(".kinds a[href*='kind=project']")
        .await
        .click()
        .await
        .unwrap();
    browser.find(".kinds a.active[href*='kind=project']").await;
    assert!(browser.count(".hit[data-kind=file]").await == 0);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_project_and_version_pages_show_versions_files_and_metadata() {
    let _one = ONE_BROWSER.lock().await;
    let (app, tokens) = app_with(&[("alice", Role::Maintainer)]).await;
    let alice = &tokens[0];
    project(
        &app,
        alice,
        json!({"project_id": "bert-base", "title": "BERT base uncased",
        "type": "MODEL", "visibility": "private", "tags": ["nlp", "transformer"],
        "description": "12-layer, 768-hidden, 12-heads."}),
    )
    .await;
    let metadata =
        json!({"path": "model.safetensors", "framework": "pytorch", "metrics": {"glue": 79.6}});
    push(
        &app,
        alice,
        "bert-base",
        "v1",
        &[("model.safetensors", b"weights-v1")],
    )
    .await;
    push(
        &app,
        alice,
        "bert-base",
        "v2",
        &[
            ("model.safetensors", b"weights-v2-longer"),
            ("model.safetensors.json", metadata.to_string().as_bytes()),
            ("vocab.txt", b"[PAD]\n[UNK]\n"),
        ],
    )
    .await;
    app.patch_json(
        "/projects/bert-base/version/v1",
        alice,
        &json!({"stable": true}),
    )
    .await
    .assert_status(StatusCode::OK);

    let browser = Browser::start(&app).await;
    browser.sign_in("alice").await;
    browser.goto("/ui/projects/bert-base").await;
    assert_eq!(browser.text("#project-title").await, "BERT base uncased");
    let versions = browser.text("table.versions").await;
    assert!(
        versions.contains("v1") && versions.contains("v2"),
        "{versions}"
    );
    let rows = browser
        .client
        .find_all(Locator::Css("table.versions tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let newest = rows[0].text().await.unwrap();
    assert!(
        newest.starts_with("v2") && newest.contains("latest") && newest.contains("NUM-2"),
        "{newest}"
    );
    let oldest = rows[1].text().await.unwrap();
    assert!(
        oldest.contains("stable") && !oldest.contains("latest"),
        "{oldest}"
    );
    browser.screenshot("project").await;

    browser.find("a.version-link").await.click().await.unwrap();
    browser.find("table.files").await;
    assert_eq!(browser.path().await, "/ui/projects/bert-base/versions/v2");
    let files = browser.text("table.files").await;
    for expected in [
        "model.safetensors",
        "vocab.txt",
        "17 B",
        "sha256",
        &crate::common::artifacts::md5_hex(b"weights-v2-longer"),
    ] {
        assert!(files.contains(expected), "{expected} in {files}");
    }
    let document = browser.text("pre.json").await;
    let shown: Value = serde_json::from_str(&document).expect("the metadata is shown as JSON");
    assert_eq!(shown["metrics"]["glue"], 79.6);
    assert!(
        document.contains("\n  \"framework\": \"pytorch\""),
        "formatted: {document}"
    );
    let download = browser
        .find("a.download")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(
        download.starts_with("/ui/download/bert-base%3A"),
        "{download}"
    );
    browser.screenshot("version").await;
    // At phone width nothing overflows the page sideways (wide tables scroll in their box).
    browser.client.set_window_size(390, 844).await.unwrap();
    for path in [
        "/ui/search?q=bert",
        "/ui/projects/bert-base",
        "/ui/projects/bert-base/versions/v2",
    ] {
        browser.goto(path).await;
        browser.find("main").await;
        let fits = browser
            .script("return document.documentElement.scrollWidth <= window.innerWidth;")
            .await;
        assert_eq!(fits, json!(true), "{path} overflows at phone width");
    }
    browser.screenshot("phone").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_creates_a_project_uploads_three_files_with_progress_and_finds_them() {
    let _one = ONE_BROWSER.lock().await;
    let (app, _) = app_with(&[("alice", Role::Maintainer)]).await;
    let files = tempfile::tempdir().unwrap();
    let names = ["alpha-weights.bin", "beta-config.yaml", "gamma-notes.txt"];
    let mut paths = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let path = files.path().join(name);
        std::fs::write(&path, vec![b'a' + index as u8; 300_000 * (index + 1)]).unwrap();
        paths.push(path.display().to_string());
    }
    let browser = Browser::start(&app).await;
    browser.sign_in("alice").await;
    browser.goto("/ui/new").await;
    browser
        .find("#project_id")
        .await
        .send_keys("speech-model")
        .await
        .unwrap();
    browser
        .find("#title")
        .await
        .send_keys("Speech recognizer")
        .await
        .unwrap();
    browser
        .find("#tags")
        .await
        .send_keys("audio, asr")
        .await
        .unwrap();
    browser.find("#create-project").await.click().await.unwrap();
    browser.find("#upload-form").await;
    assert_eq!(browser.path().await, "/ui/projects/speech-model/upload");
    browser
        .find("#version")
        .await
        .send_keys("v1")
        .await
        .unwrap();
    browser
        .find("#changelog")
        .await
        .send_keys("first push from the browser")
        .await
        .unwrap();
    browser
        .find("#files")
        .await
        .send_keys(&paths.join("\n"))
        .await
        .unwrap();
    assert_eq!(browser.count("#file-list li").await, 3);
    browser.find("#upload-submit").await.click().await.unwrap();
    let done = browser
        .client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("#upload-done, #upload-status.alert"))
        .await
        .unwrap();
    assert_eq!(
        done.attr("id").await.unwrap().as_deref(),
        Some("upload-done"),
        "{}",
        done.text().await.unwrap()
    );
    // Every bar is full and every checksum was verified in the browser.
    let bars = browser
        .script("return Array.from(document.querySelectorAll('#file-list progress')).map(p => [p.value, p.max]);")
        .await;
    let bars = bars.as_array().unwrap();
    assert_eq!(bars.len(), 3);
    for bar in bars {
        assert!(
            bar[0].as_f64().unwrap() >= bar[1].as_f64().unwrap() && bar[1].as_f64().unwrap() > 1.0,
            "{bar}"
        );
    }
    let list = browser.text("#file-list").await;
    assert_eq!(list.matches("sha256 verified").count(), 3, "{list}");
    browser.screenshot("upload").await;
    // Complete and searchable: find a file by a word of its name.
    browser.find("#upload-done").await.click().await.unwrap();
    let table = browser.text("table.files").await;
    assert!(names.iter().all(|name| table.contains(name)), "{table}");
    browser.goto("/ui/search?q=gamma&kind=file").await;
    let results = browser.text(".results").await;
    assert!(results.contains("gamma-notes.txt"), "{results}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_share_with_an_expiry_lets_the_colleague_find_it_and_a_stranger_gets_the_404_page()
{
    let _one = ONE_BROWSER.lock().await;
    let (app, tokens) = app_with(&[
        ("alice", Role::Maintainer),
        ("bob", Role::Guest),
        ("carol", Role::Guest),
    ])
    .await;
    let alice = &tokens[0];
    project(
        &app,
        alice,
        json!({"project_id": "climate-runs", "title": "Climate ensemble runs",
        "type": "RUN", "visibility": "private"}),
    )
    .await;
    push(
        &app,
        alice,
        "climate-runs",
        "r1",
        &[("summary.csv", b"year,temp\n")],
    )
    .await;
    let browser = Browser::start(&app).await;
    browser.sign_in("alice").await;
    browser.goto("/ui/projects/climate-runs/members").await;
    let until = (chrono::Utc::now() + chrono::Duration::days(30)).date_naive();
    browser
        .find("#share-principal")
        .await
        .send_keys("bob")
        .await
        .unwrap();
    // A date input's typing order depends on the locale: set its value as a date picker does.
    browser.find("#share-expires").await;
    browser
        .client
        .execute(
            "document.getElementById('share-expires').value = arguments[0];",
            vec![json!(until.to_string())],
        )
        .await
        .unwrap();
    browser.find("#share-submit").await.click().await.unwrap();
    let members = browser
        .text_containing("table.members", &format!("until {until}"))
        .await;
    assert!(members.contains("bob"), "{members}");
    assert!(
        members.contains(&format!("until {until}")),
        "{until} in {members}"
    );
    browser.screenshot("members").await;
    browser.sign_out().await;

    browser.sign_in("bob").await;
    browser.goto("/ui/search?q=climate").await;
    assert!(
        browser
            .text(".results")
            .await
            .contains("Climate ensemble runs")
    );
    browser.goto("/ui/projects/climate-runs").await;
    assert_eq!(
        browser.text("#project-title").await,
        "Climate ensemble runs"
    );
    browser.sign_out().await;

    browser.sign_in("carol").await;
    browser.goto("/ui/search?q=climate").await;
    assert!(!browser.text("main").await.contains("Climate ensemble runs"));
    browser.goto("/ui/projects/climate-runs").await;
    let page = browser.find(".error-page").await;
    assert_eq!(
        page.attr("data-status").await.unwrap().as_deref(),
        Some("404")
    );
    assert!(!browser.text("main").await.contains("climate"));
    browser.screenshot("not-found").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_developer_granted_on_one_project_of_a_namespace_sees_it_and_not_its_sibling() {
    let _one = ONE_BROWSER.lock().await;
    let (app, tokens) = app_with(&[("root", Role::Admin), ("dave", Role::Developer)]).await;
    let admin = &tokens[0];
    app.post_json(
        "/namespaces",
        admin,
        &json!({"name": "vision", "description": "Vision team"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    for (id, title) in [
        ("vision-detector", "Vision detector"),
        ("vision-segmenter", "Vision segmenter"),
    ] {
        project(
            &app,
            admin,
            json!({"project_id": id, "title": title, "type": "MODEL",
            "visibility": "private", "namespace": "vision"}),
        )
        .await;
        push(&app, admin, id, "v1", &[("weights.bin", b"w")]).await;
    }
    let granted = app
        .post_json(
            "/projects/vision-detector/members",
            admin,
            &json!({"principal": "dave", "level": "developer"}),
        )
        .await;
    assert!(granted.status.is_success(), "{}", granted.text());

    let browser = Browser::start(&app).await;
    browser.sign_in("dave").await;
    browser.goto("/ui/search?q=vision").await;
    let results = browser.text("main").await;
    assert!(results.contains("Vision detector"), "{results}");
    assert!(
        !results.contains("Vision segmenter") && !results.contains("vision-segmenter"),
        "{results}"
    );
    browser.goto("/ui/projects/vision-detector").await;
    assert_eq!(browser.text("#project-title").await, "Vision detector");
    browser.goto("/ui/projects/vision-segmenter").await;
    let page = browser.find(".error-page").await;
    assert_eq!(
        page.attr("data-status").await.unwrap().as_deref(),
        Some("404")
    );
    browser.screenshot("namespace-developer").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_script_payloads_in_every_user_field_stay_inert_and_literal() {
    let _one = ONE_BROWSER.lock().await;
    let (app, tokens) = app_with(&[("alice", Role::Maintainer)]).await;
    let alice = &tokens[0];
    let script = "<script>window.pwned=1;alert(1)</script>";
    let image = "\"><img src=x onerror=\"window.pwned=2;alert(2)\">";
    project(
        &app,
        alice,
        json!({"project_id": "payload", "title": format!("Title {script}"),
        "type": "OTHER", "visibility": "private", "tags": [format!("tag{image}")],
        "description": format!("Description {image} {script}")}),
    )
    .await;
    let evil_path = "<img src=x onerror=alert(3)>.txt";
    let metadata = json!({"path": evil_path, "note": image, "nested": {"html": script}});
    create_version(&app, alice, "payload", "v1").await;
    for (path, bytes) in [
        (evil_path, b"x".to_vec()),
        ("meta.json", metadata.to_string().into_bytes()),
    ] {
        let path = crate::common::artifacts::enc(path).replace('+', "%20");
        upload(&app, Some(alice), "payload", "v1", &path, &bytes)
            .await
            .assert_status(StatusCode::CREATED);
    }
    complete(&app, alice, "payload", "v1", None).await;
    // A directory-group principal carrying a payload, shared with.
    let shared = app
        .post_json(
            "/projects/payload/share",
            alice,
            &json!({"principal": format!("CN={image}")}),
        )
        .await;
    let shared_principal = shared.status.is_success();

    let browser = Browser::start(&app).await;
    browser.sign_in("alice").await;
    browser.goto("/ui/search?q=payload").await;
    browser.find(".hit").await;
    browser.assert_inert().await;
    assert!(
        browser
            .text(".results")
            .await
            .contains(&format!("Title {script}"))
    );
    browser
        .goto(&format!(
            "/ui/search?q=&tag={}",
            crate::common::artifacts::enc(&format!("tag{image}"))
        ))
        .await;
    browser.assert_inert().await;
    browser.goto("/ui/projects/payload").await;
    browser.assert_inert().await;
    assert_eq!(
        browser.text("#project-title").await,
        format!("Title {script}")
    );
    assert_eq!(
        browser.text("#project-description").await,
        format!("Description {image} {script}")
    );
    assert!(browser.text(".tags").await.contains(&format!("tag{image}")));
    browser.goto("/ui/projects/payload/versions/v1").await;
    browser.assert_inert().await;
    assert!(browser.text("table.files").await.contains(evil_path));
    let document = browser.text("pre.json").await;
    assert!(
        document.contains("onerror") && document.contains("<script>"),
        "{document}"
    );
    browser.goto("/ui/projects/payload/members").await;
    browser.assert_inert().await;
    if shared_principal {
        assert!(browser.text("table.members").await.contains("CN=\"><img"));
    }
    browser.screenshot("payloads").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_keyboard_only_navigation_goes_from_search_to_a_download() {
    let _one = ONE_BROWSER.lock().await;
    let (app, tokens) = app_with(&[("alice", Role::Maintainer)]).await;
    let alice = &tokens[0];
    project(
        &app,
        alice,
        json!({"project_id": "tokenizer", "title": "Keyboard tokenizer",
        "type": "MODEL", "visibility": "public"}),
    )
    .await;
    let public = app
        .put_json(
            "/projects/tokenizer/permissions",
            alice,
            &json!({"download_access": "public"}),
        )
        .await;
    assert!(public.status.is_success(), "{}", public.text());
    push(
        &app,
        alice,
        "tokenizer",
        "v1",
        &[("vocab.txt", b"hello\nworld\n")],
    )
    .await;

    // Anonymous: the project is public, downloads too.
    let browser = Browser::start(&app).await;
    browser.goto("/ui/search").await;
    browser.tab_to("#q", 10).await;
    let outline = browser
        .script("return getComputedStyle(document.activeElement).outlineStyle;")
        .await;
    assert_ne!(outline, json!("none"), "focus is visible");
    browser
        .client
        .active_element()
        .await
        .unwrap()
        .send_keys("vocab")
        .await
        .unwrap();
    browser.press(Key::Enter).await;
    browser.find(".hit").await;
    browser.tab_to(".hit[data-kind=file] a.hit-link", 40).await;
    browser.press(Key::Enter).await;
    browser.find("table.files").await;
    assert_eq!(browser.path().await, "/ui/projects/tokenizer/versions/v1");
    browser.tab_to("table.files a.download", 40).await;
    browser.screenshot("keyboard").await;
    browser.press(Key::Enter).await;
    let file = browser.downloads.path().join("vocab.txt");
    for _ in 0..100 {
        if std::fs::read(&file).is_ok_and(|bytes| bytes == b"hello\nworld\n") {
            browser.close().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the download did not arrive in {}",
        browser.downloads.path().display()
    );
}
