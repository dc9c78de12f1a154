//! The `trove` binary itself: `check-config` and `serve` on the embedded default.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn trove() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trove"));
    // Run from a scratch directory so no ./trove.toml of the developer is picked up.
    command
        .current_dir(std::env::temp_dir())
        .env_remove("TROVE_CONFIG")
        .stdin(Stdio::null());
    command
}

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_masked() {
    let output = trove()
        .args(["check-config", "--listen", "127.0.0.1:9999"])
        .env("TROVE_STORAGE", "s3")
        .env("TROVE_S3_BUCKET", "artifacts")
        .env("TROVE_S3_ENDPOINT", "http://127.0.0.1:9000")
        .env("TROVE_S3_ACCESS_KEY_ID", "AKIDTEST")
        .env("TROVE_S3_SECRET_ACCESS_KEY", "super-secret-test-value")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("listen = \"127.0.0.1:9999\""), "{stdout}");
    assert!(stdout.contains("bucket = \"artifacts\""), "{stdout}");
    assert!(!stdout.contains("super-secret-test-value"), "{stdout}");
}

#[test]
fn invalid_configuration_stops_with_a_message_naming_the_setting() {
    for (variable, value) in [
        ("TROVE_LISTEN", "nowhere"),
        ("TROVE_STORAGE", "floppy"),
        ("TROVE_STORAGE_TIMEOUT_MS", "soon"),
    ] {
        let output = trove()
            .arg("check-config")
            .env(variable, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{variable}={value} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
    let output = trove()
        .arg("serve")
        .env("TROVE_STORAGE", "s3")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("TROVE_S3_BUCKET"));
}

#[test]
fn serve_on_the_embedded_default_answers_status_and_stops_gracefully() {
    let data_dir = tempfile::tempdir().unwrap();
    let port = crate::common::free_port();
    let mut child = trove()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/status");
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Ok(response) = raw_http::get(&url) {
            break response;
        }
        assert!(Instant::now() < deadline, "server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains("\"storage\""), "{body}");
    assert!(body.contains("\"ok\":true"), "{body}");
    assert!(
        data_dir.path().join("objects").is_dir(),
        "local storage under the data dir"
    );
    assert!(
        data_dir.path().join("index").is_dir(),
        "index under the data dir"
    );

    // SIGTERM → graceful shutdown and a clean exit.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

mod raw_http {
    //! A minimal blocking GET over a raw TCP socket (the async client needs a runtime).
    use std::io::{Read as _, Write as _};

    pub fn get(url: &str) -> std::io::Result<String> {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stream = std::net::TcpStream::connect(host)?;
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    }
}

#[test]
fn index_sync_and_rebuild_run_against_the_data_directory() {
    let data_dir = tempfile::tempdir().unwrap();
    for args in [&["rebuild"][..], &["sync", "--repair"][..]] {
        let output = trove()
            .args(["index", "--data-dir"])
            .arg(data_dir.path())
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{args:?}: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert!(report.is_object(), "{stdout}");
    }
}
