//! The client commands (`login`, `push`, `pull`, `search`, `perms`, `share`): the real `trove`
//! binary run as a child process against a real server on a TCP port.
//!
//! Children run on the blocking pool so the test's runtime keeps serving their requests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use axum::http::StatusCode;
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

    /// A served instance whose settings `configure` adjusts first.
    async fn start_with(configure: impl FnOnce(&mut trove::config::Settings)) -> Self {
        let mut app = TestApp::local_with(configure).await;
        app.serve_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        Self {
            app,
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

/// Runs a child whose stdout is a pipe already closed by its reader; answers its exit
/// status and stderr.
async fn run_into_closed_pipe(mut command: Command) -> Ran {
    tokio::task::spawn_blocking(move || {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        command
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped());
        let child = command.spawn().unwrap();
        Ran::from(child.wait_with_output().unwrap())
    })
    .await
    .unwrap()
}

/// Parses a child's stdout as JSON.
fn json_of(ran: &Ran) -> Value {
    serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}\n{}", ran.stdout, ran.stderr))
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
        .get_as("/auth/me", &token)
        .await
        .assert_status(StatusCode::OK);
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
        .get_as("/projects/bert", &token)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(record.json()["type"], "MODEL");
    assert_eq!(record.json()["title"], "BERT base");
    let version = harness
        .app
        .get_as("/projects/bert/version/v1", &token)
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
    // One line per hit: kind, id, title — projects and files.
    let ids: Vec<&str> = ran
        .stdout
        .lines()
        .filter_map(|line| line.split('\t').nth(1))
        .collect();
    assert!(ids.contains(&"tables:data/table.csv@v1"), "{ids:?}");
    assert!(ids.contains(&"tables:notes.txt@v1"), "{ids:?}");
    assert!(
        ran.stdout
            .lines()
            .any(|line| line.starts_with("file\ttables:notes.txt@v1\t")),
        "{}",
        ran.stdout
    );
    // --all follows the cursor through every page.
    let ran = harness
        .run_as(&token, &["search", "tables", "--size", "1", "--all"])
        .await
        .ok();
    let every: Vec<&str> = ran.stdout.lines().collect();
    assert!(every.len() >= 3, "{every:?}");
    assert!(
        every
            .iter()
            .any(|line| line.starts_with("project\ttables\t")),
        "{every:?}"
    );
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
    let port = crate::common::free_port();
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

/// Logs `username` in to `harness` under `profile` (the default one when `None`).
async fn login(harness: &Harness, server: &Harness, username: &str, profile: Option<&str>) -> Ran {
    let url = server.url();
    let mut args = vec!["login", "--server", &url, "--username", username];
    if let Some(profile) = profile {
        args.extend(["--profile", profile]);
    }
    let mut command = harness.command(&args);
    command.env("TROVE_PASSWORD", PASSWORD);
    run(command, None).await
}

#[tokio::test]
async fn whoami_logout_and_profiles_side_by_side() {
    let harness = Harness::start().await;
    let other = Harness::start().await;
    for (instance, name, role) in [
        (&harness, "alice", Role::Maintainer),
        (&other, "bob", Role::Guest),
    ] {
        instance
            .app
            .state
            .auth
            .create_account(name, PASSWORD, role, None)
            .await
            .unwrap();
    }
    login(&harness, &harness, "alice", None).await.ok();
    let ran = login(&harness, &other, "bob", Some("second")).await.ok();
    assert!(!ran.stdout.contains(PASSWORD));
    let second_file = harness
        .credentials()
        .with_file_name("credentials.second.json");
    assert!(second_file.is_file());

    // Each profile knows its own server and account.
    let me = json_of(&run(harness.command(&["whoami", "--json"]), None).await.ok());
    assert_eq!(me["username"], "alice", "{me}");
    assert_eq!(me["role"], "maintainer", "{me}");
    assert_eq!(me["server"], harness.url().as_str(), "{me}");
    assert!(me["expires_at"].is_string(), "{me}");
    assert!(me["groups"].is_array(), "{me}");
    let them = json_of(
        &run(
            harness.command(&["whoami", "--json", "--profile", "second"]),
            None,
        )
        .await
        .ok(),
    );
    assert_eq!(them["username"], "bob", "{them}");
    assert_eq!(them["server"], other.url().as_str(), "{them}");
    // Naming the other server finds the profile logged in to it.
    let found = json_of(
        &run(
            harness.command(&["whoami", "--json", "--server", &other.url()]),
            None,
        )
        .await
        .ok(),
    );
    assert_eq!(found["username"], "bob", "{found}");
    assert_eq!(found["profile"], "second", "{found}");
    let mut by_variable = harness.command(&["whoami"]);
    by_variable.env("TROVE_PROFILE", "second");
    let ran = run(by_variable, None).await.ok();
    assert!(ran.stdout.contains("bob"), "{}", ran.stdout);
    assert!(ran.stdout.contains(&other.url()), "{}", ran.stdout);

    // Logging out revokes the token on the server and deletes the stored login.
    let stored: Value =
        serde_json::from_slice(&std::fs::read(harness.credentials()).unwrap()).unwrap();
    let token = stored["access_token"].as_str().unwrap().to_owned();
    let ran = run(harness.command(&["logout"]), None).await.ok();
    assert!(!ran.stdout.contains(&token) && !ran.stderr.contains(&token));
    assert!(!harness.credentials().exists());
    harness
        .app
        .get_as("/auth/me", &token)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    // Now anonymous: whoami is refused with "no access"; logging out again is harmless.
    let mut anonymous = harness.command(&["whoami"]);
    anonymous.env("TROVE_SERVER", harness.url());
    run(anonymous, None).await.failed_with(3);
    run(harness.command(&["logout"]), None).await.ok();
    // The other profile is untouched, and logging out of its server by name finds it.
    run(harness.command(&["whoami", "--profile", "second"]), None)
        .await
        .ok();
    run(harness.command(&["logout", "--server", &other.url()]), None)
        .await
        .ok();
    assert!(!second_file.exists());
    // A profile name that could leave the directory is a usage error.
    run(harness.command(&["whoami", "--profile", "../x"]), None)
        .await
        .failed_with(2);
}

/// Pushes notes.txt as tables@v2 and marks v1 stable.
async fn step_push_v2_and_mark_v1_stable(harness: &Harness, token: &str) {
    let source = tempfile::tempdir().unwrap();
    write(source.path(), "notes.txt", b"second version\n");
    harness
        .run_as(
            token,
            &[
                "push",
                source.path().to_str().unwrap(),
                "--project",
                "tables",
                "--version",
                "v2",
            ],
        )
        .await
        .ok();
    harness
        .app
        .patch_json(
            "/projects/tables/version/v1",
            token,
            &serde_json::json!({"stable": true}),
        )
        .await
        .assert_status(StatusCode::OK);
}

/// `ls` lists the projects: mia sees tables, bob none.
async fn step_ls_lists_the_projects_you_may_read(harness: &Harness, token: &str, bob: &str) {
    // Projects.
    let projects = json_of(&harness.run_as(token, &["ls", "--json"]).await.ok());
    let ids: Vec<&str> = projects
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|project| project["project_id"].as_str())
        .collect();
    assert_eq!(ids, ["tables"], "{projects}");
    let ran = harness.run_as(token, &["ls"]).await.ok();
    assert!(
        ran.stdout.lines().any(|line| line.starts_with("tables")),
        "{}",
        ran.stdout
    );
    let ran = harness.run_as(bob, &["ls", "--json"]).await.ok();
    assert_eq!(json_of(&ran), serde_json::json!([]));
}

