//! Tamper evidence: walks each writer's chain in storage and reports the first broken or
//! missing link of each (`trove audit verify`).
//!
//! Per writer, events are ordered by `seq`: `seq` must start at 0 and have no gap (a gap is a
//! deleted event), each event's `hash` must match its content (an edited event), its key must
//! be the one its content gives (a moved event), and its `prev_hash` must be the SHA-256 of the
//! stored bytes of its predecessor (an edited event whose own hash was recomputed). Deleting a
//! writer's last events, or rewriting an event and re-hashing everything after it, can't be
//! detected from the chain alone: [`verify_anchored`] also checks each chain against its last
//! signed checkpoint ([`super::checkpoint`]) — fewer events than it covers is a truncation,
//! a head that hashes differently is a rewrite, a bad signature a forged checkpoint, and a
//! chain with events but no checkpoint had it deleted. Events stored after the last checkpoint
//! (at most about a second's worth, or those of a process that crashed) are vouched for by the
//! chain only.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;

use super::checkpoint::{Checkpoint, CheckpointKey};
use super::event::{AuditEvent, sha256_hex};
use super::sink::{event_key, read_all};
use crate::storage::{ObjectStore, ObjectStoreExt as _, keys};

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
    /// The chain has fewer events than its last checkpoint covers: its tail was deleted.
    Truncated,
    /// The event the last checkpoint ends at is not the one it signed: the chain was rewritten
    /// (and re-hashed).
    CheckpointMismatch,
    /// A checkpoint whose signature is not the key's (or that is unreadable): forged or edited.
    ForgedCheckpoint,
    /// A chain with events and no checkpoint: its checkpoint was deleted.
    MissingCheckpoint,
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
    /// Checkpoints read (only with [`verify_anchored`]).
    pub checkpoints: usize,
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

/// Verifies every chain stored in `storage`, and each against its last checkpoint signed
/// with `key` (what `trove audit verify` runs).
pub async fn verify_anchored(
    storage: &dyn ObjectStore,
    key: &CheckpointKey,
) -> crate::storage::Result<VerifyReport> {
    let objects = read_all(storage).await?;
    let mut checkpoints = Vec::new();
    for object in storage.list_all(&keys::audit_checkpoint_prefix()).await? {
        match storage.get_bytes(&object.key).await {
            Ok((bytes, _)) => checkpoints.push((
                object.key,
                serde_json::from_slice::<Checkpoint>(&bytes).map_err(|error| error.to_string()),
            )),
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error),
        }
    }
    Ok(verify_events_anchored(objects, checkpoints, key))
}

/// One stored checkpoint as read back: its key, and the checkpoint (or why it is not one).
pub type StoredCheckpoint = (String, Result<Checkpoint, String>);

/// [`verify_events`], then each chain against its checkpoint among `checkpoints`.
#[must_use]
pub fn verify_events_anchored(
    objects: Vec<StoredObject>,
    checkpoints: Vec<StoredCheckpoint>,
    key: &CheckpointKey,
) -> VerifyReport {
    let mut report = verify_events(objects.clone());
    report.checkpoints = checkpoints.len();
    let mut chains: BTreeMap<String, Vec<(String, Bytes, u64)>> = BTreeMap::new();
    for (object_key, parsed) in objects {
        if let Ok((bytes, event)) = parsed {
            chains
                .entry(event.writer.clone())
                .or_default()
                .push((object_key, bytes, event.seq));
        }
    }
    let mut anchored = std::collections::BTreeSet::new();
    for (checkpoint_key, parsed) in checkpoints {
        let forged = |message: String| Problem {
            kind: ProblemKind::ForgedCheckpoint,
            key: checkpoint_key.clone(),
            writer: String::new(),
            seq: 0,
            message,
        };
        let checkpoint = match parsed {
            Ok(checkpoint) => checkpoint,
            Err(error) => {
                report
                    .problems
                    .push(forged(format!("not a checkpoint: {error}")));
                continue;
            }
        };
        if checkpoint_key != keys::audit_checkpoint(&checkpoint.writer)
            || !checkpoint.is_signed_by(key)
        {
            report.problems.push(Problem {
                writer: checkpoint.writer.clone(),
                ..forged(format!(
                    "the checkpoint of writer {} is not signed with the checkpoint key: forged or edited",
                    checkpoint.writer
                ))
            });
            // A forged checkpoint still proves its chain had one.
            anchored.insert(checkpoint.writer);
            continue;
        }
        anchored.insert(checkpoint.writer.clone());
        let events = chains
            .get(&checkpoint.writer)
            .map_or(&[][..], Vec::as_slice);
        if let Some(problem) = against_checkpoint(&checkpoint, &checkpoint_key, events) {
            report.problems.push(problem);
        }
    }
    for (writer, events) in &chains {
        if !anchored.contains(writer)
            && let Some((first_key, _, seq)) = events.iter().min_by_key(|(_, _, seq)| *seq)
        {
            report.problems.push(Problem {
                kind: ProblemKind::MissingCheckpoint,
                key: first_key.clone(),
                writer: writer.clone(),
                seq: *seq,
                message: format!(
                    "writer {writer} has {} events and no checkpoint: it was deleted",
                    events.len()
                ),
            });
        }
    }
    report.problems.sort_by(|a, b| a.key.cmp(&b.key));
    report
}

