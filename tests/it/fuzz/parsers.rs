//! Property tests of the parsers that see user input, called directly: ArtifactDB ids, names
//! and paths, permission profiles, JWTs, scroll cursors, presigned query strings, `Range`
//! headers, upload deadlines and `trove.toml`. Each runs over arbitrary text or bytes (no
//! panic, a clean error) and over structured generators (what is valid round-trips; what is
//! accepted obeys the documented rules); oversized inputs are refused before any work that
//! grows with them.

use std::collections::{BTreeMap, HashMap};

use axum::http::{HeaderMap, HeaderValue, header};
use chrono::{TimeZone as _, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};
use trove::model::id::{ArtifactId, VersionSelector};
use trove::model::names;
use trove::permissions::Profile;

/// Cases per property (raised with `PROPTEST_CASES`).
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A valid project id or version.
fn project_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,20}".prop_filter("latest is reserved", |id| id != "latest")
}

/// A valid path: 1–4 segments of ordinary characters, `:` and `@` included.
fn valid_path() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9_][A-Za-z0-9_:@ .=+-]{0,12}[A-Za-z0-9_]", 1..5)
        .prop_map(|segments| segments.join("/"))
}

/// Text that mixes the characters parsers split on with hostile ones.
fn hostile_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just(":".to_owned()),
            Just("@".to_owned()),
            Just("/".to_owned()),
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just("\\".to_owned()),
            Just("\u{0}".to_owned()),
            Just("\u{202e}".to_owned()),
            Just("\u{ff0e}".to_owned()),
            Just("latest".to_owned()),
            Just("%2F".to_owned()),
            Just(" ".to_owned()),
            "[a-z0-9]{1,4}",
            any::<char>().prop_map(String::from),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

