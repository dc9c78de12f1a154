//! The browser session: the API access token in a cookie, the CSRF token bound to it, and
//! the request context (client address, https) a page passes on to the API.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::UiState;

/// The session cookie: the API access token.
pub const SESSION_COOKIE: &str = "trove_session";
/// The pre-login cookie: a random value the login form's CSRF token is bound to.
pub const LOGIN_COOKIE: &str = "trove_login";
/// The header browser scripts send the CSRF token in (`/ui/api/...`).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What a UI handler knows of the browser's request.
#[derive(Debug, Clone)]
pub struct Browser {
    /// The session's access token, when signed in.
    pub token: Option<String>,
    /// The pre-login cookie's value.
    pub login_nonce: Option<String>,
    /// The TCP peer, passed on to the API (login rate limits and audit use it).
    pub peer: Option<ConnectInfo<SocketAddr>>,
    /// Whether the browser reached us over https (directly or through a proxy that says so).
    pub https: bool,
}

impl FromRequestParts<UiState> for Browser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &UiState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            token: cookie(&parts.headers, SESSION_COOKIE).filter(|token| !token.is_empty()),
            login_nonce: cookie(&parts.headers, LOGIN_COOKIE).filter(|nonce| !nonce.is_empty()),
            peer: parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned(),
            https: is_https(&parts.headers, &state.app().settings.public_url()),
        })
    }
}

/// Whether the request came over https: the public URL says so, or a proxy's
/// `X-Forwarded-Proto: https` (trusting it only ever makes the cookie stricter).
fn is_https(headers: &HeaderMap, public_url: &str) -> bool {
    public_url.starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.eq_ignore_ascii_case("https"))
}

/// The value of cookie `name` in the request's `Cookie` headers.
#[must_use]
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
}

/// A `Set-Cookie` value: `HttpOnly; SameSite=Strict; Path=/`, `Secure` over https;
/// `max_age` 0 deletes the cookie.
#[must_use]
pub fn set_cookie(name: &str, value: &str, max_age: u64, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    format!("{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// The CSRF token of a session (or of a pre-login nonce): hex HMAC-SHA256 of the purpose and
/// the value under the server's secret.
#[must_use]
pub fn csrf_token(key: &[u8], purpose: &str, value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(purpose.as_bytes());
    mac.update(b"\0");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a CSRF token in constant time.
#[must_use]
pub fn csrf_valid(key: &[u8], purpose: &str, value: &str, token: &str) -> bool {
    let Ok(given) = hex::decode(token) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(purpose.as_bytes());
    mac.update(b"\0");
    mac.update(value.as_bytes());
    mac.verify_slice(&given).is_ok()
}

impl UiState {
    /// The CSRF token of `browser`'s session (empty when anonymous: nothing to protect).
    #[must_use]
    pub fn session_csrf(&self, browser: &Browser) -> String {
        browser
            .token
            .as_deref()
            .map(|token| csrf_token(&self.inner.csrf_key, "session", token))
            .unwrap_or_default()
    }

    /// Whether `token` is the CSRF token of `browser`'s session.
    #[must_use]
    pub fn session_csrf_valid(&self, browser: &Browser, token: &str) -> bool {
        browser
            .token
            .as_deref()
            .is_some_and(|session| csrf_valid(&self.inner.csrf_key, "session", session, token))
    }

    /// The login form's CSRF token for a pre-login nonce.
    #[must_use]
    pub fn login_csrf(&self, nonce: &str) -> String {
        csrf_token(&self.inner.csrf_key, "login", nonce)
    }

    /// Whether `token` is the login form's CSRF token for `browser`'s nonce.
    #[must_use]
    pub fn login_csrf_valid(&self, browser: &Browser, token: &str) -> bool {
        browser
            .login_nonce
            .as_deref()
            .is_some_and(|nonce| csrf_valid(&self.inner.csrf_key, "login", nonce, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csrf_token_is_bound_to_its_session_and_purpose() {
        let key = b"0123456789abcdef0123456789abcdef";
        let token = csrf_token(key, "session", "tok-a");
        assert!(csrf_valid(key, "session", "tok-a", &token));
        assert!(!csrf_valid(key, "session", "tok-b", &token));
        assert!(!csrf_valid(key, "login", "tok-a", &token));
        assert!(!csrf_valid(
            b"another key of thirty-two bytes!",
            "session",
            "tok-a",
            &token
        ));
        assert!(!csrf_valid(key, "session", "tok-a", "not hex"));
        assert!(!csrf_valid(key, "session", "tok-a", ""));
    }

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "a=1; trove_session=abc".parse().unwrap());
        headers.append(header::COOKIE, "trove_login=n1".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE).as_deref(), Some("n1"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_over_https() {
        let plain = set_cookie(SESSION_COOKIE, "t", 60, false);
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(plain.contains("Path=/") && !plain.contains("Secure"));
        assert!(set_cookie(SESSION_COOKIE, "t", 60, true).ends_with("; Secure"));
    }
}
