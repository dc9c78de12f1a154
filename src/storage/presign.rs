//! Server-signed, expiring URLs for the local backend (S3 presigns natively).
//!
//! The local backend has no server of its own, so Trove serves `GET`/`PUT /storage/{key}`
//! itself and accepts a request there only with a valid, unexpired HMAC-SHA256 signature over
//! (method, key, expiry, optional Content-MD5) made with a secret kept in the data directory.
//!
//! URL form: `{base_url}/storage/{percent-encoded key}?X-Trove-Method=PUT&X-Trove-Expires=<unix
//! seconds>&X-Trove-Signature=<hex>[&X-Trove-Content-MD5=<base64>]`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{PresignMethod, Result, StorageError, validate_key};

/// Query parameter carrying the method the URL is valid for (`GET` or `PUT`).
pub const PARAM_METHOD: &str = "X-Trove-Method";
/// Query parameter carrying the expiry (unix seconds).
pub const PARAM_EXPIRES: &str = "X-Trove-Expires";
/// Query parameter carrying the signature (hex HMAC-SHA256).
pub const PARAM_SIGNATURE: &str = "X-Trove-Signature";
/// Query parameter carrying the base64 Content-MD5 the upload must match, when bound.
pub const PARAM_CONTENT_MD5: &str = "X-Trove-Content-MD5";

/// Longest validity of a presigned URL (as on S3: seven days).
pub const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Domain separation tag of the signed message, so a signature can't be replayed as a MAC
/// made elsewhere with the same secret.
const SIGNATURE_CONTEXT: &str = "trove-presign-v1";

/// Signs and verifies presigned URLs of the local backend.
#[derive(Clone)]
pub struct LocalPresigner {
    /// Base URL of this service as clients reach it (e.g. `http://127.0.0.1:8080`).
    pub base_url: url::Url,
    secret: Vec<u8>,
}

impl std::fmt::Debug for LocalPresigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPresigner")
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

/// What a verified presigned request allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPresign {
    /// The method the URL was signed for.
    pub method: PresignMethod,
    /// The Content-MD5 the body must match, when the URL binds one.
    pub content_md5: Option<[u8; 16]>,
}

