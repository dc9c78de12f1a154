//! Checkpoints anchor each writer's chain, so that deleting its last events or rewriting an
//! event and re-hashing everything after it is detected (`trove audit verify`).
//!
//! A checkpoint says "writer `W` had stored `count` events, the last one's stored bytes hash to
//! `head_hash`", signed with HMAC-SHA256 under a key that is never stored in the bucket
//! (`TROVE_AUDIT_CHECKPOINT_SECRET[_FILE]`, or `secrets/audit-checkpoint.key` of the data
//! directory). Someone who can write the bucket but not read that key can delete or rewrite
//! events, but can't make a checkpoint that vouches for the result. The sink writes one before
//! a writer's first event, every [`CHECKPOINT_EVERY`] events, and at each flush (every second
//! while events come) and at shutdown; it is stored at
//! [`crate::storage::keys::audit_checkpoint`] (one object per writer, the latest).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// A checkpoint is written at least every this many events of a writer (and at every flush).
pub const CHECKPOINT_EVERY: u64 = 64;

/// Domain separation of the signed message.
const SIGNED_PREFIX: &str = "trove-audit-checkpoint-v1";

/// The HMAC key of checkpoints; never printed.
#[derive(Clone)]
pub struct CheckpointKey(Vec<u8>);

impl CheckpointKey {
    /// Wraps the key's bytes.
    #[must_use]
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length: this cannot fail.
        Hmac::<Sha256>::new_from_slice(&self.0).expect("hmac accepts keys of any length")
    }
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("CheckpointKey(***)")
    }
}

/// One writer's checkpoint, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The writer (process) whose chain this anchors.
    pub writer: String,
    /// How many events the chain had (`seq` 0 to `count - 1`).
    pub count: u64,
    /// SHA-256 (hex) of the stored bytes of event `count - 1`; none when `count` is 0.
    pub head_hash: Option<String>,
    /// When it was written.
    pub ts: DateTime<Utc>,
    /// HMAC-SHA256 (hex) of the fields above.
    pub signature: String,
}

impl Checkpoint {
    /// A signed checkpoint.
    #[must_use]
    pub fn sign(
        key: &CheckpointKey,
        writer: &str,
        count: u64,
        head_hash: Option<String>,
        ts: DateTime<Utc>,
    ) -> Self {
        let mut checkpoint = Self {
            writer: writer.to_owned(),
            count,
            head_hash,
            ts,
            signature: String::new(),
        };
        let mut mac = key.mac();
        mac.update(&checkpoint.message());
        checkpoint.signature = hex::encode(mac.finalize().into_bytes());
        checkpoint
    }

    /// Whether the signature is the key's over these fields (constant-time comparison).
    #[must_use]
    pub fn is_signed_by(&self, key: &CheckpointKey) -> bool {
        let Ok(signature) = hex::decode(&self.signature) else {
            return false;
        };
        let mut mac = key.mac();
        mac.update(&self.message());
        mac.verify_slice(&signature).is_ok()
    }

    /// The signed message: every field, unambiguously separated (none holds a newline).
    fn message(&self) -> Vec<u8> {
        format!(
            "{SIGNED_PREFIX}\n{}\n{}\n{}\n{}",
            self.writer,
            self.count,
            self.head_hash.as_deref().unwrap_or("-"),
            self.ts.timestamp_nanos_opt().unwrap_or_default(),
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> CheckpointKey {
        CheckpointKey::new(text.as_bytes())
    }

    fn signed() -> Checkpoint {
        Checkpoint::sign(
            &key("the-key-of-the-tests-0123456789abcdef"),
            "w1",
            30,
            Some("ab".repeat(32)),
            Utc::now(),
        )
    }

    #[test]
    fn a_signed_checkpoint_verifies_with_its_key_only() {
        let checkpoint = signed();
        assert!(checkpoint.is_signed_by(&key("the-key-of-the-tests-0123456789abcdef")));
        assert!(!checkpoint.is_signed_by(&key("another-key-0123456789abcdef-012345")));
    }

    #[test]
    fn changing_any_field_breaks_the_signature() {
        let key = key("the-key-of-the-tests-0123456789abcdef");
        let checkpoint = signed();
        let mut fewer = checkpoint.clone();
        fewer.count = 10;
        let mut other_head = checkpoint.clone();
        other_head.head_hash = Some("cd".repeat(32));
        let mut no_head = checkpoint.clone();
        no_head.head_hash = None;
        let mut other_writer = checkpoint.clone();
        other_writer.writer = "w2".to_owned();
        let mut older = checkpoint.clone();
        older.ts = checkpoint.ts - chrono::Duration::seconds(1);
        let mut garbage = checkpoint.clone();
        garbage.signature = "not hex".to_owned();
        for forged in [fewer, other_head, no_head, other_writer, older, garbage] {
            assert!(!forged.is_signed_by(&key), "{forged:?}");
        }
    }

    #[test]
    fn the_key_is_never_printed() {
        let key = key("the-key-of-the-tests-0123456789abcdef");
        assert!(!format!("{key:?}").contains("the-key"));
    }
}
