//! The client commands (`login`, `push`, `pull`, `search`, `perms`, `share`): the real `trove`
//! binary run as a child process against a real server on a TCP port.
//!
//! Children run on the blocking pool so the test's runtime keeps serving their requests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use axum::http::{Method, StatusCode};
use serde_json::Value;
use trove::permissions::Role;

use crate::common::TestApp;

const PASSWORD: &str = "password-of-tests";

/// A served instance and a scratch home directory for the client's files.
struct Harness {
    app: TestApp,
    home: tempfile::TempDir,
}

/// What a child printed, and how it ended.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the command succeeded.
    fn ok(self) -> Self {
        assert_eq!(
            self.code,
            Some(0),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the command failed with `code`; answers stderr.
    fn failed_with(self, code: i32) -> String {
        assert_eq!(
            self.code,
            Some(code),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self.stderr
    }
}

impl Harness {
    async fn start() -> Self {
        Self {
            app: TestApp::spawn_local().await,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn url(&self) -> String {
        self.app.base_url.clone().unwrap()
    }

    fn credentials(&self) -> PathBuf {
        self.home.path().join("creds").join("credentials.json")
    }

    /// `trove ARGS` with a clean environment: HOME in the scratch directory, the credentials
    /// file under it, no token, no server.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_trove"));
        command
            .args(args)
            .current_dir(self.home.path())
            .env("HOME", self.home.path())
            .env("TROVE_CREDENTIALS", self.credentials())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("TROVE_CONFIG")
            .env_remove("TROVE_SERVER")
            .env_remove("TROVE_TOKEN")
            .env_remove("TROVE_USERNAME")
            .env_remove("TROVE_PASSWORD");
        command
    }

    /// `trove ARGS` against this server, as the holder of `token`.
    async fn run_as(&self, token: &str, args: &[&str]) -> Ran {
        let mut command = self.command(args);
        command
            .env("TROVE_SERVER", self.url())
            .env("TROVE_TOKEN", token);
        run(command, None).await
    }

    /// Creates an account with `role` and answers its access token.
    async fn account(&self, name: &str, role: Role) -> String {
        self.app.user_token(name, role).await
    }
}

/// Runs a child to its end on the blocking pool, feeding it `stdin`.
async fn run(mut command: Command, stdin: Option<String>) -> Ran {
    tokio::task::spawn_blocking(move || {
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        if let Some(text) = stdin {
            use std::io::Write as _;
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).unwrap();
        }
        Ran::from(child.wait_with_output().unwrap())
    })
    .await
    .unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough for a transfer test.
fn noise(length: usize, mut state: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(length + 8);
    while bytes.len() < length {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(length);
    bytes
}

fn write(root: &Path, relative: &str, bytes: &[u8]) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Every regular file under `root`: relative `/` path → bytes.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, directory: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(directory).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .replace('\\', "/");
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(root, root, &mut files);
    files
}

/// A small directory of two files, pushed as `project@v1` by the holder of `token`.
async fn push_small(harness: &Harness, token: &str, project: &str) -> tempfile::TempDir {
    let source = tempfile::tempdir().unwrap();
    write(source.path(), "data/table.csv", b"a,b\n1,2\n");
    write(source.path(), "notes.txt", b"small project\n");
    harness
        .run_as(
            token,
            &[
                "push",
                source.path().to_str().unwrap(),
                "--project",
                project,
                "--version",
                "v1",
                "--create-project",
            ],
        )
        .await
        .ok();
    source
}

#[tokio::test]
async fn login_with_password_stdin_stores_a_private_token_and_a_wrong_password_fails() {
    let harness = Harness::start().await;
    harness
        .app
        .state
        .auth
        .create_account("alice", PASSWORD, Role::Maintainer, None)
        .await
        .unwrap();
    let url = harness.url();

    let mut login = harness.command(&[
        "login",
        "--server",
        &url,
        "--username",
        "alice",
        "--password-stdin",
    ]);
    login.env("TROVE_TOKEN", "must-not-matter");
    let ran = run(login, Some(format!("{PASSWORD}\n"))).await.ok();
    let path = harness.credentials();
    let stored: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(stored["server"], url.as_str());
    assert_eq!(stored["username"], "alice");
    let token = stored["access_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());
    for printed in [&ran.stdout, &ran.stderr] {
        assert!(
            !printed.contains(&token),
            "the token was printed: {printed}"
        );
        assert!(!printed.contains(PASSWORD), "the password was printed");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "credentials file mode {mode:o}");
    }
    // The stored token is a working one, and the other commands use it (server included).
    let me = harness
        .app
        .bearer(Method::GET, "/auth/me", &token, None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    assert_eq!(me.json()["username"], "alice");
    let project = tempfile::tempdir().unwrap();
    write(project.path(), "file.txt", b"mine\n");
    run(
        harness.command(&[
            "push",
            project.path().to_str().unwrap(),
            "--project",
            "alices",
            "--version",
            "v1",
            "--create-project",
        ]),
        None,
    )
    .await
    .ok();

    // A wrong password: exit 1 with the server's code; the stored login is untouched.
    let stderr = run(
        harness.command(&[
            "login",
            "--server",
            &url,
            "--username",
            "alice",
            "--password-stdin",
        ]),
        Some("not-the-password\n".to_owned()),
    )
    .await
    .failed_with(3);
    assert!(stderr.contains("invalid_credentials"), "{stderr}");
    assert!(!stderr.contains("not-the-password"), "{stderr}");
    let again: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(again["access_token"], token.as_str());

    // Without TROVE_CREDENTIALS the file goes under XDG_CONFIG_HOME; TROVE_PASSWORD works too.
    let xdg = harness.home.path().join("xdg");
    let mut login = harness.command(&["login", "--server", &url, "--username", "alice"]);
    login
        .env_remove("TROVE_CREDENTIALS")
        .env("XDG_CONFIG_HOME", &xdg)
        .env("TROVE_PASSWORD", PASSWORD);
    run(login, None).await.ok();
    let xdg_file = xdg.join("trove").join("credentials.json");
    let stored: Value = serde_json::from_slice(&std::fs::read(&xdg_file).unwrap()).unwrap();
    assert_eq!(stored["server"], url.as_str());

    // No password source at all is a usage error.
    let stderr = run(
        harness.command(&["login", "--server", &url, "--username", "alice"]),
        None,
    )
    .await
    .failed_with(2);
    assert!(stderr.contains("--password-stdin"), "{stderr}");
}

#[tokio::test]
async fn push_then_pull_latest_gives_byte_identical_files() {
    let harness = Harness::start().await;
    let token = harness.account("mia", Role::Maintainer).await;
    let source = tempfile::tempdir().unwrap();
    let weights = noise(3 * 1024 * 1024 + 123, 0x9e37_79b9_7f4a_7c15);
    write(source.path(), "readme.txt", b"BERT, base size\n");
    write(source.path(), "nested/deep/weights.bin", &weights);
    write(
        source.path(),
        "nested/meta.json",
        br#"{"path": "nested/deep/weights.bin", "title": "BERT weights"}"#,
    );
    write(source.path(), "with space & 100%.txt", b"odd name\n");
    write(source.path(), "empty.dat", b"");
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.txt", b"not part of the push\n");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(
            outside.path().join("secret.txt"),
            source.path().join("outside-link.txt"),
        )
        .unwrap();
        std::os::unix::fs::symlink("readme.txt", source.path().join("alias.txt")).unwrap();
    }

    let ran = harness
        .run_as(
            &token,
            &[
                "push",
                source.path().to_str().unwrap(),
                "--project",
                "bert",
                "--version",
                "v1",
                "--create-project",
                "--title",
                "BERT base",
                "--type",
                "model",
            ],
        )
        .await
        .ok();
    assert!(ran.stdout.contains("to bert@v1"), "{}", ran.stdout);
    let record = harness
        .app
        .bearer(Method::GET, "/projects/bert", &token, None)
        .await;
    assert_eq!(record.status, StatusCode::OK, "{}", record.text());
    assert_eq!(record.json()["type"], "MODEL");
    assert_eq!(record.json()["title"], "BERT base");
    let version = harness
        .app
        .bearer(Method::GET, "/projects/bert/version/v1", &token, None)
        .await;
    assert_eq!(version.json()["status"], "completed", "{}", version.text());

    let target = tempfile::tempdir().unwrap();
    harness
        .run_as(
            &token,
            &["pull", "bert@latest", target.path().to_str().unwrap()],
        )
        .await
        .ok();
    let mut expected = tree(source.path());
    expected.remove("outside-link.txt");
    let pulled = tree(target.path());
    assert_eq!(
        pulled.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    assert!(
        pulled == expected,
        "pulled bytes differ from the pushed ones"
    );
    assert_eq!(pulled["nested/deep/weights.bin"].len(), weights.len());
    #[cfg(unix)]
    assert_eq!(pulled["alias.txt"], b"BERT, base size\n");
}

#[tokio::test]
async fn pull_of_one_id_and_search_find_the_pushed_file() {
    let harness = Harness::start().await;
    let token = harness.account("mia", Role::Maintainer).await;
    push_small(&harness, &token, "tables").await;

    let target = tempfile::tempdir().unwrap();
    harness
        .run_as(
            &token,
            &[
                "pull",
                "tables:data/table.csv@v1",
                target.path().to_str().unwrap(),
            ],
        )
        .await
        .ok();
    let pulled = tree(target.path());
    assert_eq!(pulled.len(), 1, "{:?}", pulled.keys());
    assert_eq!(pulled["data/table.csv"], b"a,b\n1,2\n");

    let ran = harness
        .run_as(&token, &["search", "_extra.project_id:tables"])
        .await
        .ok();
    let ids: Vec<&str> = ran.stdout.lines().collect();
    assert!(ids.contains(&"tables:data/table.csv@v1"), "{ids:?}");
    assert!(ids.contains(&"tables:notes.txt@v1"), "{ids:?}");
    let ran = harness
        .run_as(
            &token,
            &["search", "_extra.path:notes.txt", "--json", "--size", "5"],
        )
        .await
        .ok();
    let answer: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(answer["results"][0]["_extra"]["id"], "tables:notes.txt@v1");

    // Someone else finds nothing.
    let other = harness.account("olga", Role::Maintainer).await;
    let ran = harness
        .run_as(&other, &["search", "_extra.project_id:tables"])
        .await
        .ok();
    assert_eq!(ran.stdout.trim(), "");
}

#[tokio::test]
async fn perms_show_and_set_round_trip() {
    let harness = Harness::start().await;
    let token = harness.account("mia", Role::Maintainer).await;
    harness.account("bob", Role::Guest).await;
    push_small(&harness, &token, "guarded").await;

    let ran = harness
        .run_as(&token, &["perms", "show", "guarded"])
        .await
        .ok();
    let profile: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(profile["owners"], serde_json::json!(["mia"]), "{profile}");

    let ran = harness
        .run_as(
            &token,
            &[
                "perms",
                "set",
                "guarded",
                r#"{"viewers": ["bob"], "read_access": "viewers"}"#,
            ],
        )
        .await
        .ok();
    let job: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert!(job["job_id"].is_string(), "{job}");
    let ran = harness
        .run_as(&token, &["perms", "show", "guarded"])
        .await
        .ok();
    let profile: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(profile["viewers"], serde_json::json!(["bob"]), "{profile}");
    assert_eq!(profile["owners"], serde_json::json!(["mia"]), "{profile}");

    // A version profile (resolution takes it whole: it names its owners), waiting for the
    // re-indexing job.
    let ran = harness
        .run_as(
            &token,
            &[
                "perms",
                "set",
                "guarded",
                "--version",
                "v1",
                r#"{"owners": ["mia"], "read_access": "owners"}"#,
                "--wait",
            ],
        )
        .await
        .ok();
    let job: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let ran = harness
        .run_as(&token, &["perms", "show", "guarded", "--version", "v1"])
        .await
        .ok();
    let profile: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(profile["read_access"], "owners", "{profile}");
    assert_eq!(profile["scope"], "version", "{profile}");

    // Not a JSON object: a usage error, nothing sent.
    let stderr = harness
        .run_as(&token, &["perms", "set", "guarded", "[1, 2]"])
        .await
        .failed_with(2);
    assert!(stderr.contains("JSON object"), "{stderr}");
    // The server's refusal comes back with its code.
    let stderr = harness
        .run_as(
            &token,
            &["perms", "set", "guarded", r#"{"read_access": "everyone"}"#],
        )
        .await
        .failed_with(1);
    assert!(stderr.contains("(code "), "{stderr}");
}

#[tokio::test]
async fn share_lets_the_grantee_pull_until_revoked() {
    let harness = Harness::start().await;
    let owner = harness.account("mia", Role::Maintainer).await;
    let bob = harness.account("bob", Role::Guest).await;
    let source = push_small(&harness, &owner, "shared").await;
    let pull =
        |directory: &Path| ["pull", "shared@v1", directory.to_str().unwrap()].map(str::to_owned);

    let before = tempfile::tempdir().unwrap();
    let stderr = harness
        .run_as(&bob, &pull(before.path()).each_ref().map(String::as_str))
        .await
        .failed_with(3);
    assert!(stderr.contains("not_found"), "{stderr}");

    let ran = harness
        .run_as(
            &owner,
            &[
                "share",
                "shared",
                "bob",
                "--expires-at",
                "2999-01-01T00:00:00Z",
            ],
        )
        .await
        .ok();
    assert!(ran.stdout.contains("bob"), "{}", ran.stdout);
    let during = tempfile::tempdir().unwrap();
    harness
        .run_as(&bob, &pull(during.path()).each_ref().map(String::as_str))
        .await
        .ok();
    assert!(tree(during.path()) == tree(source.path()));
    // Read-only: bob may not change the profile.
    let stderr = harness
        .run_as(&bob, &["perms", "set", "shared", r#"{"viewers": []}"#])
        .await
        .failed_with(3);
    assert!(stderr.contains("forbidden"), "{stderr}");

    harness
        .run_as(&owner, &["share", "shared", "bob", "--revoke"])
        .await
        .ok();
    let after = tempfile::tempdir().unwrap();
    let stderr = harness
        .run_as(&bob, &pull(after.path()).each_ref().map(String::as_str))
        .await
        .failed_with(3);
    assert!(stderr.contains("not_found"), "{stderr}");
    assert!(tree(after.path()).is_empty());
}

#[tokio::test]
async fn errors_carry_the_server_code_and_exit_non_zero() {
    let harness = Harness::start().await;
    let token = harness.account("mia", Role::Maintainer).await;

    for args in [
        &["pull", "nowhere@v1"][..],
        &["pull", "nowhere:file.txt@latest"][..],
        &["perms", "show", "nowhere"][..],
        &["share", "nowhere", "bob"][..],
    ] {
        let stderr = harness.run_as(&token, args).await.failed_with(3);
        assert!(stderr.contains("not_found"), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains(&token), "{args:?}: the token was printed");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // Pushing to a project that does not exist (no --create-project) creates nothing.
    let source = tempfile::tempdir().unwrap();
    write(source.path(), "a.txt", b"a\n");
    let stderr = harness
        .run_as(
            &token,
            &[
                "push",
                source.path().to_str().unwrap(),
                "--project",
                "nowhere",
                "--version",
                "v1",
            ],
        )
        .await
        .failed_with(3);
    assert!(stderr.contains("not_found"), "{stderr}");
    // Anonymous callers are told to log in.
    let stderr = run(
        {
            let mut command = harness.command(&["push", source.path().to_str().unwrap()]);
            command.args(["--project", "anon", "--version", "v1", "--create-project"]);
            command.env("TROVE_SERVER", harness.url());
            command
        },
        None,
    )
    .await
    .failed_with(3);
    assert!(stderr.contains("trove login"), "{stderr}");
    // Malformed targets are usage errors.
    harness
        .run_as(&token, &["pull", "just-a-name"])
        .await
        .failed_with(2);
    harness
        .run_as(&token, &["pull", "p:../escape@v1"])
        .await
        .failed_with(2);
}

#[tokio::test]
async fn an_unreachable_server_gets_a_one_line_message_naming_it() {
    let harness = Harness::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("http://127.0.0.1:{port}");
    for args in [
        &["search", "*"][..],
        &["pull", "p@latest"][..],
        &["perms", "show", "p"][..],
    ] {
        let mut command = harness.command(args);
        command.args(["--server", &server]);
        let stderr = run(command, None).await.failed_with(4);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("cannot connect"), "{stderr}");
        assert!(stderr.contains(&server), "{stderr}");
    }
}
