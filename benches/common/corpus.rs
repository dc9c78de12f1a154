//! A deterministic synthetic corpus shared by the benchmarks: projects with realistic
//! metadata (titles, descriptions and tags drawn from a Zipf-distributed vocabulary, so broad
//! and selective queries both exist) and realistic access data (each project readable by a
//! few of ~1,000 users and groups; some public, some for any logged-in caller, some disabled).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
use trove::index::document::{DocKind, IndexDocument};
use trove::permissions::{AccessScope, DocumentAccess, TOKEN_AUTHENTICATED, TOKEN_PUBLIC};

/// Number of distinct users that appear in profiles.
pub const USERS: usize = 400;
/// Number of distinct groups that appear in profiles.
pub const GROUPS: usize = 800;
/// Vocabulary size.
pub const VOCABULARY: usize = 5_000;

/// Real words at the head of the vocabulary (the most frequent ones).
const HEAD: &[&str] = &[
    "model",
    "dataset",
    "training",
    "weights",
    "checkpoint",
    "vision",
    "language",
    "bert",
    "transformer",
    "embedding",
    "classifier",
    "images",
    "text",
    "audio",
    "tokenizer",
    "fine",
    "tuned",
    "base",
    "large",
    "small",
    "evaluation",
    "benchmark",
    "protein",
    "genome",
    "cell",
    "segmentation",
    "detection",
    "translation",
    "summary",
    "speech",
    "graph",
    "diffusion",
    "resnet",
    "clip",
    "gpt",
    "llama",
    "mistral",
    "whisper",
    "vit",
    "unet",
];

/// Tags, drawn uniformly.
pub const TAGS: &[&str] = &[
    "nlp",
    "cv",
    "audio",
    "biology",
    "tabular",
    "rl",
    "multimodal",
    "generative",
    "medical",
    "robotics",
    "timeseries",
    "graph",
];

/// The i-th vocabulary word: real words first, then pronounceable synthetic ones.
#[must_use]
pub fn word(index: usize) -> String {
    if let Some(head) = HEAD.get(index) {
        return (*head).to_owned();
    }
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ner", "tu", "sa", "vo", "ri", "pel", "zen", "do", "fa", "gu", "hy",
        "jo", "qu",
    ];
    let mut rest = index;
    let mut out = String::new();
    for _ in 0..4 {
        out.push_str(SYLLABLES[rest % SYLLABLES.len()]);
        rest /= SYLLABLES.len();
    }
    out
}

/// Token of user `i`.
#[must_use]
pub fn user(index: usize) -> String {
    format!("u{index:04}")
}

/// Token of group `i`.
#[must_use]
pub fn group(index: usize) -> String {
    format!("group:g{index:04}")
}

/// Project id of project `i`.
#[must_use]
pub fn project_id(index: usize) -> String {
    format!("prj{index:05}")
}

/// A Zipf(s = 1) sampler over the vocabulary.
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// Sampler over `n` ranks.
    #[must_use]
    pub fn new(n: usize) -> Self {
        let mut total = 0.0;
        let mut cumulative = Vec::with_capacity(n);
        for rank in 1..=n {
            total += 1.0 / rank as f64;
            cumulative.push(total);
        }
        for value in &mut cumulative {
            *value /= total;
        }
        Self { cumulative }
    }

    /// One rank (0-based).
    pub fn sample(&self, rng: &mut StdRng) -> usize {
        let target: f64 = rng.random();
        self.cumulative
            .partition_point(|value| *value < target)
            .min(self.cumulative.len() - 1)
    }
}

/// How a project may be read.
#[derive(Debug, Clone)]
pub struct ProjectAccess {
    /// `public`, `authenticated` or `viewers`.
    pub read_access: &'static str,
    /// Owner user tokens.
    pub owners: Vec<String>,
    /// Viewer tokens (users and groups).
    pub viewers: Vec<String>,
    /// Whether the project is disabled.
    pub disabled: bool,
}

impl ProjectAccess {
    /// Random access data: 5 % public, 5 % authenticated, 90 % owners + a few viewers;
    /// 3 % disabled.
    pub fn random(rng: &mut StdRng) -> Self {
        let roll: f64 = rng.random();
        let read_access = if roll < 0.05 {
            "public"
        } else if roll < 0.10 {
            "authenticated"
        } else {
            "viewers"
        };
        let owners = (0..rng.random_range(1..=2))
            .map(|_| user(rng.random_range(0..USERS)))
            .collect();
        let viewers = (0..rng.random_range(1..=3))
            .map(|_| {
                if rng.random_bool(0.7) {
                    group(rng.random_range(0..GROUPS))
                } else {
                    user(rng.random_range(0..USERS))
                }
            })
            .collect();
        Self {
            read_access,
            owners,
            viewers,
            disabled: rng.random_bool(0.03),
        }
    }

    /// The index's access data of the project's documents.
    #[must_use]
    pub fn document_access(&self) -> DocumentAccess {
        let mut readers = BTreeMap::new();
        match self.read_access {
            "public" => {
                readers.insert(TOKEN_PUBLIC.to_owned(), None);
            }
            "authenticated" => {
                readers.insert(TOKEN_AUTHENTICATED.to_owned(), None);
            }
            _ => {
                for token in self.owners.iter().chain(&self.viewers) {
                    readers.insert(token.clone(), None);
                }
            }
        }
        DocumentAccess {
            readers,
            disabled: self.disabled,
            next_expiry: None,
        }
    }

