//! The one audit event type, its builder, the outcome enum, redaction of secrets, and the
//! query view that merges a two-phase mutation (its `pending` event and its completion) into
//! one entry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::auth::Principal;
use crate::auth::principal::CredentialKind;

/// How an audited operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Stored before a mutation ran; stays so when the mutation never reported back (crash).
    Pending,
    /// Done.
    Ok,
    /// Refused by authentication or the permission engine (`401`, `403`, `404` of hiding).
    Denied,
    /// Failed for another reason (invalid request, conflict, storage down, ...).
    Error,
}

impl Outcome {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ok => "ok",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }

    /// The outcome an HTTP status means: `2xx`/`3xx` ok, `401`/`403` denied, else error.
    #[must_use]
    pub fn from_status(status: u16) -> Self {
        match status {
            200..=399 => Self::Ok,
            401 | 403 => Self::Denied,
            _ => Self::Error,
        }
    }

    /// Parses a wire name.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "ok" => Some(Self::Ok),
            "denied" => Some(Self::Denied),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A local account (Trove token).
    User,
    /// An account of the external identity provider.
    External,
    /// An API key (`machine:<name>`).
    Machine,
    /// No credentials.
    Anonymous,
    /// Trove itself (start-up, scheduled jobs, CLI).
    System,
}

/// One audit event, exactly as stored under `..meta/audit/`.
///
/// `writer`, `seq`, `prev_hash` and `hash` are filled in by the sink when the event is
/// stored: `seq` numbers the events of one writer (one process) from 0, `prev_hash` is the
/// SHA-256 of the stored bytes of that writer's previous event, and `hash` the SHA-256 of this
/// event's canonical JSON without `hash` — so editing an event, or deleting one, breaks the
/// chain where it happened (`trove audit verify`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique id (UUID v7: time-ordered).
    pub id: String,
    /// When it happened (UTC, nanoseconds).
    pub ts: DateTime<Utc>,
    /// `alice`, `machine:ci`, `anonymous`, `system`, or the username typed at a failed login.
    pub actor: String,
    /// What kind of caller the actor is.
    pub actor_kind: ActorKind,
    /// Client address (TCP peer), when known.
    #[serde(default)]
    pub ip: Option<String>,
    /// `<resource>.<verb>`: `auth.login`, `project.create`, `access.denied`, ...
    pub action: String,
    /// What was acted on: `project:bert`, `version:bert@v1`, `file:bert:a.json@v1`,
    /// `user:alice`, `group:ml`, `api_key:<id>`, a route path, ...
    pub resource: String,
    /// The project concerned, when there is one (filters the project timeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status answered (none while pending).
    #[serde(default)]
    pub status: Option<u16>,
    /// Free-form details (a JSON object); secrets are redacted before storing.
    #[serde(default)]
    pub details: Value,
    /// For the completion of a two-phase mutation: the id of its `pending` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completes: Option<String>,
    /// The process that wrote it (one UUID per process).
    #[serde(default)]
    pub writer: String,
    /// Position in the writer's chain, from 0.
    #[serde(default)]
    pub seq: u64,
    /// SHA-256 (hex) of the stored bytes of the writer's previous event; none for `seq` 0.
    #[serde(default)]
    pub prev_hash: Option<String>,
    /// SHA-256 (hex) of this event's canonical JSON without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl AuditEvent {
    /// A new event of `action` by the system actor, outcome `ok`; set the rest with the
    /// builder methods.
    #[must_use]
    pub fn new(action: impl Into<String>) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            ts: Utc::now(),
            actor: "system".to_owned(),
            actor_kind: ActorKind::System,
            ip: None,
            action: action.into(),
            resource: String::new(),
            project: None,
            outcome: Outcome::Ok,
            status: None,
            details: Value::Object(Map::new()),
            completes: None,
            writer: String::new(),
            seq: 0,
            prev_hash: None,
            hash: None,
        }
    }

    /// The caller of a request as actor.
    #[must_use]
    pub fn by(mut self, principal: &Principal) -> Self {
        self.actor = principal.actor();
        self.actor_kind = match principal.credential {
            _ if principal.is_anonymous() => ActorKind::Anonymous,
            CredentialKind::ApiKey => ActorKind::Machine,
            CredentialKind::External => ActorKind::External,
            CredentialKind::Token | CredentialKind::None => ActorKind::User,
        };
        self
    }

    /// A named actor of a kind (e.g. the username typed at a login).
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>, kind: ActorKind) -> Self {
        let mut actor: String = actor.into();
        // Bound what a client can make us store.
        if actor.len() > 256 {
            let mut end = 256;
            while !actor.is_char_boundary(end) {
                end -= 1;
            }
            actor.truncate(end);
        }
        self.actor = actor;
        self.actor_kind = kind;
        self
    }

    /// The resource acted on.
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = resource.into();
        self
    }

    /// The project concerned.
    #[must_use]
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// The client address.
    #[must_use]
    pub fn ip(mut self, ip: impl Into<String>) -> Self {
        self.ip = Some(ip.into());
        self
    }

    /// The outcome and the HTTP status.
    #[must_use]
    pub fn outcome(mut self, outcome: Outcome, status: u16) -> Self {
        self.outcome = outcome;
        self.status = Some(status);
        self
    }

    /// Adds one detail (secret-looking keys are redacted when stored).
    #[must_use]
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        if !self.details.is_object() {
            self.details = Value::Object(Map::new());
        }
        if let Value::Object(map) = &mut self.details {
            map.insert(key.to_owned(), value.into());
        }
        self
    }

    /// The canonical JSON the `hash` covers: the event without `hash`.
    #[must_use]
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut copy = self.clone();
        copy.hash = None;
        serde_json::to_vec(&copy).unwrap_or_default()
    }

    /// The SHA-256 (hex) of [`Self::canonical_bytes`].
    #[must_use]
    pub fn compute_hash(&self) -> String {
        sha256_hex(&self.canonical_bytes())
    }
}

