//! External identity provider: access tokens signed by an OpenID Connect provider with RS256
//! or ES256, verified against its JWKS (a file, or a URL fetched at start-up and again when
//! a token names an unknown key). When the URL can't be fetched at start-up the service starts
//! anyway and retries in the background with exponential backoff; until the keys are loaded
//! ([`OidcVerifier::keys_loaded`]) external tokens are answered `503`, local ones work. Issuer and audience are required; the username, groups and
//! role come from configurable claims; directory groups are kept only when they match the
//! configured pattern (ArtifactDB's rule, which bounds the size of the search filter).

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use regex::Regex;
use serde_json::{Map, Value};

use super::jwt::{LEEWAY_SECS, PeekedHeader, TokenError};
use crate::config::{OidcConfig, ROLE_NAMES};

/// Most directory groups kept from one token (after filtering).
pub const MAX_DIRECTORY_GROUPS: usize = 256;
/// Shortest interval between two refreshes of a JWKS URL.
const REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// First delay before retrying a JWKS URL that could not be fetched at start-up.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest delay between two such retries.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Why the provider could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The JWKS file can't be read.
    #[error("cannot read the JWKS file {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The JWKS URL can't be fetched.
    #[error("cannot fetch the JWKS from {url}: {message}")]
    Fetch {
        /// The URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The document is not a JWKS.
    #[error("invalid JWKS: {0}")]
    Parse(String),
    /// The JWKS holds no RS256/ES256 key.
    #[error("the JWKS holds no RSA or P-256 key")]
    NoUsableKey,
    /// A setting is invalid (e.g. the group pattern).
    #[error("invalid OIDC setting: {0}")]
    Setting(String),
}

/// Who an external token says its bearer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// The username claim.
    pub username: String,
    /// The role (from the role claim, else the configured default role).
    pub role: String,
    /// Directory groups that match the configured pattern.
    pub directory_groups: Vec<String>,
    /// `exp` of the token, seconds since the epoch.
    pub expires_at: u64,
}

/// Where the keys come from.
#[derive(Debug, Clone)]
enum KeySource {
    /// Given once (a file read at start-up, or tests).
    Fixed,
    /// A URL, refetched (at most once a minute) when a token names an unknown key.
    Url(String),
}

#[derive(Debug)]
struct KeyCache {
    keys: Arc<JwkSet>,
    fetched_at: Instant,
    /// Whether a key set was ever loaded (false while the start-up fetch keeps failing).
    loaded: bool,
}

/// Verifies tokens of the configured external provider.
#[derive(Debug)]
pub struct OidcVerifier {
    issuer: String,
    audience: String,
    username_claim: String,
    groups_claim: String,
    role_claim: String,
    default_role: String,
    group_pattern: Regex,
    source: KeySource,
    cache: Arc<RwLock<KeyCache>>,
    refresh: tokio::sync::Mutex<()>,
}

/// Parses a JWKS document and checks it holds at least one usable key.
pub fn parse_jwks(bytes: &[u8]) -> Result<JwkSet, OidcError> {
    let keys: JwkSet =
        serde_json::from_slice(bytes).map_err(|error| OidcError::Parse(error.to_string()))?;
    if !keys
        .keys
        .iter()
        .any(|jwk| DecodingKey::from_jwk(jwk).is_ok())
    {
        return Err(OidcError::NoUsableKey);
    }
    Ok(keys)
}

impl OidcVerifier {
    /// A verifier over a fixed key set.
    pub fn from_jwks(config: &OidcConfig, keys: JwkSet) -> Result<Self, OidcError> {
        Self::build(config, keys, KeySource::Fixed)
    }

    fn build(config: &OidcConfig, keys: JwkSet, source: KeySource) -> Result<Self, OidcError> {
        Self::build_with(config, keys, source, true)
    }