    /// The profile JSON as stored (`<project>/..permissions`).
    #[must_use]
    pub fn profile_json(&self) -> Value {
        json!({
            "scope": "project",
            "owners": self.owners,
            "viewers": self.viewers,
            "read_access": self.read_access,
            "write_access": "owners",
        })
    }
}

/// Generates metadata documents.
pub struct Generator {
    rng: StdRng,
    zipf: Zipf,
}

impl Generator {
    /// A generator with a fixed seed.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            zipf: Zipf::new(VOCABULARY),
        }
    }

    /// The random source.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    fn words(&mut self, count: usize) -> String {
        (0..count)
            .map(|_| word(self.zipf.sample(&mut self.rng)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// One metadata document (what a user uploads as `<file>.json`).
    pub fn metadata(&mut self, file: usize) -> Value {
        let title_len = self.rng.random_range(3..=6);
        let description_len = self.rng.random_range(8..=20);
        let tags: BTreeSet<&str> = (0..self.rng.random_range(1..=3))
            .map(|_| TAGS[self.rng.random_range(0..TAGS.len())])
            .collect();
        json!({
            "path": format!("files/part-{file:04}.bin"),
            "title": self.words(title_len),
            "description": self.words(description_len),
            "tags": tags,
            "$schema": "model/v1.json",
            "metrics": {"accuracy": self.rng.random_range(0.5..1.0), "epochs": self.rng.random_range(1..100)},
        })
    }

    /// An index document of `project`/`version` for metadata `metadata` (as the indexer would
    /// build it).
    #[must_use]
    pub fn index_document(
        project: &str,
        version: usize,
        metadata: Value,
        access: &ProjectAccess,
        uploaded: DateTime<Utc>,
    ) -> IndexDocument {
        let path = metadata["path"].as_str().unwrap_or_default().to_owned();
        let version_name = format!("v{version}");
        let id = format!("{project}:{path}@{version_name}");
        let mut source = metadata;
        source["_extra"] = json!({
            "id": id,
            "kind": "file",
            "project_id": project,
            "version": version_name,
            "path": path,
            "metapath": format!("{path}.json"),
            "revision": format!("NUM-{version}"),
            "numerical_revision": version,
            "type": "MODEL",
            "uploaded": uploaded,
            "state": if access.disabled { "disabled" } else { "active" },
        });
        IndexDocument {
            id,
            kind: DocKind::File,
            project_id: project.to_owned(),
            version: Some(version_name),
            path: Some(path.clone()),
            file_key: Some(format!("{path}.json")),
            perm_hash: 0,
            namespace: None,
            numerical_revision: Some(version as u64),
            uploaded: Some(uploaded),
            access: trove::index::document::Shared::new(access.document_access()),
            state: if access.disabled {
                "disabled"
            } else {
                "active"
            }
            .to_owned(),
            source,
            version_extra: None,
            permissions: trove::index::document::Shared::new(access.profile_json()),
            project_text: std::sync::Arc::new(trove::index::document::ProjectText {
                name: format!("{project} {project} model"),
                about: "a model of the benchmark corpus".to_owned(),
                project_type: "MODEL".to_owned(),
                tags: vec!["benchmark".to_owned()],
            }),
        }
    }
}

/// The benchmark caller: one user, `groups` groups, logged in (52 tokens with 50 groups).
#[must_use]
pub fn caller_scope(user_index: usize, groups: &[usize]) -> AccessScope {
    let mut tokens: BTreeSet<String> = groups.iter().map(|index| group(*index)).collect();
    tokens.insert(user(user_index));
    tokens.insert(TOKEN_PUBLIC.to_owned());
    tokens.insert(TOKEN_AUTHENTICATED.to_owned());
    AccessScope::Principals {
        tokens: std::sync::Arc::new(tokens),
    }
}

/// `count` distinct group indexes starting at `first` (spread over all groups).
#[must_use]
pub fn caller_groups(first: usize, count: usize) -> Vec<usize> {
    (0..count).map(|i| (first + i * 7) % GROUPS).collect()
}

/// A `/proc/self/status` figure in kiB (`VmHWM:`, `RssAnon:`, ...), as MiB; `0` if absent.
#[must_use]
pub fn status_mib(status: &str, name: &str) -> f64 {
    status
        .lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Peak and current resident memory (`VmHWM`, `VmRSS`) in MiB, from `/proc/self/status`.
#[must_use]
pub fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    (status_mib(&status, "VmHWM:"), status_mib(&status, "VmRSS:"))
}

/// This process's anonymous resident memory (`RssAnon`: without mapped files) in MiB.
#[must_use]
pub fn rss_anon_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status_mib(&status, "RssAnon:")
}

/// Percentile (0..=100) of sorted durations in milliseconds.
#[must_use]
pub fn percentile(sorted_ms: &[f64], pct: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let rank = ((pct / 100.0) * (sorted_ms.len() - 1) as f64).round() as usize;
    sorted_ms[rank.min(sorted_ms.len() - 1)]
}