/// Versions with their state, stable mark and latest; files with size and checksums.
async fn step_ls_lists_versions_and_files(harness: &Harness, token: &str) {
    // Versions: state, stable mark, latest.
    let listing = json_of(
        &harness
            .run_as(token, &["ls", "tables", "--json"])
            .await
            .ok(),
    );
    assert_eq!(listing["latest"], "v2", "{listing}");
    let versions = listing["versions"].as_array().unwrap();
    let v1 = versions.iter().find(|v| v["version"] == "v1").unwrap();
    let v2 = versions.iter().find(|v| v["version"] == "v2").unwrap();
    assert_eq!(v1["stable"], true, "{listing}");
    assert_eq!(v1["status"], "completed", "{listing}");
    assert_eq!(v2["latest"], true, "{listing}");
    assert_eq!(v2["stable"], false, "{listing}");
    let ran = harness.run_as(token, &["ls", "tables"]).await.ok();
    let v1_line = ran
        .stdout
        .lines()
        .find(|line| line.starts_with("v1"))
        .unwrap();
    assert!(v1_line.contains("stable"), "{}", ran.stdout);

    // Files, with size and checksums.
    let files = json_of(
        &harness
            .run_as(token, &["ls", "tables@v1", "--json"])
            .await
            .ok(),
    );
    let table = files["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|file| file["path"] == "data/table.csv")
        .unwrap();
    assert_eq!(table["size"], 8, "{files}");
    assert_eq!(
        table["md5sum"],
        hex::encode(<md5::Md5 as md5::Digest>::digest(b"a,b\n1,2\n"))
    );
    let ran = harness.run_as(token, &["ls", "tables@latest"]).await.ok();
    assert!(ran.stdout.contains("notes.txt"), "{}", ran.stdout);
}

/// One document pretty-printed; members for owners, "no access" for others.
async fn step_show_and_members(harness: &Harness, token: &str, bob: &str) {
    // One document, pretty-printed.
    let ran = harness
        .run_as(token, &["show", "tables:notes.txt@v1"])
        .await
        .ok();
    assert!(ran.stdout.lines().count() > 1, "{}", ran.stdout);
    assert_eq!(json_of(&ran)["path"], "notes.txt", "{}", ran.stdout);

    // Members: owners see them; others get "no access".
    let members = json_of(
        &harness
            .run_as(token, &["members", "tables", "--json"])
            .await
            .ok(),
    );
    assert!(
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|member| member["principal"] == "mia"),
        "{members}"
    );
    let ran = harness.run_as(token, &["members", "tables"]).await.ok();
    assert!(ran.stdout.contains("mia"), "{}", ran.stdout);
    harness
        .run_as(bob, &["members", "tables"])
        .await
        .failed_with(3);
}