/// What every accepted path must satisfy (SPEC §1), checked independently of the validator.
fn path_obeys_the_rules(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && !path.starts_with('/')
        && !path.chars().any(char::is_control)
        && !path.contains('\\')
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && !segment.starts_with("..") && segment != ".")
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn artifact_ids_never_panic_and_accepted_parts_are_valid(text in prop_oneof![hostile_text(), any::<String>()]) {
        if let Ok(id) = ArtifactId::parse(&text) {
            prop_assert!(names::validate_project_id(&id.project).is_ok());
            prop_assert!(path_obeys_the_rules(&id.path), "accepted path {:?}", id.path);
            if let VersionSelector::Exact(version) = &id.version {
                prop_assert!(names::validate_version(version).is_ok());
            }
            // What parsed formats back to the same id.
            prop_assert_eq!(ArtifactId::parse(&id.to_string()).unwrap(), id);
        }
    }

    #[test]
    fn valid_artifact_ids_round_trip(project in project_id(), path in valid_path(), version in prop_oneof![project_id(), Just("latest".to_owned())]) {
        let text = format!("{project}:{path}@{version}");
        let id = ArtifactId::parse(&text).unwrap();
        prop_assert_eq!(&id.project, &project);
        prop_assert_eq!(&id.path, &path);
        prop_assert_eq!(id.version.as_str(), version.as_str());
        prop_assert_eq!(id.to_string(), text);
    }

    #[test]
    fn accepted_paths_obey_the_rules(text in prop_oneof![hostile_text(), any::<String>(), valid_path()]) {
        if names::validate_path(&text).is_ok() {
            prop_assert!(path_obeys_the_rules(&text), "accepted {text:?}");
        }
    }

    #[test]
    fn accepted_names_match_their_patterns(text in prop_oneof![hostile_text(), any::<String>(), "[a-zA-Z0-9._-]{0,70}"]) {
        let ascii_id = |value: &str, first: fn(u8) -> bool, rest: fn(u8) -> bool| {
            let bytes = value.as_bytes();
            !bytes.is_empty() && first(bytes[0]) && bytes[1..].iter().all(|byte| rest(*byte))
        };
        let id_char = |byte: u8| byte.is_ascii_alphanumeric() || b"._-".contains(&byte);
        if names::validate_project_id(&text).is_ok() || names::validate_version(&text).is_ok() {
            prop_assert!(text.len() <= 128 && text != "latest");
            prop_assert!(ascii_id(&text, |byte| byte.is_ascii_alphanumeric(), id_char));
        }
        if names::validate_namespace(&text).is_ok() {
            prop_assert!(text.len() <= 64);
            prop_assert!(ascii_id(&text, |byte| byte.is_ascii_lowercase() || byte.is_ascii_digit(), |byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-'));
        }
        if names::validate_username(&text).is_ok() {
            prop_assert!((2..=64).contains(&text.len()));
            prop_assert!(ascii_id(&text, |byte| byte.is_ascii_lowercase() || byte.is_ascii_digit(), |byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"._-".contains(&byte)));
        }
    }

    #[test]
    fn profiles_from_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Profile::from_json(&bytes);
    }

    #[test]
    fn structured_profiles_parse_or_fail_cleanly_and_round_trip(profile in profile_json(), patch in profile_json()) {
        let Ok(mut parsed) = Profile::from_value(profile) else { return Ok(()); };
        // What parsed serializes to something that parses to the same profile.
        let again = Profile::from_value(parsed.to_json_value()).unwrap();
        prop_assert_eq!(again.to_json_value(), parsed.to_json_value());
        // A failed partial update leaves the profile as it was.
        let before = parsed.to_json_value();
        if parsed.merge_partial(patch).is_err() {
            prop_assert_eq!(parsed.to_json_value(), before);
        }
    }

    #[test]
    fn jwts_from_arbitrary_text_are_refused(text in prop_oneof![any::<String>(), jwt_like()]) {
        let service = trove::auth::jwt::TokenService::new(&[7; 32], "trove", "trove", 3600);
        let _ = trove::auth::jwt::peek_algorithm(&text);
        prop_assert!(service.verify(&text).is_err());
    }

    #[test]
    fn a_tampered_jwt_never_verifies(position in any::<prop::sample::Index>(), replacement in "[A-Za-z0-9_.=-]") {
        let service = trove::auth::jwt::TokenService::new(&[7; 32], "trove", "trove", 3600);
        let token = service.issue("alice", "uid-1", 0).unwrap().token;
        prop_assert!(service.verify(&token).is_ok());
        let index = position.index(token.len());
        let mut tampered = token.clone();
        tampered.replace_range(index..=index, &replacement);
        if tampered != token {
            // base64url's last character may carry padding bits the decoder ignores; any
            // other change must be refused.
            let verified = service.verify(&tampered);
            if let Ok(claims) = verified {
                prop_assert_eq!(claims.sub, "alice");
                prop_assert!(index == token.len() - 1 || token.as_bytes()[index + 1] == b'.');
            }
        }
    }

    #[test]
    fn cursors_from_arbitrary_text_are_refused(text in prop_oneof![any::<String>(), "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,50}"]) {
        let codec = trove::index::cursor::CursorCodec::new(vec![3; 32]);
        prop_assert!(codec.decode(&text, Utc::now()).is_err());
    }

    #[test]
    fn presigned_query_strings_from_arbitrary_text_are_refused(
        key in prop_oneof![hostile_text(), valid_path()],
        params in prop::collection::hash_map(prop_oneof![Just("X-Trove-Method".to_owned()), Just("X-Trove-Expires".to_owned()), Just("X-Trove-Signature".to_owned()), Just("X-Trove-Content-MD5".to_owned()), "[a-zA-Z-]{1,12}"], any::<String>(), 0..5),
        method in prop_oneof![Just(trove::storage::PresignMethod::Get), Just(trove::storage::PresignMethod::Put)],
    ) {
        let presigner = trove::storage::presign::LocalPresigner::new(url::Url::parse("http://127.0.0.1:1").unwrap(), vec![5; 32]);
        let params: HashMap<String, String> = params;
        prop_assert!(presigner.verify(method, &key, &params).is_err());
    }

    #[test]
    fn range_headers_parse_to_ordered_ranges_or_are_refused(value in prop_oneof![any::<String>(), range_like()], size in prop::option::of(0_u64..10_000)) {
        let Ok(header_value) = HeaderValue::from_str(&value) else { return Ok(()); };
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, header_value);
        if let Ok(Some(range)) = trove::api::presigned::parse_range(&headers, size) {
            prop_assert!(range.end.is_none_or(|end| end >= range.start));
            // A suffix range (`bytes=-n`) resolves inside the object.
            if let Some(size) = size
                && value.trim_start_matches("bytes=").trim_start().starts_with('-')
            {
                prop_assert!(range.start <= size && range.end.is_none());
            }
        }
    }

    #[test]
    fn upload_deadlines_never_panic(text in prop_oneof![any::<String>(), "in -?[0-9]{1,25} (days?|hours?|minutes?|weeks)", "[0-9]{4,6}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})"]) {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let _ = trove::api::uploads::parse_when(&text, now);
    }

    #[test]
    fn config_files_never_panic(text in prop_oneof![any::<String>(), toml_like()]) {
        if let Ok(settings) = trove::config::Settings::from_toml("trove.toml", &text)
            && settings.validate().is_ok()
        {
            // What validates can be used: nothing below may panic.
            let _ = settings.storage_timeout();
            let _ = settings.public_url();
            let _ = settings.to_masked_toml();
        }
    }

    #[test]
    fn environment_overrides_never_panic(vars in prop::collection::btree_map(env_name(), prop_oneof![any::<String>(), "[0-9]{1,22}", Just("true".to_owned()), Just(String::new())], 0..6)) {
        let mut settings = trove::config::Settings::default();
        let vars: BTreeMap<String, String> = vars;
        if settings.apply_env(&vars).is_ok() && settings.validate().is_ok() {
            let _ = settings.storage_timeout();
            let _ = settings.public_url();
        }
    }
}