fn method_name(method: PresignMethod) -> &'static str {
    match method {
        PresignMethod::Get => "GET",
        PresignMethod::Put => "PUT",
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

impl LocalPresigner {
    /// A presigner for `base_url` with the given secret (at least 32 bytes).
    #[must_use]
    pub fn new(base_url: url::Url, secret: Vec<u8>) -> Self {
        Self { base_url, secret }
    }

    /// The MAC over one (method, key, expiry, md5) tuple, ready for `finalize` or `verify`.
    fn mac(
        &self,
        method: PresignMethod,
        key: &str,
        expires: u64,
        content_md5: Option<&[u8; 16]>,
    ) -> Result<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .map_err(|error| StorageError::Backend(format!("presign secret: {error}")))?;
        let md5_hex = content_md5.map(hex::encode).unwrap_or_default();
        // Fields are separated by '\n', which validate_key forbids inside keys, so two
        // different tuples never produce the same message.
        let message = format!(
            "{SIGNATURE_CONTEXT}\n{}\n{key}\n{expires}\n{md5_hex}",
            method_name(method)
        );
        mac.update(message.as_bytes());
        Ok(mac)
    }

    /// Builds the URL `{base_url}/storage/{key}?...` valid for `method` until `expires_in`
    /// (at most [`MAX_EXPIRY`]).
    pub fn sign(
        &self,
        method: PresignMethod,
        key: &str,
        expires_in: Duration,
        content_md5: Option<[u8; 16]>,
    ) -> Result<String> {
        validate_key(key)?;
        if expires_in > MAX_EXPIRY {
            return Err(StorageError::Backend(
                "presigned url validity above seven days".into(),
            ));
        }
        let expires = unix_now().saturating_add(expires_in.as_secs().max(1));
        let signature = hex::encode(
            self.mac(method, key, expires, content_md5.as_ref())?
                .finalize()
                .into_bytes(),
        );
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| StorageError::Backend("presign base url can't have a path".into()))?
            .pop_if_empty()
            .push("storage")
            .extend(key.split('/'));
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair(PARAM_METHOD, method_name(method))
                .append_pair(PARAM_EXPIRES, &expires.to_string())
                .append_pair(PARAM_SIGNATURE, &signature);
            if let Some(md5) = content_md5 {
                query.append_pair(PARAM_CONTENT_MD5, &BASE64.encode(md5));
            }
        }
        Ok(url.into())
    }

    /// Checks the query of a request to `/storage/{key}` made with `method` (the key as
    /// decoded from the path). Fails with [`StorageError::PresignInvalid`] when a parameter is
    /// missing or malformed, the method differs, the signature is wrong or the URL expired.
    pub fn verify(
        &self,
        method: PresignMethod,
        key: &str,
        query: &HashMap<String, String>,
    ) -> Result<VerifiedPresign> {
        let invalid = |why: &str| StorageError::PresignInvalid(why.to_owned());
        let param = |name: &str| query.get(name).ok_or_else(|| invalid("missing parameter"));
        validate_key(key).map_err(|_| invalid("invalid key"))?;
        if param(PARAM_METHOD)? != method_name(method) {
            return Err(invalid("url signed for another method"));
        }
        let expires: u64 = param(PARAM_EXPIRES)?
            .parse()
            .map_err(|_| invalid("malformed expiry"))?;
        let signature =
            hex::decode(param(PARAM_SIGNATURE)?).map_err(|_| invalid("malformed signature"))?;
        let content_md5 = match query.get(PARAM_CONTENT_MD5) {
            None => None,
            Some(encoded) => {
                let raw = BASE64
                    .decode(encoded)
                    .map_err(|_| invalid("malformed content-md5"))?;
                Some(
                    <[u8; 16]>::try_from(raw.as_slice())
                        .map_err(|_| invalid("malformed content-md5"))?,
                )
            }
        };
        self.mac(method, key, expires, content_md5.as_ref())?
            .verify_slice(&signature)
            .map_err(|_| invalid("bad signature"))?;
        if unix_now() > expires {
            return Err(invalid("expired"));
        }
        Ok(VerifiedPresign {
            method,
            content_md5,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presigner() -> LocalPresigner {
        LocalPresigner::new(
            url::Url::parse("http://127.0.0.1:8080").expect("url"),
            vec![7; 32],
        )
    }

    fn query_of(url: &str) -> (String, HashMap<String, String>) {
        let url = url::Url::parse(url).expect("url");
        let query = url.query_pairs().into_owned().collect();
        (url.path().to_owned(), query)
    }

    #[test]
    fn signed_urls_verify() {
        let presigner = presigner();
        let md5 = [1u8; 16];
        let url = presigner
            .sign(
                PresignMethod::Put,
                "p/v1/a b/ü.csv",
                Duration::from_secs(60),
                Some(md5),
            )
            .expect("sign");
        let (path, query) = query_of(&url);
        assert_eq!(path, "/storage/p/v1/a%20b/%C3%BC.csv");
        let verified = presigner
            .verify(PresignMethod::Put, "p/v1/a b/ü.csv", &query)
            .expect("verify");
        assert_eq!(verified.content_md5, Some(md5));
        assert_eq!(verified.method, PresignMethod::Put);

        let url = presigner
            .sign(
                PresignMethod::Get,
                "..meta/x",
                Duration::from_secs(60),
                None,
            )
            .expect("sign");
        let (path, query) = query_of(&url);
        assert_eq!(path, "/storage/..meta/x");
        assert!(
            presigner
                .verify(PresignMethod::Get, "..meta/x", &query)
                .is_ok()
        );
    }

    #[test]
    fn tampered_urls_fail() {
        let presigner = presigner();
        let url = presigner
            .sign(
                PresignMethod::Put,
                "p/v1/f",
                Duration::from_secs(60),
                Some([2; 16]),
            )
            .expect("sign");
        let (_, query) = query_of(&url);
        let rejected = |method, key: &str, query: &HashMap<String, String>| {
            matches!(
                presigner.verify(method, key, query),
                Err(StorageError::PresignInvalid(_))
            )
        };
        assert!(rejected(PresignMethod::Put, "p/v1/g", &query));
        assert!(rejected(PresignMethod::Get, "p/v1/f", &query));

        let mut wrong_method = query.clone();
        wrong_method.insert(PARAM_METHOD.into(), "GET".into());
        assert!(rejected(PresignMethod::Get, "p/v1/f", &wrong_method));

        let mut later = query.clone();
        let expires: u64 = query[PARAM_EXPIRES].parse().expect("number");
        later.insert(PARAM_EXPIRES.into(), (expires + 3600).to_string());
        assert!(rejected(PresignMethod::Put, "p/v1/f", &later));

        let mut bad_signature = query.clone();
        bad_signature.insert(PARAM_SIGNATURE.into(), "00".repeat(32));
        assert!(rejected(PresignMethod::Put, "p/v1/f", &bad_signature));

        let mut other_md5 = query.clone();
        other_md5.insert(PARAM_CONTENT_MD5.into(), BASE64.encode([3u8; 16]));
        assert!(rejected(PresignMethod::Put, "p/v1/f", &other_md5));

        let mut unbound = query.clone();
        unbound.remove(PARAM_CONTENT_MD5);
        assert!(rejected(PresignMethod::Put, "p/v1/f", &unbound));

        let mut missing = query;
        missing.remove(PARAM_SIGNATURE);
        assert!(rejected(PresignMethod::Put, "p/v1/f", &missing));

        let other_secret = LocalPresigner::new(presigner.base_url.clone(), vec![8; 32]);
        let (_, query) = query_of(&url);
        assert!(
            other_secret
                .verify(PresignMethod::Put, "p/v1/f", &query)
                .is_err()
        );
    }

    #[test]
    fn expired_urls_fail() {
        let presigner = presigner();
        // A correctly signed URL whose expiry is in the past.
        let expires = unix_now() - 10;
        let signature = hex::encode(
            presigner
                .mac(PresignMethod::Get, "p/v1/f", expires, None)
                .expect("mac")
                .finalize()
                .into_bytes(),
        );
        let query = HashMap::from([
            (PARAM_METHOD.to_owned(), "GET".to_owned()),
            (PARAM_EXPIRES.to_owned(), expires.to_string()),
            (PARAM_SIGNATURE.to_owned(), signature),
        ]);
        let error = presigner
            .verify(PresignMethod::Get, "p/v1/f", &query)
            .expect_err("expired");
        assert!(matches!(error, StorageError::PresignInvalid(ref why) if why == "expired"));
    }

    #[test]
    fn hostile_keys_are_not_signed() {
        let presigner = presigner();
        assert!(
            presigner
                .sign(PresignMethod::Get, "../x", Duration::from_secs(60), None)
                .is_err()
        );
        assert!(
            presigner
                .sign(
                    PresignMethod::Get,
                    "a",
                    Duration::from_secs(30 * 24 * 3600),
                    None
                )
                .is_err()
        );
    }
}