#[tokio::test]
async fn ls_show_and_members_browse_what_you_may_read() {
    let harness = Harness::start().await;
    let token = harness.account("mia", Role::Maintainer).await;
    let bob = harness.account("bob", Role::Guest).await;
    push_small(&harness, &token, "tables").await;
    step_push_v2_and_mark_v1_stable(&harness, &token).await;

    step_ls_lists_the_projects_you_may_read(&harness, &token, &bob).await;

    step_ls_lists_versions_and_files(&harness, &token).await;

    step_show_and_members(&harness, &token, &bob).await;

    // Missing things: exit 3.
    for args in [
        &["ls", "nowhere"][..],
        &["ls", "tables@v9"][..],
        &["show", "tables:missing.txt@v1"][..],
    ] {
        harness.run_as(&token, args).await.failed_with(3);
    }
}

#[tokio::test]
async fn exit_codes_follow_the_documented_contract() {
    let harness = Harness::start().await;
    let token = harness.account("mia", Role::Maintainer).await;
    let source = push_small(&harness, &token, "codes").await;
    // 0: done.
    harness.run_as(&token, &["ls", "codes"]).await.ok();
    // 1: the server refused (the version exists already).
    let push = [
        "push",
        source.path().to_str().unwrap(),
        "--project",
        "codes",
        "--version",
        "v1",
    ];
    let stderr = harness.run_as(&token, &push).await.failed_with(1);
    assert!(stderr.contains("(code "), "{stderr}");
    // 2: usage.
    for args in [
        &["ls", "a/b"][..],
        &["push", "--project", "codes"][..],
        &["pull", "codes@v1", "--jobs", "0"][..],
        &["completions", "powershell-9"][..],
        &[
            "push",
            ".",
            "--project",
            "codes",
            "--version",
            "v2",
            "--resume",
            "--abort",
        ][..],
    ] {
        harness.run_as(&token, args).await.failed_with(2);
    }
    // 3: not found, or no access.
    harness
        .run_as(&token, &["pull", "codes@v7"])
        .await
        .failed_with(3);
    let mut anonymous = harness.command(&["perms", "show", "codes"]);
    anonymous.env("TROVE_SERVER", harness.url());
    run(anonymous, None).await.failed_with(3);
    // 4: network.
    let port = crate::common::free_port();
    let mut unreachable = harness.command(&["whoami"]);
    unreachable.args(["--server", &format!("http://127.0.0.1:{port}")]);
    run(unreachable, None).await.failed_with(4);
    // --quiet leaves stderr empty on success.
    let ran = harness
        .run_as(&token, &["pull", "codes@v1", "quiet-copy", "--quiet"])
        .await
        .ok();
    assert_eq!(ran.stderr, "");
    assert_eq!(ran.stdout, "");
}