    fn build_with(
        config: &OidcConfig,
        keys: JwkSet,
        source: KeySource,
        loaded: bool,
    ) -> Result<Self, OidcError> {
        let group_pattern = Regex::new(&config.group_pattern)
            .map_err(|error| OidcError::Setting(format!("TROVE_OIDC_GROUP_PATTERN: {error}")))?;
        let required = |value: &Option<String>, name: &str| {
            value
                .clone()
                .ok_or_else(|| OidcError::Setting(format!("{name} is required")))
        };
        Ok(Self {
            issuer: required(&config.issuer, "TROVE_OIDC_ISSUER")?,
            audience: required(&config.audience, "TROVE_OIDC_AUDIENCE")?,
            username_claim: config.username_claim.clone(),
            groups_claim: config.groups_claim.clone(),
            role_claim: config.role_claim.clone(),
            default_role: config.default_role.clone(),
            group_pattern,
            source,
            cache: Arc::new(RwLock::new(KeyCache {
                keys: Arc::new(keys),
                fetched_at: Instant::now(),
                loaded,
            })),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// Sets the provider up from the settings: reads the JWKS file, or fetches the URL — when
    /// that fails, the verifier starts without keys and keeps retrying in the background
    /// (exponential backoff from 1 s to 60 s) until it gets them. `None` when no provider is
    /// configured.
    pub async fn load(config: &OidcConfig) -> Result<Option<Self>, OidcError> {
        if let Some(path) = &config.jwks_file {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|error| OidcError::Read {
                    path: path.display().to_string(),
                    message: error.to_string(),
                })?;
            return Self::from_jwks(config, parse_jwks(&bytes)?).map(Some);
        }
        if let Some(url) = &config.jwks_url {
            let source = KeySource::Url(url.clone());
            return match fetch_jwks(url).await {
                Ok(keys) => Self::build(config, keys, source).map(Some),
                Err(error) => {
                    tracing::warn!(%error, "the identity provider's keys are not available; external tokens answer 503 until they are");
                    let verifier =
                        Self::build_with(config, JwkSet { keys: Vec::new() }, source, false)?;
                    spawn_retry(url.clone(), Arc::downgrade(&verifier.cache));
                    Ok(Some(verifier))
                }
            };
        }
        Ok(None)
    }

    /// The issuer this provider's tokens carry.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether the provider's keys are loaded (false while a JWKS URL unreachable at start-up
    /// is being retried).
    #[must_use]
    pub fn keys_loaded(&self) -> bool {
        match self.cache.read() {
            Ok(cache) => cache.loaded,
            Err(poisoned) => poisoned.into_inner().loaded,
        }
    }

    fn keys(&self) -> Arc<JwkSet> {
        match self.cache.read() {
            Ok(cache) => cache.keys.clone(),
            Err(poisoned) => poisoned.into_inner().keys.clone(),
        }
    }

    /// Refetches a JWKS URL when the cached keys are older than the refresh interval.
    async fn refresh_keys(&self) {
        let KeySource::Url(url) = &self.source else {
            return;
        };
        let _guard = self.refresh.lock().await;
        let stale = match self.cache.read() {
            Ok(cache) => cache.fetched_at.elapsed() >= REFRESH_INTERVAL,
            Err(_) => true,
        };
        if !stale {
            return;
        }
        match fetch_jwks(url).await {
            Ok(keys) => {
                if let Ok(mut cache) = self.cache.write() {
                    *cache = KeyCache {
                        keys: Arc::new(keys),
                        fetched_at: Instant::now(),
                        loaded: true,
                    };
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot refresh the identity provider's keys");
                if let Ok(mut cache) = self.cache.write() {
                    cache.fetched_at = Instant::now();
                }
            }
        }
    }

    /// Verifies an external token whose header was already peeked at.
    pub async fn verify(
        &self,
        token: &str,
        header: &PeekedHeader,
    ) -> Result<ExternalIdentity, TokenError> {
        match self.verify_with(&self.keys(), token, header) {
            Err(TokenError::UnknownKey) if matches!(self.source, KeySource::Url(_)) => {
                self.refresh_keys().await;
                self.verify_with(&self.keys(), token, header)
            }
            result => result,
        }
    }

    /// Verification against a given key set (no I/O).
    pub fn verify_with(
        &self,
        keys: &JwkSet,
        token: &str,
        header: &PeekedHeader,
    ) -> Result<ExternalIdentity, TokenError> {
        let algorithm = match header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            _ => return Err(TokenError::WrongAlgorithm),
        };
        let jwk = select_key(keys, header.kid.as_deref(), algorithm)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| TokenError::UnknownKey)?;
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|error| TokenError::from_jwt(&error))?;
        self.identity(&data.claims)
    }

