//! Authentication: who is calling.
//!
//! - [`password`]: argon2id hashing and verification on the blocking pool, bounded by a
//!   semaphore, with a dummy hash for unknown users.
//! - [`jwt`]: Trove's own HS256 access tokens and [`jwt::TokenError`], every reason a bearer
//!   credential is refused, each with a stable code.
//! - [`oidc`]: tokens of an external OpenID Connect provider (RS256/ES256 against a JWKS).
//! - [`rate_limit`]: login attempts per (username, client address), per username and per
//!   client address, in bounded memory.
//! - [`store`]: account, group, API-key, revoked-token and tombstone records in object storage.
//! - [`service`]: [`service::AuthService`], what the routes and the extractor call: its state,
//!   caches and shared lookups; its methods by concern in [`sessions`] (authentication,
//!   login, logout, password change, revocations), [`accounts`], [`groups`], [`api_keys`].
//! - [`principal`]: [`principal::Principal`], the authenticated caller of a request.
//! - [`audit`]: the hook every login success and failure goes through.
//! - [`http`]: the small HTTPS client fetching a JWKS URL.
//!
//! Secrets (passwords, tokens, API-key secrets, signing keys) never reach a log line: the
//! types holding them don't print them, and the code never formats them.

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod groups;
pub mod http;
pub mod jwt;
pub mod oidc;
pub mod password;
pub mod principal;
pub mod rate_limit;
pub mod service;
pub mod sessions;
pub mod store;

pub use principal::Principal;
pub use service::AuthService;
