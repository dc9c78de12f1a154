//! Stateless scroll cursors: the parameters of the next page, signed and expiring, so any
//! replica can serve `GET /scroll/{cursor}` without shared state.
//!
//! A cursor carries only the search parameters, never an identity: the access filter is
//! recomputed from whoever presents it, so a leaked cursor reveals nothing its bearer could
//! not search for anyway. The signature stops tampering (e.g. raising `size` past the limit).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How long a cursor stays valid.
pub const CURSOR_TTL_SECS: i64 = 15 * 60;

/// Why a cursor was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CursorError {
    /// Not a cursor this service made (bad encoding or signature).
    #[error("invalid scroll cursor")]
    Invalid,
    /// Older than [`CURSOR_TTL_SECS`].
    #[error("scroll cursor expired")]
    Expired,
}

/// The parameters of the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorState {
    /// Query text.
    pub q: String,
    /// `file`, `project` or `all`.
    pub kind: String,
    /// Sort parameter as given (`-_extra.numerical_revision`), if any.
    pub sort: Option<String>,
    /// `fields` parameter as given, if any.
    pub fields: Option<String>,
    /// Page size.
    pub size: usize,
    /// Offset of the page this cursor fetches.
    pub offset: usize,
    /// `latest` flag.
    pub latest: bool,
    /// Project restriction.
    pub project: Option<String>,
    /// Version restriction.
    pub version: Option<String>,
    /// The last word is a prefix.
    #[serde(default)]
    pub prefix: bool,
    /// Each hit carries a highlighted snippet.
    #[serde(default)]
    pub highlight: bool,
    /// Expiry (unix seconds).
    pub exp: i64,
}

/// Signs and verifies cursors.
#[derive(Clone)]
pub struct CursorCodec {
    key: Vec<u8>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorCodec").finish_non_exhaustive()
    }
}

impl CursorCodec {
    /// A codec with the given secret.
    #[must_use]
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("hmac takes any key length"));
        mac.update(payload);
        mac
    }

    /// Encodes `state`, setting its expiry from `now`.
    #[must_use]
    pub fn encode(&self, mut state: CursorState, now: DateTime<Utc>) -> String {
        state.exp = now.timestamp() + CURSOR_TTL_SECS;
        let payload = serde_json::to_vec(&state).unwrap_or_default();
        let signature = self.mac(&payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    /// Verifies and decodes a cursor.
    pub fn decode(&self, cursor: &str, now: DateTime<Utc>) -> Result<CursorState, CursorError> {
        if cursor.len() > 16 * 1024 {
            return Err(CursorError::Invalid);
        }
        let (payload, signature) = cursor.split_once('.').ok_or(CursorError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| CursorError::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| CursorError::Invalid)?;
        self.mac(&payload)
            .verify_slice(&signature)
            .map_err(|_| CursorError::Invalid)?;
        let state: CursorState =
            serde_json::from_slice(&payload).map_err(|_| CursorError::Invalid)?;
        if state.exp < now.timestamp() {
            return Err(CursorError::Expired);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> CursorState {
        CursorState {
            q: "title:bert".into(),
            kind: "file".into(),
            sort: None,
            fields: None,
            size: 10,
            offset: 10,
            latest: false,
            project: None,
            version: None,
            prefix: false,
            highlight: false,
            exp: 0,
        }
    }

    #[test]
    fn a_cursor_round_trips_until_it_expires() {
        let codec = CursorCodec::new(b"k".repeat(32));
        let now = Utc::now();
        let cursor = codec.encode(state(), now);
        let decoded = codec.decode(&cursor, now).unwrap();
        assert_eq!(decoded.q, "title:bert");
        assert_eq!(decoded.offset, 10);
        let later = now + chrono::Duration::seconds(CURSOR_TTL_SECS + 1);
        assert_eq!(codec.decode(&cursor, later), Err(CursorError::Expired));
    }

    #[test]
    fn tampered_or_foreign_cursors_are_invalid() {
        let codec = CursorCodec::new(b"k".repeat(32));
        let now = Utc::now();
        let cursor = codec.encode(state(), now);
        let (payload, signature) = cursor.split_once('.').unwrap();
        let mut forged = state();
        forged.size = 100_000;
        forged.exp = now.timestamp() + 60;
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(
            codec.decode(&format!("{forged_payload}.{signature}"), now),
            Err(CursorError::Invalid)
        );
        let other = CursorCodec::new(b"x".repeat(32));
        assert_eq!(other.decode(&cursor, now), Err(CursorError::Invalid));
        for junk in ["", ".", "abc", "abc.def", &format!("{payload}.")] {
            assert_eq!(codec.decode(junk, now), Err(CursorError::Invalid), "{junk}");
        }
    }
}