#[tokio::test]
async fn a_closed_pipe_never_panics() {
    let harness = Harness::start().await;
    let token = harness.account("mia", Role::Maintainer).await;
    push_small(&harness, &token, "piped").await;
    let mut commands: Vec<Vec<&str>> = vec![
        vec!["search", "*"],
        vec!["search", "*", "--json"],
        vec!["ls"],
        vec!["ls", "piped"],
        vec!["ls", "piped@v1"],
        vec!["show", "piped:notes.txt@v1"],
        vec!["members", "piped"],
        vec!["perms", "show", "piped"],
        vec!["whoami"],
        vec!["completions", "bash"],
        vec!["--help"],
    ];
    let target = tempfile::tempdir().unwrap();
    let target = target.path().to_str().unwrap().to_owned();
    commands.push(vec!["pull", "piped@v1", &target]);
    for args in &commands {
        let mut command = harness.command(args);
        command
            .env("TROVE_SERVER", harness.url())
            .env("TROVE_TOKEN", &token);
        let ran = run_into_closed_pipe(command).await;
        assert!(!ran.stderr.contains("panicked"), "{args:?}: {}", ran.stderr);
        assert_eq!(ran.code, Some(0), "{args:?}: {}", ran.stderr);
    }
    // A reader that goes away after the first line of a long answer.
    let mut command = harness.command(&["completions", "zsh"]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let ran = tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut child = command.spawn().unwrap();
        let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        drop(reader);
        Ran::from(child.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    // No terminal and no password: a usage error, never a hang or a panic.
    let stderr = run(
        harness.command(&["login", "--server", &harness.url()]),
        None,
    )
    .await
    .failed_with(2);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Files listed in a version: path → (size, md5, uploaded_at).
async fn stored_files(harness: &Harness, token: &str, version: &str) -> BTreeMap<String, Value> {
    let listing = harness
        .app
        .get_as(&format!("/projects/resumed/version/{version}/files"), token)
        .await
        .assert_status(StatusCode::OK);
    listing.json()["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| (file["path"].as_str().unwrap().to_owned(), file.clone()))
        .collect()
}

/// A source directory of ten 64 KiB parts and a metadata document over 1 KiB (`z-meta.json`,
/// refused by a server taking 1 KiB); answers the directory and the document.
fn ten_parts_and_a_too_big_document() -> (tempfile::TempDir, String) {
    let source = tempfile::tempdir().unwrap();
    for part in 0..10 {
        write(
            source.path(),
            &format!("data/part-{part:02}.bin"),
            &noise(64 * 1024 + part, 7 + part as u64),
        );
    }
    let big = format!(
        "{{\"path\": \"data/part-00.bin\", \"title\": \"{}\"}}",
        "x".repeat(4096)
    );
    write(source.path(), "z-meta.json", big.as_bytes());
    (source, big)
}

#[tokio::test]
async fn an_interrupted_push_is_resumed_to_completion_or_aborted() {
    // Metadata documents over 1 KiB are refused: the last file of the push fails.
    let harness = Harness::start_with(|settings| settings.max_json_bytes = 1024).await;
    let token = harness.account("mia", Role::Maintainer).await;
    let (source, big) = ten_parts_and_a_too_big_document();
    let dir = source.path().to_str().unwrap();
    let push = |extra: &[&str]| {
        let mut args = vec![
            "push",
            dir,
            "--project",
            "resumed",
            "--version",
            "v1",
            "--jobs",
            "2",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let args = push(&["--create-project"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stderr = harness.run_as(&token, &args).await.failed_with(1);
    assert!(stderr.contains("--resume"), "{stderr}");
    let record = harness
        .app
        .get_as("/projects/resumed/version/v1", &token)
        .await;
    assert_eq!(record.json()["status"], "open", "{}", record.text());
    let before = stored_files(&harness, &token, "v1").await;
    assert!(before.len() >= 9, "{before:?}");
    assert!(!before.contains_key("z-meta.json"));

    // Fixed, then resumed: only what is missing is uploaded, and the version is completed.
    write(
        source.path(),
        "z-meta.json",
        br#"{"path": "data/part-00.bin", "title": "parts"}"#,
    );
    let args = push(&["--resume", "--json"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = json_of(&harness.run_as(&token, &args).await.ok());
    assert_eq!(outcome["skipped"], before.len(), "{outcome}");
    assert_eq!(outcome["uploaded"], 11 - before.len(), "{outcome}");
    let record = harness
        .app
        .get_as("/projects/resumed/version/v1", &token)
        .await;
    assert_eq!(record.json()["status"], "completed", "{}", record.text());
    let after = stored_files(&harness, &token, "v1").await;
    assert_eq!(after.len(), 11);
    for (path, file) in &before {
        assert_eq!(
            after[path]["uploaded_at"], file["uploaded_at"],
            "{path} was uploaded again"
        );
    }
    let target = tempfile::tempdir().unwrap();
    harness
        .run_as(
            &token,
            &["pull", "resumed@v1", target.path().to_str().unwrap()],
        )
        .await
        .ok();
    assert!(tree(target.path()) == tree(source.path()));
    // Nothing left to resume.
    harness.run_as(&token, &args).await.failed_with(1);

    // Another failed push, aborted: the open version goes away.
    write(source.path(), "z-meta.json", big.as_bytes());
    let args = push(&[]);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args[5] = "v2";
    harness.run_as(&token, &args).await.failed_with(1);
    let ran = harness
        .run_as(
            &token,
            &["push", "--abort", "--project", "resumed", "--version", "v2"],
        )
        .await
        .ok();
    assert!(ran.stdout.contains("aborted"), "{}", ran.stdout);
    harness
        .app
        .get_as("/projects/resumed/version/v2", &token)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    // A completed version cannot be aborted.
    harness
        .run_as(
            &token,
            &["push", "--abort", "--project", "resumed", "--version", "v1"],
        )
        .await
        .failed_with(1);
}

#[tokio::test]
async fn a_concurrent_pull_of_50_files_is_verified_byte_for_byte() {
    let harness = Harness::start().await;
    let token = harness.account("mia", Role::Maintainer).await;
    let source = tempfile::tempdir().unwrap();
    for index in 0..50_usize {
        write(
            source.path(),
            &format!("shard-{}/file-{index:02}.bin", index % 5),
            &noise(1000 + index * 997, 0x5eed + index as u64),
        );
    }
    harness
        .run_as(
            &token,
            &[
                "push",
                source.path().to_str().unwrap(),
                "--project",
                "fifty",
                "--version",
                "v1",
                "--create-project",
                "--jobs",
                "8",
            ],
        )
        .await
        .ok();
    let target = tempfile::tempdir().unwrap();
    let pull = [
        "pull",
        "fifty@v1",
        target.path().to_str().unwrap(),
        "--jobs",
        "8",
        "--json",
    ];
    let outcome = json_of(&harness.run_as(&token, &pull).await.ok());
    assert_eq!(outcome["downloaded"], 50, "{outcome}");
    assert!(
        tree(target.path()) == tree(source.path()),
        "pulled bytes differ"
    );

    // Pulled again: everything already present is verified and skipped.
    let outcome = json_of(&harness.run_as(&token, &pull).await.ok());
    assert_eq!(outcome["skipped"], 50, "{outcome}");
    // A damaged copy (same size) is noticed and replaced.
    let damaged = target.path().join("shard-3/file-13.bin");
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    let outcome = json_of(&harness.run_as(&token, &pull).await.ok());
    assert_eq!(outcome["downloaded"], 1, "{outcome}");
    assert_eq!(outcome["skipped"], 49, "{outcome}");
    assert!(
        tree(target.path()) == tree(source.path()),
        "the damaged copy stayed"
    );
}

/// `trove ARGS` on a pseudo-terminal (util-linux `script`), fed `input`; `None` when
/// `script` is not installed.
async fn run_on_terminal(harness: &Harness, args: &[&str], input: &str) -> Option<Ran> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("`script` is not installed: the terminal test is skipped");
        return None;
    }
    let quote = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    let line = std::iter::once(env!("CARGO_BIN_EXE_trove"))
        .chain(args.iter().copied())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    // A clean environment: the scratch home and credentials file, no token, no server.
    let mut command = Command::new("script");
    command
        .args(["-qec", &line, "/dev/null"])
        .current_dir(harness.home.path())
        .env_clear()
        .env("HOME", harness.home.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("TROVE_CREDENTIALS", harness.credentials());
    command.stdin(Stdio::piped());
    Some(run(command, Some(input.to_owned())).await)
}

#[tokio::test]
async fn on_a_terminal_login_prompts_for_the_password_and_bars_draw() {
    let harness = Harness::start().await;
    harness
        .app
        .state
        .auth
        .create_account("alice", PASSWORD, Role::Maintainer, None)
        .await
        .unwrap();
    let url = harness.url();
    let Some(ran) = run_on_terminal(
        &harness,
        &["login", "--server", &url, "--username", "alice"],
        &format!("{PASSWORD}\n"),
    )
    .await
    else {
        return;
    };
    let ran = ran.ok();
    assert!(ran.stdout.contains("Password for alice"), "{}", ran.stdout);
    let stored: Value =
        serde_json::from_slice(&std::fs::read(harness.credentials()).unwrap()).unwrap();
    assert_eq!(stored["username"], "alice");

    // Transfers draw their bars on the terminal, and end well.
    let source = tempfile::tempdir().unwrap();
    for index in 0..6 {
        write(
            source.path(),
            &format!("f{index}.bin"),
            &noise(200_000, index + 1),
        );
    }
    let dir = source.path().to_str().unwrap();
    let ran = run_on_terminal(
        &harness,
        &[
            "push",
            dir,
            "--project",
            "tty",
            "--version",
            "v1",
            "--create-project",
            "--server",
            &url,
        ],
        "",
    )
    .await
    .unwrap()
    .ok();
    assert!(!ran.stdout.contains("panicked"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("uploaded [6/6] f5.bin"),
        "{}",
        ran.stdout
    );
    let target = tempfile::tempdir().unwrap();
    run_on_terminal(
        &harness,
        &[
            "pull",
            "tty@v1",
            target.path().to_str().unwrap(),
            "--server",
            &url,
        ],
        "",
    )
    .await
    .unwrap()
    .ok();
    assert!(tree(target.path()) == tree(source.path()));
}
