//! An external identity provider for tests: an ES256 key, its JWKS document served over HTTP
//! on 127.0.0.1 (down with `503` until told it is up), an app trusting it, and its tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::TestApp;

/// A JWKS document served on 127.0.0.1, with the key that signs its tokens.
pub struct Provider {
    /// The signing key (ES256).
    pub key: EncodingKey,
    /// The key id the JWKS document names it by.
    pub kid: String,
    /// `http://127.0.0.1:<port>/.well-known/jwks.json`.
    pub jwks_url: String,
    /// While false, the JWKS route answers `503`.
    pub up: Arc<AtomicBool>,
    /// The HTTP server's task (aborted on drop).
    pub server: tokio::task::JoinHandle<()>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Provider {
    /// A provider with a fresh ES256 key `kid`, up from the start when `up`.
    pub async fn start(kid: &str, up: bool) -> Self {
        let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .unwrap();
        let key = EncodingKey::from_ec_der(pair.to_pkcs8v1().unwrap().as_ref());
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some(kid.into());
        let body = serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap();
        let up = Arc::new(AtomicBool::new(up));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let provider_up = up.clone();
        let server = tokio::spawn(async move {
            let router = axum::Router::new().route(
                "/.well-known/jwks.json",
                axum::routing::get(move || {
                    let body = body.clone();
                    let up = provider_up.load(Ordering::SeqCst);
                    async move {
                        if up {
                            (StatusCode::OK, [("content-type", "application/json")], body)
                        } else {
                            (
                                StatusCode::SERVICE_UNAVAILABLE,
                                [("content-type", "text/plain")],
                                String::new(),
                            )
                        }
                    }
                }),
            );
            let _ = axum::serve(listener, router).await;
        });
        Self {
            key,
            kid: kid.to_owned(),
            jwks_url: format!("http://{address}/.well-known/jwks.json"),
            up,
            server,
        }
    }

    /// A local-storage app trusting this provider (issuer `https://idp.example`, audience
    /// `trove-api`).
    pub async fn trusting_app(&self) -> TestApp {
        let jwks_url = self.jwks_url.clone();
        TestApp::local_with(|settings| {
            settings.oidc.jwks_url = Some(jwks_url);
            settings.oidc.issuer = Some("https://idp.example".into());
            settings.oidc.audience = Some("trove-api".into());
        })
        .await
    }

    /// A token of this provider for `username` (`preferred_username`), valid for 10 minutes.
    pub fn token(&self, username: &str) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(
            &header,
            &json!({"iss": "https://idp.example", "aud": "trove-api", "exp": now + 600,
                    "iat": now, "preferred_username": username}),
            &self.key,
        )
        .unwrap()
    }
}