/// SHA-256 in lower-case hex.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether a details key names something secret: its value is never stored.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "authorization",
        "credential",
        "api_key",
        "apikey",
        "private",
        "signature",
        "cookie",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// Replaces the value of every secret-looking key (recursively) by `"[redacted]"`.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if is_secret_key(key) {
                    *value = Value::String("[redacted]".to_owned());
                } else {
                    redact(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The query view of an event: the event itself, or for a two-phase mutation its `pending`
/// event with the outcome, status and details of its completion (when there is one), plus
/// `completed` (false while no completion was stored) and `completed_at`.
#[must_use]
pub fn view(event: &AuditEvent, completion: Option<&AuditEvent>) -> Value {
    let mut merged = event.clone();
    let mut completed = event.outcome != Outcome::Pending;
    let mut completed_at = None;
    if let Some(completion) = completion {
        merged.outcome = completion.outcome;
        merged.status = completion.status;
        if let (Value::Object(base), Value::Object(extra)) =
            (&mut merged.details, &completion.details)
        {
            for (key, value) in extra {
                base.insert(key.clone(), value.clone());
            }
        }
        completed = true;
        completed_at = Some(completion.ts);
    }
    let mut value = serde_json::to_value(&merged).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for key in ["writer", "seq", "prev_hash", "hash", "completes"] {
            map.remove(key);
        }
        map.insert("completed".to_owned(), Value::Bool(completed));
        if let Some(at) = completed_at {
            map.insert(
                "completed_at".to_owned(),
                serde_json::to_value(at).unwrap_or(Value::Null),
            );
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_recursively() {
        let mut details = serde_json::json!({
            "username": "alice",
            "password": "hunter22",
            "nested": {"access_token": "abc", "keep": 1},
            "list": [{"client_secret": "x"}]
        });
        redact(&mut details);
        let text = details.to_string();
        assert!(!text.contains("hunter22"));
        assert!(!text.contains("abc"));
        assert!(text.contains("alice"));
        assert_eq!(details["nested"]["keep"], 1);
        assert_eq!(details["list"][0]["client_secret"], "[redacted]");
    }

    #[test]
    fn outcome_follows_status() {
        assert_eq!(Outcome::from_status(201), Outcome::Ok);
        assert_eq!(Outcome::from_status(403), Outcome::Denied);
        assert_eq!(Outcome::from_status(401), Outcome::Denied);
        assert_eq!(Outcome::from_status(409), Outcome::Error);
    }

    #[test]
    fn hash_ignores_the_hash_field_and_sees_everything_else() {
        let mut event = AuditEvent::new("project.create").resource("project:p");
        let first = event.compute_hash();
        event.hash = Some(first.clone());
        assert_eq!(event.compute_hash(), first);
        event.resource = "project:q".to_owned();
        assert_ne!(event.compute_hash(), first);
    }

    #[test]
    fn view_merges_a_completion() {
        let pending = AuditEvent::new("user.delete").outcome(Outcome::Pending, 0);
        let done = AuditEvent::new("user.delete")
            .outcome(Outcome::Ok, 204)
            .detail("x", 1);
        let merged = view(&pending, Some(&done));
        assert_eq!(merged["outcome"], "ok");
        assert_eq!(merged["status"], 204);
        assert_eq!(merged["completed"], true);
        assert_eq!(merged["details"]["x"], 1);
        let open = view(&pending, None);
        assert_eq!(open["outcome"], "pending");
        assert_eq!(open["completed"], false);
    }
}