    /// Extracts username, role and filtered groups from verified claims.
    fn identity(&self, claims: &Map<String, Value>) -> Result<ExternalIdentity, TokenError> {
        let username = claims
            .get(&self.username_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                TokenError::InvalidClaims(format!("no string claim {}", self.username_claim))
            })?;
        if !valid_external_username(username) {
            return Err(TokenError::InvalidClaims(
                "the username claim is not a valid username".to_owned(),
            ));
        }
        let role = match claims.get(&self.role_claim) {
            None | Some(Value::Null) => self.default_role.clone(),
            Some(Value::String(role)) => {
                let role = role.trim().to_ascii_lowercase();
                if !ROLE_NAMES.contains(&role.as_str()) || role == "machine" {
                    return Err(TokenError::InvalidClaims("unknown role".to_owned()));
                }
                role
            }
            Some(_) => {
                return Err(TokenError::InvalidClaims(
                    "the role claim is not a string".to_owned(),
                ));
            }
        };
        let groups: Vec<&str> = match claims.get(&self.groups_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(group)) => vec![group.as_str()],
            Some(Value::Array(groups)) => groups.iter().filter_map(Value::as_str).collect(),
            Some(_) => Vec::new(),
        };
        let directory_groups: Vec<String> = groups
            .into_iter()
            .filter(|group| {
                !group.is_empty()
                    && group.len() <= 1024
                    && !group.chars().any(char::is_control)
                    && self.group_pattern.is_match(group)
            })
            .map(str::to_owned)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .take(MAX_DIRECTORY_GROUPS)
            .collect();
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_u64)
            .unwrap_or_default();
        Ok(ExternalIdentity {
            username: username.to_owned(),
            role,
            directory_groups,
            expires_at,
        })
    }
}

/// An external username must be usable as a principal without being mistaken for a group,
/// a directory group or a machine: the local username rule, plus `@` for e-mail-style names.
fn valid_external_username(name: &str) -> bool {
    let mut chars = name.chars();
    (2..=128).contains(&name.len())
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-@".contains(c))
}

/// The key a token names (`kid`), or the only key of a matching type when it names none.
fn select_key<'a>(
    keys: &'a JwkSet,
    kid: Option<&str>,
    algorithm: Algorithm,
) -> Result<&'a Jwk, TokenError> {
    let compatible = |jwk: &&Jwk| {
        let family_ok = matches!(
            (&jwk.algorithm, algorithm),
            (
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_),
                Algorithm::RS256
            ) | (
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_),
                Algorithm::ES256
            )
        );
        let declared_ok = jwk
            .common
            .key_algorithm
            .is_none_or(|declared| declared.to_string() == format!("{algorithm:?}"));
        family_ok && declared_ok
    };
    match kid {
        Some(kid) => {
            let jwk = keys.find(kid).ok_or(TokenError::UnknownKey)?;
            if compatible(&jwk) {
                Ok(jwk)
            } else {
                Err(TokenError::WrongAlgorithm)
            }
        }
        None => {
            let mut candidates = keys.keys.iter().filter(compatible);
            match (candidates.next(), candidates.next()) {
                (Some(jwk), None) => Ok(jwk),
                _ => Err(TokenError::UnknownKey),
            }
        }
    }
}

