//! Tamper evidence: walks each writer's chain in storage and reports the first broken or
//! missing link of each (`trove audit verify`).
//!
//! Per writer, events are ordered by `seq`: `seq` must start at 0 and have no gap (a gap is a
//! deleted event), each event's `hash` must match its content (an edited event), its key must
//! be the one its content gives (a moved event), and its `prev_hash` must be the SHA-256 of the
//! stored bytes of its predecessor (an edited event whose own hash was recomputed). Deleting a
//! writer's last events can't be detected from the chain alone.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;

use super::event::{AuditEvent, sha256_hex};
use super::sink::{event_key, read_all};
use crate::storage::ObjectStore;

/// What is wrong at one place of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The object is not an audit event.
    Unreadable,
    /// The event's content does not match its own hash: it was edited.
    Modified,
    /// The event's `prev_hash` does not match its predecessor: the predecessor was edited.
    BrokenLink,
    /// Events are missing before this one (a gap in `seq`).
    Missing,
    /// Two events claim the same place in the chain, or an event is not under its own key.
    Misplaced,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// The key of the event where it shows.
    pub key: String,
    /// The writer (empty when unreadable).
    pub writer: String,
    /// The event's `seq`.
    pub seq: u64,
    /// A human sentence.
    pub message: String,
}

/// The result of a verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Events read.
    pub events: usize,
    /// Chains (writers) found.
    pub writers: usize,
    /// The first problem of each broken chain (and every unreadable object), in key order.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether every chain is intact.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One stored object as read back: its key, and its bytes and event (or why it is not one).
pub type StoredObject = (String, Result<(Bytes, AuditEvent), String>);

/// Verifies every chain stored in `storage`.
pub async fn verify(storage: &dyn ObjectStore) -> crate::storage::Result<VerifyReport> {
    let objects = read_all(storage).await?;
    Ok(verify_events(objects))
}

/// Verifies already-read objects (key, bytes and parsed event, or a parse error).
#[must_use]
pub fn verify_events(objects: Vec<StoredObject>) -> VerifyReport {
    let mut report = VerifyReport {
        events: objects.len(),
        ..VerifyReport::default()
    };
    let mut chains: BTreeMap<String, Vec<(String, Bytes, AuditEvent)>> = BTreeMap::new();
    for (key, parsed) in objects {
        match parsed {
            Ok((bytes, event)) => chains
                .entry(event.writer.clone())
                .or_default()
                .push((key, bytes, event)),
            Err(message) => report.problems.push(Problem {
                kind: ProblemKind::Unreadable,
                key,
                writer: String::new(),
                seq: 0,
                message,
            }),
        }
    }
    report.writers = chains.len();
    for (writer, mut events) in chains {
        events.sort_by_key(|(_, _, event)| event.seq);
        if let Some(problem) = first_problem(&writer, &events) {
            report.problems.push(problem);
        }
    }
    report.problems.sort_by(|a, b| a.key.cmp(&b.key));
    report
}

fn first_problem(writer: &str, events: &[(String, Bytes, AuditEvent)]) -> Option<Problem> {
    let problem = |kind, key: &str, seq, message: String| Problem {
        kind,
        key: key.to_owned(),
        writer: writer.to_owned(),
        seq,
        message,
    };
    let mut previous: Option<(&Bytes, u64)> = None;
    for (key, bytes, event) in events {
        if event.hash.as_deref() != Some(event.compute_hash().as_str()) {
            return Some(problem(
                ProblemKind::Modified,
                key,
                event.seq,
                format!(
                    "event {} (seq {}) does not match its hash: it was modified",
                    event.id, event.seq
                ),
            ));
        }
        if *key != event_key(event) {
            return Some(problem(
                ProblemKind::Misplaced,
                key,
                event.seq,
                format!(
                    "event {} is stored under another key than its own",
                    event.id
                ),
            ));
        }
        let expected_seq = previous.map_or(0, |(_, seq)| seq + 1);
        if event.seq < expected_seq {
            return Some(problem(
                ProblemKind::Misplaced,
                key,
                event.seq,
                format!("two events claim seq {} of writer {writer}", event.seq),
            ));
        }
        if event.seq > expected_seq {
            return Some(problem(
                ProblemKind::Missing,
                key,
                event.seq,
                format!(
                    "events {expected_seq}..{} of writer {writer} are missing before this one",
                    event.seq - 1
                ),
            ));
        }
        let expected_prev = previous.map(|(bytes, _)| sha256_hex(bytes));
        if event.prev_hash != expected_prev {
            return Some(problem(
                ProblemKind::BrokenLink,
                key,
                event.seq,
                format!(
                    "prev_hash of seq {} does not match the stored event seq {}: the previous event was modified",
                    event.seq,
                    event.seq.saturating_sub(1)
                ),
            ));
        }
        previous = Some((bytes, event.seq));
    }
    None
}