/// What is wrong with a chain's `events` (key, stored bytes, seq) against its valid
/// `checkpoint`.
fn against_checkpoint(
    checkpoint: &Checkpoint,
    checkpoint_key: &str,
    events: &[(String, Bytes, u64)],
) -> Option<Problem> {
    let count = checkpoint.count;
    let writer = &checkpoint.writer;
    let head_seq = count.checked_sub(1)?;
    let covered = events.iter().filter(|(_, _, seq)| *seq < count).count() as u64;
    let Some((head_key, head_bytes, _)) = events.iter().find(|(_, _, seq)| *seq == head_seq) else {
        return Some(Problem {
            kind: ProblemKind::Truncated,
            key: checkpoint_key.to_owned(),
            writer: writer.clone(),
            seq: head_seq,
            message: format!(
                "the last checkpoint of writer {writer} covers {count} events and only {covered} are stored: {} events were deleted at the tail",
                count - covered
            ),
        });
    };
    if checkpoint.head_hash.as_deref() != Some(sha256_hex(head_bytes).as_str()) {
        return Some(Problem {
            kind: ProblemKind::CheckpointMismatch,
            key: head_key.clone(),
            writer: writer.clone(),
            seq: head_seq,
            message: format!(
                "event seq {head_seq} of writer {writer} is not the one its checkpoint signed: the chain was rewritten"
            ),
        });
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CheckpointKey {
        CheckpointKey::new("the-checkpoint-key-of-the-tests-0123".as_bytes())
    }

    /// A chain of `count` events of writer `w`, as stored (key, bytes, event).
    fn chain(count: u64) -> Vec<StoredObject> {
        let mut previous: Option<Bytes> = None;
        (0..count)
            .map(|seq| {
                let mut event = AuditEvent::new("file.download").resource(format!("file:{seq}"));
                event.writer = "w".to_owned();
                event.seq = seq;
                event.prev_hash = previous.as_ref().map(|bytes| sha256_hex(bytes));
                event.hash = Some(event.compute_hash());
                let bytes = Bytes::from(serde_json::to_vec(&event).unwrap());
                previous = Some(bytes.clone());
                (event_key(&event), Ok((bytes, event)))
            })
            .collect()
    }

    /// The checkpoint a writer would store after `objects`.
    fn checkpoint_of(objects: &[StoredObject]) -> StoredCheckpoint {
        let head = objects.last().map(|(_, parsed)| {
            let (bytes, _) = parsed.as_ref().unwrap();
            sha256_hex(bytes)
        });
        let checkpoint =
            Checkpoint::sign(&key(), "w", objects.len() as u64, head, chrono::Utc::now());
        (keys::audit_checkpoint("w"), Ok(checkpoint))
    }

    fn kinds(report: &VerifyReport) -> Vec<ProblemKind> {
        report.problems.iter().map(|problem| problem.kind).collect()
    }

    #[test]
    fn an_anchored_chain_verifies() {
        let events = chain(5);
        let checkpoint = checkpoint_of(&events);
        let report = verify_events_anchored(events, vec![checkpoint], &key());
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.checkpoints, 1);
        // Events after the checkpoint (not flushed yet) are vouched for by the chain.
        let events = chain(7);
        let checkpoint = checkpoint_of(&events[..5]);
        assert!(verify_events_anchored(events, vec![checkpoint], &key()).is_ok());
    }

    #[test]
    fn a_deleted_tail_is_a_truncation() {
        let mut events = chain(30);
        let checkpoint = checkpoint_of(&events);
        events.truncate(10);
        assert!(verify_events(events.clone()).is_ok());
        let report = verify_events_anchored(events, vec![checkpoint.clone()], &key());
        assert_eq!(kinds(&report), [ProblemKind::Truncated]);
        assert!(report.problems[0].message.contains("20 events"));
        // Every event deleted, the checkpoint left: still a truncation.
        let report = verify_events_anchored(Vec::new(), vec![checkpoint], &key());
        assert_eq!(kinds(&report), [ProblemKind::Truncated]);
    }

    #[test]
    fn a_rewritten_and_rehashed_chain_does_not_match_its_checkpoint() {
        let original = chain(6);
        let checkpoint = checkpoint_of(&original);
        // Same length, other content: a chain built anew is internally consistent.
        let mut rewritten = chain(6);
        for (_, parsed) in &mut rewritten {
            let (_, event) = parsed.as_mut().unwrap();
            event.ts = chrono::Utc::now();
        }
        let rewritten = {
            let mut previous: Option<Bytes> = None;
            rewritten
                .into_iter()
                .map(|(_, parsed)| {
                    let (_, mut event) = parsed.unwrap();
                    event.prev_hash = previous.as_ref().map(|bytes| sha256_hex(bytes));
                    event.hash = None;
                    event.hash = Some(event.compute_hash());
                    let bytes = Bytes::from(serde_json::to_vec(&event).unwrap());
                    previous = Some(bytes.clone());
                    (event_key(&event), Ok((bytes, event)))
                })
                .collect::<Vec<_>>()
        };
        assert!(verify_events(rewritten.clone()).is_ok());
        let report = verify_events_anchored(rewritten, vec![checkpoint], &key());
        assert_eq!(kinds(&report), [ProblemKind::CheckpointMismatch]);
        assert_eq!(report.problems[0].seq, 5);
    }

    #[test]
    fn forged_unreadable_and_missing_checkpoints_are_reported() {
        let events = chain(4);
        let (name, checkpoint) = checkpoint_of(&events[..3]);
        let mut forged = checkpoint.unwrap();
        forged.count = 4;
        forged.head_hash = checkpoint_of(&events).1.unwrap().head_hash;
        let report =
            verify_events_anchored(events.clone(), vec![(name.clone(), Ok(forged))], &key());
        assert_eq!(kinds(&report), [ProblemKind::ForgedCheckpoint]);

        let other_key = CheckpointKey::new("another-key-entirely-0123456789abcdef".as_bytes());
        let report =
            verify_events_anchored(events.clone(), vec![checkpoint_of(&events)], &other_key);
        assert_eq!(kinds(&report), [ProblemKind::ForgedCheckpoint]);

        let report = verify_events_anchored(
            events.clone(),
            vec![(name, Err("expected value".to_owned()))],
            &key(),
        );
        assert!(kinds(&report).contains(&ProblemKind::ForgedCheckpoint));

        let report = verify_events_anchored(events, Vec::new(), &key());
        assert_eq!(kinds(&report), [ProblemKind::MissingCheckpoint]);
        assert_eq!(report.problems[0].seq, 0);
    }

    #[test]
    fn a_checkpoint_under_another_writers_key_is_forged() {
        let events = chain(2);
        let (_, checkpoint) = checkpoint_of(&events);
        let report = verify_events_anchored(
            events,
            vec![(keys::audit_checkpoint("x"), checkpoint)],
            &key(),
        );
        assert_eq!(kinds(&report), [ProblemKind::ForgedCheckpoint]);
    }
}