/// Retries fetching a JWKS URL that failed at start-up, with exponential backoff, until it
/// succeeds or the verifier (holding `cache`) is dropped.
fn spawn_retry(url: String, cache: std::sync::Weak<RwLock<KeyCache>>) {
    tokio::spawn(async move {
        let mut delay = FIRST_RETRY;
        loop {
            tokio::time::sleep(delay).await;
            if cache.strong_count() == 0 {
                return;
            }
            match fetch_jwks(&url).await {
                Ok(keys) => {
                    let Some(cache) = cache.upgrade() else {
                        return;
                    };
                    if let Ok(mut cache) = cache.write() {
                        *cache = KeyCache {
                            keys: Arc::new(keys),
                            fetched_at: Instant::now(),
                            loaded: true,
                        };
                    }
                    tracing::info!("the identity provider's keys are loaded");
                    return;
                }
                Err(error) => {
                    delay = (delay * 2).min(MAX_RETRY);
                    tracing::warn!(%error, retry_in_secs = delay.as_secs(), "the identity provider's keys are still not available");
                }
            }
        }
    });
}

/// Fetches a JWKS over HTTP(S).
async fn fetch_jwks(url: &str) -> Result<JwkSet, OidcError> {
    let fail = |message: String| OidcError::Fetch {
        url: url.to_owned(),
        message,
    };
    let body = crate::auth::http::get_bytes(url, Duration::from_secs(10), 1024 * 1024)
        .await
        .map_err(fail)?;
    parse_jwks(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer as _;
    use jsonwebtoken::{EncodingKey, Header};

    fn config() -> OidcConfig {
        OidcConfig {
            jwks_file: Some("/unused".into()),
            issuer: Some("https://idp.example".to_owned()),
            audience: Some("trove".to_owned()),
            group_pattern: "^CN=ML-".to_owned(),
            ..OidcConfig::default()
        }
    }

    /// One DER element at the start of `der`: (tag, content, rest).
    fn der_element(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = der[0];
        let (length, header) = if der[1] < 0x80 {
            (usize::from(der[1]), 2)
        } else {
            let count = usize::from(der[1] & 0x7f);
            let length = der[2..2 + count]
                .iter()
                .fold(0_usize, |acc, byte| (acc << 8) | usize::from(*byte));
            (length, 2 + count)
        };
        (tag, &der[header..header + length], &der[header + length..])
    }

    /// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (what jsonwebtoken's
    /// aws-lc backend signs with).
    fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Vec<u8> {
        let (_, info, _) = der_element(pkcs8);
        let (_, _version, rest) = der_element(info);
        let (_, _algorithm, rest) = der_element(rest);
        let (tag, private_key, _) = der_element(rest);
        assert_eq!(tag, 0x04);
        private_key.to_vec()
    }

    fn rsa_key() -> EncodingKey {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        EncodingKey::from_rsa_der(&pkcs8_to_pkcs1(pair.as_der().unwrap().as_ref()))
    }

    fn ec_key() -> EncodingKey {
        let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .unwrap();
        EncodingKey::from_ec_der(pair.to_pkcs8v1().unwrap().as_ref())
    }

    fn jwk(key: &EncodingKey, algorithm: Algorithm, kid: &str) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(key, algorithm).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        jwk
    }

    fn sign(key: &EncodingKey, algorithm: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(algorithm);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn claims(extra: &[(&str, Value)]) -> Value {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = serde_json::json!({
            "iss": "https://idp.example", "aud": "trove", "exp": now + 600, "iat": now,
            "preferred_username": "dana",
            "groups": ["CN=ML-Admins,OU=Groups", "CN=Other", "CN=ML-Readers", "CN=ML-Admins,OU=Groups"],
        });
        for (key, value) in extra {
            claims[*key] = value.clone();
        }
        claims
    }

    fn verify(verifier: &OidcVerifier, token: &str) -> Result<ExternalIdentity, TokenError> {
        let header = super::super::jwt::peek_algorithm(token)?;
        verifier.verify_with(&verifier.keys(), token, &header)
    }

    #[test]
    fn rs256_and_es256_tokens_verify_and_groups_are_filtered() {
        let rsa = rsa_key();
        let ec = ec_key();
        let keys = JwkSet {
            keys: vec![
                jwk(&rsa, Algorithm::RS256, "r1"),
                jwk(&ec, Algorithm::ES256, "e1"),
            ],
        };
        let verifier = OidcVerifier::from_jwks(&config(), keys).unwrap();
        for token in [
            sign(&rsa, Algorithm::RS256, Some("r1"), &claims(&[])),
            sign(&ec, Algorithm::ES256, Some("e1"), &claims(&[])),
            sign(&ec, Algorithm::ES256, None, &claims(&[])),
        ] {
            let identity = verify(&verifier, &token).unwrap();
            assert_eq!(identity.username, "dana");
            assert_eq!(identity.role, "guest");
            assert_eq!(
                identity.directory_groups,
                vec![
                    "CN=ML-Admins,OU=Groups".to_owned(),
                    "CN=ML-Readers".to_owned()
                ]
            );
        }
        let with_role = sign(
            &rsa,
            Algorithm::RS256,
            Some("r1"),
            &claims(&[("trove_role", "Reviewer".into())]),
        );
        assert_eq!(verify(&verifier, &with_role).unwrap().role, "reviewer");
    }

    #[test]
    fn external_tokens_are_rejected_with_precise_codes() {
        let rsa = rsa_key();
        let other = rsa_key();
        let keys = JwkSet {
            keys: vec![jwk(&rsa, Algorithm::RS256, "r1")],
        };
        let verifier = OidcVerifier::from_jwks(&config(), keys).unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        let cases = [
            (
                sign(&other, Algorithm::RS256, Some("r1"), &claims(&[])),
                "token_bad_signature",
            ),
            (
                sign(&rsa, Algorithm::RS256, Some("zz"), &claims(&[])),
                "token_unknown_key",
            ),
            (
                sign(&rsa, Algorithm::RS384, Some("r1"), &claims(&[])),
                "token_wrong_algorithm",
            ),
            (
                sign(
                    &rsa,
                    Algorithm::RS256,
                    Some("r1"),
                    &claims(&[("iss", "https://evil".into())]),
                ),
                "token_wrong_issuer",
            ),
            (
                sign(
                    &rsa,
                    Algorithm::RS256,
                    Some("r1"),
                    &claims(&[("aud", "other".into())]),
                ),
                "token_wrong_audience",
            ),
            (
                sign(
                    &rsa,
                    Algorithm::RS256,
                    Some("r1"),
                    &claims(&[("exp", (now - 3600).into())]),
                ),
                "token_expired",
            ),
            (
                sign(
                    &rsa,
                    Algorithm::RS256,
                    Some("r1"),
                    &claims(&[("preferred_username", "machine:ci".into())]),
                ),
                "token_invalid_claims",
            ),
            (
                sign(
                    &rsa,
                    Algorithm::RS256,
                    Some("r1"),
                    &claims(&[("trove_role", "machine".into())]),
                ),
                "token_invalid_claims",
            ),
            (
                sign(
                    &rsa,
                    Algorithm::RS256,
                    Some("r1"),
                    &claims(&[("preferred_username", Value::Null)]),
                ),
                "token_invalid_claims",
            ),
        ];
        for (token, code) in cases {
            assert_eq!(verify(&verifier, &token).unwrap_err().code(), code);
        }
    }

    #[test]
    fn a_jwks_without_usable_keys_is_refused() {
        assert!(matches!(
            parse_jwks(b"{\"keys\": []}"),
            Err(OidcError::NoUsableKey)
        ));
        assert!(matches!(parse_jwks(b"not json"), Err(OidcError::Parse(_))));
    }

    #[test]
    fn external_usernames_can_not_pose_as_other_principals() {
        for bad in ["group:x", "machine:ci", "CN=x", "Alice", "a", "", "-x"] {
            assert!(!valid_external_username(bad), "{bad}");
        }
        for good in ["alice", "alice@corp.example", "a.b-c_d"] {
            assert!(valid_external_username(good), "{good}");
        }
    }
}