/// JSON that looks like a profile: the documented fields with values of every JSON type.
fn profile_json() -> impl Strategy<Value = Value> {
    let principal = prop_oneof![
        "[a-z][a-z0-9._-]{1,10}",
        "group:[a-z][a-z0-9-]{0,8}",
        "machine:[a-z][a-z0-9-]{0,8}",
        "CN=[A-Za-z]{1,8},DC=corp",
        any::<String>(),
    ];
    let list = prop_oneof![
        prop::collection::vec(principal.clone(), 0..4).prop_map(|items| json!(items)),
        Just(Value::Null),
        any::<i64>().prop_map(|n| json!(n)),
    ];
    let rule = prop_oneof![
        Just(json!("owners")),
        Just(json!("writers")),
        Just(json!("viewers")),
        Just(json!("authenticated")),
        Just(json!("public")),
        Just(json!("none")),
        any::<String>().prop_map(|s| json!(s)),
        Just(Value::Null),
        Just(json!(true)),
    ];
    let expires = prop::collection::btree_map(
        principal,
        prop_oneof![
            Just(json!("2026-12-31T00:00:00Z")),
            Just(json!("2026-12-31T00:00:00+05:00")),
            any::<String>().prop_map(|s| json!(s)),
            Just(json!(12)),
        ],
        0..3,
    )
    .prop_map(|map| json!(map));
    (
        prop::option::of(prop_oneof![
            Just(json!("project")),
            Just(json!("version")),
            Just(json!("global")),
            any::<String>().prop_map(|s| json!(s))
        ]),
        prop::option::of(list.clone()),
        prop::option::of(list.clone()),
        prop::option::of(list),
        prop::option::of(rule.clone()),
        prop::option::of(rule.clone()),
        prop::option::of(rule),
        prop::option::of(prop_oneof![
            Just(json!(true)),
            Just(json!(false)),
            Just(json!("yes"))
        ]),
        prop::option::of(expires),
        prop::option::of(("[a-z_]{1,8}", any::<i32>())),
    )
        .prop_map(
            |(scope, owners, writers, viewers, read, download, write, inherit, expires, extra)| {
                let mut object = serde_json::Map::new();
                let mut put = |name: &str, value: Option<Value>| {
                    if let Some(value) = value {
                        object.insert(name.to_owned(), value);
                    }
                };
                put("scope", scope);
                put("owners", owners);
                put("writers", writers);
                put("viewers", viewers);
                put("read_access", read);
                put("download_access", download);
                put("write_access", write);
                put("inherit", inherit);
                put("expires", expires);
                if let Some((name, value)) = extra {
                    put(&name, Some(json!(value)));
                }
                Value::Object(object)
            },
        )
}

