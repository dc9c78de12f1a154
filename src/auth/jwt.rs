//! Access tokens of local accounts: HS256 JWTs with a pinned algorithm and the claims `sub`,
//! `uid` (the account's immutable identity id: a token never works for a later account of the
//! same name), `exp`, `iat`, `nbf`, `jti`, `aud`, `iss` and `gen` (the account's token
//! generation, bumped by a password change or by disabling the account, which outdates every
//! earlier token).
//!
//! [`TokenError`] names every way a bearer credential is rejected, each with a stable wire
//! code ([`TokenError::code`]) answered under `401`. The header is inspected before any
//! verification (see [`peek_algorithm`]), so `alg: none` and foreign algorithms get their own
//! codes instead of a generic failure.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 30;
/// Longest bearer credential accepted, in bytes (a bound on parsing work).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Every reason a bearer credential is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization` header where one is required.
    #[error("authentication required")]
    Missing,
    /// The `Authorization` header is not `Bearer <credential>`.
    #[error("the authorization header must be 'Bearer <token>'")]
    UnsupportedScheme,
    /// Not a JWT (segments, base64, JSON) or missing required claims.
    #[error("the token is malformed")]
    Malformed,
    /// The signature does not verify.
    #[error("the token signature is invalid")]
    BadSignature,
    /// The token declares `alg: none` (unsigned).
    #[error("unsigned tokens (alg: none) are refused")]
    AlgNone,
    /// The token is signed with an algorithm this service does not accept for it.
    #[error("the token algorithm is not accepted")]
    WrongAlgorithm,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` (or `iat`) is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `aud` is not this service.
    #[error("the token is meant for another audience")]
    WrongAudience,
    /// `iss` is not a trusted issuer.
    #[error("the token comes from an untrusted issuer")]
    WrongIssuer,
    /// The token was revoked (logout).
    #[error("the token has been revoked")]
    Revoked,
    /// The account's token generation moved on (password changed, account disabled).
    #[error("the token is no longer valid for this account")]
    Outdated,
    /// The account is disabled.
    #[error("the account is disabled")]
    AccountDisabled,
    /// The token names an account that does not exist (any more).
    #[error("the token's account does not exist")]
    UnknownAccount,
    /// An external token names a key the configured JWKS doesn't hold.
    #[error("the token's signing key is unknown")]
    UnknownKey,
    /// An external token lacks a usable username or carries an invalid role.
    #[error("the token's claims are invalid: {0}")]
    InvalidClaims(String),
    /// An API key that doesn't exist or whose secret doesn't match.
    #[error("the api key is invalid")]
    ApiKeyInvalid,
    /// An API key past its expiry.
    #[error("the api key has expired")]
    ApiKeyExpired,
}

impl TokenError {
    /// The stable wire code of this rejection (answered under `401`).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "token_missing",
            Self::UnsupportedScheme => "token_unsupported_scheme",
            Self::Malformed => "token_malformed",
            Self::BadSignature => "token_bad_signature",
            Self::AlgNone => "token_alg_none",
            Self::WrongAlgorithm => "token_wrong_algorithm",
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            Self::WrongAudience => "token_wrong_audience",
            Self::WrongIssuer => "token_wrong_issuer",
            Self::Revoked => "token_revoked",
            Self::Outdated => "token_outdated",
            Self::AccountDisabled => "account_disabled",
            Self::UnknownAccount => "token_unknown_account",
            Self::UnknownKey => "token_unknown_key",
            Self::InvalidClaims(_) => "token_invalid_claims",
            Self::ApiKeyInvalid => "api_key_invalid",
            Self::ApiKeyExpired => "api_key_expired",
        }
    }

    /// Maps a `jsonwebtoken` failure to the rejection it means.
    #[must_use]
    pub fn from_jwt(error: &jsonwebtoken::errors::Error) -> Self {
        match error.kind() {
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::MissingAlgorithm
            | ErrorKind::UnsupportedAlgorithm => Self::WrongAlgorithm,
            _ => Self::Malformed,
        }
    }
}

/// The algorithm a JWT's header declares, read without trusting anything else in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekedHeader {
    /// `alg` as written (e.g. `HS256`, `none`).
    pub alg: String,
    /// `kid`, when present.
    pub kid: Option<String>,
}

/// Reads a JWT's header before verification, so `alg: none` and foreign algorithms can be
/// told apart from malformed tokens. Checks only the shape: three dot-separated base64url
/// segments (the third may be empty, as in unsigned tokens) and a JSON header with a string
/// `alg`.
pub fn peek_algorithm(token: &str) -> Result<PeekedHeader, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let mut segments = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed)?;
    #[derive(Deserialize)]
    struct RawHeader {
        alg: String,
        #[serde(default)]
        kid: Option<String>,
    }
    let raw: RawHeader = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    if raw.alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgNone);
    }
    Ok(PeekedHeader {
        alg: raw.alg,
        kid: raw.kid,
    })
}

/// The claims of a Trove access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account's username.
    pub sub: String,
    /// The account's identity id ([`crate::auth::store::AccountRecord::id`]).
    #[serde(default)]
    pub uid: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch.
    pub iat: u64,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Unique token id (what logout revokes).
    pub jti: String,
    /// Audience: this service.
    pub aud: String,
    /// Issuer: this service.
    pub iss: String,
    /// The account's token generation when the token was issued.
    #[serde(rename = "gen")]
    pub generation: u64,
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The encoded JWT (a secret: never log it).
    pub token: String,
    /// Its claims.
    pub claims: Claims,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

/// Tokens whose verification [`TokenService`] keeps.
const VERIFIED_KEPT: usize = 10_000;

/// Whether a verified token's times still hold at `now` (seconds): not expired, not before
/// its `nbf`, not issued in the future — each with [`LEEWAY_SECS`], as the full verification
/// checks them.
fn times_hold(claims: &Claims, now: u64) -> bool {
    claims.exp >= now.saturating_sub(LEEWAY_SECS)
        && claims.nbf.is_none_or(|nbf| nbf <= now + LEEWAY_SECS)
        && claims.iat <= now + LEEWAY_SECS
}

/// Issues and verifies HS256 access tokens.
#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Tokens this service verified, by the SHA-256 of the token (the token itself, a secret,
    /// is not kept), with their claims: what a token's signature, algorithm, audience and
    /// issuer proved does not change, so a token presented again has only its times checked
    /// (see [`TokenService::verify`]). At most [`VERIFIED_KEPT`] (emptied when full); only
    /// tokens that verified are ever added.
    verified: Arc<Mutex<HashMap<[u8; 32], Claims>>>,
    issuer: String,
    audience: String,
    ttl_secs: u64,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// A service signing with `secret`, for `issuer` and `audience`, issuing tokens valid for
    /// `ttl_secs`.
    #[must_use]
    pub fn new(secret: &[u8], issuer: &str, audience: &str, ttl_secs: u64) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            verified: Arc::default(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_secs,
        }
    }

    /// The issuer this service writes into its tokens.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Token lifetime in seconds.
    #[must_use]
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// Issues a token for the account `username` of identity `uid` at token generation
    /// `generation`, at time `now` (seconds since the epoch).
    pub fn issue_at(
        &self,
        username: &str,
        uid: &str,
        generation: u64,
        now: u64,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let claims = Claims {
            sub: username.to_owned(),
            uid: uid.to_owned(),
            exp: now + self.ttl_secs,
            iat: now,
            nbf: Some(now),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
            generation,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken {
            token,
            claims,
            expires_in: self.ttl_secs,
        })
    }

    /// Issues a token valid from now.
    pub fn issue(
        &self,
        username: &str,
        uid: &str,
        generation: u64,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        self.issue_at(
            username,
            uid,
            generation,
            jsonwebtoken::get_current_timestamp(),
        )
    }

    /// Verifies signature, algorithm (HS256 only), `exp`, `nbf`, `aud` and `iss`. Revocation,
    /// generation and account state are the caller's checks (they need storage).
    ///
    /// A token verified before (the same bytes: its SHA-256 is the key) has only its times
    /// checked again — `exp`, `nbf` and `iat` against now, with the same leeway; when one
    /// fails, the full verification answers (and its error). Every request of a client
    /// presents the same token, and decoding and validating it was a twentieth of a cheap
    /// route's CPU.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        use sha2::Digest as _;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = jsonwebtoken::get_current_timestamp();
        let kept = || self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(claims) = kept().get(&digest).filter(|claims| times_hold(claims, now)) {
            return Ok(claims.clone());
        }
        let claims = self.verify_fully(token)?;
        let mut verified = kept();
        if verified.len() >= VERIFIED_KEPT && !verified.contains_key(&digest) {
            verified.clear();
        }
        verified.insert(digest, claims.clone());
        Ok(claims)
    }

    /// [`verify`](Self::verify) without the kept tokens: decodes and validates everything.
    fn verify_fully(&self, token: &str) -> Result<Claims, TokenError> {
        let header = peek_algorithm(token)?;
        if header.alg != "HS256" {
            return Err(TokenError::WrongAlgorithm);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|error| TokenError::from_jwt(&error))?;
        let claims = data.claims;
        if claims.iat > jsonwebtoken::get_current_timestamp() + LEEWAY_SECS {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn service() -> TokenService {
        TokenService::new(SECRET, "trove", "trove", 3600)
    }

    fn encode_with(claims: &serde_json::Value, algorithm: Algorithm, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn claims_json(overrides: &[(&str, serde_json::Value)]) -> serde_json::Value {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = serde_json::json!({
            "sub": "alice", "exp": now + 600, "iat": now, "jti": "abc",
            "aud": "trove", "iss": "trove", "gen": 0
        });
        for (key, value) in overrides {
            claims[*key] = value.clone();
        }
        claims
    }

    #[test]
    fn issued_tokens_verify_with_every_claim() {
        let issued = service().issue("alice", "id-1", 3).unwrap();
        let claims = service().verify(&issued.token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.uid, "id-1");
        assert_eq!(claims.generation, 3);
        assert_eq!(claims.aud, "trove");
        assert_eq!(claims.iss, "trove");
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(claims.jti.len(), 32);
        assert_eq!(issued.expires_in, 3600);
    }

    /// A token verified once is answered from what was kept while its times hold; one whose
    /// `exp` passed since is refused as expired, and a tampered copy of a kept token is
    /// verified (and refused) on its own.
    #[test]
    fn a_kept_verification_still_checks_the_times() {
        use sha2::Digest as _;
        let service = service();
        let issued = service.issue("alice", "id-1", 3).unwrap();
        let first = service.verify(&issued.token).unwrap();
        assert_eq!(service.verify(&issued.token).unwrap(), first);
        assert_eq!(service.verified.lock().unwrap().len(), 1);
        let mut tampered = issued.token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(
            service.verify(&tampered),
            Err(TokenError::BadSignature | TokenError::Malformed)
        ));
        // A token kept while valid whose expiry (with the leeway) passes: refused, as expired.
        let now = jsonwebtoken::get_current_timestamp();
        let ending = service
            .issue_at("alice", "id-1", 3, now - 3600 - LEEWAY_SECS + 1)
            .unwrap();
        assert!(service.verify(&ending.token).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(matches!(
            service.verify(&ending.token),
            Err(TokenError::Expired)
        ));
        // Kept claims whose times fail are not the last word: the token is verified afresh.
        let digest: [u8; 32] = sha2::Sha256::digest(issued.token.as_bytes()).into();
        let mut early = first.clone();
        early.nbf = Some(now + LEEWAY_SECS + 60);
        service.verified.lock().unwrap().insert(digest, early);
        // Not yet valid by the kept claims: verified afresh (its real `nbf` is now).
        assert_eq!(service.verify(&issued.token).unwrap(), first);
    }

    #[test]
    fn every_rejection_has_its_own_code() {
        let now = jsonwebtoken::get_current_timestamp();
        let ok = encode_with(&claims_json(&[]), Algorithm::HS256, SECRET);
        assert!(service().verify(&ok).is_ok());
        let cases: Vec<(String, TokenError)> = vec![
            ("garbage".into(), TokenError::Malformed),
            ("a.b.c".into(), TokenError::Malformed),
            (format!("{ok}.extra"), TokenError::Malformed),
            (
                encode_with(
                    &claims_json(&[]),
                    Algorithm::HS256,
                    b"another-secret-another-secret-xx",
                ),
                TokenError::BadSignature,
            ),
            (
                encode_with(&claims_json(&[]), Algorithm::HS384, SECRET),
                TokenError::WrongAlgorithm,
            ),
            (
                encode_with(
                    &claims_json(&[("exp", (now - 3600).into())]),
                    Algorithm::HS256,
                    SECRET,
                ),
                TokenError::Expired,
            ),
            (
                encode_with(
                    &claims_json(&[("nbf", (now + 3600).into())]),
                    Algorithm::HS256,
                    SECRET,
                ),
                TokenError::NotYetValid,
            ),
            (
                encode_with(
                    &claims_json(&[("aud", "other".into())]),
                    Algorithm::HS256,
                    SECRET,
                ),
                TokenError::WrongAudience,
            ),
            (
                encode_with(
                    &claims_json(&[("iss", "other".into())]),
                    Algorithm::HS256,
                    SECRET,
                ),
                TokenError::WrongIssuer,
            ),
            (
                encode_with(
                    &claims_json(&[("gen", "x".into())]),
                    Algorithm::HS256,
                    SECRET,
                ),
                TokenError::Malformed,
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(service().verify(&token).unwrap_err(), expected, "{token}");
        }
    }

    #[test]
    fn unsigned_tokens_are_told_apart() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims_json(&[]).to_string());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}.c2ln"),
        ] {
            assert_eq!(service().verify(&token).unwrap_err(), TokenError::AlgNone);
        }
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"NoNe"}"#);
        assert_eq!(
            peek_algorithm(&format!("{header}.{payload}.")).unwrap_err(),
            TokenError::AlgNone
        );
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k1"}"#);
        let peeked = peek_algorithm(&format!("{header}.{payload}.sig")).unwrap();
        assert_eq!(peeked.alg, "RS256");
        assert_eq!(peeked.kid.as_deref(), Some("k1"));
    }

    #[test]
    fn codes_are_snake_case_and_distinct() {
        let all = [
            TokenError::Missing,
            TokenError::UnsupportedScheme,
            TokenError::Malformed,
            TokenError::BadSignature,
            TokenError::AlgNone,
            TokenError::WrongAlgorithm,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::WrongAudience,
            TokenError::WrongIssuer,
            TokenError::Revoked,
            TokenError::Outdated,
            TokenError::AccountDisabled,
            TokenError::UnknownAccount,
            TokenError::UnknownKey,
            TokenError::InvalidClaims(String::new()),
            TokenError::ApiKeyInvalid,
            TokenError::ApiKeyExpired,
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(TokenError::code).collect();
        assert_eq!(codes.len(), all.len());
        assert!(
            codes
                .iter()
                .all(|code| code.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }

    #[test]
    fn huge_tokens_are_malformed_without_parsing() {
        assert_eq!(
            peek_algorithm(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err(),
            TokenError::Malformed
        );
    }
}