/// Three dot-separated base64url-ish segments, some with a real JSON header.
fn jwt_like() -> impl Strategy<Value = String> {
    use base64::Engine as _;
    let header = prop_oneof![
        Just(r#"{"alg":"HS256","typ":"JWT"}"#.to_owned()),
        Just(r#"{"alg":"none"}"#.to_owned()),
        Just(r#"{"alg":"RS256","kid":"k"}"#.to_owned()),
        Just(r#"{"alg":"HS512"}"#.to_owned()),
        any::<String>(),
    ];
    let payload = prop_oneof![
        Just(r#"{"sub":"alice","exp":99999999999,"aud":"trove","iss":"trove"}"#.to_owned()),
        any::<String>(),
    ];
    (header, payload, "[A-Za-z0-9_-]{0,43}").prop_map(|(header, payload, signature)| {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.{signature}",
            engine.encode(header),
            engine.encode(payload)
        )
    })
}

/// `Range` header values near the grammar.
fn range_like() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("bytes="), Just("bytes = "), Just("items="), Just("")],
        prop::option::of(prop_oneof!["[0-9]{1,22}", Just("-1".to_owned())]),
        prop::option::of(prop_oneof!["[0-9]{1,22}", Just(" ".to_owned())]),
        prop::option::of(Just(",0-1")),
    )
        .prop_map(|(unit, start, end, more)| {
            format!(
                "{unit}{}-{}{}",
                start.unwrap_or_default(),
                end.unwrap_or_default(),
                more.unwrap_or_default()
            )
        })
}

/// `trove.toml` documents from the real keys with values of every TOML type.
fn toml_like() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("listen"),
        Just("metrics_listen"),
        Just("data_dir"),
        Just("public_url"),
        Just("storage"),
        Just("storage_timeout_ms"),
        Just("max_json_bytes"),
        Just("presign_ttl_secs"),
        Just("sync_cron"),
        Just("purge_cron"),
        Just("auto_repair"),
        Just("log"),
        Just("presign_secret"),
        Just("cursor_secret"),
        Just("ui_secret"),
        Just("unknown_key"),
    ];
    let value = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("true".to_owned()),
        Just("\"127.0.0.1:0\"".to_owned()),
        Just("\"s3\"".to_owned()),
        Just("\"0 */5 * * * *\"".to_owned()),
        Just("\"* * *\"".to_owned()),
        Just("\"http://[::1]:99999\"".to_owned()),
        Just("[1, 2]".to_owned()),
        Just("1e308".to_owned()),
        "\"[ -~]{0,20}\"",
    ];
    let section = prop_oneof![Just(""), Just("[s3]\n"), Just("[auth]\n"), Just("[oidc]\n")];
    let s3_or_auth_key = prop_oneof![
        Just("bucket"),
        Just("endpoint"),
        Just("public_endpoint"),
        Just("path_style"),
        Just("token_ttl_secs"),
        Just("jwt_secret"),
        Just("default_role"),
        Just("login_rate_limit_window_secs"),
        Just("group_pattern"),
        Just("jwks_url"),
    ];
    (
        prop::collection::vec((key, value.clone()), 0..5),
        section,
        prop::collection::vec((s3_or_auth_key, value), 0..4),
    )
        .prop_map(|(top, section, inner)| {
            let mut text = String::new();
            let mut seen = std::collections::BTreeSet::new();
            for (key, value) in top {
                if seen.insert(key) {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
            text.push_str(section);
            let mut seen = std::collections::BTreeSet::new();
            for (key, value) in inner {
                if seen.insert(key) {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
            text
        })
}

/// Names of `TROVE_*` variables the settings read.
fn env_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "TROVE_LISTEN",
        "TROVE_PUBLIC_URL",
        "TROVE_STORAGE",
        "TROVE_STORAGE_TIMEOUT_MS",
        "TROVE_MAX_JSON_BYTES",
        "TROVE_PRESIGN_TTL_SECS",
        "TROVE_SYNC_CRON",
        "TROVE_TOKEN_TTL_SECS",
        "TROVE_LOGIN_RATE_LIMIT_WINDOW_SECS",
        "TROVE_LOGIN_RATE_LIMIT_PER_IP",
        "TROVE_DEFAULT_ROLE",
        "TROVE_OIDC_GROUP_PATTERN",
        "TROVE_S3_PATH_STYLE",
        "TROVE_S3_PUBLIC_ENDPOINT",
        "TROVE_CURSOR_SECRET",
        "TROVE_UI_SECRET",
    ])
    .prop_map(str::to_owned)
}

#[test]
fn oversized_inputs_are_refused_before_parsing() {
    let huge = "a".repeat(1 << 20);
    let started = std::time::Instant::now();
    assert!(ArtifactId::parse(&format!("p:{huge}@v1")).is_err());
    assert!(names::validate_path(&huge).is_err());
    assert!(names::validate_project_id(&huge).is_err());
    let service = trove::auth::jwt::TokenService::new(&[7; 32], "trove", "trove", 3600);
    assert!(service.verify(&format!("{huge}.{huge}.{huge}")).is_err());
    let codec = trove::index::cursor::CursorCodec::new(vec![3; 32]);
    assert!(codec.decode(&format!("{huge}.{huge}"), Utc::now()).is_err());
    // Refusing 1 MiB inputs is a length check, not a parse (generous bound for a debug build
    // on a shared machine).
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
